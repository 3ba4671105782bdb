"""The VGG builder behind `vgg16.VGG16` and `vgg19.VGG19` (Keras's vgg16.py/vgg19.py differ only in the
number of 3x3 convolutions per block): Keras's layer names `block{b}_conv{i}`, `block{b}_pool`, `flatten`,
`fc1`, `fc2`, `predictions`, so Keras's weight files load."""
from __future__ import annotations

from .. import layers
from . import imagenet_utils as iu

_FILTERS = (64, 128, 256, 512, 512)


def build(convs_per_block, *, app, file_prefix, include_top, weights, input_tensor, input_shape, pooling, classes,
          classifier_activation, name):
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=224, min_size=32, require_flatten=include_top,
                                        weights=weights, app=app)
    weights_path = iu.weights_file(app, weights, iu.keras_file_names(file_prefix)[0 if include_top else 1])
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = img_input
        for block, (filters, convs) in enumerate(zip(_FILTERS, convs_per_block), start=1):
            for i in range(1, convs + 1):
                x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same",
                                  name=f"block{block}_conv{i}")(x)
            x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
        if include_top:
            x = layers.Flatten(name="flatten")(x)
            x = layers.Dense(4096, activation="relu", name="fc1")(x)
            x = layers.Dense(4096, activation="relu", name="fc2")(x)
            iu.validate_activation(classifier_activation, weights, app)
            x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
        else:
            x = iu.classifier(x, False, pooling, classes, classifier_activation, weights, app)
        return iu.finish(img_input, input_tensor, x, name, weights_path)

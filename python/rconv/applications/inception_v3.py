"""`keras.applications.inception_v3`: InceptionV3 as Keras builds it (unnamed `conv2d_bn` units get
Keras's automatic names, the mixing layers are `mixed0` ... `mixed10`), `preprocess_input` in tf mode."""
from __future__ import annotations

from .. import layers
from . import imagenet_utils as iu


def conv2d_bn(x, filters, num_row, num_col, padding="same", strides=(1, 1), name=None):
    x = layers.Conv2D(filters, (num_row, num_col), strides=strides, padding=padding, use_bias=False,
                      name=None if name is None else f"{name}_conv")(x)
    x = layers.BatchNormalization(axis=3, scale=False, name=None if name is None else f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def _avg_branch(x, filters):
    return conv2d_bn(layers.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x), filters, 1, 1)


def _block35(x, pool_filters, name):
    """mixed0..mixed2: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""
    branch1x1 = conv2d_bn(x, 64, 1, 1)
    branch5x5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5)
    branch3x3dbl = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
    branch_pool = _avg_branch(x, pool_filters)
    return layers.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=3, name=name)


def _block17(x, c7, name):
    """mixed4..mixed7: factorized 7x7 branches with `c7` inner filters."""
    branch1x1 = conv2d_bn(x, 192, 1, 1)
    branch7x7 = conv2d_bn(x, c7, 1, 1)
    branch7x7 = conv2d_bn(branch7x7, c7, 1, 7)
    branch7x7 = conv2d_bn(branch7x7, 192, 7, 1)
    branch7x7dbl = conv2d_bn(x, c7, 1, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, c7, 7, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, c7, 1, 7)
    branch7x7dbl = conv2d_bn(branch7x7dbl, c7, 7, 1)
    branch7x7dbl = conv2d_bn(branch7x7dbl, 192, 1, 7)
    branch_pool = _avg_branch(x, 192)
    return layers.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=3, name=name)


def _block8(x, i):
    """mixed9, mixed10."""
    branch1x1 = conv2d_bn(x, 320, 1, 1)
    branch3x3 = conv2d_bn(x, 384, 1, 1)
    branch3x3 = layers.concatenate([conv2d_bn(branch3x3, 384, 1, 3), conv2d_bn(branch3x3, 384, 3, 1)], axis=3,
                                   name=f"mixed9_{i}")
    branch3x3dbl = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3)
    branch3x3dbl = layers.concatenate([conv2d_bn(branch3x3dbl, 384, 1, 3), conv2d_bn(branch3x3dbl, 384, 3, 1)],
                                      axis=3)
    branch_pool = _avg_branch(x, 192)
    return layers.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=3, name=f"mixed{9 + i}")


def InceptionV3(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="inception_v3"):
    """Keras's `keras.applications.InceptionV3` (default 299x299, at least 75x75). `weights`: None, a Keras
    weights file path, or 'imagenet' (Keras's cached inception_v3 file)."""
    app = "InceptionV3"
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=299, min_size=75, require_flatten=include_top,
                                        weights=weights, app=app)
    weights_path = iu.weights_file(app, weights, iu.keras_file_names("inception_v3")[0 if include_top else 1])
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = conv2d_bn(img_input, 32, 3, 3, strides=(2, 2), padding="valid")
        x = conv2d_bn(x, 32, 3, 3, padding="valid")
        x = conv2d_bn(x, 64, 3, 3)
        x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
        x = conv2d_bn(x, 80, 1, 1, padding="valid")
        x = conv2d_bn(x, 192, 3, 3, padding="valid")
        x = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
        for i, pool_filters in enumerate((32, 64, 64)):
            x = _block35(x, pool_filters, f"mixed{i}")
        branch3x3 = conv2d_bn(x, 384, 3, 3, strides=(2, 2), padding="valid")
        branch3x3dbl = conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3)
        branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, strides=(2, 2), padding="valid")
        branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
        x = layers.concatenate([branch3x3, branch3x3dbl, branch_pool], axis=3, name="mixed3")
        for i, c7 in enumerate((128, 160, 160, 192)):
            x = _block17(x, c7, f"mixed{4 + i}")
        branch3x3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, strides=(2, 2), padding="valid")
        branch7x7x3 = conv2d_bn(x, 192, 1, 1)
        branch7x7x3 = conv2d_bn(branch7x7x3, 192, 1, 7)
        branch7x7x3 = conv2d_bn(branch7x7x3, 192, 7, 1)
        branch7x7x3 = conv2d_bn(branch7x7x3, 192, 3, 3, strides=(2, 2), padding="valid")
        branch_pool = layers.MaxPooling2D((3, 3), strides=(2, 2))(x)
        x = layers.concatenate([branch3x3, branch7x7x3, branch_pool], axis=3, name="mixed8")
        for i in range(2):
            x = _block8(x, i)
        x = iu.classifier(x, include_top, pooling, classes, classifier_activation, weights, app)
        return iu.finish(img_input, input_tensor, x, name, weights_path)


preprocess_input, decode_predictions = iu.module_functions("tf", "InceptionV3")

__all__ = ["InceptionV3", "preprocess_input", "decode_predictions"]

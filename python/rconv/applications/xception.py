"""`keras.applications.xception`: Xception as Keras builds it (`block1_conv1` ... `block14_sepconv2_act`; the
residual 1x1 convolutions and their BatchNormalizations keep Keras's automatic names), `preprocess_input`
in tf mode."""
from __future__ import annotations

from .. import layers
from . import imagenet_utils as iu


def _sepconv_bn(x, filters, name, act_first=True):
    """[relu `{name}_act`] -> SeparableConv2D `{name}` -> BatchNormalization `{name}_bn`."""
    if act_first:
        x = layers.Activation("relu", name=f"{name}_act")(x)
    x = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=name)(x)
    return layers.BatchNormalization(axis=-1, name=f"{name}_bn")(x)


def _residual(x, filters):
    r = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    return layers.BatchNormalization(axis=-1)(r)


def _entry_block(x, block, filters, first_act=True):
    """block2..block4 and block13: two separable convolutions, a stride-2 max pool, plus a 1x1 residual."""
    residual = _residual(x, filters[1])
    if block == 2:  # block2 follows block1_conv2_act: no activation before its first convolution
        x = layers.SeparableConv2D(filters[0], (3, 3), padding="same", use_bias=False, name="block2_sepconv1")(x)
        x = layers.BatchNormalization(axis=-1, name="block2_sepconv1_bn")(x)
    else:
        x = _sepconv_bn(x, filters[0], f"block{block}_sepconv1")
    x = _sepconv_bn(x, filters[1], f"block{block}_sepconv2")
    x = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{block}_pool")(x)
    return layers.add([x, residual])


def Xception(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
             classes=1000, classifier_activation="softmax", name="xception"):
    """Keras's `keras.applications.Xception` (default 299x299, at least 71x71). `weights`: None, a Keras
    weights file path, or 'imagenet' (Keras's cached xception file)."""
    app = "Xception"
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=299, min_size=71, require_flatten=include_top,
                                        weights=weights, app=app)
    weights_path = iu.weights_file(app, weights, iu.keras_file_names("xception")[0 if include_top else 1])
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = layers.Conv2D(32, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(img_input)
        x = layers.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
        x = layers.Activation("relu", name="block1_conv1_act")(x)
        x = layers.Conv2D(64, (3, 3), use_bias=False, name="block1_conv2")(x)
        x = layers.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
        x = layers.Activation("relu", name="block1_conv2_act")(x)
        x = _entry_block(x, 2, (128, 128))
        x = _entry_block(x, 3, (256, 256))
        x = _entry_block(x, 4, (728, 728))
        for i in range(8):  # middle flow
            residual, prefix = x, f"block{i + 5}"
            for j in (1, 2, 3):
                x = _sepconv_bn(x, 728, f"{prefix}_sepconv{j}")
            x = layers.add([x, residual])
        x = _entry_block(x, 13, (728, 1024))
        for j, filters in ((1, 1536), (2, 2048)):
            x = _sepconv_bn(x, filters, f"block14_sepconv{j}", act_first=False)
            x = layers.Activation("relu", name=f"block14_sepconv{j}_act")(x)
        x = iu.classifier(x, include_top, pooling, classes, classifier_activation, weights, app)
        return iu.finish(img_input, input_tensor, x, name, weights_path)


preprocess_input, decode_predictions = iu.module_functions("tf", "Xception")

__all__ = ["Xception", "preprocess_input", "decode_predictions"]

"""`keras.applications.efficientnet`: EfficientNetB0..B7 as Keras 3 builds them (`rescaling`,
`normalization`, `stem_*`, `block{i}{a,b,...}_*` MBConv blocks with squeeze-and-excitation, `top_*`),
Keras's initializers; `preprocess_input` is the identity (the model rescales its [0, 255] input itself)."""
from __future__ import annotations

import copy
import math

from .. import layers
from ..layers.normalization_preprocessing import Normalization
from . import imagenet_utils as iu

IMAGENET_STDDEV_RGB = [0.229, 0.224, 0.225]
DEFAULT_BLOCKS_ARGS = [
    {"kernel_size": 3, "repeats": 1, "filters_in": 32, "filters_out": 16, "expand_ratio": 1, "strides": 1},
    {"kernel_size": 3, "repeats": 2, "filters_in": 16, "filters_out": 24, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 2, "filters_in": 24, "filters_out": 40, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 3, "filters_in": 40, "filters_out": 80, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 5, "repeats": 3, "filters_in": 80, "filters_out": 112, "expand_ratio": 6, "strides": 1},
    {"kernel_size": 5, "repeats": 4, "filters_in": 112, "filters_out": 192, "expand_ratio": 6, "strides": 2},
    {"kernel_size": 3, "repeats": 1, "filters_in": 192, "filters_out": 320, "expand_ratio": 6, "strides": 1},
]
for _args in DEFAULT_BLOCKS_ARGS:
    _args.update(id_skip=True, se_ratio=0.25)
CONV_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                           "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_KERNEL_INITIALIZER = {"class_name": "VarianceScaling",
                            "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}
# name -> (width_coefficient, depth_coefficient, default_size, dropout_rate)
VARIANTS = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
            "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
            "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def _conv(filters, kernel_size, name, **kwargs):
    return layers.Conv2D(filters, kernel_size, kernel_initializer=CONV_KERNEL_INITIALIZER, name=name, **kwargs)


def block(inputs, activation="swish", drop_rate=0.0, name="", filters_in=32, filters_out=16, kernel_size=3,
          strides=1, expand_ratio=1, se_ratio=0.0, id_skip=True):
    """Keras's inverted residual (MBConv) block."""
    filters = filters_in * expand_ratio
    if expand_ratio != 1:
        x = _conv(filters, 1, f"{name}expand_conv", padding="same", use_bias=False)(inputs)
        x = layers.BatchNormalization(axis=3, name=f"{name}expand_bn")(x)
        x = layers.Activation(activation, name=f"{name}expand_activation")(x)
    else:
        x = inputs
    if strides == 2:
        x = layers.ZeroPadding2D(padding=iu.correct_pad(x, kernel_size), name=f"{name}dwconv_pad")(x)
        conv_pad = "valid"
    else:
        conv_pad = "same"
    x = layers.DepthwiseConv2D(kernel_size, strides=strides, padding=conv_pad, use_bias=False,
                               depthwise_initializer=CONV_KERNEL_INITIALIZER, name=f"{name}dwconv")(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}bn")(x)
    x = layers.Activation(activation, name=f"{name}activation")(x)
    if 0 < se_ratio <= 1:
        filters_se = max(1, int(filters_in * se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{name}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{name}se_reshape")(se)
        se = _conv(filters_se, 1, f"{name}se_reduce", padding="same", activation=activation)(se)
        se = _conv(filters, 1, f"{name}se_expand", padding="same", activation="sigmoid")(se)
        x = layers.multiply([x, se], name=f"{name}se_excite")
    x = _conv(filters_out, 1, f"{name}project_conv", padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(axis=3, name=f"{name}project_bn")(x)
    if id_skip and strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.add([x, inputs], name=f"{name}add")
    return x


def EfficientNet(width_coefficient, depth_coefficient, default_size, dropout_rate=0.2, drop_connect_rate=0.2,
                 depth_divisor=8, activation="swish", blocks_args="default", name="efficientnet", include_top=True,
                 weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
                 classifier_activation="softmax", weights_name=None):
    """Keras's `efficientnet.EfficientNet` (the weights file for 'imagenet' is Keras's `<name>[_notop].h5`)."""
    app = f"EfficientNet{weights_name.upper()}" if weights_name else "EfficientNet"
    blocks_args = DEFAULT_BLOCKS_ARGS if blocks_args == "default" else blocks_args
    iu.check_arguments(app, weights, include_top, classes, pooling)
    input_shape = iu.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                        require_flatten=include_top, weights=weights, app=app)
    weights_path = iu.weights_file(app, weights, f"{name}{'.h5' if include_top else '_notop.h5'}")
    img_input = iu.input_layer(input_tensor, input_shape, app)

    def round_filters(filters, divisor=depth_divisor):
        filters *= width_coefficient
        new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
        return int(new_filters + divisor if new_filters < 0.9 * filters else new_filters)

    def round_repeats(repeats):
        return int(math.ceil(depth_coefficient * repeats))

    with iu.building(weights_path):
        x = layers.Rescaling(1.0 / 255.0)(img_input)
        x = Normalization(axis=3)(x)
        if weights == "imagenet":
            x = layers.Rescaling([1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB])(x)
        x = layers.ZeroPadding2D(padding=iu.correct_pad(x, 3), name="stem_conv_pad")(x)
        x = _conv(round_filters(32), 3, "stem_conv", strides=2, padding="valid", use_bias=False)(x)
        x = layers.BatchNormalization(axis=3, name="stem_bn")(x)
        x = layers.Activation(activation, name="stem_activation")(x)
        blocks_args = copy.deepcopy(blocks_args)
        b = 0
        blocks = float(sum(round_repeats(args["repeats"]) for args in blocks_args))
        for i, args in enumerate(blocks_args):
            if args["repeats"] <= 0:
                raise ValueError(f"{app}: the number of repeats in `EfficientNet` must be > 0. Received: "
                                 f"repeats={args['repeats']}")
            args["filters_in"] = round_filters(args["filters_in"])
            args["filters_out"] = round_filters(args["filters_out"])
            for j in range(round_repeats(args.pop("repeats"))):
                if j > 0:
                    args["strides"] = 1
                    args["filters_in"] = args["filters_out"]
                x = block(x, activation, drop_connect_rate * b / blocks, name=f"block{i + 1}{chr(j + 97)}_", **args)
                b += 1
        x = _conv(round_filters(1280), 1, "top_conv", padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(axis=3, name="top_bn")(x)
        x = layers.Activation(activation, name="top_activation")(x)
        if include_top:
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
            if dropout_rate > 0:
                x = layers.Dropout(dropout_rate, name="top_dropout")(x)
            iu.validate_activation(classifier_activation, weights, app)
            x = layers.Dense(classes, activation=classifier_activation, kernel_initializer=DENSE_KERNEL_INITIALIZER,
                             name="predictions")(x)
        else:
            x = iu.classifier(x, False, pooling, classes, classifier_activation, weights, app,
                              avg_name="avg_pool", max_name="max_pool")
        return iu.finish(img_input, input_tensor, x, name, weights_path)


def _variant(key):
    width, depth, size, dropout = VARIANTS[key]

    def application(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                    classes=1000, classifier_activation="softmax", name=f"efficientnet{key}"):
        return EfficientNet(width, depth, size, dropout, name=name, include_top=include_top, weights=weights,
                            input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                            classifier_activation=classifier_activation, weights_name=key)
    application.__name__ = application.__qualname__ = f"EfficientNet{key.upper()}"
    application.__doc__ = (f"Keras's `keras.applications.EfficientNet{key.upper()}` (default {size}x{size}, inputs "
                           f"in [0, 255]). `weights`: None, a Keras weights file path, or 'imagenet' (Keras's "
                           f"cached efficientnet{key}.h5 / efficientnet{key}_notop.h5).")
    return application


(EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4, EfficientNetB5, EfficientNetB6,
 EfficientNetB7) = (_variant(f"b{i}") for i in range(8))


def preprocess_input(x, data_format=None):
    """The identity (Keras's EfficientNet models rescale their [0, 255] input themselves)."""
    return x


def decode_predictions(preds, top=5):
    return iu.decode_predictions(preds, top=top)


__all__ = [f"EfficientNetB{i}" for i in range(8)] + ["preprocess_input", "decode_predictions"]

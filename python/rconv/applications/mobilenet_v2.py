"""`keras.applications.mobilenet_v2`: MobileNetV2 (any `alpha`) with Keras's layer names (`Conv1`,
`bn_Conv1`, `expanded_conv_*`, `block_{i}_{expand,depthwise,project}[_BN|_relu]`, `Conv_1`, `out_relu`),
`preprocess_input` in tf mode."""
from __future__ import annotations

import warnings

from .. import layers
from . import imagenet_utils as iu

_SIZES = (96, 128, 160, 192, 224)
_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (filters, stride, expansion) of blocks 0..16
_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
           (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
           (320, 1, 6))


def _bn(name):
    return layers.BatchNormalization(axis=-1, epsilon=1e-3, momentum=0.999, name=name)


def _make_divisible(v, divisor, min_value=None):
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _inverted_res_block(inputs, expansion, stride, alpha, filters, block_id):
    in_channels = inputs.shape[-1]
    pointwise_filters = _make_divisible(int(filters * alpha), 8)
    x = inputs
    prefix = f"block_{block_id}_"
    if block_id:
        x = layers.Conv2D(expansion * in_channels, kernel_size=1, padding="same", use_bias=False, activation=None,
                          name=f"{prefix}expand")(x)
        x = _bn(f"{prefix}expand_BN")(x)
        x = layers.ReLU(6.0, name=f"{prefix}expand_relu")(x)
    else:
        prefix = "expanded_conv_"
    if stride == 2:
        x = layers.ZeroPadding2D(padding=iu.correct_pad(x, 3), name=f"{prefix}pad")(x)
    x = layers.DepthwiseConv2D(kernel_size=3, strides=stride, activation=None, use_bias=False,
                               padding="same" if stride == 1 else "valid", name=f"{prefix}depthwise")(x)
    x = _bn(f"{prefix}depthwise_BN")(x)
    x = layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(x)
    x = layers.Conv2D(pointwise_filters, kernel_size=1, padding="same", use_bias=False, activation=None,
                      name=f"{prefix}project")(x)
    x = _bn(f"{prefix}project_BN")(x)
    if in_channels == pointwise_filters and stride == 1:
        return layers.Add(name=f"{prefix}add")([inputs, x])
    return x


def _default_size(shape):
    """Keras: a square input of a size imagenet weights exist for is the default size, else 224."""
    if shape is None:
        return 224
    rows, cols = shape[0], shape[1]
    return rows if rows == cols and rows in _SIZES else 224


def MobileNetV2(input_shape=None, alpha=1.0, include_top=True, weights="imagenet", input_tensor=None, pooling=None,
                classes=1000, classifier_activation="softmax", name=None):
    """Keras's `keras.applications.MobileNetV2` (at least 32x32). `weights`: None, a Keras weights file path, or
    'imagenet' (Keras's cached `mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}[_no_top].h5`)."""
    app = "MobileNetV2"
    iu.check_arguments(app, weights, include_top, classes, pooling)
    if input_tensor is not None and not isinstance(input_tensor, iu.KerasTensor):
        iu.input_layer(input_tensor, input_shape, app)  # raises
    if input_shape is not None and input_tensor is not None and input_tensor.shape[2] != input_shape[1]:
        raise ValueError(f"{app}: input_tensor.shape[2] must equal input_shape[1]; Received "
                         f"`input_tensor.shape={input_tensor.shape}`, `input_shape={input_shape}`")
    if input_shape is None and input_tensor is not None:
        default_size = _default_size(input_tensor.shape[1:3])
    else:
        default_size = _default_size(input_shape)
    input_shape = iu.obtain_input_shape(input_shape, default_size=default_size, min_size=32,
                                        require_flatten=include_top, weights=weights, app=app)
    rows, cols = input_shape[0], input_shape[1]
    weights_path = None
    if weights == "imagenet":
        if alpha not in _ALPHAS:
            raise ValueError(f"{app}: if imagenet weights are being loaded, alpha must be one of `0.35`, `0.50`, "
                             f"`0.75`, `1.0`, `1.3` or `1.4` only; Received `alpha={alpha}`")
        if rows != cols or rows not in _SIZES:
            rows = 224
            warnings.warn("`input_shape` is undefined or non-square, or `rows` is not in [96, 128, 160, 192, 224]. "
                          "Weights for input shape (224, 224) will be loaded as the default.", stacklevel=2)
        suffix = "" if include_top else "_no_top"
        weights_path = iu.weights_file(
            app, weights, f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{suffix}.h5")
    elif weights is not None:
        weights_path = iu.weights_file(app, weights, None)
    img_input = iu.input_layer(input_tensor, input_shape, app)
    with iu.building(weights_path):
        x = layers.Conv2D(_make_divisible(32 * alpha, 8), kernel_size=3, strides=(2, 2), padding="same",
                          use_bias=False, name="Conv1")(img_input)
        x = _bn("bn_Conv1")(x)
        x = layers.ReLU(6.0, name="Conv1_relu")(x)
        for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
            x = _inverted_res_block(x, filters=filters, alpha=alpha, stride=stride, expansion=expansion,
                                    block_id=block_id)
        last_block_filters = _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
        x = layers.Conv2D(last_block_filters, kernel_size=1, use_bias=False, name="Conv_1")(x)
        x = _bn("Conv_1_bn")(x)
        x = layers.ReLU(6.0, name="out_relu")(x)
        x = iu.classifier(x, include_top, pooling, classes, classifier_activation, weights, app, top_pool=None)
        if name is None:
            name = f"mobilenetv2_{alpha:0.2f}_{rows}"
        return iu.finish(img_input, input_tensor, x, name, weights_path)


preprocess_input, decode_predictions = iu.module_functions("tf", "MobileNetV2")

__all__ = ["MobileNetV2", "preprocess_input", "decode_predictions"]

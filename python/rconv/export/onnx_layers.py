"""ONNX converters of the activations and of issue 13's layers (convolution variants, parametric activations,
merges, group normalization, shape and resampling layers), used by `export/onnx.py`.

Each converter is ``convert(g, layer, x) -> output value name`` on the `_Graph` `g`; layouts stay NHWC except
inside the spatial ops, which run in ONNX's NCHW between Transposes. Where ONNX's semantics differ from Keras's
(padding splits, resize coordinates), the attributes are chosen so that onnxruntime reproduces Keras's numbers
(checked by tests/test_onnx_export.py). What cannot be reproduced raises a ValueError naming the layer.
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations

_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


# --- activations -------------------------------------------------------------------------------------------------

def _relu(g, x, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and threshold == 0.0:
        y = g.op("Relu", [x], "relu")
    else:
        t = g.const("threshold", np.float32(threshold))
        below = g.op("Mul", [g.op("Sub", [x, t], "shifted"), g.const("slope", np.float32(negative_slope))], "below")
        y = g.op("Where", [g.op("GreaterOrEqual", [x, t], "above"), x, below], "relu")
    if max_value is not None:
        y = g.op("Min", [y, g.const("max_value", np.float32(max_value))], "relu_max")
    return y


def _gelu(g, x, approximate=False):
    half_x = g.op("Mul", [x, g.const("half", np.float32(0.5))], "half_x")
    if approximate:
        cube = g.op("Mul", [g.op("Mul", [x, x], "x2"), x], "x3")
        inner = g.op("Add", [x, g.op("Mul", [cube, g.const("c", np.float32(0.044715))], "cx3")], "inner")
        t = g.op("Tanh", [g.op("Mul", [inner, g.const("k", np.float32(math.sqrt(2 / math.pi)))], "scaled")], "tanh")
    else:
        t = g.op("Erf", [g.op("Mul", [x, g.const("rsqrt2", np.float32(1 / math.sqrt(2)))], "scaled")], "erf")
    return g.op("Mul", [half_x, g.op("Add", [t, g.const("one", np.float32(1.0))], "one_plus")], "gelu")


def _times(inner_op, **attrs):
    """x * inner(x): swish/silu, hard_silu, mish."""
    def emit(g, x):
        return g.op("Mul", [x, inner_op(g, x, **attrs)], "gated")
    return emit


def _softmax_like(op_type):
    def emit(g, x, axis=-1):
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError(f"ONNX export: {op_type} over several axes {axis} has no converter")
            axis = axis[0]
        return g.op(op_type, [x], op_type.lower(), axis=int(axis))
    return emit


def _hard_sigmoid(g, x):
    return g.op("HardSigmoid", [x], "hard_sigmoid", alpha=1.0 / 6.0, beta=0.5)


ACTIVATIONS = {
    "linear": lambda g, x: x,
    "relu": _relu,
    "sigmoid": lambda g, x: g.op("Sigmoid", [x], "sigmoid"),
    "tanh": lambda g, x: g.op("Tanh", [x], "tanh"),
    "softmax": _softmax_like("Softmax"),
    "log_softmax": _softmax_like("LogSoftmax"),
    "elu": lambda g, x, alpha=1.0: g.op("Elu", [x], "elu", alpha=float(alpha)),
    "selu": lambda g, x: g.op("Selu", [x], "selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE),
    "leaky_relu": lambda g, x, negative_slope=0.2: g.op("LeakyRelu", [x], "leaky_relu", alpha=float(negative_slope)),
    "relu6": lambda g, x: g.op("Clip", [x, g.const("zero", np.float32(0)), g.const("six", np.float32(6))], "relu6"),
    "softplus": lambda g, x: g.op("Softplus", [x], "softplus"),
    "softsign": lambda g, x: g.op("Softsign", [x], "softsign"),
    "exponential": lambda g, x: g.op("Exp", [x], "exp"),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": _times(_hard_sigmoid),
    "silu": _times(lambda g, x: g.op("Sigmoid", [x], "sigmoid")),
    "mish": _times(lambda g, x: g.op("Tanh", [g.op("Softplus", [x], "softplus")], "tanh")),
    "gelu": _gelu,
}
ACTIVATIONS["swish"] = ACTIVATIONS["silu"]
ACTIVATIONS["hard_swish"] = ACTIVATIONS["hard_silu"]


def emit_activation(g, x: str, fn, where: str) -> str:
    """The ONNX nodes of activation `fn` (a registered function or one with bound parameters) on `x`."""
    params = {}
    if isinstance(fn, activations.Configured):
        fn, params = fn.fn, dict(fn.params)
    name = activations.name_of(fn)
    if name is None or name not in ACTIVATIONS:
        raise ValueError(f"ONNX export: activation {name or fn!r} of {where} has no converter")
    return ACTIVATIONS[name](g, x, **params)


def activation_layer(g, layer, x):
    return emit_activation(g, x, layer.activation, f"layer '{layer.name}'")


def prelu(g, layer, x):
    return g.op("PRelu", [x, g.const(f"{layer.name}_alpha", layer.alpha.numpy())], layer.name)


# --- convolutions ------------------------------------------------------------------------------------------------

def _in_nchw(g, x, build):
    """`build(nchw_value) -> nchw_value` between the NHWC <-> NCHW Transposes."""
    y = build(g.op("Transpose", [x], "to_nchw", perm=_TO_NCHW))
    return g.op("Transpose", [y], "to_nhwc", perm=_TO_NHWC)


def tf_same_pads(sizes, kernel, strides, dilations) -> list:
    """TF's 'same' padding as ONNX pads [begins..., ends...]: the smaller half first (explicit pads, since
    onnxruntime has no SAME auto-padding with dilation)."""
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        if size is None:
            raise ValueError("ONNX export: 'same' padding needs the input's spatial sizes")
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _conv_node(g, x, layer, kernel_oihw, bias, group=1, pads=None):
    inputs = [x, g.const(f"{layer.name}_kernel", kernel_oihw.astype(np.float32))]
    if bias is not None:
        inputs.append(g.const(f"{layer.name}_bias", bias.astype(np.float32)))
    if pads is None and layer.padding == "same":
        spatial = layer.input_shape[1:-1]
        pads = tf_same_pads(spatial, kernel_oihw.shape[2:], layer.strides, layer.dilation_rate)
    attrs = {"pads": pads} if pads is not None else {"auto_pad": "VALID"}
    return g.op("Conv", inputs, layer.name, strides=list(layer.strides), kernel_shape=list(kernel_oihw.shape[2:]),
                dilations=list(layer.dilation_rate), group=int(group), **attrs)


def conv2d(g, layer, x):
    kernel = np.transpose(layer.kernel.numpy(), (3, 2, 0, 1))  # (H, W, Cin/g, Cout) -> (Cout, Cin/g, H, W)
    bias = layer.bias.numpy() if layer.use_bias else None
    y = _in_nchw(g, x, lambda v: _conv_node(g, v, layer, kernel, bias, group=getattr(layer, "groups", 1)))
    return emit_activation(g, y, layer.activation, f"layer '{layer.name}'")


def conv1d(g, layer, x):
    kernel = np.transpose(layer.kernel.numpy(), (2, 1, 0))  # (K, Cin/g, Cout) -> (Cout, Cin/g, K)
    bias = layer.bias.numpy() if layer.use_bias else None
    causal = layer.dilation_rate[0] * (layer.kernel_size[0] - 1) if layer.padding == "causal" else None
    ncw = g.op("Transpose", [x], "to_ncw", perm=[0, 2, 1])
    y = _conv_node(g, ncw, layer, kernel, bias, group=layer.groups, pads=None if causal is None else [causal, 0])
    y = g.op("Transpose", [y], "to_nwc", perm=[0, 2, 1])
    return emit_activation(g, y, layer.activation, f"layer '{layer.name}'")


def _depthwise_oihw(kernel):
    """(kh, kw, cin, dm) -> (cin*dm, 1, kh, kw), output channel c*dm + m as in TF."""
    kh, kw, cin, dm = kernel.shape
    return np.transpose(kernel.reshape(kh, kw, cin * dm), (2, 0, 1))[:, None]


def depthwise_conv2d(g, layer, x):
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else None
    y = _in_nchw(g, x, lambda v: _conv_node(g, v, layer, _depthwise_oihw(kernel), bias, group=kernel.shape[2]))
    return emit_activation(g, y, layer.activation, f"layer '{layer.name}'")


def separable_conv2d(g, layer, x):
    depthwise = layer.depthwise_kernel.numpy()
    pointwise = np.transpose(layer.pointwise_kernel.numpy(), (3, 2, 0, 1))
    bias = layer.bias.numpy() if layer.use_bias else None

    def build(v):
        d = _conv_node(g, v, layer, _depthwise_oihw(depthwise), None, group=depthwise.shape[2])
        inputs = [d, g.const(f"{layer.name}_pointwise", pointwise.astype(np.float32))]
        if bias is not None:
            inputs.append(g.const(f"{layer.name}_bias", bias.astype(np.float32)))
        return g.op("Conv", inputs, f"{layer.name}_pointwise", kernel_shape=[1, 1])
    return emit_activation(g, _in_nchw(g, x, build), layer.activation, f"layer '{layer.name}'")


def conv2d_transpose(g, layer, x):
    """ConvTranspose with TF's padding: the adjoint of a 'same'/'valid' convolution of the output size, so the
    pads are that convolution's (the smaller half first) and any remainder is output padding."""
    n, h, w, _ = layer.input_shape
    out = layer.compute_output_shape(layer.input_shape)[1:3]
    pads_begin, pads_end, extra = [], [], []
    for size, o, k, s, d in zip((h, w), out, layer.kernel_size, layer.strides, layer.dilation_rate):
        total = (size - 1) * s + (k - 1) * d + 1 - o
        begin = max(total, 0) // 2 if layer.padding == "same" else 0
        end = max(total, 0) - begin if layer.padding == "same" else 0
        pads_begin.append(begin)
        pads_end.append(end)
        extra.append(o - ((size - 1) * s + (k - 1) * d + 1 - begin - end))
    kernel = np.transpose(layer.kernel.numpy(), (3, 2, 0, 1))  # (kh, kw, out, in) -> (in, out, kh, kw)
    inputs = [g.const(f"{layer.name}_kernel", kernel.astype(np.float32))]
    if layer.use_bias:
        inputs.append(g.const(f"{layer.name}_bias", layer.bias.numpy()))

    def build(v):
        return g.op("ConvTranspose", [v, *inputs], layer.name, strides=list(layer.strides),
                    kernel_shape=list(layer.kernel_size), dilations=list(layer.dilation_rate),
                    pads=pads_begin + pads_end, output_padding=extra)
    return emit_activation(g, _in_nchw(g, x, build), layer.activation, f"layer '{layer.name}'")


# --- normalization --------------------------------------------------------------------------------------------------

def group_norm(g, layer, x):
    shape = layer.input_shape
    axis = layer.axis % len(shape)
    if axis != len(shape) - 1 or None in shape[1:]:
        raise ValueError(f"ONNX export: GroupNormalization '{layer.name}' is exported on the last axis of inputs "
                         f"with known sizes only (input shape {shape}, axis {layer.axis})")
    c, groups = shape[-1], layer.groups
    grouped = g.op("Reshape", [x, g.const("shape", np.array([0, -1, groups, c // groups], np.int64))], "grouped")
    mean = g.op("ReduceMean", [grouped], "mean", axes=[1, 3], keepdims=1)
    centered = g.op("Sub", [grouped, mean], "centered")
    var = g.op("ReduceMean", [g.op("Mul", [centered, centered], "sq")], "var", axes=[1, 3], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.const("eps", np.float32(layer.epsilon))], "var_eps")], "std")
    y = g.op("Div", [centered, std], "normalized")
    y = g.op("Reshape", [y, g.const("shape", np.array([0, *shape[1:]], np.int64))], "ungrouped")
    if layer.scale:
        y = g.op("Mul", [y, g.const(f"{layer.name}_gamma", layer.gamma.numpy())], "scaled")
    if layer.center:
        y = g.op("Add", [y, g.const(f"{layer.name}_beta", layer.beta.numpy())], layer.name)
    return y


def layer_norm(g, layer, x):
    """ONNX LayerNormalization normalizes from one axis to the last: Keras's trailing-axes case."""
    rank = len(layer.input_shape)
    axes = sorted(a % rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]))
    if axes != list(range(axes[0], rank)) or None in layer.input_shape[axes[0]:]:
        raise ValueError(f"ONNX export: LayerNormalization '{layer.name}' over axes {layer.axis} of inputs "
                         f"{layer.input_shape}: only trailing axes with known sizes are exported")
    shape = tuple(layer.input_shape[axes[0]:])
    gamma = np.broadcast_to(layer.gamma.numpy() if layer.scale else np.float32(1), shape).astype(np.float32)
    beta = np.broadcast_to(layer.beta.numpy() if layer.center else np.float32(0), shape).astype(np.float32)
    return g.op("LayerNormalization", [x, g.const(f"{layer.name}_gamma", gamma), g.const(f"{layer.name}_beta", beta)],
                layer.name, axis=axes[0], epsilon=float(layer.epsilon))


# --- merges ---------------------------------------------------------------------------------------------------------

def _same_rank(layer, xs_shapes):
    if len({len(s) for s in xs_shapes}) != 1:
        raise ValueError(f"ONNX export: '{layer.name}' merges inputs of different ranks {xs_shapes}; Keras's "
                         "broadcasting inserts axes after the batch axis, which ONNX's does not")


def merge(g, layer, xs):
    kind = type(layer).__name__
    _same_rank(layer, [t.shape for t in layer.input] if isinstance(layer.input, list) else [])
    if kind == "Concatenate":
        return g.op("Concat", xs, layer.name, axis=layer.axis)
    if kind == "Subtract":
        return g.op("Sub", xs, layer.name)
    if kind == "Multiply":
        y = xs[0]
        for other in xs[1:]:
            y = g.op("Mul", [y, other], layer.name)
        return y
    if kind == "Average":
        return g.op("Mul", [g.op("Sum", xs, f"{layer.name}_sum"), g.const("inv_n", np.float32(1.0 / len(xs)))],
                    layer.name)
    return g.op({"Add": "Sum", "Maximum": "Max", "Minimum": "Min"}[kind], xs, layer.name)


# --- shape and resampling layers ------------------------------------------------------------------------------------

def _resize(g, layer, x, out_hw, interpolation):
    if interpolation == "bilinear":
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    elif type(layer).__name__ == "UpSampling2D":  # nearest: each pixel repeated
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:  # tf.image.resize nearest with half-pixel centers
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"}

    def build(v):
        shape = g.op("Shape", [v], "shape")
        nc = g.op("Slice", [shape, g.const("start", np.array([0], np.int64)), g.const("end", np.array([2], np.int64))],
                  "nc")
        sizes = g.op("Concat", [nc, g.const("hw", np.array(out_hw, np.int64))], "sizes", axis=0)
        return g.op("Resize", [v, "", "", sizes], layer.name, **attrs)
    return _in_nchw(g, x, build)


def upsampling2d(g, layer, x):
    _, h, w, _ = layer.input_shape
    return _resize(g, layer, x, (h * layer.size[0], w * layer.size[1]), layer.interpolation)


def resizing(g, layer, x):
    if getattr(layer, "crop_to_aspect_ratio", False) or getattr(layer, "pad_to_aspect_ratio", False):
        raise ValueError(f"ONNX export: Resizing '{layer.name}' with crop/pad to aspect ratio has no converter")
    if layer.interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"ONNX export: Resizing '{layer.name}' interpolation {layer.interpolation!r}")
    return _resize(g, layer, x, (layer.height, layer.width), layer.interpolation)


def _slice(g, x, name, starts, ends, axes):
    return g.op("Slice", [x, g.const("starts", np.array(starts, np.int64)), g.const("ends", np.array(ends, np.int64)),
                          g.const("axes", np.array(axes, np.int64))], name)


def zero_padding2d(g, layer, x):
    (top, bottom), (left, right) = layer.padding
    pads = np.array([0, top, left, 0, 0, bottom, right, 0], np.int64)
    return g.op("Pad", [x, g.const("pads", pads)], layer.name, mode="constant")


def cropping2d(g, layer, x):
    (top, bottom), (left, right) = layer.cropping
    _, h, w, _ = layer.input_shape
    return _slice(g, x, layer.name, [top, left], [h - bottom, w - right], [1, 2])


def center_crop(g, layer, x):
    _, h, w, _ = layer.input_shape
    if h is None or w is None or h < layer.height or w < layer.width:
        raise ValueError(f"ONNX export: CenterCrop '{layer.name}' exports only a crop of a known, larger input "
                         f"(input {layer.input_shape}, target {(layer.height, layer.width)})")
    top, left = (h - layer.height) // 2, (w - layer.width) // 2
    return _slice(g, x, layer.name, [top, left], [top + layer.height, left + layer.width], [1, 2])


def reshape(g, layer, x):
    return g.op("Reshape", [x, g.const("shape", np.array([0, *layer.target_shape], np.int64))], layer.name)


def permute(g, layer, x):
    return g.op("Transpose", [x], layer.name, perm=[0, *layer.dims])


def repeat_vector(g, layer, x):
    y = g.op("Unsqueeze", [x, g.const("axes", np.array([1], np.int64))], f"{layer.name}_unsqueeze")
    return g.op("Expand", [y, g.const("shape", np.array([1, layer.n, 1], np.int64))], layer.name)


CONVERTERS = {
    "Conv2D": conv2d, "Conv1D": conv1d, "DepthwiseConv2D": depthwise_conv2d, "SeparableConv2D": separable_conv2d,
    "Conv2DTranspose": conv2d_transpose, "Activation": activation_layer, "ReLU": activation_layer,
    "Softmax": activation_layer, "LeakyReLU": activation_layer, "ELU": activation_layer, "PReLU": prelu,
    "GroupNormalization": group_norm, "LayerNormalization": layer_norm, "Add": merge, "Concatenate": merge,
    "Maximum": merge, "Minimum": merge,
    "Subtract": merge, "Multiply": merge, "Average": merge, "UpSampling2D": upsampling2d, "Resizing": resizing,
    "ZeroPadding2D": zero_padding2d, "Cropping2D": cropping2d, "CenterCrop": center_crop, "Reshape": reshape,
    "Permute": permute, "RepeatVector": repeat_vector,
}
IDENTITY_AT_INFERENCE = {"RandomBrightness"}

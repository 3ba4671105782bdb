"""Convolutions."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _rconv
from ._checks import IntOrPair, _pool_args, _f32, _pair, _padding

__all__ = ["conv2d", "conv2d_backward", "conv2d_relu_max_pool", "conv2d_relu_max_pool_backward",
           "depthwise_conv2d", "depthwise_conv2d_backward", "conv2d_transpose", "conv2d_transpose_backward"]


def _groups(groups, op: str) -> int:
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: `groups` must be a positive int, got {groups!r}")
    return int(groups)


def conv2d(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid", *,
           activation: Optional[str] = None, dilation_rate: IntOrPair = (1, 1), groups: int = 1) -> np.ndarray:
    """2-D convolution (cross-correlation, like Keras): x (n, h, w, cin), kernel (kh, kw, cin/groups, cout).
    ``activation='relu'`` fuses the ReLU into the kernel's store. Dilation and groups run a separate
    kernel (im2col per group), so the plain convolution keeps its own."""
    op = "conv2d"
    b = None if bias is None else _f32(bias, op, "bias")
    dilation, groups = _pair(dilation_rate, op, "dilation_rate"), _groups(groups, op)
    if dilation == (1, 1) and groups == 1:
        return _rconv.conv2d(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b,
                             _pair(strides, op, "strides"), _padding(padding, op), activation)
    if activation not in (None, "linear", "relu"):
        raise ValueError(f"{op}: only 'relu' can be fused, got activation {activation!r}")
    y = _rconv.conv2d_general(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b, _pair(strides, op, "strides"),
                              _padding(padding, op), dilation, groups)
    return np.maximum(y, 0, out=y) if activation == "relu" else y


def conv2d_backward(x, kernel, grad_y, strides: IntOrPair = (1, 1), padding: str = "valid", *,
                    relu_output=None, need_grad_x: bool = True, dilation_rate: IntOrPair = (1, 1), groups: int = 1):
    """Gradients of conv2d: returns (grad_x, grad_kernel, grad_bias).

    ``relu_output`` (the output of a fused ``activation='relu'`` forward) masks ``grad_y`` first;
    ``need_grad_x=False`` skips the input gradient (returned as None), as the first layer needs.
    """
    op = "conv2d_backward"
    y = None if relu_output is None else _f32(relu_output, op, "relu_output")
    dilation, groups = _pair(dilation_rate, op, "dilation_rate"), _groups(groups, op)
    g = _f32(grad_y, op, "grad_y")
    if dilation == (1, 1) and groups == 1:
        return _rconv.conv2d_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), g,
                                      _pair(strides, op, "strides"), _padding(padding, op), bool(need_grad_x), y)
    if y is not None:
        if y.shape != g.shape:
            raise ValueError(f"{op}: `relu_output` has shape {y.shape}, expected {g.shape}")
        g = np.where(y > 0, g, np.float32(0))
    return _rconv.conv2d_general_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), g,
                                          _pair(strides, op, "strides"), _padding(padding, op), dilation, groups,
                                          bool(need_grad_x))


def depthwise_conv2d(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid",
                     dilation_rate: IntOrPair = (1, 1)) -> np.ndarray:
    """Depthwise convolution: x (n, h, w, cin), kernel (kh, kw, cin, depth_multiplier) -> (n, oh, ow,
    cin * depth_multiplier), output channel c * depth_multiplier + m (TF's order)."""
    op = "depthwise_conv2d"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.depthwise_conv2d(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b, _pair(strides, op, "strides"),
                                   _padding(padding, op), _pair(dilation_rate, op, "dilation_rate"))


def depthwise_conv2d_backward(x, kernel, grad_y, strides: IntOrPair = (1, 1), padding: str = "valid",
                              dilation_rate: IntOrPair = (1, 1), *, need_grad_x: bool = True):
    """Gradients of depthwise_conv2d: (grad_x or None, grad_kernel, grad_bias)."""
    op = "depthwise_conv2d_backward"
    return _rconv.depthwise_conv2d_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                            _pair(strides, op, "strides"), _padding(padding, op),
                                            _pair(dilation_rate, op, "dilation_rate"), bool(need_grad_x))


def conv_output_length(length, kernel_size: int, stride: int, padding: str, dilation: int = 1):
    """TF/Keras output length of a (dilated) convolution along one axis (None stays None)."""
    if length is None:
        return None
    extent = (kernel_size - 1) * dilation + 1
    if padding == "same":
        return -(-length // stride)
    if padding == "causal":
        return length
    return (length - extent) // stride + 1


def deconv_output_length(length, kernel_size: int, stride: int, padding: str, output_padding=None,
                         dilation: int = 1):
    """Keras's output length of a transposed convolution along one axis (None stays None)."""
    if length is None:
        return None
    extent = (kernel_size - 1) * dilation + 1
    if padding == "valid":
        extra = max(extent, stride) - extent if output_padding is None else output_padding
        return (length - 1) * stride + extent + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + extent % 2 + output_padding


def conv2d_transpose(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid",
                     output_padding: Optional[IntOrPair] = None, dilation_rate: IntOrPair = (1, 1)) -> np.ndarray:
    """Transposed convolution (TF's conv2d_transpose): x (n, h, w, cin), kernel (kh, kw, filters, cin)
    -> (n, oh, ow, filters), (oh, ow) by Keras's rule (`deconv_output_length`)."""
    op = "conv2d_transpose"
    b = None if bias is None else _f32(bias, op, "bias")
    x, kernel = _f32(x, op, "x"), _f32(kernel, op, "kernel")
    strides, padding = _pair(strides, op, "strides"), _padding(padding, op)
    dilation = _pair(dilation_rate, op, "dilation_rate")
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"{op}: x must have rank 4 and kernel rank 4, got shapes {x.shape} and {kernel.shape}")
    pads = (None, None) if output_padding is None else _pair_or_zero(output_padding, op)
    for i, (p, s) in enumerate(zip(pads, strides)):
        if p is not None and p >= s:
            raise ValueError(f"{op}: output_padding must be smaller than strides, got output_padding "
                             f"{output_padding!r} and strides {strides} (axis {i})")
    size = tuple(deconv_output_length(x.shape[1 + i], kernel.shape[i], strides[i], padding, pads[i], dilation[i])
                 for i in range(2))
    return _rconv.conv2d_transpose(x, kernel, b, size, strides, padding, dilation)


def conv2d_transpose_backward(x, kernel, grad_y, strides: IntOrPair = (1, 1), padding: str = "valid",
                              dilation_rate: IntOrPair = (1, 1), *, need_grad_x: bool = True):
    """Gradients of conv2d_transpose (its output size read from grad_y): (grad_x or None, grad_kernel, grad_bias)."""
    op = "conv2d_transpose_backward"
    return _rconv.conv2d_transpose_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                            _pair(strides, op, "strides"), _padding(padding, op),
                                            _pair(dilation_rate, op, "dilation_rate"), bool(need_grad_x))


def _pair_or_zero(value, op: str):
    """output_padding: a non-negative int or pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in pair):
        raise ValueError(f"{op}: output_padding must be a non-negative int or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


def conv2d_relu_max_pool(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid",
                         pool_size: IntOrPair = (2, 2), pool_strides: Optional[IntOrPair] = None,
                         pool_padding: str = "valid", *, winners: bool = False):
    """``max_pool2d(relu(conv2d(x, kernel, bias)))`` in one kernel, without materialising the
    convolution's output. Returns ``(y, winners)``: with ``winners=True``, a uint32 array shaped like
    ``y`` holding, per image, the offset in the convolution output of the cell each maximum came from
    (``0xFFFFFFFF`` where the ReLU was inactive), which ``conv2d_relu_max_pool_backward`` needs;
    otherwise None."""
    op = "conv2d_relu_max_pool"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.conv2d_relu_max_pool(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b,
                                       _pair(strides, op, "strides"), _padding(padding, op),
                                       *_pool_args(op, pool_size, pool_strides, pool_padding), bool(winners))


def conv2d_relu_max_pool_backward(x, kernel, grad_y, winners, strides: IntOrPair = (1, 1), padding: str = "valid",
                                  pool_size: IntOrPair = (2, 2), pool_strides: Optional[IntOrPair] = None,
                                  pool_padding: str = "valid", *, need_grad_x: bool = True):
    """Gradients of ``conv2d_relu_max_pool`` from the pooled output's gradient and the forward's
    ``winners``: returns (grad_x or None, grad_kernel, grad_bias)."""
    op = "conv2d_relu_max_pool_backward"
    if isinstance(winners, np.ndarray):
        winners = np.ascontiguousarray(winners)
    return _rconv.conv2d_relu_max_pool_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"),
                                                _f32(grad_y, op, "grad_y"), winners,
                                                _pair(strides, op, "strides"), _padding(padding, op),
                                                *_pool_args(op, pool_size, pool_strides, pool_padding),
                                                bool(need_grad_x))

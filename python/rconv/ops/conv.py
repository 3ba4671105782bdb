"""Convolutions."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _rconv
from ._checks import IntOrPair, _pool_args, _f32, _pair, _padding

__all__ = ["conv2d", "conv2d_backward", "conv2d_relu_max_pool", "conv2d_relu_max_pool_backward"]


def conv2d(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid", *,
           activation: Optional[str] = None) -> np.ndarray:
    """2-D convolution (cross-correlation, like Keras): x (n, h, w, cin), kernel (kh, kw, cin, cout).
    ``activation='relu'`` fuses the ReLU into the kernel's store."""
    op = "conv2d"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.conv2d(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b,
                         _pair(strides, op, "strides"), _padding(padding, op), activation)


def conv2d_backward(x, kernel, grad_y, strides: IntOrPair = (1, 1), padding: str = "valid", *,
                    relu_output=None, need_grad_x: bool = True):
    """Gradients of conv2d: returns (grad_x, grad_kernel, grad_bias).

    ``relu_output`` (the output of a fused ``activation='relu'`` forward) masks ``grad_y`` first;
    ``need_grad_x=False`` skips the input gradient (returned as None), as the first layer needs.
    """
    op = "conv2d_backward"
    y = None if relu_output is None else _f32(relu_output, op, "relu_output")
    return _rconv.conv2d_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                  _pair(strides, op, "strides"), _padding(padding, op), bool(need_grad_x), y)


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

"""Dense (matrix) layers."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _rconv
from ._checks import _f32

__all__ = ["dense", "dense_backward"]


def dense(x, kernel, bias=None, *, activation: Optional[str] = None) -> np.ndarray:
    """x (n, in) @ kernel (in, out) + bias (out,); ``activation='relu'`` fuses the ReLU."""
    op = "dense"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.dense(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b, activation)


def dense_backward(x, kernel, grad_y, *, relu_output=None, need_grad_x: bool = True):
    """Gradients of dense: returns (grad_x, grad_kernel, grad_bias); keywords as in conv2d_backward."""
    op = "dense_backward"
    y = None if relu_output is None else _f32(relu_output, op, "relu_output")
    return _rconv.dense_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                 bool(need_grad_x), y)

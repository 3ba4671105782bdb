"""Pooling."""
from __future__ import annotations

from typing import Optional


from .. import _rconv
from ._checks import IntOrPair, _pool_args, _f32

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def max_pool2d(x, pool_size: IntOrPair, strides: Optional[IntOrPair] = None, padding: str = "valid"):
    op = "max_pool2d"
    return _rconv.pool2d(_f32(x, op, "x"), "max", *_pool_args(op, pool_size, strides, padding))


def max_pool2d_backward(x, grad_y, pool_size: IntOrPair, strides: Optional[IntOrPair] = None,
                        padding: str = "valid", *, y=None):
    """Gradient of max pooling; passing the forward's output ``y`` saves recomputing the maxima."""
    op = "max_pool2d_backward"
    return _rconv.pool2d_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "max",
                                  *_pool_args(op, pool_size, strides, padding),
                                  None if y is None else _f32(y, op, "y"))


def avg_pool2d(x, pool_size: IntOrPair, strides: Optional[IntOrPair] = None, padding: str = "valid"):
    """Average pooling; with 'same' padding it divides by the number of real (unpadded) elements, like TF."""
    op = "avg_pool2d"
    return _rconv.pool2d(_f32(x, op, "x"), "avg", *_pool_args(op, pool_size, strides, padding))


def avg_pool2d_backward(x, grad_y, pool_size: IntOrPair, strides: Optional[IntOrPair] = None,
                        padding: str = "valid"):
    op = "avg_pool2d_backward"
    return _rconv.pool2d_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "avg",
                                  *_pool_args(op, pool_size, strides, padding))

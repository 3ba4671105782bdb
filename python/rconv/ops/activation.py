"""Activations (any shape; softmax over the last axis)."""
from __future__ import annotations


import numpy as np

from .. import _rconv
from ._checks import _f32

__all__ = ["relu", "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward"]


def relu(x) -> np.ndarray:
    return _rconv.activation(_f32(x, "relu", "x"), "relu")


def relu_backward(x, grad_y) -> np.ndarray:
    """grad_y where x > 0, else 0 (x is the ReLU's input)."""
    op = "relu_backward"
    return _rconv.activation_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "relu")


def sigmoid(x) -> np.ndarray:
    return _rconv.activation(_f32(x, "sigmoid", "x"), "sigmoid")


def sigmoid_backward(y, grad_y) -> np.ndarray:
    """grad_y * y * (1 - y), where y is the sigmoid's output."""
    op = "sigmoid_backward"
    return _rconv.activation_backward(_f32(y, op, "y"), _f32(grad_y, op, "grad_y"), "sigmoid")


def softmax(z) -> np.ndarray:
    return _rconv.activation(_f32(z, "softmax", "z"), "softmax")


def softmax_backward(y, grad_y) -> np.ndarray:
    """Vector-Jacobian product of softmax over the last axis, where y is the softmax's output."""
    op = "softmax_backward"
    return _rconv.activation_backward(_f32(y, op, "y"), _f32(grad_y, op, "grad_y"), "softmax")

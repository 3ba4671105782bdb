"""Activations (any shape; softmax and log_softmax over one axis, the last by default) and PReLU.

`relu`, `sigmoid` and `softmax` (the `keras.ops` names) are recorded by a recording `GradientTape`.
`activate(x, kind, params, axis)` runs any of the Rust kernel's activations with Keras 3's formulas;
`activate_backward(saved, grad_y, kind, params, axis)` is its gradient, where `saved` is the input or
the output as `activation_saves_input(kind)` says (the one each derivative is cheapest to write in).
Parameters, in Keras's argument order: relu ``(negative_slope, max_value, threshold)`` (max_value None
allowed), leaky_relu ``(negative_slope,)``, elu ``(alpha,)``, gelu ``(approximate,)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import _rconv
from ..autograd.tape import connected, record_unary
from ._checks import _f32

__all__ = ["relu", "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward",
           "activate", "activate_backward", "activation_saves_input", "prelu", "prelu_backward"]


def relu(x) -> np.ndarray:
    y = _rconv.activation(_f32(x, "relu", "x"), "relu")
    return record_unary(x, y, lambda g: relu_backward(y, g), "relu") if connected(x) else y


def relu_backward(x, grad_y) -> np.ndarray:
    """grad_y where x > 0, else 0 (x is the ReLU's input)."""
    op = "relu_backward"
    return _rconv.activation_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "relu")


def sigmoid(x) -> np.ndarray:
    y = _rconv.activation(_f32(x, "sigmoid", "x"), "sigmoid")
    return record_unary(x, y, lambda g: sigmoid_backward(y, g), "sigmoid") if connected(x) else y


def sigmoid_backward(y, grad_y) -> np.ndarray:
    """grad_y * y * (1 - y), where y is the sigmoid's output."""
    op = "sigmoid_backward"
    return _rconv.activation_backward(_f32(y, op, "y"), _f32(grad_y, op, "grad_y"), "sigmoid")


def softmax(z, axis: int = -1) -> np.ndarray:
    y = activate(z, "softmax", axis=axis)
    return record_unary(z, y, lambda g: softmax_backward(y, g, axis=axis), "softmax") if connected(z) else y


def softmax_backward(y, grad_y, axis: int = -1) -> np.ndarray:
    """Vector-Jacobian product of softmax over `axis`, where y is the softmax's output."""
    return activate_backward(y, grad_y, "softmax", axis=axis)


def _params(kind: str, params: Sequence) -> list:
    """Parameters as floats for the kernel (None, only meaningful as relu's max_value, becomes NaN)."""
    out = []
    for p in params:
        if p is None:
            out.append(float("nan"))
            continue
        if isinstance(p, (bool, np.bool_)):
            out.append(float(p))
            continue
        try:
            value = float(p)
        except (TypeError, ValueError):
            raise TypeError(f"{kind}: parameters must be numbers, got {params!r}") from None
        if np.isnan(value):
            raise ValueError(f"{kind}: parameters must not be NaN, got {params!r}")
        out.append(value)
    return out


def _axis(kind: str, axis) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{kind}: `axis` must be an int, got {axis!r}")
    return int(axis)


def activate(x, kind: str, params: Sequence = (), axis: int = -1) -> np.ndarray:
    """Activation `kind` (Keras's name) of `x`, with `params` (see the module docstring)."""
    return _rconv.activation_with(_f32(x, kind, "x"), kind, _params(kind, params), _axis(kind, axis))


def activate_backward(saved, grad_y, kind: str, params: Sequence = (), axis: int = -1) -> np.ndarray:
    """Gradient of `activate` with respect to its input; `saved` is the input or the output
    (`activation_saves_input(kind)`)."""
    op = f"{kind}_backward"
    return _rconv.activation_with_backward(_f32(saved, op, "saved"), _f32(grad_y, op, "grad_y"), kind,
                                           _params(kind, params), _axis(kind, axis))


def activation_saves_input(kind: str, params: Sequence = ()) -> bool:
    """Whether `activate_backward` of `kind` (with `params`) wants the input (True) or the output (False)."""
    return _rconv.activation_saves_input(kind, _params(kind, params))


def prelu(x, alpha) -> np.ndarray:
    """`x > 0 ? x : alpha * x`; alpha has x's sample shape (``x.shape[1:]``) with 1 on shared axes."""
    return _rconv.prelu(_f32(x, "prelu", "x"), _f32(alpha, "prelu", "alpha"))


def prelu_backward(x, alpha, grad_y) -> tuple:
    """(input gradient, alpha gradient: summed over the batch and alpha's shared axes)."""
    op = "prelu_backward"
    return _rconv.prelu_backward(_f32(x, op, "x"), _f32(alpha, op, "alpha"), _f32(grad_y, op, "grad_y"))

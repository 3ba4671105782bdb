"""Optimizer updates: in place, Keras 3 formulas."""
from __future__ import annotations



from .. import _rconv
from ._checks import _f32, _float

__all__ = ["sgd_update", "rmsprop_update", "adam_update"]


def sgd_update(param, grad, momentum_buf, learning_rate: float, momentum: float = 0.0,
               nesterov: bool = False) -> None:
    """Keras SGD. momentum_buf (same shape as param) is needed when momentum > 0, else may be None."""
    op = "sgd_update"
    _rconv.sgd_update(param, _f32(grad, op, "grad"), momentum_buf,
                      _float(learning_rate, op, "learning_rate"), _float(momentum, op, "momentum"), bool(nesterov))


def rmsprop_update(param, grad, velocity, learning_rate: float, rho: float = 0.9,
                   epsilon: float = 1e-7) -> None:
    """Keras RMSprop: v = rho v + (1-rho) g^2; param -= lr g / sqrt(v + eps)."""
    op = "rmsprop_update"
    _rconv.rmsprop_update(param, _f32(grad, op, "grad"), velocity, _float(learning_rate, op, "learning_rate"),
                          _float(rho, op, "rho"), _float(epsilon, op, "epsilon"))


def adam_update(param, grad, m, v, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, step: int = 1) -> None:
    """Keras Adam; step is the 1-based iteration count used for bias correction."""
    if int(step) < 1:
        raise ValueError(f"adam_update: step is the 1-based iteration count, got {step}")
    op = "adam_update"
    _rconv.adam_update(param, _f32(grad, op, "grad"), m, v, _float(learning_rate, op, "learning_rate"),
                       _float(beta_1, op, "beta_1"), _float(beta_2, op, "beta_2"), _float(epsilon, op, "epsilon"),
                       int(step))

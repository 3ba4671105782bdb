"""Optimizer updates: in place on float32 C-contiguous buffers, Keras 3 formulas (see src/ops/optim.rs).

`param` and the state buffers are updated in place and must be float32 C-contiguous arrays of one shape;
`grad` is converted to float32 if needed. Steps are 1-based (the update being applied)."""
from __future__ import annotations

import numpy as np

from .. import _rconv
from ._checks import _f32, _float

__all__ = ["sgd_update", "rmsprop_update", "adam_update", "adadelta_update", "adagrad_update", "adamax_update",
           "nadam_update", "lion_update", "weight_decay_update", "ema_update", "sum_squares"]


def _step(step, op: str) -> int:
    if int(step) < 1:
        raise ValueError(f"{op}: step is the 1-based iteration count, got {step}")
    return int(step)


def _floats(op: str, **values) -> list:
    return [_float(v, op, k) for k, v in values.items()]


def sgd_update(param, grad, momentum_buf, learning_rate: float, momentum: float = 0.0,
               nesterov: bool = False) -> None:
    """Keras SGD. momentum_buf (same shape as param) is needed when momentum > 0, else may be None."""
    op = "sgd_update"
    _rconv.sgd_update(param, _f32(grad, op, "grad"), momentum_buf,
                      _float(learning_rate, op, "learning_rate"), _float(momentum, op, "momentum"), bool(nesterov))


def rmsprop_update(param, grad, velocity, learning_rate: float, rho: float = 0.9, epsilon: float = 1e-7,
                   momentum_buf=None, momentum: float = 0.0, average_grad=None) -> None:
    """Keras RMSprop: v = rho v + (1-rho) g^2; centered (average_grad given): a = rho a + (1-rho) g and
    denominator v - a^2 + eps, else v + eps; inc = lr g / sqrt(denominator); with momentum_buf
    m = momentum m + inc, param -= m; else param -= inc."""
    op = "rmsprop_update"
    if momentum_buf is None and float(momentum) != 0.0:
        raise ValueError(f"{op}: momentum {momentum} needs a momentum_buf")
    _rconv.rmsprop_update(param, _f32(grad, op, "grad"), velocity,
                          *_floats(op, learning_rate=learning_rate, rho=rho, epsilon=epsilon),
                          momentum_buf, _float(momentum, op, "momentum"), average_grad)


def adam_update(param, grad, m, v, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, step: int = 1, v_hat=None) -> None:
    """Keras Adam; with v_hat (AMSGrad) v_hat = max(v_hat, v) is used in place of v."""
    op = "adam_update"
    _rconv.adam_update(param, _f32(grad, op, "grad"), m, v,
                       *_floats(op, learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon),
                       _step(step, op), v_hat)


def adadelta_update(param, grad, accumulated_grad, accumulated_delta, learning_rate: float, rho: float = 0.95,
                    epsilon: float = 1e-7) -> None:
    """Keras Adadelta: a = rho a + (1-rho) g^2; delta = -sqrt(d + eps) g / sqrt(a + eps);
    d = rho d + (1-rho) delta^2; param += lr delta."""
    op = "adadelta_update"
    _rconv.adadelta_update(param, _f32(grad, op, "grad"), accumulated_grad, accumulated_delta,
                           *_floats(op, learning_rate=learning_rate, rho=rho, epsilon=epsilon))


def adagrad_update(param, grad, accumulator, learning_rate: float, epsilon: float = 1e-7) -> None:
    """Keras Adagrad: a += g^2; param -= lr g / sqrt(a + eps)."""
    op = "adagrad_update"
    _rconv.adagrad_update(param, _f32(grad, op, "grad"), accumulator,
                          *_floats(op, learning_rate=learning_rate, epsilon=epsilon))


def adamax_update(param, grad, m, u, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                  epsilon: float = 1e-7, step: int = 1) -> None:
    """Keras Adamax: m += (g-m)(1-b1); u = max(b2 u, |g|); param -= lr m / ((1-b1^t)(u + eps))."""
    op = "adamax_update"
    _rconv.adamax_update(param, _f32(grad, op, "grad"), m, u,
                         *_floats(op, learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon),
                         _step(step, op))


def nadam_update(param, grad, m, v, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, step: int = 1, u_product: float | None = None) -> None:
    """Keras Nadam at 1-based `step`; `u_product` is the product of b1 (1 - 0.5 * 0.96^k) over k = 1..step
    (this step included), as the optimizer keeps it (default: computed here)."""
    op = "nadam_update"
    step = _step(step, op)
    if u_product is None:
        u_product = nadam_u_product(beta_1, step)
    _rconv.nadam_update(param, _f32(grad, op, "grad"), m, v,
                        *_floats(op, learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon),
                        step, _float(u_product, op, "u_product"))


def nadam_u_product(beta_1: float, step: int, start: float = 1.0, start_step: int = 0) -> float:
    """Nadam's running product u_1 ... u_step with u_k = b1 (1 - 0.5 * 0.96^k), accumulated in float32 as
    Keras does (from `start` = the product up to `start_step`)."""
    f32 = np.float32
    product, b1 = f32(start), f32(beta_1)
    for k in range(start_step + 1, step + 1):
        product = f32(f32(product * b1) * f32(f32(1.0) - f32(0.5) * np.power(f32(0.96), f32(k))))
    return float(product)


def lion_update(param, grad, m, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.99) -> None:
    """Keras Lion: param -= lr sign(b1 m + (1-b1) g); m = b2 m + (1-b2) g."""
    op = "lion_update"
    _rconv.lion_update(param, _f32(grad, op, "grad"), m,
                       *_floats(op, learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2))


def weight_decay_update(param, weight_decay: float, learning_rate: float) -> None:
    """Keras's decoupled weight decay, applied before the update: param -= param * wd * lr."""
    op = "weight_decay_update"
    _rconv.weight_decay_update(param, *_floats(op, weight_decay=weight_decay, learning_rate=learning_rate))


def ema_update(average, value, momentum: float) -> None:
    """average = momentum * average + (1 - momentum) * value (Keras's `use_ema`)."""
    op = "ema_update"
    _rconv.ema_update(average, _f32(value, op, "value"), _float(momentum, op, "momentum"))


def sum_squares(x) -> float:
    """Sum of squares of a float array, accumulated in float64."""
    return _rconv.sum_squares(_f32(x, "sum_squares", "x"))

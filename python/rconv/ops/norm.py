"""Normalization (the channels / features on the last axis; any rank)."""
from __future__ import annotations



from .. import _rconv
from ._checks import _f32, _float

__all__ = ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"]




def _opt_f32(v, op: str, name: str):
    return None if v is None else _f32(v, op, name)


def batch_norm(x, gamma=None, beta=None, mean=None, variance=None, epsilon: float = 1e-3):
    """Batch normalization over the last axis: returns (y, mean, variance). Without ``mean``/``variance``
    the batch's own per-channel statistics (biased variance, like Keras) are used and returned."""
    op = "batch_norm"
    return _rconv.batch_norm(_f32(x, op, "x"), _opt_f32(gamma, op, "gamma"), _opt_f32(beta, op, "beta"),
                             _opt_f32(mean, op, "mean"), _opt_f32(variance, op, "variance"),
                             _float(epsilon, op, "epsilon"))


def batch_norm_backward(x, grad_y, gamma, mean, variance, epsilon: float = 1e-3, *, batch_stats: bool = True,
                        need_grad_x: bool = True):
    """Gradients of batch_norm: (grad_x, grad_gamma, grad_beta). ``batch_stats``: the statistics were the
    batch's (training; the gradient flows through them) rather than constants (inference)."""
    op = "batch_norm_backward"
    return _rconv.batch_norm_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), _opt_f32(gamma, op, "gamma"),
                                      _f32(mean, op, "mean"), _f32(variance, op, "variance"),
                                      _float(epsilon, op, "epsilon"), bool(batch_stats), bool(need_grad_x))


def layer_norm(x, gamma=None, beta=None, epsilon: float = 1e-3):
    """Layer normalization over the last axis: returns (y, mean, inv_std), one mean and 1/std per row
    (all axes but the last, flattened) for layer_norm_backward."""
    op = "layer_norm"
    return _rconv.layer_norm(_f32(x, op, "x"), _opt_f32(gamma, op, "gamma"), _opt_f32(beta, op, "beta"),
                             _float(epsilon, op, "epsilon"))


def layer_norm_backward(x, grad_y, gamma, mean, inv_std, *, need_grad_x: bool = True):
    """Gradients of layer_norm: (grad_x, grad_gamma, grad_beta)."""
    op = "layer_norm_backward"
    return _rconv.layer_norm_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), _opt_f32(gamma, op, "gamma"),
                                      _f32(mean, op, "mean"), _f32(inv_std, op, "inv_std"), bool(need_grad_x))

"""Normalization (the channels / features on the last axis; any rank)."""
from __future__ import annotations



from .. import _rconv
from ._checks import _f32, _float, _int

__all__ = ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward", "group_norm",
           "group_norm_backward"]




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


def _groups(groups, op: str) -> int:
    g = _int(groups, op, "groups", groups)
    if g < 1:
        raise ValueError(f"{op}: `groups` must be a positive int, got {groups!r}")
    return g


def group_norm(x, gamma=None, beta=None, *, groups: int, epsilon: float = 1e-3):
    """Group normalization of ``x`` (samples, ..., channels): the channels are cut into ``groups`` equal
    consecutive groups and each (sample, group) is normalized by its mean and biased variance over all
    positions and the group's channels; then ``gamma * x_hat + beta`` per channel. Returns (y, mean, inv_std),
    the last two of shape (samples, groups) for group_norm_backward."""
    op = "group_norm"
    return _rconv.group_norm(_f32(x, op, "x"), _opt_f32(gamma, op, "gamma"), _opt_f32(beta, op, "beta"),
                             _groups(groups, op), _float(epsilon, op, "epsilon"))


def group_norm_backward(x, grad_y, gamma, mean, inv_std, *, groups: int, need_grad_x: bool = True):
    """Gradients of group_norm: (grad_x, grad_gamma, grad_beta)."""
    op = "group_norm_backward"
    return _rconv.group_norm_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), _opt_f32(gamma, op, "gamma"),
                                      _f32(mean, op, "mean"), _f32(inv_std, op, "inv_std"), _groups(groups, op),
                                      bool(need_grad_x))

"""The `Loss` base: Keras 3's reductions and sample weights over the Rust `ops.row_loss` kernel.

A loss computes per-sample values over some axes of the prediction (the last one for most losses) and
reduces them like Keras 3's `reduce_weighted_values`: the values are multiplied by the sample weights
(brought to the same rank by `squeeze_or_expand_to_same_rank`, then broadcast), and

* "sum_over_batch_size" / "mean": sum / number of weighted values (not the sum of the weights),
* "sum": the sum,
* "mean_with_sample_weight": sum / sum of the sample weights,
* None / "none": the weighted per-sample values themselves.

`value_and_grad(y_true, y_pred, sample_weight)` returns the reduced value and its gradient with respect
to `y_pred` (for reduction None: the gradient of the values' sum). The kernel takes one coefficient per
per-sample value (weight times the reduction's scale), so the gradient of any reduction is one pass.
"""
from __future__ import annotations

import re

import numpy as np

from .. import autograd, ops

REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def standardize_reduction(reduction):
    if reduction == "auto":  # Keras 2 spelling of the default
        return "sum_over_batch_size"
    if reduction not in REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {set(REDUCTIONS)}. "
                         f"Received: reduction={reduction!r}")
    return reduction


def squeeze_or_expand_shapes(s1: tuple, s2: tuple, expand_rank_1: bool = True):
    """Keras's `squeeze_or_expand_to_same_rank` on shapes: drop or add a trailing 1 when ranks differ by one."""
    r1, r2 = len(s1), len(s2)
    if r1 == r2 + 1 and s1[-1] == 1:
        if r2 == 1 and expand_rank_1:
            s2 = s2 + (1,)
        else:
            s1 = s1[:-1]
    if r2 == r1 + 1 and s2[-1] == 1:
        if r1 == 1 and expand_rank_1:
            s1 = s1 + (1,)
        else:
            s2 = s2[:-1]
    return s1, s2


def _unbroadcast(w: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `w` (of a shape `shape` broadcasts to) back to `shape`."""
    extra = w.ndim - len(shape)
    w = w.sum(axis=tuple(range(extra))) if extra > 0 else w
    axes = tuple(i for i, (a, b) in enumerate(zip(shape, w.shape)) if a == 1 and b != 1)
    return w.sum(axis=axes, keepdims=True) if axes else w


class Loss:
    """Base class. Subclasses set `kind` (an `ops.ROW_LOSSES` key) and `_params()`, or override `_rows`."""

    fuses_with = None  # activation name whose logits `fused_value_and_grad` accepts
    kind: str = ""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self.dtype = dtype

    # --- what subclasses define -----------------------------------------------------------------------
    def _params(self) -> dict:
        return {}

    def _axes(self, ndim: int) -> tuple:
        """The axes the loss reduces to give its per-sample values."""
        return (ndim - 1,) if ndim else ()

    def _rows(self, y, pred, coef, logits=False):
        """(Σ coef·L, L, dΣ/dpred) with L over `_axes`; `coef` is shaped like L (or a scalar)."""
        params = self._params()
        if logits:
            params["from_logits"] = True
        axes = self._axes(pred.ndim)
        if not axes:  # a rank-0 prediction: one value
            total, values, grad = ops.row_loss(self.kind, pred.reshape(1), y.reshape(1), coef, params)
            return total, values.reshape(()), grad.reshape(())
        if axes == (pred.ndim - 1,):  # the common case: rows are already the last axis
            return ops.row_loss(self.kind, pred, y, coef, params)
        kept = [a for a in range(pred.ndim) if a not in axes]
        perm = kept + list(axes)
        kept_shape = tuple(pred.shape[a] for a in kept)
        moved = pred.transpose(perm)
        flat = moved.reshape(kept_shape + (-1,))
        labels = y if y.dtype.kind in "iu" and y.ndim == pred.ndim - 1 else y.transpose(perm).reshape(flat.shape)
        total, values, grad = ops.row_loss(self.kind, np.ascontiguousarray(flat), np.ascontiguousarray(labels),
                                           coef, params)
        return total, values, np.ascontiguousarray(grad.reshape(moved.shape).transpose(np.argsort(perm)))

    def _mask(self, y, values_shape):
        """A boolean mask of the per-sample values to leave out (Keras's loss mask), or None."""
        return None

    # --- the public interface -----------------------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None):
        """The reduced loss (a float; per-sample values for reduction None), like Keras's `Loss.__call__`."""
        if autograd.connected(y_pred):  # a GradientTape differentiates through this loss: record it
            if self.reduction in (None, "none"):
                raise NotImplementedError(f"{type(self).__name__}: under a GradientTape use a reducing loss "
                                          "(reduction='sum_over_batch_size' or 'sum'), not reduction=None")
            y, pred = self._align(y_true, np.asarray(y_pred, np.float32))
            value, grad = self._compute(y, pred, sample_weight)
            return autograd.record_value(value, np.reshape(grad, np.shape(y_pred)), y_pred)
        y, y_pred = self._align(y_true, np.asarray(y_pred, np.float32))
        value, _ = self._compute(y, y_pred, sample_weight, grad=False)
        return value

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """(reduced value, d value / d y_pred); targets as given by `prepare_targets`."""
        return self._compute(y_true, np.asarray(y_pred, np.float32), sample_weight)

    def fused_value_and_grad(self, y_true, logits, sample_weight=None):
        """The loss of `activation(logits)` with the gradient with respect to the logits."""
        if self.fuses_with is None:
            raise NotImplementedError(f"{type(self).__name__} does not fuse with an activation")
        return self._compute(y_true, np.asarray(logits, np.float32), sample_weight, logits=True)

    def _compute(self, y, pred, sample_weight, grad=True, logits=False):
        values_shape = tuple(pred.shape[a] for a in range(pred.ndim) if a not in self._axes(pred.ndim))
        coef, weights, divisor = self._coefficients(values_shape, sample_weight, self._mask(y, values_shape))
        total, values, g = self._rows(y, pred, coef / divisor if divisor else coef * 0.0, logits)
        if self.reduction in (None, "none"):
            if weights is None:
                return values, g
            vshape, sw = weights
            return np.asarray(values.reshape(vshape) * sw, np.float32), g
        return (float(total) if divisor else 0.0), g

    def _coefficients(self, values_shape, sample_weight, mask):
        """(per-value coefficients before the divisor, (values' shape, weights) aligned as Keras or None,
        the reduction's divisor)."""
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if mask is not None:  # Keras's apply_mask: mean reductions scale the valid entries by total / valid
            if self.reduction in ("mean", "sum_over_batch_size"):
                valid = mask.sum()
                fmask = np.where(mask, mask.size / valid if valid else 0.0, 0.0)
            else:
                fmask = mask.astype(np.float64)
            if sw is None:
                sw = fmask
            else:
                fs, ss = squeeze_or_expand_shapes(fmask.shape, sw.shape)
                sw = sw.reshape(ss) * fmask.reshape(fs)
        if sw is None:
            out_shape, coef, weights = values_shape, np.float64(1.0), None
        else:
            vshape, wshape = squeeze_or_expand_shapes(values_shape, sw.shape)
            sw = sw.reshape(wshape)
            try:
                out_shape = np.broadcast_shapes(vshape, wshape)
            except ValueError:
                raise ValueError(f"Loss '{self.name}': sample_weight of shape {np.shape(sample_weight)} does not "
                                 f"broadcast to the per-sample losses of shape {values_shape}") from None
            weights = (vshape, sw)
            coef = _unbroadcast(np.broadcast_to(sw, out_shape), vshape).reshape(values_shape)
        size = int(np.prod(out_shape))
        if out_shape == ():  # Keras leaves a scalar (weighted) loss unreduced
            divisor = 1.0
        elif self.reduction in ("sum_over_batch_size", "mean"):
            divisor = float(size)
        elif self.reduction == "mean_with_sample_weight":
            divisor = float(sw.sum()) if sw is not None else float(size)
        else:
            divisor = 1.0
        return np.asarray(coef, np.float64), weights, divisor

    # --- targets ----------------------------------------------------------------------------------------
    def _align(self, y_true, y_pred):
        """(targets, predictions) for `__call__`, aligned like Keras: a trailing 1 squeezed or added to
        either (`squeeze_or_expand_to_same_rank`), then the targets broadcast to the predictions."""
        y = np.asarray(y_true)
        y = y.astype(np.float32) if y.dtype.kind not in "f" else y
        ys, ps = squeeze_or_expand_shapes(y.shape, y_pred.shape)
        y_pred = y_pred.reshape(ps)
        try:
            return np.ascontiguousarray(np.broadcast_to(y.reshape(ys), ps), np.float32), y_pred
        except ValueError:
            raise ValueError(f"Loss '{self.name}': targets of shape {y.shape} do not match predictions of "
                             f"shape {y_pred.shape}") from None

    def prepare_targets(self, y_true, pred_shape, where: str = "") -> np.ndarray:
        """Validate targets against the model's output shape and convert them once (float32)."""
        y = np.asarray(y_true)
        pred_shape = tuple(pred_shape)
        if y.shape[1:] != pred_shape[1:]:
            if y.ndim == len(pred_shape) - 1 and y.shape[1:] == pred_shape[1:-1] and pred_shape[-1] == 1:
                y = y.reshape(y.shape + (1,))  # (n,) targets for a 1-unit output
            else:
                raise ValueError(f"{where}Loss '{self.name}' expects targets of shape "
                                 f"{(None,) + pred_shape[1:]} to match the model output, "
                                 f"but received targets of shape {y.shape}")
        return np.ascontiguousarray(y, dtype=np.float32)

    # --- config -------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


def snake_case(name: str) -> str:
    """Keras's `to_snake_case`: 'MeanIoU' -> 'mean_io_u', 'KLDivergence' -> 'kl_divergence'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()

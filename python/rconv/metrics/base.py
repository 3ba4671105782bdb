"""Metric base classes: stateful running values like Keras 3's `Metric`, `Mean`, `Sum`, `MeanMetricWrapper`.

State is NumPy (float64 accumulators); metrics are bookkeeping, not kernels. `sample_weight` of any rank
that broadcasts follows Keras's `reduce_to_samplewise_values`: values and weights are brought to the same
rank (a trailing 1 squeezed or added), values are averaged (or summed) over the axes the weights do not
have, weighted, and each sample's weight counts once.
"""
from __future__ import annotations

import numpy as np

from ..losses.loss import snake_case, squeeze_or_expand_shapes


def align(x, y, expand_rank_1=True):
    """Keras's `squeeze_or_expand_to_same_rank` on two arrays."""
    x, y = np.asarray(x), np.asarray(y)
    xs, ys = squeeze_or_expand_shapes(x.shape, y.shape, expand_rank_1)
    return x.reshape(xs), y.reshape(ys)


def reduce_to_samplewise_values(values, sample_weight, reduce_fn):
    """(per-sample values, per-sample weights or None), as Keras 3's reduction metrics compute them."""
    values = np.asarray(values, np.float64)
    if sample_weight is not None:
        values, sample_weight = align(values, np.asarray(sample_weight, np.float64))
        w_ndim = sample_weight.ndim
        if values.ndim > w_ndim:
            values = reduce_fn(values, axis=tuple(range(w_ndim, values.ndim)))
        try:
            sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sample_weight.shape} does not broadcast to the metric's "
                             f"values of shape {values.shape}") from None
        values = values * sample_weight
        if w_ndim > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, w_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Metric:
    """Base class: `update_state(...)`, `result()`, `reset_state()`, `get_config()`; calling a metric
    updates it and returns the result, as in Keras."""
    _direction = None  # "up" / "down": which way is better (Keras's attribute; callbacks' "auto" mode reads it)

    def __init__(self, name=None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.dtype = "float32" if dtype is None else str(dtype)
        self.reset_state()

    def reset_state(self):
        # A running mean for subclasses that only define update_state (rconv's earlier base class did this).
        self._total = 0.0
        self._count = 0.0

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        return self._total / self._count if self._count else 0.0

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _divide_no_nan(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros(np.broadcast_shapes(a.shape, b.shape)), where=b != 0)


def _scalar(x):
    """Python float for a 0-d (or one-element thresholds) result; arrays stay arrays."""
    x = np.asarray(x, np.float64)
    return float(x) if x.ndim == 0 else x.astype(np.float32)


class Sum(Metric):
    """Weighted sum of the values passed to `update_state(values, sample_weight)`."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name, dtype)

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values, _ = reduce_to_samplewise_values(values, sample_weight, np.sum)
        self.total += float(np.sum(values))

    def result(self):
        return self.total


class Mean(Metric):
    """Weighted mean of the values passed to `update_state(values, sample_weight)`; a scalar weight
    counts a batch mean as `weight` samples."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name, dtype)

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, np.mean)
        self.total += float(np.sum(values))
        if sample_weight is not None:
            self.count += float(np.sum(sample_weight))
        else:
            self.count += values.shape[0] if values.ndim >= 1 else 1

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """Running mean of a per-sample function `fn(y_true, y_pred, **kwargs)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", None), dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):  # the function is not serialized: classes built on it name themselves
        return {"name": self.name, "dtype": self.dtype}

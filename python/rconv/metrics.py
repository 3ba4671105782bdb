"""Metrics: stateful running means, like Keras (sample-weighted over every batch seen).

'accuracy'/'acc' resolve like Keras 3 (`compile_utils.get_metric`): binary for a 1-unit output,
sparse-categorical when targets are class ids, categorical otherwise.
"""
from __future__ import annotations

import numpy as np

from . import ops, registry


class Metric:
    _direction = None  # "up" / "down": which way is better (Keras's attribute; callbacks' "auto" mode reads it)

    def __init__(self, name=None, dtype=None):
        self.name = name or type(self).__name__.lower()
        self.reset_state()

    def reset_state(self):
        self._total = 0.0
        self._count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("metrics", "Mean")
class Mean(Metric):
    """Weighted mean of the values passed to `update_state(values, sample_weight)`."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name)

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, np.float64)
        if sample_weight is None:
            self._total += float(values.sum())
            self._count += values.size
        else:  # a scalar weight counts a batch mean as `weight` samples
            weight = np.broadcast_to(np.asarray(sample_weight, np.float64), values.shape)
            self._total += float((values * weight).sum())
            self._count += float(weight.sum())


class MeanMetricWrapper(Mean):
    """Running mean of a per-sample function `fn(y_true, y_pred) -> (n,)`."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or fn.__name__)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.ndim == np.ndim(y_pred):
        y_true = y_true[..., 0]
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    hits = np.asarray(y_true) == (np.asarray(y_pred) > threshold)
    return hits.mean(axis=-1, dtype=np.float32)


def accuracy(y_true, y_pred):
    """Exact equality (Keras's plain `Accuracy`)."""
    return (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float32).reshape(len(y_pred), -1).mean(-1)


@registry.register("metrics", "CategoricalAccuracy", "categorical_accuracy")
class CategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name)


@registry.register("metrics", "SparseCategoricalAccuracy", "sparse_categorical_accuracy")
class SparseCategoricalAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name)


@registry.register("metrics", "BinaryAccuracy", "binary_accuracy")
class BinaryAccuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


@registry.register("metrics", "Accuracy")
class Accuracy(MeanMetricWrapper):
    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name)


@registry.register("metrics", "MeanSquaredError", "mean_squared_error", "mse")
class MeanSquaredError(Mean):
    _direction = "down"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        value, _ = ops.mean_squared_error(y_pred, np.asarray(y_true, np.float32).reshape(np.shape(y_pred)))
        super().update_state(value, len(y_pred))


@registry.register("metrics", "MeanAbsoluteError", "mean_absolute_error", "mae")
class MeanAbsoluteError(Mean):
    _direction = "down"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float32)
        diff = np.abs(np.asarray(y_true, np.float32).reshape(y_pred.shape) - y_pred)
        super().update_state(float(diff.mean(dtype=np.float64)) if diff.size else 0.0, len(y_pred))


_BY_FUNCTION = {categorical_accuracy: CategoricalAccuracy, sparse_categorical_accuracy: SparseCategoricalAccuracy,
                binary_accuracy: BinaryAccuracy, accuracy: Accuracy}


def get(identifier, y_true_shape=None, y_pred_shape=None) -> Metric:
    """A Metric from a name, class, instance or function; 'accuracy'/'acc' need the target and
    output shapes to pick the right accuracy (Keras's rule)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        t_rank, p_rank = len(y_true_shape), len(y_pred_shape)
        if y_pred_shape[-1] == 1:
            cls = BinaryAccuracy
        elif t_rank < p_rank or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(name=identifier)
    if isinstance(identifier, str):
        metric = registry.get("metrics", identifier)()
        metric.name = identifier
        return metric
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"Could not interpret metric identifier: {identifier!r}")

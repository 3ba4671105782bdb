"""Accuracy metrics (Keras 3's accuracy_metrics.py): exact, binary, categorical, sparse and top-k."""
from __future__ import annotations

import numpy as np

from .. import registry
from .base import MeanMetricWrapper, align


def accuracy(y_true, y_pred):
    """Exact equality (Keras's plain `Accuracy`)."""
    y_true, y_pred = align(y_true, y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = align(y_true, y_pred)  # (n,) labels against (n, 1) predictions compare row by row
    return (y_true == (y_pred > threshold)).astype(np.float32)


def _match_shape(matches, y_true_shape, reshape):
    return matches.reshape(y_true_shape) if reshape else matches


def categorical_accuracy(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true = np.argmax(np.asarray(y_true), axis=-1)
    shape, reshape = y_true.shape, y_true.ndim == y_pred.ndim
    if reshape:  # one-hot targets of rank one less than predictions (Keras squeezes a trailing 1)
        y_true = np.squeeze(y_true, -1)
    return _match_shape((y_true == np.argmax(y_pred, axis=-1)).astype(np.float32), shape, reshape)


def sparse_categorical_accuracy(y_true, y_pred):
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    shape = y_true.shape
    reshape = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    if reshape:
        y_true = y_true[..., 0]
    matches = _match_shape((y_true == np.argmax(y_pred, axis=-1)).astype(np.float32), shape, reshape)
    return matches[..., 0] if matches.ndim > 1 and matches.shape[-1] == 1 else matches


def _in_top_k(ids, pred, k):
    """Keras's `ops.in_top_k`: the target's score is among the k largest (ties count as in)."""
    target = np.take_along_axis(pred, ids[:, None], axis=-1)
    return (pred > target).sum(-1) < k


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = np.asarray(y_pred, np.float64)
    ids = np.argmax(np.asarray(y_true), axis=-1)
    shape = ids.shape
    matches = _in_top_k(ids.reshape(-1), y_pred.reshape(-1, y_pred.shape[-1]), k).astype(np.float32)
    return matches.reshape(shape)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    shape = y_true.shape
    flat_pred = y_pred.reshape(-1, y_pred.shape[-1])
    ids = y_true.reshape(-1)
    if from_sorted_ids:
        matches = (ids[:, None] == flat_pred[:, :k]).any(axis=1)
    else:
        matches = _in_top_k(ids.astype(np.int64), flat_pred.astype(np.float64), k)
    return matches.astype(np.float32).reshape(shape)


class _Wrapper(MeanMetricWrapper):
    """A named MeanMetricWrapper whose config holds its own arguments (`_config_keys`)."""
    _config_keys: tuple = ()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **{k: getattr(self, k) for k in self._config_keys}}


@registry.register("metrics", "Accuracy")
class Accuracy(_Wrapper):
    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)


@registry.register("metrics", "BinaryAccuracy", "binary_accuracy")
class BinaryAccuracy(_Wrapper):
    _direction, _config_keys = "up", ("threshold",)

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold


@registry.register("metrics", "CategoricalAccuracy", "categorical_accuracy")
class CategoricalAccuracy(_Wrapper):
    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


@registry.register("metrics", "SparseCategoricalAccuracy", "sparse_categorical_accuracy")
class SparseCategoricalAccuracy(_Wrapper):
    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


@registry.register("metrics", "TopKCategoricalAccuracy", "top_k_categorical_accuracy")
class TopKCategoricalAccuracy(_Wrapper):
    _direction, _config_keys = "up", ("k",)

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=k)
        self.k = k


@registry.register("metrics", "SparseTopKCategoricalAccuracy", "sparse_top_k_categorical_accuracy")
class SparseTopKCategoricalAccuracy(_Wrapper):
    _direction, _config_keys = "up", ("k",)

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name, dtype, k=k, from_sorted_ids=from_sorted_ids)
        self.k, self.from_sorted_ids = k, bool(from_sorted_ids)

    def get_config(self):
        config = super().get_config()
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


FUNCTIONS = {accuracy: Accuracy, binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
             sparse_categorical_accuracy: SparseCategoricalAccuracy,
             top_k_categorical_accuracy: TopKCategoricalAccuracy,
             sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy}

__all__ = ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "accuracy", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"]

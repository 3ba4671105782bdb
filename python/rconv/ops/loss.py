"""Losses. The named functions return (mean loss over the batch, gradient of that mean); `row_loss` is
the general kernel: any Keras loss over the last axis, per-row values and the gradient of their
coefficient-weighted sum."""
from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np

from .. import _rconv
from ._checks import _f32, _labels

__all__ = [
    "softmax_cross_entropy", "sigmoid_cross_entropy", "categorical_cross_entropy", "binary_cross_entropy",
    "mean_squared_error", "row_loss", "ROW_LOSSES",
]

# The kinds `row_loss` computes (Keras function names) and the parameters each reads.
ROW_LOSSES = {
    "mean_squared_error": (), "mean_absolute_error": (), "mean_absolute_percentage_error": (),
    "mean_squared_logarithmic_error": (), "huber": ("delta",), "log_cosh": (), "hinge": (), "squared_hinge": (),
    "categorical_hinge": (), "kl_divergence": (), "poisson": (), "cosine_similarity": (),
    "binary_crossentropy": ("from_logits", "label_smoothing"),
    "binary_focal_crossentropy": ("from_logits", "label_smoothing", "alpha", "gamma", "apply_class_balancing"),
    "categorical_crossentropy": ("from_logits", "label_smoothing"),
    "categorical_focal_crossentropy": ("from_logits", "label_smoothing", "alpha", "gamma"),
    "sparse_categorical_crossentropy": ("from_logits", "ignore_class"),
    "dice": (), "tversky": ("alpha", "beta"),
}


def softmax_cross_entropy(logits, labels) -> Tuple[float, np.ndarray]:
    """Fused, stable softmax + categorical cross-entropy. labels: int ids (n,) or one-hot (n, c)."""
    op = "softmax_cross_entropy"
    return _rconv.loss(_f32(logits, op, "logits"), _labels(labels, op), "softmax_cross_entropy")


def sigmoid_cross_entropy(logits, labels) -> Tuple[float, np.ndarray]:
    """Fused, stable sigmoid + binary cross-entropy, averaged over every element."""
    op = "sigmoid_cross_entropy"
    return _rconv.loss(_f32(logits, op, "logits"), _f32(labels, op, "labels"), "sigmoid_cross_entropy")


def categorical_cross_entropy(probs, labels) -> Tuple[float, np.ndarray]:
    """Cross-entropy on probabilities (Keras: rows renormalised, clipped to [1e-7, 1 - 1e-7])."""
    op = "categorical_cross_entropy"
    return _rconv.loss(_f32(probs, op, "probs"), _labels(labels, op), "categorical_cross_entropy")


def binary_cross_entropy(probs, labels) -> Tuple[float, np.ndarray]:
    """Binary cross-entropy on probabilities (Keras: clipped to [1e-7, 1 - 1e-7]), mean over elements."""
    op = "binary_cross_entropy"
    return _rconv.loss(_f32(probs, op, "probs"), _f32(labels, op, "labels"), "binary_cross_entropy")


def mean_squared_error(pred, target) -> Tuple[float, np.ndarray]:
    op = "mean_squared_error"
    return _rconv.loss(_f32(pred, op, "pred"), _f32(target, op, "target"), "mean_squared_error")


def row_loss(kind: str, pred, labels, coef=1.0, params: Optional[Mapping[str, object]] = None
             ) -> Tuple[float, np.ndarray, np.ndarray]:
    """Loss `kind` (a key of ROW_LOSSES) over the last axis of `pred`.

    labels: float targets shaped like `pred`, or (sparse / categorical) int class ids shaped `pred.shape[:-1]`.
    coef: one coefficient per row (shape `pred.shape[:-1]`) or a scalar. Returns (Σ coef·L, L of shape
    `pred.shape[:-1]` (float32), d(Σ coef·L)/d pred (float32))."""
    if kind not in ROW_LOSSES:
        raise ValueError(f"row_loss: unknown loss {kind!r}; known: {sorted(ROW_LOSSES)}")
    pred = _f32(pred, kind, "pred")
    arr = np.asarray(labels)
    if arr.dtype.kind in "iub" and kind in ("sparse_categorical_crossentropy", "categorical_crossentropy") \
            and arr.ndim == pred.ndim - 1:
        labels = np.ascontiguousarray(arr, dtype=np.int64)
    else:
        labels = _f32(arr.astype(np.float32) if arr.dtype.kind in "iub" else arr, kind, "labels")
    coef = np.ascontiguousarray(np.asarray(coef, np.float32).reshape(-1))
    clean = {}
    for name, value in (params or {}).items():
        if name not in ROW_LOSSES[kind]:
            raise ValueError(f"row_loss: {kind} takes no parameter {name!r} (it takes {ROW_LOSSES[kind]})")
        if value is not None:
            clean[name] = float(value)
    return _rconv.row_loss(pred, labels, kind, coef, clean)

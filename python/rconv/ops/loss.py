"""Losses: each returns (mean loss over the batch, gradient of that mean)."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import _rconv
from ._checks import _f32, _labels

__all__ = [
    "softmax_cross_entropy", "sigmoid_cross_entropy", "categorical_cross_entropy", "binary_cross_entropy",
    "mean_squared_error",
]


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

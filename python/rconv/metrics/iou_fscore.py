"""Segmentation and F-score metrics (Keras 3's iou_metrics.py and f_score_metrics.py): IoU, BinaryIoU,
MeanIoU, OneHotIoU, OneHotMeanIoU over a running confusion matrix; FBetaScore and F1Score."""
from __future__ import annotations

import numpy as np

from .. import registry
from .base import Metric

EPSILON = 1e-7


class _IoUBase(Metric):
    _direction = "up"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be a positive int, got {num_classes!r}")
        self.num_classes, self.ignore_class = int(num_classes), ignore_class
        self.sparse_y_true, self.sparse_y_pred, self.axis = sparse_y_true, sparse_y_pred, axis
        super().__init__(name, "int64" if dtype is None else dtype)  # Keras's default: an integer matrix

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = np.asarray(y_true) if self.sparse_y_true else np.argmax(y_true, axis=self.axis)
        y_pred = np.asarray(y_pred) if self.sparse_y_pred else np.argmax(y_pred, axis=self.axis)
        y_true = y_true.astype(np.int64).reshape(-1)
        y_pred = y_pred.astype(np.int64).reshape(-1)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"{type(self).__name__}: {y_true.size} targets for {y_pred.size} predictions")
        weight = np.asarray(1.0 if sample_weight is None else sample_weight, np.float64)
        weight = np.broadcast_to(weight.reshape(-1) if weight.ndim > 1 else weight, y_true.shape)
        if "int" in self.dtype:  # Keras casts the weights to the metric's integer dtype (it warns)
            weight = np.trunc(weight)
        n = self.num_classes
        valid = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            valid &= y_true != self.ignore_class
        np.add.at(self.total_cm, (y_true[valid], y_pred[valid]), weight[valid])

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@registry.register("metrics", "IoU", "io_u", "iou")
class IoU(_IoUBase):
    """Intersection over union of `target_class_ids`, averaged over those with any entry."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, sparse_y_true, sparse_y_pred, axis)
        if max(target_class_ids) >= num_classes:
            raise ValueError(f"Target class id {max(target_class_ids)} is out of range, which is [0, {num_classes}).")
        self.target_class_ids = list(target_class_ids)

    def result(self):
        cm = self.total_cm
        tp = np.diag(cm)
        denominator = (cm.sum(axis=0) + cm.sum(axis=1) - tp)[self.target_class_ids]
        tp = tp[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + EPSILON), 0.0)
        return float(iou.sum() / (valid.sum() + EPSILON))

    def get_config(self):
        return {**super().get_config(), "target_class_ids": self.target_class_ids}


@registry.register("metrics", "BinaryIoU", "binary_io_u", "binary_iou")
class BinaryIoU(IoU):
    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, np.asarray(y_pred, np.float32) >= self.threshold, sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


@registry.register("metrics", "MeanIoU", "mean_io_u", "mean_iou")
class MeanIoU(IoU):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        super().__init__(num_classes, list(range(num_classes)), name, dtype, ignore_class, sparse_y_true,
                         sparse_y_pred, axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@registry.register("metrics", "OneHotIoU", "one_hot_io_u", "one_hot_iou")
class OneHotIoU(IoU):
    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


@registry.register("metrics", "OneHotMeanIoU", "one_hot_mean_io_u", "one_hot_mean_iou")
class OneHotMeanIoU(MeanIoU):
    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


@registry.register("metrics", "FBetaScore", "f_beta_score", "fbeta_score")
class FBetaScore(Metric):
    """F-beta per class (average None), or averaged: 'micro', 'macro', 'weighted'. Predictions are positive
    above `threshold`, or (threshold None) where they equal the row maximum."""
    _direction = "up"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average}")
        if not isinstance(beta, float) or beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float > 0. Received: beta={beta!r}")
        if threshold is not None and (not isinstance(threshold, float) or not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float with 0 < threshold "
                             f"<= 1. Received: threshold={threshold!r}")
        self.average, self.beta, self.threshold = average, beta, threshold
        self.axis = None if average == "micro" else 0
        super().__init__(name, dtype)

    def reset_state(self):
        self.true_positives = self.false_positives = self.false_negatives = self.intermediate_weights = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
        if y_true.ndim != 2 or y_pred.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received input shapes: y_pred.shape={y_pred.shape} and y_true.shape={y_true.shape}.")
        if self.threshold is None:
            pred = (y_pred >= y_pred.max(-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            pred = y_pred > self.threshold
        pred = pred.astype(np.float64)
        w = None if sample_weight is None else np.asarray(sample_weight, np.float64)

        def weighted_sum(v):
            return np.sum(v if w is None else v * np.expand_dims(w, 1), axis=self.axis)
        parts = (weighted_sum(pred * y_true), weighted_sum(pred * (1 - y_true)), weighted_sum((1 - pred) * y_true),
                 weighted_sum(y_true))
        if self.true_positives is None:
            self.true_positives, self.false_positives, self.false_negatives, self.intermediate_weights = parts
        else:
            self.true_positives = self.true_positives + parts[0]
            self.false_positives = self.false_positives + parts[1]
            self.false_negatives = self.false_negatives + parts[2]
            self.intermediate_weights = self.intermediate_weights + parts[3]

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        f = precision * recall / (self.beta ** 2 * precision + recall + EPSILON) * (1 + self.beta ** 2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + EPSILON)
            return float(np.sum(f * weights))
        if self.average is not None:
            return float(np.mean(f))
        return np.asarray(f, np.float32)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


@registry.register("metrics", "F1Score", "f1_score")
class F1Score(FBetaScore):
    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


__all__ = ["IoU", "BinaryIoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "FBetaScore", "F1Score"]

"""Confusion-matrix metrics (Keras 3's confusion_metrics.py and metrics_utils.py): TruePositives & co.,
Precision and Recall (thresholds, top_k, class_id) and AUC (ROC / PR / PRGAIN curves, interpolation,
minoring and majoring sums, multi_label, label_weights, from_logits)."""
from __future__ import annotations

import numpy as np

from .. import registry
from ..losses.loss import snake_case
from .base import Metric, _divide_no_nan, align

NEG_INF = -1e10
EPSILON = 1e-7
_CONDITIONS = ("tp", "fp", "tn", "fn")


def _thresholds(thresholds, default):
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if t is None or t < 0 or t > 1]
    if bad:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return values


def _filter_top_k(x, k):
    """Keep the k largest entries of each row (ties: the first ones, like top_k), the rest NEG_INF."""
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(x.shape, bool)
    np.put_along_axis(keep, idx, True, axis=-1)
    return np.where(keep, x, NEG_INF)


def confusion_counts(y_true, y_pred, thresholds, top_k=None, class_id=None, sample_weight=None,
                     multi_label=False, label_weights=None, clip=False):
    """{'tp','fp','tn','fn'} -> counts per threshold (per threshold and label with multi_label), as
    Keras's `update_confusion_matrix_variables` adds them: a prediction is positive above a threshold."""
    y_pred, y_true = align(np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64))
    if sample_weight is not None:
        sw = np.asarray(sample_weight, np.float64)[..., None]
        _, sw = align(y_true, sw, expand_rank_1=False)
        sample_weight = sw
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape (num_samples, "
                             f"num_classes), found shape: {y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
    if clip:  # Keras's evenly-spaced-thresholds path clips predictions to [0, 1]
        y_pred = np.clip(y_pred, 0.0, 1.0)
    try:
        weights = np.ones(y_pred.shape) if sample_weight is None else np.broadcast_to(sample_weight, y_pred.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not broadcast to predictions of "
                         f"shape {y_pred.shape}") from None
    if label_weights is not None:
        weights = weights * np.broadcast_to(np.asarray(label_weights, np.float64), y_pred.shape)
    positive = y_true.astype(bool)
    thresholds = np.asarray(thresholds, np.float64)
    if multi_label:  # (T, n, labels) -> sums over samples
        pred = y_pred.reshape(len(y_pred), -1)[None] > thresholds[:, None, None]
        pos, w, axis = positive.reshape(len(y_pred), -1)[None], weights.reshape(len(y_pred), -1)[None], 1
    else:
        pred = y_pred.reshape(1, -1) > thresholds[:, None]
        pos, w, axis = positive.reshape(1, -1), weights.reshape(1, -1), 1
    return {"tp": np.sum(w * (pos & pred), axis=axis), "fp": np.sum(w * (~pos & pred), axis=axis),
            "tn": np.sum(w * (~pos & ~pred), axis=axis), "fn": np.sum(w * (pos & ~pred), axis=axis)}


def _evenly_distributed(thresholds):
    n = len(thresholds)
    return n >= 3 and np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1), atol=EPSILON)


class _ConfusionBase(Metric):
    """Accumulates the confusion counts `_conditions` over `self.thresholds`."""
    _conditions: tuple = _CONDITIONS

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None, default=0.5):
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        self.thresholds = _thresholds(thresholds, NEG_INF if top_k is not None and thresholds is None else default)
        self._clip = _evenly_distributed(self.thresholds)
        super().__init__(name, dtype)

    def reset_state(self):
        self.counts = {c: np.zeros(len(self.thresholds)) for c in self._conditions}

    def update_state(self, y_true, y_pred, sample_weight=None):
        new = confusion_counts(y_true, y_pred, self.thresholds, self.top_k, self.class_id, sample_weight,
                               clip=self._clip)
        for c in self._conditions:
            self.counts[c] = self.counts[c] + new[c]

    # Keras's variable names, read-only views of the running counts
    true_positives = property(lambda self: self.counts["tp"])
    false_positives = property(lambda self: self.counts["fp"])
    true_negatives = property(lambda self: self.counts["tn"])
    false_negatives = property(lambda self: self.counts["fn"])

    def _one(self, values):
        return float(values[0]) if len(self.thresholds) == 1 else np.asarray(values, np.float32)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class _Count(_ConfusionBase):
    _condition = ""

    def __init__(self, thresholds=None, name=None, dtype=None):
        self._conditions = (self._condition,)
        super().__init__(thresholds, name=name, dtype=dtype)

    def result(self):
        return self._one(self.counts[self._condition])


def _count_class(class_name, condition):
    cls = type(class_name, (_Count,), {"_condition": condition, "__module__": __name__,
                                       "__doc__": f"Keras's `metrics.{class_name}`: weighted count per threshold."})
    return registry.register("metrics", class_name, snake_case(class_name))(cls)


TruePositives = _count_class("TruePositives", "tp")
FalsePositives = _count_class("FalsePositives", "fp")
TrueNegatives = _count_class("TrueNegatives", "tn")
FalseNegatives = _count_class("FalseNegatives", "fn")


@registry.register("metrics", "Precision", "precision")
class Precision(_ConfusionBase):
    _direction, _conditions = "up", ("tp", "fp")

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._one(_divide_no_nan(self.counts["tp"], self.counts["tp"] + self.counts["fp"]))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


@registry.register("metrics", "Recall", "recall")
class Recall(_ConfusionBase):
    _direction, _conditions = "up", ("tp", "fn")

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._one(_divide_no_nan(self.counts["tp"], self.counts["tp"] + self.counts["fn"]))

    def get_config(self):
        return {**super().get_config(), "top_k": self.top_k, "class_id": self.class_id}


class _AtBase(_ConfusionBase):
    """SensitivityAtSpecificity & co.: the best `dependent` rate over the thresholds where the
    `constrained` rate reaches `value` (Keras's SensitivitySpecificityBase)."""
    _direction = "up"
    _value_name = ""

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if not 0 <= value <= 1:
            raise ValueError(f"Argument `{self._value_name}` must be in the range [0, 1]. "
                             f"Received: {self._value_name}={value}")
        if num_thresholds <= 0:
            raise ValueError("Argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        self.value, self.num_thresholds = value, num_thresholds
        thresholds = [0.5] if num_thresholds == 1 else (
            [0.0] + [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0])
        super().__init__(thresholds, class_id=class_id, name=name, dtype=dtype)
        self._clip = num_thresholds > 1
        self.init_thresholds = None

    def _rates(self):
        tp, fp, tn, fn = (self.counts[c] for c in _CONDITIONS)
        return {"sensitivity": _divide_no_nan(tp, tp + fn), "specificity": _divide_no_nan(tn, tn + fp),
                "precision": _divide_no_nan(tp, tp + fp)}

    def _best(self, constrained, dependent):
        rates = self._rates()
        rates["recall"] = rates["sensitivity"]
        feasible = rates[constrained] >= self.value
        return float(np.max(np.where(feasible, rates[dependent], 0.0), initial=0.0))

    def get_config(self):
        config = Metric.get_config(self)
        return {**config, "class_id": self.class_id, "num_thresholds": self.num_thresholds,
                self._value_name: self.value}

    def __getattr__(self, name):  # Keras's attribute for the constraint (`specificity`, `recall`, ...)
        if name == type(self)._value_name:
            return self.value
        raise AttributeError(name)


@registry.register("metrics", "SensitivityAtSpecificity", "sensitivity_at_specificity")
class SensitivityAtSpecificity(_AtBase):
    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("specificity", "sensitivity")


@registry.register("metrics", "SpecificityAtSensitivity", "specificity_at_sensitivity")
class SpecificityAtSensitivity(_AtBase):
    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("sensitivity", "specificity")


@registry.register("metrics", "PrecisionAtRecall", "precision_at_recall")
class PrecisionAtRecall(_AtBase):
    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("recall", "precision")


@registry.register("metrics", "RecallAtPrecision", "recall_at_precision")
class RecallAtPrecision(_AtBase):
    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("precision", "recall")


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMS = ("interpolation", "majoring", "minoring")


@registry.register("metrics", "AUC", "auc")
class AUC(Metric):
    """Area under the ROC or PR curve from confusion counts at `num_thresholds` thresholds, as Keras 3
    computes it (PR with interpolation: Davis & Goadrich's interpolation)."""
    _direction = "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        if str(curve).lower() not in _CURVES:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        if str(summation_method).lower() not in _SUMS:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(thresholds, 0.5))
            self.num_thresholds = len(inner) + 2
            self._clip = _evenly_distributed([0.0] + inner + [1.0])
        else:
            if num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._clip = True
        self._thresholds = np.array([0.0 - EPSILON] + inner + [1.0 + EPSILON])
        self.curve = _CURVES[str(curve).lower()]
        self.summation_method = str(summation_method).lower()
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, np.float64)
        self._from_logits = bool(from_logits)
        super().__init__(name, dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        self.counts = None  # built at the first update (multi_label needs the number of labels)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, np.float64)
        if self.multi_label and y_pred.ndim != 2:
            raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {y_pred.ndim}. "
                             f"Full shape received for `y_pred`: {y_pred.shape}")
        if self._from_logits:
            y_pred = 1 / (1 + np.exp(-y_pred))
        new = confusion_counts(y_true, y_pred, self._thresholds, sample_weight=sample_weight,
                               multi_label=self.multi_label,
                               label_weights=None if self.multi_label else self.label_weights, clip=self._clip)
        self.counts = new if self.counts is None else {c: self.counts[c] + new[c] for c in _CONDITIONS}

    def _by_label(self, terms):
        if not self.multi_label:
            return float(np.sum(terms))
        by_label = np.sum(terms, axis=0)
        if self.label_weights is None:
            return float(np.mean(by_label))
        return float(_divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights)))

    def result(self):
        if self.counts is None:
            return 0.0
        tp, fp, tn, fn = (self.counts[c] for c in _CONDITIONS)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(tp, fp, fn)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp))
            precision_gain = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x, y = np.maximum(recall_gain, 0.0), precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def _interpolate_pr_auc(self, tp, fp, fn):
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        terms = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        return self._by_label(terms)

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


__all__ = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision", "Recall", "AUC",
           "SensitivityAtSpecificity", "SpecificityAtSensitivity", "PrecisionAtRecall", "RecallAtPrecision"]

"""Metrics: Keras's own test values (keras/src/metrics/*_test.py, ported as NumPy tests), float64 NumPy
references over random shapes, sample-weight ranks and several updates, Keras's label-shape rules,
configs, and (marked `keras`) a comparison with real Keras 3 on ~200 random cases."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_check import keras_python
from rconv import metrics, registry

# --- Keras's test values ---------------------------------------------------------------------------------
FP_T = np.array(((0, 1, 0, 1, 0), (0, 0, 1, 1, 1), (1, 1, 1, 1, 0), (0, 0, 0, 0, 1)))
FP_P = np.array(((0, 0, 1, 1, 0), (1, 1, 1, 1, 1), (0, 1, 0, 1, 0), (1, 1, 1, 1, 1)))
TH_P = np.array(((0.9, 0.2, 0.8, 0.1), (0.2, 0.9, 0.7, 0.6), (0.1, 0.2, 0.4, 0.3), (0, 1, 0.7, 0.3)))
TH_T = np.array(((0, 1, 1, 0), (1, 0, 0, 0), (0, 0, 0, 0), (1, 1, 1, 1)))
TH_W = ((1.0, 2.0, 3.0, 5.0), (7.0, 11.0, 13.0, 17.0), (19.0, 23.0, 29.0, 31.0), (5.0, 15.0, 10.0, 0))
AUC_T, AUC_P, AUC_W = np.array([0, 0, 1, 1]), np.array([0, 0.5, 0.3, 0.9], np.float32), [1, 2, 3, 4]
CLS_P = np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.2, 0.6, 0.2], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
CLS_T = np.eye(3)[[2, 0, 1, 0, 2]]
TOPK_T, TOPK_P = np.array([[0, 0, 1], [0, 1, 0]]), np.array([[0.1, 0.9, 0.8], [0.05, 0.95, 0]], np.float32)

KERAS_CASES = [  # (metric factory, [(y_true, y_pred, sample_weight), ...], expected)
    (lambda: metrics.FalsePositives(), [(FP_T, FP_P, None)], 7.0),
    (lambda: metrics.FalsePositives(), [(FP_T, FP_P, np.array((1.0, 1.5, 2.0, 2.5)))], 14.0),
    (lambda: metrics.FalsePositives(thresholds=[0.15, 0.5, 0.85]), [(TH_T, TH_P, None)], [7.0, 4.0, 2.0]),
    (lambda: metrics.FalsePositives(thresholds=[0.15, 0.5, 0.85]), [(TH_T, TH_P, TH_W)], [125.0, 42.0, 12.0]),
    (lambda: metrics.Precision(), [([0, 1, 1, 0], [1, 0, 1, 0], None)], 0.5),
    (lambda: metrics.Precision(), [([[0, 1, 1, 0], [1, 0, 0, 1]], [[1, 0, 1, 0], [1, 0, 1, 0]],
                                    np.array([[1, 2, 3, 4], [4, 3, 2, 1]]))], 7.0 / 10.0),
    (lambda: metrics.Precision(), [([0, 0, 0, 0], [0, 0, 0, 0], None)], 0.0),
    (lambda: metrics.Precision(thresholds=[0.5, 0.7]), [([0, 1, 1, 0], [1, 0, 0.6, 0], None)], [0.5, 0.0]),
    (lambda: metrics.Precision(thresholds=[0.5, 1.0]),
     [([[0, 1], [1, 0]], np.array([[1, 0], [0.6, 0]], np.float32), np.array([[4, 0], [3, 1]], np.float32))] * 2,
     [3.0 / 7.0, 0.0]),
    (lambda: metrics.Precision(top_k=3), [([0, 1, 1, 0, 0], [0.2, 0.1, 0.5, 0, 0.2], None)], 1.0 / 3),
    (lambda: metrics.Precision(top_k=3), [([[0, 1, 1, 0, 1]], [[0.2, 0.1, 0.4, 0, 0.2]], np.array([[1, 4, 2, 3, 5]])),
                                          ([1, 0, 1, 1, 1], [0.2, 0.6, 0.4, 0.2, 0.2], np.array(3))], 13.0 / 17.0),
    (lambda: metrics.Precision(class_id=1), [(CLS_T, CLS_P, None)], 1.0),
    (lambda: metrics.Precision(thresholds=0.7, top_k=2), [([0, 1, 1, 0, 1], [0.2, 0.8, 0.6, 0, 0.2], None)], 1.0),
    (lambda: metrics.Recall(), [([0, 1, 1, 0], [1, 0, 1, 0], None)], 0.5),
    (lambda: metrics.Recall(), [([[0, 1, 1, 0], [1, 0, 0, 1]], [[1, 0, 1, 0], [0, 1, 0, 1]],
                                 np.array([[1, 2, 3, 4], [4, 3, 2, 1]]))], (3.0 + 1.0) / (2.0 + 3.0 + 4.0 + 1.0)),
    (lambda: metrics.Recall(top_k=3), [([0, 1, 1, 0, 0], [0.2, 0.1, 0.5, 0, 0.2], None)], 0.5),
    (lambda: metrics.AUC(num_thresholds=3), [(AUC_T, AUC_P, None)], 0.75),
    (lambda: metrics.AUC(num_thresholds=3, from_logits=True), [(AUC_T, -np.log(1.0 / (AUC_P + 1e-12) - 1.0), None)],
     0.75),
    (lambda: metrics.AUC(num_thresholds=2, thresholds=[0.5]), [(AUC_T, AUC_P, None)], 0.75),
    (lambda: metrics.AUC(num_thresholds=3), [(AUC_T, AUC_P, AUC_W)], 0.7855),
    (lambda: metrics.AUC(num_thresholds=3, summation_method="majoring"), [(AUC_T, AUC_P, AUC_W)], 1.0),
    (lambda: metrics.AUC(num_thresholds=3, summation_method="minoring"), [(AUC_T, AUC_P, AUC_W)], 0.571),
    (lambda: metrics.AUC(num_thresholds=3, curve="PR", summation_method="majoring"), [(AUC_T, AUC_P, AUC_W)],
     0.429 + 0.571),
    (lambda: metrics.AUC(num_thresholds=3, curve="PR", summation_method="minoring"), [(AUC_T, AUC_P, AUC_W)],
     0.7 * 0.429),
    (lambda: metrics.AUC(num_thresholds=3, curve="PR"), [(AUC_T, AUC_P, AUC_W)], 2.416 / 7 + 4 / 7),
    (lambda: metrics.AUC(num_thresholds=3, curve="PR"), [(AUC_T, AUC_P, [-1, -2, -3, -4])], 0.0),
    (lambda: metrics.AUC(num_thresholds=3, curve="PRGAIN", summation_method="majoring"), [(AUC_T, AUC_P, AUC_W)], 1.0),
    (lambda: metrics.AUC(num_thresholds=3, curve="PRGAIN", summation_method="minoring"), [(AUC_T, AUC_P, AUC_W)], 0.0),
    (lambda: metrics.AUC(num_thresholds=3, curve="PRGAIN"), [(AUC_T, AUC_P, AUC_W)], 0.5),
    (lambda: metrics.TopKCategoricalAccuracy(k=1), [(TOPK_T, TOPK_P, None)], 0.5),
    (lambda: metrics.TopKCategoricalAccuracy(k=1), [(TOPK_T, TOPK_P, np.array([0.7, 0.3]))], 0.3),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=1), [(np.array([2, 1]), TOPK_P, None)], 0.5),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=1), [(np.array([2, 1]), TOPK_P, np.array([0.7, 0.3]))], 0.3),
    (lambda: metrics.MeanIoU(num_classes=2), [([0, 0, 1, 1], [0, 1, 0, 1], None)], (1 / 3 + 1 / 3) / 2),
    (lambda: metrics.MeanIoU(num_classes=3, ignore_class=255), [([0, 1, 2, 255], [0, 1, 1, 1], None)], (1 + 0.5) / 3),
    (lambda: metrics.MeanIoU(num_classes=2, dtype="float32"),
     [(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1], np.float32), np.array([0.2, 0.3, 0.4, 0.1]))],
     (0.2 / (0.6 + 0.5 - 0.2) + 0.1 / (0.4 + 0.5 - 0.1)) / 2),
    (lambda: metrics.MeanIoU(num_classes=2, ignore_class=-1, dtype="float32"),
     [(np.array([0, 0, 1, -1]), np.array([0, 1, 0, 1], np.float32), np.array([0.2, 0.3, 0.4, 0.1]))],
     (0.2 / (0.6 + 0.5 - 0.2)) / 2),
    (lambda: metrics.MeanIoU(num_classes=2, dtype="float32"),
     [(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [0, 1]], np.float32), np.array([[0.2, 0.3], [0.4, 0.1]]))],
     (0.2 / (0.6 + 0.5 - 0.2) + 0.1 / (0.4 + 0.5 - 0.1)) / 2),
    (lambda: metrics.MeanIoU(num_classes=2), [], 0.0),
    (lambda: metrics.MeanIoU(num_classes=2), [([1], [1], None)], 1.0),
    (lambda: metrics.MeanIoU(num_classes=2), [([0, 3], [0, 1], None)], 1.0),
    (lambda: metrics.SensitivityAtSpecificity(0.8), [([0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
                                                       [0.0, 0.1, 0.2, 0.3, 0.4, 0.1, 0.45, 0.5, 0.8, 0.9], None)],
     0.8),
    (lambda: metrics.PrecisionAtRecall(0.8), [([0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
                                                [0.0, 0.1, 0.2, 0.5, 0.6, 0.2, 0.5, 0.6, 0.8, 0.9], None)], 2.0 / 3),
    (lambda: metrics.Mean(), [([1, 3, 5, 7], None, None)], 4.0),
    (lambda: metrics.Mean(), [([1, 3, 5, 7], None, [1, 1, 0, 0])], 2.0),
    (lambda: metrics.Sum(), [([1, 3, 5, 7], None, None)], 16.0),
    (lambda: metrics.Sum(), [([1, 3, 5, 7], None, [1, 1, 0, 0])], 4.0),
    (lambda: metrics.RootMeanSquaredError(), [([2, 4, 6], [1, 3, 2], None)], np.sqrt(6)),
    (lambda: metrics.RootMeanSquaredError(), [([2, 4, 6, 8], [1, 3, 2, 3], [0, 1, 0, 1])], np.sqrt(13)),
]


@pytest.mark.parametrize("i", range(len(KERAS_CASES)))
def test_keras_values(i):
    make, updates, expected = KERAS_CASES[i]
    metric = make()
    for y, p, sw in updates:
        if p is None:  # Mean / Sum take values
            metric.update_state(y, sample_weight=sw)
        else:
            metric.update_state(y, p, sample_weight=sw)
    np.testing.assert_allclose(np.asarray(metric.result(), np.float64), expected, rtol=1e-3, atol=1e-3)
    metric.reset_state()
    assert np.all(np.asarray(metric.result()) == 0)


def test_precision_exposes_keras_counts_and_class_id_errors():
    p = metrics.Precision(class_id=1)
    p.update_state(CLS_T, CLS_P)
    assert p.true_positives[0] == 1.0 and p.false_positives[0] == 0.0
    with pytest.raises(ValueError, match=r"When class_id is provided, y_pred must be a 2D array"):
        metrics.Precision(class_id=2)([0, 1, 1, 0, 0], [0.2, 0.1, 0.6, 0, 0.2])
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]. Received: \[-1, 2\]"):
        metrics.FalsePositives(thresholds=[-1, 0.5, 2])
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="Invalid AUC curve"):
        metrics.AUC(curve="Invalid")


# --- float64 references -------------------------------------------------------------------------------------
def _weights(kind, n, shape, rng):
    if kind is None:
        return None
    return {"scalar": lambda: 1.5, "vec": lambda: rng.uniform(0, 2, n),
            "col": lambda: rng.uniform(0, 2, (n, 1)), "full": lambda: rng.uniform(0, 2, shape)}[kind]()


def _weighted_mean(per_sample, sw):
    w = np.ones(len(per_sample)) if sw is None else np.broadcast_to(np.reshape(sw, (-1,)) if np.ndim(sw) > 1 else sw,
                                                                      per_sample.shape)
    return per_sample, w


ACCURACY_REFS = {
    "BinaryAccuracy": lambda y, p: (y.reshape(p.shape) == (p > 0.5)).mean(-1),
    "CategoricalAccuracy": lambda y, p: (y.argmax(-1) == p.argmax(-1)).astype(float),
    "SparseCategoricalAccuracy": lambda y, p: (y.reshape(p.shape[:-1]) == p.argmax(-1)).astype(float),
    "TopKCategoricalAccuracy": lambda y, p: (np.sort(p, -1)[:, -2][:, None] <= np.take_along_axis(
        p, y.argmax(-1)[:, None], -1))[:, 0].astype(float),
    "MeanSquaredError": lambda y, p: ((y - p) ** 2).mean(-1),
    "MeanAbsoluteError": lambda y, p: np.abs(y - p).mean(-1),
    "LogCoshError": lambda y, p: np.log(np.cosh(p - y)).mean(-1),
    "CosineSimilarity": lambda y, p: (y * p).sum(-1) / np.linalg.norm(y, axis=-1) / np.linalg.norm(p, axis=-1),
}


@pytest.mark.parametrize("weights", [None, "scalar", "vec", "col"])
@pytest.mark.parametrize("name", sorted(ACCURACY_REFS))
@pytest.mark.parametrize("n, c", [(1, 3), (6, 4), (9, 1)])
def test_mean_metrics_against_references(name, n, c, weights):
    if c == 1 and name in ("CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy"):
        return
    rng = np.random.default_rng(n * 10 + c)
    kwargs = {"k": 2} if name == "TopKCategoricalAccuracy" else {}
    metric = getattr(metrics, name)(**kwargs)
    total, count = 0.0, 0.0
    for _ in range(3):
        p = rng.random((n, c))
        if name == "SparseCategoricalAccuracy":
            y = rng.integers(0, c, n)
        elif name in ("CategoricalAccuracy", "TopKCategoricalAccuracy"):
            y = np.eye(c)[rng.integers(0, c, n)]
        elif name == "BinaryAccuracy":
            y = rng.integers(0, 2, (n, c)).astype(float)
        else:
            y = rng.normal(size=(n, c))
        sw = _weights(weights, n, (n, c), rng)
        metric.update_state(y, p.astype(np.float32), sample_weight=sw)
        values, w = _weighted_mean(ACCURACY_REFS[name](y, p.astype(np.float32).astype(np.float64)), sw)
        total += (values * w).sum()
        count += w.sum()
    assert metric.result() == pytest.approx(total / count, rel=1e-5, abs=1e-6)


def test_binary_accuracy_with_rank_1_labels_and_column_predictions():
    y, p = np.array([1.0, 0.0, 1.0, 1.0]), np.array([[0.9], [0.2], [0.3], [0.6]])
    assert metrics.BinaryAccuracy()(y, p) == pytest.approx(0.75)
    assert metrics.BinaryAccuracy()(y[:, None], p[:, 0]) == pytest.approx(0.75)
    assert metrics.get("accuracy", (4,), (4, 1))(y, p) == pytest.approx(0.75)
    assert metrics.SparseCategoricalAccuracy()(np.array([[1], [0]]), np.array([[0.1, 0.9], [0.3, 0.7]])) == 0.5


def _confusion_ref(y, p, thresholds, sw):
    w = np.ones(p.shape) if sw is None else np.broadcast_to(np.reshape(sw, (-1,) + (1,) * (p.ndim - 1))
                                                            if np.ndim(sw) == 1 else sw, p.shape)
    pos = y.astype(bool)
    out = {}
    for name, cond in (("tp", lambda q: pos & q), ("fp", lambda q: ~pos & q), ("tn", lambda q: ~pos & ~q),
                       ("fn", lambda q: pos & ~q)):
        out[name] = np.array([(w * cond(p > t)).sum() for t in thresholds])
    return out


@pytest.mark.parametrize("weights", [None, "vec", "full"])
@pytest.mark.parametrize("thresholds", [None, [0.25, 0.6], [0.0, 0.5, 1.0]])
@pytest.mark.parametrize("shape", [(1, 1), (8, 1), (5, 3)])
def test_confusion_metrics_against_references(shape, thresholds, weights):
    rng = np.random.default_rng(sum(shape))
    th = [0.5] if thresholds is None else thresholds
    ms = {"tp": metrics.TruePositives(thresholds), "fp": metrics.FalsePositives(thresholds),
          "tn": metrics.TrueNegatives(thresholds), "fn": metrics.FalseNegatives(thresholds)}
    prec, rec = metrics.Precision(thresholds), metrics.Recall(thresholds)
    acc = {k: np.zeros(len(th)) for k in ms}
    for _ in range(2):
        y, p = rng.integers(0, 2, shape), rng.random(shape).round(2)
        sw = _weights(weights, shape[0], shape, rng)
        for m in [*ms.values(), prec, rec]:
            m.update_state(y, p, sample_weight=sw)
        ref = _confusion_ref(y, p, th, sw)
        acc = {k: acc[k] + ref[k] for k in acc}
    for k, m in ms.items():
        np.testing.assert_allclose(m.result(), acc[k] if len(th) > 1 else acc[k][0], rtol=1e-6)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_ref = np.nan_to_num(acc["tp"] / (acc["tp"] + acc["fp"]))
        r_ref = np.nan_to_num(acc["tp"] / (acc["tp"] + acc["fn"]))
    np.testing.assert_allclose(prec.result(), p_ref if len(th) > 1 else p_ref[0], rtol=1e-6)
    np.testing.assert_allclose(rec.result(), r_ref if len(th) > 1 else r_ref[0], rtol=1e-6)


def _trapezoid_roc(y, p, w, thresholds):
    c = _confusion_ref(y, p, thresholds, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.nan_to_num(c["tp"] / (c["tp"] + c["fn"]))
        fpr = np.nan_to_num(c["fp"] / (c["fp"] + c["tn"]))
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


@pytest.mark.parametrize("n", [2, 17, 64])
def test_roc_auc_against_trapezoids_and_the_exact_rank_statistic(n):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = rng.random(n)
    w = rng.uniform(0.5, 2, n)
    thresholds = [-1e-7] + [(i + 1) / 199 for i in range(198)] + [1 + 1e-7]
    auc = metrics.AUC()
    auc.update_state(y, p, sample_weight=w)
    assert auc.result() == pytest.approx(_trapezoid_roc(y, p, w, thresholds), rel=1e-9)
    fine = metrics.AUC(num_thresholds=20001)  # converges to the weighted Mann-Whitney statistic
    fine.update_state(y, p, sample_weight=w)
    pos, neg = p[y == 1], p[y == 0]
    wp, wn = w[y == 1], w[y == 0]
    exact = sum(wi * wj * (1.0 if a > b else 0.5 if a == b else 0.0) for a, wi in zip(pos, wp)
                for b, wj in zip(neg, wn)) / (wp.sum() * wn.sum())
    assert fine.result() == pytest.approx(exact, abs=2e-3)


def test_multi_label_auc_is_the_mean_of_per_label_aucs():
    rng = np.random.default_rng(4)
    y, p = rng.integers(0, 2, (12, 3)), rng.random((12, 3))
    multi = metrics.AUC(multi_label=True)
    multi.update_state(y, p)
    per = []
    for j in range(3):
        m = metrics.AUC()
        m.update_state(y[:, j], p[:, j])
        per.append(m.result())
    assert multi.result() == pytest.approx(np.mean(per), rel=1e-9)
    weighted = metrics.AUC(multi_label=True, label_weights=[1.0, 0.0, 3.0])
    weighted.update_state(y, p)
    assert weighted.result() == pytest.approx((per[0] + 3 * per[2]) / 4, rel=1e-9)


def test_mean_iou_against_a_confusion_matrix_reference():
    rng = np.random.default_rng(2)
    yt, yp, w = rng.integers(0, 4, (5, 6)), rng.integers(0, 4, (5, 6)), rng.uniform(0, 1, (5, 6))
    m = metrics.MeanIoU(num_classes=4, dtype="float32")
    m.update_state(yt, yp, sample_weight=w)
    cm = np.zeros((4, 4))
    np.add.at(cm, (yt.ravel(), yp.ravel()), w.ravel())
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    assert m.result() == pytest.approx(np.mean(inter / union), rel=1e-5)
    onehot = metrics.OneHotMeanIoU(num_classes=4, dtype="float32")
    onehot.update_state(np.eye(4)[yt], np.eye(4)[yp] * 0.8 + 0.05, sample_weight=w)
    assert onehot.result() == pytest.approx(m.result(), rel=1e-9)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.4])
def test_fbeta_against_a_reference(average, threshold):
    rng = np.random.default_rng(3)
    y, p, w = rng.integers(0, 2, (10, 4)).astype(float), rng.random((10, 4)), rng.uniform(0, 2, 10)
    beta = 2.0
    m = metrics.FBetaScore(average=average, beta=beta, threshold=threshold)
    m.update_state(y[:5], p[:5], sample_weight=w[:5])
    m.update_state(y[5:], p[5:], sample_weight=w[5:])
    pred = (p >= p.max(-1, keepdims=True)) if threshold is None else p > threshold
    axis = None if average == "micro" else 0
    tp = (pred * y * w[:, None]).sum(axis)
    fp = (pred * (1 - y) * w[:, None]).sum(axis)
    fn = ((1 - pred) * y * w[:, None]).sum(axis)
    prec, rec = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    f = (1 + beta ** 2) * prec * rec / (beta ** 2 * prec + rec + 1e-7)
    if average == "weighted":
        support = (y * w[:, None]).sum(0)
        f = (f * support / (support.sum() + 1e-7)).sum()
    elif average is not None:
        f = f.mean()
    np.testing.assert_allclose(m.result(), f, rtol=1e-5)
    assert metrics.F1Score(average="macro").get_config() == {"name": "f1_score", "dtype": "float32",
                                                            "average": "macro", "threshold": None}


def test_loss_metrics_are_means_of_the_loss_functions_and_weights_count_once():
    from rconv import losses
    rng = np.random.default_rng(6)
    y, p, w = rng.random((5, 3)), rng.random((5, 3)), rng.uniform(0, 1, 5)
    for name, fn in [("MeanAbsolutePercentageError", losses.mape), ("KLDivergence", losses.kld),
                     ("Hinge", losses.hinge), ("Poisson", losses.poisson), ("SquaredHinge", losses.squared_hinge),
                     ("MeanSquaredLogarithmicError", losses.msle), ("CategoricalHinge", losses.categorical_hinge)]:
        m = getattr(metrics, name)()
        m.update_state(y, p, sample_weight=w)
        assert m.result() == pytest.approx(np.sum(fn(y, p) * w) / w.sum(), rel=1e-5), name
        assert m._direction == (None if name in ("KLDivergence", "Poisson") else "down")
    sce = metrics.SparseCategoricalCrossentropy(ignore_class=0)
    probs = np.full((4, 3), 1 / 3)
    sce.update_state([0, 1, 2, 0], probs, sample_weight=np.ones(4))
    assert sce.result() == pytest.approx(np.log(3), rel=1e-5)  # ignored entries leave the weighted count


def test_sample_weight_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not broadcast"):
        metrics.MeanSquaredError().update_state(np.zeros((2, 4)), np.zeros((2, 4)), sample_weight=np.ones(3))


CONFIG_ARGS = {"IoU": dict(num_classes=3, target_class_ids=[0, 2]), "MeanIoU": dict(num_classes=3),
               "OneHotIoU": dict(num_classes=3, target_class_ids=[1]), "OneHotMeanIoU": dict(num_classes=3),
               "SensitivityAtSpecificity": dict(specificity=0.3), "SpecificityAtSensitivity": dict(sensitivity=0.3),
               "PrecisionAtRecall": dict(recall=0.3, class_id=1), "RecallAtPrecision": dict(precision=0.3)}


@pytest.mark.parametrize("name", sorted({registry.name_of("metrics", registry.get("metrics", n))
                                         for n in registry.names("metrics")}))
def test_config_round_trip(name):
    cls = registry.get("metrics", name)
    metric = cls(**CONFIG_ARGS.get(name, {}))
    config = metric.get_config()
    assert json.loads(json.dumps(config)) == config
    again = cls.from_config(config)
    assert again.get_config() == config and type(again) is cls
    assert metrics.deserialize(metrics.serialize(metric)).get_config() == config


def test_names_and_configs_as_keras():
    assert metrics.MeanIoU(3).name == "mean_io_u" and metrics.MeanIoU(3).dtype == "int64"
    assert metrics.AUC().name == "auc" and metrics.Precision().name == "precision"
    assert metrics.LogCoshError().name == "logcosh" and metrics.F1Score().name == "f1_score"
    assert metrics.get("mape").name == "mape" and type(metrics.get("mape")) is metrics.MeanAbsolutePercentageError
    assert metrics.AUC(thresholds=[0.5, 0.3]).get_config()["thresholds"] == [0.3, 0.5]
    assert metrics.SparseTopKCategoricalAccuracy(k=1).get_config() == {
        "name": "sparse_top_k_categorical_accuracy", "dtype": "float32", "k": 1}
    with pytest.raises(TypeError, match="needs arguments"):
        metrics.get("MeanIoU")


# --- real Keras 3 on random cases (needs RCONV_KERAS_PYTHON or a python3 with keras) ----------------------
CASES_SOURCE = textwrap.dedent('''
    import numpy as np
    def cases():
        rng = np.random.default_rng(7)
        out = []
        n, c = 7, 4
        def probs():
            x = rng.random((n, c)) + 0.05
            return (x / x.sum(-1, keepdims=True)).astype(np.float32)
        onehot = lambda: np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]
        makers = {
            "bin": lambda: (rng.integers(0, 2, (n, 1)).astype(np.float32), rng.random((n, 1)).astype(np.float32)),
            "bin1": lambda: (rng.integers(0, 2, n).astype(np.float32), rng.random((n, 1)).astype(np.float32)),
            "multi": lambda: (rng.integers(0, 2, (n, c)).astype(np.float32), rng.random((n, c)).astype(np.float32)),
            "cat": lambda: (onehot(), probs()),
            "sparse": lambda: (rng.integers(0, c, n), probs()),
            "reg": lambda: (rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)),
        }
        specs = [("BinaryAccuracy", {}, "bin"), ("BinaryAccuracy", {"threshold": 0.3}, "bin1"),
                 ("CategoricalAccuracy", {}, "cat"), ("SparseCategoricalAccuracy", {}, "sparse"),
                 ("TopKCategoricalAccuracy", {"k": 2}, "cat"), ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
                 ("RootMeanSquaredError", {}, "reg"), ("CosineSimilarity", {}, "reg"), ("LogCoshError", {}, "reg"),
                 ("BinaryCrossentropy", {}, "multi"), ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "cat"),
                 ("SparseCategoricalCrossentropy", {}, "sparse"), ("Precision", {"top_k": 2}, "multi"),
                 ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, "multi"), ("Recall", {"class_id": 1}, "cat"),
                 ("FalseNegatives", {"thresholds": [0.2, 0.7]}, "multi"), ("AUC", {}, "bin"),
                 ("AUC", {"curve": "PR", "num_thresholds": 13}, "multi"),
                 ("AUC", {"curve": "PRGAIN", "summation_method": "minoring", "num_thresholds": 9}, "bin"),
                 ("AUC", {"multi_label": True, "num_thresholds": 20}, "multi"),
                 ("AUC", {"thresholds": [0.1, 0.35, 0.7], "curve": "PR"}, "bin"),
                 ("F1Score", {"average": "weighted"}, "cat"), ("FBetaScore", {"beta": 2.0, "threshold": 0.3}, "multi"),
                 ("BinaryIoU", {"threshold": 0.4}, "bin"), ("SensitivityAtSpecificity", {"specificity": 0.6}, "bin"),
                 ("SpecificityAtSensitivity", {"sensitivity": 0.4, "num_thresholds": 1}, "bin"),
                 ("PrecisionAtRecall", {"recall": 0.7, "class_id": 2, "num_thresholds": 7}, "multi"),
                 ("RecallAtPrecision", {"precision": 0.5}, "bin")]
        for cls, kw, kind in specs:
            for weighted in (False, True):
                ups = []
                for _ in range(2):
                    y, p = makers[kind]()
                    ups.append((y, p, rng.uniform(0, 2, n).astype(np.float32) if weighted else None))
                out.append((cls, kw, ups))
        return out
''')

KERAS_SCRIPT = CASES_SOURCE + textwrap.dedent('''
    import os, sys
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    results = []
    for cls, kw, ups in cases():
        m = getattr(keras.metrics, cls)(**kw)
        for y, p, sw in ups:
            m.update_state(y, p, sample_weight=sw)
        results.append(np.asarray(m.result(), np.float64).tolist())
    import json
    print("RESULTS" + json.dumps(results))
''')


@pytest.mark.keras
def test_against_real_keras():
    exe = keras_python()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([exe, "-c", KERAS_SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = json.loads(out.stdout.split("RESULTS", 1)[1])
    scope: dict = {}
    exec(CASES_SOURCE, scope)
    for (cls, kw, ups), exp in zip(scope["cases"](), expected):
        m = getattr(metrics, cls)(**kw)
        for y, p, sw in ups:
            m.update_state(y, p, sample_weight=sw)
        np.testing.assert_allclose(np.asarray(m.result(), np.float64), exp, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{cls}({kw})")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

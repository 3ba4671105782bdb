"""Every Keras 3 loss: Keras's own test values (keras/src/losses/losses_test.py, ported as NumPy tests),
float64 NumPy references for the values under every reduction and sample-weight rank, finite
differences of those references for the gradients (from_logits, label_smoothing, axis, ignore_class),
the fused path, function forms (per-sample values), configs and errors."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from keras_check import keras_python
from rconv import losses, registry

EPS = float(np.float32(1e-7))
HI = float(np.float32(1) - np.float32(1e-7))
REDUCTIONS = ["sum_over_batch_size", "sum", None, "mean", "mean_with_sample_weight"]

# --- Keras's test values ----------------------------------------------------------------------------------
A_T, A_P = [[1, 9, 2], [-5, -2, 6]], [[4, 8, 12], [8, 1, 3]]
H_T, H_P = [[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]]
C_T = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
C_P = [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]
C_Z = [[8.0, 1.0, 1.0], [0.0, 9.0, 1.0], [2.0, 3.0, 5.0]]
B_T, B_P = np.reshape([1, 0, 1, 0], (2, 2)), np.reshape([1, 1, 1, 0], (2, 2)).astype(np.float32)
B_LT, B_Z = [[1, 0, 1], [0, 1, 1]], [[10.0, -10.0, 10.0], [10.0, 10.0, -10.0]]
F_P = np.reshape([0.9, 0.8, 0.7, 0.2], (2, 2))
F_LT, F_Z = [[1, 1, 0], [0, 1, 0]], [[1.5, -2.7, 2.9], [-3.8, 1.2, -4.5]]
SEG_T = [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]
SEG_P = [[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]]
AX_T = [[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]
AX_P = [[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]]
TS_T, TS_P = np.reshape(A_T, (2, 3, 1)), np.reshape(A_P, (2, 3, 1))
TS_W = np.reshape([3, 6, 5, 0, 4, 2], (2, 3))
SW = [[1.2], [3.4]]

KERAS_CASES = [  # (class, kwargs, y_true, y_pred, sample_weight, expected, rtol)
    ("MeanSquaredError", {}, A_T, A_P, None, 49.5, 1e-6),
    ("MeanSquaredError", {}, A_T, A_P, 2.3, 113.85, 1e-6),
    ("MeanSquaredError", {}, A_T, A_P, SW, 767.8 / 6, 1e-6),
    ("MeanSquaredError", {}, TS_T, TS_P, TS_W, 97.833336, 1e-6),
    ("MeanSquaredError", {}, A_T, A_P, 0, 0.0, 1e-6),
    ("MeanSquaredError", {"reduction": None}, A_T, A_P, 2.3, [84.3333, 143.3666], 1e-5),
    ("MeanSquaredError", {"reduction": "sum"}, A_T, A_P, 2.3, 227.69998, 1e-6),
    ("MeanSquaredError", {"reduction": "mean_with_sample_weight"}, A_T, A_P, SW,
     (110 / 3 * 1.2 + 187 / 3 * 3.4) / (1.2 + 3.4), 1e-6),
    ("MeanAbsoluteError", {}, A_T, A_P, None, 5.5, 1e-6),
    ("MeanAbsoluteError", {}, A_T, A_P, 2.3, 12.65, 1e-6),
    ("MeanAbsoluteError", {}, A_T, A_P, SW, 81.4 / 6, 1e-6),
    ("MeanAbsoluteError", {}, TS_T, TS_P, TS_W, 13.833333, 1e-6),
    ("MeanAbsoluteError", {"reduction": None}, A_T, A_P, 2.3, [10.7333, 14.5666], 1e-5),
    ("MeanAbsoluteError", {"reduction": "sum"}, A_T, A_P, 2.3, 25.29999, 1e-6),
    ("MeanAbsolutePercentageError", {}, A_T, A_P, None, 211.8518, 1e-5),
    ("MeanAbsolutePercentageError", {}, A_T, A_P, 2.3, 487.259, 1e-5),
    ("MeanAbsolutePercentageError", {}, A_T, A_P, SW, 422.8888, 1e-5),
    ("MeanAbsolutePercentageError", {}, TS_T, TS_P, TS_W, 694.4444, 1e-5),
    ("MeanAbsolutePercentageError", {"reduction": None}, A_T, A_P, 2.3, [621.8518, 352.6666], 1e-5),
    ("MeanAbsolutePercentageError", {"reduction": "mean_with_sample_weight"}, A_T, A_P, SW, 183.865, 1e-4),
    ("MeanSquaredLogarithmicError", {}, A_T, A_P, None, 1.4370, 1e-3),
    ("MeanSquaredLogarithmicError", {}, A_T, A_P, 2.3, 3.3051, 1e-3),
    ("MeanSquaredLogarithmicError", {}, A_T, A_P, SW, 3.7856, 1e-3),
    ("MeanSquaredLogarithmicError", {}, TS_T, TS_P, TS_W, 2.647374, 1e-5),
    ("MeanSquaredLogarithmicError", {"reduction": "mean_with_sample_weight"}, A_T, A_P, SW, 1.646, 1e-3),
    ("Hinge", {}, H_T, H_P, None, 1.3, 1e-6),
    ("Hinge", {"reduction": "sum"}, H_T, H_P, None, 2.6, 1e-6),
    ("Hinge", {"reduction": None}, H_T, H_P, None, [1.1, 1.5], 1e-6),
    ("Hinge", {}, H_T, H_P, [1, 0], 0.55, 1e-6),
    ("Hinge", {"reduction": None}, H_T, H_P, [1, 0], [1.1, 0.0], 1e-6),
    ("Hinge", {}, H_T, H_P, 0.0, 0.0, 1e-6),
    ("SquaredHinge", {}, H_T, H_P, None, 1.86, 1e-6),
    ("SquaredHinge", {"reduction": None}, H_T, H_P, None, [1.46, 2.26], 1e-6),
    ("SquaredHinge", {}, H_T, H_P, [1, 0], 0.73, 1e-6),
    ("CategoricalHinge", {}, H_T, H_P, None, 1.4, 1e-6),
    ("CategoricalHinge", {"reduction": None}, H_T, H_P, None, [1.2, 1.6], 1e-6),
    ("CategoricalHinge", {"reduction": "sum"}, H_T, H_P, [1, 0], 1.2, 1e-6),
    ("BinaryCrossentropy", {}, C_T, C_T, None, 0.0, 1e-6),
    ("BinaryCrossentropy", {"from_logits": True}, C_T, np.multiply(20, C_T) - 10, None, 0.0, 1e-6),
    ("BinaryCrossentropy", {}, B_T, B_P, None, 3.98559, 1e-5),
    ("BinaryCrossentropy", {"from_logits": True}, B_LT, B_Z, None, 3.3333, 1e-4),
    ("BinaryCrossentropy", {}, B_T, B_P, 2.3, 9.1668, 1e-4),
    ("BinaryCrossentropy", {"from_logits": True}, B_LT, B_Z, 2.3, 7.666, 1e-4),
    ("BinaryCrossentropy", {}, B_T, B_P, SW, 4.7827, 1e-4),
    ("BinaryCrossentropy", {"from_logits": True}, B_LT, B_Z, [4, 3], 10.0, 1e-4),
    ("BinaryCrossentropy", {"from_logits": True, "reduction": None}, B_LT, B_Z, None, [0.0, 6.666], 1e-3),
    ("CategoricalCrossentropy", {}, C_T, C_P, None, 0.3239, 1e-3),
    ("CategoricalCrossentropy", {"from_logits": True}, C_T, C_Z, None, 0.0573, 1e-3),
    ("CategoricalCrossentropy", {}, C_T, C_P, 2.3, 0.7449, 1e-3),
    ("CategoricalCrossentropy", {"from_logits": True}, C_T, C_Z, 2.3, 0.1317, 1e-3),
    ("CategoricalCrossentropy", {}, C_T, C_P, [[1.2], [3.4], [5.6]], 1.0696, 1e-3),
    ("CategoricalCrossentropy", {"from_logits": True}, C_T, C_Z, [[1.2], [3.4], [5.6]], 0.31829, 1e-3),
    ("CategoricalCrossentropy", {"from_logits": True, "reduction": None}, C_T, C_Z, None,
     [0.001822, 0.000459, 0.169846], 1e-3),
    ("SparseCategoricalCrossentropy", {}, [0, 1, 2], C_P, None, 0.3239, 1e-3),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, [[0], [1], [2]], C_Z, None, 0.0573, 1e-3),
    ("SparseCategoricalCrossentropy", {}, [[0], [1], [2]], C_P, 2.3, 0.7449, 1e-3),
    ("SparseCategoricalCrossentropy", {}, [[0], [1], [2]], C_P, [[1.2], [3.4], [5.6]], 1.0696, 1e-3),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "reduction": None}, [[0], [1], [2]], C_Z, None,
     [0.001822, 0.000459, 0.169846], 1e-3),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1, "reduction": None}, [[-1, 2]],
     [[[0.854, 0.698, 0.598], [0.088, 0.86, 0.018]]], None, [[0.0, 1.480129]], 1e-5),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1, "reduction": None}, [[[-1], [2]]],
     [[[0.854, 0.698, 0.598], [0.088, 0.86, 0.018]]], None, [[0.0, 1.480129]], 1e-5),
    ("BinaryFocalCrossentropy", {"gamma": 2.0}, B_T, F_P, None, 0.268, 2e-3),
    ("BinaryFocalCrossentropy", {"gamma": 3.0, "from_logits": True}, F_LT, F_Z, None, 0.799, 1e-3),
    ("BinaryFocalCrossentropy", {"gamma": 2.0}, B_T, F_P, 1.23, 0.3296, 1e-3),
    ("BinaryFocalCrossentropy", {"gamma": 3.0, "from_logits": True}, F_LT, F_Z, 3.21, 2.565, 1e-3),
    ("BinaryFocalCrossentropy", {"gamma": 2.0}, B_T, F_P, SW, 0.34415, 1e-3),
    ("BinaryFocalCrossentropy", {"gamma": 3.0, "from_logits": True}, F_LT, F_Z, SW, 0.95977, 1e-3),
    ("BinaryFocalCrossentropy", {"gamma": 2.0, "reduction": None}, B_T, F_P, None, [0.515547, 0.020513], 1e-5),
    ("CategoricalFocalCrossentropy", {}, C_T, C_P, None, 0.02059, 1e-3),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, C_T, C_Z, None, 0.000345, 3e-3),
    ("CategoricalFocalCrossentropy", {}, C_T, C_P, 2.3, 0.047368, 1e-3),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, C_T, C_Z, 2.3, 0.000794, 1e-2),
    ("CategoricalFocalCrossentropy", {}, C_T, C_P, [[1.2], [3.4], [5.6]], 0.06987, 1e-3),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, C_T, C_Z, [[1.2], [3.4], [5.6]], 0.001933, 1e-3),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "reduction": None}, C_T, C_Z, None,
     [1.5096224e-09, 2.4136547e-11, 1.0360638e-03], 1e-4),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, [[1, 0, 0]], [[4.9, -0.5, 2.05]],
     None, 0.06685, 1e-3),
    ("Dice", {}, [[1, 2], [1, 2]], [[4, 1], [6, 1]], None, -0.55555546, 1e-6),
    ("Dice", {}, SEG_T, SEG_P, None, 0.77777773, 1e-6),
    ("Dice", {"axis": (1, 2, 3), "reduction": None}, AX_T, AX_P, None, [0.5, 0.75757575], 1e-6),
    ("Tversky", {}, [[1, 2], [1, 2]], [[4, 1], [6, 1]], None, -0.55555546, 1e-6),
    ("Tversky", {"alpha": 0.2, "beta": 0.8}, [[1, 2], [1, 2]], [[4, 1], [6, 1]], None, -0.29629636, 1e-6),
    ("Tversky", {}, SEG_T, SEG_P, None, 0.77777773, 1e-6),
    ("Tversky", {"axis": (1, 2, 3), "reduction": None}, AX_T, AX_P, None, [0.5, 0.75757575], 1e-6),
    ("Tversky", {"alpha": 0.2, "beta": 0.8}, SEG_T, SEG_P, None, 0.7916667, 1e-6),
]


@pytest.mark.parametrize("case", KERAS_CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(KERAS_CASES)])
def test_keras_values(case):
    name, kwargs, y, p, sw, expected, rtol = case
    loss = getattr(losses, name)(**kwargs)
    value = loss(np.asarray(y), np.asarray(p, np.float32), sample_weight=sw)
    # Keras asserts with assertAlmostEqual (|error| < 1.5e-3) and assertAllClose (1e-6 + rtol)
    np.testing.assert_allclose(np.asarray(value, np.float64), expected, rtol=rtol,
                               atol=1.5e-3 if np.ndim(expected) == 0 else 1e-3)


# --- float64 references -----------------------------------------------------------------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def _hinge_t(y):
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


def _bce(y, p, from_logits=False, label_smoothing=0.0):
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return np.maximum(p, 0) - p * y + np.log1p(np.exp(-np.abs(p)))
    pc = np.clip(p, EPS, HI)
    return -(y * np.log(pc) + (1 - y) * np.log(1 - pc))


def _bfce(y, p, from_logits=False, label_smoothing=0.0, alpha=0.25, gamma=2.0, apply_class_balancing=False):
    y = y * (1 - label_smoothing) + 0.5 * label_smoothing
    p = _sigmoid(p) if from_logits else p
    p_t = y * p + (1 - y) * (1 - p)
    w = y * alpha + (1 - y) * (1 - alpha) if apply_class_balancing else 1.0
    return (w * (1 - p_t) ** gamma * _bce(y, p)).mean(-1)


def _cce(y, p, from_logits=False, label_smoothing=0.0, alpha=None, gamma=None, axis=-1):
    if axis != -1:
        return _cce(np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1), from_logits, label_smoothing, alpha, gamma)
    y = y * (1 - label_smoothing) + label_smoothing / y.shape[-1]
    if from_logits and alpha is None:
        return -(y * _log_softmax(p)).sum(-1)
    q = np.exp(_log_softmax(p)) if from_logits else p
    q = np.clip(q / q.sum(-1, keepdims=True), EPS, HI)
    focal = 1.0 if alpha is None else alpha * (1 - q) ** gamma
    return (-focal * y * np.log(q)).sum(-1)


def _scce(ids, p, from_logits=False, ignore_class=None):
    logp = _log_softmax(p if from_logits else np.log(np.clip(p, EPS, HI)))
    safe = np.where(ids == ignore_class, 0, ids) if ignore_class is not None else ids
    out = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    return np.where(ids == ignore_class, 0.0, out) if ignore_class is not None else out


def _tversky(y, p, axis, alpha=0.5, beta=0.5):
    inter = (y * p).sum(axis)
    return 1 - inter / (inter + alpha * ((1 - p) * y).sum(axis) + beta * (p * (1 - y)).sum(axis) + EPS)


def _cosine(y, p, axis=-1):
    unit = lambda v: v / np.maximum(np.sqrt((v * v).sum(axis, keepdims=True)), EPS)  # noqa: E731
    return -(unit(y) * unit(p)).sum(axis)


REF = {  # name -> (per-sample values (y, p, **kwargs), kind of data)
    "MeanSquaredError": (lambda y, p: ((p - y) ** 2).mean(-1), "real"),
    "MeanAbsoluteError": (lambda y, p: np.abs(p - y).mean(-1), "real"),
    "MeanAbsolutePercentageError": (lambda y, p: 100 * (np.abs(y - p) / np.maximum(np.abs(y), EPS)).mean(-1), "real"),
    "MeanSquaredLogarithmicError": (lambda y, p: ((np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(y, EPS))) ** 2
                                                  ).mean(-1), "positive"),
    "Huber": (lambda y, p, delta=1.0: np.where(np.abs(p - y) <= delta, 0.5 * (p - y) ** 2,
                                                delta * np.abs(p - y) - 0.5 * delta ** 2).mean(-1), "real"),
    "LogCosh": (lambda y, p: np.log(np.cosh(p - y)).mean(-1), "real"),
    "Hinge": (lambda y, p: np.maximum(1 - _hinge_t(y) * p, 0).mean(-1), "binary"),
    "SquaredHinge": (lambda y, p: (np.maximum(1 - _hinge_t(y) * p, 0) ** 2).mean(-1), "binary"),
    "CategoricalHinge": (lambda y, p: np.maximum(((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0), "onehot"),
    "KLDivergence": (lambda y, p: (np.clip(y, EPS, 1) * np.log(np.clip(y, EPS, 1) / np.clip(p, EPS, 1))).sum(-1),
                     "probs"),
    "Poisson": (lambda y, p: (p - y * np.log(p + EPS)).mean(-1), "positive"),
    "CosineSimilarity": (_cosine, "real"),
    "BinaryCrossentropy": (lambda y, p, axis=-1, **kw: _bce(y, p, **kw).mean(axis), "binary"),
    "BinaryFocalCrossentropy": (_bfce, "binary"),
    "CategoricalCrossentropy": (_cce, "onehot"),
    "CategoricalFocalCrossentropy": (lambda y, p, alpha=0.25, gamma=2.0, **kw: _cce(y, p, alpha=alpha, gamma=gamma,
                                                                                    **kw), "onehot"),
    "SparseCategoricalCrossentropy": (_scce, "ids"),
    "Dice": (lambda y, p, axis=None: 1 - 2 * (y * p).sum(axis) / (y.sum(axis) + p.sum(axis) + EPS), "binary"),
    "Tversky": (lambda y, p, axis=None, **kw: _tversky(y, p, axis, **kw), "binary"),
}

CONFIGS = [  # (name, kwargs, prediction shape)
    ("MeanSquaredError", {}, (5, 3)), ("MeanSquaredError", {}, (1, 1)), ("MeanSquaredError", {}, (2, 3, 4)),
    ("MeanAbsoluteError", {}, (4, 7)), ("MeanAbsolutePercentageError", {}, (3, 5)),
    ("MeanSquaredLogarithmicError", {}, (4, 3)), ("Huber", {"delta": 0.7}, (5, 4)), ("Huber", {}, (1, 6)),
    ("LogCosh", {}, (3, 3)), ("Hinge", {}, (4, 5)), ("SquaredHinge", {}, (2, 2, 3)), ("CategoricalHinge", {}, (5, 4)),
    ("KLDivergence", {}, (4, 6)), ("Poisson", {}, (3, 4)), ("CosineSimilarity", {}, (4, 5)),
    ("CosineSimilarity", {"axis": 0}, (3, 4)),
    ("BinaryCrossentropy", {}, (5, 3)), ("BinaryCrossentropy", {}, (4, 1)),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, (3, 4)),
    ("BinaryCrossentropy", {"axis": 1}, (2, 3, 4)),
    ("BinaryFocalCrossentropy", {"gamma": 1.5}, (4, 3)),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "from_logits": True,
                                 "label_smoothing": 0.1}, (3, 4)),
    ("CategoricalCrossentropy", {}, (5, 4)), ("CategoricalCrossentropy", {}, (1, 2)),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.3}, (4, 5)),
    ("CategoricalCrossentropy", {"axis": 1, "from_logits": True}, (2, 3, 4)),
    ("CategoricalCrossentropy", {"from_logits": True}, (2, 3, 5)),
    ("CategoricalFocalCrossentropy", {}, (4, 3)),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "gamma": 3.0, "alpha": 0.5, "label_smoothing": 0.1}, (3, 4)),
    ("SparseCategoricalCrossentropy", {}, (5, 4)), ("SparseCategoricalCrossentropy", {"from_logits": True}, (1, 3)),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1}, (6, 3)),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, (2, 3, 4)),
    ("Dice", {}, (3, 4)), ("Dice", {"axis": -1}, (4, 3)), ("Dice", {"axis": (1, 2)}, (2, 3, 2)),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": 1}, (4, 5)), ("Tversky", {}, (2, 3)),
]


def _data(name, kwargs, shape, rng):
    kind = REF[name][1]
    logits = kwargs.get("from_logits", False)
    axis = kwargs.get("axis", -1)
    if kind == "ids":
        return rng.integers(0, shape[-1], shape[:-1]), (rng.normal(size=shape) * 2 if logits
                                                        else rng.dirichlet(np.ones(shape[-1]), shape[:-1]) * 0.9 + 0.02)
    if kind == "onehot":
        classes = shape[axis]
        y = np.moveaxis(np.eye(classes)[rng.integers(0, classes, np.delete(shape, axis % len(shape)))], -1, axis)
        p = rng.normal(size=shape) * 2 if logits or name == "CategoricalHinge" else rng.uniform(0.05, 1, shape)
        return y, p
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(float), (rng.normal(size=shape) * 2 if logits or "Hinge" in name
                                                          else rng.uniform(0.03, 0.97, shape))
    if kind == "probs":
        return rng.dirichlet(np.ones(shape[-1]), shape[:-1]), rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    if kind == "positive":
        return rng.uniform(0.1, 3, shape), rng.uniform(0.1, 3, shape)
    return rng.normal(size=shape), rng.normal(size=shape)


def _ref_values(name, kwargs, y, p):
    kw = {k: v for k, v in kwargs.items() if k != "reduction"}
    if name in ("Dice", "Tversky") and isinstance(kw.get("axis"), tuple):
        kw["axis"] = kw["axis"]
    return np.asarray(REF[name][0](y, p, **kw), np.float64)


def _ref_reduce(values, sw, reduction, mask=None):
    """Keras 3's reduce_weighted_values, in float64."""
    if mask is not None:
        fmask = np.where(mask, mask.size / mask.sum(), 0.0) if reduction in ("mean", "sum_over_batch_size") \
            else mask.astype(float)
        sw = fmask if sw is None else np.reshape(sw, losses.squeeze_or_expand_shapes(fmask.shape, np.shape(sw))[1]) \
            * fmask.reshape(losses.squeeze_or_expand_shapes(fmask.shape, np.shape(sw))[0])
    if sw is not None:
        vs, ws = losses.squeeze_or_expand_shapes(values.shape, np.shape(sw))
        values = values.reshape(vs) * np.reshape(sw, ws)
    if reduction in (None, "none") or values.shape == ():
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    divisor = np.sum(sw) if reduction == "mean_with_sample_weight" and sw is not None else values.size
    return total / divisor if divisor else 0.0


def _weights(kind, values_shape, rng):
    if kind is None or values_shape == ():
        return None
    if kind == "scalar":
        return 1.7
    if kind == "batch":  # (n,) against rank-1 values, (n, 1, ...) otherwise: Keras would not broadcast (n,)
        return rng.uniform(0.2, 2, values_shape[:1] + (1,) * (len(values_shape) - 1))
    if kind == "batch_col":
        return rng.uniform(0.2, 2, values_shape[:1] + (1,))
    return rng.uniform(0, 2, values_shape)  # "full"


@pytest.mark.parametrize("weights", [None, "scalar", "batch", "batch_col", "full"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("config", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_values_and_gradients_against_float64_references(config, reduction, weights):
    name, kwargs, shape = config
    rng = np.random.default_rng(zlib.crc32(repr((name, kwargs, shape, reduction, weights)).encode()))
    y, p = _data(name, kwargs, shape, rng)
    p = p.astype(np.float32).astype(np.float64)  # the kernel sees float32 predictions
    loss = getattr(losses, name)(reduction=reduction, **kwargs)
    per_sample = _ref_values(name, kwargs, y, p)
    if weights == "batch_col" and per_sample.ndim != 1:
        weights = "batch"
    sw = _weights(weights, per_sample.shape, rng)
    mask = None if kwargs.get("ignore_class") is None else y != kwargs["ignore_class"]
    expected = _ref_reduce(per_sample, sw, reduction, mask)
    targets = loss.prepare_targets(y, p.shape)
    value, grad = loss.value_and_grad(targets, p.astype(np.float32), sample_weight=sw)
    np.testing.assert_allclose(np.asarray(value, np.float64), expected, rtol=2e-5, atol=1e-6)
    assert grad.shape == p.shape and grad.dtype == np.float32

    def f(q):
        return float(np.sum(_ref_reduce(_ref_values(name, kwargs, y, q), sw, reduction, mask)))
    fd = np.zeros_like(p)
    h = 1e-6
    for i in np.ndindex(p.shape):
        d = np.zeros_like(p)
        d[i] = h
        fd[i] = (f(p + d) - f(p - d)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=2e-3, atol=2e-5 * max(1.0, np.abs(fd).max()))


@pytest.mark.parametrize("name, kwargs", [("CategoricalCrossentropy", {}), ("CategoricalCrossentropy",
                                                                           {"label_smoothing": 0.2}),
                                          ("SparseCategoricalCrossentropy", {}), ("BinaryCrossentropy", {}),
                                          ("BinaryCrossentropy", {"label_smoothing": 0.1})])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
def test_fused_path_is_the_logits_loss(name, kwargs, reduction):
    rng = np.random.default_rng(3)
    loss = getattr(losses, name)(reduction=reduction, **kwargs)
    assert loss.fuses_with == ("sigmoid" if name.startswith("Binary") else "softmax")
    z = rng.normal(size=(6, 4)).astype(np.float32)
    y = rng.integers(0, 4, 6) if name.startswith("Sparse") else (
        rng.integers(0, 2, (6, 4)) if name.startswith("Binary") else np.eye(4)[rng.integers(0, 4, 6)])
    sw = rng.uniform(0, 2, 6)
    t = loss.prepare_targets(y, z.shape)
    fused = loss.fused_value_and_grad(t, z, sample_weight=sw)
    direct = getattr(losses, name)(reduction=reduction, from_logits=True, **kwargs).value_and_grad(t, z, sw)
    assert fused[0] == pytest.approx(direct[0], rel=1e-6)
    np.testing.assert_allclose(fused[1], direct[1], rtol=1e-6)
    probs = 1 / (1 + np.exp(-z)) if name.startswith("Binary") else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    assert loss(y, probs, sample_weight=sw) == pytest.approx(fused[0], rel=1e-4)
    assert getattr(losses, name)(from_logits=True, **kwargs).fuses_with is None


FUNCTIONS = [("mean_squared_error", "mse"), ("mean_absolute_error", "mae"), ("mean_absolute_percentage_error", "mape"),
             ("mean_squared_logarithmic_error", "msle"), ("kl_divergence", "kld"), ("log_cosh", "logcosh"),
             ("binary_crossentropy", "bce"), ("huber", None), ("hinge", None), ("squared_hinge", None),
             ("categorical_hinge", None), ("poisson", None), ("cosine_similarity", None),
             ("binary_focal_crossentropy", None), ("categorical_crossentropy", None),
             ("categorical_focal_crossentropy", None), ("dice", None), ("tversky", None)]


@pytest.mark.parametrize("fn, alias", FUNCTIONS)
def test_function_forms_give_per_sample_values(fn, alias):
    rng = np.random.default_rng(5)
    y, p = rng.integers(0, 2, (4, 3)).astype(np.float32), rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    cls = losses.get(fn)
    values = getattr(losses, fn)(y, p)
    assert np.shape(values) == (() if fn in ("dice", "tversky") else (4,))
    np.testing.assert_allclose(np.mean(values), cls(y, p), rtol=1e-6)
    if alias:
        np.testing.assert_allclose(getattr(losses, alias)(y, p), values)
        assert type(losses.get(alias)) is type(cls) and losses.get(alias).name == alias
    assert type(losses.get(getattr(losses, fn))) is type(cls)


def test_sparse_function_form_and_ignore_class_mean_over_valid_entries():
    z = np.array([[2.0, 0.0, 1.0], [0.5, 0.5, 3.0], [1.0, 2.0, 0.0]], np.float32)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy([0, 2, 1], z, from_logits=True),
                               _scce(np.array([0, 2, 1]), z.astype(np.float64), True), rtol=1e-6)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2)
    expected = _scce(np.array([0, 1]), z[[0, 2]].astype(np.float64), True).mean()
    assert loss([0, 2, 1], z) == pytest.approx(expected, rel=1e-6)  # divided by the 2 valid rows
    _, grad = loss.value_and_grad(loss.prepare_targets([0, 2, 1], z.shape), z)
    assert not grad[1].any()
    all_ignored = loss.value_and_grad(np.array([2, 2, 2]), z)
    assert all_ignored[0] == 0.0 and not all_ignored[1].any()


def test_reduction_none_gradient_is_that_of_the_weighted_sum():
    rng = np.random.default_rng(8)
    y, p = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)).astype(np.float32)
    sw = np.array([1.0, 2.0, 0.5])
    values, grad = losses.MeanSquaredError(reduction=None).value_and_grad(y.astype(np.float32), p, sw)
    np.testing.assert_allclose(values, ((p - y) ** 2).mean(-1) * sw, rtol=1e-5)
    np.testing.assert_allclose(grad, 2 * (p - y) / 4 * sw[:, None], rtol=1e-4, atol=1e-6)
    # weights with more axes than the per-sample values broadcast them, as in Keras
    v = losses.MeanSquaredError(reduction=None)(y, p, sample_weight=np.ones((2, 3)))
    assert v.shape == (2, 3)


@pytest.mark.parametrize("name", sorted({registry.name_of("losses", registry.get("losses", n))
                                         for n in registry.names("losses")}))
def test_config_round_trip(name):
    cls = registry.get("losses", name)
    loss = cls(name="custom", reduction="sum")
    config = loss.get_config()
    assert config["name"] == "custom" and config["reduction"] == "sum"
    again = cls.from_config(config)
    assert again.get_config() == config
    entry = losses.serialize(loss)
    assert entry["class_name"] == name and losses.deserialize(entry).get_config() == config
    assert losses.get(entry).get_config() == config


def test_config_keeps_parameters_and_default_names():
    assert losses.Huber(delta=2.5).get_config() == {"name": "huber_loss", "reduction": "sum_over_batch_size",
                                                    "delta": 2.5}
    assert losses.SparseCategoricalCrossentropy(ignore_class=3).get_config() == {
        "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
        "ignore_class": 3}
    assert losses.Dice(axis=(1, 2)).get_config() == {"name": "dice", "reduction": "sum_over_batch_size",
                                                     "axis": (1, 2)}
    cfg = losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=1.0).get_config()
    assert (cfg["apply_class_balancing"], cfg["alpha"], cfg["gamma"], cfg["axis"]) == (True, 0.4, 1.0, -1)
    assert losses.KLDivergence().name == "kl_divergence" and losses.LogCosh().name == "log_cosh"
    assert losses.get("auto" and "mse").reduction == "sum_over_batch_size"
    assert losses.MeanSquaredError(reduction="auto").reduction == "sum_over_batch_size"


def test_errors_name_the_loss_and_shapes():
    with pytest.raises(ValueError, match="Invalid value for argument `reduction`"):
        losses.Hinge(reduction="abc")
    with pytest.raises(ValueError, match=r"'mean_squared_error': sample_weight of shape \(3,\) .* \(2,\)"):
        losses.MeanSquaredError()(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="axis must be of type|`axis` must be of type"):
        losses.CategoricalCrossentropy(axis=True)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        losses.CosineSimilarity(axis=2)(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 3\)"):
        losses.SparseCategoricalCrossentropy()([0, 3], np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="look like integer class ids"):
        losses.CategoricalCrossentropy().prepare_targets(np.zeros(4), (4, 3))
    with pytest.raises(ValueError, match="These look like one-hot targets"):
        losses.SparseCategoricalCrossentropy().prepare_targets(np.zeros((4, 3)), (4, 3))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4\) do not match predictions of shape \(2, 3\)"):
        losses.MeanAbsoluteError()(np.zeros((2, 4)), np.zeros((2, 3)))


def test_keras_label_shape_rules_in_call():
    p = np.array([[0.2], [0.7], [0.9]], np.float32)
    y = np.array([0.0, 1.0, 1.0])
    assert losses.BinaryCrossentropy()(y, p) == pytest.approx(losses.BinaryCrossentropy()(y[:, None], p))
    assert losses.MeanSquaredError()(y[:, None], p[:, 0]) == pytest.approx(np.mean((y - p[:, 0]) ** 2), rel=1e-6)


def test_empty_batch_reduces_to_zero():
    value, grad = losses.MeanSquaredError().value_and_grad(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert value == 0.0 and grad.shape == (0, 3)


# --- real Keras 3: values and gradients on random cases (needs RCONV_KERAS_PYTHON or python3 with keras) ---
KERAS_CASES_SOURCE = '''
import numpy as np
def cases():
    rng = np.random.default_rng(11)
    n, c = 5, 4
    probs = lambda: (lambda x: (x / x.sum(-1, keepdims=True)).astype(np.float32))(rng.random((n, c)) + 0.05)
    reg = lambda: rng.normal(size=(n, c)).astype(np.float32)
    b01 = lambda: rng.integers(0, 2, (n, c)).astype(np.float32)
    onehot = lambda: np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]
    specs = [("MeanSquaredError", {}, reg, reg), ("MeanAbsolutePercentageError", {}, reg, reg),
             ("Huber", {"delta": 0.7}, reg, reg), ("LogCosh", {}, reg, reg), ("SquaredHinge", {}, b01, reg),
             ("CategoricalHinge", {}, onehot, reg), ("KLDivergence", {}, probs, probs),
             ("CosineSimilarity", {"axis": 0}, reg, reg),
             ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, b01, reg),
             ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "gamma": 1.5}, b01,
              lambda: rng.uniform(0.05, 0.95, (n, c)).astype(np.float32)),
             ("CategoricalCrossentropy", {"label_smoothing": 0.1}, onehot, probs),
             ("CategoricalFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, onehot, reg),
             ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1},
              lambda: rng.integers(0, c, n), reg),
             ("Dice", {"axis": -1}, b01, probs), ("Tversky", {"alpha": 0.2, "beta": 0.8}, b01, probs)]
    out = []
    for reduction in ["sum_over_batch_size", "sum", None, "mean_with_sample_weight"]:
        for cls, kw, make_y, make_p in specs:
            sw = rng.uniform(0, 2, c if kw.get("axis") == 0 else n).astype(np.float32)  # one per loss value
            out.append((cls, dict(kw, reduction=reduction), make_y(), make_p(), sw))
    return out
'''

KERAS_LOSS_SCRIPT = KERAS_CASES_SOURCE + '''
import json, os
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras, tensorflow as tf
results = []
for cls, kw, y, p, sw in cases():
    v = tf.Variable(p)
    with tf.GradientTape() as tape:
        value = getattr(keras.losses, cls)(**kw)(y, v, sample_weight=sw)
        total = tf.reduce_sum(value)
    results.append([np.asarray(value, np.float64).tolist(), tape.gradient(total, v).numpy().tolist()])
print("RESULTS" + json.dumps(results))
'''


@pytest.mark.keras
def test_values_and_gradients_equal_real_keras():
    import json
    import os
    import subprocess
    exe = keras_python()
    out = subprocess.run([exe, "-c", KERAS_LOSS_SCRIPT], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    expected = json.loads(out.stdout.split("RESULTS", 1)[1])
    scope: dict = {}
    exec(KERAS_CASES_SOURCE, scope)
    for (cls, kw, y, p, sw), (value, grad) in zip(scope["cases"](), expected):
        loss = getattr(losses, cls)(**kw)
        got, g = loss.value_and_grad(loss.prepare_targets(y, p.shape), p, sample_weight=sw)
        np.testing.assert_allclose(np.asarray(got, np.float64), value, rtol=1e-4, atol=1e-6, err_msg=f"{cls}{kw}")
        np.testing.assert_allclose(g, grad, rtol=1e-3, atol=1e-6, err_msg=f"{cls}{kw} gradient")
        np.testing.assert_allclose(np.asarray(loss(y, p, sample_weight=sw), np.float64), value, rtol=1e-4, atol=1e-6)

"""Layer-contract cases (tests/test_layers_contract.py) of the activation layers — ReLU with parameters,
LeakyReLU, ELU, Softmax over other axes, PReLU — and the float64 references of every activation Keras 3
names (`REFERENCES`, also added to tests/reference.py's `ACTIVATIONS`, which the contract's
`Activation(name)` cases for every registered name read). tests/test_activations_ext.py uses the same
references for the functions themselves."""
from __future__ import annotations

import math

import numpy as np

import reference as ref
from contract_case import Case
from rconv import layers

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def sig(x):
    """Stable float64 sigmoid (no cancellation in either tail)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x):
    return np.logaddexp(x, 0.0)


def hard_sigmoid(x):
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def inside(x, lo, hi):
    return ((x > lo) & (x < hi)).astype(np.float64)


def gelu_tanh(x):
    """0.5 x (1 + tanh(u)), written x sigmoid(2u) so that the negative tail keeps its precision."""
    return x * sig(2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))


def mish_grad(x):
    t = np.tanh(softplus(x))
    return t + x * (1 - t * t) * sig(x)


def softmax(x, axis=-1):
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return e / e.sum(axis=axes, keepdims=True)


def log_softmax(x, axis=-1):
    return np.log(softmax(x, axis))


def relu_with(slope, max_value, threshold):
    """Keras 3's relu(x, negative_slope, max_value, threshold) and its derivative (TF's at the kinks)."""
    def f(x):
        pos = np.where(x > threshold, x, 0.0)
        if max_value is not None:
            pos = np.clip(pos, 0.0, max_value)
        return pos - slope * np.maximum(threshold - x, 0.0)

    def d(x):
        live = (x > threshold) & ((x > 0) & (x < max_value) if max_value is not None else True)
        return live + slope * (x < threshold)
    return f, d


# name -> (float64 forward, float64 derivative or None, kinks)
REFERENCES = {
    "relu": (lambda x: np.maximum(x, 0), lambda x: inside(x, 0, np.inf), [0]),
    "sigmoid": (sig, lambda x: sig(x) * (1 - sig(x)), []),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, []),
    "elu": (lambda x: np.where(x > 0, x, np.expm1(x)), lambda x: np.where(x > 0, 1.0, np.exp(x)), []),
    "selu": (lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)),
             lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(x)), [0]),
    "gelu": (lambda x: 0.5 * x * _erfc(-x / np.sqrt(2)),
             lambda x: 0.5 * _erfc(-x / np.sqrt(2)) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi), []),
    "silu": (lambda x: x * sig(x), lambda x: sig(x) * (1 + x * (1 - sig(x))), []),
    "softplus": (softplus, sig, []),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2, []),
    "hard_sigmoid": (hard_sigmoid, lambda x: inside(x, -3, 3) / 6, [-3, 3]),
    "hard_silu": (lambda x: x * hard_sigmoid(x), lambda x: hard_sigmoid(x) + x * inside(x, -3, 3) / 6, [-3, 3]),
    "leaky_relu": (lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2), [0]),
    "relu6": (lambda x: np.clip(x, 0, 6), lambda x: inside(x, 0, 6), [0, 6]),
    "exponential": (np.exp, np.exp, []),
    "mish": (lambda x: x * np.tanh(softplus(x)), mish_grad, []),
    "linear": (lambda x: x, np.ones_like, []),
    "softmax": (softmax, None, []),
    "log_softmax": (log_softmax, None, []),
}
ref.ACTIVATIONS.update({name: (lambda x, f=f: f(ref.f64(x))) for name, (f, _, _) in REFERENCES.items()
                        if name not in ref.ACTIVATIONS})


def _relu_layer_ref(max_value=None, negative_slope=0.0, threshold=0.0, **_):
    f, _ = relu_with(negative_slope, max_value, threshold)
    return lambda x, w: f(x)


def _leaky_ref(negative_slope=0.3, **_):
    return lambda x, w: np.where(x > 0, x, negative_slope * x)


def _elu_ref(alpha=1.0, **_):
    return lambda x, w: np.where(x > 0, x, alpha * np.expm1(x))


def _softmax_ref(axis=-1, **_):
    return lambda x, w: softmax(x, axis)


def _prelu_ref(**_):
    return lambda x, w: np.where(x > 0, x, w[0] * x)


CASES = [
    Case(layers.ReLU, dict(max_value=0.6, negative_slope=0.3, threshold=0.2), (1, 5, 3), _relu_layer_ref),
    Case(layers.ReLU, dict(max_value=6.0), (3, 7), _relu_layer_ref),
    Case(layers.ReLU, dict(negative_slope=1, threshold=0.5, max_value=10), (2, 3, 4), _relu_layer_ref),
    Case(layers.LeakyReLU, {}, (2, 3, 4), _leaky_ref),
    Case(layers.LeakyReLU, dict(negative_slope=1), (1, 1), _leaky_ref),
    Case(layers.ELU, {}, (2, 3, 4), _elu_ref),
    Case(layers.ELU, dict(alpha=0.7), (1, 2, 2, 3), _elu_ref),
    Case(layers.Softmax, dict(axis=1), (2, 3, 4), _softmax_ref, bad=[(2,)]),
    Case(layers.Softmax, dict(axis=[1, 2]), (1, 3, 4, 2), _softmax_ref, bad=[(1, 3)]),
    Case(layers.PReLU, {}, (2, 3, 4), _prelu_ref, bad=[(3,)], bad_built=[(2, 3, 5), (2, 3, 4, 1)]),
    Case(layers.PReLU, dict(shared_axes=[1, 2], alpha_initializer="glorot_uniform"), (3, 5, 4, 2), _prelu_ref,
         bad=[(3,)], bad_built=[(3, 5, 4, 3), (3, 5, 2)]),
    Case(layers.PReLU, dict(shared_axes=1, alpha_regularizer="l1", alpha_constraint="non_neg"), (1, 3, 1),
         _prelu_ref, bad=[(3,)], bad_built=[(1, 3, 2)]),
]

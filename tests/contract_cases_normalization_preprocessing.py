"""Layer-contract cases (tests/test_layers_contract.py) of the preprocessing `Normalization` layer with given
statistics (per channel, per position on several axes, scalar, `invert`), against a float64 NumPy reference.
The adapted form (statistics in weights, gradients for them) is checked in tests/test_applications_normalization.py."""
from __future__ import annotations

import numpy as np

from contract_case import Case
from rconv.layers.normalization_preprocessing import Normalization


def normalization_ref(axis=-1, mean=None, variance=None, invert=False):
    def fn(x, w):
        x = np.asarray(x, np.float64)
        axes = () if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        keep = sorted(a % x.ndim for a in axes)
        m, v = np.asarray(mean, np.float64), np.asarray(variance, np.float64)
        shape = [1] * x.ndim
        for i in range(1, m.ndim + 1):
            shape[keep[-i]] = m.shape[-i]
        m, v = m.reshape(shape), v.reshape(shape)
        s = np.maximum(np.sqrt(v), 1e-7)
        return m + x * s if invert else (x - m) / s
    return fn


CASES = [
    Case(Normalization, dict(mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 1e-16]), (2, 3, 5, 3), normalization_ref,
         bad=[(2, 3, 5, 4)]),
    Case(Normalization, dict(mean=[0.1, -0.2, 0.3], variance=[0.5, 2.0, 4.0], invert=True), (1, 2, 2, 3),
         normalization_ref),
    Case(Normalization, dict(axis=(1, 2), mean=np.linspace(-1, 1, 6).reshape(2, 3).tolist(),
                             variance=np.linspace(0.5, 3, 6).reshape(2, 3).tolist()), (3, 2, 3, 1),
         normalization_ref),
    Case(Normalization, dict(axis=None, mean=0.5, variance=4.0), (2, 7), normalization_ref),
    Case(Normalization, dict(axis=1, mean=[1.0], variance=[9.0]), (2, 1), normalization_ref),
]

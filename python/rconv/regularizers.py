"""Weight regularizers with Keras 3's names, formulas and configs (`keras/src/regularizers/regularizers.py`).

A regularizer maps a weight to a scalar penalty that Keras adds to the reported loss; rconv also needs its
gradient, `gradient(x)`, which the trainer adds to the weight's gradient. Layers take them as
`kernel_regularizer`/`bias_regularizer` (through `Layer.add_weight(regularizer=...)`) and
`activity_regularizer` (applied to the layer's output).
"""
from __future__ import annotations

import numpy as np

from . import registry


def _check_factor(value, name: str, cls: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}: `{name}` must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{cls}: `{name}` must be a finite number >= 0, got {value!r}")
    return value


class Regularizer:
    """Base class: `__call__(x)` is the penalty (a float), `gradient(x)` its gradient (shaped like x)."""

    def __call__(self, x) -> float:
        return 0.0

    def gradient(self, x) -> np.ndarray:
        return np.zeros_like(x, dtype=np.float32)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("regularizers", "L1L2", "l1_l2", "l1l2")
class L1L2(Regularizer):
    """`l1 * sum(|x|) + l2 * sum(x**2)`."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check_factor(l1, "l1", type(self).__name__)
        self.l2 = _check_factor(l2, "l2", type(self).__name__)

    def __call__(self, x) -> float:
        x = np.asarray(x, np.float64)
        total = 0.0
        if self.l1:
            total += self.l1 * float(np.abs(x).sum())
        if self.l2:
            total += self.l2 * float(np.square(x).sum())
        return total

    def gradient(self, x) -> np.ndarray:
        x = np.asarray(x, np.float32)
        g = np.zeros_like(x)
        if self.l1:
            g += np.float32(self.l1) * np.sign(x)
        if self.l2:
            g += np.float32(2.0 * self.l2) * x
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


@registry.register("regularizers", "L1", "l1")
class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


@registry.register("regularizers", "L2", "l2")
class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


@registry.register("regularizers", "OrthogonalRegularizer", "orthogonal_regularizer")
class OrthogonalRegularizer(Regularizer):
    """`factor * mean(|offdiag(n n^T)|)` over the L2-normalized rows (`mode="rows"`) or columns of a 2-D
    weight, as Keras 3 computes it."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _check_factor(factor, "factor", "OrthogonalRegularizer")
        if mode not in ("rows", "columns"):
            raise ValueError('Invalid value for argument `mode`. Expected one of {"rows", "columns"}. '
                             f"Received: mode={mode}")
        self.mode = mode

    def _parts(self, x):
        x = np.asarray(x, np.float64)
        if x.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: inputs.shape={x.shape}")
        v = x if self.mode == "rows" else x.T
        norm = np.sqrt(np.maximum((v * v).sum(axis=1, keepdims=True), 1e-12))
        n = v / norm
        prod = n @ n.T
        size = prod.shape[0]
        off = prod * (1.0 - np.eye(size))
        return v, norm, n, off, size

    def __call__(self, x) -> float:
        _, _, _, off, size = self._parts(x)
        return self.factor * float(np.abs(off).sum()) / (size * (size - 1)) if size > 1 else 0.0

    def gradient(self, x) -> np.ndarray:
        v, norm, n, off, size = self._parts(x)
        if size < 2:
            return np.zeros(np.shape(x), np.float32)
        d_prod = self.factor * np.sign(off) / (size * (size - 1))
        d_n = (d_prod + d_prod.T) @ n
        # through the row normalisation n = v / |v|
        d_v = (d_n - n * (d_n * n).sum(axis=1, keepdims=True)) / norm
        return (d_v if self.mode == "rows" else d_v.T).astype(np.float32)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Function-style aliases, like `keras.regularizers.l2(0.01)`.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer


_OBJECTS = registry.ConfigObjects("regularizers", "keras.regularizers", Regularizer, "regularizer", allow_none=True)
serialize = _OBJECTS.serialize  # Keras 3's serialized form (None stays None)
deserialize = _OBJECTS.deserialize
get = _OBJECTS.get  # from None, an instance, a name ('l2', 'L2'), a config dict or a class

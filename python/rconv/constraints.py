"""Weight constraints with Keras 3's names, formulas and configs (`keras/src/constraints/constraints.py`).

A constraint maps a weight to its projected value; like Keras 3's optimizers, rconv's apply it to the
variable right after each update. Layers take them as `kernel_constraint`/`bias_constraint`
(through `Layer.add_weight(constraint=...)`).
"""
from __future__ import annotations

import numpy as np

from . import backend, registry


class Constraint:
    def __call__(self, w) -> np.ndarray:
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norms(w, axis):
    w = np.asarray(w, np.float32)
    return w, np.sqrt(np.square(w).sum(axis=axis, keepdims=True))


@registry.register("constraints", "MaxNorm", "max_norm")
class MaxNorm(Constraint):
    """Rescales each slice along `axis` whose L2 norm exceeds `max_value` down to `max_value`."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        w, norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (backend.epsilon() + norms))).astype(np.float32)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@registry.register("constraints", "NonNeg", "non_neg")
class NonNeg(Constraint):
    def __call__(self, w):
        w = np.asarray(w, np.float32)
        return w * (w >= 0).astype(np.float32)


@registry.register("constraints", "UnitNorm", "unit_norm")
class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w, norms = _norms(w, self.axis)
        return (w / (backend.epsilon() + norms)).astype(np.float32)

    def get_config(self):
        return {"axis": self.axis}


@registry.register("constraints", "MinMaxNorm", "min_max_norm")
class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        w, norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (backend.epsilon() + norms))).astype(np.float32)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm


_OBJECTS = registry.ConfigObjects("constraints", "keras.constraints", Constraint, "constraint", allow_none=True,
                                  allow_callable=True)
serialize = _OBJECTS.serialize  # Keras 3's serialized form (None stays None)
deserialize = _OBJECTS.deserialize
get = _OBJECTS.get  # from None, an instance, a name ('max_norm', 'MaxNorm'), a config dict, a class or a callable

"""`Variable`: a named float32 buffer owned by a layer.

The optimizer updates `value` in place through the Rust ops, so `value` must stay the same
C-contiguous float32 array for the variable's whole life: `assign` copies into it, never rebinds it.
"""
from __future__ import annotations

import numpy as np


class Variable:
    def __init__(self, value, name: str, trainable: bool = True, path: str | None = None, regularizer=None,
                 constraint=None):
        self.regularizer = regularizer  # penalty added to the loss (rconv.regularizers), or None
        self.constraint = constraint  # projection applied after each optimizer update (rconv.constraints), or None
        self.value = np.asarray(value, dtype=np.float32)  # keeps 0-d values 0-d (Keras's `count`)
        if not self.value.flags.c_contiguous or not self.value.flags.writeable:
            self.value = np.array(self.value, order="C")
        self.name = name
        self.path = path or name
        self.trainable = trainable

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self) -> str:
        return "float32"

    def numpy(self) -> np.ndarray:
        return self.value.copy()

    def assign(self, value) -> None:
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError(f"Cannot assign a value of shape {value.shape} to variable '{self.path}' "
                             f"of shape {self.value.shape}")
        self.value[...] = value

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self) -> str:
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"

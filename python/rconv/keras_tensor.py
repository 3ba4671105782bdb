"""`KerasTensor`: a symbolic (shape-only) tensor, what `rconv.Input(...)` and symbolic layer calls return.

Each one records the call that produced it (`_keras_history = (layer, [inbound KerasTensors])`), so a
functional `Model(inputs, outputs)` can walk the graph back from its outputs (`graph/plan.py`).
Indexing, slicing and the arithmetic operators are layer calls too (`layers/tensor_ops.py`), so
`x[:, 1:3]` or `x * 2 + y` become nodes of the graph like any layer.
"""
from __future__ import annotations

import itertools

_creation_order = itertools.count()  # orders a layer's calls (Keras node indices)


def _op(name):
    from .layers import tensor_ops
    return getattr(tensor_ops, name)


class KerasTensor:
    # NumPy defers to our reflected operators (`np.float32(2) * x` builds a graph node).
    __array_ufunc__ = None

    def __init__(self, shape, dtype: str = "float32", name: str | None = None, history=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        # (layer, inbound KerasTensors) — the producing layer and what it was called on.
        self._keras_history = history
        self._creation_id = next(_creation_order)
        self._call_training = None  # a call's fixed `training` argument (`base(x, training=False)`), or None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self):
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of a KerasTensor with unknown first dimension: {self}")
        return self.shape[0]

    def __getitem__(self, key):
        return _op("GetItem")(key)(self)

    def _binary(self, op: str, other, reflected: bool = False):
        return _op("binary_op")(op, other, self) if reflected else _op("binary_op")(op, self, other)

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, reflected=True)

    def __sub__(self, other):
        return self._binary("subtract", other)

    def __rsub__(self, other):
        return self._binary("subtract", other, reflected=True)

    def __mul__(self, other):
        return self._binary("multiply", other)

    def __rmul__(self, other):
        return self._binary("multiply", other, reflected=True)

    def __truediv__(self, other):
        return self._binary("divide", other)

    def __rtruediv__(self, other):
        return self._binary("divide", other, reflected=True)

    def __neg__(self):
        return self._binary("multiply", -1.0)

    def __pos__(self):
        return self

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


__all__ = ["KerasTensor"]

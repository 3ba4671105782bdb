"""Operations on `KerasTensor`s recorded as graph nodes: indexing/slicing (`x[:, 1:3]`) and the arithmetic
operators (`x + y`, `2 * x`, `x / 255.0`), as Keras 3 records `keras.ops` calls in a functional model.

Each is an ordinary layer of the protocol (forward, backward with the input gradient), so the one executor
runs and differentiates them; `binary_op` is what `KerasTensor.__add__` and friends call.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer

_BINARY = {
    "add": (np.add, lambda a, b, g: (g, g)),
    "subtract": (np.subtract, lambda a, b, g: (g, -g)),
    "multiply": (np.multiply, lambda a, b, g: (g * b, g * a)),
    "divide": (np.divide, lambda a, b, g: (g / b, -g * a / (b * b))),
}


def _unbroadcast(grad, shape):
    """Sum a broadcast gradient back to `shape`."""
    grad = np.asarray(grad, np.float32)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return np.ascontiguousarray(grad, np.float32)


def _serialize_key(key):
    if isinstance(key, tuple):
        return {"class_name": "__tuple__", "config": {"value": [_serialize_key(k) for k in key]}}
    if isinstance(key, slice):
        return {"class_name": "__slice__", "config": {"start": key.start, "stop": key.stop, "step": key.step}}
    if key is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if key is None:
        return None
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    raise ValueError(f"GetItem: only ints, slices, None, Ellipsis and tuples of them are supported as keys; got {key!r}")


def _deserialize_key(value):
    if isinstance(value, dict):
        kind, config = value.get("class_name"), value.get("config") or {}
        if kind == "__tuple__":
            return tuple(_deserialize_key(v) for v in config.get("value", []))
        if kind == "__slice__":
            return slice(config.get("start"), config.get("stop"), config.get("step"))
        if kind == "__ellipsis__":
            return Ellipsis
        raise ValueError(f"GetItem: unknown key entry {value!r:.200}")
    if isinstance(value, list):
        return tuple(_deserialize_key(v) for v in value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"GetItem: invalid key {value!r:.200}")


class GetItem(Layer):
    """`x[key]` for basic keys (ints, slices, None, Ellipsis); the gradient is scattered back."""

    def __init__(self, key, **kwargs):
        super().__init__(**kwargs)
        self.key = _deserialize_key(key) if isinstance(key, (dict, list)) else key
        _serialize_key(self.key)  # refuse unsupported keys now

    def forward(self, inputs, training=False):
        return np.ascontiguousarray(inputs[self.key]), inputs.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        grad = np.zeros(ctx, np.float32)
        grad[self.key] = grad_outputs
        return grad, []

    def compute_output_shape(self, input_shape):
        out = Layer.compute_output_shape(self, input_shape)
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        batch_sliced = key and key[0] is not Ellipsis and key[0] is not None and not (
            isinstance(key[0], slice) and key[0] == slice(None))
        if input_shape[0] is None and batch_sliced:
            raise ValueError(f"GetItem '{self.name}': indexing the batch dimension of a symbolic tensor "
                             "is not supported")
        return out

    def get_config(self):
        return {**super().get_config(), "key": _serialize_key(self.key)}


class BinaryOp(Layer):
    """`a <op> b` for two tensors (a list input, NumPy broadcasting) or a tensor and a constant."""

    def __init__(self, op, constant=None, constant_first=False, **kwargs):
        super().__init__(**kwargs)
        if op not in _BINARY:
            raise ValueError(f"BinaryOp '{self.name}': unknown op {op!r}; known: {sorted(_BINARY)}")
        self.op = op
        self.constant = None if constant is None else np.asarray(constant, np.float32)
        self.constant_first = bool(constant_first)

    def _operands(self, inputs):
        if self.constant is None:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError(f"BinaryOp '{self.name}' ({self.op}) takes two tensors")
            return inputs[0], inputs[1]
        return (self.constant, inputs) if self.constant_first else (inputs, self.constant)

    def forward(self, inputs, training=False):
        a, b = self._operands(inputs)
        return np.asarray(_BINARY[self.op][0](a, b), np.float32), (a, b)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        a, b = ctx
        ga, gb = _BINARY[self.op][1](a, b, grad_outputs)
        if self.constant is None:
            return [_unbroadcast(ga, np.shape(a)), _unbroadcast(gb, np.shape(b))], []
        return (_unbroadcast(gb, np.shape(b)) if self.constant_first else _unbroadcast(ga, np.shape(a))), []

    def get_config(self):
        constant = None if self.constant is None else self.constant.tolist()
        return {**super().get_config(), "op": self.op, "constant": constant, "constant_first": self.constant_first}


def binary_op(op: str, a, b):
    """Record `a <op> b` where at least one side is a KerasTensor."""
    from ..keras_tensor import KerasTensor
    a_sym, b_sym = isinstance(a, KerasTensor), isinstance(b, KerasTensor)
    if a_sym and b_sym:
        return BinaryOp(op)([a, b])
    if a_sym:
        return BinaryOp(op, constant=b)(a)
    return BinaryOp(op, constant=a, constant_first=True)(b)


__all__ = ["GetItem", "BinaryOp", "binary_op"]

"""Merge layers: `Add` and `Concatenate` (called on a list of tensors, like Keras).

They follow the Layer training protocol with a list input: ``forward([x1, x2, ...]) -> (y, ctx)`` and
``backward(ctx, grad) -> ([g1, g2, ...], [])``.
"""
from __future__ import annotations

import numpy as np

from .layer import Layer
from ..registry import register


__all__ = ["Add", "Concatenate"]

class _Merge(Layer):
    def _check_list(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
            raise ValueError(f"A merge layer ({type(self).__name__} '{self.name}') should be called on a list "
                             f"of inputs. Received: inputs={inputs!r}")
        return list(inputs)

    def _check_shapes(self, input_shape) -> list:
        if not isinstance(input_shape, list) or not all(isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(f"A merge layer ({type(self).__name__} '{self.name}') should be called on a list "
                             f"of inputs. Received input shape: {input_shape!r}")
        return [tuple(s) for s in input_shape]


def _merge_dim(a, b):
    if a is None:
        return b
    if b is None or a == b:
        return a
    return -1


@register("layers", "Add")
class Add(_Merge):
    """Element-wise sum of same-shaped inputs."""

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        out = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(out):
                raise ValueError(f"Add '{self.name}': inputs must have the same shape, got {shapes}")
            merged = tuple(_merge_dim(a, b) for a, b in zip(out, s))
            if -1 in merged:
                raise ValueError(f"Add '{self.name}': inputs must have the same shape, got {shapes}")
            out = merged
        return out

    def forward(self, inputs, training=False):
        inputs = self._check_list(inputs)
        y = inputs[0].astype(np.float32, copy=True)
        for x in inputs[1:]:
            y += x
        return y, len(inputs)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return [grad_outputs] * ctx, []


@register("layers", "Concatenate")
class Concatenate(_Merge):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"Concatenate '{self.name}': inputs must have the same rank, got {shapes}")
        axis = self.axis % rank
        out = list(shapes[0])
        for s in shapes[1:]:
            for i in range(rank):
                if i == axis:
                    out[i] = None if out[i] is None or s[i] is None else out[i] + s[i]
                else:
                    merged = _merge_dim(out[i], s[i])
                    if merged == -1:
                        raise ValueError(f"Concatenate '{self.name}': a `Concatenate` layer requires inputs "
                                         f"with matching shapes except for the concatenation axis. "
                                         f"Received: input_shape={shapes}")
                    out[i] = merged
        return tuple(out)

    def forward(self, inputs, training=False):
        inputs = self._check_list(inputs)
        axis = self.axis % inputs[0].ndim
        sizes = [x.shape[axis] for x in inputs]
        return np.concatenate(inputs, axis=axis), (axis, sizes)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        axis, sizes = ctx
        splits = np.cumsum(sizes)[:-1]
        return [np.ascontiguousarray(g) for g in np.split(grad_outputs, splits, axis=axis)], []

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}

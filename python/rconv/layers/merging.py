"""Merge layers, called on a list of tensors like Keras's: `Add`, `Subtract`, `Multiply`, `Average`,
`Maximum`, `Minimum` (element-wise), `Concatenate` (any axis), `Dot` (batched dot product), and the
lower-case functions (`layers.add([a, b])` builds the layer and calls it).

They follow the Layer training protocol with a list input: ``forward([x1, x2, ...]) -> (y, ctx)`` and
``backward(ctx, grad) -> ([g1, g2, ...], [])``. Element-wise merges broadcast like Keras's: the batch
sizes must agree; the other axes are aligned from the right, size 1 broadcasting, and an input of lower
rank gets new axes after the batch axis. Gradients are summed back over the broadcast axes. Ties in
`Maximum`/`Minimum` send the gradient to the first input holding the extreme (as TF's chained
maximum/minimum do). These are data movement and element-wise arithmetic, done in NumPy.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .layer import Layer
from ..registry import register

__all__ = ["Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract", "add", "average",
           "concatenate", "dot", "maximum", "minimum", "multiply", "subtract"]


class _Merge(Layer):
    """Base of the merge layers: the list checks and Keras's element-wise shape rules."""

    n_inputs: int | None = None  # exactly this many inputs (Subtract, Dot), or any number >= 1

    def _where(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def _check_count(self, n: int, what) -> None:
        if self.n_inputs is not None and n != self.n_inputs:
            raise ValueError(f"{self._where()}: A `{type(self).__name__}` layer should be called on exactly "
                             f"{self.n_inputs} inputs. Received: {what}")

    def _check_list(self, inputs) -> list:
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
            raise ValueError(f"A merge layer ({self._where()}) should be called on a list of inputs. "
                             f"Received: inputs={inputs!r}")
        self._check_count(len(inputs), f"{len(inputs)} inputs")
        return list(inputs)

    def _check_shapes(self, input_shape, same_batch: bool = True) -> list:
        if (not isinstance(input_shape, (list, tuple)) or not input_shape
                or not all(isinstance(s, (list, tuple)) for s in input_shape)):
            raise ValueError(f"A merge layer ({self._where()}) should be called on a list of inputs. "
                             f"Received input shape: {input_shape!r}")
        shapes = [tuple(s) for s in input_shape]
        self._check_count(len(shapes), f"input_shape={shapes}")
        if any(len(s) < 1 for s in shapes):
            raise ValueError(f"{self._where()}: inputs need a batch axis, got shapes {shapes}")
        batch = {s[0] for s in shapes} - {None}
        if same_batch and len(batch) > 1:
            raise ValueError(f"{self._where()}: cannot merge tensors with different batch sizes. Received tensors "
                             f"with shapes {shapes}")
        return shapes

    def build(self, input_shape):
        self.compute_output_shape(input_shape)


class _Elementwise(_Merge):
    """Element-wise merges: `_merge(xs) -> (y, ctx)` and `_grads(ctx, g) -> [g_i]` on inputs already
    broadcast to one rank; this class handles the ranks, the shapes and summing gradients back."""

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        out: list = []
        for s in shapes:
            rest = list(s[1:])
            if len(rest) > len(out):
                out, rest = rest, out
            offset = len(out) - len(rest)
            for i, d in enumerate(rest):
                o = out[offset + i]
                if o is None or d is None:
                    out[offset + i] = None
                elif o == 1:
                    out[offset + i] = d
                elif d != 1 and d != o:
                    raise ValueError(f"{self._where()}: inputs have incompatible shapes. Received shapes "
                                     f"{shapes}")
        batch = {s[0] for s in shapes} - {None}
        return (batch.pop() if batch else None,) + tuple(out)

    def forward(self, inputs, training=False):
        inputs = self._check_list(inputs)
        rank = max(x.ndim for x in inputs)
        # Keras: a lower-rank input gets new axes right after the batch axis.
        xs = [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in inputs]
        y, ctx = self._merge(xs)
        return np.ascontiguousarray(y, dtype=np.float32), ([x.shape for x in inputs], ctx)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        shapes, ctx = ctx
        grads = self._grads(ctx, grad_outputs)
        return [_unbroadcast(g, shape) for g, shape in zip(grads, shapes)], []


def _unbroadcast(grad, shape) -> np.ndarray:
    """`grad` summed back to `shape` (an input of lower rank has its new axes right after the batch)."""
    rank = grad.ndim
    expanded = shape[:1] + (1,) * (rank - len(shape)) + tuple(shape[1:])
    axes = tuple(i for i, (g, s) in enumerate(zip(grad.shape, expanded)) if s == 1 and g != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    grad = np.broadcast_to(grad, expanded) if grad.shape != expanded else grad  # a zero-sized output
    return np.ascontiguousarray(grad.reshape(shape), dtype=np.float32)


def _sum(xs) -> np.ndarray:
    y = xs[0].astype(np.float32, copy=True)
    for x in xs[1:]:
        y = y + x
    return y


def _broadcast_all(xs):
    shape = np.broadcast_shapes(*(x.shape for x in xs))
    return [np.broadcast_to(x, shape) for x in xs], shape


@register("layers", "Add")
class Add(_Elementwise):
    """Element-wise sum of the inputs."""

    def _merge(self, xs):
        return _sum(xs), len(xs)

    def _grads(self, n, g):
        return [g] * n


@register("layers", "Subtract")
class Subtract(_Elementwise):
    """inputs[0] - inputs[1]."""

    n_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1], None

    def _grads(self, ctx, g):
        return [g, -g]


@register("layers", "Multiply")
class Multiply(_Elementwise):
    """Element-wise product of the inputs."""

    def _merge(self, xs):
        y = xs[0].astype(np.float32, copy=True)
        for x in xs[1:]:
            y = y * x
        return y, xs

    def _grads(self, xs, g):
        grads = []
        for i in range(len(xs)):  # the product of the others (not y / x_i: x_i may be 0)
            gi = g
            for j, x in enumerate(xs):
                if j != i:
                    gi = gi * x
            grads.append(gi)
        return grads


@register("layers", "Average")
class Average(_Elementwise):
    """Element-wise mean of the inputs."""

    def _merge(self, xs):
        return _sum(xs) / np.float32(len(xs)), len(xs)

    def _grads(self, n, g):
        return [g / np.float32(n)] * n


class _Extreme(_Elementwise):
    _pick = staticmethod(np.argmax)

    def _merge(self, xs):
        stacked = np.stack(_broadcast_all(xs)[0])
        winner = self._pick(stacked, axis=0)  # the first input holding the extreme
        return np.take_along_axis(stacked, winner[None], axis=0)[0], (winner, len(xs))

    def _grads(self, ctx, g):
        winner, n = ctx
        return [np.where(winner == i, g, np.float32(0)) for i in range(n)]


@register("layers", "Maximum")
class Maximum(_Extreme):
    """Element-wise maximum of the inputs; the gradient goes to the (first) maximal input."""

    _pick = staticmethod(np.argmax)


@register("layers", "Minimum")
class Minimum(_Extreme):
    """Element-wise minimum of the inputs; the gradient goes to the (first) minimal input."""

    _pick = staticmethod(np.argmin)


@register("layers", "Concatenate")
class Concatenate(_Merge):
    """The inputs joined along `axis` (any axis but the batch axis' size must agree too)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"Concatenate '{self.name}': `axis` must be an int, got {axis!r}")
        self.axis = int(axis)

    def _axis(self, rank: int, shapes) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(f"Concatenate '{self.name}': axis {self.axis} is out of range for inputs of shapes "
                             f"{shapes}")
        return self.axis % rank

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape, same_batch=False)  # the batch axis may be the joined one
        rank = len(shapes[0])
        if any(len(s) != rank for s in shapes):
            raise ValueError(f"Concatenate '{self.name}': a `Concatenate` layer requires inputs with matching "
                             f"shapes except for the concatenation axis. Received: input_shape={shapes}")
        axis = self._axis(rank, shapes)
        out = list(shapes[0])
        for s in shapes[1:]:
            for i in range(rank):
                if i == axis:
                    out[i] = None if out[i] is None or s[i] is None else out[i] + s[i]
                elif out[i] is None:
                    out[i] = s[i]
                elif s[i] is not None and s[i] != out[i]:
                    raise ValueError(f"Concatenate '{self.name}': a `Concatenate` layer requires inputs with "
                                     f"matching shapes except for the concatenation axis. "
                                     f"Received: input_shape={shapes}")
        return tuple(out)

    def forward(self, inputs, training=False):
        inputs = self._check_list(inputs)
        axis = self._axis(inputs[0].ndim, [x.shape for x in inputs])
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


@register("layers", "Dot")
class Dot(_Merge):
    """Batched dot product of two inputs over `axes` (one axis of each, never the batch axis); with
    `normalize`, the inputs are L2-normalized along those axes first (cosine proximity). The output
    holds the first input's other axes, then the second's; rank 1 becomes (batch, 1)."""

    n_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot '{self.name}': `axes` should contain two elements, got axes={axes!r}")
            if not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"Dot '{self.name}': `axes` elements should be integers, got axes={axes!r}")
            axes = list(axes)
        elif isinstance(axes, bool) or not isinstance(axes, int):
            raise TypeError(f"Dot '{self.name}': `axes` should be a list or an int, got axes={axes!r}")
        self.axes = axes
        self.normalize = bool(normalize)

    def _pair(self, shapes) -> tuple:
        axes = self.axes if isinstance(self.axes, list) else [self.axes] * 2
        pair = []
        for a, s in zip(axes, shapes):
            if len(s) < 2:
                raise ValueError(f"Dot '{self.name}': inputs need rank >= 2, got shapes {shapes}")
            if not -len(s) <= a < len(s) or a % len(s) == 0:
                raise ValueError(f"Dot '{self.name}': axis {a} is the batch axis or out of range for inputs of "
                                 f"shapes {shapes}")
            pair.append(a % len(s))
        return tuple(pair)

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        a1, a2 = self._pair(shapes)
        d1, d2 = shapes[0][a1], shapes[1][a2]
        if d1 is not None and d2 is not None and d1 != d2:
            raise ValueError(f"Dot '{self.name}': incompatible input shapes: axis values {d1} (at axis {a1}) != "
                             f"{d2} (at axis {a2}). Full input shapes: {shapes}")
        s1, s2 = list(shapes[0]), list(shapes[1])
        s1.pop(a1)
        s2.pop(a2)
        out = s1 + s2[1:]
        batch = {shapes[0][0], shapes[1][0]} - {None}
        out[0] = batch.pop() if batch else None
        return tuple(out + [1] if len(out) == 1 else out)

    def forward(self, inputs, training=False):
        x1, x2 = self._check_list(inputs)
        a1, a2 = self._pair([x1.shape, x2.shape])
        out_shape = self.compute_output_shape([x1.shape, x2.shape])
        (n1, r1), (n2, r2) = _l2_normalize(x1, a1, self.normalize), _l2_normalize(x2, a2, self.normalize)
        b, d = x1.shape[0], x1.shape[a1]
        m1 = np.moveaxis(n1, a1, -1)  # (b, ..., d)
        m2 = np.moveaxis(n2, a2, 1)   # (b, d, ...)
        left, right = m1.reshape(b, -1, d), m2.reshape(b, d, -1)
        y = np.matmul(left, right).reshape(out_shape)
        return y.astype(np.float32, copy=False), (left, right, m1.shape, m2.shape, a1, a2, n1, n2, r1, r2)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        left, right, s1, s2, a1, a2, n1, n2, r1, r2 = ctx
        g = grad_outputs.reshape(left.shape[0], left.shape[1], right.shape[2])
        g1 = np.moveaxis(np.matmul(g, np.swapaxes(right, 1, 2)).reshape(s1), -1, a1)
        g2 = np.moveaxis(np.matmul(np.swapaxes(left, 1, 2), g).reshape(s2), 1, a2)
        g1, g2 = _l2_normalize_backward(g1, n1, r1, a1), _l2_normalize_backward(g2, n2, r2, a2)
        return [np.ascontiguousarray(g1, np.float32), np.ascontiguousarray(g2, np.float32)], []

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(x, axis, on: bool):
    """Keras's `ops.normalize(x, axis)`: x * rsqrt(max(sum(x^2), epsilon^2)); returns (x_normalized, the
    rsqrt factor or None when off)."""
    if not on:
        return x, None
    eps = backend.epsilon()
    square_sum = np.sum(np.square(x, dtype=np.float32), axis=axis, keepdims=True)
    r = (1.0 / np.sqrt(np.maximum(square_sum, np.float32(eps * eps)))).astype(np.float32)
    return x * r, (r, square_sum > eps * eps)


def _l2_normalize_backward(g, n, saved, axis):
    if saved is None:
        return g
    r, live = saved  # where the norm was clamped, r is a constant
    dot = np.sum(g * n, axis=axis, keepdims=True)
    return r * (g - np.where(live, n * dot, np.float32(0)))


def _functional(cls, doc: str):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = cls.__name__.lower()
    merge.__qualname__ = merge.__name__
    merge.__doc__ = f"Functional interface to the `{cls.__name__}` layer: {doc}"
    return merge


add = _functional(Add, "the element-wise sum of `inputs`.")
subtract = _functional(Subtract, "inputs[0] - inputs[1].")
multiply = _functional(Multiply, "the element-wise product of `inputs`.")
average = _functional(Average, "the element-wise mean of `inputs`.")
maximum = _functional(Maximum, "the element-wise maximum of `inputs`.")
minimum = _functional(Minimum, "the element-wise minimum of `inputs`.")


def concatenate(inputs, axis=-1, **kwargs):
    """Functional interface to the `Concatenate` layer: `inputs` joined along `axis`."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, **kwargs):
    """Functional interface to the `Dot` layer: the batched dot product of two inputs over `axes`."""
    return Dot(axes=axes, **kwargs)(inputs)

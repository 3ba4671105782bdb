"""Vector-Jacobian products of the NumPy operations a `GradientTape` records (the arithmetic operators, the
elementwise functions, reductions, shape and indexing ops of `rconv.ops`), one rule per operation.

A rule is ``vjp(g, out, args, kwargs) -> one gradient per positional argument`` (None for a non-differentiable
argument), given the upstream gradient `g` (shaped like `out`). Layers are not here: a recorded layer or model
call differentiates with its own `backward`.
"""
from __future__ import annotations

import numpy as np


def unbroadcast(grad, shape) -> np.ndarray:
    """Sum a broadcast gradient back to `shape`."""
    grad = np.asarray(grad)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad.reshape(shape)


def _shape(a):
    return np.shape(a)


def _binary(da, db):
    """A broadcasting binary rule from the two partial products (g, a, b, out) -> (ga, gb)."""
    def vjp(g, out, args, kwargs):
        a, b = args[0], args[1]
        return [unbroadcast(da(g, a, b, out), _shape(a)), unbroadcast(db(g, a, b, out), _shape(b))]
    return vjp


def _unary(d):
    def vjp(g, out, args, kwargs):
        return [d(g, np.asarray(args[0]), out)]
    return vjp


def _expand_reduced(g, x_shape, axis, keepdims):
    """Broadcast the gradient of a reduction back over the reduced axes."""
    if axis is None:
        return np.broadcast_to(np.reshape(g, (1,) * len(x_shape)), x_shape)
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    axes = tuple(a % len(x_shape) for a in axes)
    if not keepdims:
        for a in sorted(axes):
            g = np.expand_dims(g, a)
    return np.broadcast_to(g, x_shape)


def _count(x_shape, axis):
    if axis is None:
        return int(np.prod(x_shape))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return int(np.prod([x_shape[a] for a in axes]))


def _sum(g, out, args, kwargs):
    x = args[0]
    return [_expand_reduced(g, _shape(x), kwargs.get("axis", args[1] if len(args) > 1 else None),
                            kwargs.get("keepdims", False)).copy()]


def _mean(g, out, args, kwargs):
    x = args[0]
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    return [_expand_reduced(g, _shape(x), axis, kwargs.get("keepdims", False)) / _count(_shape(x), axis)]


def _extreme(g, out, args, kwargs):
    """max/min: the gradient goes to the extreme positions, split equally between ties (TensorFlow's rule)."""
    x = np.asarray(args[0])
    axis = kwargs.get("axis", args[1] if len(args) > 1 else None)
    keepdims = kwargs.get("keepdims", False)
    full = _expand_reduced(out, x.shape, axis, keepdims)
    hit = (x == full).astype(x.dtype)
    ties = _expand_reduced(np.sum(hit, axis=axis, keepdims=keepdims), x.shape, axis, keepdims)
    return [hit / ties * _expand_reduced(g, x.shape, axis, keepdims)]


def _reshape(g, out, args, kwargs):
    return [np.reshape(g, _shape(args[0]))] + [None] * (len(args) - 1)


def _transpose(g, out, args, kwargs):
    axes = kwargs.get("axes", args[1] if len(args) > 1 else None)
    if axes is None:
        return [np.transpose(g)]
    return [np.transpose(g, np.argsort(axes))] + [None] * (len(args) - 1)


def _expand_dims(g, out, args, kwargs):
    return [np.reshape(g, _shape(args[0]))] + [None] * (len(args) - 1)


def _getitem(g, out, args, kwargs):
    x, key = args
    grad = np.zeros(_shape(x), dtype=np.result_type(g, np.float32))
    np.add.at(grad, key, g)
    return [grad, None]


def _matmul(g, out, args, kwargs):
    a, b = np.asarray(args[0]), np.asarray(args[1])
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = np.reshape(g, np.matmul(a2, b2).shape)
    ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
    gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
    ga = ga[..., 0, :] if a.ndim == 1 else ga
    gb = gb[..., 0] if b.ndim == 1 else gb
    return [unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)]


def _clip(g, out, args, kwargs):
    x = np.asarray(args[0])
    lo = kwargs.get("a_min", args[1] if len(args) > 1 else None)
    hi = kwargs.get("a_max", args[2] if len(args) > 2 else None)
    inside = np.ones(x.shape, bool)
    if lo is not None:
        inside &= x >= lo
    if hi is not None:
        inside &= x <= hi
    return [g * inside] + [None] * (len(args) - 1)


def _concatenate(g, out, args, kwargs):
    parts = args[0]
    axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
    sizes = np.cumsum([np.shape(p)[axis] for p in parts])[:-1]
    return [list(np.split(g, sizes, axis=axis))]


def _stack(g, out, args, kwargs):
    axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
    return [[np.take(g, i, axis=axis) for i in range(len(args[0]))]]


def _power(g, out, args, kwargs):
    a, b = np.asarray(args[0]), np.asarray(args[1])
    ga = g * b * np.power(a, b - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gb = np.where(a > 0, g * out * np.log(np.where(a > 0, a, 1)), 0.0)
    return [unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)]


def _where(g, out, args, kwargs):
    cond, a, b = args
    return [None, unbroadcast(np.where(cond, g, 0), _shape(a)), unbroadcast(np.where(cond, 0, g), _shape(b))]


_ZERO = None  # marks a function whose result carries no gradient (argmax, comparisons, sign, ...)

# NumPy ufunc / function name -> rule.
RULES = {
    "add": _binary(lambda g, a, b, o: g, lambda g, a, b, o: g),
    "subtract": _binary(lambda g, a, b, o: g, lambda g, a, b, o: -g),
    "multiply": _binary(lambda g, a, b, o: g * b, lambda g, a, b, o: g * a),
    "divide": _binary(lambda g, a, b, o: g / b, lambda g, a, b, o: -g * a / (np.asarray(b) * b)),
    "true_divide": _binary(lambda g, a, b, o: g / b, lambda g, a, b, o: -g * a / (np.asarray(b) * b)),
    "maximum": _binary(lambda g, a, b, o: g * (np.asarray(a) >= b), lambda g, a, b, o: g * (np.asarray(a) < b)),
    "minimum": _binary(lambda g, a, b, o: g * (np.asarray(a) <= b), lambda g, a, b, o: g * (np.asarray(a) > b)),
    "power": _power,
    "negative": _unary(lambda g, x, y: -g),
    "positive": _unary(lambda g, x, y: g),
    "square": _unary(lambda g, x, y: 2 * x * g),
    "sqrt": _unary(lambda g, x, y: g / (2 * y)),
    "absolute": _unary(lambda g, x, y: g * np.sign(x)),
    "exp": _unary(lambda g, x, y: g * y),
    "log": _unary(lambda g, x, y: g / x),
    "tanh": _unary(lambda g, x, y: g * (1 - y * y)),
    "sin": _unary(lambda g, x, y: g * np.cos(x)),
    "cos": _unary(lambda g, x, y: -g * np.sin(x)),
    "sum": _sum,
    "mean": _mean,
    "max": _extreme,
    "amax": _extreme,
    "min": _extreme,
    "amin": _extreme,
    "reshape": _reshape,
    "transpose": _transpose,
    "expand_dims": _expand_dims,
    "squeeze": _expand_dims,
    "getitem": _getitem,
    "matmul": _matmul,
    "clip": _clip,
    "concatenate": _concatenate,
    "stack": _stack,
    "where": _where,
    "copy": _unary(lambda g, x, y: g),
}

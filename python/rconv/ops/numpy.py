"""The `keras.ops` NumPy-style functions that interpretation workflows and custom training loops use (`mean`,
`square`, `sqrt`, `clip`, `reshape`, `matmul`, `normalize`, ...). On arrays they compute with NumPy and, while a
`GradientTape` records and an argument is watched or tracked, they are recorded with their gradient rule
(`rconv.autograd.rules`). Gradient-free helpers (`argmax`, `shape`, `convert_to_numpy`) are here too.
"""
from __future__ import annotations

import numpy as np

from ..autograd.tape import Tracked, apply_rule
from ..keras_tensor import KerasTensor

__all__ = [
    "convert_to_tensor", "convert_to_numpy", "shape", "cast",
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power",
    "square", "sqrt", "abs", "absolute", "exp", "log", "tanh", "maximum", "minimum", "clip", "where",
    "sum", "mean", "max", "min", "reshape", "transpose", "expand_dims", "squeeze", "matmul", "concatenate",
    "stack", "normalize", "argmax", "argmin", "zeros_like", "ones_like", "std", "var",
]


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, Tracked) else x


# NumPy / rule name -> the Keras operation recorded on KerasTensors, and its positional parameters' names.
_SYMBOLIC = {
    "mean": ("Mean", ()), "sum": ("Sum", ()), "max": ("Max", ()), "min": ("Min", ()), "square": ("Square", ()),
    "sqrt": ("Sqrt", ()), "absolute": ("Absolute", ()), "exp": ("Exp", ()), "log": ("Log", ()),
    "tanh": ("Tanh", ()), "negative": ("Negative", ()), "expand_dims": ("ExpandDims", ("axis",)),
    "squeeze": ("Squeeze", ("axis",)), "reshape": ("Reshape", ("newshape",)), "transpose": ("Transpose", ("axes",)),
    "clip": ("Clip", ("x_min", "x_max")),
}
_BINARY = {"add": "add", "subtract": "subtract", "multiply": "multiply", "true_divide": "divide"}


def _symbolic(name, args, kwargs):
    """The operation on KerasTensors: a graph node (`layers.tensor_ops`), as Keras records `keras.ops` calls."""
    from ..layers import tensor_ops
    if name in _BINARY:
        return tensor_ops.binary_op(_BINARY[name], args[0], args[1])
    if name not in _SYMBOLIC or any(isinstance(a, KerasTensor) for a in args[1:]):
        raise TypeError(f"rconv.ops.{name} is not supported on symbolic KerasTensors (only on arrays); symbolic: "
                        f"{sorted(_SYMBOLIC) + sorted(_BINARY)}")
    op, positional = _SYMBOLIC[name]
    params = dict(zip(positional, [list(a) if isinstance(a, tuple) else a for a in args[1:]]))
    params.update({k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})
    return tensor_ops.numpy_op(op, args[0], **params)


def _record(name, fn, args, kwargs):
    if any(isinstance(a, KerasTensor) for a in args):
        return _symbolic(name, args, kwargs)
    plain_args = [[_plain(a) for a in x] if isinstance(x, (list, tuple)) else _plain(x) for x in args]
    result = fn(*plain_args, **kwargs)
    return apply_rule(name, result, list(args), kwargs)


def convert_to_tensor(x, dtype=None, sparse=None):
    """An array (float32 unless `dtype` says otherwise). Floating-point results are `Tracked` leaves, so a
    `GradientTape` that watches them sees NumPy's operators on them too; a tracked array stays itself."""
    if isinstance(x, Tracked) and dtype is None:
        return x
    arr = np.asarray(_plain(x), dtype=dtype or (np.float32 if np.asarray(x).dtype.kind in "fc" else None))
    return arr.view(Tracked) if arr.dtype.kind == "f" else arr


def convert_to_numpy(x) -> np.ndarray:
    return np.array(_plain(x), copy=True)


def shape(x) -> tuple:
    return tuple(x.shape) if isinstance(x, KerasTensor) else tuple(np.shape(x))


def cast(x, dtype):
    return np.asarray(_plain(x)).astype(dtype)


def add(x1, x2):
    return _record("add", np.add, (x1, x2), {})


def subtract(x1, x2):
    return _record("subtract", np.subtract, (x1, x2), {})


def multiply(x1, x2):
    return _record("multiply", np.multiply, (x1, x2), {})


def divide(x1, x2):
    return _record("true_divide", np.true_divide, (x1, x2), {})


true_divide = divide


def negative(x):
    return _record("negative", np.negative, (x,), {})


def power(x1, x2):
    return _record("power", np.power, (x1, x2), {})


def square(x):
    return _record("square", np.square, (x,), {})


def sqrt(x):
    return _record("sqrt", np.sqrt, (x,), {})


def absolute(x):
    return _record("absolute", np.absolute, (x,), {})


abs = absolute  # noqa: A001 (keras.ops.abs)


def exp(x):
    return _record("exp", np.exp, (x,), {})


def log(x):
    return _record("log", np.log, (x,), {})


def tanh(x):
    return _record("tanh", np.tanh, (x,), {})


def maximum(x1, x2):
    return _record("maximum", np.maximum, (x1, x2), {})


def minimum(x1, x2):
    return _record("minimum", np.minimum, (x1, x2), {})


def clip(x, x_min, x_max):
    return _record("clip", np.clip, (x, x_min, x_max), {})


def where(condition, x1, x2):
    return _record("where", np.where, (condition, x1, x2), {})


def sum(x, axis=None, keepdims=False):  # noqa: A001 (keras.ops.sum)
    return _record("sum", np.sum, (x,), {"axis": _axis(axis), "keepdims": keepdims})


def mean(x, axis=None, keepdims=False):
    return _record("mean", np.mean, (x,), {"axis": _axis(axis), "keepdims": keepdims})


def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 (keras.ops.max)
    return _record("max", np.max, (x,), {"axis": _axis(axis), "keepdims": keepdims})


def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001 (keras.ops.min)
    return _record("min", np.min, (x,), {"axis": _axis(axis), "keepdims": keepdims})


def var(x, axis=None, keepdims=False):
    centered = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centered), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def reshape(x, newshape):
    return _record("reshape", np.reshape, (x, tuple(newshape) if not np.isscalar(newshape) else newshape), {})


def transpose(x, axes=None):
    return _record("transpose", np.transpose, (x, None if axes is None else tuple(axes)), {})


def expand_dims(x, axis):
    return _record("expand_dims", np.expand_dims, (x, axis), {})


def squeeze(x, axis=None):
    return _record("squeeze", np.squeeze, (x, _axis(axis)), {})


def matmul(x1, x2):
    return _record("matmul", np.matmul, (x1, x2), {})


def concatenate(xs, axis=0):
    return _record("concatenate", np.concatenate, (list(xs), axis), {})


def stack(x, axis=0):
    return _record("stack", np.stack, (list(x), axis), {})


def normalize(x, axis=-1, order=2, epsilon=None):
    """`x` divided by its L2 norm along `axis` (Keras 3's `ops.normalize`; `epsilon` defaults to
    `backend.epsilon()`, the floor of the squared norm)."""
    if order != 2:
        raise NotImplementedError(f"normalize: only order=2 is supported, got order={order!r}")
    from ..backend import epsilon as _epsilon
    eps = _epsilon() if epsilon is None else epsilon
    squared = sum(square(x), axis=axis, keepdims=True)
    return divide(x, sqrt(maximum(squared, eps)))


def argmax(x, axis=None, keepdims=False):
    return np.argmax(_plain(x), axis=axis, keepdims=keepdims)


def argmin(x, axis=None, keepdims=False):
    return np.argmin(_plain(x), axis=axis, keepdims=keepdims)


def zeros_like(x, dtype=None):
    return np.zeros(np.shape(x), dtype or np.float32)


def ones_like(x, dtype=None):
    return np.ones(np.shape(x), dtype or np.float32)


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis

"""Argument checks shared by the op wrappers: float32 arrays, ints and pairs, padding modes, labels."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np


IntOrPair = Union[int, Sequence[int]]

def _f32(x, op: str, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array, copying only when needed."""
    if type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous:
        return x  # the common case, checked first: per-call overhead counts at batch 1
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: `{name}` must be a floating-point array, got dtype {arr.dtype} "
                        f"with shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _int(v, op: str, name: str, value) -> int:
    """An int (or an integral float, as configs may carry); bools and fractions are refused."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise TypeError(f"{op}: `{name}` must be an int or a pair of ints, got {value!r}")


def _pair(value: IntOrPair, op: str, name: str) -> Tuple[int, int]:
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
            and value[0] >= 1 and value[1] >= 1:
        return value  # the common case (layers pass validated tuples), checked first
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        pair: Tuple[int, ...] = (_int(value, op, name, value),) * 2
    else:
        pair = tuple(_int(v, op, name, value) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{op}: `{name}` must be a positive int or a pair of positive ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _float(value, op: str, name: str) -> float:
    """A real scalar for the kernels (an int too large for a float is a ValueError, not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{op}: `{name}` is too large for a float: {repr(value)[:30]}...") from None
    except (TypeError, ValueError):
        raise TypeError(f"{op}: `{name}` must be a real number, got {value!r}") from None


def _padding(padding: str, op: str) -> str:
    mode = str(padding).lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same', got {padding!r}")
    return mode


def _labels(labels, op: str) -> np.ndarray:
    """Class ids (n,) as int64, or one-hot / soft targets (n, c) as float32."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iub" and arr.ndim == 1:
        return np.ascontiguousarray(arr, dtype=np.int64)
    return _f32(arr, op, "labels")


def _pool_args(op: str, pool_size: IntOrPair, strides: Optional[IntOrPair], padding: str):
    pool = _pair(pool_size, op, "pool_size")
    stride = pool if strides is None else _pair(strides, op, "strides")
    return pool, stride, _padding(padding, op)

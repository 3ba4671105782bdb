"""Nested structures of arrays (Keras's `tree`, reduced): lists, tuples and dicts are nodes, anything else
is a leaf. Used for multi-input / multi-output data: `x`, `y` and `sample_weight` may each be one array or a
list / tuple / dict of arrays, and every batch keeps the structure it was given.

A list or tuple holding only numbers (e.g. `y=[0, 1, 1]`) is one array-like leaf, not a structure.
"""
from __future__ import annotations

import numbers

import numpy as np


def _is_number_list(x) -> bool:
    if not isinstance(x, (list, tuple)) or not x:
        return False
    return all(isinstance(v, (numbers.Number, np.generic)) or _is_number_list(v) for v in x)


def is_nested(x) -> bool:
    return isinstance(x, (list, tuple, dict)) and not _is_number_list(x)


def _rebuild(node, children):
    if isinstance(node, dict):
        return dict(zip(node.keys(), children))
    if isinstance(node, tuple) and hasattr(node, "_fields"):  # namedtuple
        return type(node)(*children)
    return type(node)(children)


def _children(node):
    return list(node.values()) if isinstance(node, dict) else list(node)


def flatten_with_paths(x, path: str = ""):
    """[(path, leaf)] in structure order; paths read like `x[0]['a']`. `None` leaves are kept."""
    if not is_nested(x):
        return [(path, x)]
    keys = list(x.keys()) if isinstance(x, dict) else range(len(x))
    out = []
    for k in keys:
        out += flatten_with_paths(x[k], f"{path}[{k!r}]")
    return out


def flatten(x) -> list:
    return [leaf for _, leaf in flatten_with_paths(x)]


def map_structure(fn, *structures):
    """`fn` over corresponding leaves of same-shaped structures; `None` leaves pass through untouched."""
    first = structures[0]
    if not is_nested(first):
        return None if first is None else fn(*structures)
    if isinstance(first, dict):
        return _rebuild(first, [map_structure(fn, *(s[k] for s in structures)) for k in first])
    return _rebuild(first, [map_structure(fn, *parts) for parts in zip(*(_children(s) for s in structures))])


def same_structure(a, b) -> bool:
    if is_nested(a) != is_nested(b):
        return False
    if not is_nested(a):
        return True
    if isinstance(a, dict) != isinstance(b, dict):
        return False
    if isinstance(a, dict):
        return set(a) == set(b) and all(same_structure(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(same_structure(u, v) for u, v in zip(a, b))


def to_array(leaf):
    """A leaf as a NumPy array: arrays pass through, tensors / DataFrames (`__array__`) and number lists
    are converted, scalars become 0-d arrays (rejected later by the rank check)."""
    if leaf is None or isinstance(leaf, np.ndarray):
        return leaf
    if hasattr(leaf, "__array__") or _is_number_list(leaf) or isinstance(leaf, (numbers.Number, np.generic)):
        return np.asarray(leaf)
    raise TypeError(f"Expected a NumPy array (or a nested list/tuple/dict of arrays), got "
                    f"{type(leaf).__name__}: {str(leaf)[:100]}")


def is_array_like(leaf) -> bool:
    return leaf is None or isinstance(leaf, np.ndarray) or hasattr(leaf, "__array__") or _is_number_list(leaf)


def num_samples(parts, names=("x", "y", "sample_weight")) -> int:
    """The common first dimension of every array in `parts` (a tuple of structures, e.g. `(x, y, sw)`).

    Raises Keras's "Data cardinality is ambiguous" error, naming every array's shape, when they differ, and a
    ValueError for 0-d arrays (a batch dimension is needed)."""
    leaves = []
    for name, part in zip(names, parts):
        leaves += [(name + path, a) for path, a in flatten_with_paths(part) if a is not None]
    if not leaves:
        raise ValueError("No data: `x` (and `y`) must contain at least one array.")
    for path, a in leaves:
        if np.ndim(a) == 0:
            raise ValueError(f"Arrays must be at least rank 1 (the first dimension counts samples); "
                             f"{path} is a scalar: {a!r}")
    sizes = {int(a.shape[0]) for _, a in leaves}
    if len(sizes) > 1:
        lines = []
        for name, part in zip(names, parts):
            found = [str(int(a.shape[0])) for _, a in flatten_with_paths(part) if a is not None]
            if found:
                lines.append(f"'{name}' sizes: {', '.join(found)}")
        shapes = ", ".join(f"{path}: {tuple(a.shape)}" for path, a in leaves)
        raise ValueError("Data cardinality is ambiguous. Make sure all arrays contain the same number of samples. "
                         + "; ".join(lines) + f". Shapes: {shapes}")
    return sizes.pop()


def describe(x) -> str:
    """Short description of a structure for error messages: shapes instead of values."""
    if is_nested(x):
        if isinstance(x, dict):
            return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in x.items()) + "}"
        inner = ", ".join(describe(v) for v in x)
        return f"[{inner}]" if isinstance(x, list) else f"({inner}{',' if len(x) == 1 else ''})"
    if x is None:
        return "None"
    shape = getattr(x, "shape", None)
    return f"array{tuple(shape)}" if shape is not None else type(x).__name__

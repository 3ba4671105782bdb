"""Process-wide state shared by layers, initializers and training: the random generator and name counters.

One global NumPy generator feeds every weight initializer, shuffle and dropout mask, so
`rconv.utils.set_random_seed(seed)` makes a whole run (weights, batch order, masks) reproducible.
"""
from __future__ import annotations

import collections
import re

import numpy as np

_rng = np.random.default_rng()
# Per-base-name counters for automatic names: `dense`, `dense_1`, ... exactly like Keras.
_name_counts: "collections.Counter[str]" = collections.Counter()


_EPSILON = 1e-7


def floatx() -> str:
    return "float32"


def epsilon() -> float:
    """The fuzz factor Keras adds to avoid division by zero (`keras.backend.epsilon()`, 1e-7)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def rng() -> np.random.Generator:
    """The global generator; callers must fetch it each time (set_seed replaces it)."""
    return _rng


def set_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(seed)


def to_snake_case(name: str) -> str:
    """Keras's class-name → layer-name rule: `MaxPooling2D` → `max_pooling2d`, `Conv2D` → `conv2d`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base: str) -> str:
    """`base` the first time, then `base_1`, `base_2`, ... until clear_session()."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def clear_session() -> None:
    """Reset automatic naming (Keras's `keras.backend.clear_session()`)."""
    _name_counts.clear()

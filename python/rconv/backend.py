"""Process-wide state shared by layers, initializers and training: the random generator and name counters,
and Keras's `keras.backend` configuration functions (`image_data_format`, `epsilon`, `floatx`, `backend`, ...).

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


_IMAGE_DATA_FORMAT = "channels_last"


def backend() -> str:
    """The name of the computation backend (Keras returns "tensorflow", "jax", ...): here "rconv"."""
    return "rconv"


def floatx() -> str:
    """The default float type: rconv computes in float32 only."""
    return "float32"


def set_floatx(value: str) -> None:
    """Keras's `set_floatx`: rconv accepts only "float32" (its kernels are float32)."""
    if str(value) != "float32":
        raise ValueError(f"rconv computes in float32 only; set_floatx({value!r}) is not supported")


def image_data_format() -> str:
    """The image layout convention, always "channels_last" (NHWC) in rconv."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format: str) -> None:
    """Keras's `set_image_data_format`: "channels_last" is accepted; "channels_first" is refused, as rconv's
    kernels are NHWC only (transpose NCHW data with `np.transpose(x, (0, 2, 3, 1))` or `layers.Permute`)."""
    if data_format == "channels_last":
        return
    if data_format == "channels_first":
        raise ValueError("rconv only supports image_data_format 'channels_last' (NHWC); 'channels_first' (NCHW) "
                         "is not available. Transpose NCHW arrays with np.transpose(x, (0, 2, 3, 1)).")
    raise ValueError(f"The `data_format` argument must be one of {{'channels_first', 'channels_last'}}. "
                     f"Received: data_format={data_format!r}")


def image_dim_ordering() -> str:
    """Keras 1's name for the image layout: "tf" (channels last)."""
    return "tf"


def is_keras_tensor(x) -> bool:
    """True for a symbolic tensor (what `rconv.Input` and symbolic layer calls return)."""
    from .keras_tensor import KerasTensor
    return isinstance(x, KerasTensor)


def int_shape(x) -> tuple:
    """The shape of a tensor, variable or array as a tuple of ints (None for unknown dimensions)."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(None if d is None else int(d) for d in shape)


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


# --- Keras 2's symbolic backend functions (`from keras import backend as K`), over rconv.GradientTape ----------
def gradients(loss, variables):
    """Keras 2's `K.gradients(loss, variables)`: evaluated by a `function` that computes them."""
    from .autograd import symbolic
    return symbolic.gradients(loss, variables)


def function(inputs, outputs, updates=None, name=None, **kwargs):
    """Keras 2's `K.function(inputs, outputs)`: call it with a list of arrays."""
    from .autograd import symbolic
    return symbolic.function(inputs, outputs, updates=updates, name=name, **kwargs)


def _op(name):
    """A `K.<name>` that works on arrays, on KerasTensors (graph nodes) and on `K.gradients` results."""
    def fn(x, *args, **kwargs):
        from . import ops
        from .autograd import symbolic
        return symbolic.deferred_apply(getattr(ops, name), x, *args, **kwargs)
    fn.__name__ = name
    fn.__doc__ = f"Keras 2's `K.{name}`: `rconv.ops.{name}` on arrays, KerasTensors and `K.gradients` results."
    return fn


mean, sum, square, sqrt, abs, exp, log, maximum, minimum, clip, reshape, max, min = (  # noqa: A001
    _op(n) for n in ("mean", "sum", "square", "sqrt", "abs", "exp", "log", "maximum", "minimum", "clip", "reshape",
                     "max", "min"))


def l2_normalize(x, axis=None):
    """Keras 2's `K.l2_normalize`: x / sqrt(max(sum(x**2, axis), epsilon))."""
    from . import ops
    from .autograd import symbolic
    return symbolic.deferred_apply(ops.normalize, x, axis=-1 if axis is None else axis)

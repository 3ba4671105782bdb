"""Shape layers: `UpSampling2D`, `ZeroPadding2D`, `Cropping2D`, `Reshape`, `Permute`, `RepeatVector`.

Keras 3 arguments, defaults and `get_config` keys (keras/src/layers/reshaping/). Up-sampling runs on the
Rust resize kernel (`ops.resize`, TensorFlow's `tf.image.resize` semantics; 'nearest' with an integer
factor repeats pixels exactly as Keras's `ops.repeat`), its backward on the kernel's adjoint. The others
are pure data movement (NumPy slicing, padding, transposes), their backward the inverse movement.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..registry import register
from .layer import InputSpec, Layer, _is_int, check_data_format, normalize_tuple, shape_str

__all__ = ["Cropping2D", "Permute", "RepeatVector", "Reshape", "UpSampling2D", "ZeroPadding2D"]

RESAMPLING = ("nearest", "bilinear")
KERAS_ONLY_RESAMPLING = ("bicubic", "lanczos3", "lanczos5", "area")


def check_interpolation(interpolation, where: str) -> str:
    """'nearest' or 'bilinear' (lower-cased, as Keras stores it); the other Keras 3 methods are refused
    with NotImplementedError, anything else with ValueError."""
    method = str(interpolation).lower()
    if method in KERAS_ONLY_RESAMPLING:
        raise NotImplementedError(f"{where}: interpolation={interpolation!r} is not supported by rconv yet; "
                                  f"use one of {RESAMPLING}")
    if method not in RESAMPLING:
        raise ValueError(f"{where}: unknown interpolation {interpolation!r}; expected one of "
                         f"{RESAMPLING + KERAS_ONLY_RESAMPLING}")
    return method


def _as_array(inputs) -> np.ndarray:
    x = np.asarray(inputs)
    return x if x.dtype == np.float32 else x.astype(np.float32)


@register("layers", "UpSampling2D")
class UpSampling2D(Layer):
    """Repeat rows and columns `size` times ('nearest') or resize to `size` times the image ('bilinear')."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        where = f"UpSampling2D '{self.name}'"
        self.data_format = check_data_format(data_format, where)
        self.size = normalize_tuple(size, 2, "size", where)
        self.interpolation = check_interpolation(interpolation, where)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def forward(self, inputs, training=False):
        x = _as_array(inputs)
        out = (x.shape[1] * self.size[0], x.shape[2] * self.size[1])
        if x.shape[1] == 0 or x.shape[2] == 0 or self.size == (1, 1):
            return np.repeat(np.repeat(x, self.size[0], axis=1), self.size[1], axis=2), x.shape
        return ops.resize(x, out, self.interpolation), x.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        shape, g = ctx, np.asarray(grad_outputs, np.float32)
        if shape[1] == 0 or shape[2] == 0 or self.size == (1, 1):
            return g.reshape(shape), []
        return ops.resize_backward(g, shape[1:3], self.interpolation), []

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


def normalize_margins(value, name: str, where: str) -> tuple:
    """Keras's ZeroPadding2D/Cropping2D argument: an int, a pair (symmetric height, width), or
    ((top, bottom), (left, right)); all non-negative. Returns ((top, bottom), (left, right))."""
    message = (f"{where}: `{name}` must be a non-negative int, a tuple of 2 ints (symmetric height, width) or a "
               f"tuple of 2 tuples of 2 ints ((top, bottom), (left, right)). Received: {name}={value!r}")
    if _is_int(value):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(message)
    margins = []
    for entry in value:
        pair = (entry, entry) if _is_int(entry) else entry
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2 or \
                not all(_is_int(v) and v >= 0 for v in pair):
            raise ValueError(message)
        margins.append((int(pair[0]), int(pair[1])))
    return tuple(margins)


@register("layers", "ZeroPadding2D")
class ZeroPadding2D(Layer):
    """Add rows and columns of zeros around each image."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"ZeroPadding2D '{self.name}'"
        self.data_format = check_data_format(data_format, where)
        self.padding = normalize_margins(padding, "padding", where)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (n, None if h is None else h + top + bottom, None if w is None else w + left + right, c)

    def forward(self, inputs, training=False):
        x = _as_array(inputs)
        return np.pad(x, ((0, 0), *self.padding, (0, 0))), x.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        (top, _), (left, _) = self.padding
        g = np.asarray(grad_outputs, np.float32)
        return np.ascontiguousarray(g[:, top:top + ctx[1], left:left + ctx[2]]), []

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@register("layers", "Cropping2D")
class Cropping2D(Layer):
    """Remove rows and columns at the borders of each image."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Cropping2D '{self.name}'"
        self.data_format = check_data_format(data_format, where)
        self.cropping = normalize_margins(cropping, "cropping", where)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.cropping
        if (h is not None and top + bottom >= h) or (w is not None and left + right >= w):
            raise ValueError(f"Cropping2D '{self.name}': values in `cropping` must be smaller than the corresponding "
                             f"spatial dimension of the input. Received: input_shape={shape_str(input_shape)}, "
                             f"cropping={self.cropping}")
        return (n, None if h is None else h - top - bottom, None if w is None else w - left - right, c)

    def forward(self, inputs, training=False):
        x = _as_array(inputs)
        _, h, w, _ = self.compute_output_shape(x.shape)
        (top, _), (left, _) = self.cropping
        return np.ascontiguousarray(x[:, top:top + h, left:left + w]), x.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        (top, _), (left, _) = self.cropping
        g = np.asarray(grad_outputs, np.float32)
        gx = np.zeros(ctx, np.float32)
        gx[:, top:top + g.shape[1], left:left + g.shape[2]] = g
        return gx, []

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}


@register("layers", "Reshape")
class Reshape(Layer):
    """Reshape every sample to `target_shape` (one entry may be -1: inferred from the sample size)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            target = tuple(target_shape)
        except TypeError:
            target = None
        if target is None or not all(_is_int(d) and d >= -1 for d in target):
            raise ValueError(f"Reshape '{self.name}': every entry of `target_shape` must be a non-negative integer or "
                             f"-1 (one inferred dimension). Received: target_shape={target_shape!r}")
        if target.count(-1) > 1:
            raise ValueError(f"Reshape '{self.name}': there must be at most one unknown dimension (-1) in "
                             f"`target_shape`. Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in target)
        self.built = True

    def _resolve(self, sample_shape) -> tuple:
        """The output shape of one sample (None where unknown), checking the sizes agree."""
        target = self.target_shape
        known = math.prod(d for d in target if d != -1)
        if None in sample_shape:
            return tuple(None if d == -1 else d for d in target)
        size = math.prod(sample_shape)
        if (-1 in target and (known == 0 or size % known)) or (-1 not in target and size != known):
            raise ValueError(f"Reshape '{self.name}': the total size of the tensor must be unchanged. Received: "
                             f"input_shape={shape_str(sample_shape)} ({size} values per sample), "
                             f"target_shape={shape_str(target)}")
        return tuple(size // known if d == -1 else d for d in target)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolve(tuple(input_shape[1:])))

    def forward(self, inputs, training=False):
        x = _as_array(inputs)
        return x.reshape((x.shape[0],) + self._resolve(x.shape[1:])), x.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return np.asarray(grad_outputs, np.float32).reshape(ctx), []

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


@register("layers", "Permute")
class Permute(Layer):
    """Permute the non-batch axes: `dims` is a permutation of 1..rank-1 (e.g. (2, 1) swaps them)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            dims = (dims,)
        if not all(_is_int(d) for d in dims) or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"Permute '{self.name}': invalid permutation argument `dims`. The set of indices in "
                             f"`dims` must be consecutive and start from 1. Received dims={dims}")
        self.dims = tuple(int(d) for d in dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, inputs, training=False):
        return np.ascontiguousarray(np.transpose(_as_array(inputs), (0,) + self.dims)), None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        inverse = np.argsort((0,) + self.dims)
        return np.ascontiguousarray(np.transpose(np.asarray(grad_outputs, np.float32), inverse)), []

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


@register("layers", "RepeatVector")
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated `n` times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not _is_int(n):
            raise TypeError(f"RepeatVector '{self.name}': Expected an integer value for `n`, got {n!r} "
                            f"({type(n).__name__})")
        if n <= 0:
            raise ValueError(f"RepeatVector '{self.name}': argument `n` should be a positive integer. Received: n={n}")
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, inputs, training=False):
        x = _as_array(inputs)
        return np.repeat(x[:, None, :], self.n, axis=1), None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return np.asarray(grad_outputs, np.float32).sum(axis=1, dtype=np.float32), []

    def get_config(self):
        return {**super().get_config(), "n": self.n}

"""Keras 3 image augmentation layers: RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomContrast.

They are active only in training (``fit``, or an explicit ``training=True``; like Keras, a direct
eager call ``layer(images)`` also augments) and are the identity at inference. Geometric ones
build the same per-image 3x3 matrices as Keras (`keras/src/layers/preprocessing/image_preprocessing/`)
and resample through `ops.affine_transform` (Rust kernel, TF ImageProjectiveTransformV3 semantics,
parallel over images). Random numbers come from the layer's own generator when `seed` is given,
else from the global `rconv.backend` generator (so `rconv.utils.set_random_seed` makes runs repeatable); in
data-parallel training each rank takes its rows of the draws for the global batch (`graph.context.draw`).

They have no weights but are differentiable, like Keras's on TensorFlow: the forward keeps its random
draws (flip flags, transforms, contrast factors) in the context and `backward` returns the exact input
gradient of what it did: the flip flipped back, the adjoint of the resampling
(`ops.affine_transform_backward`) for rotation/zoom/translation, and for contrast the per-channel mean
term and the clip's zero gradient outside `value_range`. So in ``Conv2D -> RandomFlip -> ...`` the
convolution trains. At inference they are the identity, forward and backward.
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend, ops
from ..graph import context
from .layer import Layer, check_data_format
from ..registry import register

__all__ = ["RandomContrast", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")
HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL = "horizontal", "vertical", "horizontal_and_vertical"


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


class _RandomAugmentation(Layer):
    """Shared plumbing: seeding, training switch, rank-3 inputs, identity shapes, the backward's checks.

    Subclasses implement ``_augment(images) -> (augmented, state)`` on a float32 NHWC batch and
    ``_input_grad(state, grad) -> grad_images`` with the state their forward kept."""


    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, f"{type(self).__name__} '{self.name}'")
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def _generator(self) -> np.random.Generator:
        return self._rng if self._rng is not None else backend.rng()

    def __call__(self, inputs, training=True):
        # Keras augmentation layers default to training=True when called directly.
        return super().__call__(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        # `training=None` (an eager model call without an explicit flag) augments, as in Keras.
        if training is False or training == 0:
            return inputs, None
        x = np.asarray(inputs)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        unbatched = x.ndim == 3
        if unbatched:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}' expects images of rank 3 or 4 (NHWC), got "
                             f"shape {x.shape}")
        y, state = self._augment(np.ascontiguousarray(x)) if len(x) else (x, None)
        return (y[0] if unbatched else y), (np.shape(inputs), state)

    def _augment(self, images: np.ndarray):
        raise NotImplementedError

    def _input_grad(self, state, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        if ctx is None:  # inference: identity
            return grad_outputs, []
        shape, state = ctx
        g = np.asarray(grad_outputs)
        if g.shape != tuple(shape):
            raise ValueError(f"{type(self).__name__} '{self.name}': grad_outputs has shape {g.shape}, expected the "
                             f"output shape {tuple(shape)}")
        g = np.ascontiguousarray(g, dtype=np.float32)
        if state is None:  # empty batch
            return g, []
        return self._input_grad(state, g.reshape((-1,) + g.shape[-3:])).reshape(shape), []

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _AffineAugmentation(_RandomAugmentation):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {_FILL_MODES}.")
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one "
                                      f"{_INTERPOLATIONS}.")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _augment(self, images):
        n, h, w, _ = images.shape
        transforms = np.ascontiguousarray(self._transforms(n, h, w), dtype=np.float32)
        out = ops.affine_transform(images, transforms, interpolation=self.interpolation,
                                   fill_mode=self.fill_mode, fill_value=float(self.fill_value))
        return out, transforms

    def _input_grad(self, transforms, grad):
        return ops.affine_transform_backward(grad, transforms, interpolation=self.interpolation,
                                             fill_mode=self.fill_mode)

    def _transforms(self, n: int, height: int, width: int) -> np.ndarray:
        """(n, 8) projective transforms mapping output pixels to input points."""
        raise NotImplementedError


def _symmetric_factor(factor, name: str, layer: str, check) -> tuple:
    """Keras's `_set_factor` for zoom/translation: a number f -> (-|f|, |f|); a pair -> sorted."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(f"{layer}: `{name}` must be a number or a pair of numbers. Received: "
                             f"{name}={factor}")
        check(factor[0])
        check(factor[1])
        lower, upper = sorted(float(f) for f in factor)
    elif _is_number(factor):
        check(factor)
        factor = abs(float(factor))
        lower, upper = -factor, factor
    else:
        raise ValueError(f"{layer}: `{name}` must be a number or a pair of numbers. Received: {name}={factor}")
    return lower, upper


def _bounded_factor(factor, bounds, layer: str) -> tuple:
    """Keras's base `_set_factor`: a number f -> (max(-|f|, lo), |f|); a pair -> sorted, within `bounds`."""
    msg = (f"{layer}: The `factor` argument should be a number (or a list of two numbers) in the range "
           f"[{bounds[0]}, {bounds[1]}]. Received: factor={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(msg)
        lower, upper = sorted(float(f) for f in factor)
    elif _is_number(factor):
        if factor < bounds[0] or factor > bounds[1]:
            raise ValueError(msg)
        factor = abs(float(factor))
        lower, upper = max(-factor, bounds[0]), factor
    else:
        raise ValueError(msg)
    return lower, upper


def rotation_matrices(angles_deg, height: int, width: int) -> np.ndarray:
    """Keras's `_compute_affine_matrix` for a rotation about the image centre (angles in degrees)."""
    theta = np.asarray(angles_deg, np.float64) * (math.pi / 180.0)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = np.cos(theta), np.sin(theta)
    a0, a1 = cos, -sin
    a2 = cx - cx * a0 - cy * a1
    b0, b1 = sin, cos
    b2 = cy - cx * b0 - cy * b1
    zeros = np.zeros_like(theta)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def zoom_matrices(width_zoom, height_zoom, height: int, width: int) -> np.ndarray:
    """Keras's `RandomZoom._get_zoom_matrix` (zoom < 1 zooms in, > 1 zooms out)."""
    zx, zy = np.asarray(width_zoom, np.float64), np.asarray(height_zoom, np.float64)
    zeros = np.zeros_like(zx)
    return np.stack([zx, zeros, (width - 1) / 2.0 * (1.0 - zx), zeros, zy, (height - 1) / 2.0 * (1.0 - zy),
                     zeros, zeros], axis=1)


def translation_matrices(dx, dy) -> np.ndarray:
    """Keras's `RandomTranslation._get_translation_matrix`: shift content by (dx, dy) pixels."""
    dx, dy = np.asarray(dx, np.float64), np.asarray(dy, np.float64)
    ones, zeros = np.ones_like(dx), np.zeros_like(dx)
    return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)


@register("layers", "RandomFlip")
class RandomFlip(_RandomAugmentation):
    """Flip each image with probability 1/2 (`horizontal_and_vertical` flips both axes together, as Keras 3)."""

    def __init__(self, mode=HORIZONTAL_AND_VERTICAL, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL):
            raise ValueError(f"RandomFlip layer {self.name} received an unknown mode argument {mode}")
        self.mode = mode

    def _augment(self, images):
        flips = context.draw(self._generator().uniform, len(images)) <= 0.5
        return self._flip(images, flips), flips

    def _input_grad(self, flips, grad):
        return self._flip(grad, flips)  # a flip is its own transpose

    def _flip(self, images, flips):
        out = images.copy()
        idx = np.flatnonzero(flips)
        if len(idx):
            sel = images[idx]
            if self.mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):
                sel = sel[:, :, ::-1]
            if self.mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):
                sel = sel[:, ::-1]
            out[idx] = sel
        return out

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "mode": self.mode}


@register("layers", "RandomRotation")
class RandomRotation(_AffineAugmentation):
    """Rotate by a random angle in ``factor * 2π`` (a number f means [-f, f]; positive is counter-clockwise)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.factor = _bounded_factor(factor, (-1, 1), f"RandomRotation '{self.name}'")

    def _transforms(self, n, height, width):
        angles = context.draw(self._generator().uniform, n, self.factor[0] * 360.0, self.factor[1] * 360.0)
        return rotation_matrices(angles, height, width)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "interpolation": self.interpolation, "seed": self.seed}


@register("layers", "RandomZoom")
class RandomZoom(_AffineAugmentation):
    """Zoom by a random factor: ``height_factor=(-0.3, -0.2)`` zooms in by 20-30%, positive zooms out.
    Without `width_factor` the aspect ratio is kept (the height zoom is used for both axes)."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        layer = f"RandomZoom '{self.name}'"

        def check(value):
            if value > 1.0 or value <= -1.0:
                raise ValueError(f"{layer}: The `height_factor` and `width_factor` arguments should be a number "
                                 f"(or a list of two numbers) in the range (-1.0, 1.0]. Received: "
                                 f"input_number={value}")

        self.height_factor = list(height_factor) if isinstance(height_factor, tuple) else height_factor
        self.height_lower, self.height_upper = _symmetric_factor(height_factor, "height_factor", layer, check)
        self.width_factor = list(width_factor) if isinstance(width_factor, tuple) else width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _symmetric_factor(width_factor, "width_factor", layer, check)

    def _transforms(self, n, height, width):
        gen = self._generator()
        height_zoom = context.draw(gen.uniform, n, 1.0 + self.height_lower, 1.0 + self.height_upper)
        if self.width_factor is not None:
            width_zoom = context.draw(gen.uniform, n, 1.0 + self.width_lower, 1.0 + self.width_upper)
        else:
            width_zoom = height_zoom
        return zoom_matrices(width_zoom, height_zoom, height, width)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


@register("layers", "RandomTranslation")
class RandomTranslation(_AffineAugmentation):
    """Shift by a random fraction of the height/width (a number f means [-f, f])."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        layer = f"RandomTranslation '{self.name}'"

        def check(value):
            if value > 1.0 or value < -1.0:
                raise ValueError(f"{layer}: The `height_factor` and `width_factor` arguments should be a number "
                                 f"(or a list of two numbers) in the range [-1.0, 1.0]. Received: "
                                 f"input_number={value}")

        self.height_factor = list(height_factor) if isinstance(height_factor, tuple) else height_factor
        self.width_factor = list(width_factor) if isinstance(width_factor, tuple) else width_factor
        self.height_lower, self.height_upper = _symmetric_factor(height_factor, "height_factor", layer, check)
        self.width_lower, self.width_upper = _symmetric_factor(width_factor, "width_factor", layer, check)

    def _transforms(self, n, height, width):
        gen = self._generator()
        dy = context.draw(gen.uniform, n, self.height_lower, self.height_upper) * height
        dx = context.draw(gen.uniform, n, self.width_lower, self.width_upper) * width
        return translation_matrices(dx, dy)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor,
                "fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                "fill_value": self.fill_value}


@register("layers", "RandomContrast")
class RandomContrast(_RandomAugmentation):
    """Per image and channel: ``(x - mean) * c + mean`` with c drawn in ``[1 - lower, 1 + upper]``, then
    clipped to `value_range`. As in Keras 3, a number f gives ``factor=(0, f)``, i.e. c in [1, 1 + f].

    Gradient: with g the output gradient where the clip let the value through (TensorFlow's
    ``clip_by_value``: zero strictly outside the range, passed at its ends), the input gradient is
    ``c * g + (1 - c) * mean(g)`` over each image channel's pixels (the mean depends on every pixel)."""

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _bounded_factor(factor, (0, 1), f"RandomContrast '{self.name}'")
        if len(value_range) != 2:
            raise ValueError(f"RandomContrast '{self.name}': value_range must be (low, high), got {value_range!r}")
        self.value_range = tuple(value_range)

    def _augment(self, images):
        n = len(images)
        gen = self._generator()
        c = context.draw(gen.uniform, n, 1.0 - self.factor[0], 1.0 + self.factor[1]).astype(np.float32)
        mean = images.mean(axis=(1, 2), keepdims=True, dtype=np.float32)
        out = (images - mean) * c[:, None, None, None] + mean
        low, high = self.value_range
        clipped = (out < low) | (out > high)
        np.clip(out, low, high, out=out)
        return out.astype(np.float32, copy=False), (c, clipped if clipped.any() else None)

    def _input_grad(self, state, grad):
        c, clipped = state
        if clipped is not None:
            grad = np.where(clipped, np.float32(0), grad)
        c = c[:, None, None, None]
        return grad * c + (1 - c) * grad.mean(axis=(1, 2), keepdims=True, dtype=np.float32)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "value_range": list(self.value_range),
                "seed": self.seed}

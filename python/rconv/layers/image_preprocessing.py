"""Image preprocessing layers: `Resizing`, `CenterCrop`, `RandomCrop`, `RandomBrightness`.

Keras 3 arguments, defaults and `get_config` keys (keras/src/layers/preprocessing/image_preprocessing/).
Images are NHWC, batched (rank 4) or single (rank 3). Resampling runs on the Rust resize kernel
(`ops.resize`: TensorFlow's `tf.image.resize`, which Keras 3 calls); cropping and padding are NumPy slices.

Every layer is differentiable: its forward is a chain of linear steps (slice, pad, resize) and the
backward applies their adjoints in reverse (`ops.resize_backward` for the resize), so a layer placed
after trainable ones passes gradients like Keras's on TensorFlow. `RandomBrightness` adds a per-image
offset and clips: its gradient is zero where the clip cut the value off.

Semantics worth knowing:

* `Resizing(crop_to_aspect_ratio=True)` first takes the largest centred window with the target's aspect
  ratio; `pad_to_aspect_ratio=True` pads both sides with `fill_value` instead (Keras's formulas).
* `CenterCrop` slices the centre when the image is at least the target size, else crops to the target's
  aspect ratio and resizes (Keras's `smart_resize`).
* `RandomCrop` in training takes one random window per batch (offsets uniform in [0, size - target],
  drawn from the layer's seeded generator or the global `rconv.backend` one); an image smaller than the
  target, and every image at inference, goes through `smart_resize` (Keras 3.0-3.7 and tf.keras; Keras
  >= 3.8 returns inference inputs uncropped, which contradicts its own `compute_output_shape`).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..graph import context
from ..registry import register
from .augmentation import _bounded_factor, _is_number, _RandomAugmentation
from .layer import Layer, check_data_format, positive_int, shape_str
from .reshaping import check_interpolation

__all__ = ["CenterCrop", "RandomBrightness", "RandomCrop", "Resizing"]


# --- linear image steps, each returning (output, adjoint) ------------------------------------------

def _slice(x, top: int, left: int, height: int, width: int):
    """``x[:, top:top + height, left:left + width]`` (clipped at the border, like TF's slicing)."""
    shape = x.shape
    y = np.ascontiguousarray(x[:, top:top + height, left:left + width])

    def adjoint(g):
        gx = np.zeros(shape, np.float32)
        gx[:, top:top + g.shape[1], left:left + g.shape[2]] = g
        return gx
    return y, adjoint


def _pad(x, top: int, left: int, value: float):
    """Pad `top` rows above and below and `left` columns on both sides with `value`."""
    h, w = x.shape[1:3]
    y = np.pad(x, ((0, 0), (top, top), (left, left), (0, 0)), constant_values=np.float32(value))
    return y, lambda g: np.ascontiguousarray(g[:, top:top + h, left:left + w])


def _resize(x, size, interpolation: str):
    image = tuple(x.shape[1:3])
    if image == tuple(size):  # tf.image.resize to the same size is the identity
        return x, lambda g: g
    return ops.resize(x, size, interpolation), lambda g: ops.resize_backward(g, image, interpolation)


def _chain(x, *steps):
    """Apply `steps` (functions x -> (y, adjoint)) in order; the adjoint runs theirs in reverse."""
    adjoints = []
    for step in steps:
        x, adjoint = step(x)
        adjoints.append(adjoint)

    def adjoint(g):
        for back in reversed(adjoints):
            g = back(g)
        return g
    return x, adjoint


def aspect_crop_box(height: int, width: int, target_height: int, target_width: int) -> tuple:
    """Keras's `smart_resize` / `crop_to_aspect_ratio` window: (top, left, height, width) of the largest
    centred window with the target's aspect ratio (at least 1x1)."""
    crop_h = max(min(height, (width * target_height) // target_width), 1)
    crop_w = max(min(width, (height * target_width) // target_height), 1)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def smart_resize(x, size, interpolation: str = "bilinear"):
    """Crop to the target's aspect ratio, then resize (Keras's `utils.image_utils.smart_resize`)."""
    top, left, h, w = aspect_crop_box(x.shape[1], x.shape[2], *size)
    return _chain(x, lambda v: _slice(v, top, left, h, w), lambda v: _resize(v, size, interpolation))


# --- the layer plumbing shared by the resampling layers ------------------------------------------------

def plain_number(value, name: str, where: str):
    """A real number as a Python int or float (NumPy scalars too, so configs stay JSON), else ValueError."""
    if not _is_number(value):
        raise ValueError(f"{where}: `{name}` must be a number, got {value!r}")
    return value.item() if isinstance(value, np.generic) else value


def _kind(layer) -> str:
    return f"{type(layer).__name__} '{layer.name}'"


def resized_shape(layer, input_shape) -> tuple:
    """`input_shape` (rank 3 or 4, NHWC) with the height and width replaced by the layer's target."""
    shape = list(input_shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"{_kind(layer)} expects images of rank 3 (height, width, channels) or 4 (batch, height, "
                         f"width, channels), got shape {shape_str(input_shape)}")
    shape[-3], shape[-2] = layer.height, layer.width
    return tuple(shape)


def image_forward(layer, inputs, transform):
    """Run `transform` (a float32 NHWC batch -> (output, adjoint)) on rank-3 or rank-4 images."""
    x = np.asarray(inputs)
    x = x if x.dtype == np.float32 else x.astype(np.float32)
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if x.ndim != 4 or 0 in x.shape[1:3]:
        raise ValueError(f"{_kind(layer)} expects images of rank 3 or 4 (NHWC) with a non-zero height and width, "
                         f"got shape {shape_str(np.shape(inputs))}")
    y, adjoint = transform(np.ascontiguousarray(x))
    return (y[0] if unbatched else y), (np.shape(inputs), y.shape, unbatched, adjoint)


def image_backward(layer, ctx, grad_outputs, need_input_grad=True):
    if not need_input_grad:
        return None, []
    in_shape, out_shape, unbatched, adjoint = ctx
    g = np.asarray(grad_outputs, np.float32)
    expected = out_shape[1:] if unbatched else out_shape
    if g.shape != tuple(expected):
        raise ValueError(f"{_kind(layer)}: grad_outputs has shape {shape_str(g.shape)}, expected the output shape "
                         f"{shape_str(expected)}")
    return adjoint(np.ascontiguousarray(g.reshape(out_shape))).reshape(in_shape), []


class _ImageResampling(Layer):
    """A deterministic layer mapping images to (height, width); subclasses implement `_transform`."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = _kind(self)
        self.data_format = check_data_format(data_format, where)
        self.height = positive_int(height, "height", where)
        self.width = positive_int(width, "width", where)

    def compute_output_shape(self, input_shape):
        return resized_shape(self, input_shape)

    def forward(self, inputs, training=False):
        return image_forward(self, inputs, self._transform)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        return image_backward(self, ctx, grad_outputs, need_input_grad)

    def _transform(self, images):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "height": self.height, "width": self.width}


@register("layers", "Resizing")
class Resizing(_ImageResampling):
    """Resize images to (height, width) ('bilinear' or 'nearest'), optionally cropping or padding to the
    target's aspect ratio first."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 fill_mode="constant", fill_value=0.0, antialias=False, data_format=None, **kwargs):
        super().__init__(height, width, data_format=data_format, **kwargs)
        where = _kind(self)
        self.interpolation = check_interpolation(interpolation, where)
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{where}: Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
        if fill_mode != "constant":
            raise ValueError(f"{where}: invalid value for argument `fill_mode`. Only 'constant' is supported. "
                             f"Received: fill_mode={fill_mode!r}")
        if antialias:
            raise NotImplementedError(f"{where}: antialias=True is not supported by rconv yet")
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        self.fill_value = plain_number(fill_value, "fill_value", where)
        self.antialias = bool(antialias)

    def _transform(self, images):
        size = (self.height, self.width)
        if self.crop_to_aspect_ratio:
            return smart_resize(images, size, self.interpolation)
        if self.pad_to_aspect_ratio:
            h, w = images.shape[1:3]
            top = (max(h, (w * self.height) // self.width) - h) // 2
            left = (max(w, (h * self.width) // self.height) - w) // 2
            return _chain(images, lambda v: _pad(v, top, left, self.fill_value),
                          lambda v: _resize(v, size, self.interpolation))
        return _resize(images, size, self.interpolation)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio, "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
                "fill_mode": self.fill_mode, "fill_value": self.fill_value, "antialias": self.antialias}


@register("layers", "CenterCrop")
class CenterCrop(_ImageResampling):
    """The central (height, width) window; images smaller than that are cropped to the target's aspect
    ratio and resized (bilinear) instead."""

    def _transform(self, images):
        h, w = images.shape[1:3]
        if h >= self.height and w >= self.width:
            return _slice(images, (h - self.height) // 2, (w - self.width) // 2, self.height, self.width)
        return smart_resize(images, (self.height, self.width))


@register("layers", "RandomCrop")
class RandomCrop(_RandomAugmentation):
    """In training, one random (height, width) window of the batch; at inference (and for images smaller
    than the target) `smart_resize` to (height, width)."""

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        self.height = positive_int(height, "height", _kind(self))
        self.width = positive_int(width, "width", _kind(self))

    def compute_output_shape(self, input_shape):
        return resized_shape(self, input_shape)

    def forward(self, inputs, training=False):
        # `training=None` (an eager model call without an explicit flag) crops at random, as in Keras.
        augment = not (training is False or training == 0)
        return image_forward(self, inputs, lambda images: self._crop(images, augment))

    def _crop(self, images, augment: bool):
        h, w = images.shape[1:3]
        if augment and h >= self.height and w >= self.width:
            gen = self._generator()
            top = int(gen.integers(0, h - self.height + 1))
            left = int(gen.integers(0, w - self.width + 1))
            return _slice(images, top, left, self.height, self.width)
        return smart_resize(images, (self.height, self.width))

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        return image_backward(self, ctx, grad_outputs, need_input_grad)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width, "seed": self.seed}


@register("layers", "RandomBrightness")
class RandomBrightness(_RandomAugmentation):
    """Add a random offset per image, ``factor * (value_range[1] - value_range[0])`` with factor drawn in
    ``[lower, upper]`` (a number f means [-f, f]), then clip to `value_range`. Identity at inference."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _bounded_factor(factor, (-1, 1), _kind(self))
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(f"{_kind(self)}: the `value_range` argument should be a list of two numbers. "
                             f"Received: value_range={value_range!r}")
        self.value_range = sorted(plain_number(v, "value_range", _kind(self)) for v in value_range)

    def _augment(self, images):
        low, high = self.value_range
        gen = self._generator()
        delta = context.draw(gen.uniform, len(images), self.factor[0], self.factor[1]) * (high - low)
        out = images + delta.astype(np.float32)[:, None, None, None]
        clipped = (out < low) | (out > high)  # TF's clip_by_value passes the gradient at the bounds
        np.clip(out, low, high, out=out)
        return out.astype(np.float32, copy=False), (clipped if clipped.any() else None)

    def _input_grad(self, clipped, grad):
        return grad if clipped is None else np.where(clipped, np.float32(0), grad)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor), "value_range": list(self.value_range),
                "seed": self.seed}

"""Image resampling by affine transforms."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _rconv
from ._checks import _f32, _pair

__all__ = ["affine_transform", "affine_transform_backward"]


def affine_transform(images, transforms, interpolation: str = "bilinear", fill_mode: str = "constant",
                     fill_value: float = 0.0, output_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Resample NHWC images through per-image projective transforms, like ``keras.ops.image.affine_transform``.

    ``transforms`` is (8,) or (n, 8): ``[a0, a1, a2, b0, b1, b2, c0, c1]`` maps an *output* pixel (x, y) to
    the *input* point ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`` with ``k = c0 x + c1 y + 1``.
    interpolation: 'bilinear' | 'nearest'; fill_mode: 'constant' | 'nearest' | 'reflect' | 'wrap'
    (TensorFlow's semantics). ``output_shape`` (height, width) defaults to the input's.
    """
    op = "affine_transform"
    x = _f32(images, op, "images")
    t = _resample_args(op, x, transforms, interpolation, fill_mode)
    size = None if output_shape is None else _pair(output_shape, op, "output_shape")
    return _rconv.affine_transform(x, t, interpolation, fill_mode, float(fill_value), size)


def affine_transform_backward(grad_y, transforms, interpolation: str = "bilinear", fill_mode: str = "constant",
                              image_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Input gradient of :func:`affine_transform`: the exact adjoint of its (linear) resampling.

    ``grad_y`` is the gradient of the output (n, out_h, out_w, c); the result has the images' shape
    (n, h, w, c), with ``image_shape`` = (h, w) defaulting to (out_h, out_w). Each output pixel's
    gradient goes to the input pixels it sampled, with the interpolation weights; taps that read the
    fill value (``fill_mode='constant'``) pass no gradient, folded taps (reflect/wrap/nearest) pass it
    to the pixel they were folded onto. Same transforms, interpolation and fill mode as the forward.
    """
    op = "affine_transform_backward"
    g = _f32(grad_y, op, "grad_y")
    t = _resample_args(op, g, transforms, interpolation, fill_mode)
    size = None if image_shape is None else _pair(image_shape, op, "image_shape")
    return _rconv.affine_transform_backward(g, t, interpolation, fill_mode, size)


def _resample_args(op: str, x: np.ndarray, transforms, interpolation: str, fill_mode: str) -> np.ndarray:
    """Check the modes; return the transforms as float32 (n, 8) (a single (8,) one is used for every image)."""
    t = np.asarray(transforms)
    t = _f32(t.astype(np.float32) if t.dtype.kind in "iu" else t, op, "transforms")  # ints are fine here
    if t.ndim == 1:
        t = np.ascontiguousarray(np.broadcast_to(t, (x.shape[0] if x.ndim == 4 else 1, t.shape[0])))
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"{op}: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    if fill_mode not in ("constant", "nearest", "reflect", "wrap"):
        raise ValueError(f"{op}: fill_mode must be 'constant', 'nearest', 'reflect' or 'wrap', got {fill_mode!r}")
    return t

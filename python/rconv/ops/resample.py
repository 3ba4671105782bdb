"""Resampling: nearest and bilinear up-sampling and resizing (NHWC)."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import _rconv
from ._checks import IntOrPair, _f32, _pair

__all__ = ["resize", "resize_backward"]

_INTERPOLATIONS = ("bilinear", "nearest")


def resize(images, size: IntOrPair, interpolation: str = "bilinear") -> np.ndarray:
    """Resize NHWC images to ``size`` = (height, width) like ``keras.ops.image.resize`` on TensorFlow
    (``tf.image.resize``: half-pixel centres, no antialiasing). interpolation: 'bilinear' | 'nearest'.

    Integer up-sampling with 'nearest' repeats every pixel (``UpSampling2D``); 'bilinear' reads the two
    neighbours of ``(o + 0.5) * in / out - 0.5`` along each axis, clamped to the image."""
    op = "resize"
    x = _f32(images, op, "images")
    return _rconv.resize(x, _pair(size, op, "size"), _interpolation(interpolation, op))


def resize_backward(grad_y, image_shape: Tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Input gradient of :func:`resize`: the exact adjoint of its (linear) resampling.

    ``grad_y`` (n, out_h, out_w, c) is the output gradient; ``image_shape`` = (h, w) of the resized images.
    Returns (n, h, w, c): each output pixel's gradient goes to the pixels it read, with their weights."""
    op = "resize_backward"
    g = _f32(grad_y, op, "grad_y")
    return _rconv.resize_backward(g, _pair(image_shape, op, "image_shape"), _interpolation(interpolation, op))


def _interpolation(interpolation: str, op: str) -> str:
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    return interpolation

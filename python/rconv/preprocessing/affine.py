"""Keras's geometric augmentation matrix, and its application through the Rust resampling kernel.

Keras composes rotation · shift · shear · zoom as one 3×3 matrix in (row, col) coordinates, re-centres
it with ``transform_matrix_offset_center`` and hands it to ``scipy.ndimage.affine_transform``: the
matrix maps an OUTPUT pixel (row, col) to the INPUT point it samples. ``rconv.ops.affine_transform``
takes the same kind of map in (x = col, y = row) order as an 8-vector, so the conversion is a swap.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _rconv, ops


def transform_matrix_offset_center(matrix, x, y):
    """Conjugate ``matrix`` by a shift to the image centre (x, y = height, width, like Keras)."""
    o_x = float(x) / 2 - 0.5
    o_y = float(y) / 2 - 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return offset_matrix @ matrix @ reset_matrix


def affine_matrix(theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, h=None, w=None):
    """Keras's composed (row, col) matrix, or None when it is the identity.

    theta and shear are degrees; tx shifts rows (height), ty shifts columns (width), in pixels;
    zx scales rows, zy columns. Centred on an (h, w) image when h, w are given.
    """
    m = None

    def mul(a, b):
        return b if a is None else a @ b

    if theta != 0:
        t = np.deg2rad(theta)
        m = mul(m, np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]]))
    if tx != 0 or ty != 0:
        m = mul(m, np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=float))
    if shear != 0:
        s = np.deg2rad(shear)
        m = mul(m, np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]]))
    if zx != 1 or zy != 1:
        m = mul(m, np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]], dtype=float))
    if m is not None and h is not None:
        m = transform_matrix_offset_center(m, h, w)
    return m


def matrix_to_kernel_vector(m):
    """(row, col) 3×3 output→input matrix → ``[a0, a1, a2, b0, b1, b2, 0, 0]`` in (x=col, y=row) order.

    input_row = m00 r + m01 c + m02 and input_col = m10 r + m11 c + m12, so with x = c, y = r:
    input_x = m11 x + m10 y + m12 and input_y = m01 x + m00 y + m02.
    """
    m = np.asarray(m, dtype=np.float64)
    return np.array([m[1, 1], m[1, 0], m[1, 2], m[0, 1], m[0, 0], m[0, 2], 0.0, 0.0], dtype=np.float32)


def kernel_available() -> bool:
    return hasattr(_rconv, "affine_transform")


_warned_fallback = False


def apply_affine_batch(images, matrices, fill_mode="nearest", cval=0.0, interpolation="bilinear"):
    """Resample an NHWC batch, one (row, col) matrix per image (None = identity), in one kernel call."""
    images = np.asarray(images, dtype=np.float32)
    idx = [i for i, m in enumerate(matrices) if m is not None]
    if not idx:
        return images
    vecs = np.stack([matrix_to_kernel_vector(matrices[i]) for i in idx])
    sub = images if len(idx) == len(images) else images[idx]
    if kernel_available():
        out = ops.affine_transform(sub, vecs, interpolation=interpolation, fill_mode=fill_mode,
                                   fill_value=float(cval))
    else:
        global _warned_fallback
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn("rconv._rconv.affine_transform is not built in this extension; "
                          "ImageDataGenerator falls back to a slow NumPy resampler.", RuntimeWarning, stacklevel=2)
        out = numpy_affine_transform(sub, vecs, interpolation, fill_mode, float(cval))
    if len(idx) == len(images):
        return out
    images = images.copy()
    images[idx] = out
    return images


def _map_coord(c, size, mode):
    """Fold a coordinate into [0, size-1] like TF's ``map_coordinate`` (constant: left for the reader)."""
    if mode == "constant":
        return c
    if mode == "reflect" and size > 1:
        period = 2 * size
        c = np.mod(c, period)  # (d c b a | a b c d | d c b a)
        c = np.where(c >= size, period - 1 - c, c)
    elif mode == "wrap" and size > 1:
        c = np.mod(c, size)
    elif mode != "nearest":
        c = np.zeros_like(c)
    return np.clip(c, 0, size - 1)


def numpy_affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0):
    """Slow NumPy twin of ``ops.affine_transform`` (the fallback when the kernel is not built)."""
    images = np.asarray(images, dtype=np.float32)
    n, h, w, c = images.shape
    out = np.empty_like(images)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        a0, a1, a2, b0, b1, b2, c0, c1 = np.asarray(transforms[i], dtype=np.float64)
        k = c0 * xs + c1 * ys + 1.0
        sx = _map_coord((a0 * xs + a1 * ys + a2) / k, w, fill_mode)
        sy = _map_coord((b0 * xs + b1 * ys + b2) / k, h, fill_mode)
        img = images[i]

        def read(yy, xx):  # taps outside the image read fill_value
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            yi = np.clip(yy, 0, h - 1).astype(np.int64)
            xi = np.clip(xx, 0, w - 1).astype(np.int64)
            v = img[yi, xi]
            return np.where(inside[..., None], v, np.float32(fill_value))

        if interpolation == "nearest":
            # round half away from zero, like the kernel (and TF)
            out[i] = read(np.sign(sy) * np.floor(np.abs(sy) + 0.5), np.sign(sx) * np.floor(np.abs(sx) + 0.5))
        else:
            y0, x0 = np.floor(sy), np.floor(sx)
            dy, dx = (sy - y0)[..., None], (sx - x0)[..., None]
            out[i] = ((1 - dy) * ((1 - dx) * read(y0, x0) + dx * read(y0, x0 + 1))
                      + dy * ((1 - dx) * read(y0 + 1, x0) + dx * read(y0 + 1, x0 + 1)))
    return out

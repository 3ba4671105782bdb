"""Layer-contract cases (tests/test_layers_contract.py) of the shape and resampling layers: UpSampling2D,
ZeroPadding2D, Cropping2D, Reshape, Permute, RepeatVector, SpatialDropout2D, GaussianNoise, Resizing,
CenterCrop, RandomCrop, RandomBrightness, with their float64 NumPy references.

Odd shapes, batch 1, one channel, factors 1..3, non-integer resize ratios up and down. The random layers
are seeded: their training references redraw the same numbers from `default_rng(seed)` as the layer does,
so the training forward and its finite differences are checked too. The references are also used by
tests/test_reshaping_layers.py and tests/test_resample_layers.py (Keras ports, fixtures, files).
"""
from __future__ import annotations

import numpy as np

import reference as ref
from contract_case import Case
from rconv import layers
from test_resample import resize_ref


def identity_ref(**_):
    return lambda x, w: ref.f64(x)


# --- reshaping --------------------------------------------------------------------------------------------

def upsampling_ref(size=(2, 2), interpolation="nearest"):
    def fn(x, w):
        fh, fw = ref.as_pair(size)
        if interpolation == "nearest":
            return np.repeat(np.repeat(ref.f64(x), fh, axis=1), fw, axis=2)
        return resize_ref(x, (x.shape[1] * fh, x.shape[2] * fw), "bilinear")
    return fn


def margins(value):
    """An int, a pair or a pair of pairs as ((top, bottom), (left, right))."""
    if isinstance(value, int):
        return ((value, value), (value, value))
    return tuple((v, v) if isinstance(v, int) else tuple(v) for v in value)


def padding_ref(padding=1):
    return lambda x, w: np.pad(ref.f64(x), ((0, 0), *margins(padding), (0, 0)))


def cropping_ref(cropping=0):
    (t, b), (left, r) = margins(cropping)
    return lambda x, w: ref.f64(x)[:, t:x.shape[1] - b, left:x.shape[2] - r]


def reshape_ref(target_shape):
    def fn(x, w):
        known = -int(np.prod(target_shape))  # one -1 among positive entries
        size = int(np.prod(x.shape[1:]))
        return ref.f64(x).reshape((x.shape[0],) + tuple(size // known if d == -1 else d for d in target_shape))
    return fn


def permute_ref(dims):
    return lambda x, w: np.transpose(ref.f64(x), (0,) + tuple(dims))


def repeat_ref(n):
    return lambda x, w: np.repeat(ref.f64(x)[:, None], n, axis=1)


# --- noise --------------------------------------------------------------------------------------------------

def spatial_dropout_training_ref(rate, seed):
    """rconv's seeded SpatialDropout2D: one float32 uniform per (image, channel), kept where >= rate."""
    def fn(x, w):
        keep = np.random.default_rng(seed).random((x.shape[0], 1, 1, x.shape[3]), dtype=np.float32) >= rate
        return ref.f64(x) * keep / (1.0 - rate)
    return fn


def gaussian_noise_training_ref(stddev, seed):
    def fn(x, w):
        noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=np.float32) * np.float32(stddev)
        return ref.f64(x) + noise.astype(np.float64)
    return fn


# --- image preprocessing ------------------------------------------------------------------------------------

def crop_box(h, w, th, tw):
    """Keras's smart_resize window, as Keras writes it (float divisions, int truncation)."""
    ch = max(min(h, int(float(w * th) / tw)), 1)
    cw = max(min(w, int(float(h * tw) / th)), 1)
    return int(float(h - ch) / 2), int(float(w - cw) / 2), ch, cw


def smart_resize_ref(x, size, interpolation="bilinear"):
    t, left, ch, cw = crop_box(x.shape[1], x.shape[2], *size)
    return resize_ref(ref.f64(x)[:, t:t + ch, left:left + cw], size, interpolation)


def resizing_ref(height, width, interpolation="bilinear", crop_to_aspect_ratio=False, pad_to_aspect_ratio=False,
                 fill_value=0.0):
    def fn(x, w):
        if crop_to_aspect_ratio:
            return smart_resize_ref(x, (height, width), interpolation)
        x = ref.f64(x)
        if pad_to_aspect_ratio:
            h, wd = x.shape[1:3]
            top = int(float(max(h, int(float(wd * height) / width)) - h) / 2)
            left = int(float(max(wd, int(float(h * width) / height)) - wd) / 2)
            x = np.pad(x, ((0, 0), (top, top), (left, left), (0, 0)), constant_values=fill_value)
        return resize_ref(x, (height, width), interpolation)
    return fn


def center_crop_ref(height, width):
    def fn(x, w):
        h, wd = x.shape[1:3]
        if h >= height and wd >= width:
            t, left = (h - height) // 2, (wd - width) // 2
            return ref.f64(x)[:, t:t + height, left:left + width]
        return smart_resize_ref(x, (height, width))
    return fn


def random_crop_inference_ref(height, width, seed=None):
    return lambda x, w: smart_resize_ref(x, (height, width))


def random_crop_training_ref(height, width, seed):
    """One window per batch: offsets `integers(0, size - target + 1)` from `default_rng(seed)`, rows first."""
    def fn(x, w):
        h, wd = x.shape[1:3]
        if h < height or wd < width:
            return smart_resize_ref(x, (height, width))
        gen = np.random.default_rng(seed)
        t, left = int(gen.integers(0, h - height + 1)), int(gen.integers(0, wd - width + 1))
        return ref.f64(x)[:, t:t + height, left:left + width]
    return fn


def brightness_training_ref(factor, value_range, seed):
    """Per image, delta = uniform(lower, upper) * (high - low) from `default_rng(seed)`, added, then clipped."""
    lower, upper = (-abs(factor), abs(factor)) if np.isscalar(factor) else sorted(factor)
    low, high = sorted(value_range)

    def fn(x, w):
        delta = np.random.default_rng(seed).uniform(lower, upper, size=len(x)) * (high - low)
        return np.clip(ref.f64(x) + delta.astype(np.float32)[:, None, None, None], low, high)
    return fn


CASES = []
for size in [2, (1, 3), (3, 2), (1, 1)]:
    for interpolation in ["nearest", "bilinear"]:
        for shape in [(2, 5, 3, 2), (1, 1, 4, 1)]:
            CASES.append(Case(layers.UpSampling2D, dict(size=size, interpolation=interpolation), shape,
                              upsampling_ref, bad=[(2, 3, 4), (1, 2, 2, 2, 1)]))
for padding in [1, (2, 0), ((1, 2), (0, 3))]:
    for shape in [(2, 3, 4, 2), (1, 1, 1, 1)]:
        CASES.append(Case(layers.ZeroPadding2D, dict(padding=padding), shape, padding_ref, bad=[(2, 3, 4)]))
for cropping in [1, (0, 2), ((1, 0), (2, 1))]:
    CASES.append(Case(layers.Cropping2D, dict(cropping=cropping), (2, 5, 6, 3), cropping_ref,
                      bad=[(2, 5, 6), (1, 2, 2, 1)]))
for target, shape in [((8, 1), (3, 2, 4)), ((-1,), (3, 2, 4)), ((2, -1), (3, 2, 4)), ((1, -1, 3), (1, 3, 5, 1)),
                      ((2, 4), (2, 8))]:
    CASES.append(Case(layers.Reshape, dict(target_shape=target), shape, reshape_ref,
                      bad=[] if target == (-1,) else [(3, 7)]))
for dims, shape in [((2, 1), (3, 4, 5)), ((3, 1, 2), (2, 3, 5, 4)), ((1, 2), (1, 3, 1)), ((1,), (2, 3))]:
    CASES.append(Case(layers.Permute, dict(dims=dims), shape, permute_ref, bad=[shape + (2,)]))
for n, shape in [(3, (2, 5)), (1, (1, 1)), (4, (1, 3))]:
    CASES.append(Case(layers.RepeatVector, dict(n=n), shape, repeat_ref, bad=[(2, 3, 4)]))

for rate, seed, shape in [(0.5, 3, (3, 4, 5, 6)), (0.3, 1, (1, 3, 3, 1)), (0.0, 2, (2, 2, 3, 4))]:
    CASES.append(Case(layers.SpatialDropout2D, dict(rate=rate, seed=seed), shape, identity_ref, bad=[(3, 4, 5)],
                      options=dict(training_reference_fn=spatial_dropout_training_ref(rate, seed))))
for stddev, seed, shape in [(0.1, 3, (3, 4, 5)), (1.0, 1, (1, 2, 2, 1)), (0.0, 0, (2, 3))]:
    CASES.append(Case(layers.GaussianNoise, dict(stddev=stddev, seed=seed), shape, identity_ref,
                      options=dict(training_reference_fn=gaussian_noise_training_ref(stddev, seed))))

IMAGE_BAD = [(5, 7), (1, 2, 5, 7, 3)]  # rank 2 and rank 5
IMAGE_SHAPES = [(2, 5, 7, 3), (1, 9, 4, 1)]
for kwargs in [dict(height=8, width=10), dict(height=3, width=4), dict(height=2, width=11),
               dict(height=7, width=3, interpolation="nearest"), dict(height=4, width=4, crop_to_aspect_ratio=True),
               dict(height=4, width=4, pad_to_aspect_ratio=True, fill_value=0.5),
               dict(height=6, width=3, pad_to_aspect_ratio=True), dict(height=5, width=7)]:
    for shape in IMAGE_SHAPES:
        CASES.append(Case(layers.Resizing, kwargs, shape, resizing_ref, bad=IMAGE_BAD))
for kwargs in [dict(height=3, width=4), dict(height=6, width=4), dict(height=10, width=2), dict(height=5, width=7)]:
    for shape in IMAGE_SHAPES:
        CASES.append(Case(layers.CenterCrop, kwargs, shape, center_crop_ref, bad=IMAGE_BAD))
for kwargs in [dict(height=3, width=4, seed=3), dict(height=6, width=4, seed=1), dict(height=5, width=7, seed=2)]:
    for shape in IMAGE_SHAPES:
        CASES.append(Case(layers.RandomCrop, kwargs, shape, random_crop_inference_ref, bad=IMAGE_BAD,
                          options=dict(training_reference_fn=random_crop_training_ref(**kwargs))))
for factor, value_range, seed in [(0.2, (-10, 10), 3), ((-0.5, 0.1), (4, -4), 1), (0.6, (0, 1), 2)]:
    kwargs = dict(factor=factor, value_range=value_range, seed=seed)
    for shape in [(3, 4, 5, 2), (1, 1, 1, 1)]:
        CASES.append(Case(layers.RandomBrightness, kwargs, shape, identity_ref, bad=IMAGE_BAD,
                          options=dict(training_reference_fn=brightness_training_ref(**kwargs))))

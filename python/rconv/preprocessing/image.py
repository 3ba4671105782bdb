"""``ImageDataGenerator``: Keras's (legacy) real-time image augmentation, on rconv's resampling kernel.

Per image, exactly like Keras: draw the random parameters, apply the composed affine matrix
(rotation · shift · shear · zoom, re-centred; bilinear, ``fill_mode``/``cval``), the channel shift,
the flips, the brightness change, then ``standardize`` (preprocessing_function, rescale, sample- then
feature-wise centring/normalisation, ZCA). Batches from ``flow``/``flow_from_directory`` resample all
their images in one ``rconv.ops.affine_transform`` call.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import backend
from .affine import affine_matrix, apply_affine_batch, transform_matrix_offset_center  # noqa: F401
from .image_utils import array_to_img, img_to_array, load_img, save_img
from .iterators import DirectoryIterator, Iterator, NumpyArrayIterator

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "DirectoryIterator",
           "load_img", "img_to_array", "array_to_img", "save_img", "apply_affine_transform",
           "apply_channel_shift", "apply_brightness_shift", "flip_axis", "transform_matrix_offset_center"]

_FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def flip_axis(x, axis):
    x = np.asarray(x).swapaxes(axis, 0)
    x = x[::-1, ...]
    return x.swapaxes(0, axis)


def apply_channel_shift(x, intensity, channel_axis=0):
    """Add ``intensity`` to every channel, clipped to the image's original [min, max] (Keras)."""
    min_x, max_x = np.min(x), np.max(x)
    return np.clip(x + intensity, min_x, max_x).astype(x.dtype, copy=False)


def apply_brightness_shift(x, brightness, scale=True):
    """PIL ``ImageEnhance.Brightness`` on a channels-last image (Keras's exact route, 8-bit rounding)."""
    from PIL import ImageEnhance

    x_min, x_max = np.min(x), np.max(x)
    local_scale = (x_min < 0) or (x_max > 255)
    img = array_to_img(x, scale=local_scale or scale)
    img = ImageEnhance.Brightness(img).enhance(brightness)
    out = img_to_array(img)
    if not scale and local_scale:
        out = out / 255 * (x_max - x_min) + x_min
    return out


def _interp_name(order):
    if order == 0:
        return "nearest"
    if order != 1:
        warnings.warn(f"interpolation_order={order} is not supported by rconv's kernel; using bilinear (1).",
                      stacklevel=2)
    return "bilinear"


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2,
                           channel_axis=0, fill_mode="nearest", cval=0.0, order=1):
    """Keras's ``apply_affine_transform`` for one 3-D image (default layout channels-first, like Keras)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    if sorted((row_axis, col_axis, channel_axis)) != [0, 1, 2]:
        raise ValueError("'row_axis', 'col_axis', and 'channel_axis' must be a permutation of 0, 1, 2")
    h, w = x.shape[row_axis], x.shape[col_axis]
    m = affine_matrix(theta, tx, ty, shear, zx, zy, h, w)
    if m is None:
        return x
    nhwc = np.transpose(x, (row_axis, col_axis, channel_axis))[None]
    out = apply_affine_batch(nhwc, [m], fill_mode=fill_mode, cval=cval, interpolation=_interp_name(order))[0]
    inv = np.argsort((row_axis, col_axis, channel_axis))
    return np.transpose(out, inv).astype(x.dtype if x.dtype.kind == "f" else np.float32, copy=False)


def _shift_amount(rng, shift_range, size):
    """Keras's draw for width/height_shift_range: float → uniform(±r); int or list → ±choice."""
    if isinstance(shift_range, (int, np.integer)) and not isinstance(shift_range, bool):
        t = float(rng.integers(0, shift_range)) if shift_range > 0 else 0.0
        t *= rng.choice([-1, 1])
    elif isinstance(shift_range, (list, tuple, np.ndarray)):
        t = float(rng.choice(np.asarray(shift_range)))
        t *= rng.choice([-1, 1])
    else:
        t = rng.uniform(-shift_range, shift_range)
    if np.max(shift_range) < 1:
        t *= size
    return float(t)


class ImageDataGenerator:
    """Generate batches of image data with real-time augmentation (``keras.preprocessing.image``)."""

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        data_format = data_format or "channels_last"
        self.dtype = dtype or backend.floatx()
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.channel_shift_range = channel_shift_range
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"fill_mode must be one of {_FILL_MODES}, got {fill_mode!r}")
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.interpolation_order = interpolation_order
        if data_format not in {"channels_last", "channels_first"}:
            raise ValueError('`data_format` should be `"channels_last"` (channel after row and column) or '
                             f'`"channels_first"` (channel before row and column). Received: {data_format}')
        self.data_format = data_format
        if data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2
        if validation_split and not 0 < validation_split < 1:
            raise ValueError(f"`validation_split` must be strictly between 0 and 1.  Received: {validation_split}")
        self._validation_split = validation_split
        self.mean = None
        self.std = None
        self.zca_whitening_matrix = None

        if isinstance(zoom_range, (float, int)):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2 and all(isinstance(v, (float, int)) for v in zoom_range):
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(f"`zoom_range` should be a float or a tuple or list of two floats. Received: {zoom_range}")
        if zca_whitening:
            if not featurewise_center:
                self.featurewise_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which overrides setting of "
                              "`featurewise_center`.", stacklevel=2)
            if featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which overrides setting of"
                              "`featurewise_std_normalization`.", stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, which overrides "
                          "setting of `featurewise_center`.", stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, which overrides "
                          "setting of `samplewise_center`.", stacklevel=2)
        if brightness_range is not None:
            if not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2:
                raise ValueError("`brightness_range should be tuple or list of two floats. "
                                 f"Received: {brightness_range}")
        self.brightness_range = brightness_range

    # --- iterators -------------------------------------------------------------------------------------

    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
                                  seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
                                  save_prefix=save_prefix, save_format=save_format,
                                  ignore_class_split=ignore_class_split, subset=subset, dtype=self.dtype)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb", classes=None,
                            class_mode="categorical", batch_size=32, shuffle=True, seed=None, save_to_dir=None,
                            save_prefix="", save_format="png", follow_links=False, subset=None,
                            interpolation="nearest", keep_aspect_ratio=False, reduce_jpeg=True):
        """Keras's ``flow_from_directory``; ``reduce_jpeg=False`` turns off reduced-size JPEG decoding (see
        ``rconv.preprocessing._decode``: JPEGs at least twice the target size decode at 1/2, 1/4 or 1/8 scale)."""
        return DirectoryIterator(directory, self, target_size=target_size, color_mode=color_mode,
                                 keep_aspect_ratio=keep_aspect_ratio, classes=classes, class_mode=class_mode,
                                 data_format=self.data_format, batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix, save_format=save_format,
                                 follow_links=follow_links, subset=subset, interpolation=interpolation,
                                 dtype=self.dtype, reduce_jpeg=reduce_jpeg)

    # --- normalisation ---------------------------------------------------------------------------------

    def standardize(self, x):
        """Normalise one image (or a batch) in place, in Keras's order; returns it."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        if self.featurewise_center:
            if self.mean is not None:
                x -= self.mean
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_center`, but it hasn't been fit on "
                              "any training data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=2)
        if self.featurewise_std_normalization:
            if self.std is not None:
                x /= self.std + 1e-6
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, but it hasn't "
                              "been fit on any training data. Fit it first by calling `.fit(numpy_data)`.",
                              stacklevel=2)
        if self.zca_whitening:
            if self.zca_whitening_matrix is not None:
                flat_x = x.reshape(-1, np.prod(x.shape[-3:]))
                x = np.reshape(flat_x @ self.zca_whitening_matrix, x.shape)
            else:
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, but it hasn't been fit on any "
                              "training data. Fit it first by calling `.fit(numpy_data)`.", stacklevel=2)
        return x

    # --- random transforms -----------------------------------------------------------------------------

    def _draw_params(self, img_shape, rng):
        """Keras's draws, in Keras's order, from the generator ``rng``."""
        row, col = self.row_axis - 1, self.col_axis - 1
        theta = rng.uniform(-self.rotation_range, self.rotation_range) if self.rotation_range else 0
        tx = _shift_amount(rng, self.height_shift_range, img_shape[row]) if self.height_shift_range else 0
        ty = _shift_amount(rng, self.width_shift_range, img_shape[col]) if self.width_shift_range else 0
        shear = rng.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = rng.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_horizontal = bool(rng.random() < 0.5) and bool(self.horizontal_flip)
        flip_vertical = bool(rng.random() < 0.5) and bool(self.vertical_flip)
        channel_shift_intensity = None
        if self.channel_shift_range != 0:
            channel_shift_intensity = rng.uniform(-self.channel_shift_range, self.channel_shift_range)
        brightness = None
        if self.brightness_range is not None:
            brightness = rng.uniform(self.brightness_range[0], self.brightness_range[1])
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy,
                "flip_horizontal": flip_horizontal, "flip_vertical": flip_vertical,
                "channel_shift_intensity": channel_shift_intensity, "brightness": brightness}

    def get_random_transform(self, img_shape, seed=None):
        """Random parameters for one image (dict, Keras's keys); ``seed`` makes the draw reproducible."""
        rng = np.random.default_rng(seed) if seed is not None else backend.rng()
        return self._draw_params(img_shape, rng)

    def _matrix(self, params, img_shape):
        h, w = img_shape[self.row_axis - 1], img_shape[self.col_axis - 1]
        return affine_matrix(params.get("theta", 0), params.get("tx", 0), params.get("ty", 0),
                             params.get("shear", 0), params.get("zx", 1), params.get("zy", 1), h, w)

    def _post_affine(self, x, params):
        """Channel shift, flips, brightness on one image whose affine part is done (Keras's order)."""
        channel_axis, row, col = self.channel_axis - 1, self.row_axis - 1, self.col_axis - 1
        if params.get("channel_shift_intensity") is not None:
            x = apply_channel_shift(x, params["channel_shift_intensity"], channel_axis)
        if params.get("flip_horizontal", False):
            x = flip_axis(x, col)
        if params.get("flip_vertical", False):
            x = flip_axis(x, row)
        if params.get("brightness") is not None:
            if self.data_format == "channels_first":
                x = apply_brightness_shift(np.moveaxis(x, 0, -1), params["brightness"], False)
                x = np.moveaxis(x, -1, 0)
            else:
                x = apply_brightness_shift(x, params["brightness"], False)
        return x

    def _affine_batch(self, batch, matrices):
        if self.data_format == "channels_first":
            nhwc = np.ascontiguousarray(np.transpose(batch, (0, 2, 3, 1)))
            out = apply_affine_batch(nhwc, matrices, self.fill_mode, self.cval, _interp_name(self.interpolation_order))
            return np.transpose(out, (0, 3, 1, 2))
        return apply_affine_batch(batch, matrices, self.fill_mode, self.cval, _interp_name(self.interpolation_order))

    def apply_transform(self, x, transform_parameters):
        """Apply the parameters from ``get_random_transform`` to one 3-D image."""
        x = np.asarray(x)
        m = self._matrix(transform_parameters, x.shape)
        if m is not None:
            x = self._affine_batch(x[None].astype(np.float32), [m])[0].astype(self.dtype, copy=False)
        return self._post_affine(x, transform_parameters)

    def random_transform(self, x, seed=None):
        params = self.get_random_transform(np.shape(x), seed)
        return self.apply_transform(x, params)

    def _augment_batch(self, batch, rng, rows=None):
        """Transform then standardise a (n, ...) float batch in place and return it; one kernel call for all
        affine maps. The random draws are made for every row; only rows ``[lo, hi)`` (``rows``, default all)
        are transformed (a data-parallel rank's share of a global batch)."""
        n = len(batch)
        lo, hi = rows or (0, n)
        cls = type(self)
        if (cls.get_random_transform is not ImageDataGenerator.get_random_transform
                or cls.apply_transform is not ImageDataGenerator.apply_transform):
            # A subclass customised the per-image hooks: honour them (Keras's per-image path).
            seeds = [int(rng.integers(2 ** 31)) for _ in range(n)]
            for i in range(lo, hi):
                params = self.get_random_transform(batch[i].shape, seed=seeds[i])
                batch[i] = self.standardize(self.apply_transform(np.array(batch[i], copy=True), params))
            return batch
        params = [self._draw_params(batch[i].shape, rng) for i in range(n)][lo:hi]
        sub = batch[lo:hi]
        matrices = [self._matrix(p, sub[i].shape) for i, p in enumerate(params)]
        if any(m is not None for m in matrices):
            sub = self._affine_batch(sub, matrices).astype(self.dtype, copy=False)
        if all(p["channel_shift_intensity"] is None and p["brightness"] is None for p in params):
            # flips only: whole-batch moves, and a whole-batch standardize when it is per-pixel
            row, col = self.row_axis, self.col_axis
            for axis, key in ((col, "flip_horizontal"), (row, "flip_vertical")):
                sel = np.flatnonzero([p[key] for p in params])
                if len(sel):
                    sub[sel] = np.flip(sub[sel], axis=axis)
            if (self.preprocessing_function or self.samplewise_center or self.samplewise_std_normalization
                    or self.zca_whitening):
                for i in range(len(sub)):
                    sub[i] = self.standardize(np.array(sub[i], dtype=self.dtype, copy=True))
            else:
                sub = self.standardize(sub)
        else:
            for i in range(len(sub)):
                x = self._post_affine(sub[i], params[i])
                sub[i] = self.standardize(np.array(x, dtype=self.dtype, copy=True))
        if rows is None or (lo, hi) == (0, n):
            return np.asarray(sub, dtype=self.dtype)
        batch[lo:hi] = sub
        return batch

    # --- data-dependent statistics ---------------------------------------------------------------------

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute featurewise mean/std (and the ZCA matrix) from rank-4 sample data (after ``rescale``)."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError("Input to `.fit()` should have rank 4. Got array with shape: " + str(x.shape))
        if x.shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(f'Expected input to be images (as Numpy array) following the data format convention '
                          f'"{self.data_format}" (channels on axis {self.channel_axis}), i.e. expected either 1, 3 '
                          f'or 4 channels on axis {self.channel_axis}. However, it was passed an array with shape '
                          f'{x.shape} ({x.shape[self.channel_axis]} channels).', stacklevel=2)
        rng = np.random.default_rng(seed) if seed is not None else backend.rng()
        x = np.copy(x)
        if self.rescale:
            x *= self.rescale
        if augment:
            ax = np.zeros((rounds * x.shape[0],) + x.shape[1:], dtype=self.dtype)
            for r in range(rounds):
                for i in range(x.shape[0]):
                    params = self._draw_params(x[i].shape, rng)
                    ax[i + r * x.shape[0]] = self.apply_transform(x[i], params)
            x = ax
        broadcast_shape = [1, 1, 1]
        broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.reshape(np.mean(x, axis=(0, self.row_axis, self.col_axis)), broadcast_shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.reshape(np.std(x, axis=(0, self.row_axis, self.col_axis)), broadcast_shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            n = len(x)
            flat_x = np.reshape(x, (n, -1))
            u, s, _ = np.linalg.svd(flat_x.T, full_matrices=False)
            s_inv = np.sqrt(n) / (s + self.zca_epsilon)
            self.zca_whitening_matrix = (u * s_inv).dot(u.T)

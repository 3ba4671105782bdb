"""``image_dataset_from_directory`` (Keras 3), without tf.data: a re-iterable NumPy batch dataset.

File indexing, the seeded shuffle of the file list (``np.random.RandomState(seed)``, as Keras does),
the validation split and the printed messages follow Keras, so the same ``seed`` gives the same
training/validation files. Each ``iter()`` is one epoch (reshuffled when ``shuffle``); decoding runs in
a background thread a few batches ahead, each batch decoded on a thread pool straight into its array, JPEGs at
reduced size when they are at least twice the target (``reduce_jpeg=False``: always full size, see
``rconv.preprocessing._decode``). Data-parallel training iterates ``_iter_shard((rank, size))``: batches keep
their global length, but only the rank's rows ``[n*rank//size, n*(rank+1)//size)`` are decoded.
``take``/``skip``/``map``/``prefetch``/``cache``/``shuffle``/
``repeat``/``as_numpy_iterator`` exist so common tf.data-style scripts keep working.
"""
from __future__ import annotations

import itertools
import os

import numpy as np

from ..preprocessing._decode import decode_into
from ..preprocessing._prefetch import Prefetcher
from ..preprocessing.iterators import shard_rows
from ..preprocessing.image import array_to_img, img_to_array, load_img, save_img  # noqa: F401 (re-exports)
from ..preprocessing.image_utils import (DATASET_FORMATS, PIL_INTERPOLATION_METHODS, check_directory,
                                         color_mode_channels, list_image_files)

ALLOWLIST_FORMATS = DATASET_FORMATS

# Keras 3 (TF) interpolation names → the closest Pillow filter.
_INTERPOLATIONS = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic", "area": "box",
                   "lanczos3": "lanczos", "lanczos5": "lanczos", "gaussian": "bicubic",
                   "mitchellcubic": "bicubic", "lanczos": "lanczos", "box": "box", "hamming": "hamming"}


class Dataset:
    """Minimal tf.data-like base: subclasses define ``__iter__`` (one pass) and ``__len__``. Like tf.data,
    ``len()`` of an endless dataset (``repeat()``) raises TypeError, so fit needs ``steps_per_epoch``."""

    def take(self, count):
        def length():
            n = _length(self)
            return len(self) if count < 0 else (count if n is None else min(count, n))
        return _Derived(self, lambda: itertools.islice(iter(self), count) if count >= 0 else iter(self), length)

    def skip(self, count):
        return _Derived(self, lambda: itertools.islice(iter(self), count, None),
                        lambda: max(0, len(self) - count))

    def map(self, map_func, num_parallel_calls=None, deterministic=None):
        def run():
            for el in self:
                yield map_func(*el) if isinstance(el, tuple) else map_func(el)
        return _Derived(self, run, lambda: len(self))

    def repeat(self, count=None):
        endless = count is None or count < 0

        def run():
            for _ in (itertools.count() if endless else range(count)):
                produced = False
                for el in self:
                    produced = True
                    yield el
                if not produced:  # repeating an empty dataset gives an empty dataset (tf.data)
                    return

        def length():
            if endless:
                raise TypeError("The dataset is infinite.")
            return len(self) * count
        return _Derived(self, run, length)

    def prefetch(self, buffer_size=None):
        return self  # batches are already produced ahead by a background thread

    def shuffle(self, buffer_size=None, seed=None, reshuffle_each_iteration=None):
        return self  # the file list is already reshuffled every epoch when shuffle=True

    def cache(self, filename=""):
        return _Cached(self)

    def as_numpy_iterator(self):
        return iter(self)

    def __bool__(self):
        return True


class _Derived(Dataset):
    def __init__(self, parent, iter_fn, len_fn):
        self._parent, self._iter_fn, self._len_fn = parent, iter_fn, len_fn
        self.class_names = getattr(parent, "class_names", None)
        self.file_paths = getattr(parent, "file_paths", None)

    def __iter__(self):
        return iter(self._iter_fn())

    def __len__(self):
        return self._len_fn()


class _Cached(Dataset):
    """Replays the first complete pass from memory (like ``tf.data.Dataset.cache()``)."""

    def __init__(self, parent):
        self._parent, self._items = parent, None
        self.class_names = getattr(parent, "class_names", None)
        self.file_paths = getattr(parent, "file_paths", None)

    def __iter__(self):
        if self._items is not None:
            yield from self._items
            return
        items = []
        for el in self._parent:
            items.append(el)
            yield el
        self._items = items

    def __len__(self):
        return len(self._items) if self._items is not None else len(self._parent)


def _length(ds):
    """``len(ds)``, or None for an endless dataset."""
    try:
        return len(ds)
    except TypeError:
        return None


def _produce(owner, key):
    return owner._batch(*key)


def _next_batch(key):
    epoch, i, shard = key
    return epoch, i + 1, shard


class ImageDataset(Dataset):
    """Batches ``(images float32 (b, h, w, c) in 0..255, labels)`` (or just images), one epoch per iter()."""

    prefetch_batches = 3

    def __init__(self, file_paths, labels, label_mode, class_names, color_mode, batch_size, image_size,
                 shuffle, seed, interpolation, crop_to_aspect_ratio, reduce_jpeg=True):
        self.file_paths = list(file_paths)
        self.reduce_jpeg = bool(reduce_jpeg)
        self._labels = None if labels is None else np.asarray(labels)
        self.label_mode = label_mode
        self.class_names = class_names
        self.num_classes = len(class_names) if class_names else 0
        self.color_mode = color_mode
        self.batch_size = batch_size
        self.image_size = tuple(int(v) for v in image_size)
        self._shuffle = shuffle
        self._seed = seed
        self._interpolation = interpolation
        self._crop = crop_to_aspect_ratio
        self._epoch = 0

    def __len__(self):
        n = len(self.file_paths)
        return n if self.batch_size is None else (n + self.batch_size - 1) // self.batch_size

    def _order(self, epoch):
        n = len(self.file_paths)
        if not self._shuffle or epoch == 0:
            return np.arange(n)  # epoch 0 uses Keras's seeded file order as is
        return np.random.default_rng([self._seed, epoch]).permutation(n)

    def _decode(self, out, idx):
        decode_into(out, [self.file_paths[j] for j in idx], color_mode=self.color_mode, target_size=self.image_size,
                    interpolation=self._interpolation, keep_aspect_ratio=self._crop, reduce_jpeg=self.reduce_jpeg)

    def _label(self, idx):
        y = self._labels[idx]
        if self.label_mode == "int":
            return y.astype("int32")
        if self.label_mode == "binary":
            return y.astype("float32").reshape(-1, 1) if np.ndim(y) else np.float32(y).reshape(1)
        one_hot = np.zeros((np.size(y), self.num_classes), dtype="float32")
        one_hot[np.arange(np.size(y)), np.ravel(y)] = 1.0
        return one_hot if np.ndim(y) else one_hot[0]

    def _batch(self, epoch, i, shard=None):
        if i >= len(self):
            return None
        order = self._order(epoch)
        channels = color_mode_channels(self.color_mode)
        if self.batch_size is None:
            idx = order[i]
            x = np.empty(self.image_size + (channels,), np.float32)
            self._decode(x[None], [idx])
        else:
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            lo, hi = shard_rows(len(idx), shard)
            x = (np.empty if (lo, hi) == (0, len(idx)) else np.zeros)((len(idx),) + self.image_size + (channels,),
                                                                          np.float32)
            self._decode(x[lo:hi], idx[lo:hi])
        if self.label_mode is None:
            return x
        return x, self._label(idx)

    def __iter__(self):
        return self._iter_shard(None)

    def _iter_shard(self, shard):
        """One epoch; with ``shard`` = (rank, size) only the rank's rows of each batch are decoded."""
        epoch, self._epoch = self._epoch, self._epoch + 1
        n = len(self)
        if n == 0:
            return
        if not self.prefetch_batches:
            for i in range(n):
                yield self._batch(epoch, i, shard)
            return
        p = Prefetcher(self, _produce, _next_batch, (epoch, 0, shard), depth=self.prefetch_batches,
                       name="rconv-image-dataset")
        try:
            for _ in range(n):
                yield p.get()
        finally:
            p.stop()

    def __repr__(self):
        return (f"<ImageDataset: {len(self.file_paths)} files, batch_size={self.batch_size}, "
                f"image_size={self.image_size}, class_names={self.class_names}>")


def _index_directory(directory, labels, class_names, shuffle, seed, follow_links, verbose):
    """Keras's ``dataset_utils.index_directory`` (same order, same seeded shuffle, same message)."""
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory)) if os.path.isdir(os.path.join(directory, d))]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the subdirectories of the "
                                 f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            if labels is None:
                raise ValueError("When `labels=None` (no labels), argument `class_names` cannot be specified.")
            raise ValueError("When argument `labels` is specified, argument `class_names` cannot be specified "
                             "(the `class_names` will be the sorted list of labels).")
    class_indices = {name: i for i, name in enumerate(subdirs)}
    filenames, inferred = [], []
    for subdir in subdirs:
        base = os.path.join(directory, subdir)
        for root, fname in list_image_files(base, ALLOWLIST_FORMATS, follow_links):
            filenames.append(os.path.join(subdir, os.path.relpath(os.path.join(root, fname), base))
                             if subdir else os.path.relpath(os.path.join(root, fname), directory))
            inferred.append(class_indices[subdir])
    if labels == "inferred":
        labels = np.asarray(inferred, dtype="int32")
        class_names = subdirs
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files in the target "
                             f"directory. len(labels) is {len(labels)} while we found {len(filenames)} files "
                             f"in directory {directory}.")
        class_names = [str(v) for v in sorted(set(labels))]
        labels = np.asarray(labels)
    if verbose:
        if labels is None:
            print(f"Found {len(filenames)} files.")
        else:
            print(f"Found {len(filenames)} files belonging to {len(class_names)} classes.")
    file_paths = [os.path.join(directory, f) for f in filenames]
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return file_paths, labels, class_names


def _split(samples, labels, validation_split, subset, verbose=True):
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    cut = len(samples) - num_val
    if subset == "training":
        if verbose:
            print(f"Using {cut} files for training.")
        return samples[:cut], None if labels is None else labels[:cut]
    if subset == "validation":
        if verbose:
            print(f"Using {num_val} files for validation.")
        return samples[cut:], None if labels is None else labels[cut:]
    raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, data_format=None,
                                 verbose=True, reduce_jpeg=True):
    """Keras 3's ``keras.utils.image_dataset_from_directory``, returning an :class:`ImageDataset`.

    With ``subset="both"`` returns ``(train_ds, val_ds)``. Images are float32 in 0..255 (not rescaled).
    ``reduce_jpeg=False`` decodes JPEGs at full size before resizing (rconv's default decodes those at least
    twice the target size at 1/2, 1/4 or 1/8 scale first).
    """
    directory = check_directory(directory, "image_dataset_from_directory")
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple, np.ndarray)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of the same size as the "
                             "number of image files in the target directory. If you wish to infer the labels from "
                             'the subdirectory names in the target directory, pass `labels="inferred"`. If you wish '
                             "to get a dataset that only contains images (no labels), pass `labels=None`. "
                             f"Received: labels={labels}")
        if class_names:
            raise ValueError('You can only pass `class_names` if `labels="inferred"`. '
                             f"Received: labels={labels}, and class_names={class_names}")
    if label_mode not in {"int", "categorical", "binary", None}:
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode}")
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    color_mode_channels(color_mode)
    if pad_to_aspect_ratio:
        raise NotImplementedError("rconv's image_dataset_from_directory does not support pad_to_aspect_ratio")
    if pad_to_aspect_ratio and crop_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` can be set to `True`.")
    if data_format not in (None, "channels_last"):
        raise ValueError("rconv's image datasets are channels_last only")
    interp = _INTERPOLATIONS.get(str(interpolation).lower())
    if interp is None or interp not in PIL_INTERPOLATION_METHODS:
        raise ValueError(f"`interpolation` argument should be one of {tuple(_INTERPOLATIONS)}. "
                         f"Received: interpolation={interpolation}")
    # Keras's check_validation_split_arg
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError(f'`subset` must be either "training", "validation" or "both", received: {subset}')
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                         "to make sure that there is no overlap between the training and validation subset.")
    if seed is None:
        seed = np.random.randint(1e6)

    paths, labels, class_names = _index_directory(directory, labels, class_names, shuffle, seed, follow_links,
                                                  verbose)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 class_names. '
                         f"Received: class_names={class_names}")

    def make(p, lab):
        if not p:
            raise ValueError(f"No images found in directory {directory}. Allowed formats: {ALLOWLIST_FORMATS}")
        return ImageDataset(p, lab, label_mode, class_names, color_mode, batch_size, image_size, shuffle, seed,
                            interp, crop_to_aspect_ratio, reduce_jpeg)

    if subset == "both":
        train = make(*_split(paths, labels, validation_split, "training", verbose))
        val = make(*_split(paths, labels, validation_split, "validation", verbose))
        return train, val
    return make(*_split(paths, labels, validation_split, subset, verbose))


__all__ = ["image_dataset_from_directory", "ImageDataset", "load_img", "img_to_array", "array_to_img", "save_img"]

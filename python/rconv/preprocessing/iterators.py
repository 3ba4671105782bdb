"""Batch iterators behind ``ImageDataGenerator.flow`` / ``flow_from_directory`` (Keras semantics).

Randomness is a pure function of ``(seed, epoch, batch)``: epoch ``e``'s order is
``default_rng([seed, e]).permutation(n)`` and batch ``i``'s augmentation draws come from
``default_rng([seed, e, i])``. So ``it[i]``, ``next(it)`` and the background prefetch thread all see the
same batches, whatever order they are computed in. ``seed=None`` takes a base seed from rconv's
global generator (``rconv.utils.set_random_seed`` makes it reproducible).

``next(it)`` is Keras's endless stream (epoch after epoch, each reshuffled; the last batch of an epoch
may be short); it is served by a daemon thread that keeps ``prefetch`` batches ready. ``it[i]`` plus
``on_epoch_end()`` is the Sequence protocol; ``len(it)`` is ``ceil(n / batch_size)``.

Files are decoded on a thread pool straight into the batch array (``_decode.decode_into``; reduced-size JPEG
decoding unless ``reduce_jpeg=False``). Data-parallel training (``rconv.distribution``) asks for batches
with ``_get_shard(i, (rank, size))``: the batch keeps its global length and its files, draws the augmentation
of every row, but only rows ``[n*rank//size, n*(rank+1)//size)`` (the rows the rank trains on) are decoded and
transformed; the other image rows are left zero.
"""
from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from .. import backend
from ._decode import decode_into
from ._prefetch import Prefetcher
from .image_utils import GENERATOR_FORMATS, array_to_img, check_directory, color_mode_channels, list_image_files


class _OutOfRange(IndexError, ValueError):
    """Keras raises ValueError for an out-of-range batch; Python's protocols expect IndexError."""


def _produce(owner, key):
    return owner._batch(*key)


def shard_rows(n, shard):
    """(lo, hi): the rows of an n-row global batch that ``shard`` = (rank, size) trains on (all for None)."""
    if shard is None:
        return 0, n
    rank, size = shard
    return n * rank // size, n * (rank + 1) // size


class Iterator:
    """Base class: subclasses implement ``_get_batches_of_transformed_samples(index_array, rng)``."""

    white_list_formats = GENERATOR_FORMATS
    prefetch = 3  # batches produced ahead by the background thread for next(); 0 = synchronous
    _computes_rows = False  # True: _get_batches_of_transformed_samples takes rows=(lo, hi) (sharded batches)

    def __init__(self, n, batch_size, shuffle, seed):
        self.n = int(n)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.seed = seed
        self.shuffle = shuffle
        self._base_seed = int(seed) if seed is not None else int(backend.rng().integers(2 ** 31 - 1))
        self.batch_index = 0          # position of next() within its epoch
        self.total_batches_seen = 0
        self.epoch = 0                # epoch used by __getitem__ (advanced by on_epoch_end)
        self._stream_epoch = 0        # epoch of next()'s stream
        self.lock = threading.Lock()
        self._perm_lock = threading.Lock()
        self._perms = {}
        self._prefetcher = None
        self._seq_lock = threading.Lock()
        self._seq_prefetcher = None
        self._seq_expected = None

    # --- deterministic building blocks -----------------------------------------------------------------

    def _epoch_indices(self, epoch):
        if not self.shuffle:
            return np.arange(self.n)
        with self._perm_lock:
            perm = self._perms.get(epoch)
            if perm is None:
                perm = np.random.default_rng([self._base_seed, epoch]).permutation(self.n)
                self._perms[epoch] = perm
                for old in [e for e in self._perms if e < epoch - 2]:
                    del self._perms[old]
            return perm

    def _batch(self, epoch, idx, shard=None):
        index_array = self._epoch_indices(epoch)[self.batch_size * idx: self.batch_size * (idx + 1)]
        rng = np.random.default_rng([self._base_seed, epoch, idx, 1])
        if shard is not None and self._computes_rows:
            return self._get_batches_of_transformed_samples(index_array, rng, rows=shard_rows(len(index_array),
                                                                                               shard))
        return self._get_batches_of_transformed_samples(index_array, rng)

    def _get_batches_of_transformed_samples(self, index_array, rng=None):
        raise NotImplementedError

    @property
    def index_array(self):
        """Sample order of the current (``__getitem__``) epoch."""
        return self._epoch_indices(self.epoch)

    # --- Sequence protocol -----------------------------------------------------------------------------

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    @property
    def num_batches(self):
        return len(self)

    def __getitem__(self, idx):
        return self._get_shard(idx, None)

    def _get_shard(self, idx, shard):
        """``it[idx]`` where only the rows of ``shard`` = (rank, size) are computed (see the module doc)."""
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise _OutOfRange(f"Asked to retrieve element {idx}, but the Sequence has length {len(self)}")
        self.total_batches_seen += 1
        key = (self.epoch, idx, None if shard is None else tuple(shard))
        if not (self.prefetch and self.prefetch > 0):
            return self._batch(*key)
        # Sequential access (it[0], it[1], ... then on_epoch_end(), it[0], ...) is served by a second
        # prefetch thread, started at the second consecutive index; random access is computed in place.
        with self._seq_lock:
            next_key = self._next_key()
            p = self._seq_prefetcher
            if p is not None and key != self._seq_expected:
                p.stop(join=False)
                p = self._seq_prefetcher = None
            if p is None and self._seq_expected == key:
                p = self._seq_prefetcher = Prefetcher(self, _produce, next_key, key, depth=self.prefetch,
                                                      name=f"rconv-{type(self).__name__}-seq")
            self._seq_expected = next_key(key)
            if p is None:
                return self._batch(*key)
            try:
                return p.get()
            except BaseException:
                self._seq_prefetcher, self._seq_expected = None, None
                raise

    def on_epoch_end(self):
        self.epoch += 1

    # --- endless stream --------------------------------------------------------------------------------

    def _next_key(self):
        n_batches = max(1, len(self))

        def next_key(key):
            e, i, shard = key
            return (e + 1, 0, shard) if i + 1 >= n_batches else (e, i + 1, shard)
        return next_key

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            key = (self._stream_epoch, self.batch_index, None)
            p = None
            if self.prefetch and self.prefetch > 0:
                if self._prefetcher is None:
                    self._prefetcher = Prefetcher(self, _produce, self._next_key(), key, depth=self.prefetch,
                                                  name=f"rconv-{type(self).__name__}")
                p = self._prefetcher
            # Like Keras, a batch whose production failed is skipped: the position moves on either way.
            self._stream_epoch, self.batch_index, _ = self._next_key()(key)
            self.total_batches_seen += 1
            if p is not None:
                try:
                    return p.get()
                except BaseException:
                    self._prefetcher = None
                    raise
            return self._batch(*key)

    def next(self):
        return self.__next__()

    def reset(self):
        """Restart next()'s stream at the beginning of a freshly shuffled epoch (Keras's ``reset``)."""
        with self.lock:
            self.close()
            if self.batch_index != 0:
                self._stream_epoch += 1
            self.batch_index = 0

    def close(self):
        """Stop the prefetch threads (they restart when iteration resumes)."""
        for attr in ("_prefetcher", "_seq_prefetcher"):
            p = getattr(self, attr, None)
            setattr(self, attr, None)
            if p is not None:
                p.stop()
        self._seq_expected = None

    def __del__(self):
        try:
            for p in (self._prefetcher, self._seq_prefetcher):
                if p is not None:
                    p._stop.set()
        except Exception:  # pragma: no cover - interpreter teardown
            pass

    def _save_batch(self, batch_x, index_array, rng, rows=None):
        lo, hi = rows or (0, len(index_array))
        for i, j in enumerate(index_array):
            token = int(rng.integers(int(1e7)))
            if lo <= i < hi:
                img = array_to_img(batch_x[i], self.data_format, scale=True)
                img.save(os.path.join(self.save_to_dir, f"{self.save_prefix}_{j}_{token}.{self.save_format}"))


class DirectoryIterator(Iterator):
    """Reads ``directory/<class>/**/image`` files; prints ``Found N images belonging to K classes.``"""

    allowed_class_modes = {"categorical", "binary", "sparse", "input", None}
    _computes_rows = True

    def __init__(self, directory, image_data_generator, target_size=(256, 256), color_mode="rgb", classes=None,
                 class_mode="categorical", batch_size=32, shuffle=True, seed=None, data_format=None,
                 save_to_dir=None, save_prefix="", save_format="png", follow_links=False, subset=None,
                 interpolation="nearest", keep_aspect_ratio=False, dtype=None, reduce_jpeg=True):
        directory = check_directory(directory, "flow_from_directory")
        self.reduce_jpeg = bool(reduce_jpeg)
        self.image_data_generator = image_data_generator
        self.target_size = tuple(int(v) for v in target_size)
        self.keep_aspect_ratio = keep_aspect_ratio
        channels = color_mode_channels(color_mode)
        self.color_mode = color_mode
        self.data_format = data_format or "channels_last"
        self.image_shape = (self.target_size + (channels,) if self.data_format == "channels_last"
                            else (channels,) + self.target_size)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        self.interpolation = interpolation
        if subset is not None:
            vs = image_data_generator._validation_split if image_data_generator is not None else 0.0
            if subset == "validation":
                split = (0, vs)
            elif subset == "training":
                split = (vs, 1)
            else:
                raise ValueError(f'Invalid subset name: {subset};expected "training" or "validation"')
        else:
            split = None
        self.split, self.subset = split, subset
        self.directory = directory
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: {self.allowed_class_modes}")
        self.class_mode = class_mode
        self.dtype = dtype or backend.floatx()

        if not classes:
            classes = [d for d in sorted(os.listdir(directory)) if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))

        self.filenames, labels = [], []
        for subdir in classes:
            files = list(list_image_files(os.path.join(directory, subdir), self.white_list_formats, follow_links))
            if split:
                files = files[int(split[0] * len(files)): int(split[1] * len(files))]
            for root, fname in files:
                labels.append(self.class_indices[subdir])
                rel = os.path.relpath(os.path.join(root, fname), os.path.join(directory, subdir))
                self.filenames.append(os.path.join(subdir, rel))
        self.samples = len(self.filenames)
        self.classes = np.asarray(labels, dtype="int32")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, f) for f in self.filenames]
        super().__init__(self.samples, batch_size, shuffle, seed)

    @property
    def filepaths(self):
        return self._filepaths

    @property
    def labels(self):
        return self.classes

    @property
    def sample_weight(self):
        return None

    def _get_batches_of_transformed_samples(self, index_array, rng=None, rows=None):
        rng = rng if rng is not None else np.random.default_rng()
        lo, hi = rows or (0, len(index_array))
        batch_x = np.zeros((len(index_array),) + self.image_shape, dtype=self.dtype)
        filepaths = self.filepaths
        decode_into(batch_x[lo:hi], [filepaths[j] for j in index_array[lo:hi]], color_mode=self.color_mode,
                    target_size=self.target_size, interpolation=self.interpolation,
                    keep_aspect_ratio=self.keep_aspect_ratio, data_format=self.data_format,
                    reduce_jpeg=self.reduce_jpeg)
        if self.image_data_generator is not None and len(batch_x):
            batch_x = self.image_data_generator._augment_batch(batch_x, rng, rows=(lo, hi))
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng, (lo, hi))
        if self.class_mode == "input":
            batch_y = batch_x.copy()
        elif self.class_mode in {"binary", "sparse"}:
            batch_y = self.classes[index_array].astype(self.dtype)
        elif self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), len(self.class_indices)), dtype=self.dtype)
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
        else:
            return batch_x
        return batch_x, batch_y


class NumpyArrayIterator(Iterator):
    """Iterates over in-memory arrays ``x`` (rank 4) and optional ``y`` / ``sample_weight``."""

    _computes_rows = True

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False, sample_weight=None, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="", save_format="png", subset=None,
                 ignore_class_split=False, dtype=None):
        self.dtype = dtype or backend.floatx()
        data_format = data_format or "channels_last"
        if isinstance(x, (tuple, list)):
            x_misc = [np.asarray(x[1])] if not isinstance(x[1], list) else [np.asarray(v) for v in x[1]]
            x = x[0]
            for v in x_misc:
                if len(x) != len(v):
                    raise ValueError("All of the arrays in `x` should have the same length. Found a pair with: "
                                     f"len(x[0]) = {len(x)}, len(x[?]) = {len(v)}")
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ValueError("`x` (images tensor) and `y` (labels) should have the same length. "
                             f"Found: x.shape = {np.asarray(x).shape}, y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError("`x` (images tensor) and `sample_weight` should have the same length. Found: "
                             f"x.shape = {np.asarray(x).shape}, "
                             f"sample_weight.shape = {np.asarray(sample_weight).shape}")
        if subset is not None:
            if subset not in {"training", "validation"}:
                raise ValueError(f'Invalid subset name: {subset}; expected "training" or "validation".')
            split_idx = int(len(x) * image_data_generator._validation_split)
            if (y is not None and not ignore_class_split
                    and not np.array_equal(np.unique(y[:split_idx]), np.unique(y[split_idx:]))):
                raise ValueError("Training and validation subsets have different number of classes after the "
                                 "split. If your numpy arrays are sorted by the label, you might want to shuffle them.")
            sl = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[sl]
            x_misc = [np.asarray(v[sl]) for v in x_misc]
            if y is not None:
                y = y[sl]
            if sample_weight is not None:
                sample_weight = sample_weight[sl]
        self.x = np.asarray(x, dtype=self.dtype)
        self.x_misc = x_misc
        if self.x.ndim != 4:
            raise ValueError(f"Input data in `NumpyArrayIterator` should have rank 4. You passed an array with "
                             f"shape {self.x.shape}")
        channels_axis = 3 if data_format == "channels_last" else 1
        if self.x.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(f'NumpyArrayIterator is set to use the data format convention "{data_format}" '
                          f"(channels on axis {channels_axis}), i.e. expected either 1, 3, or 4 channels on axis "
                          f"{channels_axis}. However, it was passed an array with shape {self.x.shape} "
                          f"({self.x.shape[channels_axis]} channels).", stacklevel=2)
        self.y = np.asarray(y) if y is not None else None
        self.sample_weight = np.asarray(sample_weight) if sample_weight is not None else None
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, save_format
        super().__init__(self.x.shape[0], batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array, rng=None, rows=None):
        rng = rng if rng is not None else np.random.default_rng()
        if rows is None or rows == (0, len(index_array)):
            rows = None
            batch_x = self.x[index_array].astype(self.dtype, copy=True)
        else:
            batch_x = np.zeros((len(index_array),) + self.x.shape[1:], dtype=self.dtype)
            batch_x[rows[0]:rows[1]] = self.x[index_array[rows[0]:rows[1]]]
        if self.image_data_generator is not None and len(batch_x):
            batch_x = self.image_data_generator._augment_batch(batch_x, rng, rows=rows)
        if self.save_to_dir:
            self._save_batch(batch_x, index_array, rng, rows)
        miscs = [v[index_array] for v in self.x_misc]
        first = batch_x if not miscs else [batch_x] + miscs
        if self.y is None:
            return first
        out = (first, self.y[index_array])
        if self.sample_weight is not None:
            out += (self.sample_weight[index_array],)
        return out

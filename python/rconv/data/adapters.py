"""Data adapters (Keras 3's `keras/src/trainers/data_adapters`, NumPy only).

Each adapter turns one kind of input into the batches of ONE pass over it, every batch standardised to a
tuple `(x, y, sample_weight)` of structures of NumPy arrays (`y` / `sample_weight` may be None):

* `ArrayDataAdapter`: NumPy arrays (or anything with `__array__`, or number lists) and lists / tuples / dicts
  of them for `x`, `y` and `sample_weight` (multi-input / multi-output models). `shuffle=True` draws a new
  permutation of the samples every pass, `shuffle="batch"` shuffles inside each batch only (Keras), both from
  `rconv.backend.rng()`, so `rconv.utils.set_random_seed` makes them repeatable.
* `PyDatasetAdapter`: `rconv.utils.Sequence` / `PyDataset` and anything with `__getitem__` and `__len__`
  (or `num_batches`, which may be None for an endless dataset). `shuffle` shuffles the batch order every pass
  (Keras 3), except for rconv's image iterators (`ImageDataGenerator.flow*`), which shuffle their samples
  themselves. `on_epoch_begin` / `on_epoch_end` are called around every epoch. A PyDataset with `workers > 1`
  has its next batches loaded by that many threads (at most `max_queue_size` ahead) while the current one
  trains; they are used in order, so the batches are the same whatever the timing, and no load is still
  running when the pass ends (before `on_epoch_end`). rconv's image iterators prefetch by themselves.
* `IterableDataAdapter`: re-iterable datasets with `__iter__` but no `__getitem__`, such as what
  `rconv.utils.image_dataset_from_directory` returns: every pass calls `iter()` again. `len()` gives the
  batches per pass (a `len()` raising TypeError means unknown / endless, as for `tf.data`).
* `GeneratorDataAdapter`: Python generators and other one-shot iterators (`__next__`): passes continue the
  same iterator, which can run out for good.

Batches from the last three may be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; a list counts as a
tuple at the top level only (Keras's `unpack_x_y_sample_weight`), and a dict is `x`.

Data-parallel training (`rconv.distribution`) sets `adapter.shard = (rank, size)`: rconv's image iterators and
image datasets then decode (and augment) only the rows `[n*rank//size, n*(rank+1)//size)` of each global batch
that the rank trains on; batches keep their global length (the other image rows are zero), so the trainer's
slicing is unchanged. Other inputs are produced whole.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import math
import numbers
import warnings

import numpy as np

from .. import backend
from .structure import (describe, flatten, flatten_with_paths, is_array_like, is_nested, map_structure,
                        num_samples, same_structure, to_array)


# --- batch tuples (Keras's data_adapter_utils) -----------------------------------------------------------------

def unpack_x_y_sample_weight(data):
    """`x` | `(x,)` | `(x, y)` | `(x, y, sample_weight)` -> `(x, y, sample_weight)` (a list counts as a tuple)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data[0], data[1], data[2]
    raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, sample_weight)`, "
                     f"found: {describe(data)}")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    if y is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    if sample_weight is None:
        return x, y
    return x, y, sample_weight


def class_weight_to_sample_weights(y, class_weight) -> np.ndarray:
    """Keras's per-sample weights from `{class index: weight}`; `y` holds class indices, one-hot rows or
    single probabilities (rounded)."""
    if not hasattr(class_weight, "items") or not hasattr(class_weight, "get"):
        raise ValueError("`class_weight` must be a dict-like mapping of class indices to weights. Received: "
                         f"class_weight={class_weight} of type {type(class_weight)}.")
    cleaned = {}
    for key, value in class_weight.items():
        try:
            cleaned[int(key)] = float(value)
        except (TypeError, ValueError):
            raise ValueError("`class_weight` must be a dictionary with integer keys representing class "
                             f"indices. Received an invalid key: {key!r} of type {type(key)}.") from None
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = np.argmax(labels, axis=-1) if labels.shape[-1] != 1 else np.squeeze(labels, axis=-1)
    if labels.ndim != 1:
        raise ValueError(f"`class_weight` needs one class per sample, but `y` has shape {np.shape(y)}.")
    labels = np.round(labels).astype(np.int64)
    weights = np.ones(labels.shape[0], dtype=backend.floatx())
    for cls, w in cleaned.items():
        weights[labels == cls] = w
    return weights


def _check_class_weight(y, sample_weight, class_weight):
    if class_weight is None:
        return sample_weight
    if sample_weight is not None:
        raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
    if y is None:
        return None
    if is_nested(y):
        raise ValueError("`class_weight` is only supported for Models with a single output.")
    return class_weight_to_sample_weights(y, class_weight)


def standardize_batch(batch, class_weight=None):
    """A batch from a dataset / generator as `(x, y, sample_weight)` of NumPy structures, sizes checked."""
    x, y, sw = unpack_x_y_sample_weight(batch)
    try:
        x, y, sw = (map_structure(to_array, part) for part in (x, y, sw))
    except TypeError as e:
        raise TypeError(f"Invalid batch {describe(batch)}: {e}") from None
    sw = _check_class_weight(y, sw, class_weight)
    num_samples((x, y, sw))
    return x, y, sw


# --- adapters ----------------------------------------------------------------------------------------------------

class DataAdapter:
    """One pass of standardised batches (`get_iterator`), its length if known, and epoch hooks."""

    #: False for one-shot iterators: `get_iterator()` then continues the same stream instead of restarting.
    reiterable = True
    #: (rank, size) of a data-parallel rank that trains on its rows of each global batch only (module doc).
    shard = None

    @property
    def num_batches(self):
        """Batches in one pass, or None when unknown (generators, endless datasets)."""
        return None

    @property
    def batch_size(self):
        return None

    def get_iterator(self):
        raise NotImplementedError

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def _check_shuffle(shuffle):
    if isinstance(shuffle, str):
        if shuffle != "batch":
            raise ValueError(f'`shuffle` must be a boolean or "batch", got {shuffle!r}')
        return shuffle
    return bool(shuffle)


class ArrayDataAdapter(DataAdapter):
    """Batches of in-memory arrays (see the module docstring)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                 class_weight=None):
        x, y, sample_weight = (map_structure(to_array, part) for part in (x, y, sample_weight))
        if sample_weight is not None and is_nested(y):
            if is_nested(sample_weight):
                if not same_structure(y, sample_weight):
                    raise ValueError("You should provide one `sample_weight` array per output in `y`. The two "
                                     f"structures did not match:\n- y: {describe(y)}\n"
                                     f"- sample_weight: {describe(sample_weight)}\n")
            else:
                if not (sample_weight.ndim == 1 or (sample_weight.ndim == 2 and sample_weight.shape[1] == 1)):
                    raise ValueError("For a model with multiple outputs, when providing a single `sample_weight` "
                                     "array, it should only have one scalar score per sample (i.e. shape "
                                     f"`(num_samples,)`), got shape {sample_weight.shape}. If you want to use "
                                     "non-scalar sample weights, pass a `sample_weight` argument with one array "
                                     "per model output.")
                sample_weight = map_structure(lambda _: sample_weight, y)
        sample_weight = _check_class_weight(y, sample_weight, class_weight)
        self._inputs = (x, y, sample_weight)
        self._num_samples = num_samples(self._inputs)
        if self._num_samples == 0:
            raise ValueError(f"The input arrays have 0 samples ({describe(x)}): an epoch would run no step.")
        if batch_size is None:
            batch_size = math.ceil(self._num_samples / steps) if steps else 32
        if not isinstance(batch_size, (numbers.Integral,)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
        self._batch_size = int(batch_size)
        self._shuffle = _check_shuffle(shuffle)

    @property
    def num_samples(self) -> int:
        return self._num_samples

    @property
    def num_batches(self) -> int:
        return math.ceil(self._num_samples / self._batch_size)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def get_iterator(self):
        n, bs = self._num_samples, self._batch_size
        perm = backend.rng().permutation(n) if self._shuffle is True else None
        for start in range(0, n, bs):
            stop = min(start + bs, n)
            if self._shuffle == "batch":
                idx = backend.rng().permutation(stop - start) + start
            elif perm is not None:
                idx = perm[start:stop]
            else:
                idx = slice(start, stop)  # zero-copy views
            yield tuple(map_structure(lambda a: a[idx], part) for part in self._inputs)


def _shuffles_itself(x) -> bool:
    """rconv's image iterators shuffle their samples every epoch (and prefetch in order)."""
    try:
        from ..preprocessing.iterators import Iterator
    except ImportError:  # pragma: no cover - optional dependency (Pillow) missing
        return False
    return isinstance(x, Iterator)


class PyDatasetAdapter(DataAdapter):
    """`Sequence` / `PyDataset` and duck-typed `__len__` + `__getitem__` objects."""

    def __init__(self, x, shuffle=False, class_weight=None):
        self.py_dataset = x
        self.class_weight = class_weight
        n = self.num_batches
        if n == 0:
            raise ValueError(f"The PyDataset has length 0 ({type(x).__name__}): an epoch would run no step.")
        if shuffle and n is None:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was provided as an "
                          "infinite PyDataset. The PyDataset is expected to already be shuffled.", stacklevel=3)
        self.shuffle = bool(shuffle) and n is not None and not _shuffles_itself(x)

    @property
    def num_batches(self):
        try:
            n = self.py_dataset.num_batches
        except AttributeError:
            n = len(self.py_dataset)
        return None if n is None else int(n)

    def get_iterator(self):
        n = self.num_batches
        if n is None:
            order = itertools.count()
        else:
            order = backend.rng().permutation(n) if self.shuffle else range(n)
        get = self.py_dataset.__getitem__
        if self.shard is not None and _shuffles_itself(self.py_dataset):
            shard, get_shard = self.shard, self.py_dataset._get_shard

            def get(i):
                return get_shard(i, shard)
        workers = getattr(self.py_dataset, "workers", 1)
        if isinstance(workers, numbers.Integral) and workers > 1 and not _shuffles_itself(self.py_dataset):
            yield from self._prefetched(get, order, int(workers))
            return
        for i in order:
            yield standardize_batch(get(int(i)), self.class_weight)

    def _prefetched(self, get, order, workers):
        """Batches `get(i)` for `i` in `order`, loaded by `workers` threads up to `max_queue_size` ahead, in order."""
        ahead = getattr(self.py_dataset, "max_queue_size", 10)
        ahead = max(workers, int(ahead) if isinstance(ahead, numbers.Integral) and ahead > 0 else 10)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rconv-pydataset")
        pending: collections.deque = collections.deque()
        order = iter(order)
        try:
            for i in itertools.islice(order, ahead):
                pending.append(pool.submit(get, int(i)))
            while pending:
                batch = pending.popleft().result()
                for i in itertools.islice(order, 1):
                    pending.append(pool.submit(get, int(i)))
                yield standardize_batch(batch, self.class_weight)
        finally:  # an abandoned or failed pass: drop the queued loads, wait for the running ones
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)

    def on_epoch_begin(self):
        hook = getattr(self.py_dataset, "on_epoch_begin", None)
        if callable(hook):
            hook()

    def on_epoch_end(self):
        hook = getattr(self.py_dataset, "on_epoch_end", None)
        if callable(hook):
            hook()


class IterableDataAdapter(DataAdapter):
    """A re-iterable dataset (`__iter__`, optional `__len__`): one `iter()` per pass."""

    def __init__(self, x, class_weight=None):
        self.dataset = x
        self.class_weight = class_weight
        if self.num_batches == 0:
            raise ValueError(f"The dataset is empty (len()=0, {type(x).__name__}): an epoch would run no step.")

    @property
    def num_batches(self):
        try:
            return int(len(self.dataset))
        except TypeError:  # no __len__, or an endless dataset (tf.data raises TypeError too)
            return None

    def get_iterator(self):
        iter_shard = getattr(self.dataset, "_iter_shard", None)
        it = iter(self.dataset) if self.shard is None or iter_shard is None else iter_shard(self.shard)
        try:
            for batch in it:
                yield standardize_batch(batch, self.class_weight)
        finally:  # a pass abandoned early stops the dataset's background work (e.g. prefetch threads)
            close = getattr(it, "close", None)
            if callable(close):
                close()


class GeneratorDataAdapter(DataAdapter):
    """A one-shot iterator: every pass continues it; once it stops it stays exhausted."""

    reiterable = False

    def __init__(self, x, class_weight=None):
        self.class_weight = class_weight
        self._iterator = iter(x)
        self._batches = self._standardized()

    def _standardized(self):
        for batch in self._iterator:
            yield standardize_batch(batch, self.class_weight)

    def get_iterator(self):
        return self._batches


# --- choosing an adapter -------------------------------------------------------------------------------------

def stream_kind(x):
    """"sequence", "iterator", "iterable" or None (arrays, structures and anything else)."""
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(x, "__array__"):
        return None
    if hasattr(x, "__getitem__") and (hasattr(x, "__len__") or hasattr(x, "num_batches")):
        return "sequence"
    if hasattr(x, "__next__"):
        return "iterator"
    if hasattr(x, "__iter__"):
        return "iterable"
    return None


def is_stream(x) -> bool:
    """True for inputs that produce their own batches (PyDatasets, datasets, generators)."""
    return stream_kind(x) is not None


_KIND_NAMES = {"sequence": "PyDataset", "iterator": "Python generator", "iterable": "dataset"}


def _reject(arg, what, kind):
    name = _KIND_NAMES[kind]
    raise ValueError(f"`{arg}` argument is not supported when using a {name} as input. When providing `x` as a "
                     f"{name}, `{arg}` should not be passed. Instead, {what} should be included as part of the "
                     f"{name}.")


def get_data_adapter(x, y=None, sample_weight=None, batch_size=None, steps_per_epoch=None, shuffle=False,
                     class_weight=None) -> DataAdapter:
    """The adapter for `x` (Keras 3's `get_data_adapter`); an adapter passes through unchanged."""
    if isinstance(x, DataAdapter):
        return x
    if x is None:
        raise ValueError("Unrecognized data type: x=None. Pass arrays, a PyDataset, a dataset or a generator.")
    parts = (x, y, sample_weight)
    if all(is_array_like(leaf) for leaf in flatten(parts)):
        return ArrayDataAdapter(x, y, sample_weight, batch_size=batch_size, steps=steps_per_epoch,
                                shuffle=shuffle, class_weight=class_weight)
    kind = stream_kind(x)
    if kind is None:
        bad = [(name + path, leaf) for name, part in zip(("x", "y", "sample_weight"), parts)
               for path, leaf in flatten_with_paths(part) if not is_array_like(leaf)]
        where = ", ".join(f"{p} is a {type(leaf).__name__}" for p, leaf in bad[:4])
        raise ValueError(f"Unrecognized data type: x={describe(x)} (of type {type(x).__name__}). Expected NumPy "
                         f"arrays (or lists / tuples / dicts of them), a PyDataset, a dataset or a generator; "
                         f"{where}.")
    if y is not None:
        _reject("y", "the targets", kind)
    if sample_weight is not None:
        _reject("sample_weight", "the sample weights", kind)
    if kind == "sequence":
        return PyDatasetAdapter(x, shuffle=shuffle, class_weight=class_weight)
    if kind == "iterable":
        return IterableDataAdapter(x, class_weight=class_weight)
    return GeneratorDataAdapter(x, class_weight=class_weight)


# --- validation_split ----------------------------------------------------------------------------------------

def train_validation_split(arrays, validation_split):
    """Split a structure of arrays (e.g. `(x, y, sample_weight)`) into `(train, validation)`: the LAST
    `validation_split` fraction of the samples validates, taken before any shuffling (Keras)."""
    if not isinstance(validation_split, numbers.Real) or not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be a float between 0 and 1 (exclusive), got {validation_split!r}")
    unsplitable = [type(t) for t in flatten(arrays) if not is_array_like(t)]
    if unsplitable:
        raise ValueError("Argument `validation_split` is only supported for tensors or NumPy arrays. Found "
                         f"incompatible type in the input: {unsplitable}")
    arrays = map_structure(to_array, arrays)
    if all(t is None for t in flatten(arrays)):
        return arrays, arrays
    if isinstance(arrays, tuple) and len(arrays) <= 3:
        n = num_samples(arrays)
    else:
        n = num_samples((arrays,), names=("data",))
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(f"Training data contains {n} samples, which is not sufficient to split it into a "
                         f"validation and training set as specified by `validation_split={validation_split}`. "
                         "Either provide more data, or a different value for the `validation_split` argument.")
    return (map_structure(lambda a: a[:split_at], arrays), map_structure(lambda a: a[split_at:], arrays))

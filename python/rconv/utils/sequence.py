"""`rconv.utils.Sequence` / `PyDataset`: Keras's base class for batch-indexed datasets."""
from __future__ import annotations


class PyDataset:
    """Subclass and implement `__len__` (batches per epoch) and `__getitem__(index)` returning a batch
    `x`, `(x, y)` or `(x, y, sample_weight)`; `on_epoch_end` runs after every training epoch (e.g. to
    reshuffle). `fit(dataset)` then uses `len(dataset)` steps per epoch. With
    `workers > 1`, that many threads load the next batches (at most `max_queue_size` ahead, used in order)
    while the current one trains, so `__getitem__` must be thread-safe, as in Keras; `use_multiprocessing` is
    accepted for Keras compatibility (threads are used). With `workers=1` batches are loaded in the training
    thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


Sequence = PyDataset  # Keras 2's name, still exported by Keras 3

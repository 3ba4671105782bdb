"""`EpochIterator`: the one data path behind fit / evaluate / predict / validation (Keras 3's
`keras/src/trainers/epoch_iterator.py`).

    it = EpochIterator(x, y, sample_weight, batch_size=32, steps_per_epoch=None, shuffle=True)
    for epoch in it.epochs(initial_epoch, epochs):      # stops early once a generator has run out
        for step, (x_b, y_b, sw_b) in it.enumerate_epoch():
            ...

Step semantics (Keras 3):

* `steps_per_epoch=None`: an epoch is one full pass (arrays: `ceil(n / batch_size)` batches, a PyDataset:
  `len()`, a dataset: `len()` or until it stops); each epoch starts a new pass.
* explicit `steps_per_epoch` (training): epochs continue where the previous one stopped; a new pass starts
  once the current one is used up. An epoch that reaches the end of a pass before `steps_per_epoch` ends
  short with Keras's "Your input ran out of data" warning; the next epoch starts a new pass.
* one-shot generators / iterators: when one runs out, `exhausted` becomes True (with the warning when
  training with an explicit `steps_per_epoch`, or when a further epoch is asked for) and `epochs()` stops.
* `training=False` (evaluate / predict / validation): every `enumerate_epoch()` is one fresh pass without
  shuffling, capped at `steps_per_epoch` (evaluate's `steps`); running out is not warned about.
* an epoch that would run no step is a ValueError: empty arrays / datasets, `steps_per_epoch < 1`, a generator
  that yields nothing, an evaluation pass over a generator that has run out.

Epoch hooks (`on_epoch_begin` / `on_epoch_end` of a PyDataset) run around every epoch, in every mode (Keras 3).

`shard=(rank, size)` (data-parallel fit / evaluate): inputs that can (rconv's image iterators and datasets)
compute only this rank's rows of each global batch; see `adapters`.
"""
from __future__ import annotations

import numbers
import warnings
import weakref

import numpy as np

from .adapters import get_data_adapter
from .structure import flatten

_END = object()


def _interrupted_warning(stacklevel=4):
    # stacklevel: this function, the EpochIterator frame(s), fit, then the user's call to fit.
    warnings.warn("Your input ran out of data; interrupting training. Make sure that your dataset or generator "
                  "can generate at least `steps_per_epoch * epochs` batches. You may need to use the "
                  "`.repeat()` function when building your dataset.", UserWarning, stacklevel=stacklevel)


def _no_samples(batch) -> bool:
    """Whether a batch's inputs all have 0 rows (a step on it would have nothing to compute a loss over)."""
    leaves = [a for a in flatten(batch[0] if isinstance(batch, tuple) else batch) if a is not None]
    return bool(leaves) and all(np.shape(a)[:1] == (0,) for a in leaves)


class EpochIterator:
    """Batches `(step, (x, y, sample_weight))` epoch by epoch from any supported input (see module doc)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=None, steps_per_epoch=None, shuffle=False,
                 class_weight=None, training=True, shard=None):
        name = "steps_per_epoch" if training else "steps"
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or
                                            not isinstance(steps_per_epoch, numbers.Integral) or
                                            steps_per_epoch < 1):
            raise ValueError(f"`{name}` must be a positive integer or None, got {steps_per_epoch!r}: an epoch "
                             "would run no step.")
        self.training = bool(training)
        self.steps_per_epoch = None if steps_per_epoch is None else int(steps_per_epoch)
        self.data_adapter = get_data_adapter(x, y, sample_weight, batch_size=batch_size,
                                             steps_per_epoch=self.steps_per_epoch,
                                             shuffle=shuffle if self.training else False,
                                             class_weight=class_weight)
        if shard is not None:
            rank, size = (int(v) for v in shard)
            if not 0 <= rank < size:
                raise ValueError(f"shard must be (rank, size) with 0 <= rank < size, got {shard!r}")
            self.data_adapter.shard = (rank, size)
        #: True once a one-shot generator / iterator has run out: no further epoch can run.
        self.exhausted = False
        self._warned = False
        self._iterator = None      # the current pass
        self._seen = 0             # batches taken from the current pass
        self._learned = None       # batches in a pass of unknown length, once one pass has ended
        self._any_batch = False    # has the input ever produced a batch
        self._open = False         # between the adapter's on_epoch_begin and on_epoch_end
        self._pending = None       # the epoch's first batch, fetched when the epoch began
        self._running = None       # weakref to the generator of the open epoch

    # --- public -----------------------------------------------------------------------------------------------

    @property
    def num_batches(self):
        """Steps in one epoch: `steps_per_epoch` if given (capped at the pass length when not training), the
        pass length otherwise; None while unknown (generators, datasets without `len`)."""
        n = self.data_adapter.num_batches
        if n is None:
            n = self._learned
        if self.steps_per_epoch is not None:
            if not self.training and n is not None:
                return min(self.steps_per_epoch, n)
            return self.steps_per_epoch
        return n

    @property
    def one_shot(self) -> bool:
        """True for generators / iterators: they cannot restart, so only one pass (or `steps` batches per
        pass) can be read from them in all."""
        return not self.data_adapter.reiterable

    def epochs(self, initial_epoch=0, epochs=1):
        """Epoch numbers `initial_epoch .. epochs-1`; stops before an epoch for which a one-shot input has no
        batch left (Keras's "ran out of data" warning is given). Each epoch's first batch is fetched before
        its number is yielded, so the next `enumerate_epoch()` cannot come up empty."""
        for epoch in range(initial_epoch, epochs):
            self._close_running()
            if self.exhausted or not self._begin_epoch():
                self._warn_ran_out()
                return
            yield epoch

    def enumerate_epoch(self):
        """`(step, (x, y, sample_weight))` for one epoch. An epoch still open from an earlier, abandoned
        `enumerate_epoch()` is ended first (its `on_epoch_end` runs)."""
        self._close_running()
        gen = self._run_epoch()
        self._running = weakref.ref(gen)
        return gen

    def reset(self):
        """End any open epoch and drop the current pass: the next epoch starts a new pass (an exhausted
        generator stays exhausted)."""
        self._close_running()
        self._end_epoch()
        self._drop_pass()
        self._pending = None

    close = reset

    # --- epochs -----------------------------------------------------------------------------------------------

    def _close_running(self):
        gen = self._running() if self._running is not None else None
        self._running = None
        if gen is not None:
            gen.close()  # runs its `finally`: the epoch's on_epoch_end

    def _drop_pass(self):
        it, self._iterator = self._iterator, None
        if it is not None and self.data_adapter.reiterable:
            close = getattr(it, "close", None)
            if callable(close):
                close()
        self._seen = 0

    def _new_pass(self):
        self._drop_pass()
        self._iterator = iter(self.data_adapter.get_iterator())

    def _next(self):
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self._learned is None and self.data_adapter.num_batches is None and self._seen:
                self._learned = self._seen
            if self.data_adapter.reiterable:
                self._drop_pass()
            else:
                self.exhausted = True
            return _END
        self._seen += 1
        self._any_batch = True
        if _no_samples(batch):
            what = type(self.data_adapter).__name__.replace("DataAdapter", "").replace("Adapter", "")
            raise ValueError(f"The input ({what}) produced a batch with 0 samples (batch {self._seen - 1} of the "
                             "pass): every batch needs at least one sample.")
        return batch

    def _warn_ran_out(self):
        if self.training and not self._warned:
            self._warned = True
            _interrupted_warning(stacklevel=5)

    def _begin_epoch(self) -> bool:
        """Open an epoch and fetch its first batch; False when a one-shot input ran out at this boundary."""
        if self._open:
            return True  # opened by epochs(); its first batch is pending
        self.data_adapter.on_epoch_begin()
        self._open = True
        fresh = self._iterator is None or not (self.training and self.steps_per_epoch)
        if fresh:
            self._new_pass()
        batch = self._next()
        if batch is _END and not fresh and self.data_adapter.reiterable:
            self._new_pass()  # the continued pass ended exactly at the epoch boundary
            fresh = True
            batch = self._next()
        if batch is not _END:
            self._pending = batch
            return True
        self._end_epoch()
        what = type(self.data_adapter).__name__.replace("DataAdapter", "").replace("Adapter", "")
        if not self._any_batch:
            raise ValueError(f"The input ({what}) produced no batch: an epoch would run no step. A generator must "
                             "yield at least one batch; a dataset must not be empty.")
        if self.data_adapter.reiterable:
            raise ValueError(f"A new pass over the input ({what}) produced no batch: an epoch would run no step.")
        if not self.training:
            raise ValueError("The input generator has run out of data: this evaluation pass would run no step. "
                             "Use a generator that can produce every pass (e.g. an endless one with `steps`), "
                             "or a PyDataset / dataset, which restarts every pass.")
        return False

    def _end_epoch(self):
        if not self._open:
            return
        self._open = False
        n = self.data_adapter.num_batches
        if n is not None and self._seen >= n:
            self._drop_pass()  # used up: the next epoch starts a new pass
        self.data_adapter.on_epoch_end()

    def _run_epoch(self):
        try:
            if not self._begin_epoch():
                self._warn_ran_out()
                return
            limit = self.steps_per_epoch if self.steps_per_epoch is not None else self.data_adapter.num_batches
            batch, self._pending = self._pending, None
            step = 0
            while True:
                yield step, batch
                step += 1
                if limit is not None and step >= limit:
                    return
                n = self.data_adapter.num_batches
                if n is not None and self._seen >= n:  # the pass is used up before `steps_per_epoch`
                    if self.training and self.steps_per_epoch is not None:
                        _interrupted_warning()
                    return
                batch = self._next()
                if batch is _END:
                    if self.training and self.steps_per_epoch is not None:
                        self._warned = True
                        _interrupted_warning()
                    return
        finally:
            self._end_epoch()

"""`Sync`: what `Trainer.fit` does on each rank when a `DataParallel` distribution spans several MPI ranks.

* `begin_fit`: rank 0's global random state is broadcast, so every rank shuffles (and draws) alike and walks
  the same global batches.
* `shard`: a global batch -> this rank's contiguous rows `[n*r//R, n*(r+1)//R)` and its share of the batch;
  `sharded()` around the forward makes random layers draw for the global batch and take these rows
  (`graph.context.draw`), so the ranks compute one process's batch and their generators stay in step.
* `first_step` (once, before the first forward, when the model is built): a fingerprint check (parameter count,
  samples, batch size, epochs, steps) raising the same clear ValueError on every rank instead of a hang, then
  rank 0's weights, optimizer slots and iteration count broadcast.
* `snapshot` / `reduce`: the step's weight gradients (each rank's slice gradient already scaled by its share,
  so their sum is the global-batch gradient) and the changes of the metric states (loss tracker, compiled
  metrics) packed in one persistent float32 buffer, summed by one in-place Allreduce.
* `any`: a flag reduced with MAX (`stop_training`).
* `together`: an epoch's batches (or fit's epochs) checked to come on every rank or on none: an input running
  out on one rank only raises the same clear error on every rank instead of a hang.
"""
from __future__ import annotations

import contextlib
import numbers

import numpy as np

from .. import backend
from ..data.structure import flatten, map_structure
from ..graph import context
from . import abort

_END = object()


def _state_items(metric):
    """(attribute name, value) of a metric's numeric state (floats, ints, numeric arrays); constants among them
    (thresholds, class counts) have a zero change and are left as they are."""
    for name, value in vars(metric).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, np.ndarray):
            if value.dtype.kind in "fiu":
                yield name, value
        elif isinstance(value, (numbers.Real, np.generic)):
            yield name, value


class Sync:
    def __init__(self, comm):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._buffer = np.zeros(0, np.float32)
        self._flag = np.zeros(1, np.int32)
        self._fit_fingerprint = None
        self._started = False
        self._layout = None  # the gradients' shapes (None: no gradient) of the last training step
        self._rows = (0, 0, 0)  # (global batch, first row, end row) of the batch being run
        self._model = None
        self._pair = np.zeros(2, np.int32)

    # --- fit start --------------------------------------------------------------------------------------------
    def begin_fit(self, iterator, val_iterator, batch_size, epochs, initial_epoch) -> None:
        state = self.comm.bcast(backend.rng().bit_generator.state if self.rank == 0 else None, root=0)
        backend.rng().bit_generator.state = state
        for it in (iterator, val_iterator):
            if it is not None:
                self._share_dataset_seeds(it.data_adapter)
        adapter = iterator.data_adapter
        samples = getattr(adapter, "num_samples", None)
        self._fit_fingerprint = {"samples": samples() if callable(samples) else samples, "batch_size": batch_size,
                                 "epochs": epochs, "initial_epoch": initial_epoch,
                                 "steps_per_epoch": iterator.num_batches}
        self._started = False

    def _share_dataset_seeds(self, adapter) -> None:
        """Inputs that shuffle and augment themselves from their own seed (rconv's image iterators,
        `image_dataset_from_directory`'s dataset, whose file order also comes from it) take rank 0's, so every
        rank reads the same global batches, augmented with the same draws (which are a function of the seed,
        the epoch and the batch): a rank's rows are the rows one process would compute."""
        source = getattr(adapter, "py_dataset", None) or getattr(adapter, "dataset", None)
        names = [n for n in ("_base_seed", "_seed", "file_paths", "_labels") if hasattr(source, n)]
        if not names:
            return
        values = self.comm.bcast([getattr(source, n) for n in names] if self.rank == 0 else None, root=0)
        for name, value in zip(names, values):
            setattr(source, name, value)
        if isinstance(getattr(source, "_perms", None), dict):
            source._perms.clear()  # epoch orders drawn from the previous seed

    def first_step(self, model) -> None:
        """Once per fit, before the first forward (the model is built by then)."""
        if self._started:
            return
        self._started = True
        self._model = model
        fingerprint = dict(self._fit_fingerprint, parameters=int(sum(np.size(w.value) for w in model.weights)))
        every = self.comm.allgather(fingerprint)
        if any(f != every[0] for f in every):
            rows = "\n".join(f"  rank {r}: {f}" for r, f in enumerate(every))
            raise ValueError("rconv.distribution: the ranks are not running the same training (model parameter "
                             "count, samples, batch size, epochs or steps differ); every rank must run the same "
                             f"script on the same data:\n{rows}")
        for loss in model._compile_loss.losses:
            reduction = getattr(loss, "reduction", "sum_over_batch_size")
            if loss is not None and reduction not in ("sum_over_batch_size", "mean", None, "none"):
                raise ValueError(f"rconv.distribution: loss '{loss.name}' has reduction={reduction!r}; data-parallel "
                                 "training sums each rank's mean weighted by its share of the global batch, which is "
                                 "exact for reduction='sum_over_batch_size' (the default) only")
        variables, _ = model._trainable_variables()
        model.optimizer.build(variables)
        for array in [w.value for w in model.weights] + list(model.optimizer.variables):
            self._bcast_array(array)
        model.optimizer.iterations = self.comm.bcast(model.optimizer.iterations, root=0)

    def _bcast_array(self, array) -> None:
        if isinstance(array, np.ndarray) and array.flags.c_contiguous and array.dtype.kind in "fiu":
            self.comm.Bcast(array, root=0)
        else:
            array[...] = self.comm.bcast(np.asarray(array) if self.rank == 0 else None, root=0)

    # --- batches ----------------------------------------------------------------------------------------------
    def shard(self, batch):
        """(x, y, sample_weight, share) of this rank's contiguous slice of a global batch."""
        n = len(next(a for a in flatten(batch[0]) if a is not None))
        lo, hi = n * self.rank // self.size, n * (self.rank + 1) // self.size
        self._rows = (n, lo, hi)

        def part(a):
            return None if a is None else a[lo:hi]
        return tuple(map_structure(part, t) for t in batch) + ((hi - lo) / n,)

    def sharded(self):
        """Around the forward of this rank's slice: random layers draw for the global batch, take its rows."""
        return context.global_batch(*self._rows)

    def idle_step(self, model, training: bool, state) -> dict | None:
        """This rank's part of a step over a global batch too small to give it rows (the last batch of an
        epoch or of a validation pass): no forward, zero gradients and no metric change into the reduction.
        Returns the summed gradients `{id(variable): gradient}` (None when not training)."""
        loss_tracker, compile_metrics = state
        snapshot = self.snapshot([loss_tracker, *(compile_metrics.loss_trackers or ()), *compile_metrics.all()])
        if not training:
            self.reduce([], snapshot)
            return None
        if self._layout is None:
            raise ValueError(f"rconv.distribution: the first global batch of this fit has fewer samples than the "
                             f"{self.size} ranks (each needs at least one): use a larger batch size")
        variables, _ = model._trainable_variables()
        grads = [None if shape is None else np.zeros(shape, np.float32) for shape in self._layout]
        return dict(zip(map(id, variables), self.reduce(grads, snapshot)))

    # --- one step ---------------------------------------------------------------------------------------------
    def snapshot(self, metrics) -> list:
        """Before a step: the metric states."""
        return [(m, [(name, np.array(value, copy=True)) for name, value in _state_items(m)]) for m in metrics]

    def reduce(self, grads: list, snapshot: list) -> list:
        """Sum the gradients (None entries stay None: every rank has the same pattern) and the metric state
        changes over all ranks with one Allreduce; the metrics get the summed changes. Returns the summed
        gradients (views of the persistent buffer, valid until the next step)."""
        sizes = [0 if g is None else g.size for g in grads]
        if grads:
            self._layout = [None if g is None else g.shape for g in grads]
        deltas = []
        for metric, items in snapshot:
            for name, old in items:
                deltas.append(np.asarray(getattr(metric, name), np.float64) - old)
        total = sum(sizes) + sum(d.size for d in deltas)
        if self._buffer.size != total:
            self._buffer = np.empty(total, np.float32)
        buf, offset = self._buffer, 0
        for g, size in zip(grads, sizes):
            if size:
                buf[offset:offset + size] = g.reshape(-1)
                offset += size
        for d in deltas:
            buf[offset:offset + d.size] = d.reshape(-1)
            offset += d.size
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        out, offset = [], 0
        for g, size in zip(grads, sizes):
            out.append(None if g is None else buf[offset:offset + size].reshape(g.shape))
            offset += size
        for metric, items in snapshot:
            for name, old in items:
                summed = old + buf[offset:offset + old.size].reshape(old.shape)
                offset += old.size
                current = getattr(metric, name)
                if isinstance(current, np.ndarray):
                    setattr(metric, name, summed.astype(current.dtype))
                elif isinstance(current, numbers.Integral):
                    setattr(metric, name, type(current)(round(float(summed))))
                else:
                    setattr(metric, name, float(summed))
        if self._rows[0] < self.size:
            self._share_generators()
        return out

    def _share_generators(self) -> None:
        """After a global batch too small for every rank to get rows: the idle ranks drew nothing, so they take
        the random generators' states (global, and seeded layers' own) from the last rank, which had rows."""
        generators = [backend.rng()]
        stack = list(getattr(self._model, "layers", ()))
        while stack:
            layer = stack.pop()
            stack.extend(getattr(layer, "layers", ()) or ())
            if isinstance(getattr(layer, "_rng", None), np.random.Generator):
                generators.append(layer._rng)
        root = self.size - 1
        states = self.comm.bcast([g.bit_generator.state for g in generators] if self.rank == root else None, root)
        for generator, state in zip(generators, states):
            generator.bit_generator.state = state

    def any(self, flag) -> bool:
        """`flag` reduced with MAX over the ranks (a buffer Allreduce: no pickling, as cheap as MPI gets)."""
        self._flag[0] = bool(flag)
        self.comm.Allreduce(self._mpi.IN_PLACE, self._flag, op=self._mpi.MAX)
        return bool(self._flag[0])

    def checked(self, items, iterator, what: str):
        """`items` of `iterator` (an `EpochIterator`) as they are when every rank is sure to get as many (arrays,
        a PyDataset: their length is in the fingerprint), else through `together`."""
        if iterator.one_shot or iterator.data_adapter.num_batches is None:
            return self.together(items, what)
        return items

    def together(self, items, what: str):
        """`items` (an epoch's `(step, batch)`s, or fit's epochs), each checked to be there on every rank: the
        ranks reduce a (have one, have none) pair with MAX before going on, so an input running out on some
        ranks only (a generator or dataset yielding fewer batches on one rank) raises the same ValueError on
        every rank instead of leaving the others waiting in the step's Allreduce."""
        iterator = iter(items)
        count = 0
        while True:
            item = next(iterator, _END)
            have = item is not _END
            self._pair[0], self._pair[1] = have, not have
            self.comm.Allreduce(self._mpi.IN_PLACE, self._pair, op=self._mpi.MAX)
            if self._pair[0] and self._pair[1]:
                every = self.comm.allgather(have)
                ran_out = [r for r, h in enumerate(every) if not h]
                raise ValueError(f"rconv.distribution: the input ran out of data on rank(s) {ran_out} after {count} "
                                 f"{what}, while rank(s) {[r for r, h in enumerate(every) if h]} still had more: "
                                 "every rank must get the same number of batches (the same generator or dataset, "
                                 "unsharded: fit takes each rank's rows of every global batch itself)")
            if not have:
                return
            yield item
            count += 1

    @contextlib.contextmanager
    def guard(self):
        """An exception on this rank aborts every rank (with its traceback printed) instead of leaving the
        others waiting in a collective."""
        try:
            yield self
        except BaseException:
            abort()

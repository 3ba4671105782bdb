"""The one call context of the layer protocol (see `layers/layer.py`).

The executor opens a `CallContext` around every forward and backward walk. It carries:

* ``training``: whether layers run in training mode (dropout, augmentation, moving statistics);
* ``trainable_ids``: ids of the variables the running update will change; a backward walk computes
  gradients only where one of these lies upstream (nested models read it too);
* ``updates``: non-trainable state a training forward wants to change (`Layer.add_update`, e.g. the
  moving mean of a normalization layer). They are collected, not applied in the middle of the walk, and
  the executor assigns them once the forward has finished (Keras's `StatelessScope` does the same).
* ``penalty``: the activity-regularization losses of the walk (a float); a nested model's walk adds its
  own to the enclosing one's, like its updates.

Outside any walk (a direct eager ``layer(x)``), `add_update` assigns at once.

Random layers draw through `draw`. In a data-parallel training step (`rconv.distribution`) the trainer opens
`global_batch(total, lo, hi)` around the forward over this rank's rows ``[lo, hi)`` of a global batch of
`total`: a draw whose leading axis is this rank's rows is then made for the whole global batch and this
rank's rows taken, so every rank draws exactly what one process would (same masks, flips, offsets, same
generator state after the step). Outside it (the single-process path) `draw` is the plain draw.
"""
from __future__ import annotations

import contextlib
import numbers
import threading

_local = threading.local()


class CallContext:
    __slots__ = ("training", "trainable_ids", "updates", "penalty")

    def __init__(self, training: bool = False, trainable_ids=None):
        self.training = bool(training)
        self.trainable_ids = trainable_ids
        self.updates: list = []
        self.penalty = 0.0


def current() -> CallContext | None:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def scope(training: bool = False, trainable_ids=None):
    """Open a context; on a normal exit of the outermost one the collected updates are applied in order."""
    ctx = CallContext(training, trainable_ids)
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(ctx)
    try:
        yield ctx
    finally:
        stack.pop()
    if stack:  # a nested model's walk: its updates and penalties belong to the enclosing walk
        stack[-1].updates.extend(ctx.updates)
        stack[-1].penalty += ctx.penalty
        return
    for variable, value in ctx.updates:
        variable.assign(value)


@contextlib.contextmanager
def global_batch(total: int, lo: int, hi: int):
    """Within: the batch being run is rows ``[lo, hi)`` of a global batch of `total` rows (see `draw`)."""
    previous = getattr(_local, "rows", None)
    _local.rows = (total, lo, hi)
    try:
        yield
    finally:
        _local.rows = previous


def draw(sample, size, *args, per_sample: bool = True, **kwargs):
    """`sample(*args, size=size, **kwargs)` (a `numpy.random.Generator` method) for a batch whose leading axis
    is `size[0]` (an integer `size`: one draw per sample). Inside `global_batch`, when `per_sample` and
    `size[0]` is this rank's row count, the draw is made for the global batch and this rank's rows returned.
    `per_sample=False`: the leading axis is not the batch (a mask shared by every sample)."""
    rows = getattr(_local, "rows", None)
    if rows is not None and per_sample:
        total, lo, hi = rows
        shape = (size,) if isinstance(size, numbers.Integral) else tuple(size)
        if shape and shape[0] == hi - lo:
            return sample(*args, size=(total,) + shape[1:], **kwargs)[lo:hi]
    return sample(*args, size=size, **kwargs)


def record_update(variable, value) -> None:
    ctx = current()
    if ctx is None:
        variable.assign(value)
    else:
        ctx.updates.append((variable, value))

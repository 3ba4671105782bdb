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
"""
from __future__ import annotations

import contextlib
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


def record_update(variable, value) -> None:
    ctx = current()
    if ctx is None:
        variable.assign(value)
    else:
        ctx.updates.append((variable, value))

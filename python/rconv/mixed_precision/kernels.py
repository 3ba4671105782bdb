"""The kernels' compute precision while layers run: the GEMM-based kernels (dense, convolutions) read one
process-wide setting (`_rconv.set_compute_precision`); the executor sets it from each layer's
`compute_dtype` before the layer's forward and backward, switching only when it changes, and puts the
previous setting back when the walk ends. Eager `layer(x)` calls do the same around the call.

The setting is process-wide: two threads running layers of different policies at the same time would
share it (the last one set wins).
"""
from __future__ import annotations

import contextlib

from .. import _rconv

_current = "float32"


def precision_of(layer) -> str:
    policy = getattr(layer, "_dtype_policy", None)
    return "bfloat16" if policy is not None and policy.compute_dtype == "bfloat16" else "float32"


def use(name: str) -> None:
    """The kernels compute in `name` ("float32" or "bfloat16") from now on."""
    global _current
    if name != _current:
        _rconv.set_compute_precision(name)
        _current = name


def use_layer(layer) -> None:
    use(precision_of(layer))


@contextlib.contextmanager
def walk():
    """Restores the precision in force before the block when it ends."""
    previous = _current
    try:
        yield
    finally:
        use(previous)


@contextlib.contextmanager
def layer_scope(layer):
    """The block runs `layer`'s kernels in its compute precision (eager calls)."""
    with walk():
        use_layer(layer)
        yield

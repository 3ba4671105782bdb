"""`MonitorCallback`: the one rule EarlyStopping, ModelCheckpoint and ReduceLROnPlateau use to decide
whether a monitored quantity should go down or up (Keras 3's `keras/src/callbacks/monitor_callback.py`).

`mode="auto"` resolves `monitor` (without its `val_` prefix) like Keras's `_set_monitor_op`:
1. the direction of the compiled metric of that name in `model.metrics` (its `_direction`, "up" or
   "down"; containers with a `.metrics` list, like Keras's CompileMetrics, are searched too);
2. otherwise "min" for a loss: `loss` and per-output `<name>_loss`;
3. otherwise a ValueError asking for `mode="min"` or `mode="max"`.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import metrics as metrics_module
from .callback import Callback

_MODES = ("auto", "min", "max")

def metric_direction(metric):
    """'up', 'down' or None for a metric object (Keras's `_direction`)."""
    direction = getattr(metric, "_direction", None)
    return direction if direction in ("up", "down") else None


def _flatten(metrics):
    for m in metrics:
        inner = getattr(m, "metrics", None)
        if isinstance(inner, (list, tuple)):
            yield from _flatten(inner)
        else:
            yield m


def _candidate_metrics(model, name):
    """The metric objects that may be the monitored one. With `model.metrics` (Keras's public list) its
    entries; a model without it gets the built-in metric that `name` identifies in `metrics.get`."""
    if hasattr(model, "metrics"):
        return list(_flatten(model.metrics or ()))
    if name in ("accuracy", "acc"):  # every accuracy goes up; which one needs the data's shapes
        return [metrics_module.Accuracy(name=name)]
    try:
        return [metrics_module.get(name)]
    except (ValueError, TypeError):  # not a built-in metric name
        return []


def monitor_mode(model, monitor: str):
    """'min', 'max' or None (undecidable) for `monitor` in auto mode; see the module docstring."""
    name = monitor.removeprefix("val_")
    for metric in _candidate_metrics(model, name):
        if getattr(metric, "name", None) == name:
            direction = metric_direction(metric)
            if direction is not None:
                return "max" if direction == "up" else "min"
    if name.endswith("loss"):
        return "min"
    return None


class MonitorCallback(Callback):
    """Base class of callbacks watching one logged quantity: picks the comparison from `mode` ('auto'
    asks `monitor_mode`) when the first epoch ends, and tests improvements with `min_delta`.
    `baseline` is the initial best value (None: the first value seen is an improvement)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in _MODES:
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        mode = self.mode if self.mode != "auto" else monitor_mode(self.model, self.monitor)
        if mode is None:
            raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but Keras isn't "
                             "able to automatically determine whether that metric should be maximized or "
                             "minimized. Pass `mode='max'` in order to monitor based on the highest metric "
                             "value, or pass `mode='min'` in order to use the lowest value.")
        self.monitor_op = np.less if mode == "min" else np.greater
        # Signed so that `_is_improvement` is one comparison; idempotent if called again.
        self.min_delta = -abs(self.min_delta) if mode == "min" else abs(self.min_delta)
        if self.best is None:
            self.best = np.inf if mode == "min" else -np.inf

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))

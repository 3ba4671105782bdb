"""Keras 3-style progress bar: `469/469 ━━━━━━━━━━━━━━━━━━━━ 12s 25ms/step - accuracy: 0.9812 - loss: 0.0612`.

On a terminal the bar redraws in place (`\\r`), at most every `interval` seconds so it costs nothing
per batch. Otherwise (logs, pipes, CI) only the final line is printed, with no control characters.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np


def _fmt_value(value) -> str:
    if np.size(value) != 1:  # a metric with several values
        return np.array2string(np.asarray(value), precision=4, separator=", ")
    value = float(np.asarray(value).reshape(()))
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def _fmt_step_time(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    def __init__(self, target, width: int = 20, verbose: int = 1, interval: float = 0.1,
                 unit_name: str = "step", stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stream = stream if stream is not None else sys.stdout
        self._dynamic = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.time()
        self._last_update = 0.0
        self._after_first_step = None
        self._prev_width = 0

    def _step_time(self, current: int, now: float) -> float:
        """Seconds per step, ignoring the (warm-up) first step once there are more."""
        if current <= 0:
            return 0.0
        if self._after_first_step is not None and current > 1:
            return (now - self._after_first_step) / (current - 1)
        return (now - self._start) / current

    def update(self, current: int, values=None, finalize: bool | None = None) -> None:
        """`values`: (name, value) pairs already averaged by the caller (Keras 3 logs are running means)."""
        now = time.time()
        if current == 1 and self._after_first_step is None:
            self._after_first_step = now
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if self.verbose == 0 or (not finalize and (not self._dynamic or self.verbose != 1
                                                   or now - self._last_update < self.interval)):
            return
        self._last_update = now
        metrics = "".join(f" - {k}: {_fmt_value(v)}" for k, v in (values or []))
        per_step = self._step_time(current, now)
        count = (f"{current:{int(math.log10(self.target)) + 1}d}/{self.target}" if self.target
                 else f"{current:7d}/Unknown")
        if self.verbose == 2:
            self._write(f"{count} - {now - self._start:.0f}s - {_fmt_step_time(per_step, self.unit_name)}"
                        f"{metrics}\n")
            return
        filled = int(self.width * current / self.target) if self.target else 0
        plain_bar = f"{count} {'━' * self.width}" if self.target else count
        if finalize or not self.target:
            elapsed = f"{now - self._start:.0f}s"
        else:
            eta = per_step * (self.target - current)
            elapsed = (f"{eta // 3600:.0f}:{(eta % 3600) // 60:02.0f}:{eta % 60:02.0f}" if eta > 3600
                       else f"{eta // 60:.0f}:{eta % 60:02.0f}" if eta > 60 else f"{eta:.0f}s")
        tail = f" {elapsed} {_fmt_step_time(per_step, self.unit_name)}{metrics}"
        if not self._dynamic:
            self._write(plain_bar + tail + "\n")
            return
        bar = (f"\x1b[1m{count}\x1b[0m \x1b[32m{'━' * filled}\x1b[0m\x1b[37m{'━' * (self.width - filled)}\x1b[0m"
               if self.target else count)
        visible = len(plain_bar) + len(tail)
        pad = " " * max(0, self._prev_width - visible)  # blank out the rest of a longer previous line
        self._prev_width = visible
        self._write("\r" + bar + tail + pad + ("\n" if finalize else ""))

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

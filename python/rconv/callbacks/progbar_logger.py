"""`ProgbarLogger`: the progress bar `verbose=1` prints."""
from __future__ import annotations

import sys

from ..utils.progbar import Progbar
from .callback import Callback


class ProgbarLogger(Callback):
    """Prints `Epoch i/n` and a progress bar per epoch (fit) or per run (evaluate/predict)."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream
        self._bar = None
        self._seen = 0

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _start(self):
        self._seen = 0
        self._bar = Progbar(self.params.get("steps"), verbose=self.verbose, stream=self._out())

    def _step(self, batch, logs):
        self._seen = batch + 1
        self._bar.update(self._seen, list(logs.items()) if logs else None, finalize=False)

    def _finish(self, logs):
        if self._bar.target is None:  # a generator without `steps`: the count is known now
            self._bar.target = self._seen or None
        self._bar.update(self._seen, list(logs.items()) if logs else None, finalize=True)

    def on_epoch_begin(self, epoch, logs=None):
        if self.verbose and self.params.get("epochs", 1) > 1:
            self._out().write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")
            self._out().flush()
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    # evaluate() drives the test hooks with params mode "test"; fit's validation passes must not touch the bar.
    def on_test_begin(self, logs=None):
        if self.params.get("mode") == "test":
            self._start()

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("mode") == "test":
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        if self.params.get("mode") == "test":
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._start()

    def on_predict_batch_end(self, batch, logs=None):
        self._step(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)

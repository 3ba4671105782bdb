"""`Callback`: the hooks fit/evaluate/predict call (Keras 3's `keras/src/callbacks/callback.py`).

Epochs and batches are 0-based in the hooks; messages count from 1.
"""
from __future__ import annotations

import sys


def print_msg(message: str) -> None:
    """Keras's `io_utils.print_msg`: one line on stdout (rank 0's only, in data-parallel training)."""
    from .. import distribution
    if not distribution.is_chief():
        return
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class Callback:
    """Base class of callbacks. `self.model` is set by `set_model`, `self.params` (verbose, epochs,
    steps, mode) by `set_params`; override any hook."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass  # Keras 2 names, still called by Keras 3
    def on_batch_end(self, batch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs=logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs=logs)
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

"""`TensorBoard` (Keras 3's `keras/src/callbacks/tensorboard.py`), writing event files with tensorboardX."""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings

import numpy as np

from .. import distribution, saving
from .callback import Callback


class _NullWriter:
    """What the TensorBoard callback writes to on ranks other than 0 (data-parallel training): nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("The TensorBoard callback writes event files with the `tensorboardX` package, which "
                          "is not installed. Install it with `pip install tensorboardX` (and `pip install "
                          "tensorboard` to view the logs).") from e
    return SummaryWriter


class TensorBoard(Callback):
    """Write TensorBoard event files like Keras 3: `log_dir/train` gets `epoch_<metric>` (plus
    `epoch_learning_rate`) per epoch and, with `update_freq` 'batch' or N, `batch_<metric>` per batch;
    `log_dir/validation` gets `epoch_<metric>` for the `val_` logs and `evaluation_<metric>_vs_iterations`.
    `histogram_freq` adds weight histograms (`write_images`: kernels as images); `write_graph` stores the model
    config as text ("keras") and the model as a graph for the Graphs tab (through its ONNX export).
    Needs `tensorboardX` (checked at construction)."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        if self.update_freq != "epoch" and not (isinstance(self.update_freq, int) and self.update_freq > 0):
            raise ValueError(f"Unrecognized update_freq: {update_freq!r}. Expected 'epoch', 'batch' or a "
                             "positive integer")
        if profile_batch:
            warnings.warn("TensorBoard: profiling (`profile_batch`) is not supported by rconv; ignored.",
                          stacklevel=2)
        if embeddings_freq:
            warnings.warn("TensorBoard: embeddings (`embeddings_freq`) are not supported by rconv; ignored.",
                          stacklevel=2)
        self.embeddings_freq = 0
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers = {}
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._graph_written = False
        self._epoch_start_time = 0.0
        self._previous_epoch_iterations = 0
        self._batch_start_time = 0.0
        _summary_writer_class()  # fail early, at construction, when tensorboardX is missing

    def _writer(self, key):
        if key not in self._writers:
            if not distribution.is_chief():  # data-parallel training: rank 0 writes the event files
                self._writers[key] = _NullWriter()
            else:
                self._writers[key] = _summary_writer_class()(self._train_dir if key == "train" else self._val_dir)
        return self._writers[key]

    @property
    def _train_writer(self):
        return self._writer("train")

    @property
    def _val_writer(self):
        return self._writer("val")

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _write_keras_model_summary(self):
        """The model's JSON config as the "keras" text summary, for Sequential and functional models only
        (like Keras, which skips subclassed models). A model holding a layer the saving code cannot describe
        (`ConfigError`) gets a warning and no summary, as in Keras's `keras_model_summary`."""
        if type(self.model).__name__ not in ("Functional", "Sequential"):
            return
        try:
            config = json.dumps(saving.model_to_config(self.model))
        except saving.ConfigError as exc:
            warnings.warn(f"TensorBoard: model failed to serialize as JSON; no graph written. {exc}",
                          stacklevel=2)
            return
        self._train_writer.add_text("keras", config, 0)
        self._write_graph()

    def _write_graph(self):
        """The model as a real graph for the Graphs tab: exported to ONNX (layers as nodes, connections as
        edges) and written as a GraphDef by tensorboardX's `add_onnx_graph`. Needs the `onnx` package; without
        it, or for a layer with no ONNX converter, only the text config above is written (with a warning)."""
        from ..export import onnx as onnx_export
        try:
            import onnx  # noqa: F401  (tensorboardX's converter needs it too)
        except ImportError:
            warnings.warn("TensorBoard: the Graphs tab needs the `onnx` package (pip install onnx); only the "
                          "model config was written.", stacklevel=3)
            return
        missing = onnx_export.unsupported_layers(self.model)
        if missing:
            warnings.warn(f"TensorBoard: no graph written: layers {missing} have no ONNX converter.", stacklevel=3)
            return
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "graph.onnx")
            onnx_export.export(self.model, path)
            self._train_writer.add_onnx_graph(path)

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0
        if self.write_graph and not self._graph_written:
            self._write_keras_model_summary()
            self._graph_written = True

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "iterations") and logs:
            writer = self._val_writer
            for name, value in logs.items():
                if np.size(value) == 1:  # scalars only (a multi-valued metric has no scalar plot)
                    writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), int(optimizer.iterations))
            writer.flush()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq != 0:
            return
        writer = self._train_writer
        if self.write_steps_per_second:
            elapsed = time.time() - self._batch_start_time
            if elapsed > 0:
                writer.add_scalar("batch_steps_per_second", 1.0 / elapsed, self._global_train_batch)
        if isinstance(logs, dict):
            for name, value in logs.items():
                if np.size(value) == 1:  # scalars only (a multi-valued metric has no scalar plot)
                    writer.add_scalar("batch_" + name, float(value), self._global_train_batch)

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._previous_epoch_iterations = int(getattr(self.model.optimizer, "iterations", 0))
            self._epoch_start_time = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self._log_epoch_metrics(epoch, logs)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_epoch_metrics(self, epoch, logs):
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            train_logs["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second:
            seconds = time.time() - self._epoch_start_time
            steps = int(getattr(optimizer, "iterations", 0)) - self._previous_epoch_iterations
            train_logs["steps_per_second"] = steps / seconds if seconds > 0 else 0.0
        if train_logs:
            writer = self._train_writer
            for name, value in train_logs.items():
                if np.size(value) == 1:  # scalars only (a multi-valued metric has no scalar plot)
                    writer.add_scalar("epoch_" + name, float(value), epoch)
        if val_logs:
            writer = self._val_writer
            for name, value in val_logs.items():
                if np.size(value) == 1:  # scalars only (a multi-valued metric has no scalar plot)
                    writer.add_scalar("epoch_" + name[4:], float(value), epoch)

    def _log_weights(self, epoch):
        writer = self._train_writer
        for layer in self.model.layers:
            for weight in layer.weights:
                name = str(getattr(weight, "path", None) or weight.name).replace(":", "_")
                values = np.asarray(weight.numpy(), np.float32)
                if values.size and np.all(np.isfinite(values)):
                    writer.add_histogram(f"{name}/histogram", values, epoch)
                if self.write_images:
                    self._log_weight_as_image(writer, values, f"{name}/image", epoch)

    @staticmethod
    def _log_weight_as_image(writer, w, tag, epoch):
        w = np.squeeze(w)
        if w.ndim == 1:  # bias
            img = w.reshape(1, w.shape[0], 1)
        elif w.ndim == 2:  # dense kernel
            if w.shape[0] > w.shape[1]:
                w = w.T
            img = w.reshape(1, w.shape[0], w.shape[1])
        elif w.ndim == 3:  # conv kernel (h, w, n): one image per kernel
            img = np.transpose(w, (2, 0, 1))
        else:
            return
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        writer.add_images(tag, img[:, None, :, :], epoch, dataformats="NCHW")

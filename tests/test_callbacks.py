"""Keras 3 callbacks: EarlyStopping, ModelCheckpoint, TensorBoard (event files read back with
tensorboard's reader), CSVLogger, ReduceLROnPlateau, TerminateOnNaN, LearningRateScheduler,
LambdaCallback. Monitored values are injected by a callback so the expected epochs are exact."""
import csv
import os

import numpy as np
import pytest

import rconv
from rconv import callbacks, layers
from rconv.utils import set_random_seed


def make_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5).astype(np.int64)
    return x, y


def make_model(lr=0.05, metrics=("accuracy",)):
    set_random_seed(2)
    model = rconv.Sequential([layers.Input((5,)), layers.Dense(6, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer=rconv.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                  metrics=list(metrics))
    return model


class Inject(callbacks.Callback):
    """Overwrites logs[key] at each epoch end with a scripted value (runs before later callbacks)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = float(self.values[epoch])


class RecordWeights(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def fit(model, cbs, epochs=8, validation=True, **kwargs):
    x, y = make_data()
    kwargs.setdefault("verbose", 0)
    return model.fit(x, y, batch_size=16, epochs=epochs, callbacks=cbs,
                     validation_data=(x, y) if validation else None, **kwargs)


# --- EarlyStopping -----------------------------------------------------------------------------------------

def test_early_stopping_stops_after_patience(capsys):
    model = make_model()
    es = callbacks.EarlyStopping(monitor="val_loss", patience=2, verbose=1)
    history = fit(model, [Inject("val_loss", [5, 4, 3, 3.5, 3.2, 3.1, 1, 1]), es])
    # Best at epoch 2; epochs 3 and 4 don't improve; patience 2 -> stop at the end of epoch 4.
    assert history.epoch == [0, 1, 2, 3, 4]
    assert es.stopped_epoch == 4 and es.best == 3.0 and model.stop_training
    assert "Epoch 5: early stopping" in capsys.readouterr().out


def test_early_stopping_resets_at_each_fit():
    """Keras 3: one EarlyStopping instance reused across fit() calls starts afresh each time."""
    model = make_model()
    es = callbacks.EarlyStopping(monitor="val_loss", patience=1)
    first = fit(model, [Inject("val_loss", [1, 2, 3, 4, 5, 6, 7, 8]), es])
    assert first.epoch == [0, 1] and es.best == 1
    second = fit(model, [Inject("val_loss", [9, 8, 7, 9, 9, 9, 9, 9]), es])  # 9 is no improvement over 1,
    assert second.epoch == [0, 1, 2, 3] and es.best == 7 and es.stopped_epoch == 3  # but best restarts at 9


def test_early_stopping_min_delta_mode_and_start_epoch():
    es = callbacks.EarlyStopping(monitor="score", mode="max", min_delta=0.5, patience=1)
    history = fit(make_model(), [Inject("score", [1, 1.4, 1.9, 2.0, 2.1, 5]), es])
    # 1.4 and 1.9 are not > best + 0.5 -> (epoch 1: wait 1 >= 1) stop at epoch 1.
    assert history.epoch == [0, 1]
    es = callbacks.EarlyStopping(monitor="score", mode="min", patience=1, start_from_epoch=3)
    history = fit(make_model(), [Inject("score", [1, 2, 3, 4, 5, 6, 7, 8]), es])
    assert history.epoch == [0, 1, 2, 3, 4]  # epochs 0-2 ignored, 3 is the first best, 4 stops


def test_early_stopping_auto_mode_directions():
    # 'val_accuracy' is maximized in auto mode: a falling accuracy stops training.
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    history = fit(make_model(), [Inject("val_accuracy", [0.5, 0.6, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1]), es])
    assert history.epoch == [0, 1, 2] and es.best == 0.6
    es = callbacks.EarlyStopping(monitor="val_acc", patience=1)
    history = fit(make_model(metrics=["acc"]), [Inject("val_acc", [0.5, 0.4, 0.4, 1, 1, 1, 1, 1]), es])
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="isn't able to automatically determine"):
        fit(make_model(), [Inject("weird", [1] * 8), callbacks.EarlyStopping(monitor="weird")])


def test_early_stopping_on_real_val_loss_and_missing_metric():
    history = fit(make_model(), [callbacks.EarlyStopping(min_delta=100.0)])
    assert history.epoch == [0, 1]  # nothing is an improvement of 100 after the first epoch
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` which is not"):
        history = fit(make_model(), [callbacks.EarlyStopping()], epochs=2, validation=False)
    assert history.epoch == [0, 1]


def test_early_stopping_restores_best_weights(capsys):
    model = make_model()
    rec = RecordWeights()
    es = callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True, verbose=1)
    history = fit(model, [Inject("val_loss", [5, 4, 1, 3, 3, 3, 3, 3]), es, rec])
    assert history.epoch == [0, 1, 2, 3, 4, 5]
    assert es.best_epoch == 2
    for got, best in zip(model.get_weights(), rec.weights[2]):
        np.testing.assert_array_equal(got, best)
    assert not all(np.array_equal(a, b) for a, b in zip(rec.weights[2], rec.weights[-1]))
    out = capsys.readouterr().out
    assert "Epoch 6: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 3." in out
    # Re-usable: a second fit starts from a clean state.
    history = fit(model, [Inject("val_loss", [9, 8, 7, 6, 5, 4, 3, 2]), es])
    assert len(history.epoch) == 8 and es.stopped_epoch == 0


# --- ModelCheckpoint ---------------------------------------------------------------------------------------

def _need_saving():
    if not hasattr(rconv.Model, "save"):
        pytest.skip("Model.save is not available yet (rconv.saving has not landed)")


def test_checkpoint_save_best_only_file_names(tmp_path, capsys):
    _need_saving()
    path = str(tmp_path / "model-{epoch:02d}.hdf5")
    ckpt = callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True, verbose=1)
    fit(make_model(), [Inject("val_loss", [3, 2, 2.5, 1, 1.5]), ckpt], epochs=5)
    assert sorted(os.listdir(tmp_path)) == ["model-01.hdf5", "model-02.hdf5", "model-04.hdf5"]
    out = capsys.readouterr().out
    assert f"Epoch 1: val_loss improved from inf to 3.00000, saving model to {tmp_path}/model-01.hdf5" in out
    assert "Epoch 3: val_loss did not improve from 2.00000" in out
    assert f"Epoch 4: finished saving model to {tmp_path}/model-04.hdf5" in out


def test_checkpoint_templates_and_reload(tmp_path):
    _need_saving()
    x, y = make_data()
    model = make_model()
    path = str(tmp_path / "ck-{epoch:02d}-{val_loss:.2f}-{accuracy:.3f}.keras")
    history = fit(model, [callbacks.ModelCheckpoint(path)], epochs=2)
    names = sorted(os.listdir(tmp_path))
    h = history.history
    assert names == [f"ck-{e + 1:02d}-{h['val_loss'][e]:.2f}-{h['accuracy'][e]:.3f}.keras" for e in range(2)]
    reloaded = rconv.models.load_model(str(tmp_path / names[-1]))
    np.testing.assert_allclose(reloaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_checkpoint_best_reloads_to_best_epoch(tmp_path):
    _need_saving()
    x, y = make_data()
    model = make_model()
    rec = RecordWeights()
    path = str(tmp_path / "best.weights.h5")
    fit(model, [Inject("val_loss", [3, 1, 2, 4]), callbacks.ModelCheckpoint(path, save_best_only=True,
                                                                           save_weights_only=True), rec],
        epochs=4)
    fresh = make_model()
    fresh.load_weights(path)
    for got, want in zip(fresh.get_weights(), rec.weights[1]):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_save_freq_batches_and_argument_checks(tmp_path):
    _need_saving()
    path = str(tmp_path / "b-{epoch}-{batch}.weights.h5")
    fit(make_model(), [callbacks.ModelCheckpoint(path, save_weights_only=True, save_freq=2)], epochs=2,
        validation=False)  # 3 batches per epoch: saves after batches 2, 4 (epoch 2 batch 1), 6
    assert sorted(os.listdir(tmp_path)) == ["b-1-2.weights.h5", "b-2-1.weights.h5", "b-2-3.weights.h5"]
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        callbacks.ModelCheckpoint(str(tmp_path / "w.keras"), save_weights_only=True)
    with pytest.raises(ValueError, match="must end in `.keras`"):
        callbacks.ModelCheckpoint(str(tmp_path / "w.txt"))
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint(str(tmp_path / "w.keras"), save_freq="batch")
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        fit(make_model(), [callbacks.ModelCheckpoint(str(tmp_path / "{nope}.keras"))], epochs=1)


def test_checkpoint_initial_value_threshold(tmp_path):
    _need_saving()
    path = str(tmp_path / "m-{epoch}.keras")
    ckpt = callbacks.ModelCheckpoint(path, save_best_only=True, initial_value_threshold=2.5)
    fit(make_model(), [Inject("val_loss", [3, 2, 2.2, 1]), ckpt], epochs=4)
    assert sorted(os.listdir(tmp_path)) == ["m-2.keras", "m-4.keras"]


# --- TensorBoard -------------------------------------------------------------------------------------------

def _scalars(logdir):
    ea_mod = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                 reason="the `tensorboard` package (its event-file reader) is not installed")
    acc = ea_mod.EventAccumulator(str(logdir), size_guidance={ea_mod.SCALARS: 0, ea_mod.HISTOGRAMS: 0})
    acc.Reload()
    return acc


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboardX", reason="the TensorBoard callback needs `tensorboardX`")
    logdir = tmp_path / "logs"
    history = fit(make_model(), [callbacks.TensorBoard(log_dir=str(logdir), histogram_freq=1)], epochs=3)
    assert (logdir / "train").is_dir() and (logdir / "validation").is_dir()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(logdir / "train"))
    train = _scalars(logdir / "train")
    tags = train.Tags()["scalars"]
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags)
    events = train.Scalars("epoch_loss")
    assert [e.step for e in events] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in events], history.history["loss"], rtol=1e-5)
    np.testing.assert_allclose([e.value for e in train.Scalars("epoch_learning_rate")], [0.05] * 3, rtol=1e-6)
    assert any(t.endswith("/histogram") for t in train.Tags()["histograms"])
    val = _scalars(logdir / "validation")
    assert {"epoch_loss", "epoch_accuracy"} <= set(val.Tags()["scalars"])
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")], history.history["val_loss"],
                               rtol=1e-5)
    assert "evaluation_loss_vs_iterations" in val.Tags()["scalars"]
    assert [e.step for e in val.Scalars("evaluation_loss_vs_iterations")] == [3, 6, 9]


def test_tensorboard_batch_updates(tmp_path):
    pytest.importorskip("tensorboardX", reason="the TensorBoard callback needs `tensorboardX`")
    logdir = tmp_path / "logs"
    fit(make_model(), [callbacks.TensorBoard(log_dir=str(logdir), update_freq="batch")], epochs=2,
        validation=False)
    train = _scalars(logdir / "train")
    assert [e.step for e in train.Scalars("batch_loss")] == [1, 2, 3, 4, 5, 6]
    assert not (logdir / "validation").exists()  # no validation data, no validation writer


def test_tensorboard_import_error_names_the_package(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        callbacks.TensorBoard(log_dir="unused")


# --- CSVLogger ---------------------------------------------------------------------------------------------

def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    history = fit(make_model(), [callbacks.CSVLogger(str(path))], epochs=3)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    np.testing.assert_allclose([float(r[2]) for r in rows[1:]], history.history["loss"], rtol=1e-12)
    # append=True adds rows without a second header; a custom separator.
    fit(make_model(), [callbacks.CSVLogger(str(path), append=True)], epochs=2)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 6 and rows[4][0] == "0" and rows.count(rows[0]) == 1
    path2 = tmp_path / "semi.csv"
    fit(make_model(), [callbacks.CSVLogger(str(path2), separator=";")], epochs=1, validation=False)
    assert path2.read_text().splitlines()[0] == "epoch;accuracy;loss"


# --- learning rate -----------------------------------------------------------------------------------------

def test_reduce_lr_on_plateau(capsys):
    model = make_model(lr=0.1)
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, verbose=1)
    history = fit(model, [Inject("val_loss", [1, 1, 1, 1]), cb], epochs=4)
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05." in capsys.readouterr().out
    # min_lr bounds it; cooldown skips epochs; improvements reset the wait.
    model = make_model(lr=0.1)
    fit(model, [Inject("val_loss", [1] * 6), callbacks.ReduceLROnPlateau(factor=0.1, patience=1,
                                                                          min_lr=0.005)], epochs=6)
    assert model.optimizer.learning_rate == pytest.approx(0.005)
    model = make_model(lr=0.1)
    fit(model, [Inject("val_loss", [1] * 6), callbacks.ReduceLROnPlateau(factor=0.5, patience=1,
                                                                          cooldown=2)], epochs=6)
    # Keras's counting: the cooldown epoch that reaches 0 already counts as waiting -> epochs 1, 3, 5.
    assert model.optimizer.learning_rate == pytest.approx(0.0125)
    model = make_model(lr=0.1)
    fit(model, [Inject("val_loss", [5, 4, 3, 2, 1]), callbacks.ReduceLROnPlateau(patience=1)], epochs=5)
    assert model.optimizer.learning_rate == pytest.approx(0.1)
    with pytest.raises(ValueError, match="does not support a factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_actually_lowers_the_step_size():
    """After the reduction the optimizer really uses the smaller rate: SGD updates shrink."""
    model = make_model(lr=0.1)
    rec = RecordWeights()
    fit(model, [Inject("val_loss", [1, 1, 1]), callbacks.ReduceLROnPlateau(factor=0.001, patience=1), rec],
        epochs=3, shuffle=False)
    step1 = np.abs(rec.weights[1][0] - rec.weights[0][0]).max()
    step2 = np.abs(rec.weights[2][0] - rec.weights[1][0]).max()
    assert step2 < step1 * 0.01


def test_learning_rate_scheduler(capsys):
    model = make_model(lr=0.1)
    seen = []
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5, verbose=1)
    record = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(
        model.optimizer.learning_rate))
    history = fit(model, [sched, record], epochs=4)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.05." in capsys.readouterr().out
    # Keras 2's one-argument schedule.
    model = make_model()
    fit(model, [callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], epochs=3)
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)
    with pytest.raises(ValueError, match="should be a float"):
        fit(make_model(), [callbacks.LearningRateScheduler(lambda epoch, lr: "fast")], epochs=1)


# --- TerminateOnNaN / LambdaCallback / base ---------------------------------------------------------------

def test_terminate_on_nan(capsys):
    x, y = make_data()
    x[16:32] = np.nan  # the second batch (batch 1) has a NaN loss
    model = make_model()
    history = model.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0,
                        callbacks=[callbacks.TerminateOnNaN()])
    assert history.epoch == [0]
    assert model.optimizer.iterations == 2
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 1"):
        make_model().fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                         callbacks=[callbacks.TerminateOnNaN(raise_error=True)])


def test_lambda_callback_and_legacy_batch_hooks():
    events = []
    cb = callbacks.LambdaCallback(on_train_begin=lambda logs: events.append("begin"),
                                  on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, "loss" in logs)),
                                  on_train_batch_end=lambda batch, logs: events.append(("batch", batch)),
                                  on_train_end=lambda logs: events.append("end"),
                                  on_test_begin=lambda logs: events.append("test"))
    fit(make_model(), [cb], epochs=2)
    assert events == ["begin", ("batch", 0), ("batch", 1), ("batch", 2), "test", ("epoch", 0, True),
                      ("batch", 0), ("batch", 1), ("batch", 2), "test", ("epoch", 1, True), "end"]

    class Legacy(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.begins = self.ends = 0

        def on_batch_begin(self, batch, logs=None):
            self.begins += 1

        def on_batch_end(self, batch, logs=None):
            self.ends += 1

    legacy = Legacy()
    fit(make_model(), [legacy], epochs=2, validation=False)
    assert legacy.begins == legacy.ends == 6


def test_callbacks_with_generator_input(tmp_path):
    """History keys and monitored values are the same when training from a Sequence."""
    x, y = make_data()

    class Seq(rconv.utils.Sequence):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16]

    model = make_model(metrics=["acc"])
    path = tmp_path / "log.csv"
    history = model.fit(Seq(), validation_data=Seq(), epochs=3, verbose=0,
                        callbacks=[callbacks.CSVLogger(str(path)), callbacks.EarlyStopping(monitor="val_acc",
                                                                                           patience=5)])
    assert sorted(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert path.read_text().splitlines()[0] == "epoch,acc,loss,val_acc,val_loss"


def test_tensorboard_writes_the_model_graph_and_kernel_images(tmp_path):
    pytest.importorskip("tensorboardX", reason="the TensorBoard callback needs `tensorboardX`")
    pytest.importorskip("onnx", reason="the graph is written through the ONNX export")
    logdir = tmp_path / "logs"
    model = make_model()
    fit(model, [callbacks.TensorBoard(log_dir=str(logdir), histogram_freq=1, write_images=True)], epochs=1)
    train = _scalars(logdir / "train")
    assert train.Tags()["graph"]
    graph = train.Graph()
    names = {node.name for node in graph.node}
    dense = [layer.name for layer in model.layers if layer.weights]
    assert all(any(layer in n for n in names) for layer in dense)  # every weighted layer is a node
    ops = {node.op for node in graph.node}
    assert "MatMul" in ops or "Conv" in ops
    assert any(node.input for node in graph.node)  # connections, not a flat list
    assert any(t.endswith("/image") for t in train.Tags()["images"])

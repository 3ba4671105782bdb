"""Trainer wiring of issue 13's losses and metrics: a loss with reduction=None is averaged by the compiled loss
(Keras's CompileLoss), metrics with several values (F1Score(average=None)) are arrays in the logs, the progress
bar and callbacks, and metrics keep their constructor arguments through a saved compile config."""
import numpy as np
import pytest

import rconv
from rconv import layers


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    return x, y


def _model(loss="categorical_crossentropy", metrics=None):
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([rconv.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=rconv.optimizers.SGD(0.1), loss=loss, metrics=metrics)
    return model


def test_reduction_none_is_averaged_like_keras():
    x, y = _data()
    per_sample = _model(rconv.losses.CategoricalCrossentropy(reduction=None))
    mean = _model(rconv.losses.CategoricalCrossentropy())
    assert per_sample.evaluate(x, y, verbose=0) == pytest.approx(mean.evaluate(x, y, verbose=0), rel=1e-6)
    per_sample.train_on_batch(x, y)
    mean.train_on_batch(x, y)
    for a, b in zip(per_sample.get_weights(), mean.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_array_valued_metrics_in_logs(capsys, tmp_path):
    x, y = _data()
    model = _model(metrics=[rconv.metrics.F1Score(average=None), "accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=1, validation_data=(x, y),
                        callbacks=[rconv.callbacks.TensorBoard(str(tmp_path / "tb")),
                                   rconv.callbacks.CSVLogger(str(tmp_path / "log.csv"))])
    f1 = history.history["f1_score"][-1]
    assert np.shape(f1) == (3,) and np.all((0 <= f1) & (f1 <= 1))
    assert "f1_score: [" in capsys.readouterr().out
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.shape(logs["f1_score"]) == (3,)


def test_metric_arguments_survive_saving(tmp_path):
    x, y = _data()
    model = _model(metrics=[rconv.metrics.AUC(num_thresholds=50, name="auc50"),
                            rconv.metrics.Precision(thresholds=0.3), rconv.metrics.MeanIoU(num_classes=3)])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = rconv.models.load_model(tmp_path / "m.keras")
    metrics = {m.name: m for m in loaded._compile_metrics.all() or []}
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert {"auc50", "precision", "mean_io_u"} <= set(logs)
    metrics = {m.name: m for m in loaded._compile_metrics.all()}
    assert metrics["auc50"].num_thresholds == 50 and np.allclose(metrics["precision"].thresholds, 0.3)
    assert metrics["mean_io_u"].num_classes == 3

"""One direction rule for every monitoring callback (Keras 3's `MonitorCallback._set_monitor_op`):
EarlyStopping, ModelCheckpoint and ReduceLROnPlateau must minimise or maximise the same quantity the same
way. Each callback's direction is observed from its behaviour on a rising monitored value, not read from
its attributes."""
from types import SimpleNamespace

import numpy as np
import pytest

import rconv
from rconv import callbacks, metrics
from rconv.callbacks.monitor_callback import monitor_mode
from test_callbacks import Inject, fit, make_model

RISING = [1.0, 2.0, 3.0, 4.0]


class Scripted(metrics.Metric):
    """A custom compiled metric; `direction` sets Keras's `_direction` ('up'/'down'), None leaves it unset."""

    def __init__(self, name, direction=None):
        super().__init__(name)
        if direction is not None:
            self._direction = direction

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._total += 1.0
        self._count += 1.0


def _observe(kind, monitor, model_metrics, tmp_path, **kwargs):
    """'min' or 'max': how `kind` treated a monitored value that rises every epoch."""
    model = make_model(lr=0.1, metrics=model_metrics)
    if kind == "early_stopping":
        history = fit(model, [Inject(monitor, RISING), callbacks.EarlyStopping(monitor, patience=1, **kwargs)],
                      epochs=len(RISING))
        return "min" if history.epoch == [0, 1] else "max"
    if kind == "reduce_lr":
        cb = callbacks.ReduceLROnPlateau(monitor, patience=1, factor=0.5, min_delta=0, **kwargs)
        fit(model, [Inject(monitor, RISING), cb], epochs=len(RISING))
        return "min" if model.optimizer.learning_rate == pytest.approx(0.0125) else "max"
    assert kind == "checkpoint"
    if not hasattr(rconv.Model, "save_weights"):
        pytest.skip("Model.save_weights is not available")
    path = tmp_path / kind / "ck-{epoch}.weights.h5"
    cb = callbacks.ModelCheckpoint(str(path), monitor, save_best_only=True, save_weights_only=True, **kwargs)
    fit(model, [Inject(monitor, RISING), cb], epochs=len(RISING))
    saved = sorted(p.name for p in path.parent.iterdir())
    return "min" if saved == ["ck-1.weights.h5"] else "max"


KINDS = ("early_stopping", "reduce_lr", "checkpoint")

# (monitor, compiled metrics, direction every callback must take in auto mode)
AUTO_CASES = [
    pytest.param("val_loss", ["accuracy"], "min", id="val_loss"),
    pytest.param("loss", ["accuracy"], "min", id="loss"),
    pytest.param("val_out_loss", ["accuracy"], "min", id="per-output-loss"),
    pytest.param("val_accuracy", ["accuracy"], "max", id="val_accuracy"),
    pytest.param("val_acc", ["acc"], "max", id="val_acc"),
    # custom compiled metrics: only visible through `model.metrics`, the public list Keras's callbacks search
    pytest.param("val_auc", lambda: [Scripted("auc", "up")], "max", id="val_auc"),
    pytest.param("val_score", lambda: [Scripted("score", "up")], "max", id="custom-up"),
    pytest.param("val_error_rate", lambda: ["accuracy", Scripted("error_rate", "down")], "min", id="custom-down"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("monitor, model_metrics, expected", AUTO_CASES)
def test_auto_mode_direction_is_shared(kind, monitor, model_metrics, expected, tmp_path):
    model_metrics = model_metrics() if callable(model_metrics) else model_metrics
    assert _observe(kind, monitor, model_metrics, tmp_path) == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("monitor", ["val_accuracy", "val_loss", "weird"])
def test_explicit_mode_wins_over_the_name(kind, mode, monitor, tmp_path):
    # An explicit mode is never second-guessed, even against the metric's own direction or for unknown names.
    assert _observe(kind, monitor, ["accuracy"], tmp_path, mode=mode) == mode


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_mode_warns_and_falls_back_to_auto(kind, tmp_path):
    with pytest.warns(UserWarning, match="mode 'bogus' is unknown, fallback to auto mode"):
        assert _observe(kind, "val_accuracy", ["accuracy"], tmp_path, mode="bogus") == "max"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("monitor, model_metrics", [
    ("weird", ["accuracy"]),  # nothing of that name anywhere
    ("val_score", lambda: [Scripted("score")]),  # compiled, but without a `_direction`
])
def test_undecidable_auto_mode_raises(kind, monitor, model_metrics, tmp_path):
    model_metrics = model_metrics() if callable(model_metrics) else model_metrics
    with pytest.raises(ValueError, match=f"received monitor={monitor}, but Keras isn't able to automatically"):
        _observe(kind, monitor, model_metrics, tmp_path)


# --- the rule itself, on stand-in models --------------------------------------------------------------------

def test_rule_reads_model_metrics_including_containers():
    class Container:  # like Keras's CompileMetrics: a metric holding `.metrics`
        def __init__(self, inner):
            self.name, self.metrics = "compile_metrics", inner

    model = SimpleNamespace(metrics=[metrics.Mean(name="loss"),
                                     Container([Scripted("auc", "up"), metrics.MeanSquaredError(name="mse")])])
    assert monitor_mode(model, "val_auc") == "max"
    assert monitor_mode(model, "mse") == "min"
    assert monitor_mode(model, "val_loss") == "min"
    assert monitor_mode(model, "val_accuracy") is None  # not compiled: Keras cannot tell either
    # A compiled metric's own direction decides, even for a name that looks like a loss.
    assert monitor_mode(SimpleNamespace(metrics=[Scripted("neg_loss", "up")]), "neg_loss") == "max"
    # `_direction` beats the class fallback used for rconv's built-in metrics.
    acc = metrics.Accuracy(name="accuracy")
    acc._direction = "down"
    assert monitor_mode(SimpleNamespace(metrics=[acc]), "accuracy") == "min"


def test_rule_without_model_metrics_uses_builtin_metric_names():
    for model in (None, SimpleNamespace()):  # no model attached / a model without a `metrics` list
        assert monitor_mode(model, "val_accuracy") == "max"
        assert monitor_mode(model, "acc") == "max"
        assert monitor_mode(model, "val_sparse_categorical_accuracy") == "max"
        assert monitor_mode(model, "val_mse") == "min"
        assert monitor_mode(model, "loss") == "min"
        assert monitor_mode(model, "val_auc") == "max"
        assert monitor_mode(model, "val_score") is None


def test_min_delta_and_repeated_setup():
    cb = callbacks.MonitorCallback(mode="max", min_delta=0.5)
    cb._set_monitor_op()
    assert cb._is_improvement(0.75, 0) and cb._is_improvement(0.5, None)
    assert not cb._is_improvement(0.5, 0) and not cb._is_improvement(0.2, 0.5)
    cb = callbacks.MonitorCallback(mode="min", min_delta=0.5)
    for _ in range(2):  # idempotent: the sign of min_delta is not flipped back
        cb._set_monitor_op()
        assert cb._is_improvement(0.4, 1.0) and not cb._is_improvement(0.6, 1.0)
    assert cb.best == np.inf


def test_reduce_lr_is_a_monitor_callback_and_reusable():
    cb = callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1, min_delta=0)
    assert isinstance(cb, callbacks.MonitorCallback)
    model = make_model(lr=0.1)
    fit(model, [Inject("val_accuracy", [0.9, 0.8, 0.7]), cb], epochs=3)
    assert model.optimizer.learning_rate == pytest.approx(0.025)
    # A second fit starts from a clean best: 0.1 < 0.9 seen before is still a first value, not a plateau.
    fit(model, [Inject("val_accuracy", [0.1, 0.2, 0.3]), cb], epochs=3)
    assert model.optimizer.learning_rate == pytest.approx(0.025)

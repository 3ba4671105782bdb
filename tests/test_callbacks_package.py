"""The `rconv.callbacks` package: one module per callback (like Keras 3's keras/src/callbacks/), every
public name re-exported, `CallbackList` as fit/evaluate/predict call it, and TensorBoard letting
unexpected errors through instead of swallowing them."""
import importlib
import inspect
import io
import os

import pytest

import rconv
from rconv import callbacks
from test_callbacks import fit, make_model

MODULES = {
    "Callback": "callback", "CallbackList": "callback_list", "History": "history",
    "ProgbarLogger": "progbar_logger", "MonitorCallback": "monitor_callback", "EarlyStopping": "early_stopping",
    "ModelCheckpoint": "model_checkpoint", "ReduceLROnPlateau": "reduce_lr_on_plateau",
    "LearningRateScheduler": "learning_rate_scheduler", "TerminateOnNaN": "terminate_on_nan",
    "CSVLogger": "csv_logger", "LambdaCallback": "lambda_callback", "TensorBoard": "tensorboard",
}


@pytest.mark.parametrize("name, module", MODULES.items())
def test_every_callback_lives_in_its_module_and_is_reexported(name, module):
    cls = getattr(importlib.import_module(f"rconv.callbacks.{module}"), name)
    assert getattr(callbacks, name) is cls is getattr(rconv.callbacks, name)
    assert name in callbacks.__all__
    assert issubclass(cls, callbacks.Callback)


def test_all_lists_exactly_the_public_callbacks():
    assert sorted(callbacks.__all__) == sorted(MODULES)


def test_no_callback_module_is_over_600_lines():
    package = os.path.dirname(callbacks.__file__)
    for fname in os.listdir(package):
        if fname.endswith(".py"):
            with open(os.path.join(package, fname)) as f:
                assert sum(1 for _ in f) <= 600, fname


def test_callback_list_signature_and_params():
    sig = inspect.signature(callbacks.CallbackList)
    assert list(sig.parameters) == ["callbacks", "add_history", "add_progbar", "model", "verbose", "params"]
    assert sig.parameters["params"].kind is inspect.Parameter.VAR_KEYWORD
    model = make_model()
    user = callbacks.Callback()
    cbs = callbacks.CallbackList([user], add_history=True, add_progbar=True, model=model, verbose=2, epochs=3,
                                 steps=5, mode="train")
    assert [type(c) for c in cbs.callbacks] == [callbacks.Callback, callbacks.History, callbacks.ProgbarLogger]
    assert cbs.history is cbs.callbacks[1]
    assert cbs.callbacks[2].verbose == 2
    for c in (cbs, *cbs.callbacks):
        assert c.model is model
        assert c.params == {"verbose": 2, "epochs": 3, "steps": 5, "mode": "train"}
    # A History or ProgbarLogger the user passed is reused, not doubled; nothing is added unless asked.
    history, progbar = callbacks.History(), callbacks.ProgbarLogger(stream=io.StringIO())
    cbs = callbacks.CallbackList([history, progbar], add_history=True, add_progbar=True)
    assert cbs.callbacks == [history, progbar] and cbs.history is history and cbs.model is None
    assert callbacks.CallbackList().callbacks == [] and callbacks.CallbackList().history is None
    assert callbacks.CallbackList(None).params == {"verbose": 1}


def test_callback_list_fans_out_every_hook_in_order():
    calls = []

    class Spy(callbacks.Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def __getattribute__(self, name):
            if name.startswith("on_"):
                return lambda *args: calls.append((object.__getattribute__(self, "tag"), name, args))
            return object.__getattribute__(self, name)

    cbs = callbacks.CallbackList([Spy("a"), Spy("b")])
    hooks = [name for name in dir(callbacks.Callback) if name.startswith("on_")
             and name not in ("on_batch_begin", "on_batch_end")]  # Keras 2 aliases, reached via on_train_batch_*
    for hook in hooks:
        args = (7, {"k": 1}) if "epoch_" in hook or "batch_" in hook else ({"k": 1},)
        getattr(cbs, hook)(*args)
        assert calls[-2:] == [("a", hook, args), ("b", hook, args)], hook
    assert len(calls) == 2 * len(hooks) == 28


# --- TensorBoard: only the documented failure is tolerated --------------------------------------------------

@pytest.fixture
def tensorboardx():
    return pytest.importorskip("tensorboardX", reason="the TensorBoard callback needs `tensorboardX`")


def test_tensorboard_propagates_unexpected_errors(tensorboardx, tmp_path, monkeypatch):
    import rconv.saving

    def broken(model, *args, **kwargs):
        raise RuntimeError("boom in model_to_config")

    monkeypatch.setattr(rconv.saving, "model_to_config", broken)
    with pytest.raises(RuntimeError, match="boom in model_to_config"):
        fit(make_model(), [callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))], epochs=1)


def test_tensorboard_warns_when_the_model_cannot_be_described(tensorboardx, tmp_path, monkeypatch):
    import rconv.saving

    def unsupported(model, *args, **kwargs):
        raise rconv.saving.ConfigError("Cannot save layer 'x': unsupported class 'Foo'")

    monkeypatch.setattr(rconv.saving, "model_to_config", unsupported)
    with pytest.warns(UserWarning, match="failed to serialize as JSON.*unsupported class 'Foo'"):
        history = fit(make_model(), [callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))], epochs=2)
    assert history.epoch == [0, 1]  # training went on; only the graph summary is missing


def test_tensorboard_writes_no_graph_for_a_subclassed_model(tensorboardx, tmp_path, monkeypatch):
    import rconv.saving

    def must_not_run(model, *args, **kwargs):
        raise AssertionError("model_to_config called for a subclassed model")

    monkeypatch.setattr(rconv.saving, "model_to_config", must_not_run)
    cb = callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))
    cb.set_model(type("MySubclassedModel", (), {})())
    cb.on_train_begin()  # Keras writes the "keras" graph summary only for Sequential / Functional models
    cb.on_train_end()
    assert not (tmp_path / "logs").exists()

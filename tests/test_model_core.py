"""The model core (issue: one graph, one executor, one serializer): multi-input/multi-output models,
Sequential built like Keras, the layer protocol (build marks built, traced output shapes, state updates,
non-differentiable layers), KerasTensor operators, activation models, nested-config safety, no input
gradients below the first trainable layer, re-iterated datasets."""
import json
from pathlib import Path

import numpy as np
import pytest

import rconv
from keras_check import check_in_keras, keras_python
from rconv import layers, ops
from rconv.graph import context

FIXTURES = Path(__file__).parent / "keras_fixtures"


def _multi_io(seed=0):
    rconv.utils.set_random_seed(seed)
    a = rconv.Input((4,), name="a")
    b = rconv.Input((3,), name="b")
    h = layers.Dense(8, activation="relu", name="h")(layers.Concatenate(name="cat")([a, b]))
    y1 = layers.Dense(2, activation="softmax", name="y1")(h)
    y2 = layers.Dense(1, name="y2")(h)
    return rconv.Model([a, b], [y1, y2])


def _multi_io_data(n=48, seed=1):
    rng = np.random.default_rng(seed)
    xa, xb = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
    y1 = (xa[:, 0] + xb[:, 0] > 0).astype(np.int64)
    y2 = (xa.sum(1, keepdims=True) - xb.sum(1, keepdims=True)).astype(np.float32)
    return xa, xb, y1, y2


# --- multiple inputs and outputs ----------------------------------------------------------------------------
def test_two_inputs_two_outputs_train_with_keras_history_keys(tmp_path):
    model = _multi_io()
    model.compile(optimizer=rconv.optimizers.Adam(0.01), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    xa, xb, y1, y2 = _multi_io_data()
    hist = model.fit([xa, xb], [y1, y2], epochs=8, batch_size=16, verbose=0, validation_data=([xa, xb], [y1, y2]))
    assert sorted(hist.history) == ["loss", "val_loss", "val_y1_accuracy", "val_y1_loss", "val_y2_loss",
                                    "val_y2_mae", "y1_accuracy", "y1_loss", "y2_loss", "y2_mae"]
    h = hist.history
    assert h["loss"][-1] < h["loss"][0]
    # The total is the weighted sum of the per-output losses (each a mean over the epoch's samples).
    np.testing.assert_allclose(h["val_loss"][-1], h["val_y1_loss"][-1] + 0.5 * h["val_y2_loss"][-1], rtol=1e-5)
    values = model.evaluate([xa, xb], [y1, y2], verbose=0)
    assert model.metrics_names == ["loss", "y1_loss", "y2_loss", "y1_accuracy", "y2_mae"]
    np.testing.assert_allclose(values, [h["val_loss"][-1], h["val_y1_loss"][-1], h["val_y2_loss"][-1],
                                        h["val_y1_accuracy"][-1], h["val_y2_mae"][-1]], rtol=1e-5)
    p1, p2 = model.predict([xa, xb], verbose=0)
    assert p1.shape == (48, 2) and p2.shape == (48, 1)
    # Inputs by name, targets by output name.
    by_name = model.evaluate({"a": xa, "b": xb}, {"y1": y1, "y2": y2}, verbose=0, return_dict=True)
    np.testing.assert_allclose(by_name["loss"], values[0], rtol=1e-6)

    path = tmp_path / "multi.keras"
    model.save(path)
    loaded = rconv.models.load_model(path)
    for got, want in zip(loaded.predict([xa, xb], verbose=0), (p1, p2)):
        np.testing.assert_array_equal(got, want)
    assert loaded.compile_spec["loss_weights"] == [1.0, 0.5]
    cfg = json.loads(__import__("zipfile").ZipFile(path).read("config.json"))
    assert cfg["config"]["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert cfg["compile_config"]["loss"] == ["sparse_categorical_crossentropy", "mse"]
    assert cfg["compile_config"]["metrics"] == [["accuracy"], ["mae"]]


def test_dict_outputs_and_losses():
    a = rconv.Input((4,), name="a")
    h = layers.Dense(6, activation="relu")(a)
    model = rconv.Model(inputs={"a": a}, outputs={"cls": layers.Dense(2, activation="softmax")(h),
                                                   "reg": layers.Dense(1)(h)})
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  metrics={"cls": "accuracy"})
    xa, _, y1, y2 = _multi_io_data()
    hist = model.fit({"a": xa}, {"cls": y1, "reg": y2}, epochs=1, verbose=0)
    assert sorted(hist.history) == ["cls_accuracy", "cls_loss", "loss", "reg_loss"]
    out = model.predict({"a": xa}, verbose=0)
    assert sorted(out) == ["cls", "reg"] and out["cls"].shape == (48, 2)
    with pytest.raises(ValueError, match="do not correspond to any model output"):
        model.compile("adam", loss={"nope": "mse"})
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"})  # no metrics at all
    assert sorted(model.fit({"a": xa}, {"cls": y1, "reg": y2}, verbose=0).history) == ["cls_loss", "loss", "reg_loss"]


def test_keras_written_multi_io_files_load_and_predict():
    expected = np.load(FIXTURES / "multi_io_expected.npz")
    for name in ("multi_io.keras", "multi_io.h5"):
        model = rconv.models.load_model(FIXTURES / name, compile=name.endswith(".keras"))
        y1, y2 = model.predict([expected["a"], expected["b"]], verbose=0)
        np.testing.assert_allclose(y1, expected["y1"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y2, expected["y2"], rtol=1e-5, atol=1e-6)


def test_keras_written_multi_io_resumes_training_like_keras():
    train = np.load(FIXTURES / "multi_io_train.npz")
    model = rconv.models.load_model(FIXTURES / "multi_io.keras")
    logs = model.evaluate([train["a"], train["b"]], [train["y1"], train["y2"]], verbose=0, return_dict=True)
    for key in ("loss", "y1_loss", "y2_loss", "y1_accuracy", "y2_mae"):
        np.testing.assert_allclose(logs[key], train[f"evaluate_{key}"], rtol=1e-4, atol=1e-6)
    model.train_on_batch([train["a"], train["b"]], [train["y1"], train["y2"]])
    probe = np.load(FIXTURES / "multi_io_expected.npz")
    y1, y2 = model.predict([probe["a"], probe["b"]], verbose=0)
    np.testing.assert_allclose(y1, train["after_y1"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y2, train["after_y2"], rtol=1e-4, atol=1e-5)


# --- layer / model attributes --------------------------------------------------------------------------------
def test_activation_model_from_trained_sequential():
    from seed_models import seed_convnet
    model = seed_convnet()
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    model.fit(x, np.arange(4), verbose=0)
    act = rconv.Model(inputs=model.input, outputs=[layer.output for layer in model.layers[:5]])
    outs = act.predict(x, verbose=0)
    assert [o.shape for o in outs] == [(4,) + tuple(layer.output.shape[1:]) for layer in model.layers[:5]]
    expected = x
    for layer, got in zip(model.layers[:5], outs):
        expected = layer(expected)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert model.layers[0].input is model.input and model.layers[-1].output is model.output
    assert model.layers[0].input_shape == (None, 28, 28, 1)
    assert model.get_layer(index=0) is model.layers[0]


def test_keras_tensor_slicing_and_arithmetic_train():
    x = rconv.Input((6,))
    h = layers.Dense(4)(x[:, 1:5] * 2.0 - 1.0)
    y = layers.Dense(1)(h + x[:, :4] / 2.0)
    model = rconv.Model(x, y)
    w = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    got = model.predict(w, verbose=0)
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    k1, b1 = dense[0].get_weights()
    k2, b2 = dense[1].get_weights()
    ref = ((w[:, 1:5] * 2 - 1) @ k1 + b1 + w[:, :4] / 2) @ k2 + b2
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    # The input gradient through the slices and operators, against finite differences.
    g = np.ones((5, 1), np.float32)
    _, tape = model.forward(w, training=True)
    gx, _ = model.backward(tape, g)
    num = np.zeros_like(w, dtype=np.float64)
    for idx in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[idx] = 1e-2
        num[idx] = (model.predict(w + e, verbose=0).sum() - model.predict(w - e, verbose=0).sum()) / 2e-2
    np.testing.assert_allclose(gx, num, rtol=1e-3, atol=1e-3)
    model.compile("sgd", "mse")
    before = dense[0].kernel.numpy()
    model.fit(w, np.ones((5, 1), np.float32), verbose=0)
    assert not np.array_equal(before, dense[0].kernel.numpy())


def test_user_build_marks_built_and_keeps_weights():
    dense = layers.Dense(3)
    dense.build((None, 2))
    assert dense.built
    dense.set_weights([np.ones((2, 3), np.float32), np.zeros(3, np.float32)])
    np.testing.assert_array_equal(dense(np.ones((1, 2), np.float32)), [[2, 2, 2]])
    kernel = dense.kernel
    dense(np.ones((4, 2), np.float32))
    assert dense.kernel is kernel


class Doubler(layers.Layer):
    """A custom layer defining only `call`: no backward."""

    def call(self, inputs, training=None):
        return np.concatenate([inputs, inputs * 2], axis=-1)


def test_call_only_layer_output_shape_by_tracing_and_clear_error_when_trained_through():
    x = rconv.Input((5,))
    y = Doubler()(x)
    assert y.shape == (None, 10)
    out = layers.Dense(1)(y)
    model = rconv.Model(x, out)
    np.testing.assert_allclose(model.predict(np.ones((2, 5), np.float32), verbose=0).shape, (2, 1))
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 5), np.float32), np.ones((4, 1), np.float32), verbose=0)  # nothing trainable below it
    upstream = rconv.Model(x, Doubler()(layers.Dense(5)(x)))
    upstream.compile("sgd", "mse")
    with pytest.raises(ValueError, match="has no backward pass, but trainable weights lie upstream"):
        upstream.fit(np.ones((4, 5), np.float32), np.ones((4, 10), np.float32), verbose=0)


class RunningMean(layers.Layer):
    """Identity that tracks the batch mean in a non-trainable weight (like BatchNormalization's moving mean)."""

    def build(self, input_shape):
        self.mean = self.add_weight((input_shape[-1],), "zeros", trainable=False, name="mean")

    def forward(self, inputs, training=False):
        if training:
            self.add_update(self.mean, 0.5 * self.mean.value + 0.5 * inputs.mean(axis=0))
        return inputs, None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        return (grad_outputs if need_input_grad else None), [None]


def test_state_updates_apply_after_the_forward_and_are_saved(tmp_path):
    x = rconv.Input((3,))
    stat = RunningMean()
    model = rconv.Model(x, layers.Dense(1)(stat(x)))
    model.compile("sgd", "mse")
    data = np.full((8, 3), 2.0, np.float32)
    model.predict(data, verbose=0)
    np.testing.assert_array_equal(stat.mean.numpy(), 0)  # inference: no update
    with context.scope(training=True) as ctx:
        stat.forward(data, training=True)
        assert ctx.updates and np.array_equal(stat.mean.numpy(), np.zeros(3))  # collected, not yet applied
    np.testing.assert_array_equal(stat.mean.numpy(), 1.0)
    model.fit(data, np.ones((8, 1), np.float32), batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(stat.mean.numpy(), 1.5)
    assert stat.mean in model.non_trainable_weights
    model.save_weights(tmp_path / "m.weights.h5")
    stat.mean.assign(np.zeros(3, np.float32))
    model.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(stat.mean.numpy(), 1.5)  # restored like Keras's non-trainable variables


# --- Sequential built like Keras ------------------------------------------------------------------------------
def test_sequential_with_a_functional_base_is_built_at_once(capsys):
    conv_base = rconv.applications.VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))
    model = rconv.Sequential([conv_base, layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    assert model.built and model.count_params() == 16_812_353
    model.summary()
    text = capsys.readouterr().out
    assert "(None, 4, 4, 512)" in text and "16,812,353" in text and "?" not in text
    assert len(model.trainable_weights) == 30
    conv_base.trainable = False
    assert len(model.trainable_weights) == 4
    conv_base.trainable = True
    for layer in conv_base.layers:
        layer.trainable = layer.name.startswith("block5")
    assert len(model.trainable_weights) == 10


def test_no_input_gradient_below_the_first_trainable_layer(monkeypatch):
    rconv.utils.set_random_seed(0)
    base = rconv.Sequential([rconv.Input((10, 10, 2)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                             layers.Conv2D(4, 3, activation="relu", name="c2"), layers.Conv2D(4, 3, name="c3")])
    model = rconv.Sequential([base, layers.Flatten(), layers.Dense(1)])
    for layer in base.layers:
        layer.trainable = layer.name == "c3"
    calls = []
    real = ops.conv2d_backward

    def spy(*args, need_grad_x=True, **kwargs):
        calls.append(need_grad_x)
        return real(*args, need_grad_x=need_grad_x, **kwargs)

    monkeypatch.setattr(ops, "conv2d_backward", spy)
    model.compile("sgd", "mse")
    k1, k3 = base.get_layer("c1").kernel.numpy(), base.get_layer("c3").kernel.numpy()
    model.train_on_batch(np.ones((2, 10, 10, 2), np.float32), np.ones((2, 1), np.float32))
    assert calls == [False]  # c3's kernel gradient only; c1, c2 get no backward at all
    assert np.array_equal(k1, base.get_layer("c1").kernel.numpy())
    assert not np.array_equal(k3, base.get_layer("c3").kernel.numpy())


# --- serializer safety at every depth -------------------------------------------------------------------------
def _nested_config():
    inner = rconv.Sequential([rconv.Input((3,)), layers.Dense(2, name="d")], name="inner")
    x = rconv.Input((3,), name="x")
    return json.loads(rconv.Model(x, inner(x)).to_json())


@pytest.mark.parametrize("where", ["module", "registered_name"])
def test_nested_config_from_foreign_module_is_refused(where):
    config = _nested_config()
    nested = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "Sequential")
    nested[where] = "evil.module" if where == "module" else "evil>Thing"
    with pytest.raises(ValueError, match="evil"):
        rconv.models.model_from_json(json.dumps(config))
    inner_layer = nested["config"]["layers"][-1]  # and one level deeper
    config = _nested_config()
    nested = next(entry for entry in config["config"]["layers"] if entry["class_name"] == "Sequential")
    nested["config"]["layers"][-1]["module"] = "evil.module"
    assert inner_layer["class_name"] == "Dense"
    with pytest.raises(ValueError, match="evil"):
        rconv.models.model_from_json(json.dumps(config))


def test_serialize_and_json_round_trip():
    config = _nested_config()
    model = rconv.models.model_from_json(json.dumps(config))
    assert json.loads(model.to_json()) == config
    entry = rconv.saving.serialize_keras_object(layers.Dense(3, name="d3"))
    assert rconv.saving.deserialize_keras_object(entry).get_config() == entry["config"]
    with pytest.raises(ValueError, match="Unknown layer|Unsupported layer"):
        rconv.saving.deserialize_keras_object({"class_name": "Layer", "config": {}})


# --- datasets re-iterated every epoch -------------------------------------------------------------------------
class FiniteDataset:
    """What `image_dataset_from_directory` returns: `__len__` and `__iter__`, no `__getitem__`."""

    def __init__(self, n_batches=3):
        rng = np.random.default_rng(0)
        self.batches = [(rng.random((4, 5), dtype=np.float32), rng.random((4, 1), dtype=np.float32))
                        for _ in range(n_batches)]

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.parametrize("steps", [None, 3])
def test_finite_dataset_is_reiterated_every_epoch(steps):
    x = rconv.Input((5,))
    model = rconv.Model(x, layers.Dense(1)(x))
    model.compile("sgd", "mse")
    seen = []
    cb = rconv.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    hist = model.fit(FiniteDataset(), epochs=3, steps_per_epoch=steps, verbose=0, callbacks=[cb],
                     validation_data=FiniteDataset())
    assert seen == [0, 1, 2] * 3
    assert all(v > 0 for v in hist.history["val_loss"]) and len(hist.history["val_loss"]) == 3


@pytest.mark.keras
def test_rconv_multi_io_files_load_and_resume_in_real_keras(tmp_path):
    """A two-input two-output model trained by rconv: real Keras 3 loads its .keras and .h5 files with the same
    predictions, and one resumed Adam step from the .keras file gives rconv's next predictions."""
    exe = keras_python()
    model = _multi_io()
    model.compile(optimizer=rconv.optimizers.Adam(0.01), loss=["sparse_categorical_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    xa, xb, y1, y2 = _multi_io_data(n=32)
    model.fit([xa, xb], [y1, y2], epochs=3, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    p1, p2 = model.predict([xa[:5], xb[:5]], verbose=0)
    np.savez(tmp_path / "in.npz", a=xa[:5], b=xb[:5])
    np.savez(tmp_path / "out.npz", y1=p1, y2=p2)
    logs = model.evaluate([xa[:6], xb[:6]], [y1[:6], y2[:6]], verbose=0, return_dict=True)
    model.train_on_batch([xa[:6], xb[:6]], [y1[:6], y2[:6]])
    q1, q2 = model.predict([xa[:5], xb[:5]], verbose=0)
    np.savez(tmp_path / "train.npz", a=xa[:6], b=xb[:6], y1=y1[:6], y2=y2[:6], after_y1=q1, after_y2=q2,
             **{f"evaluate_{k}": v for k, v in logs.items()})
    inputs, expected = tmp_path / "in.npz", tmp_path / "out.npz"
    check_in_keras(exe, tmp_path / "m.keras", inputs, expected, "--train", tmp_path / "train.npz", "--strict")
    check_in_keras(exe, tmp_path / "m.h5", inputs, expected)


# --- tensor operations in saved configs (Keras 3's form, from the probe of Keras 3.15) ----------------------
KERAS_OPS_CONFIG = {  # config.json -> config of Keras 3's `Model(x, [x[:, 1:3], x + 1.0])`
    "name": "functional", "trainable": True,
    "layers": [
        {"module": "keras.layers", "class_name": "InputLayer",
         "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False,
                    "name": "input_layer", "optional": False},
         "registered_name": None, "name": "input_layer", "inbound_nodes": []},
        {"module": "keras.src.ops.numpy", "class_name": "GetItem", "config": {"name": "get_item"},
         "registered_name": "GetItem", "name": "get_item",
         "inbound_nodes": [{"args": [
             {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 4], "dtype": "float32", "keras_history": ["input_layer", 0, 0]}},
             [{"class_name": "__slice__", "config": {"start": None, "stop": None, "step": None}},
              {"class_name": "__slice__", "config": {"start": 1, "stop": 3, "step": None}}]], "kwargs": {}}]},
        {"module": "keras.src.ops.numpy", "class_name": "Add", "config": {"name": "add"},
         "registered_name": "Add", "name": "add",
         "inbound_nodes": [{"args": [
             {"class_name": "__keras_tensor__",
              "config": {"shape": [None, 4], "dtype": "float32", "keras_history": ["input_layer", 0, 0]}},
             1.0], "kwargs": {}}]}],
    "input_layers": ["input_layer", 0, 0],
    "output_layers": [["get_item", 0, 0], ["add", 0, 0]]}


def test_keras_operation_configs_load_and_are_written_back_the_same():
    model = rconv.saving.model_from_config({"class_name": "Functional", "config": KERAS_OPS_CONFIG})
    y, z = model.predict(np.array([[0, 1, 2, 3], [4, 5, 6, 7]], np.float32), verbose=0)
    np.testing.assert_array_equal(y, [[1, 2], [5, 6]])
    np.testing.assert_array_equal(z, [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer"]  # operations are not layers
    written = model.get_config()
    for layer in written["layers"]:
        layer["config"].pop("dtype", None) if layer["class_name"] != "InputLayer" else None
    assert written["layers"][1:] == KERAS_OPS_CONFIG["layers"][1:]


def test_operation_models_round_trip_through_keras_files(tmp_path):
    x = rconv.Input((6,), name="x")
    h = layers.Dense(3, name="d")(2.0 * x[:, 1:5] - x[:, :4] / 4.0)
    model = rconv.Model(x, [h + 1.0, h * h])
    data = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    model.save(tmp_path / "ops.keras")
    loaded = rconv.models.load_model(tmp_path / "ops.keras")
    for got, want in zip(loaded.predict(data, verbose=0), model.predict(data, verbose=0)):
        np.testing.assert_array_equal(got, want)
    entries = {e["name"]: e for e in json.loads(model.to_json())["config"]["layers"]}
    assert {e["class_name"] for e in entries.values() if e["module"] == "keras.src.ops.numpy"} == {
        "GetItem", "Multiply", "TrueDivide", "Subtract", "Add"}
    with pytest.raises(ValueError, match="Unsupported operation 'Exec'"):
        rconv.saving.model_from_config({"class_name": "Functional", "config": {
            **KERAS_OPS_CONFIG, "layers": [KERAS_OPS_CONFIG["layers"][0],
                                           {**KERAS_OPS_CONFIG["layers"][2], "class_name": "Exec"}]}})

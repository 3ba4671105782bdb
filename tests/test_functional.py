"""Functional API: DAG gradients vs a float64 NumPy reference, equivalence with Sequential, the seed
functional program, summaries, Keras 3 configs, freezing (`trainable`) semantics."""
import json

import numpy as np
import pytest

import rconv
from rconv import layers
from rconv.models.functional import Functional


# --- a small DAG: a branch used by two layers, a layer used twice (shared weights), Add, Concatenate -----
def _dag(seed=0):
    rconv.utils.set_random_seed(seed)
    inp = rconv.Input(shape=(5,), name="x")
    a = layers.Dense(4, activation="relu", name="a")(inp)       # used by b, c and the concatenation
    b = layers.Dense(3, name="b")(a)
    c = layers.Dense(3, activation="relu", name="c")(a)
    shared = layers.Dense(3, name="shared")
    s = layers.Add(name="add")([shared(b), shared(c)])          # same weights, two calls
    h = layers.Concatenate(name="cat")([s, a])
    out = layers.Dense(2, name="out")(h)
    return rconv.Model(inputs=inp, outputs=out), shared


def _dag_reference(params, x):
    """float64 NumPy forward of `_dag` (params by layer name: (kernel, bias))."""
    def relu(z):
        return np.maximum(z, 0.0)

    def dense(name, v):
        return v @ params[name][0] + params[name][1]

    a = relu(dense("a", x))
    b = dense("b", a)
    c = relu(dense("c", a))
    s = dense("shared", b) + dense("shared", c)
    h = np.concatenate([s, a], axis=1)
    return dense("out", h)


def test_dag_gradients_match_float64_finite_differences():
    model, _ = _dag()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    g_out = rng.normal(size=(7, 2)).astype(np.float32)
    y, tape = model.forward(x, training=True)
    grad_x, grads = model.backward(tape, g_out, need_input_grad=True)

    names = ["a", "b", "c", "shared", "out"]
    params = {n: [model.get_layer(n).kernel.numpy().astype(np.float64),
                  model.get_layer(n).bias.numpy().astype(np.float64)] for n in names}
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, _dag_reference(params, x64), rtol=1e-5, atol=1e-5)

    def objective():
        return float(np.sum(_dag_reference(params, x64) * g_out))

    assert len(grads) == len(model.weights) == 10  # the shared layer's weights appear once
    eps = 1e-6
    for var, g in zip(model.weights, grads):
        lname, wname = var.path.split("/")
        arr = params[lname][0 if wname == "kernel" else 1]
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = objective()
            arr[idx] = old - eps
            down = objective()
            arr[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-4, err_msg=var.path)
    num_x = np.zeros_like(x64)
    for idx in np.ndindex(x64.shape):
        old = x64[idx]
        x64[idx] = old + eps
        up = objective()
        x64[idx] = old - eps
        down = objective()
        x64[idx] = old
        num_x[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grad_x, num_x, rtol=1e-4, atol=1e-4)


def test_dag_trains_and_shared_layer_listed_once():
    model, shared = _dag()
    assert [l.name for l in model.layers] == ["x", "a", "b", "c", "shared", "add", "cat", "out"]
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)), rng.normal(size=(16, 2))
    before = shared.kernel.numpy()
    losses = [model.train_on_batch(x, y) for _ in range(30)]
    assert losses[-1] < losses[0]
    assert not np.array_equal(before, shared.kernel.numpy())


def _convnet_layers():
    return [layers.Rescaling(1 / 255), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Flatten(), layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")]


def test_functional_equals_sequential_predictions_and_sgd_step():
    rconv.utils.set_random_seed(3)
    seq = rconv.Sequential([rconv.Input((10, 10, 2))] + _convnet_layers())
    inp = rconv.Input((10, 10, 2))
    x = inp
    for layer in _convnet_layers():
        x = layer(x)
    fun = rconv.Model(inp, x)
    fun.set_weights(seq.get_weights())
    rng = np.random.default_rng(0)
    xs = rng.random((6, 10, 10, 2), dtype=np.float32) * 255
    ys = rng.integers(0, 3, 6)
    np.testing.assert_array_equal(fun.predict(xs, verbose=0), seq.predict(xs, verbose=0))
    for m in (seq, fun):
        m.compile(optimizer=rconv.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    assert all(m._compile_loss.fused_slots(m._plan) for m in (fun, seq))  # softmax fused with the loss in both
    l_seq = seq.train_on_batch(xs, ys)
    l_fun = fun.train_on_batch(xs, ys)
    assert l_seq == pytest.approx(l_fun, rel=1e-6)
    for a, b in zip(seq.get_weights(), fun.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fun.predict(xs, verbose=0), seq.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)


def _seed_program(size=32):
    data_augmentation = rconv.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                                          layers.RandomZoom(0.2)])
    inputs = rconv.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    x = layers.Rescaling(1. / 255)(x)
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return rconv.Model(inputs=inputs, outputs=outputs), data_augmentation


def test_seed_functional_program_runs(monkeypatch):
    rconv.backend.clear_session()
    rconv.utils.set_random_seed(0)
    model, aug = _seed_program()
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    # Backward stops before the first trainable layer: the augmentation block is never differentiated.
    monkeypatch.setattr(type(aug), "backward", lambda *a, **k: pytest.fail("backward through augmentation"))
    rng = np.random.default_rng(0)
    x = rng.random((24, 32, 32, 3), dtype=np.float32) * 255
    y = rng.integers(0, 2, (24, 1))
    history = model.fit(x, y, epochs=1, batch_size=8, validation_data=(x[:8], y[:8]), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.isfinite(history.history["loss"][0])
    p1, p2 = model.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0)
    np.testing.assert_array_equal(p1, p2)  # augmentation and dropout off at inference
    assert p1.shape == (4, 1) and np.all((p1 > 0) & (p1 < 1))

    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    rows = [l for l in text.splitlines() if l.startswith("│")]
    assert rows[0].split("│")[1].strip() == "input_layer (InputLayer)"
    assert rows[1].split("│")[1].strip() == "sequential (Sequential)"
    assert rows[1].split("│")[3].strip() == "0"
    assert "Total params: 21,697" in text  # 896 + 18,496 + 2,305, as Keras prints for this model


def test_nested_sequential_row_shows_its_params_and_freezing():
    rconv.backend.clear_session()
    base = rconv.Sequential([rconv.Input((8,)), layers.Dense(4, name="d1"), layers.Dense(4, name="d2")], name="base")
    inp = rconv.Input((8,))
    out = layers.Dense(1, name="head")(base(inp))
    model = rconv.Model(inp, out)
    base.trainable = False
    assert not base.layers[0].trainable and not base.layers[1].trainable  # Keras propagates
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 4
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "base (Sequential)" in text and "56 │" in text  # one row, the nested model's 36 + 20 params
    assert "Trainable params: 5 " in text and "Non-trainable params: 56 " in text
    base.trainable = True
    assert base.layers[0].trainable


def test_frozen_layer_is_bit_identical_through_fit_and_recompile_semantics():
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((6,))
    frozen = layers.Dense(5, activation="relu", name="frozen")
    out = layers.Dense(1, name="head")(frozen(inp))
    model = rconv.Model(inp, out)
    frozen.trainable = False
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)), rng.normal(size=(32, 1))
    before = [w.copy() for w in frozen.get_weights()]
    head_before = model.get_layer("head").get_weights()[0].copy()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(before, frozen.get_weights()):
        assert np.array_equal(a, b)
    assert not np.array_equal(head_before, model.get_layer("head").get_weights()[0])
    # Unfreezing takes effect only after compile() again (Keras semantics).
    frozen.trainable = True
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(before, frozen.get_weights()):
        assert np.array_equal(a, b)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(before[0], frozen.get_weights()[0])


def test_frozen_vgg_style_base_through_fit():
    rconv.utils.set_random_seed(1)
    base = rconv.Sequential([rconv.Input((8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(2)], name="conv_base")
    base.trainable = False
    inp = rconv.Input((8, 8, 3))
    x = layers.Flatten()(base(inp))
    out = layers.Dense(2, activation="softmax")(x)
    model = rconv.Model(inp, out)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    before = base.get_weights()
    rng = np.random.default_rng(0)
    model.fit(rng.random((16, 8, 8, 3)), rng.integers(0, 2, 16), epochs=1, batch_size=4, verbose=0)
    for a, b in zip(before, base.get_weights()):
        assert np.array_equal(a, b)


# --- configs ------------------------------------------------------------------------------------------
def test_config_is_keras3_functional_layout():
    rconv.backend.clear_session()
    model, _ = _dag()
    cfg = model.get_config()
    assert set(cfg) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    assert cfg["input_layers"] == ["x", 0, 0] and cfg["output_layers"] == ["out", 0, 0]
    by_name = {e["name"]: e for e in cfg["layers"]}
    assert set(by_name["a"]) == {"module", "class_name", "config", "registered_name", "build_config", "name",
                                 "inbound_nodes"}
    assert by_name["x"]["inbound_nodes"] == []
    assert by_name["a"]["inbound_nodes"] == [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 5], "dtype": "float32", "keras_history": ["x", 0, 0]}}], "kwargs": {}}]
    shared_nodes = by_name["shared"]["inbound_nodes"]
    assert [n["args"][0]["config"]["keras_history"] for n in shared_nodes] == [["b", 0, 0], ["c", 0, 0]]
    add_args = by_name["add"]["inbound_nodes"][0]["args"]
    assert [t["config"]["keras_history"] for t in add_args[0]] == [["shared", 0, 0], ["shared", 1, 0]]
    json.dumps(cfg)  # JSON-serializable


def test_config_round_trip_with_nested_models():
    rconv.backend.clear_session()
    rconv.utils.set_random_seed(2)
    inner, _ = _dag()
    aug = rconv.Sequential([layers.RandomFlip(), layers.RandomContrast(0.2)], name="aug")
    inp = rconv.Input((5,), name="outer_in")
    out = layers.Activation("softmax", name="post")(inner(inp))
    outer = rconv.Model(inp, out, name="outer")
    cfg = outer.get_config()
    clone = Functional.from_config(json.loads(json.dumps(cfg)))
    assert json.loads(json.dumps(clone.get_config())) == json.loads(json.dumps(cfg))
    clone.set_weights(outer.get_weights())
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), outer.predict(x, verbose=0))
    # Keras writes a nested Functional's inbound tensor as node 0, and output_layers as node 1.
    inbound = cfg["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"]
    assert inbound == [inner.name, 0, 0]

    img = rconv.Input((8, 8, 3))
    m = rconv.Model(img, layers.Flatten()(aug(img)))
    clone = rconv.Model.from_config(m.get_config())
    assert [type(l).__name__ for l in clone.get_layer("aug").layers] == ["RandomFlip", "RandomContrast"]


def test_real_keras_functional_config_loads():
    from pathlib import Path
    import zipfile
    path = Path(__file__).parent / "keras_fixtures" / "small_functional.keras"
    cfg = json.loads(zipfile.ZipFile(path).read("config.json"))["config"]
    model = Functional.from_config(cfg)
    assert model.name == "small_functional" and model.layers[0].name == "img"
    mine = model.get_config()

    def strip(c):
        return [(e["name"], e["class_name"], e["inbound_nodes"]) for e in c["layers"]]

    assert strip(mine) == strip(cfg)
    assert mine["input_layers"] == cfg["input_layers"] and mine["output_layers"] == cfg["output_layers"]


def test_graph_errors():
    a, b = rconv.Input((3,)), rconv.Input((3,))
    y = layers.Dense(2)(b)
    with pytest.raises(ValueError, match="Graph disconnected"):
        rconv.Model(a, y)
    with pytest.raises(NotImplementedError):
        rconv.Model(layers.Dense(2)(a), y)
    with pytest.raises(ValueError):
        rconv.Model(a, np.zeros(3))

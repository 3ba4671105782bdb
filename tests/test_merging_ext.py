"""Merge layers beyond the contract (tests/contract_cases_merging.py runs `run_layer_test` on each, with
float64 references and finite differences): Keras's expected values (keras/src/layers/merging/
merging_test.py), the lower-case functions, Keras's broadcasting and error messages, gradients at ties,
Dot's axes and normalization, training and `.keras`/`.h5` round trips of a functional model using them,
and (`@pytest.mark.keras`) the same file loaded by real Keras 3 with equal predictions."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import rconv
import reference as ref
from contract_cases_merging import dot_ref
from keras_check import keras_python
from rconv import layers

X1 = np.array([[[0, 0], [1, 2], [0, 0], [3, 4]]], np.float32)
X2 = np.array([[[0, 0], [0, 0], [1, 2], [3, 4]]], np.float32)


@pytest.mark.parametrize("cls, fn, want", [
    (layers.Add, layers.add, [[[0, 0], [1, 2], [1, 2], [6, 8]]]),
    (layers.Subtract, layers.subtract, [[[0, 0], [1, 2], [-1, -2], [0, 0]]]),
    (layers.Average, layers.average, [[[0, 0], [0.5, 1], [0.5, 1], [3, 4]]]),
    (layers.Multiply, layers.multiply, [[[0, 0], [0, 0], [0, 0], [9, 16]]]),
    (layers.Maximum, layers.maximum, [[[0, 0], [1, 2], [1, 2], [3, 4]]]),
    (layers.Minimum, layers.minimum, [[[0, 0], [0, 0], [0, 0], [3, 4]]]),
])
def test_keras_values_and_functions(cls, fn, want):
    np.testing.assert_allclose(cls()([X1, X2]), want)
    np.testing.assert_allclose(fn([X1, X2]), want)
    a, b = rconv.Input((4, 2)), rconv.Input((4, 2))
    out = fn([a, b], name="merged")
    assert out.shape == (None, 4, 2)
    model = rconv.Model([a, b], out)
    assert type(model.get_layer("merged")) is cls
    np.testing.assert_allclose(model.predict([X1, X2], verbose=0), want)


def test_keras_concatenate_and_dot_values():
    np.testing.assert_allclose(layers.concatenate([X1, X2], axis=1),
                               [[[0, 0], [1, 2], [0, 0], [3, 4], [0, 0], [0, 0], [1, 2], [3, 4]]])
    np.testing.assert_allclose(layers.Concatenate(axis=2)([X1, X2]),
                               [[[0, 0, 0, 0], [1, 2, 0, 0], [0, 0, 1, 2], [3, 4, 3, 4]]])
    assert layers.Concatenate(axis=-1)([np.ones((1, 1, 1, 1, 5)), np.ones((1, 1, 1, 1, 4))]).shape == (1, 1, 1, 1, 9)
    with pytest.raises(ValueError, match="requires inputs with matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=-1)([np.ones((1, 2, 1, 1, 5)), np.ones((1, 1, 1, 1, 4))])
    # Keras's Dot docstring: x (1, 5, 2), y (1, 2, 5), axes=(1, 2)
    x, y = np.arange(10).reshape(1, 5, 2), np.arange(10, 20).reshape(1, 2, 5)
    np.testing.assert_allclose(layers.Dot(axes=(1, 2))([x, y]), [[[260, 360], [320, 445]]])
    np.testing.assert_allclose(layers.dot([x, y], axes=(1, 2)), [[[260, 360], [320, 445]]])
    a, b = np.random.default_rng(0).random((1, 3, 2)), np.random.default_rng(1).random((1, 1, 2, 3))
    c = layers.Dot(axes=(-2, -1))([a, b])
    assert c.shape == (1, 2, 1, 2)
    assert layers.Dot(axes=(-2, -1))([rconv.Input(batch_shape=(1, 3, 2)), rconv.Input(batch_shape=(1, 1, 2, 3))]
                                     ).shape == (1, 2, 1, 2)
    np.testing.assert_allclose(c, dot_ref((-2, -1))([a, b], []), rtol=1e-6)


@pytest.mark.parametrize("kw, shapes, out", [
    (dict(axes=-1), [(2, 4), (2, 4)], (2, 1)),  # Keras dot_2d
    (dict(axes=-1), [(2, 4, 5), (2, 4, 5)], (2, 4, 4)),  # Keras dot_3d
    (dict(axes=1, normalize=True), [(3, 6), (3, 6)], (3, 1)),
    (dict(axes=1), [(2, 3), (2, 3, 4)], (2, 4)),
])
def test_dot_against_tensordot(kw, shapes, out):
    rng = np.random.default_rng(2)
    xs = [rng.random(s).astype(np.float32) for s in shapes]
    y = layers.Dot(**kw)(xs)
    assert y.shape == out
    ref.assert_close(y, dot_ref(**kw)([ref.r32(x) for x in xs], []), "Dot", rtol=1e-6, atol_scale=1e-6)


def test_dot_normalize_is_the_cosine():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    y = np.array([[4.0, 3.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(layers.Dot(axes=1, normalize=True)([x, y]), [[24 / 25], [0.0]], rtol=1e-6)
    layer = layers.Dot(axes=1, normalize=True)
    out, ctx = layer.forward([x, y])
    (gx, gy), _ = layer.backward(ctx, np.ones_like(out))
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))  # a zero vector: Keras's clamp, no NaN


def test_broadcasting_like_keras():
    a, b = np.ones((2, 1), np.float32), np.arange(4, dtype=np.float32).reshape(2, 2)
    np.testing.assert_allclose(layers.Add()([a, b]), b + 1)
    low, high = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 4, 3), np.float32)
    y = layers.Multiply()([low, high])
    np.testing.assert_allclose(y, np.broadcast_to(low[:, None, :], (2, 4, 3)))
    assert layers.Add().compute_output_shape([(None, 3), (None, 1)]) == (None, 3)
    assert layers.Add().compute_output_shape([(None, 3), (None, 4, 3)]) == (None, 4, 3)
    layer = layers.Add(name="adder")
    with pytest.raises(ValueError, match="Add 'adder': inputs have incompatible shapes"):
        layer([np.ones((2, 3)), np.ones((2, 3, 4))])
    with pytest.raises(ValueError, match="'adder'.*different batch sizes"):
        layers.Add(name="adder")([np.ones((2, 3)), np.ones((3, 3))])


def test_merge_gradients_sum_over_broadcast_axes():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 1, 3)).astype(np.float32), rng.standard_normal((2, 4, 3)).astype(np.float32)
    layer = layers.Multiply()
    y, ctx = layer.forward([a, b])
    g = rng.standard_normal(y.shape).astype(np.float32)
    (ga, gb), weights = layer.backward(ctx, g)
    assert weights == [] and ga.shape == a.shape and gb.shape == b.shape
    np.testing.assert_allclose(ga, (g * b).sum(axis=1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(gb, g * a, rtol=1e-6)
    assert layer.backward(ctx, g, need_input_grad=False) == (None, [])


@pytest.mark.parametrize("cls", [layers.Maximum, layers.Minimum])
def test_ties_send_the_gradient_to_the_first_input(cls):
    x = np.array([[1.0, 2.0, 5.0]], np.float32)
    y = np.array([[1.0, 3.0, 5.0]], np.float32)
    z = np.array([[1.0, 0.0, 5.0]], np.float32)
    layer = cls()
    out, ctx = layer.forward([x, y, z])
    grads, _ = layer.backward(ctx, np.ones_like(out))
    first = [[1.0, 0.0, 1.0]]
    if cls is layers.Maximum:
        want = [first, [[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]]]
    else:
        want = [first, [[0.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]
    for got, w in zip(grads, want):
        np.testing.assert_array_equal(got, w)


def test_errors_name_the_layer():
    a, b, c = rconv.Input((4, 5)), rconv.Input((4, 5)), rconv.Input((4, 5))
    with pytest.raises(ValueError, match="layer should be called on exactly 2 inputs"):
        layers.Subtract()([a, b, c])
    with pytest.raises(ValueError, match="layer should be called on exactly 2 inputs"):
        layers.Subtract()([a])
    with pytest.raises(ValueError, match="Maximum 'mx'.*should be called on a list"):
        layers.Maximum(name="mx")(np.ones((2, 3)))
    with pytest.raises(ValueError, match="Dot 'd': incompatible input shapes"):
        layers.Dot(axes=1, name="d")([np.ones((2, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="Dot 'd2': axis 0 is the batch axis"):
        layers.Dot(axes=0, name="d2")([np.ones((2, 3)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="should contain two elements"):
        layers.Dot(axes=(1, 2, 3))
    with pytest.raises(TypeError, match="should be a list or an int"):
        layers.Dot(axes="1")


def _merge_model():
    a, b = rconv.Input((6,), name="a"), rconv.Input((6,), name="b")
    ha = layers.Dense(4, activation="tanh")(a)
    hb = layers.PReLU()(layers.Dense(4)(b))
    merged = layers.concatenate([
        layers.subtract([ha, hb]), layers.multiply([ha, hb]), layers.average([ha, hb, ha]),
        layers.maximum([ha, hb]), layers.minimum([ha, hb]), layers.Dot(axes=1, normalize=True)([ha, hb]),
        layers.add([ha, hb]), layers.LeakyReLU()(ha), layers.ELU(alpha=0.5)(hb),
        layers.ReLU(max_value=0.5, negative_slope=0.1)(ha)], axis=-1)
    out = layers.Dense(3)(merged)
    return rconv.Model([a, b], layers.Softmax()(out))


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    xa, xb = rng.standard_normal((n, 6)).astype(np.float32), rng.standard_normal((n, 6)).astype(np.float32)
    labels = (xa[:, 0] > xb[:, 0]).astype(np.int64) + (xa[:, 1] > 0)
    return xa, xb, labels


def test_functional_model_with_merges_trains():
    rconv.utils.set_random_seed(0)
    model = _merge_model()
    xa, xb, labels = _data(64)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.evaluate([xa, xb], labels, verbose=0)[0]
    model.fit([xa, xb], labels, epochs=40, batch_size=16, verbose=0)
    assert model.evaluate([xa, xb], labels, verbose=0)[0] < 0.7 * first


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_merge_model_saves_and_loads(ext, tmp_path):
    rconv.utils.set_random_seed(1)
    model = _merge_model()
    xa, xb, _ = _data(5)
    want = model.predict([xa, xb], verbose=0)
    model.save(tmp_path / f"m{ext}")
    loaded = rconv.models.load_model(tmp_path / f"m{ext}")
    np.testing.assert_array_equal(loaded.predict([xa, xb], verbose=0), want)
    np.testing.assert_array_equal(loaded.predict([xa[:1], xb[:1]], verbose=0), want[:1])  # batch 1


_KERAS_LOAD = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
data = np.load(sys.argv[2])
for name in ("m.keras", "m.h5"):
    model = keras.models.load_model(os.path.join(sys.argv[1], name))
    got = model.predict([data["xa"], data["xb"]], verbose=0)
    np.testing.assert_allclose(got, data["want"], rtol=1e-5, atol=1e-6, err_msg=name)
print("ok")
"""


@pytest.mark.keras
def test_real_keras_loads_the_merge_model(tmp_path):
    exe = keras_python()
    rconv.utils.set_random_seed(2)
    model = _merge_model()
    prelu = next(lay for lay in model.layers if isinstance(lay, layers.PReLU))
    prelu.set_weights([np.full((4,), 0.25, np.float32)])  # an alpha that matters
    xa, xb, _ = _data(7)
    np.savez(tmp_path / "data.npz", xa=xa, xb=xb, want=model.predict([xa, xb], verbose=0))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    result = subprocess.run([exe, "-c", _KERAS_LOAD, str(tmp_path), str(tmp_path / "data.npz")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


_KERAS_MAKE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
from keras import layers as L
keras.utils.set_random_seed(0)
a, b = keras.Input((6,)), keras.Input((6,))
ha = L.Dense(4, activation="gelu")(a)
hb = L.PReLU(alpha_initializer="random_uniform")(L.Dense(4, activation="selu")(b))
m = L.concatenate([L.subtract([ha, hb]), L.multiply([ha, hb]), L.average([ha, hb]), L.maximum([ha, hb]),
                   L.minimum([ha, hb]), L.Dot(axes=1, normalize=True)([ha, hb]), L.add([ha, hb]),
                   L.LeakyReLU()(ha), L.ELU(alpha=0.5)(hb), L.ReLU(max_value=0.5, negative_slope=0.1)(ha),
                   L.Activation("hard_sigmoid")(hb), L.Activation("swish")(ha)])
out = L.Softmax()(L.Dense(3, activation="mish")(m))
model = keras.Model([a, b], out)
rng = np.random.default_rng(0)
xa, xb = rng.standard_normal((5, 6)).astype("float32"), rng.standard_normal((5, 6)).astype("float32")
model.save(os.path.join(sys.argv[1], "k.keras"))
model.save(os.path.join(sys.argv[1], "k.h5"))
np.savez(os.path.join(sys.argv[1], "k.npz"), xa=xa, xb=xb, want=model.predict([xa, xb], verbose=0))
"""


@pytest.mark.keras
def test_rconv_loads_a_real_keras_merge_model(tmp_path):
    exe = keras_python()
    result = subprocess.run([exe, "-c", _KERAS_MAKE, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(tmp_path / "k.npz")
    for name in ("k.keras", "k.h5"):
        model = rconv.models.load_model(tmp_path / name)
        got = model.predict([data["xa"], data["xb"]], verbose=0)
        np.testing.assert_allclose(got, data["want"], rtol=1e-5, atol=1e-6, err_msg=name)


_KERAS_CONFIGS = r"""
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
specs = json.loads(sys.argv[1])
print(json.dumps([getattr(keras.layers, cls)(**kw).get_config() for cls, kw in specs]))
"""

CONFIG_SPECS = [
    ("ReLU", dict(max_value=6.0, negative_slope=0.1, threshold=0.5)), ("ReLU", {}), ("LeakyReLU", {}),
    ("LeakyReLU", dict(negative_slope=0.05)), ("ELU", dict(alpha=0.5)), ("Softmax", dict(axis=[1, 2])),
    ("PReLU", dict(shared_axes=[1, 2], alpha_regularizer="l2", alpha_constraint="non_neg")),
    ("Subtract", {}), ("Multiply", {}), ("Average", {}), ("Maximum", {}), ("Minimum", {}),
    ("Dot", dict(axes=[1, 2], normalize=True)), ("Dot", dict(axes=-1)), ("Concatenate", dict(axis=1)),
]


@pytest.mark.keras
def test_configs_equal_real_keras():
    exe = keras_python()
    specs = [(cls, {**kw, "name": f"layer{i}"}) for i, (cls, kw) in enumerate(CONFIG_SPECS)]
    result = subprocess.run([exe, "-c", _KERAS_CONFIGS, json.dumps(specs)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    for (cls, kw), want in zip(specs, theirs):
        assert json.loads(json.dumps(getattr(layers, cls)(**kw).get_config())) == want, cls

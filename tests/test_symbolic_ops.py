"""`rconv.ops` functions on KerasTensors: graph nodes saved as Keras 3 saves its operations, so models made of
`keras.ops` calls move both ways with Keras (tests/keras_fixtures/make_ops_fixtures.py), differentiated by the
same rules as the GradientTape (checked against finite differences)."""
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rconv
from keras_check import check_in_keras, keras_python
from rconv import ops

FIXTURES = Path(__file__).parent / "keras_fixtures"


def _build():
    spec = importlib.util.spec_from_file_location("make_ops_fixtures", FIXTURES / "make_ops_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def _reference(x):
    x = x.astype(np.float64)
    a = np.square(x.mean(axis=1))
    d = np.clip(a.reshape(-1, 3, 1), 0.1, 0.5)
    e = np.transpose(d, (0, 2, 1)).max(axis=-1, keepdims=True)
    s = x.sum(axis=(1, 2))[:, None]
    f = np.sqrt(np.abs(np.exp(np.log(np.tanh(s) + 1.5)))) - x.min(axis=(1, 2))[:, None]
    return [np.tanh(-e[..., 0]) * 2.0, f]


def test_keras_file_loads_with_keras_predictions():
    expected = np.load(FIXTURES / "numpy_ops_expected.npz")
    model = rconv.models.load_model(FIXTURES / "numpy_ops.keras")
    for got, want in zip(model.predict(expected["x"], verbose=0), (expected["y0"], expected["y1"])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_built_in_rconv_matches_numpy_and_keras_config(tmp_path):
    model = _build()(rconv)
    x = np.random.default_rng(1).random((5, 4, 3)).astype(np.float32)
    for got, want in zip(model.predict(x, verbose=0), _reference(x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    again = rconv.models.load_model(tmp_path / "m.keras")
    for a, b in zip(again.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)

    def op_entries(path):
        layers = json.loads(zipfile.ZipFile(path).read("config.json"))["config"]["layers"]
        return {e["name"]: (e["class_name"], e["module"], e["config"]) for e in layers
                if e["module"] == "keras.src.ops.numpy" and e["class_name"] not in ("Add", "Multiply", "GetItem",
                                                                                   "Subtract")}
    ours, keras_ = op_entries(tmp_path / "m.keras"), op_entries(FIXTURES / "numpy_ops.keras")
    assert ours == keras_


def test_gradients_through_symbolic_ops_match_finite_differences():
    model = _build()(rconv)
    x = np.random.default_rng(2).random((2, 4, 3)).astype(np.float32) + 0.2
    with rconv.GradientTape() as tape:
        tape.watch(x)
        y0, y1 = model(x)
        target = ops.sum(y0 * 3.0) + ops.sum(y1)
    got = tape.gradient(target, x)
    eps = 1e-3
    num = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        fp = [o.astype(np.float64) for o in model.predict(xp, verbose=0)]
        fm = [o.astype(np.float64) for o in model.predict(xm, verbose=0)]
        num[i] = ((fp[0].sum() * 3 + fp[1].sum()) - (fm[0].sum() * 3 + fm[1].sum())) / (2 * eps)
    np.testing.assert_allclose(got, num, rtol=1e-3, atol=2e-4)


def test_unsupported_symbolic_ops_are_clear():
    i = rconv.Input((3,))
    with pytest.raises(TypeError, match="not supported on symbolic"):
        ops.matmul(i, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="Unsupported operation"):
        from rconv.layers.tensor_ops import op_from_entry
        op_from_entry({"class_name": "Einsum", "config": {"name": "e"}})


@pytest.mark.keras
def test_rconv_file_loads_in_keras(tmp_path):
    exe = keras_python()
    model = _build()(rconv)
    x = np.random.default_rng(3).random((3, 4, 3)).astype(np.float32)
    y0, y1 = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "inputs.npz", x=x)
    np.savez(tmp_path / "expected.npz", y0, y1)
    check_in_keras(exe, tmp_path / "m.keras", tmp_path / "inputs.npz", tmp_path / "expected.npz", "--atol", "1e-5")


def test_batch_indexing_of_symbolic_tensors():
    i = rconv.Input((3, 2))
    assert i[0].shape == (3, 2)  # Keras 2's `layer.output[0]`: one sample
    with pytest.raises(ValueError, match="slicing the batch dimension"):
        i[1:]
    assert i[:, 1].shape == (None, 2)

"""`Lambda`: forward like Keras, saved in Keras's format, loaded only with safe_mode=False (it runs code), and
refused in training where a trainable weight lies upstream (rconv has no autodiff)."""
import json
import zipfile

import numpy as np
import pytest

import rconv
from rconv import layers


def _model():
    return rconv.Sequential([rconv.Input((4, 4, 1)), layers.Lambda(lambda x: x / 255.0 - 0.5),
                             layers.Flatten(), layers.Dense(2)])


def test_forward_and_shapes():
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    lam = layers.Lambda(lambda x, scale: x * scale, arguments={"scale": 3.0})
    np.testing.assert_allclose(lam(x), x * 3.0)
    inp = rconv.Input((4,))
    assert layers.Lambda(lambda t: t[:, :2])(inp).shape == (None, 2)
    assert layers.Lambda(lambda t: t, output_shape=(4,))(inp).shape == (None, 4)
    assert layers.Lambda(lambda t: t, output_shape=lambda s: (s[0], 7))(inp).shape == (None, 7)
    seen = []
    layers.Lambda(lambda t, training=None: seen.append(training) or t)(x, training=True)
    assert seen[-1] is True
    with pytest.raises(TypeError, match="callable"):
        layers.Lambda(3)


def test_trains_when_nothing_trainable_is_upstream():
    model = _model()
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(1).integers(0, 255, (8, 4, 4, 1)).astype(np.float32)
    y = np.zeros((8, 2), np.float32)
    model.fit(x, y, epochs=1, verbose=0)
    blocked = rconv.Sequential([rconv.Input((3,)), layers.Dense(3), layers.Lambda(lambda t: t * 2), layers.Dense(1)])
    blocked.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="has no backward pass"):
        blocked.fit(np.ones((2, 3), np.float32), np.ones((2, 1), np.float32), verbose=0)


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_save_and_load_needs_safe_mode_false(tmp_path, ext):
    model = _model()
    x = np.random.default_rng(2).random((2, 4, 4, 1)).astype(np.float32) * 255
    path = tmp_path / f"m.{ext}"
    model.save(path)
    with pytest.raises(ValueError, match="safe_mode=False"):
        rconv.models.load_model(path)
    loaded = rconv.models.load_model(path, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="safe_mode=False"):  # the scope ends with the load
        rconv.models.load_model(path)


def test_keras_config_format(tmp_path):
    path = tmp_path / "m.keras"
    _model().save(path)
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
    lam = [entry for entry in config["config"]["layers"] if entry["class_name"] == "Lambda"][0]
    assert lam["config"]["function"]["class_name"] == "__lambda__"
    assert set(lam["config"]["function"]["config"]) == {"code", "defaults", "closure"}
    named = layers.Lambda(rconv.activations.relu).get_config()["function"]
    assert named == {"module": "keras.activations", "class_name": "function", "config": "relu",
                     "registered_name": "function"}
    assert layers.Lambda.from_config(layers.Lambda(rconv.activations.relu).get_config()).function \
        is rconv.activations.relu


def test_garbage_bytecode_is_a_value_error(tmp_path):
    config = layers.Lambda(lambda t: t).get_config()
    config["function"]["config"]["code"] = "bm90IGNvZGU="  # "not code"
    from rconv.layers.lambda_layer import safe_mode_scope
    with safe_mode_scope(False), pytest.raises(ValueError, match="bytecode"):
        layers.Lambda.from_config(config)

"""Every layer family of issue 13 against real Keras 3.15.1, both ways.

Keras -> rconv: `layers_image.*` / `layers_seq.*` (tests/keras_fixtures/make_layers_fixtures.py: convolution
variants, resampling, padding/cropping, group/layer/batch normalization, parametric activations, merges,
regularizers, constraints, Conv1D, Permute/Reshape/RepeatVector, Dot) load with Keras's predictions, and every
layer's `get_config()` equals the config Keras wrote. rconv -> Keras (`@pytest.mark.keras`): the same models,
built in rconv by the same function, trained and saved by rconv, load in Keras with rconv's predictions.
"""
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rconv
from keras_check import check_in_keras, keras_python

FIXTURES = Path(__file__).parent / "keras_fixtures"
MODELS = {"layers_image": ("image", "probs"), "layers_seq": ("seq", "out")}


def _builders():
    spec = importlib.util.spec_from_file_location("make_layers_fixtures", FIXTURES / "make_layers_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keras_layer_configs(path):
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    return {lay["config"]["name"]: lay for lay in config["config"]["layers"]}


def _normalized(value):
    """Drop Keras's object-sharing ids and Keras 3.15's unset initializer axes and quantization config (rconv
    writes the configs older Keras versions read too), and compare lists and tuples alike (JSON has no tuples)."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if k != "shared_object_id"
                and not (k in ("input_axes", "output_axes", "quantization_config") and v is None)}
    if isinstance(value, (list, tuple)):
        return [_normalized(v) for v in value]
    return value


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_files_load_with_keras_predictions(name, ext):
    expected = np.load(FIXTURES / "layers_expected.npz")
    x_key, y_key = MODELS[name]
    model = rconv.models.load_model(FIXTURES / f"{name}.{ext}")
    np.testing.assert_allclose(model.predict(expected[x_key], verbose=0), expected[y_key], atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layer_configs_equal_keras(name):
    model = rconv.models.load_model(FIXTURES / f"{name}.keras")
    saved = _keras_layer_configs(FIXTURES / f"{name}.keras")
    for layer in model.layers:
        if layer.name in saved and saved[layer.name]["class_name"] != "InputLayer":
            assert _normalized(layer.get_config()) == _normalized(saved[layer.name]["config"]), layer.name


@pytest.mark.keras
@pytest.mark.parametrize("name", sorted(MODELS))
def test_rconv_built_models_load_in_keras(name, tmp_path):
    exe = keras_python()
    builders = _builders()
    rconv.utils.set_random_seed(5)
    model = (builders.image_model if name == "layers_image" else builders.seq_model)(rconv)
    expected = np.load(FIXTURES / "layers_expected.npz")
    x_key, y_key = MODELS[name]
    x = expected[x_key]
    y = np.arange(len(x)) % 3 if name == "layers_image" else np.ones((len(x), 2), np.float32)
    for _ in range(2):
        model.train_on_batch(x, y)
    np.savez(tmp_path / "inputs.npz", **{x_key: x})
    np.savez(tmp_path / "expected.npz", **{y_key: model.predict(x, verbose=0)})
    for ext in ("keras", "h5"):
        path = tmp_path / f"{name}.{ext}"
        model.save(path)
        check_in_keras(exe, path, tmp_path / "inputs.npz", tmp_path / "expected.npz", "--atol", "1e-5")

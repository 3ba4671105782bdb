"""Image preprocessing layers: Resizing, CenterCrop, RandomCrop, RandomBrightness
(layers/image_preprocessing.py), and a model holding every layer of this family in files.

* the layer contract (`run_layer_test`) runs on the cases of tests/contract_cases_resample.py (float64
  references with Keras's crop-box and padding formulas written again there, finite differences in
  training mode with the seeded draws reproduced in NumPy), from tests/test_layers_contract.py;
* real Keras 3.15 outputs and TensorFlow gradients (tests/keras_fixtures/resample_expected.npz, made by
  make_resample_fixtures.py) for bilinear/nearest UpSampling2D, Resizing (crop/pad to aspect ratio) and
  CenterCrop; a Keras-saved model with all twelve layers loads with Keras's predictions and configs;
* ports of Keras's tests (resizing/center_crop/random_crop/random_brightness *_test.py): values, configs,
  argument errors;
* a model with all twelve layers trains, round-trips through .keras and .h5, and (keras marker) loads in
  real Keras with equal predictions.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rconv
from contract_cases_resample import smart_resize_ref
from keras_check import check_in_keras, keras_python
from rconv import layers

FIXTURES = Path(__file__).parent / "keras_fixtures"


# --- real Keras --------------------------------------------------------------------------------------------

def _fixture_cases():
    with np.load(FIXTURES / "resample_expected.npz") as f:
        return json.loads(str(f["cases"]))


@pytest.mark.parametrize("name", list(_fixture_cases()))
def test_matches_real_keras_outputs_and_tensorflow_gradients(name):
    cls, kwargs, source = _fixture_cases()[name]
    with np.load(FIXTURES / "resample_expected.npz") as f:
        x, want, cot, want_grad = f[source], f[name], f[name + ":cot"], f[name + ":grad"]
    layer = getattr(layers, cls)(**kwargs)
    y, ctx = layer.forward(x, training=False)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-6, err_msg=f"{name}: output differs from Keras")
    grad, _ = layer.backward(ctx, cot)
    np.testing.assert_allclose(grad, want_grad, rtol=0, atol=1e-5, err_msg=f"{name}: gradient differs from TF")


def _without_object_ids(config):
    if isinstance(config, dict):
        return {k: _without_object_ids(v) for k, v in config.items() if k != "shared_object_id"}
    return config


@pytest.mark.parametrize("filename,key", [("resample_model.keras", "model"), ("resample_model.h5", "model_h5")])
def test_real_keras_model_loads_with_keras_predictions_and_configs(filename, key):
    with np.load(FIXTURES / "resample_expected.npz") as f:
        image, probs = f["model:image"], f[f"{key}:probs"]
    model = rconv.models.load_model(FIXTURES / filename)
    np.testing.assert_allclose(model.predict(image, verbose=0), probs, atol=1e-5)
    if filename.endswith(".keras"):
        saved = json.loads(zipfile.ZipFile(FIXTURES / filename).read("config.json"))["config"]["layers"]
        compared = set()
        for entry in saved:
            layer = model.get_layer(entry["config"]["name"])
            if type(layer).__module__.rsplit(".", 1)[-1] in ("reshaping", "regularization", "image_preprocessing"):
                mine = json.loads(json.dumps(layer.get_config()))
                assert mine == _without_object_ids(entry["config"]), entry["class_name"]
                compared.add(entry["class_name"])
        assert len(compared) == 12, sorted(compared)


def test_real_keras_model_resumes_training_like_keras():
    """One Adam step from a Keras-saved state: the gradients through every layer of the family (random ones
    set to the identity) must be TensorFlow's for the predictions after the step to agree."""
    with np.load(FIXTURES / "resample_expected.npz") as f:
        image, probs, after = f["model:image"], f["train:probs"], f["train:after_probs"]
        tx, ty = f["train:image"], f["train:labels"]
    model = rconv.models.load_model(FIXTURES / "resample_train.keras")
    np.testing.assert_allclose(model.predict(image, verbose=0), probs, atol=1e-5)
    model.train_on_batch(tx, ty)
    assert np.abs(after - probs).max() > 1e-3, "the step must move the predictions"
    np.testing.assert_allclose(model.predict(image, verbose=0), after, atol=1e-5)


# --- Keras tests, ported -----------------------------------------------------------------------------------

def test_resizing_keras_behaviour():
    x = np.random.default_rng(0).random((2, 10, 12, 3)).astype(np.float32)
    assert layers.Resizing(6, 6)(x).shape == (2, 6, 6, 3)
    assert layers.Resizing(6, 6)(x[0]).shape == (6, 6, 3)  # unbatched images
    assert layers.Resizing(6, 6)(rconv.Input((None, None, 3))).shape == (None, 6, 6, 3)
    # keras resizing_test: nearest down- and up-sampling, crop to aspect ratio, unbatched
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(layers.Resizing(2, 2, interpolation="nearest")(img)[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(layers.Resizing(2, 2, interpolation="nearest")(img[0])[:, :, 0], [[5, 7], [13, 15]])
    small = np.arange(4, dtype=np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(layers.Resizing(4, 4, interpolation="nearest")(small)[0, :, :, 0],
                                  [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    out = layers.Resizing(4, 2, interpolation="nearest", crop_to_aspect_ratio=True)(img)
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 2], [5, 6], [9, 10], [13, 14]])
    # keras resizing_test.test_data_stretch / tf_data: the output size whatever the input's
    assert layers.Resizing(8, 9)(np.zeros((2, 10, 12, 3), np.float32)).shape == (2, 8, 9, 3)
    # rconv: 3x3 padded to 3x5 with the fill value
    img = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    out = layers.Resizing(3, 5, pad_to_aspect_ratio=True, fill_value=0.0, interpolation="nearest")(img)
    np.testing.assert_allclose(out[0, :, :, 0], [[0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 7, 8, 9, 0]])
    layer = layers.Resizing(4, 5)
    assert layer.get_config() == {
        "name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"], "data_format": "channels_last",
        "height": 4, "width": 5, "interpolation": "bilinear", "crop_to_aspect_ratio": False,
        "pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0, "antialias": False}


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(height=0, width=3), ValueError, ["height"]),
    (dict(height=3, width=2.5), ValueError, ["width"]),
    (dict(height=3, width=3, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, ["Only one"]),
    (dict(height=3, width=3, fill_mode="reflect"), ValueError, ["fill_mode"]),
    (dict(height=3, width=3, interpolation="lanczos3"), NotImplementedError, ["lanczos3"]),
    (dict(height=3, width=3, interpolation="foo"), ValueError, ["interpolation"]),
    (dict(height=3, width=3, antialias=True), NotImplementedError, ["antialias"]),
    (dict(height=3, width=3, data_format="channels_first"), ValueError, ["channels_last"]),
])
def test_resizing_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as info:
        layers.Resizing(name="resize_probe", **kwargs)
    for word in ["resize_probe", *words]:
        assert word in str(info.value)


def test_center_crop_keras_behaviour():
    x = np.random.default_rng(1).random((2, 8, 9, 3)).astype(np.float32)
    # keras center_crop_test: a larger image is sliced around its centre; a smaller one is smart-resized
    np.testing.assert_array_equal(layers.CenterCrop(4, 5)(x), x[:, 2:6, 2:7])
    np.testing.assert_array_equal(layers.CenterCrop(4, 5)(x[0]), x[0, 2:6, 2:7])
    np.testing.assert_allclose(layers.CenterCrop(10, 4)(x), smart_resize_ref(x, (10, 4)), atol=1e-6)
    assert layers.CenterCrop(10, 4)(rconv.Input((8, 9, 3))).shape == (None, 10, 4, 3)
    # keras center_crop_test: odd and even margins, batched and not; smaller than the box = crop_to_aspect_ratio
    img = np.random.default_rng(4).random((2, 9, 11, 3)).astype(np.float32)
    for h, w in [(5, 7), (4, 11), (9, 6), (1, 1)]:
        t, left = (9 - h) // 2, (11 - w) // 2
        np.testing.assert_array_equal(layers.CenterCrop(h, w)(img), img[:, t:t + h, left:left + w])
        np.testing.assert_array_equal(layers.CenterCrop(h, w)(img[1]), img[1, t:t + h, left:left + w])
    for images in (img, img[0]):
        np.testing.assert_array_equal(layers.CenterCrop(10, 17)(images),
                                      layers.Resizing(10, 17, crop_to_aspect_ratio=True)(images))
    layer = layers.CenterCrop(4, 5)
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"],
                                  "data_format": "channels_last", "height": 4, "width": 5}


def test_random_crop_keras_behaviour():
    x = np.random.default_rng(2).random((3, 8, 9, 2)).astype(np.float32)
    layer = layers.RandomCrop(5, 6, seed=1)
    y = layer(x)  # a direct call crops at random (training defaults to True, as in Keras)
    assert y.shape == (3, 5, 6, 2)
    windows = [(t, left) for t in range(4) for left in range(4) if np.array_equal(y, x[:, t:t + 5, left:left + 6])]
    assert len(windows) == 1, "one window, the same for the whole batch"
    tops = {layer(x).tobytes() for _ in range(20)}
    assert len(tops) > 1, "the window moves between calls"
    np.testing.assert_allclose(layer(x, training=False), smart_resize_ref(x, (5, 6)), atol=1e-6)
    # keras random_crop_test.test_random_crop_full: same size -> the input, in training and inference
    np.testing.assert_array_equal(layers.RandomCrop(8, 9)(x), x)
    np.testing.assert_array_equal(layers.RandomCrop(8, 9)(x, training=False), x)
    # smaller than the target: resized, in training too
    np.testing.assert_allclose(layers.RandomCrop(10, 4)(x), smart_resize_ref(x, (10, 4)), atol=1e-6)
    # keras random_crop_test: output shapes (partial, longer height/width, unbatched), in both modes
    for shape, (h, w), out in [((1, 3, 4, 3), (2, 2), (1, 2, 2, 3)), ((3, 4, 3), (2, 2), (2, 2, 3)),
                               ((12, 8, 16, 3), (8, 8), (12, 8, 8, 3)), ((12, 8, 16, 3), (10, 8), (12, 10, 8, 3)),
                               ((12, 8, 16, 3), (8, 18), (12, 8, 18, 3)), ((2, 10, 12, 3), (8, 9), (2, 8, 9, 3))]:
        images = np.random.default_rng(6).random(shape).astype(np.float32)
        for training in (True, False):
            assert layers.RandomCrop(h, w)(images, training=training).shape == out
    rconv.utils.set_random_seed(5)
    a = layers.RandomCrop(5, 6)(x)
    rconv.utils.set_random_seed(5)
    np.testing.assert_array_equal(layers.RandomCrop(5, 6)(x), a, err_msg="set_random_seed reproduces the window")
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"],
                                  "data_format": "channels_last", "height": 5, "width": 6, "seed": 1}


def test_random_brightness_keras_behaviour():
    x = np.random.default_rng(3).uniform(0, 255, (4, 5, 5, 3)).astype(np.float32)
    layer = layers.RandomBrightness(factor=(0.1, 0.2), seed=1)  # keras: positive factors only brighten
    y = layer(x)
    delta = y - x
    unclipped = y < 255
    assert (delta[unclipped] >= 0.1 * 255 - 1e-3).all() and (delta[unclipped] <= 0.2 * 255 + 1e-3).all()
    assert (y <= 255).all() and (y >= 0).all()
    for i in range(4):  # one offset per image
        assert np.ptp(delta[i][unclipped[i]]) < 1e-3
    np.testing.assert_array_equal(layer(x, training=False), x)
    layer = layers.RandomBrightness(factor=(-0.2, -0.1), value_range=(0, 1))
    z = layer(x / 255)
    assert (z <= x / 255 + 1e-6).all() and (z >= 0).all()
    layer = layers.RandomBrightness(0.5, value_range=[10, 0], seed=2)
    assert layer.factor == (-0.5, 0.5)
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"],
                                  "data_format": "channels_last", "factor": [-0.5, 0.5], "value_range": [0, 10],
                                  "seed": 2}


def test_random_brightness_clip_gradient():
    x = np.array([[[[0.05], [0.5], [0.95]]]], np.float32)
    layer = layers.RandomBrightness((0.2, 0.2), value_range=(0, 1))
    y, ctx = layer.forward(x, training=True)
    np.testing.assert_allclose(y[0, 0, :, 0], [0.25, 0.7, 1.0], rtol=1e-6)
    grad, _ = layer.backward(ctx, np.ones_like(x))
    np.testing.assert_array_equal(grad[0, 0, :, 0], [1, 1, 0])


@pytest.mark.parametrize("factor", [1.1, -1.1, (0.1, 0.2, 0.3), [0.1], "0.2", (-2.0, -1.5)])
def test_random_brightness_bad_factor(factor):
    with pytest.raises(ValueError, match="bright_probe.*The `factor` argument should be a number"):
        layers.RandomBrightness(factor, name="bright_probe")


def test_random_brightness_bad_rank():
    with pytest.raises(ValueError, match="bright_probe.*rank 3 or 4"):
        layers.RandomBrightness(0.1, name="bright_probe")(np.random.rand(10, 10), training=True)


def test_numpy_numbers_in_arguments_give_json_configs():
    configs = [layers.RandomBrightness(np.float32(0.25), value_range=(np.int64(0), np.float32(1))).get_config(),
               layers.Resizing(np.int64(3), 4, fill_value=np.float32(0.5), pad_to_aspect_ratio=True).get_config(),
               layers.GaussianNoise(np.float64(0.1)).get_config()]
    json.dumps(configs)
    assert configs[0]["value_range"] == [0, 1] and configs[1]["height"] == 3 and configs[1]["fill_value"] == 0.5


@pytest.mark.parametrize("value_range", [(1,), (0, 1, 2), 5, ("a", 1)])
def test_random_brightness_bad_value_range(value_range):
    with pytest.raises(ValueError, match="bright_probe.*value_range"):
        layers.RandomBrightness(0.1, value_range=value_range, name="bright_probe")


# --- a model of all of them, in files ----------------------------------------------------------------------

def _family_model(crop=(8, 10)):
    """Every layer of this family in one trainable functional model (crop: RandomCrop's target)."""
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((9, 8, 3), name="image")
    h = layers.Resizing(10, 12, name="resize")(inp)
    h = layers.RandomBrightness(0.1, value_range=(-10, 10), seed=1)(h)
    h = layers.RandomCrop(*crop, seed=2)(h)
    h = layers.Conv2D(4, 3, padding="same")(h)
    h = layers.SpatialDropout2D(0.2, seed=3)(h)
    h = layers.GaussianNoise(0.05, seed=4)(h)
    h = layers.UpSampling2D((2, 1), interpolation="bilinear")(h)
    h = layers.UpSampling2D((1, 2))(h)
    h = layers.ZeroPadding2D(((1, 0), (2, 1)))(h)
    h = layers.Cropping2D(((0, 1), (1, 2)))(h)
    h = layers.CenterCrop(12, 9)(h)
    h = layers.Resizing(7, 5, crop_to_aspect_ratio=True, interpolation="nearest")(h)
    h = layers.Conv2D(2, 1)(h)
    h = layers.Reshape((-1, 2))(h)
    h = layers.Permute((2, 1))(h)
    h = layers.Flatten()(h)
    h = layers.RepeatVector(2)(layers.Dense(3)(h))
    out = layers.Dense(2, activation="softmax", name="probs")(layers.Reshape((6,))(h))
    model = rconv.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _images(n=6, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 9, 8, 3)).astype(np.float32)


def test_family_model_trains_and_round_trips_through_keras_and_h5_files(tmp_path):
    model = _family_model()
    x, y = _images(), np.arange(6) % 2
    before = [w.copy() for w in model.get_weights()]
    losses = [float(model.train_on_batch(x, y)) for _ in range(4)]
    assert np.isfinite(losses).all()
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "every weight trains"
    want = model.predict(x, verbose=0)
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        loaded = rconv.models.load_model(tmp_path / name)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), want, err_msg=name)
        for a, b in zip(model.layers, loaded.layers):
            assert type(a) is type(b) and a.get_config() == b.get_config(), f"{name}: {a.name}"


@pytest.mark.keras
def test_family_model_loads_in_real_keras(tmp_path):
    exe = keras_python()
    # Keras >= 3.8 leaves RandomCrop's inference input uncropped, so its target is the input size here.
    model = _family_model(crop=(10, 12))
    x, y = _images(), np.arange(6) % 2
    for _ in range(2):
        model.train_on_batch(x, y)
    np.savez(tmp_path / "inputs.npz", image=x)
    np.savez(tmp_path / "expected.npz", probs=model.predict(x, verbose=0))
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        check_in_keras(exe, tmp_path / name, tmp_path / "inputs.npz", tmp_path / "expected.npz")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

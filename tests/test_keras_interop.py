"""Interop with real Keras files, without Keras installed.

* `keras_fixtures/`: files written by real Keras 3 (TF backend) and tf.keras 2 (`make_fixtures.py`,
  versions in `versions.json`), with Keras's predictions: rconv must load them, predict the same, and
  resume training from the saved optimizer state exactly like Keras did.
* Hand-written files in Keras 3's `.keras` and tf.keras's legacy `.h5` layouts (configs copied from
  real Keras output), checked against a NumPy forward pass.
* `@pytest.mark.keras`: rconv-saved files loaded by real Keras in a subprocess (RCONV_KERAS_PYTHON or
  `python3` must have keras + tensorflow; skipped otherwise).
"""
import json
import subprocess
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import rconv  # noqa: E402
from rconv import layers, saving  # noqa: E402
from keras_check import keras_python  # noqa: E402

FIXTURES = Path(__file__).parent / "keras_fixtures"

REAL_FILES = [
    ("seed_convnet.keras", "seed_convnet"),        # Keras 3 Sequential + Adam state
    ("seed_convnet_sgd.h5", "seed_convnet_sgd"),   # Keras 3 legacy .h5, SGD
    ("small_functional.keras", "small_functional"),  # Keras 3 Functional, every layer type, RMSprop
    ("small_functional.h5", "small_functional"),
    ("tfkeras2_small.h5", "tfkeras2_small"),       # tf.keras 2 legacy .h5 (batch_input_shape, Custom>Adam)
]


def _load(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # functional models load as Sequential until rconv has Model(in, out)
        return saving.load_model(FIXTURES / name)


def _disable_dropout(model):
    for layer in model.layers:
        if isinstance(layer, layers.Dropout):
            layer.rate = 0.0


@pytest.mark.parametrize("filename, stem", REAL_FILES)
def test_real_keras_file_predicts_like_keras(filename, stem):
    model = _load(filename)
    x = np.load(FIXTURES / f"{stem}.x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(FIXTURES / f"{stem}.y.npy"), atol=1e-5)


@pytest.mark.parametrize("filename, stem", [f for f in REAL_FILES if f[1] != "seed_convnet_sgd"])
def test_real_keras_file_resumes_training_like_keras(filename, stem):
    """One train step from the saved optimizer state == Keras's next step (dropout off in both)."""
    model = _load(filename)
    assert model.compiled and model.optimizer.iterations == 1
    _disable_dropout(model)
    model.train_on_batch(np.load(FIXTURES / f"{stem}.train_x.npy"), np.load(FIXTURES / f"{stem}.train_y.npy"))
    x = np.load(FIXTURES / f"{stem}.x.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(FIXTURES / f"{stem}.after_step.npy"),
                               atol=1e-5)


def test_real_keras_configs_map_onto_rconv():
    seed = _load("seed_convnet.keras")
    assert [l.name for l in seed.layers] == ["conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1",
                                             "conv2d_2", "flatten", "dense", "dense_1"]
    assert type(seed.optimizer).__name__ == "Adam" and seed.loss.name == "sparse_categorical_crossentropy"
    small = _load("small_functional.h5")
    assert [type(l).__name__ for l in small.layers] == [  # a functional model lists its InputLayer (Keras 3)
        "InputLayer", "Rescaling", "Conv2D", "AveragePooling2D", "Conv2D", "ReLU", "MaxPooling2D", "Flatten",
        "Dropout", "Dense", "Activation", "Dense", "Softmax"]
    assert small.name == "small_functional" and small.layers[8].rate == 0.25
    assert type(small.optimizer).__name__ == "RMSprop"
    k2 = _load("tfkeras2_small.h5")
    assert k2.input_shape == (None, 10, 10, 1) and k2.optimizer.beta_2 == 0.999


def test_real_keras_weights_files_load_into_rconv_models():
    small = rconv.Sequential([
        rconv.Input((12, 12, 3)), layers.Rescaling(1 / 255), layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.AveragePooling2D(2), layers.Conv2D(6, 3, strides=2), layers.ReLU(),
        layers.MaxPool2D(2, strides=1, padding="same"), layers.Flatten(), layers.Dropout(0.25), layers.Dense(8),
        layers.Activation("relu"), layers.Dense(3), layers.Softmax()])
    small.load_weights(FIXTURES / "small_functional.weights.h5")
    x = np.load(FIXTURES / "small_functional.x.npy")
    np.testing.assert_allclose(small.predict(x, verbose=0), np.load(FIXTURES / "small_functional.y.npy"), atol=1e-5)
    k2 = rconv.Sequential([
        layers.Conv2D(8, 3, activation="relu", input_shape=(10, 10, 1)), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(16, activation="relu"), layers.Dropout(0.5), layers.Dense(4, activation="softmax")])
    k2.load_weights(FIXTURES / "tfkeras2_small_weights.h5")
    x = np.load(FIXTURES / "tfkeras2_small.x.npy")
    np.testing.assert_allclose(k2.predict(x, verbose=0), np.load(FIXTURES / "tfkeras2_small.y.npy"), atol=1e-5)


# --- hand-written files in Keras's layouts, vs a NumPy forward pass -------------------------------------
def _np_forward(x, k, b, k2, b2):
    """Conv2D(3x3 valid, relu) -> MaxPool 2x2 -> Flatten -> Dense softmax, in float64."""
    x = x.astype(np.float64)
    n, h, w, _ = x.shape
    oh, ow = h - 2, w - 2
    conv = np.zeros((n, oh, ow, k.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            conv[:, i, j, :] = np.einsum("nabc,abcd->nd", x[:, i:i + 3, j:j + 3, :], k)
    conv = np.maximum(conv + b, 0)
    ph, pw = oh // 2, ow // 2
    pool = conv[:, :ph * 2, :pw * 2].reshape(n, ph, 2, pw, 2, -1).max(axis=(2, 4))
    z = pool.reshape(n, -1) @ k2 + b2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 3, 2, 3)).astype(np.float32) * 0.5, rng.standard_normal(3).astype(np.float32),
            rng.standard_normal((27, 4)).astype(np.float32) * 0.5, rng.standard_normal(4).astype(np.float32))


_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None,
           "shared_object_id": 140401}
_INIT = {"module": "keras.initializers", "class_name": "GlorotUniform",
         "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}

# As Keras 3.15 writes config.json for Sequential([Input((8, 8, 2)), Conv2D(3, 3, relu), MaxPooling2D(),
# Flatten(), Dense(4, softmax)]) compiled with Adam + sparse_categorical_crossentropy.
KERAS3_CONFIG = {
    "module": "keras", "class_name": "Sequential", "registered_name": None,
    "config": {"name": "sequential", "trainable": True, "dtype": _POLICY, "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
         "config": {"batch_shape": [None, 8, 8, 2], "dtype": "float32", "sparse": False, "ragged": False,
                    "name": "input_layer", "optional": False}},
        {"module": "keras.layers", "class_name": "Conv2D", "registered_name": None,
         "config": {"name": "conv2d", "trainable": True, "dtype": _POLICY, "filters": 3, "kernel_size": [3, 3],
                    "strides": [1, 1], "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                    "groups": 1, "activation": "relu", "use_bias": True, "kernel_initializer": _INIT,
                    "bias_initializer": _ZEROS, "kernel_regularizer": None, "bias_regularizer": None,
                    "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None},
         "build_config": {"input_shape": [None, 8, 8, 2]}},
        {"module": "keras.layers", "class_name": "MaxPooling2D", "registered_name": None,
         "config": {"name": "max_pooling2d", "trainable": True, "dtype": _POLICY, "pool_size": [2, 2],
                    "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
        {"module": "keras.layers", "class_name": "Flatten", "registered_name": None,
         "config": {"name": "flatten", "trainable": True, "dtype": _POLICY, "data_format": "channels_last"},
         "build_config": {"input_shape": [None, 3, 3, 3]}},
        {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"name": "dense", "trainable": True, "dtype": _POLICY, "units": 4, "activation": "softmax",
                    "use_bias": True, "kernel_initializer": _INIT, "bias_initializer": _ZEROS,
                    "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                    "bias_constraint": None, "quantization_config": None},
         "build_config": {"input_shape": [None, 27]}}],
        "build_input_shape": [None, 8, 8, 2]},
    "build_config": {"input_shape": [None, 8, 8, 2]},
    "compile_config": {
        "optimizer": {"module": "keras.optimizers", "class_name": "Adam", "registered_name": None, "config": {
            "name": "adam", "learning_rate": 0.0010000000474974513, "weight_decay": None, "clipnorm": None,
            "global_clipnorm": None, "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
            "ema_overwrite_frequency": None, "loss_scale_factor": None, "gradient_accumulation_steps": None,
            "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}},
        "loss": "sparse_categorical_crossentropy", "loss_weights": None, "metrics": ["accuracy"],
        "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}}


def test_handwritten_keras3_file(tmp_path):
    k, b, k2, b2 = _weights()
    import io
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars").attrs["name"] = "sequential"
        for key, values in [("conv2d", [k, b]), ("max_pooling2d", []), ("flatten", []), ("dense", [k2, b2])]:
            g = f.create_group(f"layers/{key}/vars")
            g.attrs["name"] = key
            for i, v in enumerate(values):
                g.create_dataset(str(i), data=v)
        g = f.create_group("optimizer/vars")
        g.create_dataset("0", data=np.int64(7))
        g.create_dataset("1", data=np.float32(0.001))
        rng = np.random.default_rng(5)
        slots = []
        for v in (k, b, k2, b2):
            slots += [rng.standard_normal(v.shape).astype(np.float32) * 1e-3,
                      rng.random(v.shape).astype(np.float32) * 1e-4]
        for i, s in enumerate(slots):
            g.create_dataset(str(i + 2), data=s)
    with zipfile.ZipFile(tmp_path / "hand.keras", "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}))
        zf.writestr("config.json", json.dumps(KERAS3_CONFIG))
        zf.writestr("model.weights.h5", buf.getvalue())
    model = saving.load_model(tmp_path / "hand.keras")
    x = np.random.default_rng(1).random((3, 8, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), _np_forward(x, k, b, k2, b2), atol=1e-5)
    assert model.optimizer.iterations == 7
    m, v = model.optimizer._slots_for(model.layers[-1].kernel)
    np.testing.assert_array_equal(m, slots[4])
    np.testing.assert_array_equal(v, slots[5])


# As tf.keras 2.x writes `model_config` / `training_config` for the same model built with
# `Conv2D(..., input_shape=(8, 8, 2))` (so no explicit Input), compiled with Adam.
TFKERAS2_CONFIG = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 2], "dtype": "float32",
                                            "sparse": False, "ragged": False, "name": "conv2d_input"}},
    {"class_name": "Conv2D", "config": {
        "name": "conv2d", "trainable": True, "dtype": "float32", "batch_input_shape": [None, 8, 8, 2], "filters": 3,
        "kernel_size": [3, 3], "strides": [1, 1], "padding": "valid", "data_format": "channels_last",
        "dilation_rate": [1, 1], "groups": 1, "activation": "relu", "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}},
    {"class_name": "MaxPooling2D", "config": {"name": "max_pooling2d", "trainable": True, "dtype": "float32",
                                              "pool_size": [2, 2], "padding": "valid", "strides": [2, 2],
                                              "data_format": "channels_last"}},
    {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32",
                                         "data_format": "channels_last"}},
    {"class_name": "Dense", "config": {
        "name": "dense", "trainable": True, "dtype": "float32", "units": 4, "activation": "softmax",
        "use_bias": True, "kernel_initializer": {"class_name": "VarianceScaling", "config": {
            "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "bias_constraint": None}}]}}
TFKERAS2_TRAINING = {
    "loss": "sparse_categorical_crossentropy",
    "metrics": [[{"class_name": "MeanMetricWrapper",
                  "config": {"name": "accuracy", "dtype": "float32", "fn": "sparse_categorical_accuracy"}}]],
    "weighted_metrics": None, "loss_weights": None,
    "optimizer_config": {"class_name": "Custom>Adam", "config": {
        "name": "Adam", "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None, "jit_compile": False,
        "is_legacy_optimizer": False, "learning_rate": 0.0010000000474974513, "beta_1": 0.9, "beta_2": 0.999,
        "epsilon": 1e-07, "amsgrad": False}}}


@pytest.mark.parametrize("slot_order", ["tf_keras_2.11+", "keras_2_legacy"])
def test_handwritten_tfkeras2_h5_file(tmp_path, slot_order):
    k, b, k2, b2 = _weights(3)
    path = tmp_path / "hand.h5"
    rng = np.random.default_rng(9)
    names = {"conv2d": ["kernel", "bias"], "dense": ["kernel", "bias"]}
    values = {"conv2d/kernel": k, "conv2d/bias": b, "dense/kernel": k2, "dense/bias": b2}
    slots = {(var, s): rng.random(v.shape).astype(np.float32) for var, v in values.items() for s in "mv"}
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["model_config"] = json.dumps(TFKERAS2_CONFIG)
        f.attrs["training_config"] = json.dumps(TFKERAS2_TRAINING)
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = np.array([b"conv2d", b"max_pooling2d", b"flatten", b"dense"])
        mw.attrs["backend"] = "tensorflow"
        mw.attrs["keras_version"] = "2.15.0"
        for layer in ["conv2d", "max_pooling2d", "flatten", "dense"]:
            g = mw.create_group(layer)
            wn = [f"{layer}/{n}:0" for n in names.get(layer, [])]
            g.attrs["weight_names"] = np.array([n.encode() for n in wn]) if wn else np.zeros((0,))
            for n in names.get(layer, []):
                g.create_dataset(f"{layer}/{n}:0", data=values[f"{layer}/{n}"])
        if slot_order == "tf_keras_2.11+":  # [iteration, m0, v0, m1, v1, ...]
            entries = [("iteration:0", np.int64(4))] + [
                (f"Adam/{s}/{var}:0", slots[(var, s)]) for var in values for s in "mv"]
        else:  # Keras 2 OptimizerV2: [iter, all m, all v], names end in /m:0, /v:0
            entries = [("Adam/iter:0", np.int64(4))] + [
                (f"Adam/{var}/{s}:0", slots[(var, s)]) for s in "mv" for var in values]
        ow = f.create_group("optimizer_weights")
        ow.attrs["weight_names"] = np.array([n.encode() for n, _ in entries])
        for n, v in entries:
            ow.create_dataset(n, data=v)
    model = saving.load_model(path)
    x = np.random.default_rng(2).random((4, 8, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), _np_forward(x, k, b, k2, b2), atol=1e-5)
    assert model.input_shape == (None, 8, 8, 2) and model.optimizer.iterations == 4
    for var, (m_expected, v_expected) in zip(model.trainable_weights, [
            (slots[(n, "m")], slots[(n, "v")]) for n in values]):
        m, v = model.optimizer._slots_for(var)
        np.testing.assert_array_equal(m, m_expected)
        np.testing.assert_array_equal(v, v_expected)
    assert model.evaluate(x, np.arange(4), verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


# --- real Keras in a subprocess -------------------------------------------------------------------------
@pytest.mark.keras
def test_rconv_files_load_in_real_keras(tmp_path):
    exe = keras_python()
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([
        rconv.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 8)
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", model.predict(x, verbose=0))
    model.train_on_batch(x, y)
    np.save(tmp_path / "p2.npy", model.predict(x, verbose=0))
    script = textwrap.dedent("""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, keras
        d = sys.argv[1]
        x, y = np.load(f"{d}/x.npy"), np.load(f"{d}/y.npy")
        p, p2 = np.load(f"{d}/p.npy"), np.load(f"{d}/p2.npy")
        m = keras.models.load_model(f"{d}/m.keras")
        assert np.abs(m.predict(x, verbose=0) - p).max() < 1e-5
        assert int(m.optimizer.iterations) == 1
        m.train_on_batch(x, y)  # resumes from rconv's Adam state
        assert np.abs(m.predict(x, verbose=0) - p2).max() < 1e-5, np.abs(m.predict(x, verbose=0) - p2).max()
        h = keras.models.load_model(f"{d}/m.h5")
        assert np.abs(h.predict(x, verbose=0) - p).max() < 1e-5
        w = keras.models.load_model(f"{d}/m.keras", compile=False)
        w.load_weights(f"{d}/m.weights.h5")
        assert np.abs(w.predict(x, verbose=0) - p).max() < 1e-5
        print("OK", keras.__version__)
    """)
    result = subprocess.run([exe, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]

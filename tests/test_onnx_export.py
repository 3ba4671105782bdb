"""`model.export(path, format="onnx")`: the exported graph, run by onnxruntime, predicts what the rconv model
predicts (to 1e-5) for the seed convnet, the seed 003 functional convnet, a residual functional model and a
model with tensor operations; unsupported layers are named in the error."""
import numpy as np
import pytest

import rconv
from rconv import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _check(model, x, tmp_path):
    model.export(tmp_path / "m.onnx", verbose=False)
    xs = x if isinstance(x, list) else [x]
    got = _run(tmp_path / "m.onnx", {t._keras_history[0].name: a for t, a in zip(model.inputs, xs)})
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_seed_convnet(tmp_path):
    from seed_models import seed_convnet
    model = seed_convnet()
    _check(model, np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32), tmp_path)


def test_seed_003_functional_with_augmentation_and_same_padding(tmp_path):
    rconv.utils.set_random_seed(0)
    inputs = rconv.Input(shape=(37, 41, 3))
    x = rconv.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)])(inputs)
    x = layers.Rescaling(1.0 / 255)(x)
    for f in (8, 16):
        x = layers.Conv2D(filters=f, kernel_size=3, activation="relu")(x)
        x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # asymmetric TF padding
    x = layers.AveragePooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = rconv.Model(inputs=inputs, outputs=outputs)
    _check(model, (np.random.default_rng(1).random((2, 37, 41, 3), dtype=np.float32) * 255), tmp_path)


def test_residual_multi_output_model_with_batch_norm_and_operations(tmp_path):
    rconv.utils.set_random_seed(0)
    a = rconv.Input((9, 9, 4), name="a")
    b = rconv.Input((6,), name="b")
    h = layers.Conv2D(4, 3, padding="same", use_bias=False)(a)
    h = layers.BatchNormalization()(h)
    h = layers.Activation("relu")(h)
    h = layers.Add()([h, a])
    h = layers.MaxPooling2D(3, strides=2, padding="same")(h)
    g = layers.GlobalAveragePooling2D()(h)
    m = layers.GlobalMaxPooling2D()(h)
    z = layers.Concatenate()([g, m, b[:, 1:5] * 2.0 - 1.0])
    y1 = layers.Dense(3, activation="softmax", name="y1")(z)
    y2 = layers.Dense(1, name="y2")(z)
    model = rconv.Model([a, b], [y1, y2])
    rng = np.random.default_rng(2)
    data = [rng.random((8, 9, 9, 4), dtype=np.float32), rng.random((8, 6), dtype=np.float32)]
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    model.fit(data, [rng.integers(0, 3, 8), rng.random((8, 1), dtype=np.float32)], epochs=2, verbose=0)
    bn = next(layer for layer in model.layers if isinstance(layer, layers.BatchNormalization))
    assert np.any(bn.moving_mean.numpy() != 0)  # trained moving statistics are what gets exported
    _check(model, [x[:3] for x in data], tmp_path)


def test_unsupported_layer_is_named(tmp_path):
    class Custom(layers.Layer):
        def call(self, inputs, training=None):
            return inputs * 2

    x = rconv.Input((3,))
    model = rconv.Model(x, layers.Dense(2)(Custom(name="my_custom")(x)))
    with pytest.raises(ValueError, match=r"my_custom \(Custom\)"):
        model.export(tmp_path / "m.onnx", verbose=False)
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ValueError, match="format"):
        model.export(tmp_path / "m.pb", format="tf_saved_model")

"""Shape and noise layers: UpSampling2D, ZeroPadding2D, Cropping2D, Reshape, Permute, RepeatVector
(layers/reshaping.py), SpatialDropout2D, GaussianNoise (layers/regularization.py).

* the layer contract (`run_layer_test`: float64 references, finite differences, configs, .keras files, shapes,
  bad inputs) runs on the cases of tests/contract_cases_resample.py, from tests/test_layers_contract.py;
* ports of Keras's tests (keras/src/layers/reshaping/*_test.py, regularization/*_test.py): their inputs,
  expected values, shapes, configs and argument errors;
* noise layers: inference is the identity, `set_random_seed` reproduces the unseeded masks, the dropped
  channels are whole feature maps scaled by 1/(1-rate).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

import rconv
from rconv import layers


# --- Keras tests, ported -------------------------------------------------------------------------------

def test_upsampling_2d_keras_values():
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 1, 3)
    expected = np.array([[[[0, 1, 2], [0, 1, 2]], [[3, 4, 5], [3, 4, 5]]],
                         [[[6, 7, 8], [6, 7, 8]], [[9, 10, 11], [9, 10, 11]]]], np.float32)
    np.testing.assert_array_equal(layers.UpSampling2D(size=(1, 2))(x), expected)
    rng = np.random.default_rng(0)
    inputs = rng.random((2, 11, 12, 2)).astype(np.float32)
    for rows, cols in [(2, 2), (2, 3), (1, 1)]:
        out = layers.UpSampling2D(size=(rows, cols))(inputs)
        np.testing.assert_array_equal(out, np.repeat(np.repeat(inputs, rows, axis=1), cols, axis=2))
        assert layers.UpSampling2D((rows, cols), interpolation="bilinear")(inputs).shape == (2, 11 * rows, 12 * cols, 2)
    assert layers.UpSampling2D(interpolation="Bilinear").get_config()["interpolation"] == "bilinear"
    with pytest.raises(NotImplementedError, match="bicubic"):
        layers.UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="cubic-ish")


def test_upsampling_2d_config_and_symbolic_shape():
    layer = layers.UpSampling2D(size=3)
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"],
                                  "size": (3, 3), "data_format": "channels_last", "interpolation": "nearest"}
    assert layers.UpSampling2D((2, 3))(rconv.Input((None, 4, 2))).shape == (None, None, 12, 2)
    with pytest.raises(ValueError, match="size"):
        layers.UpSampling2D(size=(0, 2))


def test_zero_padding_2d_keras_values():
    rng = np.random.default_rng(1)
    inputs = rng.random((1, 2, 3, 4)).astype(np.float32)
    out = layers.ZeroPadding2D(padding=((1, 2), (3, 4)))(inputs)
    for index in [0, -1, -2]:
        np.testing.assert_array_equal(out[:, index], 0.0)
    for index in [0, 1, 2, -1, -2, -3, -4]:
        np.testing.assert_array_equal(out[:, :, index], 0.0)
    np.testing.assert_array_equal(out[:, 1:-2, 3:-4], inputs)
    for padding in [((2, 2), (2, 2)), (2, 2), 2]:
        out = layers.ZeroPadding2D(padding=padding)(inputs)
        np.testing.assert_array_equal(out[:, 2:-2, 2:-2], inputs)
        for index in [0, 1, -1, -2]:
            np.testing.assert_array_equal(out[:, index], 0.0)
            np.testing.assert_array_equal(out[:, :, index], 0.0)
    padded = layers.ZeroPadding2D(((1, 2), (3, 4)))(rconv.Input(batch_shape=(1, 2, None, 4)))
    assert padded.shape == (1, 5, None, 4)
    layer = layers.ZeroPadding2D(padding=(1, 2))
    assert layer.get_config() == {"data_format": "channels_last", "dtype": layer.get_config()["dtype"],
                                  "name": layer.name, "padding": ((1, 1), (2, 2)), "trainable": True}


@pytest.mark.parametrize("padding", [(1,), (1, 2, 3), "1", ((1, 2), (3, 4, 5)), ((1, 2), (3, -4)), ((1, 2), "3"),
                                     -1, 1.5])
def test_zero_padding_2d_bad_padding(padding):
    with pytest.raises(ValueError, match="ZeroPadding2D .*padding"):
        layers.ZeroPadding2D(padding)


@pytest.mark.parametrize("cropping,expected", [
    (((1, 2), (3, 4)), ((1, 5), (3, 5))), (((2, 2), (2, 2)), ((2, 5), (2, 7))), ((2, 2), ((2, 5), (2, 7))),
    (2, ((2, 5), (2, 7))), (((0, 2), (0, 4)), ((0, 5), (0, 5))), (((1, 0), (3, 0)), ((1, 7), (3, 9))),
    (((1, 0), (3, 4)), ((1, 7), (3, 5))), (((1, 2), (3, 0)), ((1, 5), (3, 9))),
])
def test_cropping_2d_keras_values(cropping, expected):
    inputs = np.random.default_rng(2).random((3, 7, 9, 5)).astype(np.float32)
    (r0, r1), (c0, c1) = expected
    np.testing.assert_array_equal(layers.Cropping2D(cropping)(inputs), inputs[:, r0:r1, c0:c1])


def test_cropping_2d_shapes_and_errors():
    assert layers.Cropping2D(((1, 2), (3, 4)))(rconv.Input(batch_shape=(1, 7, None, 5))).shape == (1, 4, None, 5)
    for cropping in [((3, 6), (0, 0)), ((0, 0), (5, 4))]:
        layer = layers.Cropping2D(cropping=cropping, name="crop_probe")
        with pytest.raises(ValueError, match=r"crop_probe.*smaller than.*\(3, 7, 9, 5\)"):
            layer(rconv.Input(batch_shape=(3, 7, 9, 5)))
        with pytest.raises(ValueError, match="crop_probe"):
            layers.Cropping2D(cropping=cropping, name="crop_probe")(np.zeros((3, 7, 9, 5), np.float32))
    for bad in [(1,), (1, 2, 3), "1", ((1, 2), (3, 4, 5)), ((1, 2), (3, -4)), ((1, 2), "3"), -1]:
        with pytest.raises(ValueError, match="Cropping2D"):
            layers.Cropping2D(cropping=bad)


@pytest.mark.parametrize("target,shape,expected", [
    ((8, 1), (3, 2, 4), (3, 8, 1)), ((8,), (3, 2, 4), (3, 8)), ((2, 4), (3, 8), (3, 2, 4)),
    ((-1, 1), (3, 2, 4), (3, 8, 1)), ((1, -1), (3, 2, 4), (3, 1, 8)), ((-1,), (3, 2, 4), (3, 8)),
    ((2, -1), (3, 2, 4), (3, 2, 4)),
])
def test_reshape_keras_shapes(target, shape, expected):
    assert layers.Reshape(target)(np.zeros(shape, np.float32)).shape == expected
    assert layers.Reshape(target)(rconv.Input(shape[1:])).shape == (None,) + expected[1:]


def test_reshape_dynamic_dims_and_errors():
    assert layers.Reshape((8,))(rconv.Input((2, 4))).shape == (None, 8)
    assert layers.Reshape((-1, 8))(rconv.Input((6, 4))).shape == (None, 3, 8)
    assert layers.Reshape((-1, 3))(rconv.Input(batch_shape=(4, 6, None, 3))).shape == (4, None, 3)
    assert layers.Reshape((3, 5))(rconv.Input(batch_shape=(2, None))).shape == (2, 3, 5)
    layer = layers.Reshape((-1, 8))
    assert layer(np.ones((1, 6, 4), np.float32)).shape == (1, 3, 8)
    assert layer(np.ones((1, 10, 4), np.float32)).shape == (1, 5, 8)
    with pytest.raises(ValueError, match=r"non-negative integer.*-1.*target_shape=\(-2, 5\)"):
        layers.Reshape(target_shape=(-2, 5))
    with pytest.raises(ValueError, match=r"at most one unknown dimension.*target_shape=\(-1, -1, 5\)"):
        layers.Reshape(target_shape=(-1, -1, 5))
    with pytest.raises(ValueError, match=r"reshape_probe.*total size.*\(3, 3\).*\(2, -1\)"):
        layers.Reshape((2, -1), name="reshape_probe")(np.zeros((1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"reshape_probe2.*total size.*\(4, 5\)"):
        layers.Reshape((3, 7), name="reshape_probe2")(rconv.Input((4, 5)))


def test_permute_keras_values_and_errors():
    inputs = np.random.default_rng(3).random((10, 3, 5, 5)).astype(np.float32)
    inputs *= inputs >= 0.8
    np.testing.assert_array_equal(layers.Permute((3, 1, 2))(inputs), np.transpose(inputs, (0, 3, 1, 2)))
    assert layers.Permute((3, 1, 2))(rconv.Input((3, None, 5))).shape == (None, 5, 3, None)
    assert layers.Permute((2, 1)).get_config()["dims"] == (2, 1)
    for dims in [(1, 3), (0, 1), (2, 2), ("a", 1)]:
        with pytest.raises(ValueError, match="dims"):
            layers.Permute(dims)


def test_repeat_vector_keras_values_and_errors():
    inputs = np.random.default_rng(4).random((2, 5)).astype(np.float32)
    np.testing.assert_array_equal(layers.RepeatVector(3)(inputs), np.repeat(inputs.reshape(2, 1, 5), 3, axis=1))
    assert layers.RepeatVector(n=3)(rconv.Input(batch_shape=(None, 5))).shape == (None, 3, 5)
    assert layers.RepeatVector(n=3)(rconv.Input(batch_shape=(2, None))).shape == (2, 3, None)
    for n in ("3", 3.5, [3], True):
        with pytest.raises(TypeError, match="Expected an integer value for `n`"):
            layers.RepeatVector(n=n)
    for n in (0, -3):
        with pytest.raises(ValueError, match="should be a positive integer"):
            layers.RepeatVector(n=n)


def test_autoencoder_with_bilinear_upsampling_learns():
    """Conv -> MaxPool -> UpSampling2D(bilinear) -> pad/crop -> Conv reconstructs smooth images (fit)."""
    rconv.utils.set_random_seed(0)
    x = rconv.ops.resize(np.random.default_rng(0).uniform(-1, 1, (64, 4, 4, 1)).astype(np.float32), (8, 8))
    inp = rconv.Input((8, 8, 1))
    h = layers.MaxPooling2D(2)(layers.Conv2D(8, 3, padding="same", activation="relu")(inp))
    h = layers.Cropping2D(1)(layers.ZeroPadding2D(1)(layers.UpSampling2D(2, interpolation="bilinear")(h)))
    model = rconv.Model(inp, layers.Conv2D(1, 3, padding="same")(h))
    model.compile(optimizer=rconv.optimizers.Adam(1e-2), loss="mse")
    losses = model.fit(x, x, epochs=30, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.1 * losses[0], f"the autoencoder did not learn: {losses[0]:.4f} -> {losses[-1]:.4f}"


# --- noise layers ---------------------------------------------------------------------------------------

def test_spatial_dropout_2d_drops_whole_channels_and_is_identity_at_inference():
    x = np.random.default_rng(5).uniform(0.5, 1.5, (4, 5, 6, 32)).astype(np.float32)
    layer = layers.SpatialDropout2D(0.5)
    np.testing.assert_array_equal(layer(x), x)  # a direct call is inference, as in Keras
    np.testing.assert_array_equal(layer(x, training=False), x)
    rconv.utils.set_random_seed(7)
    y, ctx = layer.forward(x, training=True)
    kept = (y != 0).all(axis=(1, 2))
    assert ((y == 0).all(axis=(1, 2)) | kept).all(), "a channel must be dropped or kept as a whole"
    np.testing.assert_allclose(y[kept.nonzero()[0], :, :, kept.nonzero()[1]],
                               2 * x[kept.nonzero()[0], :, :, kept.nonzero()[1]], rtol=1e-6)
    assert 0.25 < kept.mean() < 0.75
    g = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(ctx, g)[0], y / x * g)
    rconv.utils.set_random_seed(7)
    np.testing.assert_array_equal(layer.forward(x, training=True)[0], y, err_msg="set_random_seed reproduces")
    rconv.utils.set_random_seed(8)
    assert not np.array_equal(layer.forward(x, training=True)[0], y)


def test_spatial_dropout_2d_keras_config_and_errors():
    layer = layers.SpatialDropout2D(0.5, seed=1337, name="sd")
    assert layer.get_config() == {"rate": 0.5, "seed": 1337, "name": "sd", "dtype": "float32",
                                  "data_format": "channels_last"}
    clone = layers.SpatialDropout2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="rate"):
        layers.SpatialDropout2D(1.5)
    with pytest.raises(ValueError, match="channels_last"):
        layers.SpatialDropout2D(0.5, data_format="channels_first")
    assert layers.SpatialDropout2D(0.5)(rconv.Input((3, 2, 4)), training=True).shape == (None, 3, 2, 4)
    with pytest.raises(ValueError, match="sd2.*ndim=4"):
        layers.SpatialDropout2D(0.5, name="sd2")(np.zeros((2, 3, 4), np.float32))


def test_gaussian_noise_keras_statistics_and_config():
    inputs = np.ones((20, 500), np.float32)
    layer = layers.GaussianNoise(0.3, seed=1337)
    out = layer(inputs, training=True)
    assert abs(float(np.std(out)) - 0.3) < 0.02
    assert abs(float(np.mean(out)) - 1.0) < 0.02
    np.testing.assert_array_equal(layer(inputs), inputs)
    np.testing.assert_array_equal(layer(inputs, training=False), inputs)
    assert layer.get_config() == {"name": layer.name, "trainable": True, "dtype": layer.get_config()["dtype"],
                                  "stddev": 0.3, "seed": 1337}
    rconv.utils.set_random_seed(3)
    a = layers.GaussianNoise(0.1).forward(inputs, training=True)[0]
    rconv.utils.set_random_seed(3)
    np.testing.assert_array_equal(layers.GaussianNoise(0.1).forward(inputs, training=True)[0], a)
    for stddev in (-0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match="stddev"):
            layers.GaussianNoise(stddev)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

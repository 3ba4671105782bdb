"""Augmentation layers vs plain NumPy references; training/inference switch; seeding; configs."""
import numpy as np
import pytest

import rconv
from rconv import layers


def _images(n=3, h=8, w=8, c=2, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c), dtype=np.float32) * 255


def test_random_flip_exact():
    x = _images(n=16)
    for mode, flip in [("horizontal", lambda a: a[:, ::-1]), ("vertical", lambda a: a[::-1]),
                       ("horizontal_and_vertical", lambda a: a[::-1, ::-1])]:
        y = layers.RandomFlip(mode, seed=5)(x, training=True)
        flips = np.random.default_rng(5).uniform(size=len(x)) <= 0.5  # Keras: uniform <= 0.5 flips
        assert 0 < flips.sum() < len(x)
        for i in range(len(x)):
            np.testing.assert_array_equal(y[i], flip(x[i]) if flips[i] else x[i])


def test_random_rotation_90_degrees_nearest_is_rot90():
    x = _images(n=4, h=9, w=9, c=3)
    y = layers.RandomRotation((0.25, 0.25), interpolation="nearest")(x, training=True)
    np.testing.assert_array_equal(y, np.rot90(x, k=1, axes=(1, 2)))  # counter-clockwise
    y = layers.RandomRotation((-0.25, -0.25), interpolation="nearest")(x, training=True)
    np.testing.assert_array_equal(y, np.rot90(x, k=-1, axes=(1, 2)))
    y = layers.RandomRotation((0.5, 0.5), interpolation="nearest", fill_mode="constant")(x, training=True)
    np.testing.assert_array_equal(y, x[:, ::-1, ::-1])


def test_random_translation_whole_pixels_constant_fill():
    x = _images(n=2, h=8, w=8)
    layer = layers.RandomTranslation((0.25, 0.25), (-0.125, -0.125), fill_mode="constant", fill_value=-1.0)
    y = layer(x, training=True)
    expected = np.full_like(x, -1.0)
    expected[:, 2:, :7] = x[:, :6, 1:]  # down by 2 rows, left by 1 column
    np.testing.assert_array_equal(y, expected)


def _bilinear_reference(img, zx, zy):
    """float64 NumPy bilinear resampling at Keras's zoom coordinates (all sample points inside)."""
    h, w, c = img.shape
    out = np.zeros((h, w, c))
    for yo in range(h):
        for xo in range(w):
            xi = zx * xo + (w - 1) / 2.0 * (1.0 - zx)
            yi = zy * yo + (h - 1) / 2.0 * (1.0 - zy)
            x0, y0 = int(np.floor(xi)), int(np.floor(yi))
            fx, fy = xi - x0, yi - y0

            def get(yy, xx):
                return img[yy, xx] if 0 <= yy < h and 0 <= xx < w else 0.0

            out[yo, xo] = ((1 - fy) * ((1 - fx) * get(y0, x0) + fx * get(y0, x0 + 1))
                           + fy * ((1 - fx) * get(y0 + 1, x0) + fx * get(y0 + 1, x0 + 1)))
    return out


def test_random_zoom_vs_numpy_bilinear():
    x = _images(n=2, h=9, w=7, c=2)
    y = layers.RandomZoom((-0.4, -0.4), (-0.2, -0.2), fill_mode="constant")(x, training=True)  # zoom in
    for i in range(len(x)):
        np.testing.assert_allclose(y[i], _bilinear_reference(x[i].astype(np.float64), 0.8, 0.6),
                                   rtol=1e-5, atol=1e-3)
    # Without width_factor the height zoom is used for both axes (aspect ratio kept).
    y = layers.RandomZoom((-0.5, -0.5), fill_mode="constant")(x, training=True)
    np.testing.assert_allclose(y[0], _bilinear_reference(x[0].astype(np.float64), 0.5, 0.5), rtol=1e-5, atol=1e-3)


def test_random_contrast_reference():
    x = _images(n=5)
    y = layers.RandomContrast((0.5, 0.5), seed=3)(x, training=True)
    c = np.random.default_rng(3).uniform(0.5, 1.5, size=5)
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    expected = np.clip((x - mean) * c[:, None, None, None] + mean, 0, 255)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-3)
    assert layers.RandomContrast(0.2).factor == (0.0, 0.2)  # Keras 3: a number f gives (0, f)


ALL = [lambda **k: layers.RandomFlip(**k), lambda **k: layers.RandomRotation(0.2, **k),
       lambda **k: layers.RandomZoom(0.3, **k), lambda **k: layers.RandomTranslation(0.2, 0.3, **k),
       lambda **k: layers.RandomContrast(0.4, **k)]


@pytest.mark.parametrize("make", ALL)
def test_identity_at_inference_and_seeding(make):
    x = _images(n=6)
    layer = make(seed=11)
    out, ctx = layer.forward(x, training=False)
    assert out is x and ctx is None
    a = make(seed=11)(x, training=True)
    b = make(seed=11)(x, training=True)
    c = make(seed=12)(x, training=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, x)
    assert a.dtype == np.float32 and a.shape == x.shape
    # Unseeded layers draw from the global generator: set_random_seed makes them repeatable.
    rconv.utils.set_random_seed(4)
    u1 = make()(x, training=True)
    rconv.utils.set_random_seed(4)
    u2 = make()(x, training=True)
    np.testing.assert_array_equal(u1, u2)
    # Unbatched images work too.
    assert make(seed=1)(x[0], training=True).shape == x[0].shape


@pytest.mark.parametrize("make", ALL)
def test_config_round_trip(make):
    layer = make(seed=3)
    cfg = layer.get_config()
    assert cfg["data_format"] == "channels_last" and cfg["seed"] == 3
    clone = type(layer).from_config(cfg)
    assert clone.get_config() == cfg
    x = _images(n=4)
    np.testing.assert_array_equal(clone(x, training=True), layer(x, training=True))


def test_keras3_config_keys():
    rot = layers.RandomRotation(0.1, name="r").get_config()
    assert rot["factor"] == [-0.1, 0.1] and rot["fill_mode"] == "reflect" and rot["interpolation"] == "bilinear"
    assert list(rot)[:4] == ["name", "trainable", "dtype", "data_format"]
    zoom = layers.RandomZoom(0.2).get_config()
    assert zoom["height_factor"] == 0.2 and zoom["width_factor"] is None and zoom["fill_value"] == 0.0
    assert layers.RandomFlip("horizontal").get_config()["mode"] == "horizontal"
    with pytest.raises(ValueError):
        layers.RandomZoom(-1.0)
    with pytest.raises(NotImplementedError):
        layers.RandomRotation(0.1, fill_mode="mirror")


def test_inside_a_model_only_in_training():
    rconv.utils.set_random_seed(0)
    aug = rconv.Sequential([rconv.Input((8, 8, 2)), layers.RandomFlip(), layers.RandomRotation(0.3)])
    x = _images(n=4)
    np.testing.assert_array_equal(aug.predict(x, verbose=0), x)
    assert not np.array_equal(aug(x, training=True), x)
    assert not np.array_equal(aug(x), x)  # like Keras: an eager call without `training` augments

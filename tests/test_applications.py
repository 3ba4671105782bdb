"""rconv.applications.VGG16: Keras's architecture, names, parameter counts, weight files, preprocess_input."""
import numpy as np
import pytest

import rconv
from rconv.applications import VGG16
from rconv.applications.vgg16 import preprocess_input

CONV_NAMES = [f"block{b}_conv{i}" for b, n in [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)] for i in range(1, n + 1)]


def _conv_base():
    return VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))


def test_vgg16_notop_names_shapes_params():
    model = _conv_base()
    names = [l.name for l in model.layers]
    assert type(model.layers[0]).__name__ == "InputLayer" and model.name == "vgg16"
    assert [n for n in names if "conv" in n] == CONV_NAMES
    assert [n for n in names if "pool" in n] == [f"block{b}_pool" for b in range(1, 6)]
    assert names[-1] == "block5_pool" and len(names) == 19
    assert model.count_params() == 14_714_688  # Keras: VGG16(include_top=False, input_shape=(32, 32, 3))
    assert model.output_shape == (None, 1, 1, 512)
    assert model.get_layer("block3_conv1").kernel.shape == (3, 3, 128, 256)


def test_vgg16_top_pooling_and_errors():
    top = VGG16(weights=None, input_shape=(32, 32, 3), classes=10)
    assert [l.name for l in top.layers][-4:] == ["flatten", "fc1", "fc2", "predictions"]
    assert top.count_params() == 14_714_688 + 512 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 10 + 10
    assert top.output_activation_name == "softmax"
    assert VGG16(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg").output_shape == (None, 512)
    assert VGG16(include_top=False, weights=None, pooling="max").output_shape == (None, 512)
    assert VGG16(include_top=False, weights=None).layers[0].batch_shape == (None, None, None, 3)
    with pytest.raises(ValueError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        VGG16(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="at least 32"):
        VGG16(include_top=False, weights=None, input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="weights"):
        VGG16(weights="/nonexistent/file.h5")


def test_vgg16_loads_keras2_h5_weights_file(tmp_path):
    """Keras 2's application weight files: root `layer_names`, one group per layer with `weight_names`."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    model = _conv_base()
    path = tmp_path / "vgg16_notop.h5"
    expected = {}
    with h5py.File(path, "w") as f:
        names = ["input_1"] + [l.name for l in model.layers[1:]]
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for layer, name in zip(model.layers, names):
            g = f.create_group(name)
            wnames = [f"{name}/{v.name}:0" for v in layer.weights]
            g.attrs["weight_names"] = np.array([w.encode() for w in wnames])
            for wname, v in zip(wnames, layer.weights):
                arr = rng.normal(size=v.shape).astype(np.float32)
                g.create_dataset(wname, data=arr)
                expected[v.path] = arr
    loaded = VGG16(include_top=False, weights=str(path), input_shape=(32, 32, 3))
    assert len(loaded.weights) == 26
    for v in loaded.weights:
        np.testing.assert_array_equal(v.numpy(), expected[v.path])


def test_preprocess_input_caffe():
    """Keras semantics: a float array is updated in place (float64 stays float64); ints become float32."""
    x = np.random.default_rng(0).random((2, 4, 4, 3)) * 255
    y = preprocess_input(x.copy())
    np.testing.assert_allclose(y[..., 0], x[..., 2] - 103.939, rtol=1e-12)
    np.testing.assert_allclose(y[..., 1], x[..., 1] - 116.779, rtol=1e-12)
    np.testing.assert_allclose(y[..., 2], x[..., 0] - 123.68, rtol=1e-12)
    assert y.dtype == np.float64
    z = preprocess_input(x.astype(np.uint8))
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[..., 0], x.astype(np.uint8)[..., 2] - np.float32(103.939), rtol=1e-6)


def test_vgg16_feature_extraction_fine_tuning_pattern():
    """The book's pattern: freeze the conv base, train a head; then unfreeze the last block and recompile."""
    rconv.utils.set_random_seed(0)
    conv_base = _conv_base()
    conv_base.trainable = False
    inputs = rconv.Input((32, 32, 3))
    x = rconv.layers.Flatten()(conv_base(inputs))
    outputs = rconv.layers.Dense(1, activation="sigmoid")(x)
    model = rconv.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    assert len(model.trainable_weights) == 2
    rng = np.random.default_rng(0)
    xs, ys = rng.random((4, 32, 32, 3), dtype=np.float32) * 255, rng.integers(0, 2, (4, 1))
    before = conv_base.get_weights()
    model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, conv_base.get_weights()))
    conv_base.trainable = True
    for layer in conv_base.layers[:-4]:
        layer.trainable = False
    model.compile(optimizer="rmsprop", loss="binary_crossentropy")
    assert len(model.trainable_weights) == 2 + 6  # block5's three convs + the head
    model.fit(xs, ys, epochs=1, batch_size=4, verbose=0)
    after = conv_base.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before[:20], after[:20]))
    assert not np.array_equal(before[-2], after[-2])

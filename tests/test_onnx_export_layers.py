"""ONNX export of issue 13's layers: onnxruntime predicts what rconv predicts (to 1e-5) for models with every
layer family (the same builders as the real-Keras fixtures), transposed convolutions over paddings, strides,
output paddings and dilations, the parametric activations and resizing modes; what ONNX cannot express is
refused with the layer's name."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import rconv
from rconv import layers

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
FIXTURES = Path(__file__).parent / "keras_fixtures"


def _check(model, x, tmp_path, atol=1e-5):
    model.export(tmp_path / "m.onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {model.inputs[0]._keras_history[0].name: x})
    want = model.predict(x, verbose=0)
    want = want if isinstance(want, list) else [want]
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol)


def _builders():
    spec = importlib.util.spec_from_file_location("make_layers_fixtures", FIXTURES / "make_layers_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["image_model", "seq_model"])
def test_models_with_every_layer_family(name, tmp_path):
    builders = _builders()
    rconv.utils.set_random_seed(1)
    model = getattr(builders, name)(rconv)
    if name == "seq_model":  # Dot has no ONNX converter: the rest of the sequence layers
        with pytest.raises(ValueError, match=r"dot \(Dot\)"):
            model.export(tmp_path / "m.onnx", verbose=False)
        return
    # train a little so BatchNormalization's moving statistics and every weight move off their initial values
    x = np.random.default_rng(0).random((4, 12, 12, 3)).astype(np.float32)
    model.train_on_batch(x, np.arange(4) % 3)
    _check(model, x, tmp_path)


@pytest.mark.parametrize("kw,shape", [
    (dict(filters=3, kernel_size=3, strides=2, padding="same"), (2, 5, 6, 2)),
    (dict(filters=2, kernel_size=4, strides=2, padding="same"), (1, 4, 4, 3)),
    (dict(filters=2, kernel_size=3, strides=1, padding="valid"), (1, 5, 5, 1)),
    (dict(filters=2, kernel_size=2, strides=3, padding="valid"), (2, 3, 4, 2)),  # stride > kernel
    (dict(filters=2, kernel_size=3, strides=2, padding="valid", output_padding=1), (1, 4, 5, 2)),
    (dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0), (1, 4, 5, 2)),
    (dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"), (1, 7, 7, 2)),
])
def test_conv2d_transpose(kw, shape, tmp_path):
    rconv.utils.set_random_seed(2)
    model = rconv.Sequential([rconv.Input(shape[1:]), layers.Conv2DTranspose(activation="relu", **kw)])
    _check(model, np.random.default_rng(1).standard_normal(shape).astype(np.float32), tmp_path)


@pytest.mark.parametrize("layer", [
    layers.ReLU(max_value=6.0), layers.ReLU(negative_slope=0.1, threshold=0.5), layers.ReLU(max_value=1.0,
                                                                                           negative_slope=0.2),
    layers.LeakyReLU(0.3), layers.ELU(0.7), layers.Softmax(axis=1), layers.Activation("gelu"),
    layers.Activation(rconv.activations.Configured(rconv.activations.gelu, approximate=True)),
    layers.Activation("swish"), layers.Activation("hard_sigmoid"), layers.Activation("hard_silu"),
    layers.Activation("mish"), layers.Activation("selu"), layers.Activation("softplus"),
    layers.Activation("softsign"), layers.Activation("relu6"), layers.Activation("log_softmax"),
    layers.Activation("exponential"), layers.PReLU(shared_axes=[1]),
    layers.Conv1D(3, 3, padding="causal", dilation_rate=2), layers.Conv1D(4, 2, strides=2, groups=2),
])
def test_activations_and_conv1d(layer, tmp_path):
    rconv.utils.set_random_seed(3)
    model = rconv.Sequential([rconv.Input((5, 4)), layer])
    if isinstance(layer, layers.PReLU):
        model.layers[-1].alpha.assign(np.random.default_rng(5).standard_normal((1, 4)).astype(np.float32))
    _check(model, np.random.default_rng(4).standard_normal((2, 5, 4)).astype(np.float32) * 3, tmp_path)


@pytest.mark.parametrize("layer", [
    layers.UpSampling2D((2, 3)), layers.UpSampling2D(2, interpolation="bilinear"),
    layers.Resizing(7, 5), layers.Resizing(3, 4, interpolation="nearest"), layers.Resizing(11, 9, "nearest"),
    layers.ZeroPadding2D(((1, 2), (0, 3))), layers.Cropping2D(((1, 0), (2, 1))), layers.CenterCrop(3, 4),
    layers.Reshape((-1, 3)), layers.Permute((2, 1, 3)), layers.GroupNormalization(groups=3),
    layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2),
    layers.SeparableConv2D(4, 3, padding="valid", activation="relu"),
    layers.Conv2D(6, 3, groups=3, dilation_rate=2, padding="same"),
])
def test_image_layers(layer, tmp_path):
    rconv.utils.set_random_seed(6)
    model = rconv.Sequential([rconv.Input((6, 7, 3)), layer])
    if isinstance(layer, layers.GroupNormalization):
        layer.gamma.assign(np.array([0.5, 2.0, -1.0], np.float32))
        layer.beta.assign(np.array([0.1, 0.0, 0.3], np.float32))
    _check(model, np.random.default_rng(7).standard_normal((2, 6, 7, 3)).astype(np.float32), tmp_path)


def test_repeat_vector(tmp_path):
    model = rconv.Sequential([rconv.Input((4,)), layers.RepeatVector(3)])
    _check(model, np.random.default_rng(8).standard_normal((2, 4)).astype(np.float32), tmp_path)


def test_unexportable_layers_are_named(tmp_path):
    model = rconv.Sequential([rconv.Input((6, 6, 3)), layers.Resizing(4, 4, crop_to_aspect_ratio=True)])
    with pytest.raises(ValueError, match="crop/pad to aspect ratio"):
        model.export(tmp_path / "m.onnx", verbose=False)
    inp = rconv.Input((3,))
    merged = layers.Add()([inp, layers.Reshape((1, 3))(inp)])
    with pytest.raises(ValueError, match="different ranks"):
        rconv.Model(inp, merged).export(tmp_path / "m.onnx", verbose=False)

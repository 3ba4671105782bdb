"""rconv.applications' shared parts: preprocess_input (Keras 3.15's numbers, arrays and KerasTensors),
decode_predictions with the shipped ImageNet index, and the argument errors of every application."""
import json
import re

import numpy as np
import pytest

import rconv
from rconv import applications as A
from rconv.applications import imagenet_utils as iu

X = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3) * 20.0 + 3.0
# keras.applications.imagenet_utils.preprocess_input(X.copy(), mode=...) with Keras 3.15.1
KERAS = {
    "caffe": [-60.939002990722656, -93.77899932861328, -120.68000030517578, -0.9390029907226562,
              -33.77899932861328, -60.68000030517578, 59.060997009277344, 26.22100067138672,
              -0.6800003051757812, 119.06099700927734, 86.22100067138672, 59.31999969482422],
    "tf": [-0.9764705896377563, -0.8196078538894653, -0.6627451181411743, -0.5058823823928833,
           -0.3490195870399475, -0.1921568512916565, -0.03529411554336548, 0.12156867980957031,
           0.27843141555786133, 0.43529415130615234, 0.5921568870544434, 0.7490196228027344],
    "torch": [-2.0665297508239746, -1.633053183555603, -1.0549890995025635, -1.0390444993972778,
              -0.5826330184936523, -0.009237395599484444, -0.011559266597032547, 0.4677872061729431,
              1.0365142822265625, 1.0159260034561157, 1.518207311630249, 2.082265853881836],
}
MODULES = {"caffe": [A.vgg16, A.vgg19, A.resnet, A.resnet50],
           "tf": [A.resnet_v2, A.inception_v3, A.xception, A.mobilenet_v2], "torch": [A.densenet]}


def _reference(x, mode):
    x = np.asarray(x, np.float64)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return x[..., ::-1] - [103.939, 116.779, 123.68]


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_input_matches_keras_numbers(mode):
    want = np.array(KERAS[mode], np.float32).reshape(X.shape)
    np.testing.assert_allclose(iu.preprocess_input(X.copy(), mode=mode), want, rtol=1e-6, atol=1e-6)
    for module in MODULES[mode]:
        np.testing.assert_allclose(module.preprocess_input(X.copy()), want, rtol=1e-6, atol=1e-6)
    rng = np.random.default_rng(3)
    for shape in [(1, 1, 1, 3), (3, 5, 7, 3), (4, 3)]:  # batch 1, odd sizes, a 2-D batch of pixels
        x = (rng.random(shape) * 255).astype(np.float32)
        np.testing.assert_allclose(iu.preprocess_input(x.copy(), mode=mode), _reference(x, mode), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
def test_preprocess_input_on_keras_tensors(mode, tmp_path):
    inputs = rconv.Input((2, 2, 3))
    out = iu.preprocess_input(inputs, mode=mode)
    assert isinstance(out, rconv.KerasTensor) and out.shape == (None, 2, 2, 3)
    model = rconv.Model(inputs, out)
    np.testing.assert_allclose(model.predict(X, verbose=0), np.array(KERAS[mode]).reshape(X.shape), rtol=1e-6,
                               atol=1e-5)
    model.save(tmp_path / "pre.keras")  # the preprocessing nodes are saved with the model
    np.testing.assert_array_equal(rconv.models.load_model(tmp_path / "pre.keras").predict(X, verbose=0),
                                  model.predict(X, verbose=0))
    # As a preprocessing stage in front of an application (Keras's documented usage).
    base = A.ResNet50V2(weights=None, include_top=False, input_shape=(32, 32, 3), pooling="avg")
    inp = rconv.Input((32, 32, 3))
    wrapped = rconv.Model(inp, base(A.resnet_v2.preprocess_input(inp)))
    x = (np.random.default_rng(0).random((2, 32, 32, 3)) * 255).astype(np.float32)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), base.predict(x / 127.5 - 1.0, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_preprocess_input_in_place_and_dtypes():
    x = X.copy()
    y = iu.preprocess_input(x, mode="tf")
    assert y is x  # Keras updates a float array in place
    ints = (X.astype(np.uint8))
    z = iu.preprocess_input(ints, mode="torch")
    assert z.dtype == np.float32 and ints.dtype == np.uint8
    assert iu.preprocess_input(X.astype(np.float64), mode="caffe").dtype == np.float64
    assert iu.preprocess_input([[1.0, 2.0, 3.0]], mode="tf").shape == (1, 3)


def test_preprocess_input_errors():
    with pytest.raises(ValueError, match="mode"):
        iu.preprocess_input(X.copy(), mode="bgr")
    with pytest.raises(ValueError, match="channels_first"):
        iu.preprocess_input(X.copy(), data_format="channels_first")
    with pytest.raises(ValueError, match="data_format"):
        iu.preprocess_input(X.copy(), data_format="nhwc")
    with pytest.raises(ValueError, match=r"3 channels.*\(1, 2, 2, 4\)"):
        iu.preprocess_input(np.zeros((1, 2, 2, 4), np.float32), mode="caffe")


def test_efficientnet_preprocess_is_identity():
    x = X.copy()
    assert A.efficientnet.preprocess_input(x) is x
    np.testing.assert_array_equal(x, X)


def test_class_index_file():
    with open(iu.CLASS_INDEX_FILE) as f:
        index = json.load(f)
    assert len(index) == 1000 and sorted(map(int, index)) == list(range(1000))
    assert index["0"] == ["n01440764", "tench"] and index["1"] == ["n01443537", "goldfish"]
    assert index["207"] == ["n02099601", "golden_retriever"]
    assert index["134"] == ["n02012849", "crane"] and index["517"] == ["n03126707", "crane"]
    assert index["999"] == ["n15075141", "toilet_tissue"]
    assert all(" " not in name for _, name in index.values())
    assert len({w for w, _ in index.values()}) == 1000


def test_decode_predictions():
    preds = np.full((2, 1000), 1e-4, np.float32)
    preds[0, [207, 1, 0]] = [0.5, 0.3, 0.1]
    preds[1, 999] = 0.9
    out = A.resnet50.decode_predictions(preds, top=3)
    assert len(out) == 2 and all(len(r) == 3 for r in out)
    assert [r[:2] for r in out[0]] == [("n02099601", "golden_retriever"), ("n01443537", "goldfish"),
                                       ("n01440764", "tench")]
    np.testing.assert_allclose([r[2] for r in out[0]], [0.5, 0.3, 0.1])
    assert out[1][0][:2] == ("n15075141", "toilet_tissue")
    assert len(A.inception_v3.decode_predictions(preds)[0]) == 5  # top=5 by default
    for bad in (np.zeros((1000,)), np.zeros((2, 10)), np.zeros((1, 2, 1000))):
        with pytest.raises(ValueError, match=r"\(samples, 1000\).*" + re.escape(str(bad.shape))):
            iu.decode_predictions(bad)


APPS = [(A.VGG19, 32), (A.ResNet50, 32), (A.ResNet50V2, 32), (A.DenseNet121, 32), (A.InceptionV3, 75),
        (A.Xception, 71), (A.MobileNetV2, 32), (A.EfficientNetB0, 32)]


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined")  # MobileNetV2's, as Keras
@pytest.mark.parametrize("app,min_size", APPS, ids=lambda a: getattr(a, "__name__", str(a)))
def test_application_argument_errors(app, min_size, tmp_path, monkeypatch):
    name = app.__name__
    small = min_size - 1
    with pytest.raises(ValueError, match=rf"{name}: input size must be at least {min_size}x{min_size}.*"
                                         rf"\({small}, {small}, 3\)"):
        app(weights=None, include_top=False, input_shape=(small, small, 3))
    with pytest.raises(ValueError, match=rf"{name}: .*`classes` should be 1000.*classes=10"):
        app(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=rf"{name}: .*`weights` argument"):
        app(weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match=rf"{name}: `pooling`"):
        app(weights=None, include_top=False, pooling="sum")
    with pytest.raises(ValueError, match=rf"{name}: .*three integers"):
        app(weights=None, include_top=False, input_shape=(64, 64))
    with pytest.raises(ValueError, match=rf"{name}: .*static `input_shape`"):
        app(weights=None, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=rf"{name}: .*`input_tensor` must be a KerasTensor"):
        app(weights=None, input_tensor=np.zeros((1, 64, 64, 3)))
    monkeypatch.setenv("RCONV_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=rf"{name}: weights='imagenet' needs Keras's file '.*_no_?top\.h5' at "
                                         + re.escape(str(tmp_path / "models"))):
        app(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match=rf"{name}: .*3 channels"):
        app(weights="imagenet", include_top=False, input_shape=(96, 96, 1))
    with pytest.raises(ValueError, match=rf"{name}: .*`input_shape` should be"):
        app(weights="imagenet", input_shape=(100, 100, 3))
    with pytest.raises(ValueError, match=rf"{name}: only `None` and `softmax`"):
        app(weights=str(_dummy_file(tmp_path)), input_shape=(min_size, min_size, 3), classes=3,
            classifier_activation="sigmoid")


def _dummy_file(tmp_path):
    path = tmp_path / "w.weights.h5"
    path.write_bytes(b"")
    return path


def test_input_tensor_and_shapes():
    inp = rconv.Input((40, 48, 3))
    x = rconv.layers.Rescaling(1 / 255.0)(inp)
    model = A.ResNet50(weights=None, include_top=False, input_tensor=x, pooling="max")
    assert model.inputs[0] is inp and model.output_shape == (None, 2048)
    assert model.layers[1].name == "rescaling"
    free = A.DenseNet121(weights=None, include_top=False)
    assert free.layers[0].batch_shape == (None, None, None, 3)
    assert free.predict(np.zeros((1, 37, 45, 3), np.float32), verbose=0).shape == (1, 1, 1, 1024)
    assert A.InceptionV3(weights=None, include_top=False, input_shape=(75, 90, 1)).output_shape == (None, 1, 1, 2048)
    assert A.VGG19(weights=None, input_shape=(32, 32, 3), classes=4, classifier_activation=None).layers[-1].name \
        == "predictions"


def test_imagenet_weights_from_keras_cache(tmp_path, monkeypatch):
    """weights='imagenet' loads Keras's cached file name from $RCONV_HOME/models (here written by rconv in the
    Keras 2 .h5 layout of Keras's ImageNet files); EfficientNet then adds Keras's extra Rescaling."""
    monkeypatch.setenv("RCONV_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    source = A.DenseNet121(weights=None, include_top=False, input_shape=(32, 32, 3))
    source.save_weights(tmp_path / "models" / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5")
    loaded = A.DenseNet121(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    eff = A.EfficientNetB0(weights=None, include_top=False, input_shape=(32, 32, 3))
    eff.save_weights(tmp_path / "models" / "efficientnetb0_notop.h5")
    loaded = A.EfficientNetB0(weights="imagenet", include_top=False, input_shape=(32, 32, 3))
    kinds = [type(layer).__name__ for layer in loaded.layers[1:5]]
    assert kinds == ["Rescaling", "Normalization", "Rescaling", "ZeroPadding2D"]
    np.testing.assert_allclose(loaded.layers[3].get_config()["scale"],
                               [1 / np.sqrt(s) for s in (0.229, 0.224, 0.225)])
    for a, b in zip(eff.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=re.escape("mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96.h5")):
        A.MobileNetV2(weights="imagenet", input_shape=(96, 96, 3))


def test_mobilenet_v2_input_tensor_rules():
    inp = rconv.Input((96, 96, 3))
    model = A.MobileNetV2(weights=None, input_tensor=inp, include_top=False)
    assert model.name == "mobilenetv2_1.00_None" and model.output_shape == (None, 3, 3, 1280)  # as Keras 3.15
    with pytest.raises(ValueError, match=r"MobileNetV2: input_tensor.shape\[2\] must equal input_shape\[1\]"):
        A.MobileNetV2(weights=None, input_tensor=inp, input_shape=(96, 64, 3), include_top=False)
    with pytest.raises(ValueError, match="MobileNetV2: if imagenet weights are being loaded, alpha"):
        A.MobileNetV2(weights="imagenet", alpha=0.6)

"""examples/visualize_convnets.py (Deep Learning with Python 9.4 with rconv.GradientTape) runs on small synthetic
images and writes its pictures: activation grids, filter patterns, saliency and a superimposed Grad-CAM heatmap."""
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rconv

sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import visualize_convnets as viz  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("viz")
    rconv.utils.set_random_seed(0)
    model = viz.small_convnet(48)
    return model, viz.get_img_array(None, 48), out


def test_activation_grids(small):
    model, img, out = small
    paths = viz.activations(model, img, str(out))
    assert len(paths) == 6  # three Conv2D and three MaxPooling2D layers
    for p in paths:
        assert Image.open(p).size[0] > 100


def test_filter_patterns_raise_the_filter_activation(small):
    model, _, out = small
    layer = model.layers[3]  # the second Conv2D
    extractor = rconv.Model(model.input, layer.output)
    image = np.random.default_rng(0).uniform(0.4, 0.6, (1, 48, 48, 3)).astype("float32")
    before = float(viz.compute_loss(extractor, image, 1))
    for _ in range(5):
        image = viz.gradient_ascent_step(extractor, image, 1, 10.0)
    assert float(viz.compute_loss(extractor, image, 1)) > before
    path = viz.filters(model, layer.name, 48, str(out), count=4, iterations=3)
    assert Image.open(path).mode == "RGB"


def test_saliency_and_gradcam(small):
    model, img, out = small
    path, saliency = viz.saliency(model, img, str(out))
    assert saliency.shape == (48, 48) and saliency.max() == pytest.approx(1.0) and Image.open(path)
    conv = [layer for layer in model.layers if isinstance(layer, rconv.layers.Conv2D)][-1]
    path, heatmap = viz.gradcam(model, img, str(out), conv.name)
    assert heatmap.shape == conv.output.shape[1:3] and heatmap.min() >= 0 and heatmap.max() <= 1
    assert Image.open(path).size == (48, 48)


def test_gradcam_heatmap_equals_finite_differences(small):
    _, img, out = small
    # tanh instead of ReLU before the last max-pooling: no exact ties, where differences of max-pooling mislead
    rconv.utils.set_random_seed(1)
    inputs = rconv.Input((48, 48, 3))
    x = rconv.layers.Rescaling(1.0 / 255)(inputs)
    x = rconv.layers.MaxPooling2D(2)(rconv.layers.Conv2D(8, 3, activation="relu")(x))
    conv = rconv.layers.Conv2D(6, 3, activation="tanh")
    x = rconv.layers.MaxPooling2D(2)(conv(x))
    outputs = rconv.layers.Dense(3, activation="softmax")(rconv.layers.Flatten()(x))
    model = rconv.Model(inputs, outputs)
    img = np.random.default_rng(2).uniform(0, 255, img.shape).astype("float32")  # no flat regions: no pool ties
    heatmap = viz.make_gradcam_heatmap(img, model, conv.name, pred_index=1)
    grad_model = rconv.Model(model.inputs, [conv.output, model.output])
    conv_out = grad_model.predict(img, verbose=0)[0].astype(np.float64)
    kernel, bias = (v.numpy().astype(np.float64) for v in model.layers[-1].weights)

    def head(c):  # the layers after the conv in float64 NumPy: 2x2 max-pooling, flatten, dense, softmax
        n, hh, ww, ch = c.shape
        pooled = c[:, :hh // 2 * 2, :ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, ch).max(axis=(2, 4))
        z = pooled.reshape(n, -1) @ kernel + bias
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[0, 1]

    eps, grads = 1e-6, np.zeros_like(conv_out)
    for i in np.ndindex(conv_out.shape):
        p, m = conv_out.copy(), conv_out.copy()
        p[i] += eps
        m[i] -= eps
        grads[i] = (head(p) - head(m)) / (2 * eps)
    pooled = grads.mean(axis=(0, 1, 2))
    expected = np.maximum(conv_out[0] @ pooled, 0)
    expected /= expected.max() + 1e-12
    np.testing.assert_allclose(heatmap, expected, atol=1e-4)

"""Issue 14's Grad-CAM criterion: examples/visualize_convnets.py's heatmap on Xception equals real Keras's
`tf.GradientTape` result to 1e-4. CI: both sides set Xception's weights with the applications fixtures' formula
(tests/keras_fixtures/make_gradcam_fixture.py wrote Keras's numbers). With RCONV_KERAS_PYTHON (`keras` mark):
real Keras writes a random-weight Xception `.weights.h5`, which rconv loads by path."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rconv
from keras_check import keras_python

FIXTURES = Path(__file__).parent / "keras_fixtures"
sys.path.insert(0, str(Path(__file__).parent.parent / "examples"))
import visualize_convnets as viz  # noqa: E402


def _fill():
    spec = importlib.util.spec_from_file_location("make_applications_fixtures",
                                                  FIXTURES / "make_applications_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fill


def _heatmap(model, img):
    model.layers[-1].activation = rconv.activations.get(None)  # keras-io: no softmax on the last layer
    x = rconv.applications.xception.preprocess_input(img.copy())
    return model.predict(x, verbose=0), viz.make_gradcam_heatmap(x, model, "block14_sepconv2_act")


# direct_convolution (conftest.py): this heatmap is ill-conditioned, a 1e-6 relative change of the input image
# moves it by 7.5e-4 (measured), so the 1e-4 comparison with Keras runs the direct convolution (Winograd's
# different float32 rounding in block1_conv2 moves it by 3e-4); Winograd's own accuracy is tested against
# float64 in the kernel tests.


def test_gradcam_equals_keras_gradient_tape(tmp_path, direct_convolution):
    expected = np.load(FIXTURES / "gradcam_xception.npz")
    model = rconv.applications.xception.Xception(weights=None, input_shape=(150, 150, 3))
    fill = _fill()
    for i, w in enumerate(model.weights):
        w.assign(fill(i, w.path, w.shape))
    preds, heatmap = _heatmap(model, expected["image"])
    np.testing.assert_allclose(preds, expected["preds"], rtol=1e-4, atol=1e-4)
    assert heatmap.shape == (5, 5)
    np.testing.assert_allclose(heatmap, expected["heatmap"], atol=1e-4)
    from PIL import Image  # the example's picture: the heatmap superimposed on the input image
    path = viz.save_and_display_gradcam(expected["image"][0], heatmap, str(tmp_path / "cam.png"))
    assert Image.open(path).size == (150, 150)


@pytest.mark.keras
def test_gradcam_on_a_keras_written_weights_file(tmp_path, direct_convolution):
    exe = keras_python()
    weights = tmp_path / "xception.weights.h5"
    result = subprocess.run([exe, str(FIXTURES / "make_gradcam_fixture.py"), str(tmp_path / "keras.npz"),
                             "--weights-file", str(weights)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = np.load(tmp_path / "keras.npz")
    model = rconv.applications.xception.Xception(weights=str(weights), input_shape=(150, 150, 3))
    preds, heatmap = _heatmap(model, expected["image"])
    np.testing.assert_allclose(preds, expected["preds"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(heatmap, expected["heatmap"], atol=1e-4)
    print("max |heatmap difference|", float(np.abs(heatmap - expected["heatmap"]).max()))

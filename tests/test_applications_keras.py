"""Real Keras writes weight files of each application (random weights, randomized BatchNormalization and
Normalization statistics) — Keras 3's `.weights.h5` and the Keras 2 `.h5` layout of Keras's ImageNet files
(`layer_names` / `weight_names`, written by Keras's own legacy writer) — and rconv's `App(weights=<path>)`
loads each and predicts what Keras predicted (1e-5). Needs Keras + TensorFlow (RCONV_KERAS_PYTHON)."""
import json
import subprocess
import textwrap

import numpy as np
import pytest

import rconv
from keras_check import keras_python

CASES = {  # key -> (application, input size, kwargs)
    "VGG19": ("VGG19", 32, {"classes": 5}),
    "ResNet50": ("ResNet50", 32, {"classes": 5}),
    "ResNet50V2": ("ResNet50V2", 32, {"include_top": False, "pooling": "avg"}),
    "DenseNet121": ("DenseNet121", 32, {"classes": 5}),
    "InceptionV3": ("InceptionV3", 75, {"classes": 5}),
    "Xception": ("Xception", 71, {"classes": 5}),
    "MobileNetV2": ("MobileNetV2", 32, {"classes": 5}),
    "EfficientNetB0": ("EfficientNetB0", 32, {"include_top": False, "pooling": "max"}),
}

SCRIPT = textwrap.dedent("""
    import json, sys
    import h5py, numpy as np, keras
    from keras.src.legacy.saving import legacy_h5_format
    out = sys.argv[1]
    cases = json.loads(sys.argv[2])
    for key, (app, size, kwargs) in cases.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(len(key))
        model = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3), **kwargs)
        rng = np.random.default_rng(len(key))
        for v in model.weights:
            name = v.path.rsplit("/", 1)[-1]
            if name in ("moving_variance", "variance", "gamma"):
                v.assign(rng.uniform(0.5, 1.5, v.shape))
            elif name in ("moving_mean", "mean", "beta", "bias"):
                v.assign(rng.normal(0.0, 0.1, v.shape))
        model.save_weights(f"{out}/{key}.weights.h5")
        with h5py.File(f"{out}/{key}.h5", "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
        np.save(f"{out}/{key}.x.npy", x)
        np.save(f"{out}/{key}.y.npy", model.predict(x, verbose=0))
""")


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    exe = keras_python()
    out = tmp_path_factory.mktemp("keras_apps")
    run = subprocess.run([exe, "-c", SCRIPT, str(out), json.dumps(CASES)], capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.keras
@pytest.mark.parametrize("fmt", [".weights.h5", ".h5"])
@pytest.mark.parametrize("key", list(CASES))
def test_keras_weight_files_load(keras_files, key, fmt):
    app, size, kwargs = CASES[key]
    path = keras_files / f"{key}{fmt}"
    model = getattr(rconv.applications, app)(weights=str(path), input_shape=(size, size, 3), **kwargs)
    x, want = np.load(keras_files / f"{key}.x.npy"), np.load(keras_files / f"{key}.y.npy")
    got = model.predict(x, verbose=0)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.keras
def test_wrong_architecture_file_is_refused(keras_files):
    with pytest.raises(ValueError):
        rconv.applications.ResNet50(weights=str(keras_files / "DenseNet121.weights.h5"), input_shape=(32, 32, 3),
                                    classes=5)

"""Fixtures for tests/test_applications_fixtures.py: every `keras.applications` architecture rconv has, built by
real Keras 3 with `weights=None` at a small input size, every weight then set from `fill` (a formula over the
weight's position in Keras's `model.weights` order and its element index), and the predictions on `images`
recorded with the ordered (weight path, shape) list and the layer names.

The rconv test builds the same architecture, checks the same names/paths/shapes in the same order, sets its
weights with the same `fill` and compares predictions. Run with the Keras venv (CI never runs this):

    /work/kvenv/bin/python tests/keras_fixtures/make_applications_fixtures.py

Writes applications_expected.npz and applications_weights.json.gz next to this file.
"""
from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NPZ = os.path.join(HERE, "applications_expected.npz")
JSON = os.path.join(HERE, "applications_weights.json.gz")

# key -> (application function name, input size, keyword arguments)
CASES = {}
for _app, _size, _variants in [
        ("VGG19", 32, "tam"), ("ResNet50", 32, "tamL"), ("ResNet101", 32, "t"), ("ResNet152", 32, "t"),
        ("ResNet50V2", 32, "tam"), ("ResNet101V2", 32, "t"), ("ResNet152V2", 32, "t"),
        ("DenseNet121", 32, "tam"), ("DenseNet169", 32, "t"), ("DenseNet201", 32, "t"),
        ("InceptionV3", 75, "tam"), ("Xception", 71, "tam"), ("MobileNetV2", 32, "tam"),
        ("EfficientNetB0", 32, "tam"), *[(f"EfficientNetB{i}", 32, "t") for i in range(1, 8)]]:
    for _v in _variants:
        _kw = {"t": {"classes": 10}, "a": {"include_top": False, "pooling": "avg"},
               "m": {"include_top": False, "pooling": "max"},
               "L": {"classes": 7, "classifier_activation": None}}[_v]
        CASES[f"{_app}-{_v}"] = (_app, _size, _kw)
# Odd and non-square sizes (the stride-2 `correct_pad` paddings, 'same' pools) and MobileNetV2's alpha.
CASES.update({
    "ResNet50-odd": ("ResNet50", (33, 45), {"include_top": False, "pooling": "avg"}),
    "DenseNet121-odd": ("DenseNet121", (37, 33), {"include_top": False, "pooling": "avg"}),
    "InceptionV3-odd": ("InceptionV3", (76, 99), {"include_top": False, "pooling": "max"}),
    "Xception-odd": ("Xception", (73, 80), {"include_top": False, "pooling": "avg"}),
    "MobileNetV2-odd": ("MobileNetV2", (33, 47), {"include_top": False, "pooling": "avg", "alpha": 0.35}),
    "MobileNetV2-wide": ("MobileNetV2", 32, {"classes": 10, "alpha": 1.4}),
    "EfficientNetB0-odd": ("EfficientNetB0", (35, 41), {"include_top": False, "pooling": "avg"}),
})


def hw(size):
    """An input size as (height, width)."""
    return (size, size) if isinstance(size, int) else tuple(size)


def images(size, n: int = 2) -> np.ndarray:
    """`n` fixed pixel-like images (values in [0, 255]) of height x width x 3 (`size`: an int or a pair)."""
    h, w = hw(size)
    k = np.arange(n * h * w * 3, dtype=np.float64)
    return (127.5 + 127.5 * np.sin(0.0137 * k + 0.3 * np.cos(0.71 * k))).reshape(n, h, w, 3).astype(np.float32)


def fill(i: int, path: str, shape) -> np.ndarray:
    """The value of the `i`-th weight of a model (Keras's `model.weights` order), named `path`, of `shape`:
    a scaled sine of the element index that keeps activations finite through every BatchNormalization
    (variances in [0.5, 1], kernels of variance ~1.5/fan_in)."""
    shape = tuple(int(d) for d in shape)
    name = path.rsplit("/", 1)[-1]
    k = np.arange(int(np.prod(shape)), dtype=np.float64)
    s = np.sin(1.618034 * k + 0.5 * i + 0.3)
    if name == "count":
        return np.zeros(shape, np.int64)
    if name in ("moving_variance", "variance"):
        v = 0.75 + 0.25 * s
    elif name == "gamma":
        v = 1.0 + 0.1 * s
    elif name in ("beta", "bias", "moving_mean", "mean"):
        v = 0.05 * s
    else:  # kernels: (kh, kw, cin, cout), depthwise (kh, kw, cin, mult), dense (in, out)
        fan_in = int(np.prod(shape[:2])) if name == "depthwise_kernel" else int(np.prod(shape[:-1]))
        v = s * np.sqrt(3.0 / max(1, fan_in))
    return v.reshape(shape).astype(np.float32)


def main() -> None:
    import keras

    expected, meta = {}, {"keras_version": keras.__version__, "cases": {}}
    for key, (app, size, kwargs) in CASES.items():
        keras.backend.clear_session()  # Keras's automatic layer names start afresh (the rconv test does too)
        model = getattr(keras.applications, app)(weights=None, input_shape=(*hw(size), 3), **kwargs)
        for i, v in enumerate(model.weights):
            v.assign(fill(i, v.path, v.shape))
        expected[key] = model.predict(images(size), verbose=0)
        meta["cases"][key] = {
            "app": app, "size": size, "kwargs": kwargs, "name": model.name,
            "layers": [layer.name for layer in model.layers],
            "weights": [[v.path, list(v.shape)] for v in model.weights],
            "trainable": [v.trainable for v in model.weights],
        }
        print(key, expected[key].shape, len(model.weights), file=sys.stderr)
    np.savez_compressed(NPZ, **expected)
    with gzip.open(JSON, "wt") as f:
        json.dump(meta, f, separators=(",", ":"))


if __name__ == "__main__":
    main()

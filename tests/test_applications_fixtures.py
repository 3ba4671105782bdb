"""Each rconv application against real Keras 3 (tests/keras_fixtures/make_applications_fixtures.py): the same
layer names, the same ordered weight paths and shapes (what Keras weight files are matched by), and with
every weight set by the same formula, the same predictions (atol 1e-5) — top with `classes`, a logits top,
and include_top=False with pooling 'avg'/'max'."""
import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import rconv

FIXTURES = Path(__file__).parent / "keras_fixtures"
_spec = importlib.util.spec_from_file_location("make_applications_fixtures",
                                               FIXTURES / "make_applications_fixtures.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

with gzip.open(FIXTURES / "applications_weights.json.gz", "rt") as _f:
    META = json.load(_f)["cases"]
EXPECTED = np.load(FIXTURES / "applications_expected.npz")
# The largest variants (ResNet152*, DenseNet201, EfficientNetB5..B7) cost a few seconds each: marked slow.
SLOW = {"ResNet152-t", "ResNet152V2-t", "DenseNet201-t", "EfficientNetB5-t", "EfficientNetB6-t",
        "EfficientNetB7-t"}


def available(key):
    return hasattr(rconv.applications, META[key]["app"])


KEYS = [pytest.param(k, marks=pytest.mark.slow) if k in SLOW else k for k in META if available(k)]


def build(key):
    case = META[key]
    app = getattr(rconv.applications, case["app"])
    return app(weights=None, input_shape=(*gen.hw(case["size"]), 3), **case["kwargs"])


@pytest.mark.parametrize("key", KEYS)
def test_application_matches_keras(key):
    case = META[key]
    model = build(key)
    assert model.name == case["name"]
    assert [layer.name for layer in model.layers] == case["layers"]
    assert [[v.path, list(v.shape)] for v in model.weights] == case["weights"]
    assert [bool(v.trainable) for v in model.weights] == case["trainable"]
    model.set_weights([gen.fill(i, path, shape) for i, (path, shape) in enumerate(case["weights"])])
    expected = EXPECTED[key]
    got = model.predict(gen.images(case["size"]), verbose=0)
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale)
    one = model.predict(gen.images(case["size"])[1:], verbose=0)  # batch 1
    np.testing.assert_allclose(one, expected[1:], rtol=1e-5, atol=1e-5 * scale)

"""Activations (Keras 3 names, formulas and defaults) as functions, kernels and layers.

* every activation's float32 Rust forward and backward against a float64 NumPy reference, over random
  inputs plus values near 0 and of large magnitude; the reference derivatives themselves against central
  differences of the reference forward (away from kinks);
* parameters (relu's negative_slope/max_value/threshold, leaky_relu, elu's alpha, gelu's approximation,
  softmax/log_softmax over any axis or several axes);
* the expected values of Keras's own tests (activations_test.py, layers/activations/*_test.py);
* (`run_layer_test` of the layers, and of Activation(name) for every name: tests/contract_cases_activations.py);
* get/serialize for every name, `.keras` and `.h5` round trips of a model holding every layer;
* `@pytest.mark.keras`: values and gradients against real Keras 3 + TF in a subprocess.
"""
from __future__ import annotations

import json
import subprocess
import warnings

import numpy as np
import pytest

import rconv
import reference as ref
from contract_cases_activations import REFERENCES, SELU_ALPHA, SELU_SCALE, gelu_tanh, relu_with
from keras_check import keras_python
from rconv import activations, layers, ops


def _with(name, params=None):
    f, d, kinks = REFERENCES[name]
    return f, d, kinks, params or {}


# name -> (float64 forward, float64 derivative, kinks (no finite differences across them), params)
CASES = {name: _with(name) for name in REFERENCES if name not in ("softmax", "log_softmax")}
CASES.update({
    "relu(0.5, 5, 1)": (*relu_with(0.5, 5.0, 1.0), [1, 5], dict(negative_slope=0.5, max_value=5.0, threshold=1.0)),
    "relu(max 6)": (*relu_with(0.0, 6.0, 0.0), [0, 6], dict(max_value=6.0)),
    "relu(slope 0.1)": (*relu_with(0.1, None, 0.0), [0], dict(negative_slope=0.1)),
    "relu(threshold 2)": (*relu_with(0.0, None, 2.0), [2], dict(threshold=2.0)),
    "leaky_relu(0.01)": (lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01), [0],
                         dict(negative_slope=0.01)),
    "elu(0.5)": (lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), lambda x: np.where(x > 0, 1.0, 0.5 * np.exp(x)),
                 [0], dict(alpha=0.5)),
    "gelu(approximate)": (gelu_tanh, None, [], dict(approximate=True)),
})


def _fn(case: str):
    return activations.get(case.split("(")[0])


def _points(seed=0) -> np.ndarray:
    """Random values, values near 0 (both signs, down to 1e-7), moderate and large magnitudes."""
    rng = np.random.default_rng(seed)
    tiny = rng.uniform(1e-7, 1e-3, 40) * rng.choice([-1, 1], 40)
    big = rng.uniform(8, 80, 40) * rng.choice([-1, 1], 40)
    return np.concatenate([rng.uniform(-7, 7, 200), tiny, big, [0.0, -3.0, 3.0, 6.0, 1.0, 5.0]]).astype(np.float32)


def _call(case, x):
    fn, params = _fn(case), CASES[case][3]
    return fn(x, **params) if params else fn(x)


def _configured(case):
    fn, params = _fn(case), CASES[case][3]
    return activations.Configured(fn, **params) if params else fn


@pytest.mark.parametrize("case", CASES)
def test_forward_matches_float64_reference(case):
    f64, _, _, _ = CASES[case]
    x = _points().reshape(-1, 11)  # any shape
    y = _call(case, x)
    assert y.dtype == np.float32 and y.shape == x.shape
    want = f64(ref.r32(x))
    if case == "exponential":
        want = np.where(want > np.finfo(np.float32).max, np.inf, want)
    np.testing.assert_allclose(y, want, rtol=4e-6, atol=1e-30, err_msg=case)


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c][1] is not None])
def test_backward_matches_reference_derivative(case):
    _, d64, kinks, _ = CASES[case]
    fn = _configured(case)
    x = _points(1)
    x = x[np.abs(x) < 80] if case != "exponential" else x[x < 60]
    for k in kinks:  # a kink's one-sided derivatives are TF's choice, tested below
        x = x[np.abs(x - k) > 1e-3]
    y, saved = activations.forward(fn, x)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    got = activations.backward(fn, saved, g)
    want = d64(ref.r32(x)) * ref.r32(g)
    # Derivatives read from the output (tanh, sigmoid) lose relative precision where it saturates.
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=3e-6 * max(1.0, np.abs(want).max()), err_msg=case)


@pytest.mark.parametrize("case", CASES)
def test_reference_derivative_is_the_finite_difference(case):
    """The float64 references and the kernel's backward against central differences of the forward."""
    f64, d64, kinks, _ = CASES[case]
    x = np.random.default_rng(3).uniform(-6, 6, 60)
    x = x[np.all([np.abs(x - k) > 1e-3 for k in kinks] or [np.ones_like(x, bool)], axis=0)]
    h = 1e-6
    numeric = (f64(x + h) - f64(x - h)) / (2 * h)
    if d64 is not None:
        np.testing.assert_allclose(d64(x), numeric, rtol=1e-6, atol=1e-8, err_msg=case)
    fn = _configured(case)
    x32 = x.astype(np.float32)
    _, saved = activations.forward(fn, x32)
    got = activations.backward(fn, saved, np.ones_like(x32))
    numeric32 = (f64(ref.r32(x32) + h) - f64(ref.r32(x32) - h)) / (2 * h)
    np.testing.assert_allclose(got, numeric32, rtol=3e-5, atol=3e-6, err_msg=case)


@pytest.mark.parametrize("kind, x, want", [
    # TF's choices at the kinks: relu, relu6 and hard_sigmoid pass nothing at their corners, leaky_relu
    # its slope at 0, elu 1 (alpha * exp(0)), selu the linear side.
    ("relu", [0.0], [0.0]), ("relu6", [0.0, 6.0], [0.0, 0.0]), ("hard_sigmoid", [-3.0, 3.0], [0.0, 0.0]),
    ("leaky_relu", [0.0], [0.2]), ("elu", [0.0], [1.0]), ("selu", [0.0], [SELU_SCALE]),
])
def test_gradients_at_kinks_follow_tf(kind, x, want):
    fn = activations.get(kind)
    x = np.array(x, np.float32)
    _, saved = activations.forward(fn, x)
    np.testing.assert_allclose(activations.backward(fn, saved, np.ones_like(x)), want, rtol=1e-6)


@pytest.mark.parametrize("shape, axis", [((2, 5), 0), ((2, 3, 5), 1), ((3, 1, 4), 1), ((1, 4, 3, 2), -3),
                                         ((2, 3, 4, 5), (2, 3)), ((2, 3, 4, 5, 6), (-3, -1)), ((7,), -1),
                                         ((2, 3, 4), (1, 2))])
@pytest.mark.parametrize("kind", ["softmax", "log_softmax"])
def test_softmax_over_axes(kind, shape, axis):
    x = np.random.default_rng(4).normal(0, 3, shape).astype(np.float32)
    axes = axis if isinstance(axis, tuple) else (axis,)

    def f64(v):
        m = v.max(axis=axes, keepdims=True)
        lse = m + np.log(np.exp(v - m).sum(axis=axes, keepdims=True))
        return v - lse if kind == "log_softmax" else np.exp(v - lse)
    fn = activations.get(kind)
    y = fn(x, axis=list(axis) if isinstance(axis, tuple) else axis)
    ref.assert_close(y, f64(ref.r32(x)), f"{kind} axis={axis}", rtol=2e-6, atol_scale=2e-6)
    conf = activations.Configured(fn, axis=list(axis) if isinstance(axis, tuple) else axis)
    y2, saved = activations.forward(conf, x)
    np.testing.assert_array_equal(y2, y)
    g = np.random.default_rng(5).standard_normal(shape)
    got = activations.backward(conf, saved, g.astype(np.float32))
    numeric = ref.numeric_grad(lambda v: float((f64(v) * g).sum()), ref.r32(x))
    ref.assert_close(got, numeric, f"{kind} backward axis={axis}", rtol=1e-4, atol_scale=1e-5)


def test_softmax_is_stable():
    y = activations.softmax(np.array([[1000.0, 1000.0, -1000.0]], np.float32), axis=-1)
    np.testing.assert_array_equal(y, [[0.5, 0.5, 0.0]])
    ls = activations.log_softmax(np.array([[1000.0, 0.0]], np.float32))
    np.testing.assert_allclose(ls, [[0.0, -1000.0]])


# --- Keras's expected values (keras/src/activations/activations_test.py) -----------------------------

KERAS_X = np.array([-10, -5, 0.0, 5, 10])


@pytest.mark.parametrize("kwargs, want", [
    ({"negative_slope": 0.5}, [-5.0, -2.5, 0.0, 5.0, 10.0]),
    ({"max_value": 5.0}, [0.0, 0.0, 0.0, 5.0, 5.0]),
    ({"threshold": 5.0}, [-0.0, -0.0, 0.0, 0.0, 10.0]),
    ({"threshold": 5.0, "max_value": 5.0}, [0.0, 0.0, 0.0, 0.0, 5.0]),
    ({"negative_slope": 0.5, "max_value": 5.0, "threshold": 5.0}, [-7.5, -5.0, -2.5, 0.0, 5.0]),
])
def test_keras_relu_parameters(kwargs, want):
    np.testing.assert_allclose(activations.relu(KERAS_X, **kwargs), want, rtol=1e-5)


def test_keras_examples():
    np.testing.assert_allclose(activations.relu(np.array([-10, -5, 0.0, 5, 10, 12]), max_value=6.0),
                               [0.0, 0.0, 0.0, 5.0, 6.0, 6.0])
    x = np.random.default_rng(0).random((2, 5))
    np.testing.assert_allclose(activations.selu(x), x * SELU_SCALE, rtol=1e-5)
    neg = np.array([[-1.0, -2.0]], np.float32)
    np.testing.assert_allclose(activations.selu(neg), SELU_SCALE * SELU_ALPHA * (np.exp(neg) - 1), rtol=1e-5)
    np.testing.assert_allclose(activations.elu(neg), np.exp(neg) - 1, rtol=1e-6)
    np.testing.assert_allclose(activations.hard_sigmoid(np.full((2, 5), 7.0)), np.ones((2, 5)))
    big = np.random.default_rng(1).uniform(1e4, 1e5, (2, 5))
    np.testing.assert_allclose(activations.mish(big), big, rtol=1e-5)
    np.testing.assert_allclose(activations.softplus(big), big, rtol=1e-5)
    np.testing.assert_allclose(activations.softplus(-big), 0.0, atol=1e-30)
    np.testing.assert_allclose(activations.sigmoid(-big), 0.0, atol=1e-30)
    ints = np.arange(-3, 3).reshape(2, 3)
    assert activations.linear(ints) is ints
    np.testing.assert_allclose(activations.relu([-1, 2]), [0.0, 2.0])  # lists and ints are computed as float32


def test_get_and_serialize_every_name():
    names = ["relu", "sigmoid", "softmax", "linear", "tanh", "elu", "selu", "gelu", "silu", "softplus", "softsign",
             "hard_sigmoid", "hard_silu", "leaky_relu", "relu6", "exponential", "mish", "log_softmax"]
    for name in names:
        fn = activations.get(name)
        assert activations.serialize(fn) == name and activations.get(activations.serialize(fn)) is fn
        assert fn(np.zeros((2, 3), np.float32)).shape == (2, 3)
        assert activations.get({"module": "keras.activations", "class_name": "function", "config": name,
                                "registered_name": name}) is fn
    assert activations.get("swish") is activations.silu and activations.serialize(activations.swish) == "silu"
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get(None) is activations.linear
    assert activations.deserialize("gelu") is activations.gelu
    assert activations.deserialize({"class_name": "function", "config": "mish"}) is activations.mish
    assert activations.deserialize("mine", custom_objects={"mine": np.abs}) is np.abs
    with pytest.raises(ValueError, match="typo"):
        activations.get("typo")


def test_bad_parameters_and_kinds():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="unknown activation 'nope'"):
        ops.activate(x, "nope")
    with pytest.raises(ValueError, match="takes 1 parameter"):
        ops.activate(x, "elu", [1.0, 2.0])
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        ops.activate(x, "softmax", axis=2)
    with pytest.raises(ValueError, match="out of range for an input of rank 2"):
        activations.softmax(x, axis=[5, 1])
    with pytest.raises(ValueError, match="repeat"):
        activations.log_softmax(x, axis=[1, -1])
    with pytest.raises(TypeError, match="unexpected parameters"):
        activations.Configured(activations.elu, slope=1.0)
    with pytest.raises(TypeError, match="floating-point"):
        ops.activate(np.ones(3, np.int64), "tanh")
    with pytest.raises(ValueError, match="grad_y"):
        ops.activate_backward(x, np.ones((2, 3), np.float32), "tanh")


@pytest.mark.parametrize("case", CASES)
def test_nan_propagates(case):
    x = np.array([np.nan, 1.0, -1.0], np.float32)
    y = _call(case, x)
    assert np.isnan(y[0]) and not np.isnan(y[1:]).any(), case


def test_prelu_op_checks_alpha():
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="prelu: alpha of shape \\[2, 4\\] does not broadcast"):
        ops.prelu(x, np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="prelu_backward: `grad_y` has shape"):
        ops.prelu_backward(x, np.ones((1, 4), np.float32), np.ones((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match="rank"):
        ops.prelu(np.ones(3, np.float32), np.ones((), np.float32))
    y = ops.prelu(np.zeros((0, 3), np.float32), np.ones(3, np.float32))
    assert y.shape == (0, 3)
    gx, ga = ops.prelu_backward(np.zeros((0, 3), np.float32), np.ones(3, np.float32), np.zeros((0, 3), np.float32))
    assert gx.shape == (0, 3) and np.array_equal(ga, np.zeros(3))


def test_configured_activations_are_not_serialized_by_name():
    with pytest.raises(ValueError, match="has parameters"):
        activations.serialize(layers.ReLU(max_value=6.0).activation)
    assert activations.serialize(layers.ReLU().activation) == "relu"


@pytest.mark.parametrize("kind", ["tanh", "softmax", "gelu"])
def test_empty_and_odd_shapes(kind):
    for shape in [(0, 3), (1, 1), (3, 0, 2), (1,)]:
        x = np.ones(shape, np.float32)
        if kind == "softmax" and 0 in shape[-1:]:
            continue
        y = ops.activate(x, kind)
        assert y.shape == shape
        assert ops.activate_backward(x, np.ones_like(x), kind).shape == shape


# --- layers -----------------------------------------------------------------------------------------

def test_keras_layer_values():
    x = np.array([[-10, -5, 0.0, 5, 10]], np.float32)
    np.testing.assert_allclose(layers.LeakyReLU(negative_slope=0.5)(x), [[-5.0, -2.5, 0.0, 5.0, 10.0]])
    np.testing.assert_allclose(layers.ReLU(max_value=10, negative_slope=0.0, threshold=0)(x), [[0, 0, 0, 5, 10]])
    np.testing.assert_allclose(layers.ReLU(max_value=10, negative_slope=0.5, threshold=0)(x),
                               [[-5.0, -2.5, 0.0, 5.0, 10.0]])
    np.testing.assert_allclose(layers.ReLU(max_value=8, negative_slope=0.0, threshold=5)(
        np.array([[6.0, 7.0, 0.0, 5, 10]])), [[6.0, 7.0, 0.0, 0.0, 8.0]])
    np.testing.assert_allclose(layers.ReLU(max_value=None)(np.array([[0.0, 100.0, 1000.0, 99999.0]])),
                               [[0.0, 100.0, 1000.0, 99999.0]])
    soft = np.array([[0.21194157, 0.5761169, 0.21194157]] * 2)
    np.testing.assert_allclose(layers.Softmax()(np.array([[1.0, 2.0, 1.0]] * 2)), soft, rtol=1e-6)
    np.testing.assert_allclose(layers.Softmax(axis=1)(np.array([[1.0, 2.0, 1.0]] * 2)), soft, rtol=1e-6)
    xr = np.random.default_rng(0).random((2, 2, 5))
    np.testing.assert_allclose(layers.ELU(alpha=0.7)(xr - 0.5),
                               np.where(xr > 0.5, xr - 0.5, 0.7 * np.expm1(xr - 0.5)), rtol=1e-6)
    inputs = np.random.default_rng(1).standard_normal((2, 10, 5, 3))
    prelu = layers.PReLU(alpha_initializer="glorot_uniform", alpha_regularizer="l1", alpha_constraint="non_neg",
                         shared_axes=(1, 2))
    prelu.build(inputs.shape)
    weights = np.random.default_rng(2).random((1, 1, 3))
    prelu.alpha.assign(weights)
    np.testing.assert_allclose(prelu(inputs), np.where(inputs > 0, inputs, weights * inputs), rtol=1e-6)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="max_value of a ReLU layer cannot be a negative value"):
        layers.ReLU(max_value=-10, negative_slope=1, threshold=0.5)
    with pytest.raises(ValueError, match="negative_slope of a ReLU layer cannot be None or a negative value"):
        layers.ReLU(negative_slope=None)
    with pytest.raises(ValueError, match="threshold of a ReLU layer cannot be None or a negative value"):
        layers.ReLU(threshold=-10)
    with pytest.raises(ValueError, match="negative_slope of a Leaky ReLU layer cannot be None"):
        layers.LeakyReLU(negative_slope=None)
    with pytest.raises(ValueError, match="PReLU 'p': `shared_axes`"):
        layers.PReLU(shared_axes=[0], name="p")
    with pytest.raises(ValueError, match="PReLU 'q': shared_axes \\[3\\] do not exist"):
        layers.PReLU(shared_axes=[3], name="q")(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="layer 's' \\(Softmax\\).*expected min_ndim=4"):
        layers.Softmax(axis=3, name="s")(np.ones((2, 3, 4), np.float32))


def test_leaky_relu_legacy_alpha_and_defaults():
    with pytest.warns(UserWarning, match="alpha"):
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.get_config()["negative_slope"] == 0.1
    assert layers.LeakyReLU().negative_slope == 0.3  # the layer's default, not the function's 0.2
    np.testing.assert_allclose(layers.LeakyReLU()(np.array([[-1.0]])), [[-0.3]])
    config = layers.ReLU().get_config()
    assert (config["max_value"], config["negative_slope"], config["threshold"]) == (None, 0.0, 0.0)
    # default-parameter layers keep the named function (what the loss fusion and exports look at)
    assert layers.ReLU().activation is activations.relu and layers.Softmax().activation is activations.softmax
    assert layers.Softmax(axis=1).output_activation_name is None


def test_prelu_trains_its_alpha():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = np.where(x > 0, x, 0.25 * x).sum(axis=1, keepdims=True)
    prelu = layers.PReLU(shared_axes=None)
    model = rconv.Sequential([rconv.Input((4,)), prelu, layers.Dense(1, use_bias=False, kernel_initializer="ones",
                                                                   trainable=False)])
    model.compile(optimizer=rconv.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    np.testing.assert_allclose(prelu.alpha.numpy(), np.full((4,), 0.25), atol=2e-2)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_model_with_every_activation_layer_saves_and_loads(ext, tmp_path):
    model = rconv.Sequential([
        rconv.Input((6, 5, 3)), layers.Conv2D(4, 3, activation="gelu"), layers.PReLU(shared_axes=[1, 2]),
        layers.ELU(alpha=0.5), layers.LeakyReLU(0.1), layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.1),
        layers.Activation("selu"), layers.Softmax(axis=1), layers.Flatten(), layers.Dense(3, activation="swish"),
        layers.Activation("hard_sigmoid"), layers.Dense(2, activation="log_softmax")])
    model.layers[1].set_weights([np.random.default_rng(0).uniform(0, 0.5, (1, 1, 4)).astype(np.float32)])
    x = np.random.default_rng(1).standard_normal((3, 6, 5, 3)).astype(np.float32)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / f"m{ext}")
    loaded = rconv.models.load_model(tmp_path / f"m{ext}")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    assert [lay.get_config() for lay in loaded.layers] == [lay.get_config() for lay in model.layers]
    json.dumps(model.get_config())


# --- real Keras ---------------------------------------------------------------------------------------

_KERAS_SCRIPT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, keras
x = np.load(sys.argv[1])["x"]
A = keras.activations
calls = {n: (lambda v, n=n: getattr(A, n)(v)) for n in sys.argv[3].split(",")}
calls["elu(0.5)"] = lambda v: A.elu(v, alpha=0.5)
calls["gelu(approximate)"] = lambda v: A.gelu(v, approximate=True)
calls["relu(0.5, 5, 1)"] = lambda v: A.relu(v, negative_slope=0.5, max_value=5.0, threshold=1.0)
calls["leaky_relu(0.01)"] = lambda v: A.leaky_relu(v, negative_slope=0.01)
out = {}
for name, f in calls.items():
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = f(xt)
    out[name] = y.numpy()
    out[name + "/grad"] = tape.gradient(y, xt).numpy()
m = np.random.default_rng(0).normal(0, 3, (3, 4, 5)).astype(np.float32)
out["m"] = m
out["softmax1"] = A.softmax(m, axis=1).numpy()
out["log_softmax"] = A.log_softmax(m).numpy()
np.savez(sys.argv[2], **out)
"""


@pytest.mark.keras
def test_against_real_keras(tmp_path):
    exe = keras_python()
    names = ["tanh", "elu", "selu", "gelu", "silu", "softplus", "softsign", "hard_sigmoid", "hard_silu",
             "leaky_relu", "relu6", "exponential", "mish", "sigmoid", "relu", "linear"]
    x = np.concatenate([np.linspace(-12, 12, 2401), [-1e-4, 1e-5, 30.0, -30.0, 80.0, -80.0]]).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    result = subprocess.run([exe, "-c", _KERAS_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"),
                             ",".join(names)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    k = np.load(tmp_path / "out.npz")
    on_kink = np.isin(x, [0.0, -3.0, 3.0, 6.0, 1.0, 5.0])
    for case in names + ["elu(0.5)", "gelu(approximate)", "relu(0.5, 5, 1)", "leaky_relu(0.01)"]:
        fn = _configured(case) if case in CASES else activations.get(case)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, saved = activations.forward(fn, x)
        # float32 on both sides; TF's gelu cancels in 1 + erf / 1 + tanh in the negative tail (ours does not)
        atol = 1e-6 if case.startswith("gelu") else 3e-7
        np.testing.assert_allclose(y, k[case], rtol=2e-6, atol=atol, err_msg=case)
        g = activations.backward(fn, saved, np.ones_like(x))
        np.testing.assert_allclose(g[~on_kink], k[case + "/grad"][~on_kink], rtol=2e-5, atol=5 * atol, err_msg=case)
    np.testing.assert_allclose(activations.softmax(k["m"], axis=1), k["softmax1"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(activations.log_softmax(k["m"]), k["log_softmax"], rtol=1e-6, atol=1e-6)

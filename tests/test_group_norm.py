"""GroupNormalization (issue 13, item 1): the Rust op `ops.group_norm` and the layer.

* the op against a float64 NumPy reference (its analytic backward checked by finite differences first), over
  odd shapes, batch 1, rank 2 to 4, one group and one group per channel, and bitwise equal whatever the thread
  count; bad arguments;
* the layer: its `run_layer_test` contract cases (forward, finite-difference backward, config, .keras saving,
  shapes, bad inputs) are in tests/contract_cases_normalization.py; here weights and configs;
* ports of Keras's group_normalization_test.py (its inputs and expected values);
* real Keras 3 numbers (tests/keras_fixtures/make_group_norm_fixtures.py): outputs and TensorFlow gradients,
  configs, and a Keras-saved model (.keras and .h5) loading with Keras's predictions; an rconv-saved model
  loading in real Keras (`keras` marker).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import rconv
import reference as ref
from keras_check import check_in_keras, keras_python
from rconv import constraints, layers, ops, regularizers
from threads import arrays_per_thread_count

FIXTURES = Path(__file__).parent / "keras_fixtures"
TOL = 2e-5


# --- float64 reference ------------------------------------------------------------------------------------

def _grouped(x, groups):
    """(samples, positions, groups, width) view of a channels-last array."""
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], -1, groups, x.shape[-1] // groups)


def group_norm64(x, gamma, beta, groups, epsilon):
    xg = _grouped(x, groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(1, 3), keepdims=True)
    y = ((xg - mean) / np.sqrt(var + epsilon)).reshape(np.shape(x))
    if gamma is not None:
        y = y * np.asarray(gamma, np.float64)
    if beta is not None:
        y = y + np.asarray(beta, np.float64)
    return y


def group_norm_backward64(x, dy, gamma, groups, epsilon):
    """Analytic gradients (dx, dgamma, dbeta) of sum(group_norm64(x) * dy)."""
    xg, shape = _grouped(x, groups), np.shape(x)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    inv = 1.0 / np.sqrt(((xg - mean) ** 2).mean(axis=(1, 3), keepdims=True) + epsilon)
    x_hat = (xg - mean) * inv
    dy64 = np.asarray(dy, np.float64)
    g = _grouped(dy64 * (1.0 if gamma is None else np.asarray(gamma, np.float64)), groups)
    dx = inv * (g - g.mean(axis=(1, 3), keepdims=True) - x_hat * (g * x_hat).mean(axis=(1, 3), keepdims=True))
    flat = dy64.reshape(-1, shape[-1])
    return dx.reshape(shape), (flat * x_hat.reshape(flat.shape)).sum(0), flat.sum(0)


def _data(shape, seed=0, loc=0.5, scale=2.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + loc).astype(np.float32)


def _affine(c, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-1, 1, c).astype(np.float32)


# (shape, groups): odd sizes, batch 1, rank 2-4, one group, one group per channel, one channel
CASES = [((1, 1), 1), ((7, 3), 1), ((7, 3), 3), ((3, 8), 2), ((2, 5, 6), 3), ((1, 3, 5), 5), ((2, 5, 7, 6), 1),
         ((2, 5, 7, 6), 2), ((2, 5, 7, 6), 6), ((1, 9, 11, 4), 4), ((3, 1, 1, 1), 1), ((1, 4, 4, 1), 1),
         ((2, 3, 3, 2, 4), 2),
         ((1, 67, 61, 8), 4),    # one sample over several reduction blocks
         ((3, 50, 70, 5), 5)]    # blocks that straddle samples


@pytest.mark.parametrize("shape,groups", CASES)
def test_reference_backward_matches_finite_differences(shape, groups):
    x, dy = _data(shape).astype(np.float64), _data(shape, seed=2, loc=0.0, scale=1.0).astype(np.float64)
    gamma, beta = (a.astype(np.float64) for a in _affine(shape[-1]))
    dx, dgamma, dbeta = group_norm_backward64(x, dy, gamma, groups, 1e-3)
    picks = np.random.default_rng(0).choice(x.size, min(x.size, 40), replace=False)
    num_x = ref.numeric_grad(lambda v: np.sum(group_norm64(v, gamma, beta, groups, 1e-3) * dy), x, indices=picks)
    ref.assert_close(dx.reshape(-1)[picks], num_x, "reference dx", rtol=1e-5, atol_scale=1e-6)
    for got, arg, what in [(dgamma, 0, "dgamma"), (dbeta, 1, "dbeta")]:
        def f(v, arg=arg):
            return np.sum(group_norm64(x, v if arg == 0 else gamma, v if arg == 1 else beta, groups, 1e-3) * dy)
        ref.assert_close(got, ref.numeric_grad(f, (gamma, beta)[arg].copy()), f"reference {what}", rtol=1e-5,
                         atol_scale=1e-6)


@pytest.mark.parametrize("shape,groups", CASES)
@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_op_matches_float64(shape, groups, affine):
    x, dy = _data(shape), _data(shape, seed=2, loc=0.0, scale=1.0)
    gamma, beta = _affine(shape[-1]) if affine else (None, None)
    y, mean, inv_std = ops.group_norm(x, gamma, beta, groups=groups, epsilon=1e-3)
    assert mean.shape == inv_std.shape == (shape[0], groups)
    xg = _grouped(ref.r32(x), groups)
    ref.assert_close(mean, xg.mean(axis=(1, 3)), "group mean", rtol=TOL, atol_scale=TOL)
    ref.assert_close(y, group_norm64(ref.r32(x), gamma, beta, groups, 1e-3), f"forward {shape} groups={groups}",
                     rtol=TOL, atol_scale=TOL)
    gx, dgamma, dbeta = ops.group_norm_backward(x, dy, gamma, mean, inv_std, groups=groups)
    wx, wg, wb = group_norm_backward64(ref.r32(x), ref.r32(dy), gamma, groups, 1e-3)
    for got, want, what in [(gx, wx, "grad_x"), (dgamma, wg, "grad_gamma"), (dbeta, wb, "grad_beta")]:
        ref.assert_close(got, want, f"backward {shape} groups={groups}: {what}", rtol=1e-4, atol_scale=1e-4)
    none_x, dgamma2, _ = ops.group_norm_backward(x, dy, gamma, mean, inv_std, groups=groups, need_grad_x=False)
    assert none_x is None
    np.testing.assert_array_equal(dgamma2, dgamma)


def test_group_norm_with_one_group_equals_layer_norm_over_all_non_batch_axes():
    x = _data((3, 4, 5, 6))
    gamma, beta = _affine(6)
    y, _, _ = ops.group_norm(x, gamma, beta, groups=1)
    want = layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-3)
    want.build(x.shape)
    want.set_weights([np.broadcast_to(gamma, (4, 5, 6)), np.broadcast_to(beta, (4, 5, 6))])
    np.testing.assert_allclose(y, want(x), atol=2e-6)


def test_group_norm_is_bitwise_equal_whatever_the_thread_count(tmp_path):
    script = (
        "import sys, numpy as np; from rconv import ops\n"
        "rng = np.random.default_rng(0); x = rng.standard_normal((2, 33, 17, 8)).astype(np.float32)\n"
        "g = rng.standard_normal(x.shape).astype(np.float32); gamma = rng.uniform(0.5, 1.5, 8).astype(np.float32)\n"
        "y, m, s = ops.group_norm(x, gamma, None, groups=4)\n"
        "np.savez(sys.argv[1], y, m, s, *ops.group_norm_backward(x, g, gamma, m, s, groups=4))\n")
    one, three = arrays_per_thread_count(script, tmp_path)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call,message", [
    (lambda: ops.group_norm(np.zeros((2, 6), np.float32), groups=4), "groups"),
    (lambda: ops.group_norm(np.zeros((2, 6), np.float32), groups=0), "groups"),
    (lambda: ops.group_norm(np.zeros((6,), np.float32), groups=1), "rank >= 2"),
    (lambda: ops.group_norm(np.zeros((2, 6), np.float32), np.ones(5, np.float32), groups=2), "gamma"),
    (lambda: ops.group_norm_backward(np.zeros((2, 6), np.float32), np.zeros((2, 6), np.float32), None,
                                     np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32), groups=2), "mean"),
    (lambda: ops.group_norm_backward(np.zeros((2, 6), np.float32), np.zeros((2, 5), np.float32), None,
                                     np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32), groups=2), "grad_y"),
])
def test_group_norm_op_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the layer --------------------------------------------------------------------------------------------

def test_group_normalization_weights_and_config():
    layer = layers.GroupNormalization(groups=2, gamma_regularizer=regularizers.L2(0.01),
                                      beta_regularizer=regularizers.L2(0.01), gamma_constraint=constraints.UnitNorm())
    layer.build((3, 4, 4))
    assert [w.path for w in layer.weights] == [f"{layer.name}/gamma", f"{layer.name}/beta"]
    assert [w.shape for w in layer.trainable_weights] == [(4,), (4,)] and not layer.non_trainable_weights
    assert layer.gamma.regularizer is not None and layer.gamma.constraint is not None
    config = layer.get_config()
    assert config["gamma_regularizer"]["config"] == {"l2": pytest.approx(0.01)}
    clone = layers.GroupNormalization.from_config(config)
    assert clone.get_config() == config


def test_group_norm_model_trains_with_its_weight_penalty():
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((8, 8, 3))
    h = layers.GroupNormalization(groups=4, gamma_regularizer=regularizers.L2(0.1))(
        layers.Conv2D(8, 3, padding="same")(inp))
    out = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(layers.Activation("relu")(h)))
    model = rconv.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    gn = [lay for lay in model.layers if isinstance(lay, layers.GroupNormalization)][0]
    assert [float(np.asarray(v)) for v in model.losses] == [pytest.approx(0.1 * 8)]  # 0.1 * sum(gamma ** 2)
    x = _data((64, 8, 8, 3), seed=3)
    y = (x[..., 0].mean(axis=(1, 2)) > 0.5).astype(int)
    losses = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history["loss"]
    assert losses[-1] < 0.9 * losses[0], f"a model with GroupNormalization did not train: {losses}"
    assert not np.allclose(gn.gamma.numpy(), 1.0)


# --- ports of keras/src/layers/normalization/group_normalization_test.py ----------------------------------

def test_keras_undefined_dim_error():
    with pytest.raises(ValueError, match="input tensor should have a defined dimension but the layer received an "
                                         "input with shape"):
        layers.GroupNormalization()(rconv.Input((2, 2, 2, None)))


def test_keras_groups_bigger_than_dim_error():
    with pytest.raises(ValueError, match="cannot be more than the number of channels"):
        layers.GroupNormalization(groups=5)(np.ones((2, 2, 2, 4)))


def test_keras_groups_not_a_multiple_of_dim_error():
    with pytest.raises(ValueError, match="must be a multiple of the number of channels"):
        layers.GroupNormalization(groups=3)(np.ones((2, 2, 2, 4)))


@pytest.mark.parametrize("bad", [0, -2, 1.5, "32"])
def test_keras_groups_rejects_invalid_values(bad):
    with pytest.raises(ValueError, match="argument `groups`"):
        layers.GroupNormalization(groups=bad)
    layers.GroupNormalization(groups=-1)


def test_keras_groups_instance_norm():
    x = np.array([[[-1.0, 1.0, 0, 2.0], [1.0, 3.0, -4, -2.0]]])
    a = layers.GroupNormalization(groups=-1, axis=-1, scale=False, center=False)(x)
    b = layers.GroupNormalization(groups=4, axis=-1, scale=False, center=False)(x)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(b, [[[-1.0, -1.0, 1.0, 1.0], [1.0, 1.0, -1.0, -1.0]]], atol=1e-3)


def test_keras_correctness_1d():
    x = np.array([[-1.0, -1.0, 1.0, 1.0, 2.0, 2.0, 0, -2.0]])
    np.testing.assert_allclose(layers.GroupNormalization(groups=1, axis=-1, scale=False, center=False)(x),
                               [[-0.898, -0.898, 0.539, 0.539, 1.257, 1.257, -0.180, -1.616]], atol=1e-3)
    np.testing.assert_allclose(layers.GroupNormalization(groups=2, axis=1, scale=False, center=False)(x),
                               [[-1.0, -1.0, 1.0, 1.0, 0.904, 0.904, -0.301, -1.507]], atol=1e-3)


def test_keras_correctness_2d():
    x = np.array([[[-1.0, -1.0, 2.0, 2.0], [1.0, 1.0, 0, -2.0]]])
    np.testing.assert_allclose(layers.GroupNormalization(groups=1, axis=-1, scale=False, center=False)(x),
                               [[[-0.898, -0.898, 1.257, 1.257], [0.539, 0.539, -0.180, -1.616]]], atol=1e-3)
    np.testing.assert_allclose(layers.GroupNormalization(groups=2, axis=2, scale=False, center=False)(x),
                               [[[-1.0, -1.0, 0.904, 0.904], [1.0, 1.0, -0.301, -1.507]]], atol=1e-3)


def test_keras_broadcasting_2d_channels_first():
    x = np.arange(16).reshape((1, 4, 2, 2)).astype("float32")
    block = [[[-1.5274, -1.0910], [-0.6546, -0.2182]], [[0.2182, 0.6546], [1.0910, 1.5274]]]
    np.testing.assert_allclose(layers.GroupNormalization(groups=2, axis=1)(x), [block + block], atol=1e-3)


def test_batch_axis_and_rank_1_are_refused_naming_the_layer():
    with pytest.raises(ValueError, match="'gn0'.*batch axis"):
        layers.GroupNormalization(groups=1, axis=0, name="gn0")(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="'gn1'.*rank >= 2"):
        layers.GroupNormalization(groups=1, name="gn1")(np.ones((4,), np.float32))
    with pytest.raises(TypeError, match="axis"):
        layers.GroupNormalization(axis=[1, 2])


# --- real Keras -------------------------------------------------------------------------------------------

sys.path.insert(0, str(FIXTURES))
from make_group_norm_fixtures import CASES as KERAS_CASES  # noqa: E402


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_matches_real_keras_outputs_and_gradients(name):
    kwargs, shape = KERAS_CASES[name]
    f = np.load(FIXTURES / "group_norm_expected.npz")
    layer = layers.GroupNormalization(**kwargs)
    layer.build(shape)
    names = [w.path.split("/")[-1] for w in layer.weights]
    layer.set_weights([f[f"{name}_{n}"] for n in names])
    y, ctx = layer.forward(f[f"{name}_x"], training=True)
    np.testing.assert_allclose(y, f[f"{name}_y"], atol=2e-5, err_msg=f"{name}: output")
    dx, grads = layer.backward(ctx, f[f"{name}_g"])
    np.testing.assert_allclose(dx, f[f"{name}_dx"], atol=5e-5, err_msg=f"{name}: input gradient")
    for n, g in zip(names, grads):
        np.testing.assert_allclose(g, f[f"{name}_d{n}"], rtol=1e-5, atol=5e-5, err_msg=f"{name}: d{n}")


def test_configs_equal_real_keras():
    saved = json.loads((FIXTURES / "group_norm_configs.json").read_text())["configs"]
    for name, (kwargs, shape) in KERAS_CASES.items():
        layer = layers.GroupNormalization(**kwargs, name=saved[name]["name"])
        layer.build(shape)
        assert layer.get_config() == saved[name], name


@pytest.mark.parametrize("filename", ["group_norm.keras", "group_norm.h5"])
def test_real_keras_group_norm_model_loads_with_keras_predictions(filename):
    f = np.load(FIXTURES / "group_norm_expected.npz")
    model = rconv.models.load_model(FIXTURES / filename)
    assert isinstance(model.get_layer("gn"), layers.GroupNormalization)
    np.testing.assert_allclose(model.predict(f["model_x"], verbose=0), f["model_y"], atol=1e-5)


@pytest.mark.keras
def test_rconv_group_norm_model_loads_in_real_keras(tmp_path):
    exe = keras_python()
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((6, 5, 4), name="image")
    h = layers.GroupNormalization(groups=2, name="gn")(layers.Conv2D(4, 3, padding="same")(inp))
    h = layers.GroupNormalization(groups=-1, axis=1, center=False)(h)
    model = rconv.Model(inp, layers.Dense(2, activation="softmax", name="probs")(layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = _data((4, 6, 5, 4), seed=5)
    model.train_on_batch(x, np.arange(4) % 2)
    np.savez(tmp_path / "inputs.npz", image=x)
    np.savez(tmp_path / "expected.npz", probs=model.predict(x, verbose=0))
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        check_in_keras(exe, tmp_path / name, tmp_path / "inputs.npz", tmp_path / "expected.npz")

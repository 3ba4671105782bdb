"""Regularizers and constraints: Keras 3's formulas (expected values from keras/src/regularizers/regularizers_test.py
and constraints_test.py), their gradients against finite differences, and their effect on training: weight
penalties join the reported loss and the gradient (`model.losses`), activity penalties are divided by the batch
size (Keras 3), constraints project the weights after each update."""
import numpy as np
import pytest

import rconv
from rconv import constraints, layers, regularizers


def _numeric_grad(f, x, eps=1e-6):
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


# --- the Keras test values ------------------------------------------------------------------------------------

def test_keras_values():
    rng = np.random.default_rng(0)
    value = rng.random((4, 4)).astype(np.float32)
    np.testing.assert_allclose(regularizers.L1(0.1)(value), 0.1 * np.abs(value).sum(), rtol=1e-6)
    np.testing.assert_allclose(regularizers.L2(0.1)(value), 0.1 * np.square(value).sum(), rtol=1e-6)
    np.testing.assert_allclose(regularizers.L1L2(l1=0.1, l2=0.2)(value),
                               0.1 * np.abs(value).sum() + 0.2 * np.square(value).sum(), rtol=1e-6)
    inputs = value / np.linalg.norm(value, axis=1, keepdims=True)
    expected = 0.1 * 0.5 * np.sum(np.abs(inputs @ inputs.T * (1.0 - np.eye(4)))) / (4.0 * 3.0 / 2.0)
    np.testing.assert_allclose(regularizers.OrthogonalRegularizer(factor=0.1, mode="rows")(value), expected,
                               rtol=1e-6)
    assert regularizers.L1(0.1)(np.zeros((4, 4))) == 0.0
    assert regularizers.L1(0.1)(np.ones((4, 4))) == regularizers.L1(0.1)(-np.ones((4, 4)))
    assert regularizers.L1L2(0.0, 0.0)(value) == 0.0
    big, small = np.full((4, 4), 10.0), np.full((4, 4), 0.1)
    assert regularizers.L2(1.0)(big) > regularizers.L1(1.0)(big)
    assert regularizers.L2(1.0)(small) < regularizers.L1(1.0)(small)


def test_get_and_config():
    assert isinstance(regularizers.get("l1l2"), regularizers.L1L2)
    assert isinstance(regularizers.get("l1"), regularizers.L1)
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert isinstance(regularizers.get("orthogonal_regularizer"), regularizers.OrthogonalRegularizer)
    assert regularizers.get(None) is None
    with pytest.raises(ValueError):
        regularizers.get("typo")
    for reg in (regularizers.L1(0.1), regularizers.L2(0.1), regularizers.L1L2(l1=0.01, l2=0.02),
                regularizers.OrthogonalRegularizer(factor=0.01, mode="columns")):
        again = regularizers.deserialize(regularizers.serialize(reg))
        assert type(again) is type(reg) and again.get_config() == reg.get_config()
    assert regularizers.serialize(regularizers.L2(0.5)) == {
        "module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.5}, "registered_name": None}
    with pytest.raises(ValueError, match=r'Expected one of \{"rows", "columns"\}. Received: mode=invalid_mode'):
        regularizers.OrthogonalRegularizer(factor=0.01, mode="invalid_mode")
    with pytest.raises(ValueError, match=r"must have rank 2. Received: inputs.shape=\(4, 4, 4\)"):
        regularizers.OrthogonalRegularizer(factor=0.1)(np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-1.0)


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.7), regularizers.L1L2(0.2, 0.5),
                                 regularizers.OrthogonalRegularizer(0.4, "rows"),
                                 regularizers.OrthogonalRegularizer(0.4, "columns")])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (6, 2)])
def test_gradients_match_finite_differences(reg, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape) + 0.05 * np.sign(rng.standard_normal(shape))  # away from |x| = 0
    np.testing.assert_allclose(reg.gradient(x), _numeric_grad(reg, x), rtol=1e-4, atol=1e-6)


# --- constraints: keras/src/constraints/constraints_test.py --------------------------------------------------

def _example_array():
    np.random.seed(3537)
    return (np.random.random((100, 100)) * 100.0 - 50.0).astype(np.float32)


def test_constraint_values():
    w = _example_array()
    out = constraints.MaxNorm(max_value=2)(w)
    assert np.all(np.sqrt(np.square(out).sum(axis=0)) <= 2 + 1e-5)
    out = constraints.NonNeg()(w)
    assert np.all(out >= 0) and np.array_equal(out[w > 0], w[w > 0])
    out = constraints.UnitNorm()(w)
    np.testing.assert_allclose(np.sqrt(np.square(out).sum(axis=0)), 1.0, atol=1e-5)
    out = constraints.MinMaxNorm(min_value=1, max_value=3)(w)
    norms = np.sqrt(np.square(out).sum(axis=0))
    assert np.all(norms >= 1 - 1e-5) and np.all(norms <= 3 + 1e-5)
    # MaxNorm leaves small columns alone and scales the others to exactly max_value (float64 reference).
    w = np.array([[0.5, 3.0], [0.5, 4.0]], np.float32)
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w), [[0.5, 1.2], [0.5, 1.6]], rtol=1e-5)
    for c in (constraints.MaxNorm(3, axis=1), constraints.NonNeg(), constraints.UnitNorm(axis=[0, 1]),
              constraints.MinMaxNorm(0.5, 2.0, rate=0.5)):
        again = constraints.deserialize(constraints.serialize(c))
        assert type(again) is type(c) and again.get_config() == c.get_config()
    assert isinstance(constraints.get("max_norm"), constraints.MaxNorm)
    assert isinstance(constraints.get("non_neg"), constraints.NonNeg)


# --- in training --------------------------------------------------------------------------------------------

def _pair(**dense_kwargs):
    """Two identical one-layer models, the first with `dense_kwargs`; SGD without momentum."""
    x = np.random.default_rng(5).standard_normal((7, 4)).astype(np.float32)
    y = np.random.default_rng(6).standard_normal((7, 3)).astype(np.float32)
    models = []
    for kwargs in (dense_kwargs, {}):
        rconv.utils.set_random_seed(11)
        model = rconv.Sequential([rconv.Input((4,)), layers.Dense(3, **kwargs)])
        model.compile(optimizer=rconv.optimizers.SGD(learning_rate=0.1), loss="mse")
        models.append(model)
    return x, y, models


def test_weight_penalty_joins_loss_and_gradient():
    x, y, (reg_model, plain) = _pair(kernel_regularizer=regularizers.L2(0.05), bias_regularizer="l1")
    k0, b0 = reg_model.layers[0].kernel.numpy(), reg_model.layers[0].bias.numpy()
    b0 = b0 + 0.25  # a non-zero bias, so the L1 sign term shows
    for m in (reg_model, plain):
        m.layers[0].bias.assign(b0)
    penalty = 0.05 * np.square(k0.astype(np.float64)).sum() + 0.01 * np.abs(b0.astype(np.float64)).sum()
    assert reg_model.losses == pytest.approx([0.05 * np.square(k0).sum(), 0.01 * np.abs(b0).sum()], rel=1e-5)
    loss_reg = reg_model.evaluate(x, y, verbose=0)
    loss_plain = plain.evaluate(x, y, verbose=0)
    assert loss_reg == pytest.approx(loss_plain + penalty, rel=1e-5)
    reg_model.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    dk = reg_model.layers[0].kernel.numpy() - plain.layers[0].kernel.numpy()
    db = reg_model.layers[0].bias.numpy() - plain.layers[0].bias.numpy()
    np.testing.assert_allclose(dk, -0.1 * 2 * 0.05 * k0, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(db, -0.1 * 0.01 * np.sign(b0), rtol=1e-4, atol=1e-7)


def test_activity_penalty_is_divided_by_batch_size():
    x, y, (reg_model, plain) = _pair(activity_regularizer=regularizers.L2(0.3))
    k, b = (v.numpy().astype(np.float64) for v in reg_model.layers[0].weights)
    out = x.astype(np.float64) @ k + b
    penalty = 0.3 * np.square(out).sum() / len(x)
    assert reg_model.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0) + penalty, rel=1e-5)
    reg_model.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    # d(penalty)/dk = 2 * 0.3 * x^T out / n, d/db = 2 * 0.3 * sum(out) / n
    dk = reg_model.layers[0].kernel.numpy() - plain.layers[0].kernel.numpy()
    db = reg_model.layers[0].bias.numpy() - plain.layers[0].bias.numpy()
    np.testing.assert_allclose(dk, -0.1 * 2 * 0.3 * x.T.astype(np.float64) @ out / len(x), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(db, -0.1 * 2 * 0.3 * out.sum(axis=0) / len(x), rtol=1e-4, atol=1e-6)


def test_activity_regularizer_inside_a_nested_model():
    inner = rconv.Sequential([rconv.Input((4,)), layers.Dense(3, activity_regularizer="l1", name="inner_dense")])
    outer = rconv.Sequential([rconv.Input((4,)), inner, layers.Dense(2)])
    outer.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    y = np.zeros((5, 2), np.float32)
    k, b = (v.numpy().astype(np.float64) for v in inner.layers[0].weights)
    penalty = 0.01 * np.abs(x @ k + b).sum() / 5
    pred = outer.predict(x, verbose=0).astype(np.float64)
    assert outer.evaluate(x, y, verbose=0) == pytest.approx(np.mean(pred ** 2) + penalty, rel=1e-5)


def test_regularized_layers_save_and_load(tmp_path):
    model = rconv.Sequential([rconv.Input((4,)),
                              layers.Dense(3, kernel_regularizer=regularizers.L1L2(0.01, 0.02),
                                           bias_constraint=constraints.NonNeg(),
                                           activity_regularizer=regularizers.L2(0.5))])
    config = model.layers[0].get_config()
    assert config["kernel_regularizer"]["class_name"] == "L1L2"
    assert config["activity_regularizer"] == regularizers.serialize(regularizers.L2(0.5))
    assert config["bias_constraint"]["class_name"] == "NonNeg"
    assert "activity_regularizer" not in layers.Dense(2).get_config()  # Keras writes it only when set
    for ext in ("keras", "h5"):
        path = tmp_path / f"m.{ext}"
        model.save(path)
        loaded = rconv.models.load_model(path)
        dense = loaded.layers[0]
        assert dense.kernel_regularizer.get_config() == {"l1": 0.01, "l2": 0.02}
        assert isinstance(dense.bias_constraint, constraints.NonNeg)
        assert dense.activity_regularizer.get_config() == {"l2": 0.5}
        assert dense.kernel.regularizer is dense.kernel_regularizer

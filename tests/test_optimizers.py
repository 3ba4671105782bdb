"""Optimizers: several in-place steps equal Keras 3's formulas written here in float64 NumPy."""
import numpy as np
import pytest

from rconv import optimizers
from rconv.variables import Variable

STEPS = 5


def run(optimizer, seed=0):
    """Apply STEPS updates to two variables; return (float32 results, float64 params, grads per step)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((3, 4)), rng.standard_normal((4,))]
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(STEPS)]
    variables = [Variable(p, name=f"v{i}") for i, p in enumerate(params)]
    for step_grads in grads:
        optimizer.apply([g.astype(np.float32) for g in step_grads], variables)
    assert optimizer.iterations == STEPS
    return [v.numpy() for v in variables], params, grads


def check(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_sgd_plain():
    got, params, grads = run(optimizers.SGD(learning_rate=0.1))
    p = [x.copy() for x in params]
    for step in grads:
        p = [pi - 0.1 * g for pi, g in zip(p, step)]
    check(got, p)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    lr, mom = 0.05, 0.9
    got, params, grads = run(optimizers.SGD(learning_rate=lr, momentum=mom, nesterov=nesterov))
    p = [x.copy() for x in params]
    m = [np.zeros_like(x) for x in params]
    for step in grads:
        for i, g in enumerate(step):
            m[i] = mom * m[i] - lr * g
            p[i] = p[i] + (mom * m[i] - lr * g if nesterov else m[i])
    check(got, p)


def test_rmsprop():
    lr, rho, eps = 0.01, 0.9, 1e-7
    got, params, grads = run(optimizers.RMSprop(learning_rate=lr))
    p = [x.copy() for x in params]
    v = [np.zeros_like(x) for x in params]
    for step in grads:
        for i, g in enumerate(step):
            v[i] = rho * v[i] + (1 - rho) * g * g
            p[i] = p[i] - lr * g / np.sqrt(v[i] + eps)
    check(got, p)


def test_adam():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    got, params, grads = run(optimizers.Adam(learning_rate=lr))
    p = [x.copy() for x in params]
    m = [np.zeros_like(x) for x in params]
    v = [np.zeros_like(x) for x in params]
    for t, step in enumerate(grads, start=1):
        for i, g in enumerate(step):
            m[i] += (g - m[i]) * (1 - b1)
            v[i] += (g * g - v[i]) * (1 - b2)
            p[i] = p[i] - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m[i] / (np.sqrt(v[i]) + eps)
    check(got, p)


def test_learning_rate_is_settable_between_steps():
    opt = optimizers.SGD(learning_rate=0.1)
    var = Variable(np.ones(2), name="w")
    opt.apply([np.ones(2, np.float32)], [var])
    opt.learning_rate = 0.01
    opt.apply([np.ones(2, np.float32)], [var])
    np.testing.assert_allclose(var.numpy(), 1 - 0.1 - 0.01, rtol=1e-6)


def test_defaults_legacy_lr_and_config_round_trip():
    assert optimizers.SGD().learning_rate == 0.01
    rms = optimizers.get("rmsprop")
    assert (rms.learning_rate, rms.rho, rms.epsilon) == (0.001, 0.9, 1e-7)
    adam = optimizers.Adam(lr=0.005)
    assert adam.learning_rate == 0.005 and (adam.beta_1, adam.beta_2) == (0.9, 0.999)
    for opt in [optimizers.SGD(0.2, momentum=0.5, nesterov=True), rms, adam]:
        config = opt.get_config()
        assert type(opt).from_config(config).get_config() == config
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert isinstance(optimizers.get(optimizers.serialize(adam)), optimizers.Adam)


def test_unknown_optimizer_lists_accepted_names():
    with pytest.raises(ValueError, match=r"'ftrl'.*\['adadelta', 'adagrad', 'adam', 'adamax', 'adamw', 'lion', "
                                         r"'nadam', 'rmsprop', 'sgd'\]"):
        optimizers.get("ftrl")

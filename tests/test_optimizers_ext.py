"""Optimizers beyond SGD/RMSprop/Adam basics: Keras 3's own test values (keras/src/optimizers/*_test.py), float64
NumPy references of every formula over several steps (odd shapes, size 1) with clipping, weight decay and
constraints, configs, `.keras` round trips that resume training exactly, and (marked `keras`) real Keras."""
import json
import subprocess
import textwrap
import warnings

import numpy as np
import pytest

import rconv
from keras_check import keras_python
from rconv import constraints, layers, optimizers
from rconv.optimizers import schedules
from rconv.variables import Variable

SHAPES = [(3, 5), (7,), (1,), (2, 3, 1, 3)]
STEPS = 6


# --- Keras's test values -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls, expected", [
    ("Adadelta", [0.9993, 1.9993, 2.9993, 3.9993]), ("Adagrad", [0.5233, 1.5007, 2.5005, 3.5061]),
    ("Adamax", [0.5, 1.5, 2.5, 3.5]), ("Nadam", [0.4686, 1.4686, 2.4686, 3.4686]),
    ("AdamW", [0.4980, 1.4960, 2.494, 3.492]), ("Lion", [0.5, 1.5, 2.5, 3.5]),
    ("RMSprop", [-0.5811, 0.4189, 1.4189, 2.4189]), ("Adam", [0.5, 1.5, 2.5, 3.5])])
def test_keras_single_step(cls, expected):
    var = Variable(np.array([1.0, 2.0, 3.0, 4.0]), name="v")
    getattr(optimizers, cls)(learning_rate=0.5).apply_gradients([(np.array([1.0, 6.0, 7.0, 2.0]), var)])
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-4, atol=1e-4)


GOLDEN = {  # keras/src/optimizers/<name>_test.py::test_correctness_with_golden
    "Adadelta": (dict(learning_rate=1.0, rho=0.8, epsilon=1e-6),
                 [[0.9978], [0.9947], [0.9915], [0.9882], [0.9849]]),
    "Adagrad": (dict(learning_rate=0.2, initial_accumulator_value=0.3, epsilon=1e-6), [
        [0.9963] * 10,
        [0.9604, 0.9278, 0.9003, 0.8784, 0.8615, 0.8487, 0.8388, 0.8313, 0.8255, 0.8209],
        [0.9251, 0.8629, 0.8137, 0.7768, 0.7497, 0.7298, 0.7151, 0.704, 0.6956, 0.6891],
        [0.8903, 0.8012, 0.7342, 0.6862, 0.6521, 0.6277, 0.6099, 0.5967, 0.5867, 0.579],
        [0.856, 0.7422, 0.6604, 0.6037, 0.5644, 0.5367, 0.5168, 0.5021, 0.491, 0.4825]]),
    "Adamax": (dict(learning_rate=0.2, beta_1=0.85, beta_2=0.95, epsilon=1e-6), [
        [0.8] * 10,
        [0.6827, 0.6873, 0.6888, 0.6896, 0.6901, 0.6904, 0.6906, 0.6908, 0.6909, 0.691],
        [0.5333, 0.5407, 0.5431, 0.5444, 0.5451, 0.5456, 0.546, 0.5462, 0.5464, 0.5466],
        [0.368, 0.3773, 0.3804, 0.382, 0.3829, 0.3835, 0.384, 0.3843, 0.3846, 0.3848],
        [0.1933, 0.204, 0.2076, 0.2094, 0.2105, 0.2112, 0.2117, 0.2121, 0.2124, 0.2126]]),
    "Nadam": (dict(learning_rate=0.5, beta_1=0.5, beta_2=0.67, epsilon=1e-5), [
        [0.4281] * 10,
        [-0.1738, -0.1731, -0.1726, -0.1723, -0.1721, -0.172, -0.1719, -0.1718, -0.1718, -0.1717],
        [-0.7115, -0.7103, -0.7096, -0.7092, -0.709, -0.7088, -0.7086, -0.7085, -0.7085, -0.7084],
        [-1.2335, -1.2322, -1.2313, -1.2309, -1.2306, -1.2304, -1.2302, -1.2301, -1.23, -1.2299],
        [-1.7492, -1.7478, -1.7469, -1.7464, -1.7461, -1.7459, -1.7457, -1.7456, -1.7455, -1.7454]]),
    "AdamW": (dict(learning_rate=1.0, weight_decay=0.5, epsilon=2), [
        [0.4998] * 10,
        [0.2486, 0.2475, 0.2463, 0.2451, 0.244, 0.2428, 0.2417, 0.2405, 0.2394, 0.2382],
        [0.1223, 0.1198, 0.1174, 0.1149, 0.1124, 0.11, 0.1075, 0.1051, 0.1027, 0.1003],
        [0.0586, 0.0549, 0.0512, 0.0475, 0.0439, 0.0402, 0.0366, 0.033, 0.0294, 0.0258],
        [0.0263, 0.0215, 0.0167, 0.012, 0.0073, 0.0026, -0.0021, -0.0067, -0.0113, -0.0159]]),
    "Lion": ({}, [[0.999], [0.998], [0.997], [0.996], [0.995]]),
    "RMSprop": (dict(centered=True), [[0.9967], [0.9933], [0.9908], [0.9885], [0.9864]]),
    "Adam": (dict(amsgrad=True), [[0.999], [0.9982], [0.9974], [0.9965], [0.9955]]),
}


@pytest.mark.parametrize("cls", sorted(GOLDEN))
def test_keras_correctness_with_golden(cls):
    config, golden = GOLDEN[cls]
    opt = getattr(optimizers, cls)(**config)
    x = Variable(np.ones(10), name="x")
    grads = np.arange(0.1, 1.1, 0.1)[:10]
    opt.apply_gradients([(np.full(10, 0.01), x)])
    for row in golden:
        np.testing.assert_allclose(x.numpy(), np.broadcast_to(row, (10,)), rtol=5e-4, atol=5e-4)
        opt.apply_gradients([(grads, x)])


@pytest.mark.parametrize("cls", ["SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Nadam",
                                 "Lion"])
def test_keras_weight_decay_and_exclusions(cls):
    make = getattr(optimizers, cls)
    zero = np.zeros(1)  # rconv Variables are at least 1-D
    var1, var2, var3 = (Variable([2.0], name=n) for n in ("v1", "exclude", "v3"))
    make(learning_rate=1.0, weight_decay=0.004).apply_gradients([(zero, var1)])
    opt2 = make(learning_rate=1.0, weight_decay=0.004)
    opt2.exclude_from_weight_decay(var_names=["exclude"])
    opt2.apply_gradients([(zero, var1), (zero, var2)])
    opt3 = make(learning_rate=1.0, weight_decay=0.004)
    opt3.exclude_from_weight_decay(var_list=[var3])
    opt3.apply_gradients([(zero, var1), (zero, var3)])
    if cls not in ("Adadelta", "Adagrad", "RMSprop", "Nadam"):  # zero gradients still move these
        np.testing.assert_allclose(var1.numpy(), 1.9760959, atol=1e-6)
    assert var2.numpy() == 2.0 and var3.numpy() == 2.0
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt3.exclude_from_weight_decay(var_names=["x"])


def test_keras_clipping_examples():
    for opt in (optimizers.SGD(clipnorm=1), optimizers.Adam(clipnorm=1)):
        np.testing.assert_allclose(opt._clip_gradients([np.array([100.0, 100.0], np.float32)])[0],
                                   [2 ** 0.5 / 2] * 2, rtol=1e-6)
    np.testing.assert_allclose(optimizers.SGD(clipvalue=1)._clip_gradients([np.array([100.0, -100.0])])[0],
                               [1.0, -1.0])
    grad = np.array([50.0, 100.0], np.float32)
    np.testing.assert_allclose(optimizers.SGD(global_clipnorm=1)._clip_gradients([grad])[0],
                               grad / np.linalg.norm(grad), rtol=1e-6)
    zero = optimizers.SGD(global_clipnorm=1)._clip_gradients([np.zeros(3, np.float32)])[0]
    np.testing.assert_array_equal(zero, 0.0)
    with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
        optimizers.SGD(clipnorm=0.1, clipvalue=0.1)
    assert optimizers.SGD(global_clipnorm=0.1).global_clipnorm == 0.1


def test_keras_ema_steps_overwrite_and_finalize():
    v = Variable(np.array([[3.0, 4.0], [5.0, 6.0]]), name="v")
    grads = np.ones((2, 2))
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3)
    average = None
    for want_v, want_avg in [([[2, 3], [4, 5]], [[2, 3], [4, 5]]), ([[1, 2], [3, 4]], [[1.9, 2.9], [3.9, 4.9]]),
                             ([[1.71, 2.71], [3.71, 4.71]], [[1.71, 2.71], [3.71, 4.71]])]:
        opt.apply_gradients([(grads, v)])
        average = opt._slots_for(v)[0]
        np.testing.assert_allclose(v.numpy(), want_v, rtol=1e-6)
        np.testing.assert_allclose(average, want_avg, rtol=1e-6)
    adam = optimizers.Adam(learning_rate=1.0, use_ema=True, ema_momentum=0.9)
    w = Variable(np.array([1.0, 2.0]), name="w")
    adam.apply_gradients([(np.array([0.1, 0.2]), w)])
    v1 = w.numpy()
    adam.apply_gradients([(np.array([0.1, 0.2]), w)])
    expected = 0.9 * v1 + 0.1 * w.numpy()
    adam.finalize_variable_values([w])
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    assert adam._slot_names == ("average", "momentum", "velocity")
    with pytest.raises(ValueError, match="ema_momentum"):
        optimizers.SGD(use_ema=True, ema_momentum=1.5)


def test_keras_constraints_empty_gradients_callable_lr_and_get():
    v = Variable(np.random.default_rng(0).random((2, 2)) - 1.0, name="v", constraint=constraints.NonNeg())
    optimizers.SGD(learning_rate=0.0001).apply_gradients([(np.zeros((2, 2)), v)])
    assert v.numpy().min() == 0.0
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        optimizers.SGD(learning_rate=1.0).apply_gradients([(None, Variable(np.ones(2), name="a"))])
    v2 = Variable(np.array([[3.0, 4.0], [5.0, 6.0]]), name="v2")
    opt = optimizers.SGD(learning_rate=1.0)
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        opt.apply_gradients([(None, Variable(np.ones(2), name="a")), (np.ones((2, 2)), v2)])
    np.testing.assert_allclose(v2.numpy(), [[2, 3], [4, 5]])
    w = Variable(np.array([[1.0, 2.0], [3.0, 4.0]]), name="w")
    opt = optimizers.SGD(learning_rate=lambda: 0.1)
    opt.apply_gradients([(np.ones((2, 2)), w)])
    np.testing.assert_allclose(w.numpy(), [[0.9, 1.9], [2.9, 3.9]], rtol=1e-6)
    assert opt.iterations == 1
    assert isinstance(optimizers.get("adamw"), optimizers.AdamW) and optimizers.get(None) is None
    with pytest.raises(ValueError):
        optimizers.get("typo")
    with pytest.raises(ValueError, match="weight_decay=None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(NotImplementedError, match="loss_scale_factor"):
        optimizers.Adam(loss_scale_factor=128.0)
    with pytest.raises(NotImplementedError, match="gradient_accumulation_steps"):
        optimizers.Adam(gradient_accumulation_steps=4)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(beta3=0.1)


@pytest.mark.parametrize("size", [0, 1, 5, (1 << 14) + 3, 3 * (1 << 14)])
def test_kernels_cover_every_chunk(size):
    """The kernels split buffers into chunks run in parallel: every element is updated, whatever the size."""
    rng = np.random.default_rng(size)
    p, g = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(np.float32)
    m, u = np.zeros(size, np.float32), np.zeros(size, np.float32)
    want = p - 0.1 * g / ((1 - 0.9) * (np.abs(g) + 1e-7)) * (1 - 0.9)  # Adamax's first step
    rconv.ops.adamax_update(p, g, m, u, 0.1, step=1)
    np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(u, np.abs(g))
    assert rconv.ops.sum_squares(g) == pytest.approx(float(np.sum(g.astype(np.float64) ** 2)), rel=1e-12)


def test_kernel_arguments_are_checked():
    p, s = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="adagrad_update: `accumulator` has shape"):
        rconv.ops.adagrad_update(p, np.ones((2, 3)), np.zeros(6, np.float32), 0.1)
    with pytest.raises(ValueError, match="nadam_update: step is the 1-based iteration count, got 0"):
        rconv.ops.nadam_update(p, np.ones((2, 3)), s, s.copy(), 0.1, step=0)
    with pytest.raises(TypeError, match="lion_update: `beta_1` must be a real number"):
        rconv.ops.lion_update(p, np.ones((2, 3)), s, 0.1, beta_1="x")
    with pytest.raises(ValueError, match="rmsprop_update: momentum 0.5 needs a momentum_buf"):
        rconv.ops.rmsprop_update(p, np.ones((2, 3)), s, 0.1, momentum=0.5)
    with pytest.raises(ValueError, match="the gradient of 'w' has shape"):
        optimizers.Adam().apply([np.ones(4)], [Variable(np.ones(3), name="w")])
    for bad in (np.ones((2, 3)), np.ones((2, 3), np.float32)[:, ::2]):  # float64 / not contiguous: refused
        with pytest.raises((TypeError, ValueError), match="adadelta_update"):
            rconv.ops.adadelta_update(bad, np.ones(bad.shape), s, s.copy(), 0.1)


# --- float64 references --------------------------------------------------------------------------------
def ref_update(cls, c, p, g, s, t, lr):
    """One Keras update in float64; `s` holds the slots (created on first use), `t` is 1-based."""
    def slot(name, init=0.0):
        return s.setdefault(name, np.full_like(p, init))
    if cls == "SGD":
        mu = c.get("momentum", 0.0)
        if not mu:
            return p - lr * g
        m = s["momentum"] = mu * slot("momentum") - lr * g
        return p + (mu * m - lr * g if c.get("nesterov") else m)
    if cls == "RMSprop":
        rho, mu, eps = c.get("rho", 0.9), c.get("momentum", 0.0), c.get("epsilon", 1e-7)
        v = s["velocity"] = rho * slot("velocity") + (1 - rho) * g * g
        if c.get("centered"):
            a = s["average_gradient"] = rho * slot("average_gradient") + (1 - rho) * g
            inc = lr * g / np.sqrt(v - a * a + eps)
        else:
            inc = lr * g / np.sqrt(v + eps)
        if mu > 0:
            s["momentum"] = mu * slot("momentum") + inc
            return p - s["momentum"]
        return p - inc
    if cls in ("Adam", "AdamW", "Adamax", "Nadam"):
        b1, b2, eps = c.get("beta_1", 0.9), c.get("beta_2", 0.999), c.get("epsilon", 1e-7)
        m = s["m"] = slot("m") + (g - slot("m")) * (1 - b1)
        if cls == "Adamax":
            u = s["u"] = np.maximum(b2 * slot("u"), np.abs(g))
            return p - lr * m / ((1 - b1 ** t) * (u + eps))
        v = s["v"] = slot("v") + (g * g - slot("v")) * (1 - b2)
        if cls == "Nadam":
            u = [b1 * (1 - 0.5 * 0.96 ** k) for k in range(1, t + 2)]
            prod_t = np.prod(u[:t])
            m_hat = u[t] * m / (1 - prod_t * u[t]) + (1 - u[t - 1]) * g / (1 - prod_t)
            return p - lr * m_hat / (np.sqrt(v / (1 - b2 ** t)) + eps)
        if c.get("amsgrad"):
            v = s["vhat"] = np.maximum(slot("vhat"), v)
        return p - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    if cls == "Adadelta":
        rho, eps = c.get("rho", 0.95), c.get("epsilon", 1e-7)
        a = s["a"] = rho * slot("a") + (1 - rho) * g * g
        delta = -np.sqrt(slot("d") + eps) * g / np.sqrt(a + eps)
        s["d"] = rho * s["d"] + (1 - rho) * delta * delta
        return p + lr * delta
    if cls == "Adagrad":
        acc = s["acc"] = slot("acc", c.get("initial_accumulator_value", 0.1)) + g * g
        return p - lr * g / np.sqrt(acc + c.get("epsilon", 1e-7))
    if cls == "Lion":
        b1, b2 = c.get("beta_1", 0.9), c.get("beta_2", 0.99)
        new = p - lr * np.sign(slot("m") * b1 + g * (1 - b1))
        s["m"] = s["m"] * b2 + g * (1 - b2)
        return new
    raise AssertionError(cls)


def ref_clip(base, grads):
    if base.get("clipnorm"):
        c = base["clipnorm"]
        return [g * c / max(np.sqrt(np.sum(g * g)), c) for g in grads]
    if base.get("global_clipnorm"):
        c = base["global_clipnorm"]
        norm = np.sqrt(sum(np.sum(g * g) for g in grads))
        return [g * c * min(1 / norm, 1 / c) for g in grads]
    if base.get("clipvalue"):
        return [np.clip(g, -base["clipvalue"], base["clipvalue"]) for g in grads]
    return grads


def ref_run(cls, config, params, grads_per_step, lr_of_step, nonneg=()):
    config = dict(config)
    wd = config.get("weight_decay", 0.004 if cls == "AdamW" else None)
    params, states = [p.copy() for p in params], [{} for _ in params]
    for t, grads in enumerate(grads_per_step, start=1):
        lr = lr_of_step(t - 1)
        grads = ref_clip(config, grads)
        for i, g in enumerate(grads):
            p = params[i] - params[i] * wd * lr if wd is not None else params[i]
            p = ref_update(cls, config, p, g, states[i], t, lr)
            params[i] = np.maximum(p, 0) if i in nonneg else p
    return params


CASES = [("SGD", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
         ("RMSprop", dict(learning_rate=0.01, momentum=0.5)),
         ("RMSprop", dict(learning_rate=0.01, centered=True)),
         ("RMSprop", dict(learning_rate=0.01, momentum=0.3, centered=True, rho=0.8)),
         ("Adam", dict(learning_rate=0.01, amsgrad=True)),
         ("AdamW", dict(learning_rate=0.01, weight_decay=0.1)), ("AdamW", dict(learning_rate=0.01, amsgrad=True)),
         ("Adadelta", dict(learning_rate=1.0, rho=0.8)),
         ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.3)),
         ("Adamax", dict(learning_rate=0.02, beta_1=0.85, beta_2=0.95)), ("Nadam", dict(learning_rate=0.01)),
         ("Nadam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.67, epsilon=1e-5)),
         ("Lion", dict(learning_rate=0.01, beta_1=0.8))]
BASES = [{}, {"clipnorm": 0.5}, {"global_clipnorm": 1.0}, {"clipvalue": 0.3}, {"weight_decay": 0.05}]


def random_problem(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) * rng.uniform(0.2, 3) for s in SHAPES] for _ in range(STEPS)]
    return params, [[g.astype(np.float32).astype(np.float64) for g in step] for step in grads]


def run_rconv(opt, params, grads, variables=None):
    variables = variables or [Variable(p, name=f"v{i}", path=f"layer/v{i}") for i, p in enumerate(params)]
    for step in grads:
        opt.apply([g.astype(np.float32) for g in step], variables)
    return variables


@pytest.mark.parametrize("base", BASES, ids=lambda b: "-".join(b) or "plain")
@pytest.mark.parametrize("cls, config", CASES, ids=[f"{c}{i}" for i, (c, _) in enumerate(CASES)])
def test_steps_match_float64_reference(cls, config, base):
    config = {**config, **base}
    params, grads = random_problem(hash((cls, tuple(sorted(config)))) % 1000)
    opt = getattr(optimizers, cls)(**config)
    got = run_rconv(opt, params, grads)
    want = ref_run(cls, config, params, grads, lambda step: config["learning_rate"])
    assert opt.iterations == STEPS
    for v, w in zip(got, want):
        np.testing.assert_allclose(v.numpy(), w, rtol=2e-4, atol=2e-5, err_msg=f"{cls} {config} {v.path}")


@pytest.mark.parametrize("cls, config", CASES[::2], ids=[c for c, _ in CASES[::2]])
def test_schedule_drives_the_steps_and_constraints_follow_each_update(cls, config):
    schedule = schedules.ExponentialDecay(config["learning_rate"], decay_steps=2, decay_rate=0.5)
    params, grads = random_problem(7)
    variables = [Variable(p, name=f"v{i}", path=f"l/v{i}", constraint=constraints.NonNeg() if i == 0 else None)
                 for i, p in enumerate(params)]
    opt = getattr(optimizers, cls)(**{**config, "learning_rate": schedule})
    lrs = []
    for step in grads:
        lrs.append(opt.learning_rate)
        opt.apply([g.astype(np.float32) for g in step], variables)
    want = ref_run(cls, config, params, grads, lambda t: config["learning_rate"] * 0.5 ** (t / 2), nonneg=(0,))
    np.testing.assert_allclose(lrs, [config["learning_rate"] * 0.5 ** (t / 2) for t in range(STEPS)], rtol=1e-6)
    assert variables[0].numpy().min() >= 0
    for v, w in zip(variables, want):
        np.testing.assert_allclose(v.numpy(), w, rtol=2e-4, atol=2e-5)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1


def test_slot_names_and_keras_variable_order():
    kernel, bias = Variable(np.ones((2, 3)), name="kernel", path="dense/kernel"), Variable(np.ones(3), name="bias",
                                                                                           path="dense/bias")
    expected = {  # the order real Keras 3.15 gives optimizer.variables[2:] (iteration, learning_rate first)
        optimizers.RMSprop(momentum=0.5, centered=True): ["kernel_velocity", "bias_velocity", "kernel_momentum",
                                                         "bias_momentum", "kernel_average_gradient",
                                                         "bias_average_gradient"],
        optimizers.Adam(amsgrad=True): ["kernel_momentum", "kernel_velocity", "bias_momentum", "bias_velocity",
                                        "kernel_velocity_hat", "bias_velocity_hat"],
        optimizers.Adadelta(): ["kernel_accumulated_grad", "kernel_accumulated_delta_var", "bias_accumulated_grad",
                                "bias_accumulated_delta_var"],
        optimizers.Adamax(): ["kernel_momentum", "kernel_norm", "bias_momentum", "bias_norm"],
        optimizers.Adam(use_ema=True): ["kernel_average", "bias_average", "kernel_momentum", "kernel_velocity",
                                        "bias_momentum", "bias_velocity"],
        optimizers.SGD(): [], optimizers.Lion(): ["kernel_momentum", "bias_momentum"],
        optimizers.Adagrad(): ["kernel_accumulator", "bias_accumulator"],
    }
    for opt, names in expected.items():
        opt.build([kernel, bias])
        order = opt.keras_slot_order([kernel, bias])
        assert [n for n, _ in order] == ["dense_" + n for n in names], type(opt).__name__
        assert sorted(opt._slot_names) == sorted({n.split("_", 1)[1] for n in names})
    np.testing.assert_array_equal(optimizers.Adagrad(initial_accumulator_value=0.25)._slots_for(bias)[0], 0.25)


@pytest.mark.parametrize("name", ["Adadelta", "Adagrad", "Adamax", "Nadam", "AdamW", "Lion", "RMSprop", "Adam"])
def test_config_round_trip_keras_keys(name):
    cls = getattr(optimizers, name)
    opt = cls(learning_rate=0.05, clipnorm=1.5, weight_decay=0.01, name="mine")
    config = opt.get_config()
    assert list(config)[:11] == ["name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
                                 "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency",
                                 "loss_scale_factor", "gradient_accumulation_steps"]
    assert cls.from_config(config).get_config() == config
    entry = optimizers.serialize(opt)
    assert entry["module"] == "keras.optimizers" and entry["class_name"] == name
    assert optimizers.deserialize(json.loads(json.dumps(entry))).get_config() == config
    sched = cls(learning_rate=schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=5))
    entry = json.loads(json.dumps(optimizers.serialize(sched)))
    assert entry["config"]["learning_rate"]["class_name"] == "CosineDecay"
    back = optimizers.get(entry)
    assert isinstance(back._learning_rate, schedules.CosineDecay) and back.get_config() == sched.get_config()


# --- .keras round trips -----------------------------------------------------------------------------------
RESUME = [optimizers.Adadelta(learning_rate=0.5), optimizers.Adagrad(learning_rate=0.05),
          optimizers.Adamax(learning_rate=0.01), optimizers.Nadam(learning_rate=0.01),
          optimizers.AdamW(learning_rate=0.01, clipnorm=1.0), optimizers.Lion(learning_rate=0.001),
          optimizers.RMSprop(momentum=0.5, centered=True), optimizers.Adam(amsgrad=True, global_clipnorm=0.5),
          optimizers.SGD(learning_rate=schedules.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01]), momentum=0.9),
          optimizers.Adam(learning_rate=schedules.InverseTimeDecay(0.01, 1, 0.5), weight_decay=0.01),
          optimizers.Adam(use_ema=True)]


@pytest.mark.parametrize("opt", RESUME, ids=lambda o: type(o).__name__)
def test_keras_file_resumes_the_optimizer_exactly(opt, tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)

    def build():
        rconv.utils.set_random_seed(3)
        model = rconv.Sequential([rconv.Input((5,)), layers.Dense(4, activation="relu",
                                                                  kernel_constraint=constraints.MaxNorm(1.5)),
                                  layers.Dense(3)])
        model.compile(optimizer=optimizers.deserialize(optimizers.serialize(opt)), loss="mse")
        return model
    model, straight = build(), build()
    for _ in range(3):
        model.train_on_batch(x, y)
        straight.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = rconv.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is type(opt) and loaded.optimizer.iterations == 3
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(model.trainable_weights, loaded.trainable_weights):
        for sa, sb in zip(model.optimizer._slots_for(a), loaded.optimizer._slots_for(b)):
            np.testing.assert_array_equal(sa, sb)
    for _ in range(2):
        straight.train_on_batch(x, y)
        loaded.train_on_batch(x, y)
    for a, b in zip(straight.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert np.linalg.norm(loaded.trainable_weights[0].numpy(), axis=0).max() <= 1.5 + 1e-5


# --- real Keras (subprocess) ------------------------------------------------------------------------------
KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    data = np.load(sys.argv[1])
    out = {}
    for key, (cls, config) in json.loads(open(sys.argv[2]).read()).items():
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(config["learning_rate"])
        opt = getattr(keras.optimizers, cls)(**config)
        vs = [keras.Variable(data[f"p{i}"], name=f"v{i}") for i in range(int(data["n"]))]
        for t in range(int(data["steps"])):
            opt.apply_gradients([(data[f"g{t}_{i}"], v) for i, v in enumerate(vs)])
        out[key] = [v.numpy().tolist() for v in vs]
    print(json.dumps(out))
""")


@pytest.mark.keras
def test_steps_match_real_keras(tmp_path):
    exe = keras_python()
    params, grads = random_problem(11)
    arrays = {"n": len(params), "steps": STEPS, **{f"p{i}": p.astype(np.float32) for i, p in enumerate(params)},
              **{f"g{t}_{i}": g.astype(np.float32) for t, step in enumerate(grads) for i, g in enumerate(step)}}
    np.savez(tmp_path / "data.npz", **arrays)
    cases = {f"{i}-{j}": (cls, {**config, **base}) for i, (cls, config) in enumerate(CASES)
             for j, base in enumerate(BASES)}
    cases["sched"] = ("Adam", {"learning_rate": schedules.serialize(schedules.CosineDecayRestarts(0.01, 2)),
                               "use_ema": True, "ema_overwrite_frequency": 4})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "run.py").write_text(KERAS_SCRIPT)
    proc = subprocess.run([exe, str(tmp_path / "run.py"), str(tmp_path / "data.npz"), str(tmp_path / "cases.json")],
                          capture_output=True, text=True, timeout=600, env={"KERAS_BACKEND": "tensorflow",
                                                                            "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, (cls, config) in cases.items():
        opt = optimizers.deserialize({"class_name": cls, "config": config})
        got = run_rconv(opt, params, grads)
        for v, want in zip(got, expected[key]):
            np.testing.assert_allclose(v.numpy(), np.asarray(want), rtol=1e-4, atol=1e-5, err_msg=f"{key} {config}")


KERAS_RESUME = textwrap.dedent("""
    import os, sys, warnings
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, keras
    d, n = sys.argv[1], int(sys.argv[2])
    x, y = np.load(f"{d}/x.npy"), np.load(f"{d}/y.npy")
    for i in range(n):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a skipped optimizer state is a failure
            m = keras.models.load_model(f"{d}/rconv{i}.keras")
        m.train_on_batch(x, y)
        np.savez(f"{d}/keras{i}.npz", *m.get_weights())
        m.train_on_batch(x, y)
        m.save(f"{d}/keras{i}.keras")
    print("OK")
""")


@pytest.mark.keras
def test_optimizer_state_round_trips_with_real_keras(tmp_path):
    """rconv -> Keras: Keras resumes rconv's state (written in Keras's variable order by `keras_variables`);
    Keras -> rconv: rconv resumes Keras's."""
    exe = keras_python()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((6, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    models = []
    for i, opt in enumerate(RESUME):
        rconv.utils.set_random_seed(3)
        model = rconv.Sequential([rconv.Input((5,)), layers.Dense(4, activation="relu"), layers.Dense(3)])
        model.compile(optimizer=optimizers.deserialize(optimizers.serialize(opt)), loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(tmp_path / f"rconv{i}.keras")
        models.append(model)
    proc = subprocess.run([exe, "-c", KERAS_RESUME, str(tmp_path), str(len(RESUME))], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
    for i, (opt, model) in enumerate(zip(RESUME, models)):
        model.train_on_batch(x, y)
        keras_weights = np.load(tmp_path / f"keras{i}.npz")
        for j, w in enumerate(model.get_weights()):
            np.testing.assert_allclose(w, keras_weights[f"arr_{j}"], rtol=1e-5, atol=1e-6,
                                       err_msg=f"Keras resuming rconv's {type(opt).__name__} state")
        model.train_on_batch(x, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded = rconv.saving.load_model(tmp_path / f"keras{i}.keras")
        assert loaded.optimizer.iterations == 5
        for a, b in zip(model.trainable_weights, loaded.trainable_weights):
            for sa, sb in zip(model.optimizer._slots_for(a), loaded.optimizer._slots_for(b)):
                np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)
        model.train_on_batch(x, y)
        loaded.train_on_batch(x, y)
        for a, b in zip(model.get_weights(), loaded.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"rconv resuming Keras's {opt.name}")


def test_fit_ends_with_the_moving_average_weights():
    """Keras: with use_ema, fit() ends by writing the moving averages into the weights."""
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
    models = []
    for _ in range(2):
        rconv.utils.set_random_seed(9)
        model = rconv.Sequential([rconv.Input((5,)), layers.Dense(3)])
        model.compile(optimizer=optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), loss="mse")
        models.append(model)
    fitted, stepped = models
    fitted.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    for _ in range(2):
        stepped.train_on_batch(x[:4], y[:4])
        stepped.train_on_batch(x[4:], y[4:])
    raw = stepped.get_weights()
    stepped.optimizer.finalize_variable_values(stepped.trainable_weights)
    for a, b, r in zip(fitted.get_weights(), stepped.get_weights(), raw):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(a, r)

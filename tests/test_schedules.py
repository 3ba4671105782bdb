"""Learning-rate schedules: Keras's own test values (keras/src/optimizers/schedules/learning_rate_schedule_test.py),
float64 formulas at many steps, configs and serialization as Keras writes them, and optimizers driven by them."""
import json
import math

import numpy as np
import pytest

import rconv
from rconv import callbacks, layers, optimizers, registry
from rconv.optimizers import schedules

STEPS = list(range(0, 40)) + [57, 99, 100, 101, 250, 999, 1000, 1001, 1499, 12345]


def close(got, want, rtol=1e-6):
    np.testing.assert_allclose(float(got), want, rtol=rtol, atol=1e-9)


# --- Keras's tests ------------------------------------------------------------------------------------
def test_exponential_decay_keras_values():
    close(schedules.ExponentialDecay(0.05, 10, 0.96)(5), 0.05 * 0.96 ** 0.5)
    stair = schedules.ExponentialDecay(0.1, 3, 0.96, staircase=True)
    for step, want in [(1, 0.1), (2, 0.1), (100, 0.1 * 0.96 ** (100 // 3))]:
        close(stair(step), want)


def test_piecewise_constant_keras_values():
    lr = schedules.PiecewiseConstantDecay([100, 110, 120], [1.0, 0.1, 0.01, 0.001])
    for step, want in [(-999, 1.0), (100, 1.0), (105, 0.1), (110, 0.1), (120, 0.01), (999, 0.001)]:
        close(lr(step), want)
    lr = schedules.PiecewiseConstantDecay([1, 2, 3], [0.4, 0.5, 0.6, 0.7])
    for step, want in enumerate([0.4, 0.4, 0.5, 0.6, 0.7]):
        close(lr(step), want)
    with pytest.raises(ValueError, match="1 less than the length of values"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2])


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_polynomial_decay_keras_values(power):
    lr, end = 0.05, 0.001
    close(schedules.PolynomialDecay(lr, 10, 0.0, power=power)(5), lr * 0.5 ** power)
    close(schedules.PolynomialDecay(lr, 10, end, power=power)(10), end)
    close(schedules.PolynomialDecay(lr, 10, end, power=power)(5), (lr - end) * 0.5 ** power + end)
    close(schedules.PolynomialDecay(lr, 10, end, power=power)(15), end)
    close(schedules.PolynomialDecay(lr, 10, end, power=power, cycle=True)(15), (lr - end) * 0.25 ** power + end)
    close(schedules.PolynomialDecay(0.001, 10, cycle=True)(0), 0.001)


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_decay_keras_values(staircase):
    lr = schedules.InverseTimeDecay(0.1, 10, 0.96, staircase=staircase)
    for i in range(11):
        close(lr(i), 0.1 / (1 + 0.96 * (i // 10 if staircase else i / 10)))


def np_cosine_decay(step, decay_steps, alpha=0.0):
    step = min(step, decay_steps)
    return (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * step / decay_steps)) + alpha


def test_cosine_decay_keras_values():
    for step in range(0, 1500, 250):
        close(schedules.CosineDecay(1.0, 1000)(step), np_cosine_decay(step, 1000), rtol=1e-5)
        close(schedules.CosineDecay(1.0, 1000, 0.1)(step), np_cosine_decay(step, 1000, 0.1), rtol=1e-5)
        close(schedules.CosineDecay(0.0, 10, warmup_target=10.0, warmup_steps=1500)(step), step / 1500 * 10.0)
    for step in range(0, 3000, 250):
        lr = schedules.CosineDecay(0.0, 1000, warmup_target=10.0, warmup_steps=2000)
        want = step / 2000 * 10.0 if step < 2001 else 10.0 * np_cosine_decay(step - 2000, 1000)
        np.testing.assert_allclose(float(lr(step)), want, rtol=1e-5, atol=1e-5)


def np_cosine_decay_restarts(step, decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    fac = 1.0
    while step >= decay_steps:
        step -= decay_steps
        decay_steps *= t_mul
        fac *= m_mul
    return (1.0 - alpha) * fac * 0.5 * (1.0 + math.cos(math.pi * step / decay_steps)) + alpha


@pytest.mark.parametrize("kwargs", [{}, {"alpha": 0.1}, {"m_mul": 0.9}, {"t_mul": 1.0}])
def test_cosine_decay_restarts_keras_values(kwargs):
    for step in range(0, 1500, 250):
        close(schedules.CosineDecayRestarts(1.0, 1000, **kwargs)(step), np_cosine_decay_restarts(step, 1000, **kwargs),
              rtol=1e-5)


# --- float64 formulas at many steps -------------------------------------------------------------------
CASES = [
    (schedules.ExponentialDecay(0.1, 7, 0.9), lambda s: 0.1 * 0.9 ** (s / 7)),
    (schedules.ExponentialDecay(0.3, 4, 0.5, staircase=True), lambda s: 0.3 * 0.5 ** (s // 4)),
    (schedules.PiecewiseConstantDecay([10, 20, 100], [0.5, 0.2, 0.1, 0.05]),
     lambda s: 0.5 if s <= 10 else 0.2 if s <= 20 else 0.1 if s <= 100 else 0.05),
    (schedules.PolynomialDecay(0.1, 50, 0.01, power=2.0), lambda s: (0.09 * (1 - min(s, 50) / 50) ** 2 + 0.01)),
    (schedules.PolynomialDecay(0.1, 30, 0.001, power=0.5, cycle=True),
     lambda s: 0.099 * (1 - s / (30 * max(1, math.ceil(s / 30)))) ** 0.5 + 0.001),
    (schedules.InverseTimeDecay(0.2, 5, 0.3), lambda s: 0.2 / (1 + 0.3 * s / 5)),
    (schedules.InverseTimeDecay(0.2, 5, 0.3, staircase=True), lambda s: 0.2 / (1 + 0.3 * (s // 5))),
    (schedules.CosineDecay(0.1, 100, alpha=0.05), lambda s: 0.1 * np_cosine_decay(s, 100, 0.05)),
    (schedules.CosineDecay(0.01, 100, alpha=0.1, warmup_target=0.2, warmup_steps=15),
     lambda s: (0.01 + (0.19 * s / 15) if s < 15 else 0.2 * np_cosine_decay(min(s - 15, 100), 100, 0.1))),
    (schedules.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.8, alpha=0.01),
     lambda s: 0.1 * np_cosine_decay_restarts(s, 10, 2.0, 0.8, 0.01)),
    (schedules.CosineDecayRestarts(0.1, 7, t_mul=1.0, m_mul=0.5),
     lambda s: 0.1 * np_cosine_decay_restarts(s, 7, 1.0, 0.5)),
    (schedules.CosineDecayRestarts(0.1, 6, t_mul=1.5),
     lambda s: 0.1 * np_cosine_decay_restarts(s, 6, 1.5)),
]


@pytest.mark.parametrize("schedule, formula", CASES, ids=[f"{type(s).__name__}{i}" for i, (s, _) in enumerate(CASES)])
def test_values_match_float64_formulas(schedule, formula):
    for step in STEPS:
        np.testing.assert_allclose(float(schedule(step)), formula(step), rtol=2e-5, atol=1e-7, err_msg=f"step {step}")


@pytest.mark.parametrize("schedule", [s for s, _ in CASES], ids=[type(s).__name__ for s, _ in CASES])
def test_config_round_trip_as_keras_writes_it(schedule):
    entry = json.loads(json.dumps(schedules.serialize(schedule)))
    assert entry == {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
                     "config": schedule.get_config(), "registered_name": None}
    back = schedules.deserialize(entry)
    assert type(back) is type(schedule) and back.get_config() == schedule.get_config()
    assert [float(back(s)) for s in STEPS] == [float(schedule(s)) for s in STEPS]
    assert registry.get("schedules", type(schedule).__name__) is type(schedule)


def test_keras_config_keys_and_bad_arguments():
    assert schedules.CosineDecayRestarts(0.05, 10, 3.0, 4.0, 0.1, name="my_cdr").get_config() == {
        "initial_learning_rate": 0.05, "first_decay_steps": 10, "t_mul": 3.0, "m_mul": 4.0, "alpha": 0.1,
        "name": "my_cdr"}
    assert schedules.CosineDecay(0.05, 10).get_config() == {
        "initial_learning_rate": 0.05, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": None, "warmup_steps": 0}
    assert schedules.PiecewiseConstantDecay([10, 20], [1, 2, 3]).get_config()["name"] == "PiecewiseConstant"
    for make in (lambda: schedules.ExponentialDecay(0.1, 0, 0.5), lambda: schedules.PolynomialDecay(0.1, -1),
                 lambda: schedules.InverseTimeDecay(0.1, 0, 0.5), lambda: schedules.CosineDecay(0.1, 0),
                 lambda: schedules.CosineDecayRestarts(0.1, 0)):
        with pytest.raises(ValueError, match="must be > 0"):
            make()
    with pytest.raises(ValueError, match="Unknown learning rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(NotImplementedError, match="must override"):
        schedules.LearningRateSchedule()(0)


# --- optimizers driven by schedules -------------------------------------------------------------------
def _model(optimizer):
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([rconv.Input((2,)), layers.Dense(2, kernel_initializer="ones", bias_initializer="ones")])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_fit_uses_the_schedule_at_each_iteration():
    schedule = schedules.ExponentialDecay(initial_learning_rate=0.05, decay_steps=1, decay_rate=0.9)
    optimizer = optimizers.Adam(learning_rate=schedule)
    seen = []

    class Record(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append((self.model.optimizer.iterations, self.model.optimizer.learning_rate))
    model = _model(optimizer)
    x = np.arange(32, dtype=np.float32).reshape((16, 2))
    history = model.fit(x, x, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[Record()])
    assert optimizer.iterations == 12
    np.testing.assert_allclose([lr for _, lr in seen], [0.05 * 0.9 ** i for i, _ in seen], rtol=1e-6)
    # keras/src/optimizers/schedules/learning_rate_schedule_test.py::test_fit_lr_correctness
    np.testing.assert_allclose(history.history["loss"], [230.79457092285156, 128.30319213867188, 79.33648681640625],
                               rtol=5e-5)


def test_callbacks_that_set_the_rate_refuse_a_schedule_like_keras():
    x = np.ones((4, 2), np.float32)
    model = _model(optimizers.SGD(learning_rate=schedules.InverseTimeDecay(0.01, 1, 0.5)))
    with pytest.raises(TypeError, match="not settable"):
        model.fit(x, x, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2)])
    model = _model(optimizers.SGD(learning_rate=schedules.InverseTimeDecay(0.01, 1, 0.5)))
    with pytest.raises(TypeError, match="not settable"):
        model.fit(x, x, epochs=3, verbose=0, callbacks=[callbacks.ReduceLROnPlateau("loss", patience=0,
                                                                                    min_delta=1e9)])
    opt = optimizers.SGD(learning_rate=0.1)
    opt.learning_rate = schedules.ExponentialDecay(0.2, 10, 0.5)  # a schedule may replace a float (Keras too)
    assert opt.learning_rate == pytest.approx(0.2) and isinstance(opt.get_config()["learning_rate"], dict)

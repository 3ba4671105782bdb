"""Learning-rate schedules (keras/src/optimizers/schedules/learning_rate_schedule.py): `schedule(step)` is
the learning rate after `step` optimizer steps, computed as Keras does in the float32 of the initial rate.
Serialized as Keras: {"module": "keras.optimizers.schedules", "class_name": ..., "config": ...}."""
from __future__ import annotations

import math

import numpy as np

from .. import registry

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize", "get"]

_f32 = np.float32


def _positive_steps(owner: str, key: str, value):
    if value <= 0:
        raise ValueError(f"{owner}: argument `{key}` must be > 0. Received: {key}={value}")
    return value


class LearningRateSchedule:
    """Base class: subclasses define `__call__(step)` and `get_config()`."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self) -> dict:
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override `get_config()` "
                                  "in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("schedules", "ExponentialDecay")
class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (the exponent floored if `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive_steps("ExponentialDecay", "decay_steps", decay_steps)
        self.decay_rate, self.staircase, self.name = decay_rate, staircase, name

    def __call__(self, step):
        p = _f32(step) / _f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f32(self.initial_learning_rate) * np.power(_f32(self.decay_rate), p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@registry.register("schedules", "PiecewiseConstantDecay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, `values[i]` while `boundaries[i-1] < step <= boundaries[i]`,
    `values[-1]` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("PiecewiseConstantDecay: the length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length {len(boundaries)}, and "
                             f"values={values} of length {len(values)}.")
        self.boundaries, self.values, self.name = list(boundaries), list(values), name

    def __call__(self, step):
        i = sum(step > b for b in self.boundaries)  # boundaries are increasing
        return _f32(self.values[i])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@registry.register("schedules", "PolynomialDecay")
class PolynomialDecay(LearningRateSchedule):
    """`(initial - end) * (1 - step / decay_steps) ** power + end`, with `step` capped at `decay_steps`, or
    (`cycle`) `decay_steps` multiplied by `ceil(step / decay_steps)` (1 at step 0)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive_steps("PolynomialDecay", "decay_steps", decay_steps)
        self.end_learning_rate, self.power, self.cycle, self.name = end_learning_rate, power, cycle, name

    def __call__(self, step):
        step, decay_steps = _f32(step), _f32(self.decay_steps)
        if self.cycle:
            decay_steps = decay_steps * (_f32(1.0) if step == 0 else np.ceil(step / decay_steps))
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        initial, end = _f32(self.initial_learning_rate), _f32(self.end_learning_rate)
        return (initial - end) * np.power(_f32(1) - p, _f32(self.power)) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


@registry.register("schedules", "InverseTimeDecay")
class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (the ratio floored if `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive_steps("InverseTimeDecay", "decay_steps", decay_steps)
        self.decay_rate, self.staircase, self.name = decay_rate, staircase, name

    def __call__(self, step):
        p = _f32(step) / _f32(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _f32(self.initial_learning_rate) / (_f32(1) + _f32(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


def _cosine(fraction, alpha, scale=1.0):
    decayed = _f32(0.5) * _f32(scale) * (_f32(1) + np.cos(_f32(math.pi) * fraction))
    return (_f32(1) - _f32(alpha)) * decayed + _f32(alpha)


@registry.register("schedules", "CosineDecay")
class CosineDecay(LearningRateSchedule):
    """Without `warmup_target`: `initial * ((1 - alpha) * 0.5 (1 + cos(pi min(step, decay_steps) / decay_steps))
    + alpha)`. With it: a linear ramp from `initial_learning_rate` to `warmup_target` over `warmup_steps`,
    then the same decay from `warmup_target`."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = _positive_steps("CosineDecay", "decay_steps", decay_steps)
        self.alpha, self.name, self.warmup_target, self.warmup_steps = alpha, name, warmup_target, warmup_steps

    def __call__(self, step):
        initial, decay_steps, step = _f32(self.initial_learning_rate), _f32(self.decay_steps), _f32(step)
        if self.warmup_target is None:
            return initial * _cosine(min(step, decay_steps) / decay_steps, self.alpha)
        target, warmup_steps = _f32(self.warmup_target), _f32(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return target * _cosine((step - warmup_steps) / decay_steps, self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


@registry.register("schedules", "CosineDecayRestarts")
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay over `first_decay_steps`, then warm restarts: period i lasts `t_mul**i` times longer and
    starts from `m_mul**i` times the initial rate."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = _positive_steps("CosineDecayRestarts", "first_decay_steps", first_decay_steps)
        self._t_mul, self._m_mul, self.alpha, self.name = t_mul, m_mul, alpha, name

    def __call__(self, step):
        t_mul = _f32(self._t_mul)
        fraction = _f32(step) / _f32(self.first_decay_steps)
        if t_mul == 1:
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(np.log(_f32(1) - fraction * (_f32(1) - t_mul)) / np.log(t_mul))
            sum_r = (_f32(1) - np.power(t_mul, i_restart)) / (_f32(1) - t_mul)
            fraction = (fraction - sum_r) / np.power(t_mul, i_restart)
        m_fac = np.power(_f32(self._m_mul), i_restart)
        return _f32(self.initial_learning_rate) * _cosine(fraction, self.alpha, m_fac)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


def serialize(schedule: LearningRateSchedule) -> dict:
    """Keras's serialized form of a schedule."""
    class_name = registry.name_of("schedules", type(schedule), None)
    if class_name is None:
        raise ValueError(f"Cannot serialize {schedule!r}: not a registered learning rate schedule")
    return {"module": "keras.optimizers.schedules", "class_name": class_name, "config": schedule.get_config(),
            "registered_name": None}


def deserialize(config: dict) -> LearningRateSchedule:
    """A schedule from Keras's serialized form {"class_name": ..., "config": {...}}."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret learning rate schedule config: {config!r:.200}")
    cls = registry.get("schedules", config["class_name"])
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier) -> LearningRateSchedule:
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"Could not interpret learning rate schedule identifier: {identifier!r}")

"""Weight initializers with Keras 3's names, formulas and configs.

All draw from the global generator in `backend` (so `set_random_seed` reproduces them) unless given
their own `seed`, in which case every call returns the same values, as in Keras 3.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

from . import backend, registry

_DEFERRED = contextvars.ContextVar("rconv_initializers_deferred", default=False)


@contextlib.contextmanager
def deferred():
    """Within this block `Layer.add_weight` runs no initializer: new variables are zero-filled float32
    (`np.zeros`, whose pages the OS maps only when written). Loaders build models from a config this way
    when every variable is assigned from the file afterwards, so a config that declares a huge layer costs
    nothing before the weights are checked."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def deferring() -> bool:
    """Whether `deferred()` is active in this thread/context."""
    return _DEFERRED.get()


class Initializer:
    def __call__(self, shape, dtype=None) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _generator(self) -> np.random.Generator:
        seed = getattr(self, "seed", None)
        return backend.rng() if seed is None else np.random.default_rng(seed)


@registry.register("initializers", "Zeros", "zeros", "zero")
class Zeros(Initializer):
    def __call__(self, shape, dtype=None):
        return np.zeros(shape, np.float32)


@registry.register("initializers", "Ones", "ones", "one")
class Ones(Initializer):
    def __call__(self, shape, dtype=None):
        return np.ones(shape, np.float32)


@registry.register("initializers", "Constant", "constant")
class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, np.float32)

    def get_config(self):
        return {"value": self.value}


def _truncated_normal(gen, shape, mean, stddev):
    """Normal samples re-drawn until within two standard deviations (TF/Keras semantics)."""
    out = gen.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return (out * stddev + mean).astype(np.float32)


@registry.register("initializers", "RandomNormal", "random_normal")
class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None):
        return self._generator().normal(self.mean, self.stddev, shape).astype(np.float32)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@registry.register("initializers", "TruncatedNormal", "truncated_normal")
class TruncatedNormal(RandomNormal):
    def __call__(self, shape, dtype=None):
        return _truncated_normal(self._generator(), shape, self.mean, self.stddev)


@registry.register("initializers", "RandomUniform", "random_uniform")
class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=None):
        return self._generator().uniform(self.minval, self.maxval, shape).astype(np.float32)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def compute_fans(shape):
    """Keras's fans: conv kernels (kh, kw, cin, cout) count the receptive field in both."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


@registry.register("initializers", "VarianceScaling", "variance_scaling")
class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: invalid mode {mode!r}; expected fan_in, fan_out or fan_avg")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"VarianceScaling: invalid distribution {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        gen = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return gen.uniform(-limit, limit, shape).astype(np.float32)
        if self.distribution == "untruncated_normal":
            return gen.normal(0.0, math.sqrt(scale), shape).astype(np.float32)
        # 0.879... is the stddev of a unit normal truncated at ±2; dividing restores the variance.
        return _truncated_normal(gen, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _preset(class_name, scale, mode, distribution):
    """Named VarianceScaling presets, registered as `class_name` and its snake_case; their Keras
    config is just {"seed": ...}."""
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    cls = type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config})
    return registry.register("initializers", class_name, backend.to_snake_case(class_name))(cls)


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal")

# Lower-case function-style aliases, like `keras.initializers.glorot_uniform`.
glorot_uniform, glorot_normal, he_uniform, he_normal = GlorotUniform, GlorotNormal, HeUniform, HeNormal
lecun_uniform, lecun_normal, zeros, ones = LecunUniform, LecunNormal, Zeros, Ones
random_normal, random_uniform, truncated_normal, constant = RandomNormal, RandomUniform, TruncatedNormal, Constant


_OBJECTS = registry.ConfigObjects("initializers", "keras.initializers", Initializer, "initializer")
serialize = _OBJECTS.serialize  # Keras 3's serialized form, as found in `.keras` configs
deserialize = _OBJECTS.deserialize
get = _OBJECTS.get  # from an instance, a name ('glorot_uniform', 'GlorotUniform'), a config dict or a class

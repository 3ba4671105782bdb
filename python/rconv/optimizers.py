"""Optimizers with Keras 3's names, defaults and configs; the update math runs in Rust (`ops.*_update`).

Slot buffers (momentum, velocity, Adam's m/v) are float32 C-contiguous arrays kept per variable and
updated in place together with the variable's own buffer, so a step allocates nothing but grads.
`learning_rate` is a plain settable float (callbacks such as ReduceLROnPlateau assign to it).
"""
from __future__ import annotations

import numpy as np

from . import ops, registry

# Keras 3 base-optimizer config keys we accept only at their defaults (not implemented yet).
_UNSUPPORTED_DEFAULTS = {"weight_decay": None, "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
                         "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                         "loss_scale_factor": None, "gradient_accumulation_steps": None}


class Optimizer:
    _slot_names: tuple = ()

    def __init__(self, learning_rate=0.001, name=None, lr=None, **kwargs):
        if lr is not None:  # legacy Keras 2 spelling
            learning_rate = lr
        for key, value in kwargs.items():
            if key not in _UNSUPPORTED_DEFAULTS:
                raise TypeError(f"{type(self).__name__}: unexpected keyword argument {key!r}")
            if value != _UNSUPPORTED_DEFAULTS[key]:
                raise NotImplementedError(f"{type(self).__name__}: `{key}` is not supported yet (got {value!r})")
        if callable(learning_rate):
            raise NotImplementedError("Learning-rate schedules are not supported yet; pass a float")
        self.learning_rate = float(learning_rate)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict = {}  # Variable -> tuple of slot arrays

    @property
    def lr(self) -> float:
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = float(value)

    @property
    def built(self) -> bool:
        return bool(self._slots)

    @property
    def variables(self) -> list:
        return [slot for slots in self._slots.values() for slot in slots]

    def _slots_for(self, var) -> tuple:
        slots = self._slots.get(var)
        if slots is None:
            slots = tuple(np.zeros(var.shape, np.float32) for _ in self._slot_names)
            self._slots[var] = slots
        return slots

    def apply(self, grads, variables) -> None:
        """One step: update each variable in place with its gradient; then iterations += 1."""
        for grad, var in zip(grads, variables):
            if grad is not None:
                self._update(var.value, grad, self._slots_for(var))
        self.iterations += 1

    def apply_gradients(self, grads_and_vars) -> None:
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def _update(self, param, grad, slots) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate, **_UNSUPPORTED_DEFAULTS}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("optimizers", "SGD")
class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: `momentum` must be in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum > 0 else ()

    def _update(self, param, grad, slots):
        ops.sgd_update(param, grad, slots[0] if slots else None, self.learning_rate, self.momentum,
                       self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@registry.register("optimizers", "RMSprop")
class RMSprop(Optimizer):
    _slot_names = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if momentum or centered:
            raise NotImplementedError("RMSprop: momentum > 0 and centered=True are not supported yet")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), 0.0, float(epsilon), False

    def _update(self, param, grad, slots):
        ops.rmsprop_update(param, grad, slots[0], self.learning_rate, self.rho, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


@registry.register("optimizers", "Adam")
class Adam(Optimizer):
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if amsgrad:
            raise NotImplementedError("Adam: amsgrad=True is not supported yet")
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = float(beta_1), float(beta_2), float(epsilon), False

    def _update(self, param, grad, slots):
        # Bias correction uses the 1-based step of the update being applied (Keras: iterations + 1).
        ops.adam_update(param, grad, slots[0], slots[1], self.learning_rate, self.beta_1, self.beta_2,
                        self.epsilon, self.iterations + 1)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


def get(identifier) -> Optimizer:
    """An Optimizer from an instance, a name ('sgd', 'rmsprop', 'adam', case-insensitive), a class or
    a serialized config dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):  # the "optimizers" registry matches names case-insensitively
        return registry.get("optimizers", identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    class_name = registry.name_of("optimizers", type(optimizer), type(optimizer).__name__)
    return {"module": "keras.optimizers", "class_name": class_name, "config": optimizer.get_config(),
            "registered_name": None}


def deserialize(config: dict) -> Optimizer:
    """An Optimizer from Keras's serialized form {"class_name": ..., "config": {...}}."""
    return registry.get("optimizers", config.get("class_name")).from_config(config.get("config", {}))

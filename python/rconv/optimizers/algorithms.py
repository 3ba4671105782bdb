"""Keras 3's optimizers (keras/src/optimizers/<name>.py): names, defaults, configs and slot variables as
Keras; each `_update` runs one Rust kernel of `rconv.ops` on the variable and its slots, in place."""
from __future__ import annotations

import numpy as np

from .. import ops, registry
from ..ops.optim import nadam_u_product
from .base import Optimizer

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Nadam", "Lion"]


def _unit_interval(owner: str, key: str, value) -> float:
    value = float(value)
    if not 0 <= value <= 1:
        raise ValueError(f"{owner}: `{key}` must be in [0, 1], got {value!r}")
    return value


@registry.register("optimizers", "SGD")
class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov = _unit_interval("SGD", "momentum", momentum), bool(nesterov)

    def _slot_groups(self):
        return (("momentum",),) if self.momentum != 0 else ()

    def _update(self, param, grad, slots, lr):
        ops.sgd_update(param, grad, slots.get("momentum"), lr, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


@registry.register("optimizers", "RMSprop")
class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = bool(centered)

    def _slot_groups(self):
        return ((("velocity",),) + ((("momentum",),) if self.momentum > 0 else ())
                + ((("average_gradient",),) if self.centered else ()))

    def _update(self, param, grad, slots, lr):
        ops.rmsprop_update(param, grad, slots["velocity"], lr, self.rho, self.epsilon,
                           momentum_buf=slots.get("momentum"), momentum=max(self.momentum, 0.0),
                           average_grad=slots.get("average_gradient"))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


@registry.register("optimizers", "Adam")
class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)

    def _slot_groups(self):
        return (("momentum", "velocity"),) + ((("velocity_hat",),) if self.amsgrad else ())

    def _update(self, param, grad, slots, lr):
        # Bias correction uses the 1-based step of the update being applied (Keras: iterations + 1).
        ops.adam_update(param, grad, slots["momentum"], slots["velocity"], lr, self.beta_1, self.beta_2,
                        self.epsilon, self.iterations + 1, v_hat=slots.get("velocity_hat"))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


@registry.register("optimizers", "AdamW")
class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004), applied by the base step as Keras does."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, name=name, weight_decay=weight_decay,
                         **kwargs)


@registry.register("optimizers", "Adadelta")
class Adadelta(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _slot_groups(self):
        return (("accumulated_grad", "accumulated_delta_var"),)

    def _update(self, param, grad, slots, lr):
        ops.adadelta_update(param, grad, slots["accumulated_grad"], slots["accumulated_delta_var"], lr, self.rho,
                            self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@registry.register("optimizers", "Adagrad")
class Adagrad(Optimizer):
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="adagrad", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)
        self._slot_init = {"accumulator": self.initial_accumulator_value}

    def _slot_groups(self):
        return (("accumulator",),)

    def _update(self, param, grad, slots, lr):
        ops.adagrad_update(param, grad, slots["accumulator"], lr, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


@registry.register("optimizers", "Adamax")
class Adamax(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="adamax", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _slot_groups(self):
        return (("momentum", "norm"),)

    def _update(self, param, grad, slots, lr):
        ops.adamax_update(param, grad, slots["momentum"], slots["norm"], lr, self.beta_1, self.beta_2,
                          self.epsilon, self.iterations + 1)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


@registry.register("optimizers", "Nadam")
class Nadam(Optimizer):
    """Keras's Nadam also keeps `u_product`, the running product of the momentum schedule; it depends only on
    `beta_1` and the step count, so it is derived from `iterations` (recomputed after a load)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="nadam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self._u_product = (0, 1.0)  # (step, product of u_1 .. u_step)

    def _slot_groups(self):
        return (("momentum", "velocity"),)

    def _u_product_at(self, step: int) -> float:
        done, product = self._u_product
        if done > step:  # iterations was set back (a load): start over from step 0
            done, product = 0, 1.0
        self._u_product = (step, nadam_u_product(self.beta_1, step, product, done))
        return self._u_product[1]

    def _update_step(self, grads, variables, lr):
        self._u_product_at(self.iterations + 1)
        super()._update_step(grads, variables, lr)

    def keras_extra_variables(self):
        return [("variable", np.asarray(self._u_product_at(self.iterations), np.float32))]

    def _update(self, param, grad, slots, lr):
        ops.nadam_update(param, grad, slots["momentum"], slots["velocity"], lr, self.beta_1, self.beta_2,
                         self.epsilon, self.iterations + 1, self._u_product[1])

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


@registry.register("optimizers", "Lion")
class Lion(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name="lion", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if not 0 < float(beta_1) <= 1:
            raise ValueError("Lion: argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                             f"degenerates to SignSGD. Received: beta_1={beta_1}.")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)

    def _slot_groups(self):
        return (("momentum",),)

    def _update(self, param, grad, slots, lr):
        ops.lion_update(param, grad, slots["momentum"], lr, self.beta_1, self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}

"""`Optimizer`: Keras 3's base optimizer (keras/src/optimizers/base_optimizer.py) over rconv variables.

A step (`apply`) does what Keras's does, in its order: drop variables without a gradient, clip the
gradients (`clipnorm` per gradient, `global_clipnorm` over all of them, or `clipvalue`), apply decoupled
weight decay `v -= v * weight_decay * lr`, run each variable's update (Rust kernels in `rconv.ops`,
in place), apply `variable.constraint`, update the moving averages (`use_ema`), then `iterations += 1`.
The learning rate is a float or a schedule evaluated at `iterations` (the number of steps done).

Slot arrays (Keras's optimizer variables: momentum, velocity, ...) are float32 C-contiguous arrays kept
per model variable in `_slots[var]`, in `_slot_names` order. Keras creates them in groups (`_slot_groups`:
each group interleaved per model variable, the groups one after another); `keras_slot_order` lists them
in that order, the order of Keras's `optimizer.variables` after `iteration` and `learning_rate`.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np

from .. import backend, ops
from . import schedules

# Keras 3 base-optimizer arguments, in its get_config order, with their defaults.
BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                 "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                 "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _optional_float(owner: str, key: str, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: `{key}` must be a float or None, got {value!r}")
    return float(value)


class Optimizer:
    _slot_init: dict = {}  # slot name -> initial value (default 0)

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, lr=None, **kwargs):
        owner = type(self).__name__
        if lr is not None:  # legacy Keras 2 spelling
            learning_rate = lr
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.", stacklevel=3)
        if kwargs:
            raise ValueError(f"{owner}: argument(s) not recognized: {kwargs}")
        self.weight_decay = _optional_float(owner, "weight_decay", weight_decay)
        self.clipnorm = _optional_float(owner, "clipnorm", clipnorm)
        self.clipvalue = _optional_float(owner, "clipvalue", clipvalue)
        self.global_clipnorm = _optional_float(owner, "global_clipnorm", global_clipnorm)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{owner}: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                             f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        if gradient_accumulation_steps is not None:
            if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 2:
                raise ValueError(f"{owner}: `gradient_accumulation_steps` must be an integer >= 2. Received: "
                                 f"gradient_accumulation_steps={gradient_accumulation_steps}")
            raise NotImplementedError(f"{owner}: `gradient_accumulation_steps` is not supported by rconv")
        if loss_scale_factor is not None:
            raise NotImplementedError(f"{owner}: `loss_scale_factor` is not supported by rconv (float32 only)")
        self.use_ema = bool(use_ema)
        if self.use_ema:
            if not 0 <= ema_momentum <= 1:
                raise ValueError(f"{owner}: `ema_momentum` must be in the range [0, 1]. Received: "
                                 f"ema_momentum={ema_momentum}")
            if ema_overwrite_frequency is not None and (
                    not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1):
                raise ValueError(f"{owner}: `ema_overwrite_frequency` must be an integer >= 1 or None. Received: "
                                 f"ema_overwrite_frequency={ema_overwrite_frequency}")
        self.ema_momentum = float(ema_momentum)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = None
        self.gradient_accumulation_steps = None
        self._learning_rate = self._checked_learning_rate(learning_rate)
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots: dict = {}  # Variable -> tuple of slot arrays, in `_slot_names` order
        self._built_variables: list = []
        self._warned: set = set()  # paths of variables already reported without a gradient
        self._exclude_ids: set = set()
        self._exclude_pattern = None

    # --- learning rate --------------------------------------------------------------------------------
    def _checked_learning_rate(self, value):
        if isinstance(value, schedules.LearningRateSchedule) or callable(value):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{type(self).__name__}: argument `learning_rate` should be a float, a "
                             f"LearningRateSchedule or a callable; received learning_rate={value!r}")
        return float(value)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (a schedule's value at `iterations`)."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        return float(lr()) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if (isinstance(self._learning_rate, schedules.LearningRateSchedule)
                and not (isinstance(value, schedules.LearningRateSchedule) or callable(value))):
            raise TypeError("This optimizer was created with a `LearningRateSchedule` object as its "
                            "`learning_rate` constructor argument, hence its learning rate is not settable. If you "
                            "need the learning rate to be settable, you should instantiate the optimizer with a "
                            "float `learning_rate` argument.")
        self._learning_rate = self._checked_learning_rate(value)

    @property
    def lr(self) -> float:
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    # --- slots ----------------------------------------------------------------------------------------
    def _slot_groups(self) -> tuple:
        """This optimizer's slot groups, in Keras's build order (subclasses)."""
        return ()

    def _all_slot_groups(self) -> tuple:
        return ((("average",),) if self.use_ema else ()) + self._slot_groups()

    @property
    def _slot_names(self) -> tuple:
        return tuple(name for group in self._all_slot_groups() for name in group)

    @property
    def built(self) -> bool:
        return bool(self._slots)

    @property
    def variables(self) -> list:
        return [slot for slots in self._slots.values() for slot in slots]

    def _slots_for(self, var) -> tuple:
        slots = self._slots.get(var)
        if slots is None:
            slots = tuple(np.full(var.shape, self._slot_init.get(name, 0.0), np.float32) for name in self._slot_names)
            self._slots[var] = slots
        return slots

    def build(self, variables) -> None:
        """Create the slots of every variable (Keras builds on the first `apply`)."""
        for var in variables:
            self._slots_for(var)
        self._built_variables = list(variables)

    def keras_slot_positions(self, n_variables: int) -> list:
        """[(variable index, slot index in `_slot_names`, slot name)] in Keras 3's `optimizer.variables` order:
        each slot group interleaved per variable, the groups one after another."""
        out, offset = [], 0
        for group in self._all_slot_groups():
            out += [(i, offset + j, name) for i in range(n_variables) for j, name in enumerate(group)]
            offset += len(group)
        return out

    def keras_slot_order(self, variables) -> list:
        """[(Keras variable name, slot array)] in Keras 3's order (`keras_slot_positions`)."""
        return [(f"{variables[i].path.replace('/', '_')}_{name}", self._slots_for(variables[i])[j])
                for i, j, name in self.keras_slot_positions(len(variables))]

    def keras_extra_variables(self) -> list:
        """[(Keras path, array)] of the optimizer variables Keras creates after the slots (Nadam's
        `u_product`); none by default."""
        return []

    @property
    def has_learning_rate_variable(self) -> bool:
        """Keras keeps a `learning_rate` variable only for a float rate (not for a schedule or callable)."""
        return not callable(self._learning_rate)

    def keras_variables(self, variables) -> list:
        """[(Keras path, array)]: Keras 3's `optimizer.variables` for these model variables, in its order
        (`iteration`, `learning_rate` unless a schedule drives it, the slots as `keras_slot_order`, extras);
        what Keras writes in `optimizer/vars` and reads back by position."""
        prefix = backend.to_snake_case(type(self).__name__)
        out = [(f"{prefix}/iteration", np.asarray(self.iterations, np.int64))]
        if self.has_learning_rate_variable:
            out.append((f"{prefix}/learning_rate", np.asarray(self.learning_rate, np.float32)))
        if self.built:
            out += [(f"{prefix}/{name}", arr) for name, arr in self.keras_slot_order(variables)]
            out += self.keras_extra_variables()
        return out

    # --- weight decay ---------------------------------------------------------------------------------
    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Exclude variables (given, or whose name contains one of `var_names`) from weight decay."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_ids = {id(v) for v in var_list or ()}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, var) -> bool:
        if id(var) in self._exclude_ids:
            return False
        return self._exclude_pattern is None or self._exclude_pattern.search(var.name) is None

    # --- a step ---------------------------------------------------------------------------------------
    def _clip_gradients(self, grads: list) -> list:
        if self.clipnorm and self.clipnorm > 0:
            c = np.float32(self.clipnorm)
            return [g * c / max(np.float32(math.sqrt(ops.sum_squares(g))), c) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            c = self.global_clipnorm
            norm = math.sqrt(math.fsum(ops.sum_squares(g) for g in grads))
            scale = (c * min(1 / norm, 1 / c) if 0 < norm < math.inf else 1.0 if norm == 0 else math.nan)
            return [g * np.float32(scale) for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [np.clip(g, -np.float32(self.clipvalue), np.float32(self.clipvalue)) for g in grads]
        return grads

    def apply(self, grads, variables=None) -> None:
        """One step: update each variable that has a gradient, in place; then iterations += 1."""
        grads = list(grads)
        if not grads:  # nothing to train: Keras returns without counting a step
            return
        if variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be built on "
                                 "a list of variables. Call `optimizer.build(trainable_variables)` first.")
            variables = self._built_variables
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}: got {len(grads)} gradients for {len(variables)} variables")
        if not self.built:
            self.build(variables)
        pairs = [(np.asarray(g, np.float32), v) for g, v in zip(grads, variables) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        missing = [v.path for g, v in zip(grads, variables) if g is None and v.path not in self._warned]
        if missing:
            self._warned.update(missing)
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                          "`model.compile()`, did you forget to provide a `loss` argument?", stacklevel=2)
        for g, v in pairs:
            if g.shape != v.shape:
                raise ValueError(f"{type(self).__name__}: the gradient of '{v.path}' has shape {g.shape}, but the "
                                 f"variable has shape {v.shape}")
        clipped = self._clip_gradients([g for g, _ in pairs])
        live = [v for _, v in pairs]
        lr = self.learning_rate
        if self.weight_decay is not None:
            for var in live:
                if self._use_weight_decay(var):
                    ops.weight_decay_update(var.value, self.weight_decay, lr)
        self._update_step(clipped, live, lr)
        for var in live:
            if var.constraint is not None:
                var.assign(var.constraint(var.value))
        if self.use_ema:
            self._update_moving_averages()
        self.iterations += 1

    def _update_step(self, grads: list, variables: list, lr: float) -> None:
        names = self._slot_names
        for grad, var in zip(grads, variables):
            self._update(var.value, grad, dict(zip(names, self._slots_for(var))), lr)

    def _update(self, param, grad, slots: dict, lr: float) -> None:
        raise NotImplementedError

    def apply_gradients(self, grads_and_vars) -> int:
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])
        return self.iterations

    # --- moving averages (use_ema) --------------------------------------------------------------------
    def _update_moving_averages(self) -> None:
        momentum = self.ema_momentum if self.iterations != 0 else 0.0
        for var, slots in self._slots.items():
            ops.ema_update(slots[0], var.value, momentum)
        if self.ema_overwrite_frequency and (self.iterations + 1) % self.ema_overwrite_frequency == 0:
            self.finalize_variable_values(list(self._slots))

    def finalize_variable_values(self, var_list) -> None:
        """With `use_ema`, overwrite the variables with their moving averages (Keras does this at the end of
        `fit`)."""
        if self.use_ema:
            for var in var_list:
                if var in self._slots:
                    var.assign(self._slots[var][0])

    # --- config ---------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise ValueError(f"{type(self).__name__}: a learning rate given as a plain callable cannot be "
                             "serialized; use a keras-style LearningRateSchedule")
        return {"name": self.name, "learning_rate": lr, **{k: getattr(self, k) for k in BASE_DEFAULTS}}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

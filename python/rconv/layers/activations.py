"""Activation layers with parameters: `ReLU`, `LeakyReLU`, `ELU`, `Softmax` (an `Activation` with its
parameters bound, through the Rust activation kernels) and `PReLU` (a learned slope)."""
from __future__ import annotations

import warnings

from .. import activations, constraints, initializers, ops, regularizers
from .core import Activation
from .layer import InputSpec, Layer
from ..registry import register

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]


def _non_negative(layer, name: str, value, allow_none: bool = False, kind: str = "a ReLU layer"):
    """`value` as a number >= 0 (or None when allowed), else a ValueError naming the layer (Keras's words)."""
    if value is None and allow_none:
        return None
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        what = "cannot be a negative value" if allow_none else "cannot be None or a negative value"
        raise ValueError(f"{type(layer).__name__} '{layer.name}': {name} of {kind} {what}. "
                         f"Received: {name}={value!r}")
    return value


class _Parametrized(Activation):
    """An `Activation` whose function has keyword parameters; its config holds those parameters (as
    Keras's layers do), not the function."""

    def __init__(self, **kwargs):
        super().__init__(activations.linear, **kwargs)

    def _bind(self, fn, params: dict, defaults: dict) -> None:
        """Use `fn` itself when `params` are its defaults (it keeps its name: fusions and exports know it)."""
        self.activation = fn if params == defaults else activations.Configured(fn, **params)

    def get_config(self):
        return Layer.get_config(self)


@register("layers", "ReLU")
class ReLU(_Parametrized):
    """`x > threshold ? min(x, max_value) : negative_slope * (x - threshold)` (Keras 3's formula)."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _non_negative(self, "max_value", max_value, allow_none=True)
        self.negative_slope = _non_negative(self, "negative_slope", negative_slope)
        self.threshold = _non_negative(self, "threshold", threshold)
        self._bind(activations.relu, {"negative_slope": negative_slope, "max_value": max_value, "threshold": threshold},
                   {"negative_slope": 0.0, "max_value": None, "threshold": 0.0})

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register("layers", "LeakyReLU")
class LeakyReLU(_Parametrized):
    """`x > 0 ? x : negative_slope * x`. Keras 3's default slope is 0.3 (the `leaky_relu` function's 0.2);
    the Keras 2 spelling `alpha` is accepted with a warning."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(self, "negative_slope", negative_slope, kind="a Leaky ReLU layer")
        self._bind(activations.leaky_relu, {"negative_slope": negative_slope}, {"negative_slope": 0.2})

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register("layers", "ELU")
class ELU(_Parametrized):
    """`x > 0 ? x : alpha * (exp(x) - 1)`."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"ELU '{self.name}': `alpha` must be a float, got {alpha!r}")
        self.alpha = alpha
        self._bind(activations.elu, {"alpha": alpha}, {"alpha": 1.0})

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register("layers", "Softmax")
class Softmax(_Parametrized):
    """Softmax over `axis` (an int or a list of axes; -1 by default). Keras's `mask` call argument is not
    supported."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        axes = axis if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise ValueError(f"Softmax '{self.name}': `axis` must be an int or a list of ints, got {axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self._bind(activations.softmax, {"axis": self.axis}, {"axis": -1})
        # the rank every axis exists in, checked on each call
        self.input_spec = InputSpec(min_ndim=max(a + 1 if a >= 0 else -a for a in axes))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register("layers", "PReLU")
class PReLU(Layer):
    """`x > 0 ? x : alpha * x` with a learned `alpha` of the input's sample shape, 1 on `shared_axes`."""

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if any(isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in axes):
                raise ValueError(f"PReLU '{self.name}': `shared_axes` must be axes >= 1 (not the batch axis), "
                                 f"got {shared_axes!r}")
            self.shared_axes = axes

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2:
            raise ValueError(f"PReLU '{self.name}' needs inputs of rank >= 2 (a batch axis and more), got input "
                             f"shape {tuple(input_shape)}")
        shared = set(self.shared_axes or ())
        if any(a >= rank for a in shared):
            raise ValueError(f"PReLU '{self.name}': shared_axes {self.shared_axes} do not exist in inputs of shape "
                             f"{tuple(input_shape)}")
        param_shape = [1 if i in shared else input_shape[i] for i in range(1, rank)]
        if None in param_shape:
            raise ValueError(f"PReLU '{self.name}': the input axes that do not share alpha need known sizes, got "
                             f"input shape {tuple(input_shape)} with shared_axes={self.shared_axes}")
        self.alpha = self.add_weight(param_shape, self.alpha_initializer, name="alpha",
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        self.input_spec = InputSpec(ndim=rank, axes={i: input_shape[i] for i in range(1, rank) if i not in shared})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        return ops.prelu(inputs, self.alpha.value), inputs

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        grad_x, grad_alpha = ops.prelu_backward(ctx, self.alpha.value, grad_outputs)
        return (grad_x if need_input_grad else None), [grad_alpha]

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes}

"""`Dense`: kernel (in, out) on `ops.dense`; inputs of rank > 2 act on the last axis, like Keras."""
from __future__ import annotations

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from .layer import InputSpec, Layer, folded_bias, positive_int
from ..registry import register


__all__ = ["Dense"]

@register("layers", "Dense")
class Dense(Layer):
    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = positive_int(units, "units", f"Dense '{self.name}'")
        self.input_spec = InputSpec(min_ndim=2)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}' needs inputs of rank >= 2 with a known last dimension, "
                             f"got input shape {tuple(input_shape)}")
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_shape[-1]})
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def linear(self, inputs, kernel, bias, relu=False):
        """inputs @ kernel + bias on the last axis (the layer's own weights, or folded ones)."""
        x2 = inputs.reshape(-1, inputs.shape[-1]) if inputs.ndim != 2 else inputs
        z = ops.dense(x2, kernel, bias, activation="relu" if relu else None)
        return z if inputs.ndim == 2 else z.reshape(inputs.shape[:-1] + (kernel.shape[-1],))

    def folded(self, inputs, scale, shift):
        """inputs @ kernel + bias with a following inference BatchNormalization folded in."""
        return self.linear(inputs, (self.kernel.value * scale).astype(np.float32), folded_bias(self, scale, shift))

    def forward(self, inputs, training=False):
        fuse = self.activation is activations.relu  # ReLU runs inside the kernel
        z = self.linear(inputs, self.kernel.value, self.bias.value if self.use_bias else None, relu=fuse)
        y, saved = (z, z) if fuse else activations.forward(self.activation, z)
        return y, (inputs, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, saved = ctx  # saved: the output when ReLU is fused (its backward reads it)
        fuse = self.activation is activations.relu
        g = grad_outputs if fuse else activations.backward(self.activation, saved, grad_outputs)
        grad_x, grad_k, grad_b = ops.dense_backward(
            x.reshape(-1, x.shape[-1]), self.kernel.value, g.reshape(-1, self.units),
            relu_output=saved.reshape(-1, self.units) if fuse else None, need_grad_x=need_input_grad)
        grad_x = None if grad_x is None else grad_x.reshape(x.shape)
        return grad_x, ([grad_k, grad_b] if self.use_bias else [grad_k])

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint)}

"""`Conv2D` (NHWC, kernel (kh, kw, cin/groups, filters)) and `Conv1D` (NWC, kernel (k, cin/groups,
filters)) on `ops.conv2d`: Conv1D is the 2-D convolution of a height-1 image. Plain convolutions (dilation
1, one group) run the fast kernel with an optional fused ReLU; dilation and groups run their own kernel."""
from __future__ import annotations

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..ops.conv import conv_output_length
from .layer import (InputSpec, Layer, check_data_format, folded_bias, normalize_padding, normalize_tuple,
                    positive_int)
from ..registry import register


__all__ = ["Conv1D", "Conv2D", "Convolution1D", "Convolution2D"]


class ActivationMixin:
    """A linear op (`linear(x, **weights)` in the subclass) then the layer's activation; ReLU is fused into
    the kernel where it can be (its backward masks by the saved output)."""

    activation = activations.linear
    fusable_relu = True

    def _fused(self) -> bool:
        return self.fusable_relu and self.activation is activations.relu

    def _activate(self, z):
        """(y, saved) from the linear output (already ReLU'd when fused)."""
        return (z, z) if self._fused() else activations.forward(self.activation, z)

    def _activation_grad(self, saved, grad):
        """The gradient of the linear output, and the relu_output for a fused kernel's backward."""
        if self._fused():
            return grad, saved
        return activations.backward(self.activation, saved, grad), None


def weight_options(layer, **kinds):
    """Set `<prefix>_initializer/_regularizer/_constraint` on `layer` for each prefix in `kinds`
    (prefix -> (initializer, regularizer, constraint))."""
    for prefix, (init, reg, con) in kinds.items():
        setattr(layer, f"{prefix}_initializer", initializers.get(init))
        setattr(layer, f"{prefix}_regularizer", regularizers.get(reg))
        setattr(layer, f"{prefix}_constraint", constraints.get(con))


def weight_config(layer, *prefixes) -> dict:
    """The Keras config keys of `weight_options` (plus the activity regularizer), serialized."""
    config = {f"{p}_initializer": initializers.serialize(getattr(layer, f"{p}_initializer")) for p in prefixes}
    config.update({f"{p}_regularizer": regularizers.serialize(getattr(layer, f"{p}_regularizer")) for p in prefixes})
    config["activity_regularizer"] = regularizers.serialize(layer.activity_regularizer)
    config.update({f"{p}_constraint": constraints.serialize(getattr(layer, f"{p}_constraint")) for p in prefixes})
    return config


def add_option_weight(layer, prefix: str, shape, name: str):
    """`layer.add_weight` with the initializer, regularizer and constraint of `prefix`."""
    return layer.add_weight(tuple(shape), getattr(layer, f"{prefix}_initializer"), name=name,
                            regularizer=getattr(layer, f"{prefix}_regularizer"),
                            constraint=getattr(layer, f"{prefix}_constraint"))


def check_spatial_input(layer, input_shape, rank: int) -> int:
    """The channel count of a (batch, *spatial, channels) input shape, or a ValueError naming the layer."""
    if len(input_shape) != rank + 2 or input_shape[-1] is None:
        dims = ("batch", "height", "width", "channels") if rank == 2 else ("batch", "steps", "channels")
        raise ValueError(f"{type(layer).__name__} '{layer.name}' expects inputs of shape ({', '.join(dims)}) with a "
                         f"known channel count, got input shape {tuple(input_shape)}")
    return int(input_shape[-1])


def spatial_output_shape(layer, input_shape, lengths, channels: int):
    """(batch, *lengths, channels), or a ValueError naming the layer when a length is not positive."""
    out = (input_shape[0], *lengths, channels)
    if any(d is not None and d <= 0 for d in lengths):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': kernel_size {layer.kernel_size} with dilation_rate "
                         f"{layer.dilation_rate} and padding '{layer.padding}' does not fit its input of shape "
                         f"{tuple(input_shape)} (output would be {out})")
    return out


class BaseConv(ActivationMixin, Layer):
    """Keras's BaseConv for channels_last inputs of `rank` spatial axes (1 or 2)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where, r = f"{type(self).__name__} '{self.name}'", self.rank
        self.filters = positive_int(filters, "filters", where)
        self.kernel_size = normalize_tuple(kernel_size, r, "kernel_size", where)
        self.strides = normalize_tuple(strides, r, "strides", where)
        if r == 1 and str(padding).lower() == "causal":
            self.padding = "causal"
        else:
            self.padding = normalize_padding(padding, where)
        self.data_format = check_data_format(data_format, where)
        self.dilation_rate = normalize_tuple(dilation_rate, r, "dilation_rate", where)
        self.groups = positive_int(groups, "groups", where)
        if self.filters % self.groups:
            raise ValueError(f"{where}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 is not supported with dilation_rate > 1, got strides "
                             f"{self.strides} and dilation_rate {self.dilation_rate}")
        self.input_spec = InputSpec(ndim=r + 2)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        weight_options(self, kernel=(kernel_initializer, kernel_regularizer, kernel_constraint),
                       bias=(bias_initializer, bias_regularizer, bias_constraint))

    def build(self, input_shape):
        cin = check_spatial_input(self, input_shape, self.rank)
        if cin % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': the input's {cin} channels must be divisible by "
                             f"groups ({self.groups}); input shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={-1: cin})
        self.compute_output_shape(input_shape)
        self.kernel = add_option_weight(self, "kernel", self.kernel_size + (cin // self.groups, self.filters), "kernel")
        self.bias = add_option_weight(self, "bias", (self.filters,), "bias") if self.use_bias else None

    def compute_output_shape(self, input_shape):
        padding = "valid" if self.padding == "causal" else self.padding
        lengths = [n if self.padding == "causal" and n is not None else
                   conv_output_length(n, k, s, padding, d)
                   for n, k, s, d in zip(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate)]
        return spatial_output_shape(self, input_shape, lengths, self.filters)

    # The 2-D view: identity for Conv2D; Conv1D adds a height-1 axis (and the causal left padding).
    def _args2d(self):
        return self.strides, self.padding, self.dilation_rate

    def _input2d(self, x, pad=True):
        return x

    def _kernel2d(self, kernel):
        return kernel

    def _grad_input(self, grad2d):
        return grad2d

    def _output(self, y2d):
        return y2d

    def linear(self, inputs, kernel, bias, relu=False):
        """The convolution with the given kernel and bias (the layer's own, or folded ones)."""
        strides, padding, dilation = self._args2d()
        y = ops.conv2d(self._input2d(inputs), self._kernel2d(kernel), bias, strides, padding,
                       activation="relu" if relu else None, dilation_rate=dilation, groups=self.groups)
        return self._output(y)

    def folded(self, inputs, scale, shift):
        """The convolution with a following inference BatchNormalization folded in (output channels last)."""
        return self.linear(inputs, (self.kernel.value * scale).astype(np.float32), folded_bias(self, scale, shift))

    def forward(self, inputs, training=False):
        z = self.linear(inputs, self.kernel.value, self.bias.value if self.use_bias else None, relu=self._fused())
        y, saved = self._activate(z)
        return y, (inputs, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, saved = ctx  # saved: the output when ReLU is fused (its backward reads it)
        g, relu_output = self._activation_grad(saved, grad_outputs)
        strides, padding, dilation = self._args2d()
        as2d = self._input2d
        grad_x, grad_k, grad_b = ops.conv2d_backward(
            as2d(x), self._kernel2d(self.kernel.value), as2d(g, pad=False), strides, padding,
            relu_output=None if relu_output is None else as2d(relu_output, pad=False),
            need_grad_x=need_input_grad, dilation_rate=dilation, groups=self.groups)
        grad_k = grad_k.reshape(self.kernel.value.shape)
        grad_x = None if grad_x is None else self._grad_input(grad_x)
        return grad_x, ([grad_k, grad_b] if self.use_bias else [grad_k])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **weight_config(self, "kernel", "bias")}


@register("layers", "Conv2D", "Convolution2D")
class Conv2D(BaseConv):
    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, **kwargs)


@register("layers", "Conv1D", "Convolution1D")
class Conv1D(BaseConv):
    """1-D convolution over (batch, steps, channels); padding 'valid', 'same' or 'causal' (the input
    left-padded by dilation_rate · (kernel_size − 1), so output t sees inputs ≤ t)."""

    rank = 1

    def _causal_pad(self) -> int:
        return self.dilation_rate[0] * (self.kernel_size[0] - 1) if self.padding == "causal" else 0

    def _args2d(self):
        return (1, self.strides[0]), "valid" if self.padding == "causal" else self.padding, (1, self.dilation_rate[0])

    def _input2d(self, x, pad=True):
        x = np.asarray(x)[:, None]
        if pad and self._causal_pad():
            x = np.pad(x, ((0, 0), (0, 0), (self._causal_pad(), 0), (0, 0)))
        return x

    def _kernel2d(self, kernel):
        return np.asarray(kernel)[None]

    def _grad_input(self, grad2d):
        return grad2d[:, 0, self._causal_pad():]

    def _output(self, y2d):
        return y2d[:, 0]


Convolution1D = Conv1D
Convolution2D = Conv2D

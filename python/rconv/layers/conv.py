"""`Conv2D` (NHWC, kernel (kh, kw, cin, cout)) on `ops.conv2d`, with an optional fused activation."""
from __future__ import annotations

from .. import activations, initializers, ops
from .layer import (InputSpec, Layer, check_data_format, conv_output_length, normalize_padding, normalize_tuple,
                    positive_int, require_none)
from ..registry import register


__all__ = ["Conv2D", "Convolution2D"]

@register("layers", "Conv2D", "Convolution2D")
class Conv2D(Layer):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"Conv2D '{self.name}'"
        self.filters = positive_int(filters, "filters", where)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = check_data_format(data_format, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        if self.dilation_rate != (1, 1) or groups != 1:
            raise NotImplementedError(f"{where}: dilation_rate != 1 and groups != 1 are not supported yet")
        self.groups = 1
        self.input_spec = InputSpec(ndim=4)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        require_none(where, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                     activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                     bias_constraint=bias_constraint)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"Conv2D '{self.name}' expects inputs of shape (batch, height, width, channels) "
                             f"with a known channel count, got input shape {tuple(input_shape)}")
        self.input_spec = InputSpec(ndim=4, axes={-1: input_shape[-1]})
        kh, kw = self.kernel_size
        self.kernel = self.add_weight((kh, kw, input_shape[-1], self.filters), self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias") if self.use_bias else None

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        out = (n, conv_output_length(h, self.kernel_size[0], self.strides[0], self.padding),
               conv_output_length(w, self.kernel_size[1], self.strides[1], self.padding), self.filters)
        if any(d is not None and d <= 0 for d in out[1:3]):
            raise ValueError(f"Conv2D '{self.name}': kernel_size {self.kernel_size} with padding "
                             f"'{self.padding}' does not fit its input of shape {tuple(input_shape)} "
                             f"(output would be {out})")
        return out

    def linear(self, inputs, kernel, bias, relu=False):
        """The convolution with the given kernel and bias (the layer's own, or folded ones)."""
        return ops.conv2d(inputs, kernel, bias, self.strides, self.padding, activation="relu" if relu else None)

    def forward(self, inputs, training=False):
        fuse = self.activation is activations.relu  # ReLU runs inside the kernel
        z = self.linear(inputs, self.kernel.value, self.bias.value if self.use_bias else None, relu=fuse)
        y, saved = (z, z) if fuse else activations.forward(self.activation, z)
        return y, (inputs, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, saved = ctx  # saved: the output when ReLU is fused (its backward reads it)
        fuse = self.activation is activations.relu
        g = grad_outputs if fuse else activations.backward(self.activation, saved, grad_outputs)
        grad_x, grad_k, grad_b = ops.conv2d_backward(x, self.kernel.value, g, self.strides, self.padding,
                                                     relu_output=saved if fuse else None,
                                                     need_grad_x=need_input_grad)
        return grad_x, ([grad_k, grad_b] if self.use_bias else [grad_k])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "groups": self.groups,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
                "kernel_constraint": None, "bias_constraint": None}


Convolution2D = Conv2D

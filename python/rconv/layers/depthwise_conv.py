"""`DepthwiseConv2D` (kernel (kh, kw, cin, depth_multiplier)) and `SeparableConv2D` (that depthwise kernel,
then a pointwise kernel (1, 1, cin · depth_multiplier, filters) and the bias), NHWC, Keras's weight names
and order. The depthwise part runs `ops.depthwise_conv2d`; the pointwise part is a matrix product over the
channels (`ops.dense`, with a fused ReLU when the activation is ReLU)."""
from __future__ import annotations

import numpy as np

from .. import activations, ops
from ..ops.conv import conv_output_length
from .conv import (ActivationMixin, add_option_weight, check_spatial_input, spatial_output_shape, weight_config,
                   weight_options)
from .layer import (InputSpec, Layer, check_data_format, folded_bias, normalize_padding, normalize_tuple,
                    positive_int)
from ..registry import register


__all__ = ["DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D"]


class _DepthwiseBase(ActivationMixin, Layer):
    """The arguments and geometry both layers share."""

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier, activation,
                 use_bias, activity_regularizer, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", where)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = check_data_format(data_format, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        self.input_spec = InputSpec(ndim=4)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)

    def _channels(self, input_shape) -> int:
        cin = check_spatial_input(self, input_shape, 2)
        self.input_spec = InputSpec(ndim=4, axes={-1: cin})
        self.compute_output_shape(input_shape)
        return cin

    def _spatial_output(self, input_shape, channels):
        lengths = [conv_output_length(n, k, s, self.padding, d)
                   for n, k, s, d in zip(input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate)]
        return spatial_output_shape(self, input_shape, lengths, channels)

    def _depthwise(self, x, kernel, bias):
        return ops.depthwise_conv2d(x, kernel, bias, self.strides, self.padding, self.dilation_rate)

    def _depthwise_backward(self, x, kernel, grad, need_input_grad):
        return ops.depthwise_conv2d_backward(x, kernel, grad, self.strides, self.padding, self.dilation_rate,
                                             need_grad_x=need_input_grad)

    def _config(self) -> dict:
        return {**Layer.get_config(self), "depth_multiplier": self.depth_multiplier, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias}


@register("layers", "DepthwiseConv2D")
class DepthwiseConv2D(_DepthwiseBase):
    fusable_relu = False

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier, activation,
                         use_bias, activity_regularizer, **kwargs)
        weight_options(self, depthwise=(depthwise_initializer, depthwise_regularizer, depthwise_constraint),
                       bias=(bias_initializer, bias_regularizer, bias_constraint))

    def build(self, input_shape):
        cin = self._channels(input_shape)
        self.kernel = add_option_weight(self, "depthwise", self.kernel_size + (cin, self.depth_multiplier), "kernel")
        self.bias = (add_option_weight(self, "bias", (cin * self.depth_multiplier,), "bias")
                     if self.use_bias else None)

    def compute_output_shape(self, input_shape):
        cin = input_shape[-1]
        return self._spatial_output(input_shape, None if cin is None else cin * self.depth_multiplier)

    def folded(self, inputs, scale, shift):
        """The depthwise convolution with a following inference BatchNormalization folded in (output channel
        c * depth_multiplier + m scales kernel[..., c, m])."""
        kernel = self.kernel.value * np.reshape(scale, self.kernel.shape[2:])
        return self._depthwise(inputs, kernel.astype(np.float32), folded_bias(self, scale, shift))

    def forward(self, inputs, training=False):
        z = self._depthwise(inputs, self.kernel.value, self.bias.value if self.use_bias else None)
        y, saved = self._activate(z)
        return y, (inputs, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, saved = ctx
        g, _ = self._activation_grad(saved, grad_outputs)
        grad_x, grad_k, grad_b = self._depthwise_backward(x, self.kernel.value, g, need_input_grad)
        return grad_x, ([grad_k, grad_b] if self.use_bias else [grad_k])

    def get_config(self):
        return {**self._config(), **weight_config(self, "depthwise", "bias")}


@register("layers", "SeparableConv2D", "SeparableConvolution2D")
class SeparableConv2D(_DepthwiseBase):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier, activation,
                         use_bias, activity_regularizer, **kwargs)
        self.filters = positive_int(filters, "filters", f"SeparableConv2D '{self.name}'")
        weight_options(self, depthwise=(depthwise_initializer, depthwise_regularizer, depthwise_constraint),
                       pointwise=(pointwise_initializer, pointwise_regularizer, pointwise_constraint),
                       bias=(bias_initializer, bias_regularizer, bias_constraint))

    def build(self, input_shape):
        cin = self._channels(input_shape)
        dm = self.depth_multiplier
        self.depthwise_kernel = add_option_weight(self, "depthwise", self.kernel_size + (cin, dm), "depthwise_kernel")
        self.pointwise_kernel = add_option_weight(self, "pointwise", (1, 1, cin * dm, self.filters), "pointwise_kernel")
        self.bias = add_option_weight(self, "bias", (self.filters,), "bias") if self.use_bias else None

    def compute_output_shape(self, input_shape):
        return self._spatial_output(input_shape, self.filters)

    def folded(self, inputs, scale, shift):
        """The separable convolution with a following inference BatchNormalization folded into the pointwise
        kernel and the bias."""
        z = self._depthwise(inputs, self.depthwise_kernel.value, None)
        pk = self.pointwise_kernel.value
        y = ops.dense(z.reshape(-1, z.shape[-1]), (pk.reshape(pk.shape[-2:]) * scale).astype(np.float32),
                      folded_bias(self, scale, shift))
        return y.reshape(z.shape[:-1] + (self.filters,))

    def forward(self, inputs, training=False):
        z = self._depthwise(inputs, self.depthwise_kernel.value, None)
        pk = self.pointwise_kernel.value
        y = ops.dense(z.reshape(-1, z.shape[-1]), pk.reshape(pk.shape[-2:]), self.bias.value if self.use_bias else None,
                      activation="relu" if self._fused() else None).reshape(z.shape[:-1] + (self.filters,))
        y, saved = self._activate(y)
        return y, (inputs, z, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, z, saved = ctx
        g, relu_output = self._activation_grad(saved, grad_outputs)
        pk = self.pointwise_kernel.value
        flat = (-1, self.filters)
        grad_z, grad_pk, grad_b = ops.dense_backward(
            z.reshape(-1, z.shape[-1]), pk.reshape(pk.shape[-2:]), g.reshape(flat),
            relu_output=None if relu_output is None else relu_output.reshape(flat))
        grad_x, grad_dk, _ = self._depthwise_backward(x, self.depthwise_kernel.value, grad_z.reshape(z.shape),
                                                      need_input_grad)
        grads = [grad_dk, grad_pk.reshape(pk.shape)]
        return grad_x, (grads + [grad_b] if self.use_bias else grads)

    def get_config(self):
        return {**self._config(), "filters": self.filters, **weight_config(self, "depthwise", "pointwise", "bias")}


SeparableConvolution2D = SeparableConv2D

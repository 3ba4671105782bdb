"""`Conv2DTranspose` (NHWC, kernel (kh, kw, filters, cin) as Keras stores it) on `ops.conv2d_transpose`:
TF's conv2d_transpose, with Keras's output-length rule (`deconv_output_length`) and output_padding."""
from __future__ import annotations

import numpy as np

from .. import activations, ops
from ..ops.conv import conv_output_length, deconv_output_length
from .conv import (ActivationMixin, add_option_weight, check_spatial_input, spatial_output_shape, weight_config,
                   weight_options)
from .layer import (InputSpec, Layer, _is_int, check_data_format, folded_bias, normalize_padding, normalize_tuple,
                    positive_int)
from ..registry import register


__all__ = ["Conv2DTranspose", "Convolution2DTranspose"]


@register("layers", "Conv2DTranspose", "Convolution2DTranspose")
class Conv2DTranspose(ActivationMixin, Layer):
    fusable_relu = False

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        where = f"Conv2DTranspose '{self.name}'"
        self.filters = positive_int(filters, "filters", where)
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size", where)
        self.strides = normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = check_data_format(data_format, where)
        self.dilation_rate = normalize_tuple(dilation_rate, 2, "dilation_rate", where)
        self.output_padding = None if output_padding is None else self._output_padding(output_padding, where)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 is not supported with dilation_rate > 1, got strides "
                             f"{self.strides} and dilation_rate {self.dilation_rate}")
        self.input_spec = InputSpec(ndim=4)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        weight_options(self, kernel=(kernel_initializer, kernel_regularizer, kernel_constraint),
                       bias=(bias_initializer, bias_regularizer, bias_constraint))

    def _output_padding(self, value, where):
        pads = (value,) * 2 if _is_int(value) else value
        try:
            pads = tuple(pads)
        except TypeError:
            pads = ()
        if len(pads) != 2 or not all(_is_int(p) and p >= 0 for p in pads):
            raise ValueError(f"{where}: `output_padding` must be a non-negative integer or a tuple of 2 of them, "
                             f"got {value!r}")
        for i, (p, s) in enumerate(zip(pads, self.strides)):
            if p >= s:
                raise ValueError(f"{where}: `output_padding` must be strictly less than `strides` on every axis; "
                                 f"axis {i} has output_padding {p} and stride {s} (output_padding={tuple(pads)}, "
                                 f"strides={self.strides})")
        return tuple(int(p) for p in pads)

    def build(self, input_shape):
        cin = check_spatial_input(self, input_shape, 2)
        self.input_spec = InputSpec(ndim=4, axes={-1: cin})
        self.compute_output_shape(input_shape)
        self.kernel = add_option_weight(self, "kernel", self.kernel_size + (self.filters, cin), "kernel")
        self.bias = add_option_weight(self, "bias", (self.filters,), "bias") if self.use_bias else None

    def compute_output_shape(self, input_shape):
        pads = self.output_padding or (None, None)
        lengths = [deconv_output_length(n, k, s, self.padding, p, d) for n, k, s, p, d
                   in zip(input_shape[1:3], self.kernel_size, self.strides, pads, self.dilation_rate)]
        out = spatial_output_shape(self, input_shape, lengths, self.filters)
        for n, m, k, s, d in zip(input_shape[1:3], lengths, self.kernel_size, self.strides, self.dilation_rate):
            # TF's rule: the convolution this layer transposes must map the output back onto the input.
            if n is not None and conv_output_length(m, k, s, self.padding, d) != n:
                raise ValueError(f"Conv2DTranspose '{self.name}': an output of shape {out} does not map back onto "
                                 f"the input {tuple(input_shape)} with kernel_size {self.kernel_size}, strides "
                                 f"{self.strides}, padding '{self.padding}' and output_padding {self.output_padding} "
                                 f"(TensorFlow refuses it too); pick output_padding so that it does")
        return out

    def folded(self, inputs, scale, shift):
        """The transposed convolution with a following inference BatchNormalization folded in (the kernel's
        output channels are its third axis)."""
        kernel = (self.kernel.value * np.reshape(scale, (-1, 1))).astype(np.float32)
        return ops.conv2d_transpose(inputs, kernel, folded_bias(self, scale, shift), self.strides, self.padding,
                                    self.output_padding, self.dilation_rate)

    def forward(self, inputs, training=False):
        z = ops.conv2d_transpose(inputs, self.kernel.value, self.bias.value if self.use_bias else None, self.strides,
                                 self.padding, self.output_padding, self.dilation_rate)
        y, saved = self._activate(z)
        return y, (inputs, saved)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, saved = ctx
        g, _ = self._activation_grad(saved, grad_outputs)
        grad_x, grad_k, grad_b = ops.conv2d_transpose_backward(x, self.kernel.value, g, self.strides, self.padding,
                                                               self.dilation_rate, need_grad_x=need_input_grad)
        return grad_x, ([grad_k, grad_b] if self.use_bias else [grad_k])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "output_padding": self.output_padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **weight_config(self, "kernel", "bias")}


Convolution2DTranspose = Conv2DTranspose

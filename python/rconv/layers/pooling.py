"""2-D max and average pooling (NHWC) on the `ops` pooling kernels."""
from __future__ import annotations

from .. import ops
from .layer import InputSpec, Layer, check_data_format, conv_output_length, normalize_padding, normalize_tuple
from ..registry import register


__all__ = ["AveragePooling2D", "AvgPool2D", "MaxPool2D", "MaxPooling2D"]

class _Pooling2D(Layer):
    _forward_op = None   # set by subclasses: ops.max_pool2d / ops.avg_pool2d
    _backward_op = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size", where)
        # Keras: strides default to the pool size (non-overlapping windows).
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides", where)
        self.padding = normalize_padding(padding, where)
        self.data_format = check_data_format(data_format, where)
        self.input_spec = InputSpec(ndim=4)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}' expects inputs of shape "
                             f"(batch, height, width, channels), got input shape {tuple(input_shape)}")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        out = (n, conv_output_length(h, self.pool_size[0], self.strides[0], self.padding),
               conv_output_length(w, self.pool_size[1], self.strides[1], self.padding), c)
        if any(d is not None and d <= 0 for d in out[1:3]):
            raise ValueError(f"{type(self).__name__} '{self.name}': pool_size {self.pool_size} with padding "
                             f"'{self.padding}' does not fit its input of shape {tuple(input_shape)} "
                             f"(output would be {out})")
        return out

    def forward(self, inputs, training=False):
        outputs = type(self)._forward_op(inputs, self.pool_size, self.strides, self.padding)
        return outputs, (inputs, outputs)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        inputs, _ = ctx
        return type(self)._backward_op(inputs, grad_outputs, self.pool_size, self.strides, self.padding), []

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


@register("layers", "MaxPooling2D", "MaxPool2D")
class MaxPooling2D(_Pooling2D):
    _forward_op = staticmethod(ops.max_pool2d)
    _backward_op = staticmethod(ops.max_pool2d_backward)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        inputs, outputs = ctx  # the saved maxima spare the kernel a second pass over every window
        return ops.max_pool2d_backward(inputs, grad_outputs, self.pool_size, self.strides, self.padding,
                                       y=outputs), []


@register("layers", "AveragePooling2D", "AvgPool2D")
class AveragePooling2D(_Pooling2D):
    _forward_op = staticmethod(ops.avg_pool2d)
    _backward_op = staticmethod(ops.avg_pool2d_backward)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D

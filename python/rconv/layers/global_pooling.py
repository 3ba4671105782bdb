"""GlobalAveragePooling2D / GlobalMaxPooling2D (NHWC): reduce the spatial axes (NumPy reductions)."""
from __future__ import annotations

import numpy as np

from .layer import InputSpec, Layer, check_data_format
from ..registry import register


__all__ = ["GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "GlobalMaxPooling2D"]

class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, f"{type(self).__name__} '{self.name}'")
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=4)

    def compute_output_shape(self, input_shape):
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@register("layers", "GlobalAveragePooling2D", "GlobalAvgPool2D")
class GlobalAveragePooling2D(_GlobalPooling2D):
    def forward(self, inputs, training=False):
        return inputs.mean(axis=(1, 2), keepdims=self.keepdims, dtype=np.float32), inputs.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        n, h, w, c = ctx
        g = grad_outputs.reshape(n, 1, 1, c) * np.float32(1.0 / (h * w))
        return np.ascontiguousarray(np.broadcast_to(g, ctx), dtype=np.float32), []


@register("layers", "GlobalMaxPooling2D", "GlobalMaxPool2D")
class GlobalMaxPooling2D(_GlobalPooling2D):
    def forward(self, inputs, training=False):
        y = inputs.max(axis=(1, 2), keepdims=True)
        return (y if self.keepdims else y.reshape(y.shape[0], y.shape[3])), (inputs, y)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        x, y = ctx
        n, _, _, c = x.shape
        flat = x.reshape(n, -1, c)
        first = np.argmax(flat, axis=1)  # ties: the first maximum gets the gradient
        g = np.zeros_like(flat)
        np.put_along_axis(g, first[:, None, :], grad_outputs.reshape(n, 1, c), axis=1)
        return g.reshape(x.shape), []


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

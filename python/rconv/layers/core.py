"""Shape/elementwise layers: Input/InputLayer, Flatten, Dropout, Activation, Rescaling (ReLU, Softmax and the
other activation layers are in layers/activations.py).

Only NumPy glue lives here (reshapes, masks, a scale); activations go through `ops`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations, backend
from ..keras_tensor import KerasTensor
from ..graph import context
from .layer import Layer, check_data_format
from ..registry import register


__all__ = ["Activation", "Dropout", "Flatten", "Input", "InputLayer", "Rescaling"]

@register("layers", "InputLayer")
class InputLayer(Layer):
    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, name=None, input_shape=None, ragged=None, optional=False, **kwargs):
        shape = input_shape if shape is None else shape  # Keras 2 spelling
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer needs `shape` or `batch_shape`")
            batch_shape = (batch_size,) + tuple(shape)
        super().__init__(name=name, dtype=dtype, **kwargs)
        if sparse or ragged:
            raise NotImplementedError(f"InputLayer '{self.name}': sparse/ragged inputs are not supported")
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        self.built = True
        self._output_shape = self.batch_shape
        tensor = KerasTensor(self.batch_shape, name=self.name, history=(self, []))
        self._inbound_nodes = [(tensor, tensor)]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        return inputs, None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return grad_outputs, []

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": "float32", "sparse": False, "ragged": False,
                "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """A symbolic input (`KerasTensor`); `Sequential([Input((28, 28, 1)), ...])` uses its InputLayer."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, name=name).output


@register("layers", "Flatten")
class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, f"Flatten '{self.name}'")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def forward(self, inputs, training=False):
        return inputs.reshape(inputs.shape[0], -1), inputs.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return grad_outputs.reshape(ctx), []

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register("layers", "Dropout")
class Dropout(Layer):
    """Inverted dropout: at training, zero a `rate` fraction and scale the rest by 1/(1-rate)."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout '{self.name}': `rate` must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        # A seeded layer owns its generator (reproducible alone); otherwise the global one is used.
        self._rng = None if seed is None else np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs, None
        shape = inputs.shape if self.noise_shape is None else tuple(
            d if n is None else n for d, n in zip(inputs.shape, self.noise_shape))
        gen = self._rng if self._rng is not None else backend.rng()
        keep = context.draw(gen.random, shape, dtype=np.float32,  # data-parallel: this rank's rows
                            per_sample=self.noise_shape is None or self.noise_shape[0] is None) >= self.rate
        mask = keep * np.float32(1.0 / (1.0 - self.rate))
        return inputs * mask, mask

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return (grad_outputs if ctx is None else grad_outputs * ctx), []

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape}


@register("layers", "Activation")
class Activation(Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        return activations.forward(self.activation, inputs)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return activations.backward(self.activation, ctx, grad_outputs), []

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register("layers", "Rescaling")
class Rescaling(Layer):
    """y = x * scale + offset (e.g. 1/255 to bring pixels into [0, 1])."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset
        self._scale = np.float32(scale)
        self._offset = np.float32(offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        y = inputs.astype(np.float32, copy=False) * self._scale
        if self._offset:
            y += self._offset
        return y, None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return grad_outputs * self._scale, []

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}

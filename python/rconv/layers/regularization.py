"""Noise layers: `SpatialDropout2D`, `GaussianNoise` (Keras 3, keras/src/layers/regularization/).

Both are active only in training and the identity at inference, forward and backward. Random numbers come
from the layer's own generator when `seed` is given, else from the global `rconv.backend` generator, so
`rconv.utils.set_random_seed` makes their draws repeatable. In data-parallel training each rank takes its
rows of the draws for the global batch (`graph.context.draw`), so the ranks compute one process's batch.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..graph import context
from .core import Dropout
from .layer import InputSpec, Layer, check_data_format
from ..registry import register

__all__ = ["GaussianNoise", "SpatialDropout2D"]


@register("layers", "SpatialDropout2D")
class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each (image, channel) is zeroed with probability `rate`
    and the kept ones are scaled by 1 / (1 - rate); the backward applies the same mask."""

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, noise_shape=(None, 1, 1, None), seed=seed, name=name, dtype=dtype, **kwargs)
        self.data_format = check_data_format(data_format, f"SpatialDropout2D '{self.name}'")
        self.input_spec = InputSpec(ndim=4)

    def get_config(self):
        # Keras 3's keys exactly (its spatial dropouts write neither `trainable` nor a DTypePolicy).
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype,
                "data_format": self.data_format}


@register("layers", "GaussianNoise")
class GaussianNoise(Layer):
    """Add zero-mean Gaussian noise of standard deviation `stddev` in training (gradient: the identity)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.integer, np.floating)) \
                or not 0 <= stddev <= 1:
            raise ValueError(f"GaussianNoise '{self.name}': invalid value received for argument `stddev`. Expected "
                             f"a float value between 0 and 1. Received: stddev={stddev!r}")
        self.stddev = stddev.item() if isinstance(stddev, np.generic) else stddev
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        x = np.asarray(inputs, np.float32)
        if not training or self.stddev == 0:
            return x, None
        gen = self._rng if self._rng is not None else backend.rng()
        noise = context.draw(gen.standard_normal, x.shape, dtype=np.float32) * np.float32(self.stddev)
        return x + noise, None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        return np.asarray(grad_outputs, np.float32), []

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}

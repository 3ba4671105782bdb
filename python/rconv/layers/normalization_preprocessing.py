"""`Normalization`, Keras 3's preprocessing layer (keras/src/layers/preprocessing/normalization.py):
``y = (x - mean) / max(sqrt(variance), epsilon)`` (``invert=True``: ``y = mean + x * max(sqrt(variance),
epsilon)``) with per-position statistics on the kept `axis` (default -1: per channel), broadcast over the
other axes. The statistics are given (`mean`, `variance`: no weights) or learned by `adapt(data)`, then held
in non-trainable weights `mean`, `variance` and `count` (Keras's order; EfficientNet has this layer)."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..registry import register
from .layer import Layer

__all__ = ["Normalization"]


@register("layers", "Normalization")
class Normalization(Layer):
    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, int):
            axis = (axis,)
        else:
            axis = tuple(axis)
        if any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) for a in axis):
            raise ValueError(f"Normalization '{self.name}': `axis` must be None, an int or a tuple of ints. "
                             f"Received: axis={axis}")
        self.axis = tuple(int(a) for a in axis)
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)
        if (mean is not None) != (variance is not None):
            raise ValueError(f"Normalization '{self.name}': when setting values directly, both `mean` and "
                             f"`variance` must be set. Received: mean={mean} and variance={variance}")
        if mean is not None:
            if np.shape(mean) != np.shape(variance):
                raise ValueError(f"Normalization '{self.name}': when setting values directly, `mean` and "
                                 f"`variance` must have the same shape. Received: mean shape {np.shape(mean)} "
                                 f"and variance shape {np.shape(variance)}")
            if len(np.shape(mean)) > len(self.axis):
                raise ValueError(f"Normalization '{self.name}': the rank of `mean` must be less than or equal to "
                                 f"the number of axes ({len(self.axis)}). Received: mean shape "
                                 f"{np.shape(mean)} for axis {self.axis}")
        self._build_input_shape = None
        self._mean = self._variance = None

    # --- building -----------------------------------------------------------------------------------
    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"Normalization '{self.name}': all `axis` values must be in the range [-ndim, ndim). "
                             f"Received inputs with ndim={ndim}, while axis={self.axis}")
        keep = tuple(sorted(a % ndim for a in self.axis))
        for d in keep:
            if input_shape[d] is None:
                raise ValueError(f"Normalization '{self.name}': all `axis` values to be kept must have a known "
                                 f"shape. Received axis={self.axis}, inputs.shape={tuple(input_shape)}, with "
                                 f"unknown axis at index {d}")
        self._build_input_shape = tuple(input_shape)
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        self._mean_and_var_shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self._stat_weight(self._mean_and_var_shape, 0.0, "mean")
            self.adapt_variance = self._stat_weight(self._mean_and_var_shape, 1.0, "variance")
            self.count = self._stat_weight((), 0.0, "count")
        else:
            self._mean = self._broadcast(self.input_mean)
            self._variance = self._broadcast(self.input_variance)

    def _stat_weight(self, shape, value, name):
        var = self.add_weight(shape, "zeros", trainable=False, name=name)
        var.assign(np.full(shape, value, np.float32))
        return var

    def _broadcast(self, value) -> np.ndarray:
        """Keras: a scalar broadcasts everywhere; else its axes align with the kept axes from the right."""
        value = np.asarray(value, np.float32)
        shape = [1] * len(self._broadcast_shape)
        for i in range(1, value.ndim + 1):
            shape[self._keep_axis[-i]] = value.shape[-i]
        try:
            return np.broadcast_to(value.reshape(shape), self._broadcast_shape).copy()
        except ValueError:
            raise ValueError(f"Normalization '{self.name}': `mean`/`variance` of shape {value.shape} do not "
                             f"broadcast to the kept axes {self._keep_axis} of inputs of shape "
                             f"{self._build_input_shape}") from None

    def _stats(self):
        if self.input_mean is not None:
            return self._mean, self._variance
        return (self.adapt_mean.value.reshape(self._broadcast_shape),
                self.adapt_variance.value.reshape(self._broadcast_shape))

    def _check_input(self, shape) -> None:
        if len(shape) != len(self._build_input_shape) or any(
                shape[d] != self._build_input_shape[d] for d in self._keep_axis):
            raise ValueError(f"Normalization '{self.name}' was built for inputs of shape {self._build_input_shape} "
                             f"(kept axes {self._keep_axis}); received inputs of shape {tuple(shape)}")

    # --- adapt --------------------------------------------------------------------------------------
    def adapt(self, data):
        """The mean and (biased) variance of `data` per kept position: an array, or an iterable of batches
        (merged exactly, Keras's running formula)."""
        if isinstance(data, np.ndarray) or hasattr(data, "__array__") and not hasattr(data, "__next__"):
            batches, first = None, np.asarray(data)
        elif hasattr(data, "__iter__"):
            batches = iter(data)
            first = next(batches, None)
            if first is None:
                raise ValueError(f"Normalization '{self.name}': adapt() received an empty iterable (no batches)")
            first = np.asarray(first[0] if isinstance(first, tuple) else first)
        else:
            raise TypeError(f"Normalization '{self.name}': adapt() supports arrays and iterables of batches, "
                            f"got {type(data).__name__}")
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}': adapt() cannot be used when `mean` and `variance` "
                             "were given")
        if not self.built:
            self.build(first.shape)
        else:
            self._check_input(first.shape)
        total_mean = first.astype(np.float64).mean(axis=self._reduce_axis)
        total_var = first.astype(np.float64).var(axis=self._reduce_axis)
        total_count = math.prod(first.shape[d] for d in self._reduce_axis)
        for batch in batches or ():
            batch = np.asarray(batch[0] if isinstance(batch, tuple) else batch, np.float64)
            self._check_input(batch.shape)
            count = math.prod(batch.shape[d] for d in self._reduce_axis)
            b_mean, b_var = batch.mean(axis=self._reduce_axis), batch.var(axis=self._reduce_axis)
            w = count / (total_count + count)
            new_mean = total_mean * (1 - w) + b_mean * w
            total_var = (total_var + (total_mean - new_mean) ** 2) * (1 - w) + (b_var + (b_mean - new_mean) ** 2) * w
            total_mean, total_count = new_mean, total_count + count
        self.adapt_mean.assign(np.asarray(total_mean, np.float32).reshape(self._mean_and_var_shape))
        self.adapt_variance.assign(np.asarray(total_var, np.float32).reshape(self._mean_and_var_shape))

    # --- the layer protocol -------------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, inputs, training=False):
        x = np.asarray(inputs, np.float32)
        self._check_input(x.shape)
        mean, variance = self._stats()
        root = np.sqrt(variance)
        denom = np.maximum(root, np.float32(backend.epsilon()))
        y = mean + x * denom if self.invert else (x - mean) / denom
        return y.astype(np.float32, copy=False), (x, mean, root, denom)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        x, mean, root, denom = ctx
        g = np.asarray(grad_outputs, np.float32)
        grad_x = (g * denom if self.invert else g / denom) if need_input_grad else None
        if self.input_mean is not None:
            return grad_x, []
        live = root > backend.epsilon()  # d max(sqrt(v), eps) / dv = 1 / (2 sqrt(v)) where sqrt(v) > eps
        d_denom_dv = np.where(live, 0.5 / np.where(live, root, 1.0), 0.0)
        if self.invert:
            d_mean, d_var = g, g * x * d_denom_dv
        else:
            d_mean, d_var = -g / denom, -g * (x - mean) / (denom * denom) * d_denom_dv
        shape = self._mean_and_var_shape
        return grad_x, [d_mean.sum(axis=self._reduce_axis).reshape(shape).astype(np.float32),
                        d_var.sum(axis=self._reduce_axis).reshape(shape).astype(np.float32),
                        np.zeros((), np.float32)]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(), "variance": np.array(self.input_variance).tolist()}

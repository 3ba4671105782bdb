"""`BatchNormalization`, `LayerNormalization` and `GroupNormalization` (Keras 3 semantics, names, defaults and
configs) on the Rust kernels `ops.batch_norm` / `ops.layer_norm` / `ops.group_norm`, which normalise over the
last axis; other axes are moved there first (a transpose) and back after.

BatchNormalization, like Keras 3 (keras/src/layers/normalization/batch_normalization.py):

* training (``training=True`` and ``layer.trainable``): the batch's mean and biased variance normalise the
  batch, and the moving statistics are updated through `Layer.add_update` with
  ``moving = moving * momentum + batch * (1 - momentum)``; the backward is the full batch-norm backward
  (through the batch statistics);
* otherwise (inference, or a frozen layer even in training: Keras 3's fine-tuning rule) the moving statistics
  are used and the backward is that of the per-channel affine map.

Weights in Keras's order: ``[gamma, beta, moving_mean, moving_variance]`` (gamma/beta only with
``scale``/``center``; the moving ones are non-trainable). Their gradients are aligned with all four: the
moving statistics get the true derivative of the output in inference mode and zeros in training mode
(where the output does not depend on them); no optimizer applies them, as they are not trainable.
"""
from __future__ import annotations

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..registry import register
from .layer import Layer, require_none, shape_str


__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization"]

def _canonical_axes(layer: Layer, axes, shape) -> list:
    """`axes` (an int or a list) as sorted non-negative ints for an input of `shape`, with a ValueError naming
    the layer when one does not exist or repeats."""
    rank = len(shape)
    listed = [axes] if isinstance(axes, (int, np.integer)) else list(axes)
    for a in listed:
        if not -rank <= int(a) < rank:
            raise ValueError(f"{type(layer).__name__} '{layer.name}': axis {a} is out of bounds for input shape "
                             f"{shape_str(shape)} (rank {rank}); received axis={axes!r}")
    canonical = sorted(int(a) % rank for a in listed)
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': duplicate axes are not allowed, received "
                         f"axis={axes!r}")
    return canonical


def _param_shape(layer: Layer, axes: list, shape) -> tuple:
    dims = tuple(shape[a] for a in axes)
    if any(d is None for d in dims):
        raise ValueError(f"{type(layer).__name__} '{layer.name}' needs known sizes on the normalized axes {axes}, "
                         f"got input shape {shape_str(shape)}")
    return dims


def _check_built_input(layer: Layer, axes: list, shape) -> None:
    """A built layer only takes inputs of its build rank and sizes on the normalized axes (Keras's InputSpec)."""
    built = layer._build_input_shape
    if built is None:
        return
    if len(shape) != len(built) or any(shape[a] != built[a] for a in axes):
        raise ValueError(f"{type(layer).__name__} '{layer.name}' was built for inputs of shape "
                         f"{shape_str(built)} (normalized axes {axes}), got an input of shape {shape_str(shape)}")


class _LastAxes:
    """Moves the normalized axes of an array to the end (in order) and flattens them into one: the (rows, cols)
    layout the kernels take; `restore` undoes it."""

    def __init__(self, shape, axes: list):
        rank = len(shape)
        self.shape, self.axes = tuple(shape), axes
        self.trailing = axes == list(range(rank - len(axes), rank))
        self.moved_shape = tuple(shape[i] for i in range(rank) if i not in axes) + tuple(shape[a] for a in axes)
        self.cols = int(np.prod([shape[a] for a in axes]))

    def to_rows(self, a: np.ndarray) -> np.ndarray:
        if not self.trailing:
            rank = len(self.shape)
            a = np.moveaxis(a, self.axes, list(range(rank - len(self.axes), rank)))
        return np.ascontiguousarray(a, dtype=np.float32).reshape(-1, self.cols)

    def restore(self, a: np.ndarray) -> np.ndarray:
        a = a.reshape(self.moved_shape)
        if not self.trailing:
            rank = len(self.shape)
            a = np.ascontiguousarray(np.moveaxis(a, list(range(rank - len(self.axes), rank)), self.axes))
        return a


class _Normalization(Layer):
    """What both layers share: the axes, gamma/beta and the input checks."""

    def _value(self, variable):
        return None if variable is None else variable.value

    def _prepare(self, inputs) -> _LastAxes:
        axes = _canonical_axes(self, self._axes_arg, inputs.shape)
        _check_built_input(self, axes, inputs.shape)
        return _LastAxes(inputs.shape, axes)

    def compute_output_shape(self, input_shape):
        _canonical_axes(self, self._axes_arg, input_shape)
        return tuple(input_shape)

    def _affine_grads(self, dgamma, dbeta) -> list:
        gamma_shape = self.gamma.shape if self.gamma is not None else None
        grads = [dgamma.reshape(gamma_shape)] if self.gamma is not None else []
        return grads + ([dbeta.reshape(self.beta.shape)] if self.beta is not None else [])


@register("layers", "BatchNormalization")
class BatchNormalization(_Normalization):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            raise TypeError(f"BatchNormalization '{self.name}': `axis` must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        where = f"BatchNormalization '{self.name}'"
        require_none(where, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                     beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        if synchronized:
            raise ValueError(f"{where}: synchronized=True is only supported with Keras's TensorFlow backend")
        if renorm:
            raise NotImplementedError(f"{where}: renorm=True (batch renormalization) is not supported by rconv yet")
        self.synchronized, self.renorm = False, False
        self.renorm_clipping, self.renorm_momentum = renorm_clipping, float(renorm_momentum)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    @property
    def _axes_arg(self):
        return self.axis

    def build(self, input_shape):
        axes = _canonical_axes(self, self.axis, input_shape)
        shape = _param_shape(self, axes, input_shape)
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta")
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer, trainable=False,
                                               name="moving_variance")

    def inference_affine(self):
        """(scale, shift), float64, per channel: in inference the layer computes x * scale + shift (what the
        graph pass folding it into the layer before it and the ONNX export use)."""
        scale = 1.0 / np.sqrt(self.moving_variance.numpy().astype(np.float64) + self.epsilon)
        if self.gamma is not None:
            scale = scale * self.gamma.numpy()
        shift = -self.moving_mean.numpy() * scale
        if self.beta is not None:
            shift = shift + self.beta.numpy()
        return scale, shift

    def forward(self, inputs, training=False):
        layout = self._prepare(inputs)
        x = layout.to_rows(inputs)
        gamma, beta = self._value(self.gamma), self._value(self.beta)
        batch_stats = bool(training) and self.trainable
        if batch_stats:
            y, mean, variance = ops.batch_norm(x, gamma, beta, epsilon=self.epsilon)
            keep, take = np.float32(self.momentum), np.float32(1.0 - self.momentum)
            self.add_update(self.moving_mean, self.moving_mean.value * keep + mean * take)
            self.add_update(self.moving_variance, self.moving_variance.value * keep + variance * take)
        else:
            mean, variance = self.moving_mean.numpy(), self.moving_variance.numpy()
            y, _, _ = ops.batch_norm(x, gamma, beta, mean, variance, self.epsilon)
        return layout.restore(y), (layout, x, mean, variance, batch_stats)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        layout, x, mean, variance, batch_stats = ctx
        gamma = self._value(self.gamma)
        gx, dgamma, dbeta = ops.batch_norm_backward(x, layout.to_rows(grad_outputs), gamma, mean, variance,
                                                    self.epsilon, batch_stats=batch_stats,
                                                    need_grad_x=need_input_grad)
        if batch_stats:  # the output does not depend on the moving statistics
            d_mean, d_var = np.zeros_like(mean), np.zeros_like(variance)
        else:  # y = gamma * (x - m) * s + beta, s = (v + eps)^-1/2
            s = 1.0 / np.sqrt(variance.astype(np.float64) + self.epsilon)
            g = np.ones_like(s) if gamma is None else gamma.astype(np.float64)
            d_mean = (-g * s * dbeta).astype(np.float32)
            d_var = (-0.5 * g * s * s * dgamma).astype(np.float32)
        grads = self._affine_grads(dgamma, dbeta) + [d_mean, d_var]
        return (None if gx is None else layout.restore(gx)), grads

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": self.synchronized, "renorm": self.renorm,
                "renorm_clipping": self.renorm_clipping, "renorm_momentum": self.renorm_momentum}


@register("layers", "LayerNormalization")
class LayerNormalization(_Normalization):
    """Normalizes each sample over `axis` (an int or a list; once built, a sorted list of the axes as given,
    which Keras 3.15 writes to configs), then ``gamma * x_hat + beta`` with gamma/beta shaped like those axes."""

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, (int, np.integer)):
            self.axis = int(axis)
        else:
            raise TypeError(f"LayerNormalization '{self.name}': expected an int or a list/tuple of ints for `axis`, "
                            f"got {axis!r}")
        where = f"LayerNormalization '{self.name}'"
        if rms_scaling:
            raise NotImplementedError(f"{where}: rms_scaling=True (deprecated in Keras 3) is not supported by rconv")
        self.epsilon = float(epsilon)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), False
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        require_none(where, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                     beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.gamma = self.beta = None

    @property
    def _axes_arg(self):
        return self.axis

    def build(self, input_shape):
        shape = _param_shape(self, _canonical_axes(self, self.axis, input_shape), input_shape)
        # What Keras 3.15 keeps (and writes to configs): the axes as given, as a sorted list.
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta")

    def forward(self, inputs, training=False):
        layout = self._prepare(inputs)
        x = layout.to_rows(inputs)
        gamma, beta = (None if v is None else v.value.reshape(-1) for v in (self.gamma, self.beta))
        y, mean, inv_std = ops.layer_norm(x, gamma, beta, self.epsilon)
        return layout.restore(y), (layout, x, mean, inv_std)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        layout, x, mean, inv_std = ctx
        gamma = None if self.gamma is None else self.gamma.value.reshape(-1)
        gx, dgamma, dbeta = ops.layer_norm_backward(x, layout.to_rows(grad_outputs), gamma, mean, inv_std,
                                                    need_grad_x=need_input_grad)
        return (None if gx is None else layout.restore(gx)), self._affine_grads(dgamma, dbeta)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None}


@register("layers", "GroupNormalization")
class GroupNormalization(_Normalization):
    """Keras 3's GroupNormalization (keras/src/layers/normalization/group_normalization.py): the channels on
    `axis` are cut into `groups` equal consecutive groups, each (sample, group) is normalized by its mean and
    biased variance over every other non-batch axis and the group's channels, then ``gamma * x_hat + beta``
    per channel. ``groups=-1`` is instance normalization (one group per channel; the build sets `groups` to
    the channel count, as Keras does). Weights: ``[gamma, beta]`` of shape (channels,). The batch axis 0
    cannot be the channel axis."""

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        valid = isinstance(groups, (int, np.integer)) and not isinstance(groups, (bool, np.bool_))
        if not valid or (groups <= 0 and groups != -1):
            raise ValueError("Received an invalid value for argument `groups`, expected a positive integer (or `-1` "
                             f"for instance normalization). Received: groups={groups!r}")
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, (bool, np.bool_)):
            raise TypeError(f"GroupNormalization '{self.name}': `axis` must be an int, got {axis!r}")
        self.groups, self.axis = int(groups), int(axis)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    @property
    def _axes_arg(self):
        return self.axis

    def _channel_axis(self, shape) -> int:
        """The channel axis of an input of `shape`, checked: it exists and is not the batch axis."""
        where = f"GroupNormalization '{self.name}'"
        if len(shape) < 2:
            raise ValueError(f"{where} needs inputs of rank >= 2 (batch, ..., channels), got input shape "
                             f"{shape_str(shape)}")
        (axis,) = _canonical_axes(self, self.axis, shape)
        if axis == 0:
            raise ValueError(f"{where}: axis={self.axis} is the batch axis of input shape {shape_str(shape)}; "
                             "the channel axis must be another one")
        return axis

    def build(self, input_shape):
        dim = input_shape[self._channel_axis(input_shape)]
        where = f"GroupNormalization '{self.name}'"
        if dim is None:
            raise ValueError(f"{where}: Axis {self.axis} of input tensor should have a defined dimension but the "
                             f"layer received an input with shape {shape_str(input_shape)}.")
        groups = dim if self.groups == -1 else self.groups
        if dim < groups:
            raise ValueError(f"{where}: Number of groups ({groups}) cannot be more than the number of channels "
                             f"({dim}) of input shape {shape_str(input_shape)}.")
        if dim % groups != 0:
            raise ValueError(f"{where}: Number of groups ({groups}) must be a multiple of the number of channels "
                             f"({dim}) of input shape {shape_str(input_shape)}: each group needs an equal share.")
        self.groups = groups
        if self.scale:
            self.gamma = self.add_weight((dim,), self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight((dim,), self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)

    def _prepare(self, inputs) -> _LastAxes:
        self._channel_axis(inputs.shape)
        return super()._prepare(inputs)

    def forward(self, inputs, training=False):
        layout = self._prepare(inputs)
        x = layout.to_rows(inputs).reshape(layout.moved_shape)  # (batch, ..., channels)
        y, mean, inv_std = ops.group_norm(x, self._value(self.gamma), self._value(self.beta), groups=self.groups,
                                          epsilon=self.epsilon)
        return layout.restore(y), (layout, x, mean, inv_std)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        layout, x, mean, inv_std = ctx
        grad = layout.to_rows(grad_outputs).reshape(x.shape)
        gx, dgamma, dbeta = ops.group_norm_backward(x, grad, self._value(self.gamma), mean, inv_std,
                                                    groups=self.groups, need_grad_x=need_input_grad)
        return (None if gx is None else layout.restore(gx)), self._affine_grads(dgamma, dbeta)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}

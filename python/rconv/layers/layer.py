"""`Layer`: the Keras layer contract, plus the explicit backward pass rconv needs (no autodiff).

Training protocol (the one graph executor, `graph/executor.py`, runs every layer and model through it):

* ``forward(inputs, training) -> (outputs, ctx)``: ``ctx`` is whatever ``backward`` needs (inputs,
  outputs, masks). Nothing is cached on the layer, so one layer can be used at several places. A layer
  called on a list (merge layers) gets a list. Non-trainable state changes go through `add_update`.
* ``backward(ctx, grad_outputs, need_input_grad=True) -> (grad_inputs, grads)``: ``grads`` is aligned with
  ``self.weights``; without ``need_input_grad`` the input gradient is not computed (None).
* The walk's `graph.context.CallContext` carries the training flag, the trainable set and the updates.

Keras-style eager use, ``layer(x)`` / ``call(x)``, is ``forward`` with the context dropped.
"""
from __future__ import annotations

import contextlib
import functools
import math

import numpy as np

from .. import activations, autograd, backend, constraints, initializers, mixed_precision, regularizers
from ..graph import context
from ..mixed_precision import kernels
from ..keras_tensor import KerasTensor
from ..variables import Variable


def serialize_dtype(dtype: str = "float32") -> dict:
    """Keras 3 (>= 3.5) writes a layer's dtype as a DTypePolicy dict."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def _check_dtype(dtype, layer_name: str):
    """The layer's DTypePolicy from its `dtype` argument (None: the global policy; a name, a policy, or a
    serialized policy from a Keras config); rconv runs float32 and mixed_bfloat16 (`rconv.mixed_precision`)."""
    try:
        policy = mixed_precision.get(dtype)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Layer '{layer_name}': {e}") from None
    return mixed_precision.policy.check_supported(policy, layer_name)


def shape_str(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Layer:
    def __init_subclass__(cls, **kwargs):
        """Like Keras's `build` wrapper: a `build` that returns marks the layer built, whoever called it
        (a user's `layer.build(shape)` must not be followed by a second build that drops weights)."""
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_marks_built", False):
            @functools.wraps(build)
            def build_and_mark(self, input_shape=None, *args, **kw):
                result = build(self, input_shape, *args, **kw)
                if input_shape is not None:
                    self._build_input_shape = _freeze_shape(input_shape)
                self.built = True
                return result
            build_and_mark._marks_built = True
            cls.build = build_and_mark

    def __init__(self, trainable: bool = True, name: str | None = None, dtype=None, input_shape=None,
                 batch_input_shape=None, batch_size=None, input_dim=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        self.name = name or backend.unique_name(backend.to_snake_case(type(self).__name__))
        self._dtype_policy = _check_dtype(dtype, self.name)
        self._trainable = bool(trainable)
        self.activity_regularizer = regularizers.get(activity_regularizer)  # penalty on the outputs, or None
        self.built = False
        self._weights: list[Variable] = []
        self._build_input_shape = None
        self._output_shape = None
        self.input_spec = None  # an InputSpec set by layers that constrain their input (checked on each call)
        self._inbound_nodes: list = []  # (input KerasTensor(s), output KerasTensor) per symbolic call
        # Keras 2-style input hints; Sequential turns them into an InputLayer.
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_shape is not None:
            self._batch_input_shape = (batch_size,) + tuple(input_shape)
        else:
            self._batch_input_shape = None

    # --- weights -----------------------------------------------------------------------------------
    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True, name=None,
                   regularizer=None, constraint=None, **kwargs) -> Variable:
        shape = tuple(int(d) for d in shape)
        init = initializers.get(initializer)
        value = np.zeros(shape, np.float32) if initializers.deferring() else init(shape)  # loaders assign later
        var = Variable(value, name=name or f"variable_{len(self._weights)}", trainable=trainable,
                       path=f"{self.name}/{name}", regularizer=regularizers.get(regularizer),
                       constraint=constraints.get(constraint))
        self._weights.append(var)
        return var

    def add_update(self, variable: Variable, value) -> None:
        """Change non-trainable state from a forward pass (moving statistics). Inside a model's walk the
        executor applies it after the forward (`graph/context.py`); outside one it is assigned at once."""
        context.record_update(variable, value)

    @property
    def dtype(self) -> str:
        """The variables' dtype (Keras 3: an alias of `variable_dtype`)."""
        return "float32"

    @property
    def dtype_policy(self):
        """The layer's `rconv.mixed_precision.DTypePolicy` (float32 unless given or set globally)."""
        policy = getattr(self, "_dtype_policy", None)
        return policy if policy is not None else mixed_precision.DTypePolicy("float32")

    @dtype_policy.setter
    def dtype_policy(self, value) -> None:
        self._dtype_policy = _check_dtype(value, self.name)

    @property
    def compute_dtype(self) -> str:
        """The dtype the layer's GEMMs compute in ("float32" or "bfloat16"); outputs stay float32 arrays."""
        return self.dtype_policy.compute_dtype

    @property
    def variable_dtype(self) -> str:
        return self.dtype_policy.variable_dtype

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Like Keras, setting it on a layer that holds layers (a model) sets it on all of them too."""
        self._trainable = bool(value)
        for layer in self._sublayers():
            layer.trainable = value

    def _sublayers(self) -> list:
        """The layers this layer is made of (a model's); plain layers have none."""
        return []

    @property
    def weights(self) -> list:
        return list(self._weights)

    @property
    def trainable_weights(self) -> list:
        return [v for v in self._weights if v.trainable] if self._trainable else []

    @property
    def non_trainable_weights(self) -> list:
        if not self._trainable:
            return list(self._weights)
        return [v for v in self._weights if not v.trainable]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def _weights_lock(self):
        """A model's step lock (weights change only between training steps), else a no-op context."""
        return getattr(self, "_step_lock", None) or contextlib.nullcontext()

    def get_weights(self) -> list:
        with self._weights_lock():  # a whole step's weights, never a mix
            return [v.numpy() for v in self.weights]

    def set_weights(self, weights) -> None:
        """Assign all weights at once; nothing is assigned unless every shape matches."""
        variables, weights = self.weights, list(weights)
        kind = type(self).__name__
        if len(weights) != len(variables):
            raise ValueError(f"{kind} '{self.name}' has {len(variables)} weights (shapes "
                             f"{[v.shape for v in variables]}), but set_weights received {len(weights)} arrays")
        for i, (var, value) in enumerate(zip(variables, weights)):
            weights[i] = value = real_array(value, f"{kind} '{self.name}': weight '{var.path}'")
            if value.shape != var.shape:
                raise ValueError(f"{kind} '{self.name}': weight '{var.path}' has shape {var.shape}, but the "
                                 f"provided array has shape {value.shape}")
        with self._weights_lock():  # a model: between training steps
            for var, value in zip(variables, weights):
                var.assign(value)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer '{self.name}', but the layer "
                             "isn't built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(math.prod(v.shape) for v in self._weights))

    # --- building and shapes -----------------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create weights for `input_shape` (batch dim included, may be None). Default: no weights."""
        self.built = True

    build._marks_built = True

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            input_shape = _freeze_shape(input_shape)
            self.build(input_shape)
            self._build_input_shape = input_shape
            self.built = True

    def _check_input_spec(self, shapes) -> None:
        """Like Keras's `assert_input_compatibility`: before the build (rank) and after it (fixed axes)."""
        spec = getattr(self, "input_spec", None)
        if spec is not None and not isinstance(shapes, list):
            spec.check(shapes, self)

    def compute_output_shape(self, input_shape):
        """Default: trace `call` on zeros (unknown dimensions taken as 1), as Keras traces
        `compute_output_spec`; layers with cheaper shape rules override this."""
        def zeros(shape):
            if isinstance(shape, list):
                return [zeros(s) for s in shape]
            return np.zeros(tuple(1 if d is None else d for d in shape), np.float32)
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        with np.errstate(all="ignore"):  # zeros are only for shapes: log(0) and the like are fine here
            out = np.shape(self.call(zeros(input_shape), training=False))
        if out and first and first[0] is None:
            out = (None,) + tuple(out[1:])
        return tuple(out)

    def _node_attr(self, position: int, what: str):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' has never been called and thus has no defined {what}.")
        return self._inbound_nodes[0][position]

    @property
    def input(self):
        """The input tensor(s) of the layer's first symbolic call (Keras: node 0)."""
        return self._node_attr(0, "input")

    @property
    def output(self):
        """The output tensor of the layer's first symbolic call (Keras: node 0)."""
        return self._node_attr(1, "output")

    @property
    def input_shape(self):
        if self._inbound_nodes:
            x = self.input
            return [t.shape for t in x] if isinstance(x, list) else x.shape
        if self._build_input_shape is not None:
            return self._build_input_shape
        raise AttributeError(f"The layer '{self.name}' has never been called and thus has no defined input shape.")

    @property
    def output_shape(self):
        if self._output_shape is None:
            raise AttributeError(f"The layer '{self.name}' has never been called and thus has no "
                                 "defined output shape.")
        return self._output_shape

    # --- computation -------------------------------------------------------------------------------
    def __call__(self, inputs, training=None):
        if _is_symbolic(inputs):  # symbolic call: shapes only, record the graph node
            parents = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if not all(isinstance(t, KerasTensor) for t in parents):
                raise ValueError(f"{type(self).__name__} '{self.name}': all inputs must be KerasTensors when any "
                                 f"is; got {[type(t).__name__ for t in parents]}")
            shapes = [t.shape for t in parents] if isinstance(inputs, (list, tuple)) else inputs.shape
            self._check_input_spec(shapes)
            self._maybe_build(shapes)
            self._check_input_spec(shapes)
            out_shape = tuple(self.compute_output_shape(_freeze_shape(shapes)))
            self._output_shape = out_shape
            out = KerasTensor(out_shape, name=self.name, history=(self, parents))
            out._call_training = None if training is None else bool(training)  # `layer(x, training=False)`
            self._inbound_nodes.append((list(inputs) if isinstance(inputs, (list, tuple)) else inputs, out))
            return out
        x = _as_arrays(inputs)
        shapes = [a.shape for a in x] if isinstance(x, list) else x.shape
        self._check_input_spec(shapes)
        self._maybe_build(shapes)
        self._check_input_spec(shapes)
        if type(self).compute_output_shape is not Layer.compute_output_shape:
            self.compute_output_shape(_freeze_shape(shapes))  # window fits, merge shapes agree (named errors)
        with kernels.layer_scope(self):  # the layer's compute precision for its kernels
            if autograd.should_record(self, inputs):  # a GradientTape is recording
                return autograd.record_call(self, list(inputs) if isinstance(inputs, tuple) else inputs, x, training)
            with context.scope(training=bool(training)):
                return self.call(x, training=training)

    def call(self, inputs, training=None):
        if type(self).forward is Layer.forward:
            raise NotImplementedError(f"Layer {type(self).__name__} must implement `forward` (or `call`)")
        return self.forward(inputs, training=training)[0]

    def forward(self, inputs, training=False):
        """Default for `call`-only layers: no context, so no backward (see `differentiable`)."""
        return self.call(inputs, training=training), None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        raise NotImplementedError(f"Layer '{self.name}' ({type(self).__name__}) has no backward pass; "
                                  "rconv has no autodiff, so trainable models need layers with `backward`")

    @property
    def differentiable(self) -> bool:
        """Whether gradients can flow through this layer (it defines `backward`)."""
        return type(self).backward is not Layer.backward

    @property
    def output_activation_name(self):
        """Name of the layer's own output activation ('softmax', 'sigmoid', ...) or None; the graph pass that
        fuses a final softmax/sigmoid into the loss (`graph/passes.py`) reads it."""
        activation = getattr(self, "activation", None)
        if activation is None:
            return None
        return activations.name_of(activation)

    # --- serialization -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable, "dtype": serialize_dtype(self.dtype_policy.name)}
        if self.activity_regularizer is not None:  # Keras 3 writes it only when set
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def folded_bias(layer, scale, shift) -> np.ndarray:
    """The bias of `layer` with an inference-mode BatchNormalization (`y * scale + shift` per output channel)
    folded in: `bias * scale + shift`, or `shift` for a layer without bias."""
    bias = shift if not layer.use_bias else layer.bias.value * scale + shift
    return np.asarray(bias, np.float32)


def _freeze_shape(shape):
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    return tuple(shape)


def _is_symbolic(inputs) -> bool:
    if isinstance(inputs, KerasTensor):
        return True
    return isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs)


def _as_arrays(inputs):
    if isinstance(inputs, (list, tuple)):
        return [_as_arrays(x) for x in inputs]
    x = np.asarray(inputs)
    return x.astype(np.float32) if x.dtype != np.float32 else x


def real_array(value, where: str) -> np.ndarray:
    """`value` as an array of real numbers (bool, int or float); complex, object, string and other dtypes are
    a TypeError rather than a silent cast that drops an imaginary part or fails later."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists
        raise TypeError(f"{where}: expected an array of real numbers, got {type(value).__name__} ({e})") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected an array of real numbers (bool, int or float), got dtype "
                        f"{array.dtype}")
    return array


class InputSpec:
    """The input rank and fixed axis sizes a layer accepts (Keras's `InputSpec`), checked on every call."""

    def __init__(self, ndim: int | None = None, min_ndim: int | None = None, axes: dict | None = None):
        self.ndim, self.min_ndim, self.axes = ndim, min_ndim, dict(axes or {})

    def check(self, shape, layer) -> None:
        shape = tuple(shape)
        where = f"Input of layer '{layer.name}' ({type(layer).__name__}) is incompatible with the layer"
        if self.ndim is not None and len(shape) != self.ndim:
            raise ValueError(f"{where}: expected ndim={self.ndim}, found ndim={len(shape)}. Full shape "
                             f"received: {shape_str(shape)}")
        if self.min_ndim is not None and len(shape) < self.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={self.min_ndim}, found ndim={len(shape)}. Full shape "
                             f"received: {shape_str(shape)}")
        for axis, size in self.axes.items():
            if size is not None and shape[axis] not in (None, size):
                raise ValueError(f"{where}: expected axis {axis} of the input to have value {size}, but it has "
                                 f"value {shape[axis]}. Full shape received: {shape_str(shape)}")


def conv_output_length(length, window: int, stride: int, padding: str):
    """TF/Keras output length of a convolution or pooling window along one axis (None stays None)."""
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    return (length - window) // stride + 1


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(value, name: str, where: str, allow_none: bool = False):
    """`value` as an int >= 1 (None passes when `allow_none`), else a ValueError naming `where` and the value."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


def normalize_tuple(value, n: int, name: str, layer: str) -> tuple:
    """An int or `n` ints, each a positive integer (window sizes, strides, dilation), as a tuple of `n`."""
    values = (value,) * n if _is_int(value) else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if values is None or len(values) != n or not all(_is_int(v) and v >= 1 for v in values):
        raise ValueError(f"{layer}: `{name}` must be a positive integer or a tuple of {n} positive integers, "
                         f"got {value!r}")
    return tuple(int(v) for v in values)


def normalize_padding(padding, layer: str) -> str:
    mode = str(padding).lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"{layer}: padding must be 'valid' or 'same', got {padding!r}")
    return mode


def check_data_format(data_format, layer: str) -> str:
    if data_format in (None, "channels_last"):
        return "channels_last"
    raise ValueError(f"{layer}: rconv only supports data_format='channels_last' (NHWC), "
                     f"got data_format={data_format!r}")


def require_none(layer: str, **kwargs) -> None:
    """Regularizers/constraints are accepted in configs only when unset (not implemented yet)."""
    for key, value in kwargs.items():
        if value is not None:
            raise NotImplementedError(f"{layer}: `{key}` is not supported by rconv yet (got {value!r})")

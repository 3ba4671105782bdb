"""`Sequential`: a linear stack of layers, built as soon as its input shape is known (like Keras 3:
an `input_shape=` on the first layer, an `Input(...)`, or else the first batch of data)."""
from __future__ import annotations

from ..keras_tensor import KerasTensor
from ..layers.core import InputLayer
from ..layers.fusion import FUSED, ConvReluMaxPool, fusable
from ..layers.layer import Layer, serialize_dtype
from .model import Model


class Sequential(Model):
    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self._layers = []  # may start with an InputLayer, which `layers` hides (as Keras does)
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list:
        if self._layers and isinstance(self._layers[0], InputLayer):
            return self._layers[1:]
        return list(self._layers)

    def add(self, layer) -> None:
        if isinstance(layer, KerasTensor) and layer._keras_history is not None:
            layer = layer._keras_history[0]  # Input(...) → its InputLayer
        if not isinstance(layer, Layer):
            raise TypeError(f"Only instances of `rconv.layers.Layer` can be added to a Sequential model. "
                            f"Received: {layer!r} (of type {type(layer).__name__})")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError(f"Sequential model '{self.name}': an InputLayer can only be the first layer")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"All layers added to a Sequential model should have unique names. Name "
                             f"'{layer.name}' is already the name of a layer in model '{self.name}'.")
        if not self._layers and not isinstance(layer, InputLayer) and layer._batch_input_shape is not None:
            self._layers.append(InputLayer(batch_shape=layer._batch_input_shape))
        self._layers.append(layer)
        try:
            self._propagate_shapes()
        except Exception:
            self._layers.pop()
            raise

    def pop(self):
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self._propagate_shapes()
        return layer

    def _propagate_shapes(self) -> None:
        """Build every layer from the input shape onwards and record each output shape."""
        if not self._layers or not isinstance(self._layers[0], InputLayer):
            return
        shape = self._layers[0].batch_shape
        self._input_batch_shape = shape
        for layer in self.layers:
            layer._maybe_build(shape)
            shape = tuple(layer.compute_output_shape(shape))
            layer._output_shape = shape
        self._output_batch_shape = shape
        self._output_shape = shape
        self.built = bool(self.layers)

    def _ensure_built(self, input_shape) -> None:
        if not self.layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers; add some before using it")
        if self._input_batch_shape is None:
            self._layers.insert(0, InputLayer(batch_shape=(None,) + tuple(input_shape[1:])))
            self._propagate_shapes()

    def build(self, input_shape=None) -> None:
        if input_shape is not None:
            self._ensure_built(input_shape)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    @property
    def output_activation_name(self):
        layers = self.layers
        return layers[-1].output_activation_name if layers else None

    # --- training protocol (see layers/layer.py) ---------------------------------------------------
    def forward(self, inputs, training=False, apply_activation=True):
        layers = self.layers
        tape = []
        x = inputs
        last = len(layers) - 1
        for i, layer in enumerate(layers):
            if len(tape) > i:  # a pooling layer that ran inside the convolution before it
                continue
            if i < last and fusable(layer, layers[i + 1]):
                x, ctx = ConvReluMaxPool(layer, layers[i + 1]).forward(x, training=training)
                tape += [ctx, FUSED]
            elif i == last and not apply_activation:
                x, ctx = layer.forward(x, training=training, apply_activation=False)
                tape.append(ctx)
            else:
                x, ctx = layer.forward(x, training=training)
                tape.append(ctx)
        return x, tape

    def backward(self, tape, grad_outputs, need_input_grad=True):
        """Returns (grad wrt inputs or None, grads aligned with self.weights; None where not computed).
        Without `need_input_grad`, stops at the first layer that has trainable weights."""
        layers = self.layers
        stop = 0
        if not need_input_grad:
            stop = next((i for i, layer in enumerate(layers) if layer.trainable_weights), len(layers))
        per_layer = [None] * len(layers)
        grad = grad_outputs
        for i in range(len(layers) - 1, stop - 1, -1):
            if tape[i] is FUSED:  # its gradient is part of the fused convolution's backward, next
                per_layer[i] = []
                continue
            skip_input = i == stop and not need_input_grad and getattr(layers[i], "skips_input_grad", False)
            runner = ConvReluMaxPool(layers[i], layers[i + 1]) if i + 1 < len(tape) and tape[i + 1] is FUSED else layers[i]
            if skip_input:
                grad, per_layer[i] = runner.backward(tape[i], grad, need_input_grad=False)
            else:
                grad, per_layer[i] = runner.backward(tape[i], grad)
        seen, grads = set(), []
        for layer, layer_grads in zip(layers, per_layer):
            for j, v in enumerate(layer.weights):
                if id(v) not in seen:
                    seen.add(id(v))
                    grads.append(None if layer_grads is None else layer_grads[j])
        return (grad if stop == 0 else None), grads

    # --- serialization -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        layer_configs = []
        for layer in self._layers:
            entry = {"module": "keras.layers", "class_name": type(layer).__name__,
                     "config": layer.get_config(), "registered_name": None}
            if layer._build_input_shape is not None and not isinstance(layer, InputLayer):
                entry["build_config"] = {"input_shape": layer._build_input_shape}
            layer_configs.append(entry)
        config = {"name": self.name, "trainable": self.trainable, "dtype": serialize_dtype(),
                  "layers": layer_configs}
        if self._input_batch_shape is not None:
            config["build_input_shape"] = self._input_batch_shape
        return config

    @classmethod
    def from_config(cls, config):
        from .. import layers as layers_module
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config.get("layers", []):
            layer_cls = Sequential if entry["class_name"] == "Sequential" else layers_module.get(entry["class_name"])
            model.add(layer_cls.from_config(entry["config"]))
        if config.get("build_input_shape") is not None and model._input_batch_shape is None:
            model._ensure_built(config["build_input_shape"])
        return model

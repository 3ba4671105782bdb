"""`Sequential`: a linear stack of layers. Like Keras 3, it is built (its graph traced into a plan) as soon
as its input shape is known: an `Input(...)`, an `input_shape=` on the first layer, a first layer that is
a built model, or else the first batch of data. Then it runs like any functional model."""
from __future__ import annotations

from .. import registry
from ..keras_tensor import KerasTensor
from ..layers.core import InputLayer
from ..layers.layer import Layer
from ..saving import model_config
from .model import Model


@registry.register("models", "Sequential")
class Sequential(Model):
    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self._layers = []  # may start with an InputLayer, which `layers` hides (as Keras does)
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_rebuild()

    @property
    def layers(self) -> list:
        return [layer for layer in self._layers if not isinstance(layer, InputLayer)]

    def add(self, layer, rebuild=True) -> None:
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
        if not self._layers and not isinstance(layer, InputLayer):
            shape = layer._batch_input_shape
            if shape is None and isinstance(layer, Model) and layer._plan is not None and len(layer.inputs) == 1:
                shape = layer.inputs[0].shape  # a built model as the first layer (Keras's `input_shape` rule)
            if shape is not None:
                self._layers.append(InputLayer(batch_shape=shape))
        self._layers.append(layer)
        if rebuild:
            try:
                self._maybe_rebuild()
            except Exception:
                self._layers.pop()
                self._maybe_rebuild()
                raise

    def pop(self):
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self) -> None:
        """Trace the stack from its InputLayer into a plan (every layer built, output shapes known)."""
        self._plan = None
        self.built = False
        if not self._layers or not isinstance(self._layers[0], InputLayer) or not self.layers:
            return
        x = self._layers[0].output
        for layer in self.layers:
            x = layer(x)
        self._set_graph(self._layers[0].output, x)

    def _ensure_built(self, input_shapes) -> None:
        if not self.layers:
            raise ValueError(f"Sequential model '{self.name}' has no layers; add some before using it")
        if self._plan is None:
            if len(input_shapes) != 1:
                raise ValueError(f"Sequential model '{self.name}' takes one input, got {len(input_shapes)}")
            self._layers.insert(0, InputLayer(batch_shape=(None,) + tuple(input_shapes[0][1:])))
            try:
                self._maybe_rebuild()
            except Exception:
                self._layers.pop(0)
                raise

    def build(self, input_shape=None) -> None:
        if input_shape is not None and self._plan is None:
            self._ensure_built([tuple(input_shape)])
        self.built = self._plan is not None

    build._marks_built = True

    @property
    def input_shape(self):
        if self._plan is None and self._layers and isinstance(self._layers[0], InputLayer):
            return self._layers[0].batch_shape
        return super().input_shape

    def get_config(self) -> dict:
        return model_config.sequential_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return model_config.model_from_config({"class_name": "Sequential", "config": config})

"""`Functional`: a model over any graph of layers called on symbolic `KerasTensor`s
(`Model(inputs, outputs)`), with one or several inputs and outputs given as a tensor, a list or a dict.

All of the work is shared: the graph is a `graph.plan.Plan`, run by the one executor (`models/model.py`,
`models/trainer.py`); its config is written and read by the one serializer (`saving/serialization.py`).
"""
from __future__ import annotations

from .. import backend, registry
from ..saving import model_config
from .model import Model


@registry.register("models", "Functional", "Model")
class Functional(Model):
    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name or backend.unique_name("functional"), trainable=trainable, **kwargs)
        self._set_graph(inputs, outputs)
        self._build_input_shape = self.input_shape
        if not self._trainable:
            self.trainable = False  # propagate to the layers, as Keras does

    def get_config(self) -> dict:
        return model_config.functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return model_config.model_from_config({"class_name": "Functional", "config": config})


__all__ = ["Functional"]

"""`Model`: a layer made of a graph of layers; the base of `Sequential` and functional models.

Both kinds hold one `graph.plan.Plan` (`self._plan`, None until the model's input is known) and run it
through the one executor (`graph/executor.py`), as a model in training (`trainer.py`) and as a layer
inside another model (``forward``/``backward`` below). The inputs and outputs may be a tensor, a list
or a dict of tensors (`self._inputs_struct`, `self._outputs_struct`), as in Keras 3.
"""
from __future__ import annotations

import json
import math

import numpy as np

from .. import autograd, registry, saving
from ..export import export_model
from ..graph import context, executor, passes
from ..graph.plan import Plan, flatten
from ..keras_tensor import KerasTensor
from ..layers.layer import Layer, shape_str
from ..saving import model_config
from .summary import print_summary
from .trainer import Trainer


def _shape_compatible(expected, found) -> bool:
    return len(expected) == len(found) and all(e is None or e == f for e, f in zip(expected[1:], found[1:]))


class Model(Trainer, Layer):
    def __new__(cls, *args, **kwargs):
        # `Model(inputs, outputs)` builds a functional model, as in Keras.
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            return super().__new__(registry.get("models", "Functional"))
        return super().__new__(cls)

    def __init__(self, *args, name=None, trainable=True, **kwargs):
        if args or "inputs" in kwargs or "outputs" in kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected positional/inputs/outputs arguments")
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._plan = None
        self._inputs_struct = self._outputs_struct = None
        self._init_trainer()

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return model_config.model_from_config({"class_name": "Functional" if "input_layers" in config
                                                else cls.__name__, "config": config})

    # --- graph ---------------------------------------------------------------------------------------
    def _set_graph(self, inputs, outputs) -> None:
        self._plan = Plan(flatten(inputs, "inputs"), flatten(outputs, "outputs"))
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self._output_shape = self._outputs_struct.shape if len(self.outputs) == 1 and \
            not isinstance(outputs, (list, dict, tuple)) else [t.shape for t in self.outputs]
        self.built = True

    @property
    def layers(self) -> list:
        """The layers in Keras's order; a functional model lists its InputLayers too, as Keras 3 does, and not
        the operations recorded on tensors (`x[:, 1:3]`, `x + 1`), which Keras does not count as layers."""
        if self._plan is None:
            return []
        return [lay for lay in self._plan.layers if not getattr(lay, "is_tensor_op", False)]

    @property
    def inputs(self) -> list:
        return [] if self._plan is None else list(self._plan.inputs)

    @property
    def outputs(self) -> list:
        return [] if self._plan is None else list(self._plan.outputs)

    def _require_graph(self, what: str):
        if self._plan is None:
            raise AttributeError(f"Model '{self.name}' has no defined {what} yet: it is not built (give its first "
                                 "layer an input shape, or call it on data)")

    @property
    def input(self):
        self._require_graph("input")
        return self._inputs_struct

    @property
    def output(self):
        self._require_graph("output")
        return self._outputs_struct

    @property
    def input_shape(self):
        self._require_graph("input shape")
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        self._require_graph("output shape")
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input_names(self) -> list:
        return [t._keras_history[0].name for t in self.inputs]

    @property
    def output_names(self) -> list:
        if isinstance(self._outputs_struct, dict):
            return sorted(self._outputs_struct)
        return [t._keras_history[0].name for t in self.outputs]

    @property
    def output_activation_name(self):
        """The final activation of a single-output model (e.g. 'softmax'), else None."""
        if self._plan is None or len(self.outputs) != 1:
            return None
        step = self._plan.steps[self._plan.output_slots[0]]
        return None if step is None else step.layer.output_activation_name

    def get_layer(self, name=None, index=None):
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only has "
                                 f"{len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[lay.name for lay in self.layers]}.")

    def _ensure_built(self, input_shapes: list) -> None:
        """Sequential models without an input shape build at their first data; functional ones are built."""

    def build(self, input_shape=None) -> None:
        self.built = self._plan is not None

    build._marks_built = True

    def compute_output_shape(self, input_shape):
        self._require_graph("graph")
        shapes = input_shape if isinstance(input_shape, list) and len(self.inputs) > 1 else [input_shape]
        out = self._plan.output_shapes(shapes)
        return out[0] if len(out) == 1 else out

    # --- weights: the union of the layers' (shared layers counted once) -----------------------------
    @property
    def weights(self) -> list:
        seen, out = set(), []
        for layer in self.layers:
            for v in layer.weights:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        trainable = {id(v) for layer in self.layers for v in layer.trainable_weights}
        return [v for v in self.weights if id(v) in trainable]

    @property
    def non_trainable_weights(self) -> list:
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def _sublayers(self) -> list:
        return self.layers

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on model '{self.name}', but the model isn't "
                             "built. Build it by giving the first layer an `input_shape` or calling it on data.")
        return int(sum(math.prod(v.shape) for v in self.weights))

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        print_summary(self, line_length=line_length, print_fn=print_fn)

    # --- data structures -----------------------------------------------------------------------------
    def _flatten_data(self, data, struct, names: list, what: str) -> list:
        """User data for the inputs/outputs (an array, a list, a dict by name) -> flat list in plan order."""
        n = len(names)
        if isinstance(data, dict):
            keys = sorted(struct) if isinstance(struct, dict) else names
            missing = [k for k in keys if k not in data]
            if missing:
                raise ValueError(f"Model '{self.name}': the {what} dict is missing key(s) {missing}; expected keys "
                                 f"{keys}, got {sorted(data)}")
            return [data[k] for k in keys]
        if isinstance(data, (list, tuple)) and n > 1:
            if len(data) != n:
                raise ValueError(f"Model '{self.name}' has {n} {what}s ({names}) but received {len(data)} arrays")
            return list(data)
        if n > 1:
            raise ValueError(f"Model '{self.name}' has {n} {what}s ({names}); pass a list or a dict of arrays, got "
                             f"{type(data).__name__}")
        if isinstance(data, (list, tuple)) and len(data) == 1 and isinstance(data[0], np.ndarray):
            return [data[0]]
        return [data]

    def _pack(self, flat: list, struct):
        if isinstance(struct, dict):
            return dict(zip(sorted(struct), flat))
        if isinstance(struct, (list, tuple)):
            return list(flat)
        return flat[0]

    def _prepare_inputs(self, x) -> list:
        """Flat list of contiguous float32 arrays checked against the input shapes."""
        if x is None:
            raise ValueError(f"Model '{self.name}': `x` must be a NumPy array (or a list/dict of them), got None")
        if self._plan is None:
            self._ensure_built([np.shape(a) for a in (x if isinstance(x, (list, tuple)) else [x])])
        flat = self._flatten_data(x, self._inputs_struct, self.input_names, "input")
        out = []
        for i, (a, t) in enumerate(zip(flat, self.inputs)):
            a = np.asarray(a)
            if a.dtype != np.float32:  # e.g. uint8 images: convert once, not per batch
                a = a.astype(np.float32)
            a = np.ascontiguousarray(a)
            if not _shape_compatible(t.shape, a.shape):
                raise ValueError(f'Input {i} of layer "{self.name}" is incompatible with the layer: expected '
                                 f"shape={shape_str(t.shape)}, found shape={shape_str(a.shape)}")
            out.append(a)
        sizes = {len(a) for a in out}
        if len(sizes) > 1:
            raise ValueError(f"Model '{self.name}': all inputs must have the same number of samples, got shapes "
                             f"{[a.shape for a in out]}")
        return out

    # --- the layer protocol (a model used as a layer of another model) ---------------------------------
    def forward(self, inputs, training=False):
        self._require_graph("graph")
        flat = inputs if isinstance(inputs, list) and len(self.inputs) > 1 else [inputs]
        outs, tape = executor.forward(self._plan, passes.variant(self._plan), flat, training=training)
        return (outs[0] if len(outs) == 1 else outs), tape

    def backward(self, tape, grad_outputs, need_input_grad=True):
        """(grad wrt the input(s) or None, grads aligned with self.weights; None where not computed).
        The trainable set comes from the enclosing walk's call context, else this model's own."""
        ctx = context.current()
        trainable = ctx.trainable_ids if ctx is not None and ctx.trainable_ids is not None else \
            frozenset(id(v) for v in self.trainable_weights)
        grads = grad_outputs if isinstance(grad_outputs, list) and len(self.outputs) > 1 else [grad_outputs]
        input_grads, weight_grads = executor.backward(self._plan, tape, grads, trainable, need_input_grad)
        if input_grads is not None and len(input_grads) == 1:
            input_grads = input_grads[0]
        return input_grads, [weight_grads.get(id(v)) for v in self.weights]

    def backward_with_adjoints(self, tape, grad_outputs):
        """`backward` that also returns each output's total gradient, its inner paths included (a GradientTape
        asks for it when a source is one of this model's outputs, e.g. Grad-CAM's conv layer output)."""
        grads = grad_outputs if isinstance(grad_outputs, list) and len(self.outputs) > 1 else [grad_outputs]
        ctx = context.current()
        trainable = ctx.trainable_ids if ctx is not None and ctx.trainable_ids is not None else frozenset()
        adjoints: dict = {}
        input_grads, weight_grads = executor.backward(self._plan, tape, grads, trainable, True,
                                                      slot_grads=adjoints)
        if len(input_grads) == 1:
            input_grads = input_grads[0]
        return (input_grads, [weight_grads.get(id(v)) for v in self.weights],
                [adjoints.get(s) for s in self._plan.output_slots])

    def __call__(self, inputs, training=None):
        if _is_symbolic(inputs):
            if isinstance(inputs, dict):
                inputs = self._flatten_data(inputs, self._inputs_struct, self.input_names, "input")
            return super().__call__(inputs, training=training)
        flat = self._prepare_inputs(inputs)
        originals = self._flatten_data(inputs, self._inputs_struct, self.input_names, "input") \
            if isinstance(inputs, (list, tuple, dict)) else [inputs]
        if autograd.should_record(self, originals):  # a GradientTape is recording: one node, whole model
            outs = autograd.record_call(self, originals if len(flat) > 1 else originals[0],
                                        flat if len(flat) > 1 else flat[0], training)
            return self._pack(outs if isinstance(outs, list) else [outs], self._outputs_struct)
        fixed_training = training is None and any(s is not None and s.training for s in self._plan.steps)
        steps = passes.variant(self._plan, inference=not training and not fixed_training)
        outs, _ = executor.forward(self._plan, steps, flat, training=training)
        return self._pack(outs, self._outputs_struct)

    def call(self, inputs, training=None):
        return self(inputs, training=training)

    # --- saving (see rconv.saving) -------------------------------------------------------------------
    # Saving and loading hold the step lock: a concurrent fit() never saves or sees half of a step's weights.
    def save(self, filepath, overwrite=True, **kwargs):
        with self._weights_lock():
            saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        with self._weights_lock():
            saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        with self._weights_lock():
            saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def export(self, filepath, format="onnx", verbose=True, **kwargs):
        """Keras 3's `Model.export`: `format="onnx"` writes an ONNX model (NHWC inputs, like this model)."""
        export_model(self, filepath, format=format, verbose=verbose, **kwargs)

    def to_json(self, **kwargs) -> str:
        return json.dumps(model_config.model_to_config(self, include_compile=False), **kwargs)


def _is_symbolic(inputs) -> bool:
    if isinstance(inputs, KerasTensor):
        return True
    if isinstance(inputs, dict):
        inputs = list(inputs.values())
    return isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs)

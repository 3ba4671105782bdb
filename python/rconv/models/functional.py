"""`Functional`: a model over any DAG of layers called on symbolic `KerasTensor`s (`Model(inputs, outputs)`).

Graph: every non-input `KerasTensor` is one layer call (a Keras "node"): ``_keras_history =
(layer, [input tensors])``. The model walks it from the outputs back to the inputs like Keras's
`map_graph` (same depth-ordered `layers` list, so weights and configs line up with Keras), and runs it
with the Layer training protocol:

* ``forward(x, training, apply_activation) -> (y, tape)``: the nodes in topological order; the output
  node may skip its activation so the loss can fuse it (as `Sequential` does).
* ``backward(tape, grad, need_input_grad) -> (grad_x, grads)``: reverse order; gradients of a tensor
  used by several layers are summed, and so are the weight gradients of a layer called several times
  (shared weights). Without ``need_input_grad`` the nodes with no trainable weights upstream are skipped.

Like `Sequential`, a ReLU Conv2D node whose output only one MaxPooling2D node reads runs inside that
node as one fused kernel (layers/fusion.py): the conv node is skipped and has no value or context.

Configs follow Keras 3's functional layout (`layers` with `inbound_nodes` of serialized
``__keras_tensor__`` args, `input_layers`, `output_layers`).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..keras_tensor import KerasTensor
from ..layers import fusion
from ..layers.core import InputLayer
from ..layers.fusion import ConvReluMaxPool, fusable
from ..layers.layer import Layer, serialize_dtype
from .model import Model

# Layers Keras 3 serializes without a `build_config` (they have no `build` of their own).
_NO_BUILD_CONFIG = {"InputLayer", "Dropout", "Activation", "ReLU", "Softmax", "MaxPooling2D", "MaxPool2D",
                    "AveragePooling2D", "AvgPool2D"}
# Call kwargs Keras 3 records in `inbound_nodes` (from the layers' `call` signatures).
_NODE_KWARGS = {"Dropout": {"training": False}, "Softmax": {"mask": None}, "Sequential": {"mask": None},
                "Functional": {"mask": None}}


def _flatten(structure) -> list:
    if isinstance(structure, KerasTensor):
        return [structure]
    if isinstance(structure, dict):
        raise NotImplementedError("rconv's functional models take a tensor or a list of tensors, not a dict")
    if isinstance(structure, (list, tuple)):
        return [t for item in structure for t in _flatten(item)]
    raise ValueError(f"All `inputs` and `outputs` values must be KerasTensors. Received: {structure!r} "
                     f"of type {type(structure).__name__}")


def _unpack(values):
    return values[0] if isinstance(values, list) and len(values) == 1 else values


def _is_input_tensor(t: KerasTensor) -> bool:
    history = t._keras_history
    return history is not None and isinstance(history[0], InputLayer) and not history[1]


class Functional(Model):
    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name or backend.unique_name("functional"), trainable=trainable, **kwargs)
        flat_inputs, flat_outputs = _flatten(inputs), _flatten(outputs)
        for t in flat_inputs + flat_outputs:
            if t._keras_history is None:
                raise ValueError(f"Tensor {t} was not produced by a layer; use `rconv.Input(...)` and call layers on it")
        for t in flat_inputs:
            if not _is_input_tensor(t):
                raise NotImplementedError(f"Model inputs must come from `rconv.Input(...)`; got {t}, the output of "
                                          f"layer '{t._keras_history[0].name}'")
        if len(flat_inputs) != 1 or len(flat_outputs) != 1:
            raise NotImplementedError("rconv's functional models support one input and one output tensor; got "
                                      f"{len(flat_inputs)} inputs and {len(flat_outputs)} outputs")
        self._inputs_struct, self._outputs_struct = inputs, outputs
        self.inputs, self.outputs = flat_inputs, flat_outputs
        self._map_graph()
        self._input_batch_shape = tuple(flat_inputs[0].shape)
        self._output_batch_shape = tuple(flat_outputs[0].shape)
        self._output_shape = self._output_batch_shape
        self.built = True
        self._build_input_shape = self._input_batch_shape
        self.output_names = [t._keras_history[0].name for t in flat_outputs]
        if not self._trainable:
            self.trainable = False  # propagate to the layers, as Keras does

    # --- graph ----------------------------------------------------------------------------------------
    def _map_graph(self) -> None:
        """Keras's `map_graph`: DFS from the outputs, node depths, layers ordered by decreasing depth."""
        inputs = self.inputs
        input_ids = {id(t) for t in inputs}
        finished, in_progress, order = set(), set(), []
        layer_index = {}  # id(layer) -> first traversal index (pre-order, like Keras)

        def visit(t):
            if id(t) in finished:
                return
            if id(t) in in_progress:
                raise ValueError(f"Tensor {t} from layer '{t._keras_history[0].name}' is part of a cycle.")
            layer, parents = t._keras_history
            layer_index.setdefault(id(layer), len(layer_index))
            in_progress.add(id(t))
            if _is_input_tensor(t):
                if id(t) not in input_ids:
                    raise ValueError(f"Graph disconnected: cannot obtain value for tensor {t} at layer "
                                     f"'{layer.name}': it is not one of the model inputs.")
            else:
                for p in parents:
                    if p._keras_history is None:
                        raise ValueError(f"Layer '{layer.name}' was called on {p}, which was not produced by a layer")
                    visit(p)
            in_progress.discard(id(t))
            finished.add(id(t))
            order.append(t)

        for t in self.outputs:
            visit(t)
        for t in inputs:  # an input not used by any output is still part of the model
            if id(t) not in finished:
                layer_index.setdefault(id(t._keras_history[0]), len(layer_index))
                finished.add(id(t))
                order.insert(0, t)

        # Depths: outputs are 0, a parent is deeper than all of its children (Keras's rule).
        node_depth, layer_depth = {}, {}
        for t in reversed(order):
            layer = t._keras_history[0]
            depth = max(node_depth.setdefault(id(t), 0), layer_depth.get(id(layer), 0))
            layer_depth[id(layer)] = depth
            node_depth[id(t)] = depth
            for p in t._keras_history[1]:
                node_depth[id(p)] = max(depth + 1, node_depth.get(id(p), 0))
        layers_by_id = {id(t._keras_history[0]): t._keras_history[0] for t in order}
        ordered = sorted(layers_by_id.values(), key=lambda l: (-layer_depth[id(l)], layer_index[id(l)]))
        names = [layer.name for layer in ordered]
        for name in names:
            if names.count(name) != 1:
                raise ValueError(f'The name "{name}" is used {names.count(name)} times in the model. All layer '
                                 "names should be unique.")
        self._layers = ordered

        # Execution plan: the DFS post-order is topological.
        self._nodes = order
        self._slot = {id(t): i for i, t in enumerate(order)}
        self._plan = []  # (layer, parent slots, multi-input?) per node; None for input tensors
        for t in order:
            if _is_input_tensor(t):
                self._plan.append(None)
            else:
                layer, parents = t._keras_history
                multi = len(parents) != 1 or isinstance(layer, _merge_classes())
                self._plan.append((layer, [self._slot[id(p)] for p in parents], multi))
        self._input_slots = [self._slot[id(t)] for t in self.inputs]
        self._output_slots = [self._slot[id(t)] for t in self.outputs]
        self._fusion_pairs = None  # decided by `_fusion` at the first run of this plan

        # Keras node indices of each layer's calls inside this model (in call order). Inbound-node args
        # count only this model's calls; `input_layers`/`output_layers` count a nested Functional's own
        # inputs->outputs node first (Keras's `node_reindexing_map`), hence `_io_offset`.
        self._node_index, self._io_offset = {}, {}
        calls = {}
        for t in order:
            calls.setdefault(id(t._keras_history[0]), []).append(t)
        for layer_calls in calls.values():
            layer_calls.sort(key=lambda x: x._creation_id)
            offset = 1 if isinstance(layer_calls[0]._keras_history[0], Functional) else 0
            for k, t in enumerate(layer_calls):
                self._node_index[id(t)] = k
                self._io_offset[id(t)] = offset

    @property
    def layers(self) -> list:
        return list(self._layers)

    @property
    def input(self):
        return self._inputs_struct

    @property
    def output(self):
        return self._outputs_struct

    @property
    def input_shape(self):
        return self._input_batch_shape

    @property
    def output_shape(self):
        return self._output_batch_shape

    def get_layer(self, name=None, index=None):
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in self.layers]}.")

    def _ensure_built(self, input_shape) -> None:
        pass

    def build(self, input_shape=None) -> None:
        pass

    def compute_output_shape(self, input_shape):
        shapes = [None] * len(self._nodes)
        shapes[self._input_slots[0]] = tuple(input_shape)
        for i, step in enumerate(self._plan):
            if step is None:
                continue
            layer, parents, multi = step
            arg = [shapes[p] for p in parents] if multi else shapes[parents[0]]
            shapes[i] = tuple(layer.compute_output_shape(arg))
        return shapes[self._output_slots[0]]

    @property
    def output_activation_name(self):
        step = self._plan[self._output_slots[0]]
        return None if step is None else step[0].output_activation_name

    # --- training protocol ----------------------------------------------------------------------------
    def _fusion(self) -> dict:
        """{pool node: conv node} for the `fusable` pairs where the conv's output is read by that pool
        node alone (and is not a model output). Decided once per plan; empty while fusion is disabled."""
        if not fusion.ENABLED:
            return {}
        if self._fusion_pairs is None:
            plan, readers = self._plan, {}
            for i, step in enumerate(plan):
                for p in step[1] if step is not None else ():
                    readers.setdefault(p, []).append(i)
            self._fusion_pairs = {r[0]: p for p, r in readers.items()
                                  if len(r) == 1 and p not in self._output_slots and plan[p] is not None
                                  and fusable(plan[p][0], plan[r[0]][0])}
        return self._fusion_pairs

    def forward(self, inputs, training=False, apply_activation=True):
        plan, fused = self._plan, self._fusion()
        skipped = set(fused.values())  # conv nodes that run inside their pool node
        values = [None] * len(plan)
        ctxs = [None] * len(plan)
        values[self._input_slots[0]] = inputs
        out_slot = self._output_slots[0]
        for i, step in enumerate(plan):
            if step is None or i in skipped:
                continue
            layer, parents, multi = step
            arg = [values[p] for p in parents] if multi else values[parents[0]]
            if i in fused:
                conv, (conv_parent,), _ = plan[fused[i]]
                values[i], ctxs[i] = ConvReluMaxPool(conv, layer).forward(values[conv_parent], training=training)
            elif i == out_slot and not apply_activation:
                values[i], ctxs[i] = layer.forward(arg, training=training, apply_activation=False)
            else:
                values[i], ctxs[i] = layer.forward(arg, training=training)
        return values[out_slot], (ctxs, np.shape(inputs), fused)

    def _trainable_ids(self) -> set:
        if self.compiled:
            return {id(v) for _, v in self._trainable_slots()}
        return {id(v) for v in self.trainable_weights}

    def backward(self, tape, grad_outputs, need_input_grad=True):
        """(grad wrt the input or None, grads aligned with self.weights; None where not computed)."""
        ctxs, input_shape, fused = tape
        plan = self._plan
        # Which tensors depend on trainable weights (only those need a gradient when the input doesn't).
        trainable = self._trainable_ids()
        upstream = [False] * len(plan)
        for i, step in enumerate(plan):
            if step is not None:
                layer, parents, _ = step
                upstream[i] = any(upstream[p] for p in parents) or any(id(v) in trainable for v in layer.weights)
        grads = [None] * len(plan)
        grads[self._output_slots[0]] = grad_outputs
        weight_grads = {}
        for i in range(len(plan) - 1, -1, -1):
            step, g = plan[i], grads[i]
            if step is None or g is None or not (need_input_grad or upstream[i]):
                continue
            layer, parents, multi = step
            runner = layer
            if i in fused:  # a fused pool node: the gradient goes to its conv's weights and input
                layer, parents, multi = plan[fused[i]]
                runner = ConvReluMaxPool(layer, step[0])
            need_in = need_input_grad or any(upstream[p] for p in parents)
            if not need_in and (isinstance(layer, Model) or getattr(layer, "skips_input_grad", False)):
                grad_in, layer_grads = runner.backward(ctxs[i], g, need_input_grad=False)
            else:
                grad_in, layer_grads = runner.backward(ctxs[i], g)
            if layer_grads is not None:
                for var, lg in zip(layer.weights, layer_grads):
                    if lg is None:
                        continue
                    prev = weight_grads.get(id(var))
                    weight_grads[id(var)] = lg if prev is None else prev + lg
            if need_in and grad_in is not None:
                parts = grad_in if multi else [grad_in]
                for p, gp in zip(parents, parts):
                    if gp is None:
                        continue
                    grads[p] = gp if grads[p] is None else grads[p] + gp
        grad_x = None
        if need_input_grad:
            grad_x = grads[self._input_slots[0]]
            if grad_x is None:
                grad_x = np.zeros(input_shape, np.float32)
        return grad_x, [weight_grads.get(id(v)) for v in self.weights]

    # --- serialization --------------------------------------------------------------------------------
    def _tensor_config(self, t: KerasTensor) -> dict:
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": t.dtype,
                           "keras_history": [t._keras_history[0].name, self._node_index[id(t)], 0]}}

    def _history_triple(self, t: KerasTensor) -> list:
        return [t._keras_history[0].name, self._node_index[id(t)] + self._io_offset[id(t)], 0]

    def get_config(self) -> dict:
        calls = {id(layer): [] for layer in self._layers}
        for t in self._nodes:
            if not _is_input_tensor(t):
                calls[id(t._keras_history[0])].append(t)
        layer_configs = []
        for layer in self._layers:
            entry = _serialize_layer(layer)
            entry["name"] = layer.name
            nodes = []
            for t in sorted(calls[id(layer)], key=lambda x: x._creation_id):
                parents = t._keras_history[1]
                if len(parents) == 1 and not isinstance(layer, _merge_classes()):
                    args = [self._tensor_config(parents[0])]
                else:
                    args = [[self._tensor_config(p) for p in parents]]
                kwargs = dict(_NODE_KWARGS.get(_class_name(layer), {}))
                nodes.append({"args": args, "kwargs": kwargs})
            entry["inbound_nodes"] = nodes
            layer_configs.append(entry)

        def io(structure):
            if isinstance(structure, KerasTensor):
                return self._history_triple(structure)
            return [io(s) for s in structure]

        return {"name": self.name, "trainable": self.trainable, "layers": layer_configs,
                "input_layers": io(self._inputs_struct), "output_layers": io(self._outputs_struct)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return functional_from_config(config)


def _merge_classes():
    from ..layers.merging import _Merge
    return (_Merge,)


def _class_name(layer) -> str:
    if isinstance(layer, Functional):
        return "Functional"
    return type(layer).__name__


def _serialize_layer(layer) -> dict:
    """Keras 3's `serialize_keras_object(layer)` (module, class_name, config, registered_name, build_config)."""
    from .sequential import Sequential
    if isinstance(layer, Functional):
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": layer.get_config(), "registered_name": "Functional",
                "build_config": {"input_shape": None}, "compile_config": _compile_config(layer)}
    if isinstance(layer, Sequential):
        entry = {"module": "keras", "class_name": "Sequential", "config": layer.get_config(),
                 "registered_name": None}
        if layer._input_batch_shape is not None:
            entry["build_config"] = {"input_shape": list(layer._input_batch_shape)}
        entry["compile_config"] = _compile_config(layer)
        return entry
    entry = {"module": "keras.layers", "class_name": type(layer).__name__, "config": layer.get_config(),
             "registered_name": None}
    shape = getattr(layer, "_build_input_shape", None)
    if shape is not None and type(layer).__name__ not in _NO_BUILD_CONFIG:
        if isinstance(shape, list):
            entry["build_config"] = {"input_shape": [list(s) for s in shape]}
        else:
            entry["build_config"] = {"input_shape": list(shape)}
    return entry


def _compile_config(model):
    if not getattr(model, "compiled", False):
        return {}  # what Keras 3 writes for an uncompiled nested model
    try:
        from ..saving.serialization import compile_config
    except ImportError:
        return {}
    return compile_config(model)


def _deserialize_layer(entry: dict, where: str):
    """A layer (or nested model) from its Keras 3 serialized form."""
    from .. import layers as layers_module
    from .sequential import Sequential
    class_name = entry.get("class_name")
    config = dict(entry.get("config") or {})
    if class_name in ("Functional", "Model"):
        return functional_from_config(config)
    if class_name == "Sequential":
        try:
            from ..saving import serialization
            return serialization.layer_from_config(entry, where=where)
        except (ImportError, ValueError):  # e.g. layers the saving table doesn't list yet
            model = Sequential.from_config(config)
            shape = (entry.get("build_config") or {}).get("input_shape")
            if shape is not None and model._input_batch_shape is None and model.layers:
                model.build(tuple(shape))
            return model
    try:
        from ..saving import serialization
    except ImportError:
        serialization = None
    if serialization is not None and class_name in getattr(serialization, "SUPPORTED_LAYERS", {}):
        return serialization.layer_from_config(entry, where=where)
    if entry.get("module") not in (None, "keras.layers", "keras") or entry.get("registered_name") not in (None, class_name):
        raise ValueError(f"{where}Unsupported layer {class_name!r} from module {entry.get('module')!r}")
    cls = layers_module.get(class_name)  # only rconv's own layer classes
    config.pop("shared_object_id", None)
    if class_name == "InputLayer":
        config.pop("optional", None)
    return cls.from_config(config)


def functional_from_config(config: dict):
    """Rebuild a functional model by calling the layers on symbolic tensors in the config's order
    (Keras's `functional_from_config`): nodes whose inputs don't exist yet are retried later."""
    config = dict(config)
    layer_entries = config.get("layers")
    if not isinstance(layer_entries, list):
        raise ValueError("Functional config has no 'layers' list")
    created, outputs = {}, {}
    pending = {}
    for i, entry in enumerate(layer_entries):
        layer = _deserialize_layer(entry, where=f"layer #{i}: ")
        name = entry.get("name") or layer.name
        if name in created:
            raise ValueError(f"Duplicate layer name {name!r} in functional config")
        created[name] = layer
        if isinstance(layer, InputLayer):
            outputs[name] = [layer.output]
        else:
            outputs[name] = []
        pending[name] = list(entry.get("inbound_nodes") or [])

    def tensor(history):
        lname, node_index, tensor_index = history[0], int(history[1]), int(history[2])
        if lname not in outputs:
            raise ValueError(f"Functional config references unknown layer {lname!r}")
        if node_index >= len(outputs[lname]):
            raise IndexError(lname)
        if tensor_index != 0:
            raise NotImplementedError(f"Layer {lname!r}: multi-output layers are not supported")
        return outputs[lname][node_index]

    def revive(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            return tensor(value["config"]["keras_history"])
        if isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str) and \
                isinstance(value[1], int):
            return tensor(value[:3])  # legacy [name, node, tensor(, kwargs)]
        if isinstance(value, (list, tuple)):
            return [revive(v) for v in value]
        return value

    def node_args(node):
        if isinstance(node, dict):
            args = revive(node.get("args") or [])
            return args[0] if len(args) == 1 else args
        args = [revive(item) for item in node]  # legacy: [[name, node, tensor, kwargs], ...]
        return args[0] if len(args) == 1 else args

    while any(pending.values()):
        progressed = False
        for entry in layer_entries:
            name = entry.get("name") or entry["config"].get("name")
            nodes = pending[name]
            while nodes:
                try:
                    args = node_args(nodes[0])
                except IndexError:
                    break
                outputs[name].append(created[name](args))
                nodes.pop(0)
                progressed = True
        if not progressed:
            stuck = [n for n, nodes in pending.items() if nodes]
            raise ValueError(f"Invalid functional config: cannot resolve the inbound nodes of layers {stuck}")

    def io(value):
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            if isinstance(created.get(value[0]), Functional):  # Keras counts its own node first
                return tensor([value[0], int(value[1]) - 1, value[2]])
            return tensor(value)
        return [io(v) for v in value]

    inputs, outs = io(config["input_layers"]), io(config["output_layers"])
    return Functional(inputs=inputs, outputs=outs, name=config.get("name"),
                      trainable=config.get("trainable", True))


__all__ = ["Functional", "functional_from_config"]

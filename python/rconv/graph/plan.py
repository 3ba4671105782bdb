"""The one graph plan: `KerasTensor`s from inputs to outputs -> a topologically ordered list of nodes.

Every non-input `KerasTensor` is one layer call (a Keras "node"): ``_keras_history = (layer, [inbound
tensors])``. `Plan` walks the graph back from the outputs like Keras's `map_graph` and keeps:

* ``tensors``: the tensors in topological order (a DFS post-order); slot ``i`` holds tensor ``i``;
* ``steps``: per slot, None for a model input, else a `Step` (layer, parent slots, list-input?);
* ``layers``: the layers in Keras's order (decreasing depth, then first visit), which fixes the order of
  weights and of the entries of saved configs, so files line up with Keras's;
* ``input_slots`` / ``output_slots``: the flat model inputs and outputs.

Both `Sequential` and functional models build one of these; `graph/passes.py` rewrites it once per
variant and `graph/executor.py` runs it.
"""
from __future__ import annotations

from ..keras_tensor import KerasTensor


class Step:
    """One node to run: ``runner.forward(arg)`` where ``arg`` is the value of ``parents[0]`` or, for a
    list-input call, the list of the parents' values. ``owner`` is the layer whose weights the node's
    gradients belong to (the runner itself unless a pass replaced it); ``skip`` marks a node whose work
    another node does (the convolution of a fused conv+pool pair)."""

    __slots__ = ("layer", "runner", "owner", "parents", "multi", "skip", "training")

    def __init__(self, layer, parents, multi, runner=None, owner=None, skip=False, training=None):
        self.layer, self.parents, self.multi = layer, parents, multi
        self.runner = layer if runner is None else runner
        self.owner = layer if owner is None else owner
        self.skip = skip
        self.training = training  # the call's own `training` argument (used by eager calls that give none)

    def replaced(self, **changes) -> "Step":
        fields = {k: getattr(self, k) for k in self.__slots__}
        fields.update(changes)
        return Step(**fields)


def is_input_tensor(t: KerasTensor) -> bool:
    history = t._keras_history
    return history is not None and not history[1] and type(history[0]).__name__ == "InputLayer"


def flatten(structure, what: str = "values") -> list:
    """Tensors of a tensor / list / tuple / dict structure, in Keras's order (dict keys sorted)."""
    if isinstance(structure, KerasTensor):
        return [structure]
    if isinstance(structure, dict):
        return [t for key in sorted(structure) for t in flatten(structure[key], what)]
    if isinstance(structure, (list, tuple)):
        return [t for item in structure for t in flatten(item, what)]
    raise ValueError(f"All `{what}` values must be KerasTensors. Received: {structure!r:.200} of type "
                     f"{type(structure).__name__}")


class Plan:
    def __init__(self, inputs: list, outputs: list):
        for t in list(inputs) + list(outputs):
            if not isinstance(t, KerasTensor) or t._keras_history is None:
                raise ValueError(f"Tensor {t} was not produced by a layer; use `rconv.Input(...)` and call layers "
                                 "on it")
        for t in inputs:
            if not is_input_tensor(t):
                raise NotImplementedError(f"Model inputs must come from `rconv.Input(...)`; got {t}, the output of "
                                          f"layer '{t._keras_history[0].name}'")
        if not outputs:
            raise ValueError("A model needs at least one output tensor")
        self.inputs, self.outputs = list(inputs), list(outputs)
        self._map_graph()

    def _map_graph(self) -> None:
        """Keras's `map_graph`: DFS from the outputs, node depths, layers ordered by decreasing depth."""
        input_ids = {id(t) for t in self.inputs}
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
            if is_input_tensor(t):
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
        for t in reversed(self.inputs):  # an input no output uses is still part of the model
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
        ordered = sorted(layers_by_id.values(), key=lambda lay: (-layer_depth[id(lay)], layer_index[id(lay)]))
        names = [layer.name for layer in ordered]
        for name in names:
            if names.count(name) != 1:
                raise ValueError(f'The name "{name}" is used {names.count(name)} times in the model. All layer '
                                 "names should be unique.")
        self.layers = ordered
        self.tensors = order
        slot = {id(t): i for i, t in enumerate(order)}
        self.steps = []
        for t in order:
            if is_input_tensor(t):
                self.steps.append(None)
                continue
            layer, parents = t._keras_history
            multi = isinstance(self._call_arg(layer, t), list)
            self.steps.append(Step(layer, [slot[id(p)] for p in parents], multi,
                                   training=getattr(t, "_call_training", None)))
        self.input_slots = [slot[id(t)] for t in self.inputs]
        self.output_slots = [slot[id(t)] for t in self.outputs]

    @staticmethod
    def _call_arg(layer, t):
        """What the layer was called on for the node producing `t` (a tensor or a list of tensors)."""
        for args, out in layer._inbound_nodes:
            if out is t:
                return args
        parents = t._keras_history[1]
        return parents[0] if len(parents) == 1 else list(parents)

    def calls(self) -> dict:
        """id(layer) -> the output tensors of its calls inside this plan, in call order."""
        calls = {id(layer): [] for layer in self.layers}
        for t in self.tensors:
            if not is_input_tensor(t):
                calls[id(t._keras_history[0])].append(t)
        for tensors in calls.values():
            tensors.sort(key=lambda x: x._creation_id)
        return calls

    def call_arg(self, t):
        return self._call_arg(t._keras_history[0], t)

    def output_shapes(self, input_shapes: list) -> list:
        """Propagate concrete input shapes through the layers' `compute_output_shape`."""
        shapes = [None] * len(self.tensors)
        for s, shape in zip(self.input_slots, input_shapes):
            shapes[s] = tuple(shape)
        for i, step in enumerate(self.steps):
            if step is not None:
                arg = [shapes[p] for p in step.parents] if step.multi else shapes[step.parents[0]]
                shapes[i] = tuple(step.layer.compute_output_shape(arg))
        return [shapes[s] for s in self.output_slots]

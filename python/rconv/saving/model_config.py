"""Model configs, the model half of the one serializer (`serialization.py` holds the layer half and the
compile configs; each calls the other for nested objects, at any depth, with the same allow-list).

* Sequential: ``{"name", "trainable", "dtype", "layers": [entries], "build_input_shape"}``.
* Functional: Keras 3's layout: ``layers`` with ``inbound_nodes`` of serialized ``__keras_tensor__``
  args, ``input_layers`` and ``output_layers`` (a list or a dict, like the model's own structures).
* Legacy (`.h5` of Keras 2 / tf.keras): the same without modules, build configs and DTypePolicies.

Model classes are found in the "models" registry (this package never imports `rconv.models`).
"""
from __future__ import annotations

import copy

from .. import registry
from ..keras_tensor import KerasTensor
from ..layers.layer import serialize_dtype
from . import serialization


MODEL_CLASSES = ("Sequential", "Functional", "Model")
# Call kwargs Keras 3 records in `inbound_nodes` (from the layers' `call` signatures).
_NODE_KWARGS = {"Dropout": {"training": False}, "Softmax": {"mask": None}, "Sequential": {"mask": None},
                "Functional": {"mask": None}}


def model_class_name(model):
    """'Sequential', 'Functional', or None for an object that is not a model."""
    name = registry.name_of("models", type(model), None)
    return None if name is None else ("Sequential" if name == "Sequential" else "Functional")


def sequential_config(model) -> dict:
    config = {"name": model.name, "trainable": model.trainable, "dtype": serialize_dtype(),
              "layers": [serialization.layer_to_config(layer) for layer in model._layers]}
    if model._plan is not None:
        config["build_input_shape"] = list(model.inputs[0].shape)
    return config


def functional_config(model) -> dict:
    plan = model._plan
    calls = plan.calls()
    node_index, io_offset = {}, {}
    for tensors in calls.values():  # Keras counts a nested Functional's own inputs->outputs node first
        offset = 1 if tensors and model_class_name(tensors[0]._keras_history[0]) == "Functional" else 0
        for k, t in enumerate(tensors):
            node_index[id(t)], io_offset[id(t)] = k, offset

    def tensor_config(t):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": t.dtype,
                           "keras_history": [t._keras_history[0].name, node_index.get(id(t), 0), 0]}}

    def history(t):
        return [t._keras_history[0].name, node_index.get(id(t), 0) + io_offset.get(id(t), 0), 0]

    def io(structure):
        if isinstance(structure, KerasTensor):
            return history(structure)
        if isinstance(structure, dict):
            return {key: io(structure[key]) for key in structure}
        return [io(s) for s in structure]

    layer_configs = []
    for layer in plan.layers:
        entry = serialization.layer_to_config(layer)
        entry["name"] = layer.name
        nodes = []
        for t in calls[id(layer)]:
            arg = plan.call_arg(t)
            if hasattr(layer, "node_args"):  # an operation: its constants are args too (Keras 3)
                args = layer.node_args([tensor_config(p) for p in (arg if isinstance(arg, list) else [arg])])
            elif isinstance(arg, list):
                args = [[tensor_config(p) for p in arg]]
            else:
                args = [tensor_config(arg)]
            kind = model_class_name(layer) or type(layer).__name__
            kwargs = dict(_NODE_KWARGS.get(kind, {}))
            if getattr(t, "_call_training", None) is not None:
                kwargs["training"] = t._call_training
            nodes.append({"args": args, "kwargs": kwargs})
        entry["inbound_nodes"] = nodes
        layer_configs.append(entry)
    inputs, outputs = model._inputs_struct, model._outputs_struct
    return {"name": model.name, "trainable": model.trainable, "layers": layer_configs,
            "input_layers": io(inputs if not isinstance(inputs, tuple) else list(inputs)),
            "output_layers": io(outputs if not isinstance(outputs, tuple) else list(outputs))}


def nested_entry(model) -> dict:
    """A model serialized as a layer of another model (what Keras 3 writes there)."""
    kind = model_class_name(model)
    if kind == "Functional":
        entry = {"module": "keras.src.models.functional", "class_name": "Functional", "config": model.get_config(),
                 "registered_name": "Functional", "build_config": {"input_shape": None}}
    else:
        entry = {"module": "keras", "class_name": "Sequential", "config": model.get_config(), "registered_name": None}
        if model._plan is not None:
            entry["build_config"] = {"input_shape": list(model.inputs[0].shape)}
    entry["compile_config"] = serialization.compile_config(model) if model.compiled else {}
    return entry


def model_to_config(model, legacy: bool = False, include_compile: bool = True) -> dict:
    """The whole-model config Keras writes: config.json of a .keras file, or (legacy) the .h5
    `model_config` attribute."""
    kind = model_class_name(model)
    if kind is None:
        raise serialization.ConfigError(f"Cannot save {model!r}: not a Sequential or functional model")
    config = copy.deepcopy(model.get_config())
    if legacy:
        config = legacy_model_config(kind, config)
        return {"class_name": kind, "config": serialization.jsonable(config)}
    entry = {"module": "keras" if kind == "Sequential" else "keras.src.models.functional", "class_name": kind,
             "config": serialization.jsonable(config),
             "registered_name": None if kind == "Sequential" else "Functional"}
    if model._plan is not None:
        shapes = [list(t.shape) for t in model.inputs]
        entry["build_config"] = {"input_shape": shapes[0] if len(shapes) == 1 else shapes}
    if include_compile and model.compiled:
        entry["compile_config"] = serialization.compile_config(model)
    return entry


def legacy_model_config(kind: str, config: dict) -> dict:
    config = dict(config)
    config.pop("dtype", None)
    layers = []
    for entry in config.get("layers", []):
        entry = dict(entry)
        entry.pop("module", None)
        entry.pop("registered_name", None)
        entry.pop("build_config", None)
        entry.pop("compile_config", None)
        if entry["class_name"] in MODEL_CLASSES:
            entry["config"] = legacy_model_config(entry["class_name"], entry["config"])
        else:
            entry["config"] = serialization.legacy_layer_config(entry["class_name"], entry["config"])
        layers.append(entry)
    config["layers"] = layers
    return config


MAX_MODEL_DEPTH = 32    # models nested in models
MAX_JSON_DEPTH = 500    # dicts/lists nested in a config (the recursive builders stay far from Python's limit)


def check_nesting(config, where: str = "") -> None:
    """Refuse, with an iterative walk before anything recursive runs, a config nested deeper than
    MAX_JSON_DEPTH levels or with models nested deeper than MAX_MODEL_DEPTH."""
    stack = [(config, 1, 0)]
    while stack:
        value, depth, models = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise serialization.ConfigError(f"{where}The config is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, dict):
            if value.get("class_name") in MODEL_CLASSES:
                models += 1
                if models > MAX_MODEL_DEPTH:
                    raise serialization.ConfigError(f"{where}The config nests models more than {MAX_MODEL_DEPTH} "
                                                    "deep")
            stack.extend((v, depth + 1, models) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, models) for v in value)


def model_from_config(entry, where: str = ""):
    """A Sequential or functional model from Keras's serialized form (Keras 3 or legacy), at any depth."""
    if not where:  # the outermost call (nested models get a `where`)
        check_nesting(entry)
    if isinstance(entry, list):  # Keras 1/2.0 Sequential: the config was the list of layers
        entry = {"class_name": "Sequential", "config": {"layers": entry}}
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise serialization.ConfigError(f"{where}Not a Keras model config (expected a dict with 'class_name' and "
                                        "'config')")
    class_name = entry["class_name"]
    config = entry.get("config")
    if not isinstance(class_name, str):
        raise serialization.ConfigError(f"{where}Invalid class_name {class_name!r:.200}")
    if registry.find("layers", class_name) is not None:
        raise serialization.ConfigError(f"{where}The config describes a single {class_name} layer, not a model")
    if class_name not in MODEL_CLASSES:
        raise serialization.unsupported(class_name, where)
    serialization.check_origin(entry, where)
    if isinstance(config, list):
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise serialization.ConfigError(f"{where}{class_name} config has no 'layers' list")
    try:
        if class_name == "Sequential":
            return _sequential_from_config(config, entry, where)
        return _functional_from_config(config, where)
    except serialization.ConfigError:
        raise
    except serialization.CONFIG_EXCEPTIONS as exc:
        raise serialization.ConfigError(f"{where}{type(exc).__name__}: {exc}") from exc


def _sequential_from_config(config, entry, where):
    model = registry.get("models", "Sequential")(name=config.get("name"), trainable=config.get("trainable", True))
    for i, layer_entry in enumerate(config["layers"]):
        model.add(serialization.layer_from_config(layer_entry, where=f"{where}layer #{i}: "), rebuild=False)
    model._maybe_rebuild()
    shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape")
    if shape is not None and model._plan is None and model.layers:
        model.build(tuple(shape))
    return model


def _functional_from_config(config, where):
    """Rebuild a functional graph by calling the layers on symbolic tensors in the config's order
    (Keras's `functional_from_config`): nodes whose inputs don't exist yet are retried later."""
    layer_entries = config["layers"]
    created, outputs, pending = {}, {}, {}
    for i, entry in enumerate(layer_entries):
        if not isinstance(entry, dict):
            raise serialization.ConfigError(f"{where}layer #{i}: invalid entry {entry!r:.200}")
        layer = serialization.layer_from_config(entry, where=f"{where}layer #{i}: ")
        name = entry.get("name") or layer.name
        if name in created:
            raise serialization.ConfigError(f"{where}Duplicate layer name {name!r} in functional config")
        created[name] = layer
        outputs[name] = [layer.output] if type(layer).__name__ == "InputLayer" else []
        pending[name] = list(entry.get("inbound_nodes") or [])

    def tensor(history):
        lname, node_index, tensor_index = history[0], int(history[1]), int(history[2])
        if lname not in outputs:
            raise serialization.ConfigError(f"{where}Functional config references unknown layer {lname!r}")
        if node_index >= len(outputs[lname]):
            raise _NotYet(lname)
        if tensor_index != 0:
            raise serialization.ConfigError(f"{where}Layer {lname!r}: multi-output layers are not supported")
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
        args = revive(node.get("args") or []) if isinstance(node, dict) else [revive(item) for item in node]
        return args[0] if len(args) == 1 else args

    while any(pending.values()):
        progressed = False
        for name in list(pending):
            nodes = pending[name]
            while nodes:
                try:
                    args = node_args(nodes[0])
                except _NotYet:
                    break
                outputs[name].append(_replay(created[name], args, nodes[0]))
                nodes.pop(0)
                progressed = True
        if not progressed:
            stuck = [n for n, nodes in pending.items() if nodes]
            raise serialization.ConfigError(f"{where}Invalid functional config: cannot resolve the inbound nodes of "
                                            f"layers {stuck}")

    def io(value):
        if not isinstance(value, (dict, list)):
            raise serialization.ConfigError(f"{where}Invalid input_layers/output_layers entry {value!r:.200}")
        if isinstance(value, dict):
            return {key: io(v) for key, v in value.items()}
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            if model_class_name(created.get(value[0])) == "Functional":  # Keras counts its own node first
                return tensor([value[0], int(value[1]) - 1, value[2]])
            return tensor(value)
        return [io(v) for v in value]

    inputs, outs = io(config["input_layers"]), io(config["output_layers"])
    return registry.get("models", "Functional")(inputs=inputs, outputs=outs, name=config.get("name"),
                                               trainable=config.get("trainable", True))


def _replay(layer, args, node):
    """Call `layer` on a saved node's args, with the `training` argument Keras recorded for the call (it
    decides the node's mode in eager calls that give none, as in Keras)."""
    kwargs = node.get("kwargs") if isinstance(node, dict) else None
    training = kwargs.get("training") if isinstance(kwargs, dict) else None
    return layer(args, training=training) if isinstance(training, bool) else layer(args)


class _NotYet(Exception):
    """An inbound node refers to a call that has not been replayed yet."""


__all__ = ["MODEL_CLASSES", "model_class_name", "sequential_config", "functional_config", "nested_entry",
           "model_to_config", "model_from_config"]

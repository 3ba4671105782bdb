"""Model/layer configs <-> rconv objects, for Keras 3 configs and Keras 2 / tf.keras legacy ones.

Only the layer classes in `SUPPORTED_LAYERS` (the "layers" registry) are ever instantiated: names are
looked up in that table, never imported or evaluated, so a config cannot run code. `Lambda` (which
carries Python bytecode) and any unknown or custom class are refused with a ValueError.
"""
from __future__ import annotations

import copy

from .. import layers, losses, metrics, optimizers, registry  # noqa: F401 (imports fill the registry)
from ..layers.core import InputLayer

# Keras class name or alias -> rconv class: a live read-only view of the "layers" registry, which
# each layer module fills as it defines its classes. Models are resolved lazily (rconv.models imports layers).
SUPPORTED_LAYERS = registry.mapping("layers")
MODEL_CLASSES = ("Sequential", "Functional", "Model")
SUPPORTED = tuple(sorted(SUPPORTED_LAYERS)) + MODEL_CLASSES

# Config keys newer/older Keras versions write that rconv may drop when they hold these defaults.
_DROPPABLE_LAYER_KEYS = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
                         "lora_enabled": False, "autocast": True}
_DROPPABLE_INIT_KEYS = {"input_axes": None, "output_axes": None}
_DROPPABLE_OPTIMIZER_KEYS = {"jit_compile", "is_legacy_optimizer", "mesh"}


class ConfigError(ValueError):
    """A config names something rconv cannot (or will not) build."""


# --- layers ------------------------------------------------------------------------------------------
def _unsupported(class_name, where="") -> ConfigError:
    if class_name == "Lambda":
        return ConfigError(f"{where}Lambda layers are refused: their config holds Python code, which rconv "
                           "never deserializes. Rebuild the layer in code and load weights only.")
    return ConfigError(f"{where}Unsupported layer class {class_name!r}; rconv can load: {', '.join(SUPPORTED)}")


def _check_origin(entry: dict, where: str) -> None:
    """Refuse objects that come from outside Keras (custom modules / registered names)."""
    module = entry.get("module")
    registered = entry.get("registered_name")
    class_name = entry.get("class_name")
    if module is not None and not str(module).startswith(("keras", "tf_keras")):
        raise ConfigError(f"{where}Layer {class_name!r} comes from module {module!r}, not Keras; rconv only "
                          f"loads built-in classes: {', '.join(SUPPORTED)}")
    if registered not in (None, class_name):
        raise ConfigError(f"{where}Custom registered object {registered!r} is not supported; rconv can load: "
                          f"{', '.join(SUPPORTED)}")


def _clean_initializer(value):
    if isinstance(value, dict) and "class_name" in value:
        value = dict(value)
        cfg = dict(value.get("config") or {})
        for key, default in _DROPPABLE_INIT_KEYS.items():
            if key in cfg and cfg[key] == default:
                del cfg[key]
        if value["class_name"] == "VarianceScaling" and cfg.get("distribution") == "normal":
            cfg["distribution"] = "truncated_normal"  # Keras 2's old spelling
        value["config"] = cfg
    return value


def _clean_layer_config(class_name: str, config: dict) -> dict:
    config = dict(config)
    config.pop("shared_object_id", None)
    for key, default in _DROPPABLE_LAYER_KEYS.items():
        if key in config and config[key] == default:
            del config[key]
    for key in ("kernel_initializer", "bias_initializer"):
        if key in config:
            config[key] = _clean_initializer(config[key])
    if class_name == "InputLayer":
        # Keras 2 / tf.keras: `batch_input_shape`; Keras 3: `batch_shape`.
        if "batch_input_shape" in config and "batch_shape" not in config:
            config["batch_shape"] = config.pop("batch_input_shape")
        config.pop("batch_input_shape", None)
    if class_name in ("Softmax",) and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
        config["axis"] = int(config["axis"][0])
    return config


def layer_from_config(entry: dict, where: str = ""):
    """One layer (or nested model) from its serialized form {"class_name", "config", ...}."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ConfigError(f"{where}Invalid layer entry (expected a dict with 'class_name'): {entry!r:.200}")
    class_name = entry["class_name"]
    if class_name in MODEL_CLASSES:
        _check_origin(entry, where)
        return model_from_config(entry, where=where)
    cls = SUPPORTED_LAYERS.get(class_name)
    if cls is None:
        raise _unsupported(class_name, where)
    _check_origin(entry, where)
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{where}Layer {class_name!r}: config must be a dict, got {type(config).__name__}")
    name = config.get("name", "?")
    try:
        return cls.from_config(_clean_layer_config(class_name, config))
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise ConfigError(f"{where}Cannot build layer {name!r} ({class_name}) from its config: {exc}") from exc


def layer_to_config(layer, legacy: bool = False) -> dict:
    """Keras 3's serialized layer (module/class_name/config/registered_name/build_config); `legacy`
    gives the Keras 2 / tf.keras form used in .h5 files (no module, `batch_input_shape`, str dtype)."""
    from ..models import Model
    if isinstance(layer, Model):
        return model_to_config(layer, legacy=legacy, include_compile=False)
    class_name = type(layer).__name__
    if registry.find("layers", class_name) is not type(layer):
        raise ConfigError(f"Cannot save layer {layer.name!r}: unsupported class {class_name!r}; rconv can "
                          f"save: {', '.join(SUPPORTED)}")
    config = layer.get_config()
    if legacy:
        config = _to_legacy_layer_config(class_name, config)
        return {"class_name": class_name, "config": config}
    entry = {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
    if getattr(layer, "_build_input_shape", None) is not None and not isinstance(layer, InputLayer):
        entry["build_config"] = {"input_shape": list(layer._build_input_shape)}
    return entry


def _to_legacy_layer_config(class_name: str, config: dict) -> dict:
    config = dict(config)
    if class_name == "InputLayer":
        config["batch_input_shape"] = list(config.pop("batch_shape"))
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
    return config


# --- models ------------------------------------------------------------------------------------------
def _model_classes():
    from ..models import Model, Sequential
    return Model, Sequential


def _is_functional(model) -> bool:
    Model, Sequential = _model_classes()
    return isinstance(model, Model) and not isinstance(model, Sequential)


def model_class_name(model) -> str:
    Model, Sequential = _model_classes()
    if isinstance(model, Sequential):
        return "Sequential"
    return "Functional"


def model_to_config(model, legacy: bool = False, include_compile: bool = True) -> dict:
    """The whole-model config Keras writes: config.json of a .keras file, or (legacy) the .h5
    `model_config` attribute."""
    Model, Sequential = _model_classes()
    class_name = model_class_name(model)
    if class_name == "Sequential":
        config = model.get_config()
        config["layers"] = [layer_to_config(layer, legacy) for layer in model._layers]
        if legacy:
            config.pop("dtype", None)
    else:
        config = copy.deepcopy(model.get_config())  # functional: layers with inbound_nodes
        if legacy:
            for entry in config.get("layers", []):
                entry.pop("module", None)
                entry.pop("registered_name", None)
                entry.pop("build_config", None)
                entry["config"] = _to_legacy_layer_config(entry["class_name"], entry["config"])
    config = _jsonable(config)
    if legacy:
        return {"class_name": class_name, "config": config}
    entry = {"module": "keras" if class_name == "Sequential" else "keras.src.models.functional",
             "class_name": class_name, "config": config,
             "registered_name": None if class_name == "Sequential" else "Functional"}
    if getattr(model, "_input_batch_shape", None) is not None:
        entry["build_config"] = {"input_shape": list(model._input_batch_shape)}
    if include_compile and getattr(model, "compiled", False):
        entry["compile_config"] = compile_config(model)
    return entry


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # NumPy scalars
    return value


def model_from_config(entry, where: str = ""):
    """A Sequential or functional model from Keras's serialized form (Keras 3 or legacy)."""
    if isinstance(entry, list):  # Keras 1/2.0 Sequential: the config was the list of layers
        entry = {"class_name": "Sequential", "config": {"layers": entry}}
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ConfigError(f"{where}Not a Keras model config (expected a dict with 'class_name' and 'config')")
    class_name = entry["class_name"]
    config = entry.get("config")
    if class_name in SUPPORTED_LAYERS:
        raise ConfigError(f"{where}The config describes a single {class_name} layer, not a model")
    if class_name not in MODEL_CLASSES:
        raise _unsupported(class_name, where)
    if isinstance(config, list):
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ConfigError(f"{where}{class_name} config has no 'layers' list")
    if class_name == "Sequential":
        return _sequential_from_config(config, entry, where)
    return _functional_from_config(config, where)


def _sequential_from_config(config, entry, where):
    Model, Sequential = _model_classes()
    model = Sequential(name=config.get("name"), trainable=config.get("trainable", True))
    for i, layer_entry in enumerate(config["layers"]):
        model.add(layer_from_config(layer_entry, where=f"{where}layer #{i}: "))
    shape = config.get("build_input_shape") or (entry.get("build_config") or {}).get("input_shape")
    if shape is not None and model._input_batch_shape is None and model.layers:
        model.build(tuple(shape))
    return model


def _functional_from_config(config, where):
    """Rebuild a functional graph by calling the layers on symbolic tensors, as Keras does. The graph
    logic lives with the Functional model; every layer it creates still comes from this module's table."""
    from ..models.functional import functional_from_config
    try:
        return functional_from_config(config)
    except ConfigError:
        raise
    except (ValueError, NotImplementedError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where}{exc}") from exc


# --- compile configs ---------------------------------------------------------------------------------
def _serialize_fn_or_obj(obj, module: str):
    if isinstance(obj, str):
        return obj
    if callable(obj) and not hasattr(obj, "get_config"):
        return {"module": module, "class_name": "function", "config": obj.__name__,
                "registered_name": obj.__name__}
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": None}


def compile_config(model) -> dict:
    loss = model.loss
    by_name = registry.find("losses", loss.name)
    plain = by_name is not None and type(loss) is by_name and loss.get_config() == by_name(name=loss.name).get_config()
    loss_entry = loss.name if plain else losses.serialize(loss)
    metric_entries = [_serialize_fn_or_obj(m, "keras.metrics") for m in (model._metric_ids or [])]
    return _jsonable({"optimizer": optimizers.serialize(model.optimizer), "loss": loss_entry,
                      "loss_weights": None, "metrics": metric_entries or None, "weighted_metrics": None,
                      "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False})


def legacy_training_config(model) -> dict:
    config = compile_config(model)
    opt = config.pop("optimizer")
    config["optimizer_config"] = {"class_name": opt["class_name"], "config": opt["config"]}
    return config


def optimizer_from_config(entry):
    if isinstance(entry, str):
        return optimizers.get(entry)
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ConfigError(f"Invalid optimizer config: {entry!r:.200}")
    class_name = str(entry["class_name"]).split(">")[-1].split(".")[-1]  # "Custom>Adam" (tf.keras 2.11+)
    config = {k: v for k, v in (entry.get("config") or {}).items() if k not in _DROPPABLE_OPTIMIZER_KEYS}
    if not config.get("decay"):  # Keras 2 legacy optimizers: decay=0.0
        config.pop("decay", None)
    if registry.find("optimizers", class_name) is None:
        raise ConfigError(f"Unsupported optimizer {entry['class_name']!r}; rconv has "
                          f"{registry.names('optimizers')}")
    return optimizers.get({"class_name": class_name, "config": config})


def _name_of(value):
    """A loss/metric given as a name, a Keras function dict or a serialized object -> str or object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        class_name, config = value.get("class_name"), value.get("config")
        if class_name == "function" or (isinstance(config, str) and class_name not in (None, "")):
            return config if isinstance(config, str) else value.get("registered_name")
        return value
    raise ConfigError(f"Cannot interpret {value!r:.200} in the training config")


def loss_from_config(entry):
    entry = _name_of(entry)
    if isinstance(entry, dict):
        cfg = dict(entry.get("config") or {})
        if isinstance(cfg.get("dtype"), dict):
            cfg["dtype"] = None
        entry = {"class_name": entry.get("class_name"), "config": cfg}
    return losses.get(entry)


def metrics_from_config(entries) -> list:
    if entries is None:
        return []
    if isinstance(entries, dict):
        raise ConfigError("Per-output metric dicts (multi-output models) are not supported")
    out = []
    for item in entries:
        if isinstance(item, list):  # tf.keras nests one list per output
            out.extend(metrics_from_config(item))
            continue
        item = _name_of(item)
        if isinstance(item, dict):
            cfg = item.get("config") or {}
            name = cfg.get("name")
            if item.get("class_name") == "MeanMetricWrapper":
                known = name in ("accuracy", "acc") or registry.find("metrics", name) is not None
                item = name if known else cfg.get("fn")
                if isinstance(item, dict):
                    item = _name_of(item)
            elif registry.find("metrics", item.get("class_name")) is not None:
                metric = registry.get("metrics", item["class_name"])()
                if name:
                    metric.name = name
                item = metric
            else:
                raise ConfigError(f"Unsupported metric {item.get('class_name')!r}")
        out.append(item)
    return out


def compile_from_config(model, config: dict, legacy: bool = False) -> None:
    """`model.compile(...)` from a Keras 3 compile_config or a legacy training_config."""
    opt_entry = config.get("optimizer_config") if legacy else config.get("optimizer")
    if opt_entry is None:
        opt_entry = config.get("optimizer") or config.get("optimizer_config")
    loss = config.get("loss")
    if loss is None:
        raise ConfigError("The training config has no loss")
    if isinstance(loss, (dict, list)) and not (isinstance(loss, dict) and "class_name" in loss):
        raise ConfigError("Per-output losses (multi-output models) are not supported")
    model.compile(optimizer=optimizer_from_config(opt_entry), loss=loss_from_config(loss),
                  metrics=metrics_from_config(config.get("metrics")))


__all__ = ["SUPPORTED", "SUPPORTED_LAYERS", "ConfigError", "layer_from_config", "layer_to_config",
           "model_from_config", "model_to_config", "compile_config", "compile_from_config",
           "legacy_training_config", "model_class_name"]

"""The one serializer, layer half: Keras's `serialize_keras_object` / `deserialize_keras_object` for layers
(and, through `model_config.py`, models nested at any depth), plus compile configs.

Only registered classes are ever instantiated (`rconv.registry`: "layers", "models", "losses", ...):
names are looked up there, never imported or evaluated, so a config cannot run code. The same
allow-list check (`check_origin`) runs on every entry at every depth. `Lambda` (which carries Python
bytecode) and any unknown or custom class are refused with a ValueError (`ConfigError`).
"""
from __future__ import annotations

from .. import losses, optimizers, registry
from ..layers import tensor_ops
from . import model_config

# Config keys newer/older Keras versions write that rconv may drop when they hold these defaults.
_DROPPABLE_LAYER_KEYS = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
                         "lora_enabled": False, "autocast": True}
_DROPPABLE_INIT_KEYS = {"input_axes": None, "output_axes": None}
_DROPPABLE_OPTIMIZER_KEYS = {"jit_compile", "is_legacy_optimizer", "mesh"}
# Layers Keras 3 serializes without a `build_config` (they have no `build` of their own).
_NO_BUILD_CONFIG = {"InputLayer", "Dropout", "Activation", "ReLU", "Softmax", "MaxPooling2D", "MaxPool2D",
                    "AveragePooling2D", "AvgPool2D"}


def supported() -> list:
    """Every class name a config may use."""
    return registry.names("layers") + list(model_config.MODEL_CLASSES)


class ConfigError(ValueError):
    """A config names something rconv cannot (or will not) build."""


# What building from a config of odd types or values can raise; loaders turn these into ConfigError.
CONFIG_EXCEPTIONS = (ValueError, TypeError, NotImplementedError, AttributeError, KeyError, IndexError,
                     ArithmeticError)


# --- layers ------------------------------------------------------------------------------------------
def unsupported(class_name, where="") -> ConfigError:
    return ConfigError(f"{where}Unsupported layer class {class_name!r}; rconv can load: {', '.join(supported())}")


def check_origin(entry: dict, where: str) -> None:
    """Refuse objects that come from outside Keras (custom modules / registered names)."""
    module = entry.get("module")
    registered = entry.get("registered_name")
    class_name = entry.get("class_name")
    if module is not None and not str(module).startswith(("keras", "tf_keras")):
        raise ConfigError(f"{where}Layer {class_name!r} comes from module {module!r}, not Keras; rconv only "
                          f"loads built-in classes: {', '.join(supported())}")
    if registered not in (None, class_name):
        raise ConfigError(f"{where}Custom registered object {registered!r} is not supported; rconv can load: "
                          f"{', '.join(supported())}")


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
    for key in config:
        if key.endswith("_initializer"):  # kernel_, bias_, depthwise_, pointwise_, gamma_, alpha_, ...
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
    """One layer or nested model from its serialized form {"class_name", "config", ...}
    (Keras's `deserialize_keras_object`)."""
    if not isinstance(entry, dict) or "class_name" not in entry:
        raise ConfigError(f"{where}Invalid layer entry (expected a dict with 'class_name'): {entry!r:.200}")
    class_name = entry["class_name"]
    if not isinstance(class_name, str):
        raise ConfigError(f"{where}Invalid class_name {class_name!r:.200}")
    if class_name in model_config.MODEL_CLASSES:
        return model_config.model_from_config(entry, where=where)
    if entry.get("module") == tensor_ops.KERAS_OPS_MODULE:  # an operation on tensors, e.g. `x[:, 1:3]`, `x + 1`
        try:
            return tensor_ops.op_from_entry(entry, where)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    cls = registry.find("layers", class_name)
    if cls is None:
        raise unsupported(class_name, where)
    check_origin(entry, where)
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{where}Layer {class_name!r}: config must be a dict, got {type(config).__name__}")
    name = config.get("name", "?")
    try:
        return cls.from_config(_clean_layer_config(class_name, config))
    except CONFIG_EXCEPTIONS as exc:
        raise ConfigError(f"{where}Cannot build layer {name!r} ({class_name}) from its config: {exc}") from exc


def layer_to_config(layer, legacy: bool = False) -> dict:
    """Keras 3's serialized layer (module/class_name/config/registered_name/build_config), or a nested
    model's entry; `legacy` gives the Keras 2 / tf.keras form used in .h5 files (no module,
    `batch_input_shape`, str dtype)."""
    if isinstance(layer, tensor_ops.TensorOp):
        return layer.keras_entry()
    if model_config.model_class_name(layer) is not None:
        if legacy:
            return model_config.model_to_config(layer, legacy=True)
        return model_config.nested_entry(layer)
    class_name = registry.name_of("layers", type(layer), None)
    if class_name is None:
        raise ConfigError(f"Cannot save layer {layer.name!r}: unsupported class {type(layer).__name__!r}; rconv "
                          f"can save: {', '.join(supported())}")
    config = layer.get_config()
    if legacy:
        return {"class_name": class_name, "config": legacy_layer_config(class_name, config)}
    entry = {"module": "keras.layers", "class_name": class_name, "config": config, "registered_name": None}
    shape = layer._build_input_shape
    if shape is not None and class_name not in _NO_BUILD_CONFIG:
        entry["build_config"] = {"input_shape": [list(s) for s in shape] if isinstance(shape, list) else list(shape)}
    return entry


def legacy_layer_config(class_name: str, config: dict) -> dict:
    config = dict(config)
    if class_name == "InputLayer":
        config["batch_input_shape"] = list(config.pop("batch_shape"))
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
    return config


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()  # NumPy scalars
    return value


# --- compile configs ---------------------------------------------------------------------------------
def _serialize_fn_or_obj(obj, module: str):
    if isinstance(obj, str):
        return obj
    if callable(obj) and not hasattr(obj, "get_config"):
        return {"module": module, "class_name": "function", "config": obj.__name__,
                "registered_name": obj.__name__}
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": None}


def _loss_entry(spec):
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, (list, tuple)):
        return [_loss_entry(s) for s in spec]
    if isinstance(spec, dict):
        return {k: _loss_entry(v) for k, v in spec.items()}
    loss = losses.get(spec)
    by_name = registry.find("losses", loss.name)
    plain = by_name is not None and type(loss) is by_name and loss.get_config() == by_name(name=loss.name).get_config()
    return loss.name if plain else losses.serialize(loss)


def _metric_entries(spec):
    if isinstance(spec, dict):
        return {k: _metric_entries(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [_metric_entries(m) for m in spec]
    return None if spec is None else _serialize_fn_or_obj(spec, "keras.metrics")


def compile_config(model) -> dict:
    """Keras 3's `compile_config` (losses, loss weights and metrics keep the structure given to compile)."""
    spec = model.compile_spec
    loss_spec, metric_spec, weights = spec["loss"], spec["metrics"], spec["loss_weights"]
    return jsonable({"optimizer": optimizers.serialize(model.optimizer), "loss": _loss_entry(loss_spec),
                     "loss_weights": weights, "metrics": _metric_entries(metric_spec) or None,
                     "weighted_metrics": _metric_entries(spec.get("weighted_metrics")) or None,
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
    if isinstance(entry, list):
        return [None if e is None else loss_from_config(e) for e in entry]
    if isinstance(entry, dict) and "class_name" not in entry:
        return {k: None if v is None else loss_from_config(v) for k, v in entry.items()}
    entry = _name_of(entry)
    if isinstance(entry, dict):
        cfg = dict(entry.get("config") or {})
        if isinstance(cfg.get("dtype"), dict):
            cfg["dtype"] = None
        entry = {"class_name": entry.get("class_name"), "config": cfg}
    return losses.get(entry)


def metrics_from_config(entries):
    """Metric entries -> the structure compile takes (a list, a list per output, or a dict by output)."""
    if entries is None:
        return []
    if isinstance(entries, dict):
        return {k: metrics_from_config(v if isinstance(v, list) else [v]) for k, v in entries.items()}
    out = []
    for item in entries:
        if isinstance(item, list):  # one list per output
            out.append(metrics_from_config(item))
            continue
        if item is None:
            out.append(None)
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
                cls = registry.get("metrics", item["class_name"])
                config = {k: v for k, v in cfg.items() if k != "dtype" or not isinstance(v, dict)}
                item = cls.from_config(config)  # thresholds, num_thresholds, num_classes, ... come back too
            else:
                raise ConfigError(f"Unsupported metric {item.get('class_name')!r}")
        out.append(item)
    return out


def compile_from_config(model, config: dict, legacy: bool = False) -> None:
    """`model.compile(...)` from a Keras 3 compile_config or a legacy training_config."""
    if not isinstance(config, dict):
        raise ConfigError(f"Invalid training config: {config!r:.200}")
    opt_entry = config.get("optimizer_config") if legacy else config.get("optimizer")
    if opt_entry is None:
        opt_entry = config.get("optimizer") or config.get("optimizer_config")
    loss = config.get("loss")
    if loss is None:
        raise ConfigError("The training config has no loss")
    metric_spec, weighted_spec = (_single_output_metrics(model, metrics_from_config(config.get(key)))
                                  for key in ("metrics", "weighted_metrics"))
    loss = loss_from_config(loss)
    if len(model.outputs) == 1 and isinstance(loss, list) and len(loss) == 1:
        loss = loss[0]
    model.compile(optimizer=optimizer_from_config(opt_entry), loss=loss, metrics=metric_spec,
                  loss_weights=config.get("loss_weights"), weighted_metrics=weighted_spec or None)


def _single_output_metrics(model, metric_spec):
    if len(model.outputs) == 1 and isinstance(metric_spec, list) and metric_spec and \
            all(isinstance(m, list) for m in metric_spec):  # tf.keras nests one list per output
        return [m for ms in metric_spec for m in ms]
    return metric_spec


def serialize_keras_object(obj) -> dict:
    """Keras's name for the one serializer (layers and models)."""
    return layer_to_config(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True):
    """Keras's name for the one deserializer (layers and models; only registered classes)."""
    if custom_objects:
        raise ValueError("rconv does not load custom objects; only built-in classes are supported")
    return layer_from_config(config)


__all__ = ["ConfigError", "supported", "layer_from_config", "layer_to_config", "compile_config",
           "compile_from_config", "legacy_training_config", "serialize_keras_object", "deserialize_keras_object"]

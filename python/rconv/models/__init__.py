"""Models: `Model` (compile/fit/evaluate/predict) and `Sequential`."""
import json

from .. import saving
from .functional import Functional
from .model import Model
from .sequential import Sequential


def model_from_json(json_string, custom_objects=None):
    """`keras.models.model_from_json`: a model (uncompiled, fresh weights) from `Model.to_json()`."""
    if custom_objects:
        raise ValueError("rconv does not load custom objects; only built-in classes are supported")
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_from_json: not a JSON model config: {exc}") from exc
    return saving.model_from_config(config)


def load_model(filepath, compile=True, custom_objects=None, safe_mode=True):
    """`keras.models.load_model`: see `rconv.saving.load_model`."""
    return saving.load_model(filepath, compile=compile, custom_objects=custom_objects, safe_mode=safe_mode)


__all__ = ["Model", "Functional", "Sequential", "load_model", "model_from_json"]

"""Losses: the Keras 3 loss classes, their string aliases and function forms, over the Rust loss kernels.

Each loss gives `value_and_grad(y_true, y_pred, sample_weight=None) -> (reduced loss, d loss / d y_pred)`
with Keras 3's reductions and sample weights (see `loss.py`); `__call__` gives the value, and the
function forms (`losses.mean_squared_error(y, p)`) give per-sample values. Targets are validated and
converted once per `fit`/`evaluate` by `prepare_targets`, not per batch.
"""
from __future__ import annotations

from .. import registry
from .loss import REDUCTIONS, Loss, squeeze_or_expand_shapes, standardize_reduction
from .losses import *  # noqa: F401,F403
from .losses import BY_FUNCTION as _BY_FUNCTION
from .losses import __all__ as _classes_and_functions

__all__ = ["Loss", "REDUCTIONS", "get", "serialize", "deserialize", "standardize_reduction",
           "squeeze_or_expand_shapes", *_classes_and_functions]


def get(identifier) -> Loss:
    """A Loss from an instance, a name ('categorical_crossentropy', 'mse', 'BinaryCrossentropy'),
    one of this module's functions, a class, or a serialized config dict."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = registry.get("losses", identifier)
        loss = cls()
        if identifier != cls.__name__:  # 'mse' keeps its spelling; 'MeanSquaredError' its default name
            loss.name = identifier
        return loss
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    raise TypeError(f"Could not interpret loss identifier: {identifier!r} (custom loss callables need a "
                    "gradient; subclass rconv.losses.Loss and implement value_and_grad)")


def serialize(loss: Loss) -> dict:
    return {"module": "keras.losses", "class_name": registry.name_of("losses", type(loss), type(loss).__name__),
            "config": loss.get_config(), "registered_name": None}


def deserialize(config: dict) -> Loss:
    """A Loss from Keras's serialized form {"class_name": ..., "config": {...}}."""
    return registry.get("losses", config.get("class_name")).from_config(config.get("config", {}))

"""Optimizers with Keras 3's names, defaults, configs and slot variables; the update math runs in Rust
(`rconv.ops.*_update`). `base.Optimizer` does what every Keras optimizer step does (clipping, weight decay,
constraints, moving averages); `algorithms` holds the optimizers; `schedules` the learning-rate schedules
(`rconv.optimizers.schedules.ExponentialDecay`, ...)."""
from __future__ import annotations

from .. import registry
from . import schedules
from .algorithms import *  # noqa: F403
from .algorithms import __all__ as _algorithms
from .base import Optimizer

__all__ = ["Optimizer", *_algorithms, "schedules", "get", "serialize", "deserialize"]


def get(identifier) -> Optimizer | None:
    """An Optimizer from an instance, a name ('sgd', 'adamw', ..., case-insensitive), a class or a serialized
    config dict (None stays None, as in Keras)."""
    if identifier is None:
        return None
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):  # the "optimizers" registry matches names case-insensitively
        return registry.get("optimizers", identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer: Optimizer) -> dict:
    class_name = registry.name_of("optimizers", type(optimizer), type(optimizer).__name__)
    return {"module": "keras.optimizers", "class_name": class_name, "config": optimizer.get_config(),
            "registered_name": None}


def deserialize(config: dict) -> Optimizer:
    """An Optimizer from Keras's serialized form {"class_name": ..., "config": {...}}."""
    return registry.get("optimizers", config.get("class_name")).from_config(config.get("config", {}))

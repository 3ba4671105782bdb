"""Metrics: stateful running values like Keras 3 (sample-weighted over every batch seen).

'accuracy'/'acc' resolve like Keras 3 (`compile_utils.get_metric`): binary for a 1-unit output,
sparse-categorical when targets are class ids, categorical otherwise.
"""
from __future__ import annotations

from .. import registry
from .accuracy import *  # noqa: F401,F403
from .accuracy import FUNCTIONS as _ACCURACY_FUNCTIONS
from .accuracy import BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy
from .accuracy import __all__ as _accuracy_all
from .base import Mean, MeanMetricWrapper, Metric, Sum, reduce_to_samplewise_values
from .confusion import *  # noqa: F401,F403
from .confusion import __all__ as _confusion_all
from .iou_fscore import *  # noqa: F401,F403
from .iou_fscore import __all__ as _iou_all
from .regression import *  # noqa: F401,F403
from .regression import FUNCTIONS as _REGRESSION_FUNCTIONS
from .regression import __all__ as _regression_all

registry.register("metrics", "Mean", "mean")(Mean)
registry.register("metrics", "Sum", "sum")(Sum)

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "reduce_to_samplewise_values", "get", "serialize",
           "deserialize", *_accuracy_all, *_confusion_all, *_iou_all, *_regression_all]

_BY_FUNCTION = {**_ACCURACY_FUNCTIONS, **_REGRESSION_FUNCTIONS}


def get(identifier, y_true_shape=None, y_pred_shape=None) -> Metric:
    """A Metric from a name, class, instance, function or config dict; 'accuracy'/'acc' need the target
    and output shapes to pick the right accuracy (Keras's rule)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        t_rank, p_rank = len(y_true_shape), len(y_pred_shape)
        if y_pred_shape[-1] == 1:
            cls = BinaryAccuracy
        elif t_rank < p_rank or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
            cls = SparseCategoricalAccuracy
        else:
            cls = CategoricalAccuracy
        return cls(name=identifier)
    if isinstance(identifier, str):
        cls = registry.get("metrics", identifier)
        try:
            metric = cls()
        except TypeError as e:
            raise TypeError(f"Metric {identifier!r} needs arguments ({e}); pass an instance, e.g. "
                            f"metrics.{cls.__name__}(...)") from None
        metric.name = identifier
        return metric
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"Could not interpret metric identifier: {identifier!r}")


def serialize(metric: Metric) -> dict:
    return {"module": "keras.metrics", "class_name": registry.name_of("metrics", type(metric), type(metric).__name__),
            "config": metric.get_config(), "registered_name": None}


def deserialize(config: dict) -> Metric:
    """A Metric from Keras's serialized form {"class_name": ..., "config": {...}}."""
    return registry.get("metrics", config.get("class_name")).from_config(config.get("config", {}))

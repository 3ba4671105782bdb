"""Metric versions of the losses (Keras 3's regression, hinge and probabilistic metrics): running
sample-weighted means of the per-sample loss values (computed by the Rust loss kernel), plus
RootMeanSquaredError and CosineSimilarity."""
from __future__ import annotations

import numpy as np

from .. import losses, registry
from .base import Mean, MeanMetricWrapper, align


class _LossMetric(MeanMetricWrapper):
    """Mean of a loss's per-sample values; `_config_keys` are its arguments kept in the config."""
    _direction = "down"
    _config_keys: tuple = ()

    def __init__(self, fn, name, dtype=None, **kwargs):
        super().__init__(fn, name, dtype, **kwargs)
        for key in self._config_keys:
            setattr(self, key, kwargs[key])

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **{k: getattr(self, k) for k in self._config_keys}}


def _loss_metric(class_name, fn, default_name, *aliases, direction="down"):
    def __init__(self, name=default_name, dtype=None):
        _LossMetric.__init__(self, fn, name, dtype)

    cls = type(class_name, (_LossMetric,), {"__init__": __init__, "_direction": direction, "__module__": __name__,
                                            "__doc__": f"Keras's `metrics.{class_name}`: the mean of `{fn.__name__}`."})
    return registry.register("metrics", class_name, *aliases)(cls)


MeanSquaredError = _loss_metric("MeanSquaredError", losses.mean_squared_error, "mean_squared_error",
                                "mean_squared_error", "mse", "MSE")
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", losses.mean_absolute_error, "mean_absolute_error",
                                 "mean_absolute_error", "mae", "MAE")
MeanAbsolutePercentageError = _loss_metric("MeanAbsolutePercentageError", losses.mean_absolute_percentage_error,
                                           "mean_absolute_percentage_error", "mean_absolute_percentage_error",
                                           "mape", "MAPE")
MeanSquaredLogarithmicError = _loss_metric("MeanSquaredLogarithmicError", losses.mean_squared_logarithmic_error,
                                           "mean_squared_logarithmic_error", "mean_squared_logarithmic_error",
                                           "msle", "MSLE")
LogCoshError = _loss_metric("LogCoshError", losses.log_cosh, "logcosh", "log_cosh_error", "logcosh")
Hinge = _loss_metric("Hinge", losses.hinge, "hinge", "hinge")
SquaredHinge = _loss_metric("SquaredHinge", losses.squared_hinge, "squared_hinge", "squared_hinge")
CategoricalHinge = _loss_metric("CategoricalHinge", losses.categorical_hinge, "categorical_hinge", "categorical_hinge")
KLDivergence = _loss_metric("KLDivergence", losses.kl_divergence, "kl_divergence", "kl_divergence", direction=None)
Poisson = _loss_metric("Poisson", losses.poisson, "poisson", "poisson", direction=None)


def cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine of the angle between targets and predictions along `axis` (positive, unlike the loss)."""
    return -losses.cosine_similarity(y_true, y_pred, axis=axis)


@registry.register("metrics", "CosineSimilarity", "cosine_similarity")
class CosineSimilarity(_LossMetric):
    _direction = "up"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(cosine_similarity, name, dtype, axis=axis)  # Keras leaves `axis` out of the config


@registry.register("metrics", "BinaryCrossentropy", "binary_crossentropy", "bce", "BCE")
class BinaryCrossentropy(_LossMetric):
    _config_keys = ("from_logits", "label_smoothing")

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(losses.binary_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)


@registry.register("metrics", "CategoricalCrossentropy", "categorical_crossentropy")
class CategoricalCrossentropy(_LossMetric):
    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        super().__init__(losses.categorical_crossentropy, name, dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


@registry.register("metrics", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(_LossMetric):
    """Entries whose target is `ignore_class` add 0; with sample weights they are also left out of the count."""
    _config_keys = ("from_logits", "ignore_class", "axis")

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        super().__init__(losses.sparse_categorical_crossentropy, name, dtype, from_logits=from_logits,
                         ignore_class=ignore_class, axis=axis)

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        if self.ignore_class is not None and sample_weight is not None:
            # Keras 3.15 applies the mask only to given weights: unweighted, ignored entries count as 0s
            mask = (np.asarray(y_true).reshape(values.shape) != self.ignore_class).astype(np.float64)
            m, w = align(mask, sample_weight)
            sample_weight = m * w
        Mean.update_state(self, values, sample_weight)


@registry.register("metrics", "RootMeanSquaredError", "root_mean_squared_error")
class RootMeanSquaredError(Mean):
    _direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name, dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = align(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
        super().update_state((y_pred - y_true) ** 2, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


FUNCTIONS = {losses.mean_squared_error: MeanSquaredError, losses.mean_absolute_error: MeanAbsoluteError,
             losses.mean_absolute_percentage_error: MeanAbsolutePercentageError,
             losses.mean_squared_logarithmic_error: MeanSquaredLogarithmicError, losses.log_cosh: LogCoshError,
             losses.hinge: Hinge, losses.squared_hinge: SquaredHinge, losses.categorical_hinge: CategoricalHinge,
             losses.kl_divergence: KLDivergence, losses.poisson: Poisson, cosine_similarity: CosineSimilarity,
             losses.binary_crossentropy: BinaryCrossentropy, losses.categorical_crossentropy: CategoricalCrossentropy,
             losses.sparse_categorical_crossentropy: SparseCategoricalCrossentropy}

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
           "LogCoshError", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson", "CosineSimilarity",
           "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "RootMeanSquaredError",
           "cosine_similarity"]

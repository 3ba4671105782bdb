"""Losses: Keras names and classes over the fused `ops` loss kernels.

Each loss gives `value_and_grad(y_true, y_pred) -> (mean loss, dL/dy_pred)`. Cross-entropies
on probabilities also name the activation they can fuse with (`fuses_with`): when the model's last
layer applies it, training skips that activation and calls `fused_value_and_grad` on the logits,
as Keras's TensorFlow backend does — more stable and cheaper.

Targets are validated and converted once per `fit`/`evaluate` by `prepare_targets`, not per batch.
"""
from __future__ import annotations

import numpy as np

from . import ops, registry


def _as_2d(pred, labels):
    """CE kernels take (rows, classes); outputs of higher rank (e.g. per-pixel) are flattened."""
    if pred.ndim == 2:
        return pred, labels
    c = pred.shape[-1]
    return pred.reshape(-1, c), labels.reshape(-1) if labels.ndim == pred.ndim - 1 else labels.reshape(-1, c)


class Loss:
    fuses_with = None  # activation name whose logits `fused_value_and_grad` accepts

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in ("sum_over_batch_size", "auto", None):
            raise NotImplementedError(f"{type(self).__name__}: only reduction='sum_over_batch_size' is supported")
        self.name = name
        self.reduction = "sum_over_batch_size"

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Mean loss over the batch (Keras's default reduction)."""
        if sample_weight is not None:
            raise NotImplementedError("sample_weight is not supported yet")
        y_pred = np.asarray(y_pred, np.float32)
        return self.value_and_grad(self.prepare_targets(y_true, y_pred.shape), y_pred)[0]

    def value_and_grad(self, y_true, y_pred):
        raise NotImplementedError

    def fused_value_and_grad(self, y_true, logits):
        raise NotImplementedError(f"{type(self).__name__} does not fuse with an activation")

    def prepare_targets(self, y_true, pred_shape, where: str = "") -> np.ndarray:
        """Validate targets against the model's output shape and convert them once (float32)."""
        y = np.asarray(y_true)
        pred_shape = tuple(pred_shape)
        if y.shape[1:] != pred_shape[1:]:
            if y.ndim == len(pred_shape) - 1 and y.shape[1:] == pred_shape[1:-1] and pred_shape[-1] == 1:
                y = y.reshape(y.shape + (1,))  # (n,) targets for a 1-unit output
            else:
                raise ValueError(f"{where}Loss '{self.name}' expects targets of shape "
                                 f"{(None,) + pred_shape[1:]} to match the model output, "
                                 f"but received targets of shape {y.shape}")
        return np.ascontiguousarray(y, dtype=np.float32)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register("losses", "CategoricalCrossentropy", "categorical_crossentropy")
class CategoricalCrossentropy(Loss):
    """One-hot (or soft) targets of the output's shape."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction)
        if label_smoothing or axis != -1:
            raise NotImplementedError(f"{type(self).__name__}: label_smoothing and axis != -1 not supported")
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis
        self.fuses_with = None if self.from_logits else "softmax"

    def prepare_targets(self, y_true, pred_shape, where=""):
        y = np.asarray(y_true)
        pred_shape = tuple(pred_shape)
        looks_sparse = y.shape[1:] == pred_shape[1:-1] or (y.shape[1:] == pred_shape[1:-1] + (1,)
                                                           and pred_shape[-1] > 1)
        if y.shape[1:] != pred_shape[1:] and looks_sparse:
            raise ValueError(
                f"{where}Loss '{self.name}' expects one-hot targets of shape {(None,) + pred_shape[1:]}, "
                f"but received targets of shape {y.shape}, which look like integer class ids. Use "
                "loss='sparse_categorical_crossentropy', or one-hot encode the labels with "
                "`rconv.utils.to_categorical(labels)`.")
        return super().prepare_targets(y, pred_shape, where)

    def value_and_grad(self, y_true, y_pred):
        pred, labels = _as_2d(y_pred, y_true)
        fn = ops.softmax_cross_entropy if self.from_logits else ops.categorical_cross_entropy
        loss, grad = fn(pred, labels)
        return loss, grad.reshape(y_pred.shape)

    def fused_value_and_grad(self, y_true, logits):
        pred, labels = _as_2d(logits, y_true)
        loss, grad = ops.softmax_cross_entropy(pred, labels)
        return loss, grad.reshape(logits.shape)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


@registry.register("losses", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Integer class-id targets: shape (n,) or (n, 1) for an (n, classes) output."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None:
            raise NotImplementedError("SparseCategoricalCrossentropy: ignore_class is not supported")
        super().__init__(from_logits=from_logits, reduction=reduction, name=name)
        self.ignore_class = None

    def prepare_targets(self, y_true, pred_shape, where=""):
        y = np.asarray(y_true)
        pred_shape = tuple(pred_shape)
        classes = pred_shape[-1]
        if y.ndim == len(pred_shape) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        if y.shape[1:] != pred_shape[1:-1]:
            hint = (" These look like one-hot targets: use loss='categorical_crossentropy'."
                    if y.shape[1:] == pred_shape[1:] else "")
            raise ValueError(f"{where}Loss '{self.name}' expects integer class ids of shape "
                             f"{(None,) + pred_shape[1:-1]} (or with a trailing 1) for a model output of "
                             f"shape {(None,) + pred_shape[1:]}, but received targets of shape "
                             f"{np.asarray(y_true).shape}.{hint}")
        if y.dtype.kind == "f":
            if not np.all(np.mod(y, 1) == 0):
                raise ValueError(f"{where}Loss '{self.name}' expects integer class ids, got non-integer values")
        ids = np.ascontiguousarray(y, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= classes):
            raise ValueError(f"{where}Loss '{self.name}': class ids must be in [0, {classes}) for a "
                             f"{classes}-unit output, got values in [{ids.min()}, {ids.max()}]")
        return ids

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}


@registry.register("losses", "BinaryCrossentropy", "binary_crossentropy")
class BinaryCrossentropy(Loss):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction)
        if label_smoothing or axis != -1:
            raise NotImplementedError("BinaryCrossentropy: label_smoothing and axis != -1 not supported")
        self.from_logits, self.label_smoothing, self.axis = bool(from_logits), label_smoothing, axis
        self.fuses_with = None if self.from_logits else "sigmoid"

    def value_and_grad(self, y_true, y_pred):
        fn = ops.sigmoid_cross_entropy if self.from_logits else ops.binary_cross_entropy
        return fn(y_pred, y_true)

    def fused_value_and_grad(self, y_true, logits):
        return ops.sigmoid_cross_entropy(logits, y_true)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


@registry.register("losses", "MeanSquaredError", "mean_squared_error", "mse")
class MeanSquaredError(Loss):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction)

    def value_and_grad(self, y_true, y_pred):
        return ops.mean_squared_error(y_pred, y_true)


# Function forms. Unlike Keras (per-sample values) they return the batch mean: the kernels reduce.
def categorical_crossentropy(y_true, y_pred, from_logits=False):
    return CategoricalCrossentropy(from_logits=from_logits)(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    return SparseCategoricalCrossentropy(from_logits=from_logits)(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    return BinaryCrossentropy(from_logits=from_logits)(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return MeanSquaredError()(y_true, y_pred)


mse = MSE = mean_squared_error

_BY_FUNCTION = {categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError}


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
    if identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    raise TypeError(f"Could not interpret loss identifier: {identifier!r} (custom loss callables need a "
                    "gradient; subclass rconv.losses.Loss and implement value_and_grad)")


def serialize(loss: Loss) -> dict:
    return {"module": "keras.losses", "class_name": registry.name_of("losses", type(loss), type(loss).__name__),
            "config": loss.get_config(), "registered_name": None}


def deserialize(config: dict) -> Loss:
    """A Loss from Keras's serialized form {"class_name": ..., "config": {...}}."""
    return registry.get("losses", config.get("class_name")).from_config(config.get("config", {}))

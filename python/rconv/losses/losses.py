"""The Keras 3 loss classes and their function forms (per-sample values, like Keras).

Cross-entropies on probabilities name the activation they fuse with (`fuses_with`): when the model's
last layer applies it, training skips that activation and calls `fused_value_and_grad` on the logits,
as Keras's TensorFlow backend does — more stable and cheaper.
"""
from __future__ import annotations

import numpy as np

from .. import registry
from .loss import Loss


def _check_axis(cls_name, axis, allow_tuple=False):
    if isinstance(axis, bool) or not (isinstance(axis, (int, np.integer)) or axis is None and allow_tuple
                                      or allow_tuple and isinstance(axis, (tuple, list))):
        kinds = "`int`, a tuple of ints or None" if allow_tuple else "`int`"
        raise ValueError(f"{cls_name}: `axis` must be of type {kinds}. Received: axis={axis!r} of type {type(axis)}")
    return tuple(int(a) for a in axis) if isinstance(axis, (tuple, list)) else axis


class _AxisLoss(Loss):
    """A loss reducing `self.axis` (an int) rather than the last axis."""
    axis = -1

    def _axes(self, ndim):
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Loss '{self.name}': axis {self.axis} is out of range for predictions of rank {ndim}")
        return (self.axis % ndim,)


def _simple(class_name, kind, default_name, *aliases):
    """A parameterless loss class over the last axis (MeanSquaredError, Hinge, ...)."""
    def __init__(self, reduction="sum_over_batch_size", name=default_name, dtype=None):
        Loss.__init__(self, name, reduction, dtype)

    cls = type(class_name, (Loss,), {"kind": kind, "__init__": __init__, "__module__": __name__,
                                     "__doc__": f"Keras's `{class_name}` (`losses.{kind}` per sample)."})
    return registry.register("losses", class_name, kind, *aliases)(cls)


MeanSquaredError = _simple("MeanSquaredError", "mean_squared_error", "mean_squared_error", "mse", "MSE")
MeanAbsoluteError = _simple("MeanAbsoluteError", "mean_absolute_error", "mean_absolute_error", "mae", "MAE")
MeanAbsolutePercentageError = _simple("MeanAbsolutePercentageError", "mean_absolute_percentage_error",
                                      "mean_absolute_percentage_error", "mape", "MAPE")
MeanSquaredLogarithmicError = _simple("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
                                      "mean_squared_logarithmic_error", "msle", "MSLE")
LogCosh = _simple("LogCosh", "log_cosh", "log_cosh", "logcosh")
Hinge = _simple("Hinge", "hinge", "hinge")
SquaredHinge = _simple("SquaredHinge", "squared_hinge", "squared_hinge")
CategoricalHinge = _simple("CategoricalHinge", "categorical_hinge", "categorical_hinge")
KLDivergence = _simple("KLDivergence", "kl_divergence", "kl_divergence", "kld", "KLD")
Poisson = _simple("Poisson", "poisson", "poisson")


@registry.register("losses", "Huber", "huber")
class Huber(Loss):
    kind = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(name, reduction, dtype)
        self.delta = float(delta)

    def _params(self):
        return {"delta": self.delta}

    def get_config(self):  # Keras 3.15 leaves `delta` out (it is lost on reload); rconv keeps it
        return {**super().get_config(), "delta": self.delta}


@registry.register("losses", "CosineSimilarity", "cosine_similarity")
class CosineSimilarity(_AxisLoss):
    kind = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(name, reduction, dtype)
        self.axis = _check_axis("CosineSimilarity", axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _CrossEntropy(_AxisLoss):
    """Shared by the (focal) cross-entropies: from_logits, label_smoothing, axis."""
    _activation = None  # what probabilities come from; the fused path takes its logits

    def __init__(self, from_logits, label_smoothing, axis, reduction, name, dtype):
        super().__init__(name, reduction, dtype)
        if not 0 <= float(label_smoothing) <= 1:
            raise ValueError(f"{type(self).__name__}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.from_logits, self.label_smoothing = bool(from_logits), label_smoothing
        self.axis = _check_axis(type(self).__name__, axis)
        self.fuses_with = None if self.from_logits or self.axis != -1 else self._activation

    def _params(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


@registry.register("losses", "BinaryCrossentropy", "binary_crossentropy", "bce", "BCE")
class BinaryCrossentropy(_CrossEntropy):
    kind, _activation = "binary_crossentropy", "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)


@registry.register("losses", "BinaryFocalCrossentropy", "binary_focal_crossentropy")
class BinaryFocalCrossentropy(_CrossEntropy):
    kind = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.apply_class_balancing, self.alpha, self.gamma = bool(apply_class_balancing), alpha, gamma

    def _params(self):
        return {**super()._params(), "alpha": self.alpha, "gamma": self.gamma,
                "apply_class_balancing": self.apply_class_balancing}

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing,
                "alpha": self.alpha, "gamma": self.gamma}


def _one_hot_targets(loss, y_true, pred_shape, where):
    """`Loss.prepare_targets`, refusing class ids with a hint to the sparse loss."""
    y, pred_shape = np.asarray(y_true), tuple(pred_shape)
    looks_sparse = y.shape[1:] == pred_shape[1:-1] or (y.shape[1:] == pred_shape[1:-1] + (1,) and pred_shape[-1] > 1)
    if y.shape[1:] != pred_shape[1:] and looks_sparse:
        raise ValueError(
            f"{where}Loss '{loss.name}' expects one-hot targets of shape {(None,) + pred_shape[1:]}, "
            f"but received targets of shape {y.shape}, which look like integer class ids. Use "
            "loss='sparse_categorical_crossentropy', or one-hot encode the labels with "
            "`rconv.utils.to_categorical(labels)`.")
    return Loss.prepare_targets(loss, y, pred_shape, where)


@registry.register("losses", "CategoricalCrossentropy", "categorical_crossentropy")
class CategoricalCrossentropy(_CrossEntropy):
    """One-hot (or soft) targets of the output's shape."""
    kind, _activation = "categorical_crossentropy", "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def prepare_targets(self, y_true, pred_shape, where=""):
        return _one_hot_targets(self, y_true, pred_shape, where)


@registry.register("losses", "CategoricalFocalCrossentropy", "categorical_focal_crossentropy")
class CategoricalFocalCrossentropy(_CrossEntropy):
    kind = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        self.alpha, self.gamma = alpha, gamma

    def _params(self):
        return {**super()._params(), "alpha": self.alpha, "gamma": self.gamma}

    def prepare_targets(self, y_true, pred_shape, where=""):
        return _one_hot_targets(self, y_true, pred_shape, where)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


@registry.register("losses", "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss):
    """Integer class-id targets: shape (n,) or (n, 1) for an (n, classes) output. Targets equal to
    `ignore_class` contribute nothing and are left out of the mean (Keras's mask)."""
    kind, fuses_with = "sparse_categorical_crossentropy", "softmax"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if axis not in (-1, None) and not isinstance(axis, bool):
            raise ValueError(f"SparseCategoricalCrossentropy: only axis=-1 is supported. Received: axis={axis!r}")
        if ignore_class is not None and (isinstance(ignore_class, bool) or int(ignore_class) != ignore_class):
            raise ValueError(f"SparseCategoricalCrossentropy: ignore_class must be an int, got {ignore_class!r}")
        self.from_logits, self.ignore_class = bool(from_logits), None if ignore_class is None else int(ignore_class)
        self.fuses_with = None if self.from_logits else "softmax"

    def _params(self):
        return {"from_logits": self.from_logits, "ignore_class": self.ignore_class}

    def _mask(self, y, values_shape):
        return None if self.ignore_class is None else np.asarray(y).reshape(values_shape) != self.ignore_class

    def _align(self, y_true, y_pred):
        return self._ids(y_true, y_pred.shape, "", strict=False), y_pred

    def prepare_targets(self, y_true, pred_shape, where=""):
        return self._ids(y_true, tuple(pred_shape), where, strict=True)

    def _ids(self, y_true, pred_shape, where, strict):
        y = np.asarray(y_true)
        classes = pred_shape[-1]
        if y.ndim == len(pred_shape) and y.shape[-1] == 1:
            y = y.reshape(y.shape[:-1])
        ok = y.shape[1:] == pred_shape[1:-1] if strict else y.shape == pred_shape[:-1]
        if not ok:
            hint = (" These look like one-hot targets: use loss='categorical_crossentropy'."
                    if np.shape(y_true)[1:] == pred_shape[1:] else "")
            raise ValueError(f"{where}Loss '{self.name}' expects integer class ids of shape "
                             f"{(None,) + pred_shape[1:-1]} (or with a trailing 1) for a model output of "
                             f"shape {(None,) + pred_shape[1:]}, but received targets of shape "
                             f"{np.shape(y_true)}.{hint}")
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise ValueError(f"{where}Loss '{self.name}' expects integer class ids, got non-integer values")
        ids = np.ascontiguousarray(y, dtype=np.int64)
        bad = (ids < 0) | (ids >= classes)
        if self.ignore_class is not None:
            bad &= ids != self.ignore_class
        if bad.any():
            raise ValueError(f"{where}Loss '{self.name}': class ids must be in [0, {classes}) for a "
                             f"{classes}-unit output, got values in [{ids.min()}, {ids.max()}]")
        return ids

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


class _OverlapLoss(Loss):
    """Dice and Tversky: one value over `axis` (None: the whole batch gives one number)."""

    def _axes(self, ndim):
        if self.axis is None:
            return tuple(range(ndim))
        axes = (self.axis,) if isinstance(self.axis, int) else self.axis
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"Loss '{self.name}': axis {self.axis} is out of range for predictions of rank {ndim}")
        return tuple(sorted({a % ndim for a in axes}))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@registry.register("losses", "Dice", "dice")
class Dice(_OverlapLoss):
    kind = "dice"

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(name, reduction, dtype)
        self.axis = _check_axis("Dice", axis, allow_tuple=True)


@registry.register("losses", "Tversky", "tversky")
class Tversky(_OverlapLoss):
    kind = "tversky"

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None, dtype=None):
        super().__init__(name, reduction, dtype)
        self.alpha, self.beta = alpha, beta
        self.axis = _check_axis("Tversky", axis, allow_tuple=True)

    def _params(self):
        return {"alpha": self.alpha, "beta": self.beta}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


# --- function forms: per-sample values, like Keras's `keras.losses.<function>` ---------------------------
def _per_sample(cls, y_true, y_pred, **kwargs):
    return cls(reduction=None, **kwargs)(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    return _per_sample(MeanSquaredError, y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return _per_sample(MeanAbsoluteError, y_true, y_pred)


def mean_absolute_percentage_error(y_true, y_pred):
    return _per_sample(MeanAbsolutePercentageError, y_true, y_pred)


def mean_squared_logarithmic_error(y_true, y_pred):
    return _per_sample(MeanSquaredLogarithmicError, y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    return _per_sample(CosineSimilarity, y_true, y_pred, axis=axis)


def huber(y_true, y_pred, delta=1.0):
    return _per_sample(Huber, y_true, y_pred, delta=delta)


def log_cosh(y_true, y_pred):
    return _per_sample(LogCosh, y_true, y_pred)


def hinge(y_true, y_pred):
    return _per_sample(Hinge, y_true, y_pred)


def squared_hinge(y_true, y_pred):
    return _per_sample(SquaredHinge, y_true, y_pred)


def categorical_hinge(y_true, y_pred):
    return _per_sample(CategoricalHinge, y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return _per_sample(KLDivergence, y_true, y_pred)


def poisson(y_true, y_pred):
    return _per_sample(Poisson, y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return _per_sample(BinaryCrossentropy, y_true, y_pred, from_logits=from_logits,
                       label_smoothing=label_smoothing, axis=axis)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False, label_smoothing=0.0, axis=-1):
    return _per_sample(BinaryFocalCrossentropy, y_true, y_pred, apply_class_balancing=apply_class_balancing,
                       alpha=alpha, gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    return _per_sample(CategoricalCrossentropy, y_true, y_pred, from_logits=from_logits,
                       label_smoothing=label_smoothing, axis=axis)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                                   axis=-1):
    return _per_sample(CategoricalFocalCrossentropy, y_true, y_pred, alpha=alpha, gamma=gamma,
                       from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    return _per_sample(SparseCategoricalCrossentropy, y_true, y_pred, from_logits=from_logits,
                       ignore_class=ignore_class, axis=axis)


def dice(y_true, y_pred, axis=None):
    return _per_sample(Dice, y_true, y_pred, axis=axis)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    return _per_sample(Tversky, y_true, y_pred, alpha=alpha, beta=beta, axis=axis)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy

# function -> its class, for `get(function)`
BY_FUNCTION = {fn: registry.get("losses", fn.__name__) for fn in (
    mean_squared_error, mean_absolute_error, mean_absolute_percentage_error, mean_squared_logarithmic_error,
    cosine_similarity, huber, log_cosh, hinge, squared_hinge, categorical_hinge, kl_divergence, poisson,
    binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy, categorical_focal_crossentropy,
    sparse_categorical_crossentropy, dice, tversky)}

__all__ = ["BCE", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
           "CategoricalFocalCrossentropy", "CategoricalHinge", "CosineSimilarity", "Dice", "Hinge", "Huber", "KLD",
           "KLDivergence", "LogCosh", "MAE", "MAPE", "MSE", "MSLE", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanSquaredError", "MeanSquaredLogarithmicError", "Poisson",
           "SparseCategoricalCrossentropy", "SquaredHinge", "Tversky", "bce", "binary_crossentropy",
           "binary_focal_crossentropy", "categorical_crossentropy", "categorical_focal_crossentropy",
           "categorical_hinge", "cosine_similarity", "dice", "hinge", "huber", "kl_divergence", "kld", "log_cosh",
           "logcosh", "mae", "mape", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
           "mean_squared_logarithmic_error", "mse", "msle", "poisson", "sparse_categorical_crossentropy",
           "squared_hinge", "tversky"]

"""Legacy HDF5 files (`.h5`/`.hdf5`): whole models as Keras 2 / tf.keras / Keras 3's legacy writer save
them, Keras 2-style weights-only files, and Keras 3 `.weights.h5` files."""
from __future__ import annotations

import json
import os

from .. import initializers
from . import hdf5, model_config, serialization, weights
from .atomic import atomic_h5

# rconv writes Keras 2-style configs (readable by tf.keras 2 and Keras 3); the version says so.
LEGACY_KERAS_VERSION = "2.15.0"


def save_model(model, path, overwrite: bool = True, include_optimizer: bool = True) -> None:
    config = model_config.model_to_config(model, legacy=True)
    with atomic_h5(path, overwrite=overwrite) as h5:  # built in memory: a full disk is an OSError, not a crash
        h5.attrs["keras_version"] = LEGACY_KERAS_VERSION
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["model_config"] = json.dumps(config)
        compiled = include_optimizer and getattr(model, "compiled", False)
        if compiled:
            h5.attrs["training_config"] = json.dumps(serialization.legacy_training_config(model))
        weights.write_legacy(h5.create_group("model_weights"), model, LEGACY_KERAS_VERSION)
        if compiled:
            weights.write_legacy_optimizer(h5, model)


def load_model(path, compile: bool = True):
    import h5py
    path = os.fspath(path)
    with hdf5.open_h5(path) as h5:
        config = hdf5.json_attr(h5, "model_config", path)
        if config is None:
            kind = " (it looks like a weights-only file: use model.load_weights)" if (
                "layer_names" in h5.attrs or "layers" in h5) else ""
            raise ValueError(f"{path}: no model config found in the file{kind}")
        try:
            with initializers.deferred():  # every variable is assigned from the file below
                model = model_config.model_from_config(config)
        except serialization.ConfigError as exc:
            raise serialization.ConfigError(f"{path}: {exc}") from exc
        weights.check_capacity(model, os.path.getsize(path), path)
        group = hdf5.child(h5, "model_weights", path)
        if not isinstance(group, h5py.Group):
            raise ValueError(f"{path}: missing the 'model_weights' group")
        pending = weights.plan_legacy(group, model, path)
        training_config = hdf5.json_attr(h5, "training_config", path)
        if compile and training_config:
            try:
                serialization.compile_from_config(model, training_config, legacy=True)
            except serialization.CONFIG_EXCEPTIONS as exc:
                raise ValueError(f"{path}: cannot restore the training configuration ({exc}); use "
                                 "load_model(..., compile=False) to load the model uncompiled") from exc
            pending.optimizer_commit = weights.plan_legacy_optimizer(h5, model, path)
        pending.commit()
    return model


def save_weights(model, path, overwrite: bool = True) -> None:
    """`.weights.h5` → Keras 3 layout (with optimizer state); other `.h5` → Keras 2 weights-only layout."""
    keras3 = os.fspath(path).endswith(".weights.h5")
    with atomic_h5(path, overwrite=overwrite) as h5:
        if keras3:
            weights.write_keras3(h5, model)
        else:
            weights.write_legacy(h5, model, LEGACY_KERAS_VERSION)


def load_weights(model, path) -> None:
    """Any Keras weights layout: Keras 3 (`layers/...`), Keras 2 weights-only (root `layer_names`) or a
    whole legacy model file (`model_weights`). Nothing is assigned unless everything fits."""
    import h5py
    path = os.fspath(path)
    with hdf5.open_h5(path) as h5:
        def group(name):
            obj = hdf5.child(h5, name, path)
            return obj if isinstance(obj, h5py.Group) else None

        legacy_attrs = "layer_names" in h5.attrs or "layer_names0" in h5.attrs
        if group("layers") is not None or (group("vars") is not None and not legacy_attrs):
            pending = weights.plan_keras3(h5, model, path)
        elif legacy_attrs:
            pending = weights.plan_legacy(h5, model, path)
        elif group("model_weights") is not None:
            pending = weights.plan_legacy(group("model_weights"), model, path)
        else:
            raise ValueError(f"{path}: no Keras weights found (expected a 'layers' group, a 'layer_names' "
                             "attribute or a 'model_weights' group)")
        pending.commit()

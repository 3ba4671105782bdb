"""Saving and loading models in Keras's own formats, both ways.

* `.keras`: Keras 3's zip (config.json + model.weights.h5, optimizer state included when compiled).
* `.h5` / `.hdf5`: the legacy HDF5 format of Keras 2 / tf.keras (also written by Keras 3).
* `.weights.h5`: Keras 3 weights (+ optimizer state); other `.h5` weights files use Keras 2's layout.

Loading is safe by construction: configs are plain JSON mapped onto a fixed table of rconv classes
(no imports, no eval, no pickle; `Lambda` and unknown classes are refused), and saving replaces the
target atomically, so a failed save never damages an existing file (nor does a reader ever see half of one).
In data-parallel training over MPI (`rconv.distribution`) only rank 0 writes; the other ranks return at
once (no barrier: a script may save from rank 0 alone). Hostile files (`hdf5.py`,
`keras_zip.py`): no HDF5 soft/external links, external storage or virtual datasets, every dataset and
zip entry bounded by what the config implies, configs nested at most `model_config.MAX_*` deep, models
built without running initializers, and nothing assigned unless the whole file fits. Every failure while
loading is a ValueError (ConfigError, WeightsError) or an OSError whose message names the file.
"""
from __future__ import annotations

import contextlib
import os

from . import keras_zip, legacy_h5
from .. import distribution
from .model_config import model_from_config, model_to_config
from ..layers.lambda_layer import safe_mode_scope
from .hdf5 import WeightsError
from .serialization import (ConfigError, deserialize_keras_object, layer_from_config, serialize_keras_object,
                            supported)

_H5 = (".h5", ".hdf5")


def _path(filepath) -> str:
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"filepath must be a str or os.PathLike, got {type(filepath).__name__}")
    return os.fspath(filepath)


@contextlib.contextmanager
def _loading(path: str):
    """Every failure while loading `path` leaves as a ValueError or OSError naming the file (the original
    exception is chained)."""
    try:
        yield
    except (ValueError, OSError) as exc:
        if path in str(exc):
            raise
        try:
            renamed = type(exc)(f"{path}: {exc}")
        except Exception:  # an exception class with another signature
            renamed = (OSError if isinstance(exc, OSError) else ValueError)(f"{path}: {exc}")
        raise renamed from exc
    except MemoryError as exc:
        raise ValueError(f"{path}: not enough memory to load this file ({exc or 'MemoryError'})") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: the file's structure is nested too deeply to load") from exc
    except Exception as exc:  # h5py's KeyError/RuntimeError on corrupt objects, odd config types, ...
        raise ValueError(f"{path}: cannot load the file ({type(exc).__name__}: {exc})") from exc


def save_model(model, filepath, overwrite: bool = True, include_optimizer: bool = True) -> None:
    """Save a whole model; the format follows the extension (`.keras`, `.h5`/`.hdf5`)."""
    path = _path(filepath)
    if not distribution.is_chief():  # data-parallel (MPI): every rank holds the same model, rank 0 writes it
        return
    if path.endswith(".keras"):
        keras_zip.save(model, path, overwrite=overwrite)
    elif path.endswith(_H5):
        legacy_h5.save_model(model, path, overwrite=overwrite, include_optimizer=include_optimizer)
    else:
        raise ValueError("Invalid filepath extension for saving. Please add either a `.keras` extension for "
                         "the native Keras format (recommended) or a `.h5` extension. Use "
                         f"`model.export(filepath)` if you want to export a SavedModel. Received: filepath={path}")


def load_model(filepath, compile: bool = True, custom_objects=None, safe_mode: bool = True):
    """Load a model saved by rconv or Keras (`.keras`, `.h5`/`.hdf5`). A `Lambda` layer holding Python
    bytecode loads only with `safe_mode=False` (loading it runs that code, as in Keras)."""
    if custom_objects:
        raise ValueError("rconv does not load custom objects; only built-in layers are supported: "
                         f"{', '.join(supported())}")
    path = _path(filepath)
    if path.endswith(".keras"):
        with _loading(path), safe_mode_scope(safe_mode):
            return keras_zip.load(path, compile=compile)
    if path.endswith(_H5):
        with _loading(path), safe_mode_scope(safe_mode):
            return legacy_h5.load_model(path, compile=compile)
    raise ValueError(f"File format not supported: filepath={path}. rconv supports `.keras` files (Keras 3) "
                     "and legacy `.h5`/`.hdf5` files.")


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """`.weights.h5` (Keras 3 layout) or another `.h5`/`.hdf5` (Keras 2 layout)."""
    path = _path(filepath)
    if not path.endswith(_H5):
        raise ValueError("The filename must end in `.weights.h5` (or a legacy `.h5`/`.hdf5`). "
                         f"Received: filepath={path}")
    if not distribution.is_chief():  # data-parallel (MPI): rank 0 writes
        return
    legacy_h5.save_weights(model, path, overwrite=overwrite)


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """Load weights from `.weights.h5`, a legacy `.h5`/`.hdf5` (weights or whole model), or `.keras`."""
    if skip_mismatch:
        raise NotImplementedError("skip_mismatch=True is not supported")
    path = _path(filepath)
    if path.endswith(".keras"):
        with _loading(path):
            keras_zip.load_weights(model, path)
    elif path.endswith(_H5):
        with _loading(path):
            legacy_h5.load_weights(model, path)
    else:
        raise ValueError("File format not supported: expected `.weights.h5`, `.h5`/`.hdf5` or `.keras`. "
                         f"Received: filepath={path}")


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "ConfigError", "WeightsError", "supported",
           "layer_from_config", "model_from_config", "model_to_config", "serialize_keras_object",
           "deserialize_keras_object"]

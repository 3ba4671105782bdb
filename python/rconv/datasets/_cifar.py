"""Shared reader of the CIFAR-10/100 "python version" archives (``cifar-10-python.tar.gz``,
``cifar-100-python.tar.gz``): finding the extracted batch files, downloading them if absent, parsing them.

The batch files are pickles (written by Python 2). They are read with `SafeUnpickler`, which only builds
plain containers (dict, list, str, bytes, numbers) and NumPy arrays: the only globals it resolves are NumPy's
array reconstruction (``numpy.ndarray``, ``numpy.dtype``, ``multiarray._reconstruct``) and ``_codecs.encode``
with the latin-1 codec (how Python 3 pickles bytes at protocol 2); anything else (``os.system``,
``builtins.eval``...) is an error, so a tampered file cannot run code. The result is then checked: a dict with
a ``data`` uint8 array of shape (N, 3072) and N integer labels in range.

Where the files are looked for, in order (the first folder holding every batch file wins):
``$RCONV_DATA/<name>/`` (the files directly in it, or in the folders below), ``$RCONV_DATA/``, the rconv
cache ``$RCONV_HOME/datasets`` (``~/.rconv/datasets``) and Keras's cache (``$KERAS_HOME/datasets``, default
``~/.keras/datasets``); in each, ``<dir>/`` and Keras's ``<dir>-target/<dir>/`` (``<dir>`` =
``cifar-10-batches-py`` or ``cifar-100-python``). If none has them, the archive is downloaded into the rconv
cache with `utils.get_file` (SHA-256 checked) and extracted there, as Keras does.
"""
from __future__ import annotations

import codecs
import os
import pickle
import urllib.error
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from . import _files

IMAGE_SIZE = 32 * 32 * 3

_ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct")})


def _latin1_encode(text, encoding="latin1", *rest):
    """``_codecs.encode`` limited to what pickle protocol 2 uses for bytes (latin-1 of a str)."""
    if rest or codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r} while reading a dataset")
    return text.encode("latin1")


class SafeUnpickler(pickle.Unpickler):
    """Unpickles only containers, numbers, strings, bytes and NumPy arrays (see the module docstring)."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            if module == "numpy.core.multiarray" and hasattr(np, "_core"):  # NumPy 2 (no deprecated-module warning)
                module = "numpy._core.multiarray"
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refusing to load `{module}.{name}` from a dataset file (only NumPy arrays "
                                     "and plain containers are allowed): the file is corrupt or malicious")


def read_batch(path, label_key: str, num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,) uint8) of one CIFAR python batch file; ValueError naming the
    file when it is not one."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            d = SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError, MemoryError) as e:
        raise ValueError(f"{path}: not a readable CIFAR batch file: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a CIFAR batch file holds a dict, found {type(d).__name__}")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path}: CIFAR batch lacks '{'data' if 'data' not in d else label_key}'; has "
                         f"{sorted(map(str, d))}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_SIZE:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {IMAGE_SIZE}), found {desc}")
    try:
        labels = np.asarray(d[label_key])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: bad '{label_key}': {e}") from e
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: '{label_key}' must be {data.shape[0]} integers, found {labels.dtype} of shape "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: '{label_key}' out of range 0..{num_classes - 1}: {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels_last, like Keras
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def _roots(subdir: str) -> List[Tuple[str, Path]]:
    roots = []
    env = _files.data_env_dir()
    if env is not None:
        roots += [(f"${_files.DATA_ENV}/{subdir}", env / subdir), (f"${_files.DATA_ENV}", env)]
    roots.append(("cache", _files.cache_root()))
    keras_home = os.environ.get("KERAS_HOME", "").strip()
    keras_cache = (Path(keras_home).expanduser() if keras_home else Path.home() / ".keras") / "datasets"
    if keras_cache != _files.cache_root():
        roots.append(("Keras cache", keras_cache))
    return roots


def load(*, title: str, subdir: str, dirname: str, origin: str, sha256: str, train: Sequence[str],
         test: Sequence[str], label_key: str, num_classes: int):
    """Find (or download) and parse a CIFAR dataset: ((x_train, y_train), (x_test, y_test)), labels (N, 1)."""
    folders = [(label, root / sub) for label, root in _roots(subdir)
               for sub in (Path(dirname), Path(f"{dirname}-target") / dirname)]
    env = _files.data_env_dir()
    if env is not None:  # the batch files directly in $RCONV_DATA/<subdir>/
        folders.insert(0, (f"${_files.DATA_ENV}/{subdir}", env / subdir))
    names = list(train) + list(test)
    found = next((folder for _, folder in folders if all((folder / n).is_file() for n in names)), None)
    if found is None:
        from ..utils.file_utils import get_file
        try:
            extracted = get_file(fname=f"{dirname}-target", origin=origin, extract=True, file_hash=sha256,
                                 cache_dir=_files.cache_root().parent, cache_subdir=_files.cache_root().name)
        except (urllib.error.URLError, _files.DownloadError) as e:
            looked = "\n  ".join(f"{folder}  [{label}]" for label, folder in folders)
            raise _files.DatasetNotFoundError(
                f"{title} not found locally and could not be downloaded.\nWanted: the folder {dirname}/ with "
                f"{', '.join(names)} (the extracted {os.path.basename(origin)}).\nLooked in:\n  {looked}\n"
                f"Download of {origin} failed: {e}\nFix: extract {os.path.basename(origin)} into "
                f"{_files.cache_root()}{os.sep}, or set ${_files.DATA_ENV} to a folder holding {dirname}/.") from e
        found = Path(extracted) / dirname
    parts: Dict[str, List[np.ndarray]] = {"train": [], "test": []}
    for split, files in (("train", train), ("test", test)):
        for name in files:
            parts[split].extend(read_batch(found / name, label_key, num_classes))
    x_train = np.concatenate(parts["train"][0::2])
    y_train = np.concatenate(parts["train"][1::2]).reshape(-1, 1)
    x_test = np.concatenate(parts["test"][0::2])
    y_test = np.concatenate(parts["test"][1::2]).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test)

"""The Keras 3 `.keras` format: a zip of `metadata.json`, `config.json` and `model.weights.h5`."""
from __future__ import annotations

import datetime
import io
import json
import os
import zipfile

from . import model_config, serialization, weights
from .atomic import atomic_write

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
# The Keras release whose `.keras` layout rconv writes (layer dtypes as DTypePolicy dicts: >= 3.5).
KERAS_FORMAT_VERSION = "3.5.0"
_MAX_JSON_BYTES = 64 << 20
_MAX_WEIGHTS_BYTES = 16 << 30


def save(model, path, overwrite: bool = True) -> None:
    from .. import __version__ as rconv_version
    import h5py
    config = model_config.model_to_config(model)
    metadata = {"keras_version": KERAS_FORMAT_VERSION, "date_saved": datetime.datetime.now().strftime(
        "%Y-%m-%d@%H:%M:%S"), "rconv_version": rconv_version}
    with atomic_write(path, overwrite=overwrite) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:  # stored, like Keras
            zf.writestr(METADATA_FILE, json.dumps(metadata))
            zf.writestr(CONFIG_FILE, json.dumps(config))
            buf = io.BytesIO()
            with h5py.File(buf, "w") as h5:
                weights.write_keras3(h5, model)
            zf.writestr(WEIGHTS_FILE, buf.getvalue())


class _Archive:
    """A validated, open `.keras` zip; errors name the file and what is wrong."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"No such file: {self.path}")
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{self.path} is not a valid .keras file: not a zip archive (truncated, "
                             "corrupt, or another format)")
        try:
            self.zf = zipfile.ZipFile(self.path, "r")
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{self.path} is not a valid .keras file: {exc}") from exc
        self.names = set(self.zf.namelist())

    def read(self, name, limit):
        if name not in self.names:
            raise ValueError(f"{self.path} is not a valid .keras file: it has no {name}")
        info = self.zf.getinfo(name)
        if info.file_size > limit:
            raise ValueError(f"{self.path}: {name} is too large ({info.file_size} bytes)")
        try:
            return self.zf.read(name)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:  # CRC errors, truncation
            raise ValueError(f"{self.path}: cannot read {name} from the archive ({exc}); the file is "
                             "corrupt or truncated") from exc

    def json(self, name):
        try:
            return json.loads(self.read(name, _MAX_JSON_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{self.path}: {name} is not valid JSON: {exc}") from exc

    def weights_file(self):
        import h5py
        if WEIGHTS_FILE not in self.names:
            hint = " (npz weights are not supported)" if "model.weights.npz" in self.names else ""
            raise ValueError(f"{self.path} is not a valid .keras file: it has no {WEIGHTS_FILE}{hint}")
        data = self.read(WEIGHTS_FILE, _MAX_WEIGHTS_BYTES)
        try:
            return h5py.File(io.BytesIO(data), "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: {WEIGHTS_FILE} is not a valid HDF5 file ({exc})") from exc

    def close(self):
        self.zf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(path, compile: bool = True):
    with _Archive(path) as archive:
        config = archive.json(CONFIG_FILE)
        if METADATA_FILE in archive.names:
            archive.json(METADATA_FILE)  # validated, otherwise informational
        try:
            model = model_config.model_from_config(config)
        except serialization.ConfigError as exc:
            raise ValueError(f"{archive.path}: {exc}") from exc
        compile_config = config.get("compile_config") if isinstance(config, dict) else None
        if compile and compile_config:
            try:
                serialization.compile_from_config(model, compile_config)
            except (ValueError, TypeError, NotImplementedError) as exc:
                raise ValueError(f"{archive.path}: cannot restore the training configuration ({exc}); "
                                 "use load_model(..., compile=False) to load the model uncompiled") from exc
        with archive.weights_file() as h5:
            weights.read_keras3(h5, model, f"{archive.path} ({WEIGHTS_FILE})")
    return model


def load_weights(model, path) -> None:
    with _Archive(path) as archive, archive.weights_file() as h5:
        weights.read_keras3(h5, model, f"{archive.path} ({WEIGHTS_FILE})")

"""The Keras 3 `.keras` format: a zip of `metadata.json`, `config.json` and `model.weights.h5`."""
from __future__ import annotations

import datetime
import io
import json
import os
import struct
import zipfile
import zlib

from .. import initializers
from . import hdf5, model_config, serialization, weights
from .atomic import atomic_write

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
# The Keras release whose `.keras` layout rconv writes (layer dtypes as DTypePolicy dicts: >= 3.5).
KERAS_FORMAT_VERSION = "3.5.0"
_MAX_CONFIG_BYTES = 64 << 20
_MAX_METADATA_BYTES = 1 << 20
_MAX_ENTRIES = 64
_MAX_DIRECTORY_BYTES = 1 << 20


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


def _check_directory(path) -> None:
    """Refuse, before zipfile parses it, a central directory with more entries or bytes than a `.keras`
    file can need (zipfile would build a ZipInfo for each: a small file could take gigabytes)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_len = min(size, 22 + 65535)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        pos = tail.rfind(b"PK\x05\x06")
        if pos < 0 or len(tail) < pos + 22:
            return  # not a zip: zipfile says so
        entries, cd_size = struct.unpack("<xxxxxxxxxxHI", tail[pos:pos + 16])
        records = [(entries, cd_size)]
        locator = tail[pos - 20:pos] if pos >= 20 else b""
        if locator[:4] == b"PK\x06\x07":  # zip64: zipfile uses the zip64 record's counts
            (offset,) = struct.unpack("<Q", locator[8:16])
            if offset + 56 <= size:
                f.seek(offset)
                record = f.read(56)
                if record[:4] == b"PK\x06\x06":
                    records.append(struct.unpack("<QQ", record[32:48]))
    for entries, cd_size in records:
        if entries > _MAX_ENTRIES or cd_size > _MAX_DIRECTORY_BYTES:
            raise ValueError(f"{path} is not a valid .keras file: its zip directory lists {entries} entries in "
                             f"{cd_size} bytes (a .keras file has 3)")


class _Archive:
    """A validated, open `.keras` zip; errors name the file and what is wrong. Only the entries asked for
    by name are ever decompressed, each bounded by a size limit."""

    def __init__(self, path):
        self.path = os.fspath(path)
        hdf5.check_regular_file(self.path)
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{self.path} is not a valid .keras file: not a zip archive (truncated, "
                             "corrupt, or another format)")
        _check_directory(self.path)
        try:
            self.zf = zipfile.ZipFile(self.path, "r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{self.path} is not a valid .keras file: {exc}") from exc
        self.names = set(self.zf.namelist())

    def read(self, name, limit):
        """The entry's bytes; refused if its header says more than `limit` bytes, and read with a cap in
        case the header lies."""
        if name not in self.names:
            raise ValueError(f"{self.path} is not a valid .keras file: it has no {name}")
        info = self.zf.getinfo(name)
        if info.flag_bits & 0x1:
            raise ValueError(f"{self.path}: {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(f"{self.path}: {name} uses zip compression method {info.compress_type}; a .keras "
                             "file is stored or deflated")
        if info.file_size > limit:
            raise ValueError(f"{self.path}: {name} is too large ({info.file_size} bytes; at most {limit} "
                             "expected for this model)")
        try:
            with self.zf.open(info) as entry:
                data = entry.read(limit + 1)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:  # CRC, truncation
            raise ValueError(f"{self.path}: cannot read {name} from the archive ({exc}); the file is "
                             "corrupt or truncated") from exc
        if len(data) > limit:
            raise ValueError(f"{self.path}: {name} inflates to more than {limit} bytes although its header "
                             f"says {info.file_size}; refused")
        return data

    def json(self, name, limit):
        return hdf5.parse_json(self.read(name, limit), self.path, name)

    def weights_file(self, model):
        """`model.weights.h5`, opened and scanned; its size is bounded by what `model` can need."""
        if WEIGHTS_FILE not in self.names:
            hint = " (npz weights are not supported)" if "model.weights.npz" in self.names else ""
            raise ValueError(f"{self.path} is not a valid .keras file: it has no {WEIGHTS_FILE}{hint}")
        source = f"{self.path} ({WEIGHTS_FILE})"
        weights.check_capacity(model, self.zf.getinfo(WEIGHTS_FILE).file_size, source)
        data = self.read(WEIGHTS_FILE, weights.file_bytes_bound(model))
        return hdf5.open_h5(source, io.BytesIO(data))

    def close(self):
        self.zf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load(path, compile: bool = True):
    with _Archive(path) as archive:
        config = archive.json(CONFIG_FILE, _MAX_CONFIG_BYTES)
        if METADATA_FILE in archive.names:
            archive.json(METADATA_FILE, _MAX_METADATA_BYTES)  # validated, otherwise informational
        try:
            with initializers.deferred():  # every variable is assigned from the weights file below
                model = model_config.model_from_config(config)
        except serialization.ConfigError as exc:
            raise serialization.ConfigError(f"{archive.path}: {exc}") from exc
        compile_config = config.get("compile_config") if isinstance(config, dict) else None
        if compile and compile_config:
            try:
                serialization.compile_from_config(model, compile_config)
            except serialization.CONFIG_EXCEPTIONS as exc:
                raise ValueError(f"{archive.path}: cannot restore the training configuration ({exc}); "
                                 "use load_model(..., compile=False) to load the model uncompiled") from exc
        with archive.weights_file(model) as h5:
            weights.read_keras3(h5, model, f"{archive.path} ({WEIGHTS_FILE})")
    return model


def load_weights(model, path) -> None:
    with _Archive(path) as archive, archive.weights_file(model) as h5:
        weights.read_keras3(h5, model, f"{archive.path} ({WEIGHTS_FILE})")

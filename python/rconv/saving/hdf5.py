"""Opening and reading HDF5 files rconv did not write: everything is checked from metadata before libhdf5
reads any data.

* The path must be a regular file (`os.stat` before h5py opens it: a FIFO or a device would block).
* `open_h5` walks the whole object tree once, by link metadata (`get(name, getlink=True)` never follows
  a link): soft links (and so soft-link cycles), external links and user-defined links are refused;
  hard-link cycles are cut by object identity; depth and object count are bounded. Every dataset is
  checked (`check_storage`): no external storage (it would read another local file), not virtual, only
  HDF5's built-in filters (no plugin is ever loaded), chunks no bigger than the dataset needs, and the
  declared size backed by the storage the file really holds (`MAX_RATIO` for compressed data).
* `read_dataset` checks the dtype (real int/float, at most 8 bytes, no compound/array types) and the shape
  against what the model expects before reading; `child` walks paths one hard link at a time.
* Attributes: shape, type and size are read (`attrs.get_id`) before their contents.

What libhdf5 itself may still loop or crash on (corrupt object headers, B-trees, heaps or variable-length
strings whose heap objects lie about their sizes) is not visible from Python before the library parses it.
"""
from __future__ import annotations

import json
import math
import os
import stat

import numpy as np

_MAX_OBJECTS = 200_000      # links visited by the scan
_MAX_DEPTH = 64             # group nesting
MAX_RATIO = 1100           # deflate's best ratio is ~1032:1; other built-in filters do less
_SLACK = 4096               # bytes a dataset may declare beyond its storage (edge chunks, rounding)
_MIN_CHUNK_BYTES = 1 << 20  # chunks up to this size are fine whatever the dataset's size
_MAX_JSON_ATTR = 64 << 20
_MAX_LIST_ATTR = 1 << 20    # entries of a name-list attribute (layer_names, weight_names)
_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}


class WeightsError(ValueError):
    """The HDF5 file uses a feature rconv refuses to read, or is corrupt."""


def check_regular_file(path: str) -> None:
    """FileNotFoundError / OSError unless `path` is a regular file (FIFOs, devices and folders block or
    never end inside libhdf5 or zipfile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file: {path}") from None
    except OSError as exc:
        raise OSError(f"Cannot access {path}: {exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise OSError(f"{path} is not a regular file (a folder, FIFO, socket or device); refusing to read it")


def open_h5(source: str, fileobj=None):
    """Open `source` (a path, or `fileobj` — bytes or a file object — named `source`) read-only and scan
    it (`scan`). Errors: FileNotFoundError/OSError for the path, ValueError for the content."""
    import h5py
    if fileobj is None:
        check_regular_file(source)
        if not h5py.is_hdf5(source):
            raise ValueError(f"{source} is not an HDF5 file (truncated, corrupt, or another format)")
    try:
        h5 = h5py.File(source if fileobj is None else fileobj, "r")
    except OSError as exc:
        if fileobj is None:
            raise OSError(f"Cannot read HDF5 file {source}: {exc}") from exc
        raise ValueError(f"{source} is not a valid HDF5 file ({exc})") from exc
    try:
        scan(h5, source)
    except BaseException:
        h5.close()
        raise
    return h5


def _object_key(obj):
    import h5py
    info = h5py.h5o.get_info(obj.id)
    return info.fileno, info.addr


def _link_error(source, where, link):
    import h5py
    if isinstance(link, h5py.SoftLink):
        return WeightsError(f"{source}: '{where}' is a soft link (to {link.path!r}); rconv refuses soft links")
    if isinstance(link, h5py.ExternalLink):
        return WeightsError(f"{source}: '{where}' is an external link to {link.filename!r}:{link.path!r}; "
                               "rconv never reads other files")
    return WeightsError(f"{source}: '{where}' is a {type(link).__name__} link; only hard links are read")


def scan(h5, source: str) -> None:
    """Refuse soft/external links and unsafe dataset storage anywhere in the file, from metadata only."""
    import h5py
    seen, stack, count = set(), [(h5, "", 0)], 0
    while stack:
        group, path, depth = stack.pop()
        key = _object_key(group)
        if key in seen:  # a hard-link cycle, or a group linked twice
            continue
        seen.add(key)
        if depth > _MAX_DEPTH:
            raise WeightsError(f"{source}: groups nested deeper than {_MAX_DEPTH} levels at '{path}'")
        for name in group:
            count += 1
            if count > _MAX_OBJECTS:
                raise WeightsError(f"{source}: more than {_MAX_OBJECTS} objects; not a Keras weights file")
            where = f"{path}/{name}".lstrip("/")
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise _link_error(source, where, link)
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                stack.append((obj, where, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                check_storage(obj, source, where)


def child(group, path: str, source: str):
    """The object at `path` below `group`, following hard links only (one component at a time), or
    None if a component is missing."""
    import h5py
    obj = group
    for name in str(path).split("/"):
        if name in ("", "."):
            continue
        if not isinstance(obj, h5py.Group):
            return None
        link = obj.get(name, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise _link_error(source, path, link)
        obj = obj.get(name)
    return obj


def _declared_bytes(dset) -> int:
    return math.prod(dset.shape) * dset.dtype.itemsize


def check_storage(dset, source: str, where: str) -> None:
    """Refuse what would read another file, load a plugin, or allocate far more than the file holds."""
    if dset.is_virtual:
        raise WeightsError(f"{source}: dataset '{where}' is a virtual dataset (it maps other files); refused")
    external = dset.external
    if external:
        files = sorted({str(entry[0]) for entry in external})
        raise WeightsError(f"{source}: dataset '{where}' keeps its data in external files {files}; rconv "
                              "never reads other files")
    plist = dset.id.get_create_plist()
    filtered = plist.get_nfilters() > 0
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _FILTERS:
            raise WeightsError(f"{source}: dataset '{where}' uses HDF5 filter {code}, which is not one of "
                                  f"HDF5's built-in filters ({', '.join(_FILTERS.values())})")
    if dset.shape is None or dset.dtype.itemsize == 0 or dset.dtype.kind == "O":
        return  # empty dataspace, or variable-length data (never read as weights)
    declared = _declared_bytes(dset)
    if dset.chunks is not None:
        chunk = math.prod(dset.chunks) * dset.dtype.itemsize
        if chunk > max(declared, _MIN_CHUNK_BYTES):
            raise WeightsError(f"{source}: dataset '{where}' of shape {dset.shape} has chunks {dset.chunks} "
                                  f"({chunk} bytes), more than the dataset itself")
    stored = dset.id.get_storage_size()
    capacity = stored * (MAX_RATIO if filtered else 1) + _SLACK
    if declared > capacity:
        raise WeightsError(f"{source}: dataset '{where}' declares shape {dset.shape} ({declared} bytes) but "
                              f"the file stores only {stored} bytes for it (unallocated, truncated or a "
                              "decompression bomb)")


def read_dataset(obj, expected_shape, source: str, where: str) -> np.ndarray:
    """The contents of dataset `obj` after checking storage, dtype and shape against `expected_shape`."""
    import h5py
    if not isinstance(obj, h5py.Dataset):
        raise WeightsError(f"{source}: '{where}' is not a dataset")
    check_storage(obj, source, where)
    check_numeric(obj.dtype, source, where)
    if obj.shape is None or tuple(obj.shape) != tuple(expected_shape):
        raise WeightsError(f"{source}: weight '{where}' has shape {obj.shape} in the file, but the model "
                              f"expects {tuple(expected_shape)}")
    try:
        return np.asarray(obj[()])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{source}: cannot read '{where}' (corrupt or truncated file): {exc}") from exc


def check_numeric(dtype, source: str, where: str) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind not in "fiu" or dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize > 8:
        raise WeightsError(f"{source}: '{where}' has dtype {dtype}; weights must be real integers or floats")


def _attr_info(obj, name, source, where):
    """(shape, dtype, storage bytes) of an attribute, from its header only."""
    aid = obj.attrs.get_id(name)
    try:
        size = aid.get_storage_size()
    except RuntimeError:  # libhdf5 reports an empty attribute's 0 bytes as a failure
        size = 0
    return aid.shape, aid.dtype, size


def string_list_attr(obj, name: str, source: str, where: str) -> list:
    """A 0-/1-D attribute of strings as a list of str (an empty numeric array is an empty list)."""
    import h5py
    shape, dtype, size = _attr_info(obj, name, source, where)
    count = math.prod(shape) if shape is not None else 0
    if shape is None or len(shape) > 1 or count > _MAX_LIST_ATTR:
        raise WeightsError(f"{source}: attribute '{name}' of '{where}' has shape {shape}; expected a list "
                              "of names")
    if h5py.check_string_dtype(dtype) is None:
        if count == 0:
            return []
        raise WeightsError(f"{source}: attribute '{name}' of '{where}' holds {dtype}, not strings")
    if size > _MAX_JSON_ATTR:
        raise WeightsError(f"{source}: attribute '{name}' of '{where}' is too large ({size} bytes)")
    out = []
    for v in np.asarray(obj.attrs[name]).reshape(-1).tolist():
        out.append(v.decode("utf8", "replace") if isinstance(v, bytes) else str(v))
    return out


def json_attr(obj, name: str, source: str):
    """A JSON string attribute, parsed (None if absent); size and type are checked before reading it."""
    import h5py
    if name not in obj.attrs:
        return None
    shape, dtype, size = _attr_info(obj, name, source, "/")
    if shape not in ((), (1,)) or h5py.check_string_dtype(dtype) is None or size > _MAX_JSON_ATTR:
        raise WeightsError(f"{source}: the '{name}' attribute is not a JSON string (shape {shape}, dtype "
                              f"{dtype}, {size} bytes)")
    value = np.asarray(obj.attrs[name]).reshape(-1)[0]
    return parse_json(value, source, f"the '{name}' attribute")


def parse_json(data, source: str, what: str):
    """json.loads with every failure (bad UTF-8, syntax, nesting too deep for the parser) a ValueError."""
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data)
    except RecursionError:
        raise ValueError(f"{source}: {what} is nested too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ValueError(f"{source}: {what} is not valid JSON: {exc}") from exc

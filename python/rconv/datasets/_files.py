"""Private helpers for the dataset loaders: finding, downloading and parsing data files.

Where data is looked for, in order:

1. ``$RCONV_DATA`` -- a folder holding one subfolder per dataset (``mnist/``, ``fashion-mnist/``),
   or the dataset's files directly;
2. the cache, ``$RCONV_HOME/datasets`` (``RCONV_HOME`` defaults to ``~/.rconv``), laid out like
   Keras's ``~/.keras/datasets``.

If nothing is found, the files are downloaded into the cache from the mirror Keras uses, each to a
temporary file in the destination folder that is renamed into place only once its SHA-256 matches.

Nothing here unpickles: ``.npz`` files are read with ``allow_pickle=False``; IDX files are parsed
by hand with their magic number, dimensions and payload length checked.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "DatasetNotFoundError", "ChecksumError", "DownloadError",
    "data_env_dir", "cache_root", "read_idx", "load_npz_arrays", "download",
]

DATA_ENV = "RCONV_DATA"
HOME_ENV = "RCONV_HOME"
TIMEOUT_ENV = "RCONV_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 15.0  # seconds, per connect / per read
_CHUNK = 1 << 20

IDX_UBYTE_IMAGES = 0x00000803  # unsigned byte, 3 dims
IDX_UBYTE_LABELS = 0x00000801  # unsigned byte, 1 dim


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says where rconv looked."""


class DownloadError(OSError):
    """A download started but failed (bad status, connection dropped, disk full...)."""


class ChecksumError(ValueError):
    """A downloaded file's SHA-256 did not match; the file has been discarded."""


# ----------------------------------------------------------------------------------------------
# Locations
# ----------------------------------------------------------------------------------------------

def data_env_dir() -> Optional[Path]:
    """``$RCONV_DATA`` as a path, or ``None`` when unset or empty."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """The dataset cache, ``$RCONV_HOME/datasets`` (default ``~/.rconv/datasets``)."""
    home = os.environ.get(HOME_ENV, "").strip()
    base = Path(home).expanduser() if home else Path.home() / ".rconv"
    return base / "datasets"


def download_timeout() -> float:
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    if value:
        try:
            t = float(value)
            if t > 0:
                return t
        except ValueError:
            pass
    return DEFAULT_TIMEOUT


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

def _read_exact_gz(f, n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(
            f"{path}: truncated IDX file: expected {n} bytes of {what}, found {len(data)}")
    return data


def read_idx(path, magic: int, item_shape: Sequence[int] = ()) -> np.ndarray:
    """Parse a gzip-compressed (``.gz``) or raw IDX file of unsigned bytes into a uint8 array.

    Checks the magic number (``0x00000803`` for 3-D images, ``0x00000801`` for 1-D labels), that
    the trailing dimensions equal ``item_shape``, and that the payload is exactly as long as the
    dimensions say. Any problem -- including a corrupt or truncated gzip stream -- raises
    ``ValueError`` naming the file. The returned array is writeable.
    """
    path = Path(path)
    ndim = magic & 0xFF
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = _read_exact_gz(f, 4, path, "header")
            found = int.from_bytes(header, "big")
            if found != magic:
                raise ValueError(
                    f"{path}: not the expected IDX file: magic number 0x{found:08x}, "
                    f"expected 0x{magic:08x}")
            raw = _read_exact_gz(f, 4 * ndim, path, "dimensions")
            dims = tuple(int.from_bytes(raw[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
            if dims[1:] != tuple(item_shape):
                expected = ", ".join(["N"] + [str(d) for d in item_shape])
                raise ValueError(
                    f"{path}: unexpected IDX dimensions {dims}; expected ({expected})")
            n = math.prod(dims)
            out = np.empty(n, dtype=np.uint8)
            view = memoryview(out)
            got = 0
            while got < n:
                k = f.readinto(view[got:min(n, got + 16 * _CHUNK)])
                if not k:
                    break
                got += k
            if got != n:
                raise ValueError(
                    f"{path}: truncated IDX file: dimensions {dims} need {n} bytes of data, "
                    f"found {got}")
            if f.read(1):
                raise ValueError(
                    f"{path}: IDX file has data after the {n} bytes its dimensions {dims} describe")
    except ValueError:
        raise
    except MemoryError:
        raise ValueError(f"{path}: implausible IDX dimensions (cannot allocate)") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: corrupt or unreadable file: {exc}") from exc
    return out.reshape(dims)


def load_npz_arrays(path, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    """Read ``keys`` from an ``.npz`` file with ``allow_pickle=False``; errors name the file."""
    path = Path(path)
    try:
        f = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or unreadable .npz archive: {exc}") from exc
    if not isinstance(f, np.lib.npyio.NpzFile):  # a bare .npy array
        raise ValueError(f"{path}: not an .npz archive (found a single array)")
    with f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(
                f"{path}: .npz archive lacks key(s) {missing}; has {sorted(f.files)}")
        try:
            return {k: np.asarray(f[k]) for k in keys}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            # allow_pickle=False makes object arrays raise ValueError instead of unpickling
            raise ValueError(f"{path}: cannot read .npz archive: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------

def _open_url(url: str, timeout: float):
    """Open ``url`` for reading (a seam for tests: they replace it to avoid the network)."""
    request = urllib.request.Request(url, headers={"User-Agent": "rconv-datasets"})
    return urllib.request.urlopen(request, timeout=timeout)


def sha256_of(path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


_HASH_NAMES = {"sha256": "SHA-256", "md5": "MD5"}


def download(url: str, dest, sha256: Optional[str], *, algorithm: str = "sha256") -> Path:
    """Download ``url`` to ``dest``, atomically, accepting it only if its SHA-256 is ``sha256`` (any hash when
    ``sha256`` is None; ``algorithm`` names another hashlib algorithm, e.g. "md5" for legacy Keras hashes).

    The bytes go to a temporary file next to ``dest`` that is renamed over ``dest`` only once the
    hash matches; on any failure the temporary file is removed, so no partial file is left.
    ``urllib.error.URLError`` (no network, DNS failure, HTTP error) propagates unchanged for the
    caller to report; a mismatching hash raises :class:`ChecksumError`.
    """
    dest = Path(dest)
    response = _open_url(url, download_timeout())  # raises URLError before anything is written
    tmp_name = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        h = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(
                f"downloaded {url} has {_HASH_NAMES.get(algorithm, algorithm)} {digest}, expected {sha256}; the "
                f"file was discarded (a corrupted transfer, or the mirror changed). Nothing was written to "
                f"{dest}.")
        os.replace(tmp_name, dest)
        tmp_name = None
    except (urllib.error.URLError, ChecksumError):
        raise
    except (OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"downloading {url} to {dest} failed: {exc}") from exc
    finally:
        close = getattr(response, "close", None)
        if close is not None:
            close()
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return dest


# ----------------------------------------------------------------------------------------------
# MNIST-format datasets (mnist, fashion-mnist): locate, download if needed, parse, validate
# ----------------------------------------------------------------------------------------------

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# Folder names of the datasets; files placed directly in $RCONV_DATA are not used for one dataset
# when that folder is named after another (RCONV_DATA=.../mnist must not feed fashion_mnist).
DATASET_DIRS = ("mnist", "fashion-mnist", "fashion_mnist")

Split = Tuple[np.ndarray, np.ndarray]


class _Place:
    """One location to look in: a folder for the four IDX files and/or an .npz file."""

    def __init__(self, label: str, idx_dir: Optional[Path], npz: Optional[Path]):
        self.label, self.idx_dir, self.npz = label, idx_dir, npz

    def describe(self) -> List[str]:
        lines = []
        if self.npz is not None:
            lines.append(f"{self.npz}  [{self.label}]")
        if self.idx_dir is not None:
            note = ""
            if not self.idx_dir.is_dir():
                note = "  (no such folder)"
            else:
                have = [n for n in IDX_FILES if (self.idx_dir / n).is_file()]
                if have:
                    missing = [n for n in IDX_FILES if n not in have]
                    note = f"  (incomplete: missing {', '.join(missing)})"
            lines.append(f"{self.idx_dir}{os.sep}{{4 IDX .gz files}}  [{self.label}]{note}")
        return lines


def _as_uint8(a: np.ndarray, path: Path, key: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind in "iu" and (a.size == 0 or (a.min() >= 0 and a.max() <= 255)):
        return a.astype(np.uint8)
    raise ValueError(f"{path}: array {key!r} has dtype {a.dtype}; expected uint8")


def _check_split(x: np.ndarray, y: np.ndarray, xsrc, ysrc) -> None:
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{xsrc}: images have shape {x.shape}; expected (N, 28, 28)")
    if y.ndim != 1:
        raise ValueError(f"{ysrc}: labels have shape {y.shape}; expected (N,)")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{xsrc} has {x.shape[0]} images but {ysrc} has {y.shape[0]} labels")
    if y.size and int(y.max()) >= NUM_CLASSES:
        raise ValueError(f"{ysrc}: label {int(y.max())} out of range 0..{NUM_CLASSES - 1}")


def _load_npz(path: Path) -> Tuple[Split, Split]:
    arrays = load_npz_arrays(path, NPZ_KEYS)
    a = {k: _as_uint8(v, path, k) for k, v in arrays.items()}
    _check_split(a["x_train"], a["y_train"], f"{path}[x_train]", f"{path}[y_train]")
    _check_split(a["x_test"], a["y_test"], f"{path}[x_test]", f"{path}[y_test]")
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


def _load_idx_dir(folder: Path) -> Tuple[Split, Split]:
    paths = {n: folder / n for n in IDX_FILES}
    x_train = read_idx(paths[TRAIN_IMAGES], IDX_UBYTE_IMAGES, IMAGE_SHAPE)
    y_train = read_idx(paths[TRAIN_LABELS], IDX_UBYTE_LABELS)
    x_test = read_idx(paths[TEST_IMAGES], IDX_UBYTE_IMAGES, IMAGE_SHAPE)
    y_test = read_idx(paths[TEST_LABELS], IDX_UBYTE_LABELS)
    _check_split(x_train, y_train, paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    _check_split(x_test, y_test, paths[TEST_IMAGES], paths[TEST_LABELS])
    return (x_train, y_train), (x_test, y_test)


class _Note:
    """A line for the "looked in" list that is not a place (e.g. "$RCONV_DATA is not set")."""

    def __init__(self, text: str):
        self.text, self.idx_dir, self.npz = text, None, None

    def describe(self) -> List[str]:
        return [self.text]


def _try_place(place: _Place):
    if place.npz is not None and place.npz.is_file():
        return _load_npz(place.npz)
    if place.idx_dir is not None and all((place.idx_dir / n).is_file() for n in IDX_FILES):
        return _load_idx_dir(place.idx_dir)
    return None


def _env_places(subdir: str, npz_name: Optional[str]) -> list:
    root = data_env_dir()
    if root is None:
        return [_Note(f"${DATA_ENV} (not set)")]
    places: list = [_Place(f"${DATA_ENV}/{subdir}", root / subdir,
                           root / subdir / npz_name if npz_name else None)]
    if root.name in DATASET_DIRS and root.name.replace("_", "-") != subdir:
        places.append(_Note(f"{root}  [${DATA_ENV}]  (files directly in it not used: the folder "
                            f"is named for another dataset)"))
    else:
        places.append(_Place(f"${DATA_ENV}", root, root / npz_name if npz_name else None))
    return places


def _not_found(title: str, wanted: str, places: Sequence[_Place], tried: str,
               reason: BaseException, example: str, subdir: str) -> DatasetNotFoundError:
    looked = [line for p in places for line in p.describe()]
    msg = (
        f"{title} not found locally and could not be downloaded.\n"
        f"Wanted: {wanted}.\n"
        "Looked in:\n  " + "\n  ".join(looked) + "\n"
        f"Download of {tried} failed: {reason}\n"
        f"Fix: put {example}; or set ${DATA_ENV} to a folder holding a "
        f"'{subdir}/' subfolder with them (or holding them directly); ${HOME_ENV} moves the "
        f"cache (now {cache_root()}).")
    return DatasetNotFoundError(msg)


def load_mnist_like(*, title: str, subdir: str, npz_name: Optional[str],
                    explicit_npz: Optional[Path], cache_npz: Optional[Path],
                    npz_url: Optional[Tuple[str, str]],
                    idx_base_url: Optional[str], idx_sha256: Optional[Dict[str, str]]):
    """Find (or fetch) and parse an MNIST-format dataset; see ``mnist.load_data``.

    ``npz_url`` is ``(url, sha256)`` to download ``cache_npz``; otherwise the four IDX files are
    downloaded from ``idx_base_url`` into ``cache/subdir`` and checked against ``idx_sha256``.
    """
    places: List[_Place] = []
    if explicit_npz is not None:
        places.append(_Place("path argument", None, explicit_npz))
    places.extend(_env_places(subdir, npz_name))
    cache_dir = cache_root() / subdir
    # An absolute mnist ``path`` is also the "cache" npz (Keras joins it onto the cache dir).
    places.append(_Place("cache", cache_dir, None if cache_npz == explicit_npz else cache_npz))

    for place in places:
        found = _try_place(place)
        if found is not None:
            return found

    # Nothing on disk: download into the cache.
    if npz_url is not None:
        url, sha = npz_url
        targets = [(url, cache_npz, sha)]
        wanted = f"{npz_name} (or the four IDX files {', '.join(IDX_FILES)})"
        example = f"{npz_name} at {cache_npz}, or the four IDX files in {cache_dir}{os.sep}"
    else:
        targets = [(idx_base_url + n, cache_dir / n, idx_sha256[n])
                   for n in (TRAIN_LABELS, TRAIN_IMAGES, TEST_LABELS, TEST_IMAGES)
                   if not (cache_dir / n).is_file()]
        wanted = "the four IDX files " + ", ".join(IDX_FILES)
        if npz_name:
            wanted += f" (or {npz_name} with keys {', '.join(NPZ_KEYS)})"
        example = f"the four IDX files in {cache_dir}{os.sep}"
    for url, dest, sha in targets:
        try:
            download(url, dest, sha)
        except urllib.error.URLError as exc:
            raise _not_found(title, wanted, places, url, exc, example,
                             subdir) from exc
    found = _try_place(places[-1])
    if found is None:  # pragma: no cover - download() guarantees the files exist
        raise DatasetNotFoundError(f"{title}: download finished but files are missing in "
                                   f"{cache_dir}")
    return found

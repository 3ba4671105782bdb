"""`get_file`: download a file into a cache folder once, check its hash, optionally extract it
(``keras.utils.get_file``, keras/src/utils/file_utils.py, Keras 3 semantics).

The cache is ``cache_dir/cache_subdir`` with ``cache_dir`` defaulting to ``$RCONV_HOME`` or, unset,
``~/.keras`` (Keras's own cache, so files Keras downloaded are found); when it cannot be created,
``<tmp>/.keras``. Downloads go to a temporary file renamed into place only once the hash matches
(`datasets._files.download`). Archives are extracted only when every member stays inside the target folder:
absolute paths, ``..`` components and links pointing outside make a ValueError naming the archive and the
member, before anything is written; tar members also go through ``tarfile``'s ``filter="data"`` where the
Python has it.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import zipfile
from pathlib import Path

from ..datasets import _files

__all__ = ["get_file", "hash_file", "validate_file", "extract_archive"]


def _home() -> Path:
    home = os.environ.get(_files.HOME_ENV, "").strip()
    return Path(home).expanduser() if home else Path.home() / ".keras"


def _algorithm(hash_algorithm: str, file_hash) -> str:
    """Keras's rule: "sha256", "md5", or "auto" (SHA-256 for a 64-digit hash, else MD5)."""
    if hash_algorithm in ("sha256", "md5"):
        return hash_algorithm
    if hash_algorithm == "auto":
        return "sha256" if file_hash is not None and len(file_hash) == 64 else "md5"
    raise ValueError(f"get_file: hash_algorithm must be 'auto', 'sha256' or 'md5', got {hash_algorithm!r}")


def hash_file(fpath, algorithm: str = "sha256") -> str:
    """The hex digest of a file ("sha256" or "md5"; "auto" means SHA-256)."""
    return _files.sha256_of(fpath, "sha256" if algorithm == "auto" else algorithm)


def validate_file(fpath, file_hash: str, algorithm: str = "auto") -> bool:
    """True if the file's hash equals `file_hash`."""
    return hash_file(fpath, _algorithm(algorithm, file_hash)) == str(file_hash).lower()


def _inside(base: Path, name: str) -> bool:
    target = (base / name).resolve()
    return target == base or base in target.parents


def _check_members(archive_path, base: Path, members) -> None:
    """ValueError unless every (name, link target or None, is-hard-link) stays inside `base`."""
    for name, link, hard in members:
        bad = Path(name).is_absolute() or not _inside(base, name)
        if link is not None and not bad:
            # A hard link's target is relative to the archive root; a symlink's to the link's own folder.
            anchor = base if hard else (base / name).parent
            bad = Path(link).is_absolute() or not _inside(base, os.path.relpath(anchor / link, base))
        if bad:
            what = f"'{name}'" + (f" (a link to '{link}')" if link is not None else "")
            raise ValueError(f"{archive_path}: refusing to extract the archive: member {what} would be written "
                             f"outside the target folder {base}")


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extract a tar (.tar, .tar.gz, .tar.bz2, .tar.xz) or zip archive into `path`; False if it is neither
    (or `archive_format` is None). Refuses (ValueError) archives with a member escaping `path`."""
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    file_path, base = os.fspath(file_path), Path(path).resolve()
    for kind in formats:
        if kind not in ("tar", "zip"):
            raise ValueError(f"extract_archive: archive_format must be 'auto', 'tar', 'zip' or None, got {kind!r}")
        if kind == "tar" and tarfile.is_tarfile(file_path):
            with tarfile.open(file_path) as archive:
                infos = archive.getmembers()
                _check_members(file_path, base, [(i.name, i.linkname if (i.issym() or i.islnk()) else None,
                                                  i.islnk()) for i in infos])
                base.mkdir(parents=True, exist_ok=True)
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(base, members=infos, filter="data")
                else:  # pragma: no cover - Pythons without extraction filters (checked above already)
                    archive.extractall(base, members=infos)
            return True
        if kind == "zip" and zipfile.is_zipfile(file_path):
            with zipfile.ZipFile(file_path) as archive:
                _check_members(file_path, base, [(i.filename, None, False) for i in archive.infolist()])
                base.mkdir(parents=True, exist_ok=True)
                archive.extractall(base)
            return True
    return False


def _cache_folder(cache_dir, cache_subdir: str) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else _home()
    datadir = base / cache_subdir
    try:
        datadir.mkdir(parents=True, exist_ok=True)
        if not os.access(datadir, os.W_OK):
            raise PermissionError(datadir)
    except OSError:
        datadir = Path(tempfile.gettempdir()) / ".keras" / cache_subdir
        datadir.mkdir(parents=True, exist_ok=True)
    return datadir


def _targets(fname, origin: str, datadir: Path, extract: bool):
    """(download target, extraction folder or None), Keras 3's naming."""
    provided = fname is not None and os.fspath(fname) != ""
    if provided:
        fname = os.fspath(fname)
        if os.sep in fname or (os.altsep and os.altsep in fname):
            raise ValueError("Paths are no longer accepted as the `fname` argument. To specify the file's parent "
                             f"directory, use the `cache_dir` argument. Received: fname={fname}")
    else:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname or fname in (os.curdir, os.pardir):
        raise ValueError(f"Can't parse the file name from the origin provided: '{origin}'. Please specify the "
                         "`fname` argument.")
    if not extract:
        return datadir / fname, None
    if provided and "." in fname:
        return datadir / fname, datadir / f"{fname[:fname.find('.')]}_extracted"
    return datadir / f"{fname}_archive", datadir / fname


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Download `origin` into ``<cache_dir>/<cache_subdir>/<fname>`` unless it is already there (with the right
    hash when `file_hash` is given), and return its path; with `extract` (or the legacy `untar`), extract the
    archive and return the extraction folder (``<name>_extracted`` for a given `fname` with an extension, as
    Keras 3 does).

    Args:
        fname: the file name in the cache (no folders); default: the last part of `origin`'s path.
        origin: the URL (``https://``, ``http://`` or ``file://``).
        file_hash: expected SHA-256 (or MD5) hex digest; a cached file that does not match is downloaded again,
            and a download that does not match raises ValueError (`datasets.ChecksumError`) naming the URL and
            the file, leaving nothing in the cache. `md5_hash` is the legacy spelling for an MD5.
        hash_algorithm: "auto" (SHA-256 for 64 hex digits, else MD5), "sha256" or "md5".
        cache_dir: the cache's root (default ``$RCONV_HOME``, else ``~/.keras``).
        archive_format: "auto", "tar", "zip" or None.
        force_download: download even when a good file is cached.

    Raises:
        ValueError: bad arguments, a wrong hash, or an archive member escaping the extraction folder.
        `datasets.DownloadError` (an OSError): the download failed (the message names the URL).
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    algorithm = _algorithm(hash_algorithm, file_hash)
    datadir = _cache_folder(cache_dir, cache_subdir)
    target, extraction_dir = _targets(fname, origin, datadir, extract or untar)
    download, stale = force_download or not target.exists(), False
    if not download and file_hash is not None and not validate_file(target, file_hash, algorithm):
        print(f"A local file was found, but it seems to be incomplete or outdated because the {algorithm} file "
              f"hash does not match the original value of {file_hash} so we will re-download the data.")
        download = stale = True
    if download:
        print(f"Downloading data from {origin}")
        try:
            _files.download(origin, target, file_hash, algorithm=algorithm)
        except urllib.error.URLError as e:
            reason = getattr(e, "reason", e)
            if stale:
                raise _files.ChecksumError(
                    f"{target}: the cached file's {algorithm} hash is {hash_file(target, algorithm)}, not the "
                    f"expected {file_hash}, and downloading it again from {origin} failed: {reason}") from e
            raise _files.DownloadError(f"URL fetch failure on {origin}: {reason} (wanted for {target})") from e
    if extraction_dir is None:
        return str(target)
    if download or not extraction_dir.exists():
        if extraction_dir.exists():
            shutil.rmtree(extraction_dir)
        if not extract_archive(target, extraction_dir, "tar" if untar else archive_format):
            raise ValueError(f"{target}: could not extract the archive (not a {'tar' if untar else archive_format}"
                             " archive)")
    return str(extraction_dir)

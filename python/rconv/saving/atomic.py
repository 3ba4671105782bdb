"""Crash-safe file replacement: write a temp file beside the target, fsync it, then `os.replace`.

* A crash (or an exception) mid-save leaves the previous file untouched; an exception removes the temp file,
  and a writer killed outright leaves one that the next save of the same target removes: temp names carry
  the writer's pid (``.{name}.{pid}.{random}.tmp``) and those of pids no longer alive are stale.
* Saving through a symlink replaces the file the link points to and keeps the link.
* An existing file's permission bits are kept; a new file gets the usual ``0o666 & ~umask``.
* Temp names fit the folder's name length limit (the name part is shortened).
* Failures while writing (disk full, permissions, h5py's write errors) are `OSError`s naming the target.

HDF5 files go through `atomic_h5`: libhdf5 crashes (a segfault in H5Fclose) when a write to the disk fails,
so it builds the file in memory and Python writes the bytes, where a full disk is an ordinary OSError.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import sys
import traceback

_RAND_LEN = 8
_RAND_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_path(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _name_max(folder: str) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return 255


def temp_prefix(target: str) -> str:
    """``.{name}.`` for `target`'s temp files, the name shortened so a whole temp name fits NAME_MAX bytes."""
    folder, name = os.path.split(target)
    room = _name_max(folder or ".") - len(f"..{2**22}.{'x' * _RAND_LEN}.tmp")  # pid_max is at most 2**22
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's live process, or not a pid
        return pid > 0
    except OSError:
        return True
    return True


def remove_stale_temps(target: str) -> list:
    """Delete `target`'s temp files whose writer's pid is not alive; returns the paths removed."""
    folder = os.path.dirname(target) or "."
    pattern = re.compile(re.escape(temp_prefix(target)) + rf"(\d+)\.[{_RAND_CHARS}]{{{_RAND_LEN}}}\.tmp")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _pid_alive(int(match.group(1))):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
    return removed


def _resolve(path: str) -> str:
    """The file a save must replace: a symlink's (final) target, so the link itself stays."""
    return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)


def _mode_for(target: str) -> int:
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _from_h5py(exc: BaseException) -> bool:
    return any(f"{os.sep}h5py{os.sep}" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def _as_os_error(exc: BaseException, path: str) -> OSError | None:
    """A write failure as an OSError naming `path` (None: not a write failure, re-raise as it is)."""
    if isinstance(exc, OSError):
        errno, reason = exc.errno, exc.strerror or str(exc)
    elif isinstance(exc, RuntimeError) and _from_h5py(exc):  # h5py reports failed writes as RuntimeError
        errno, reason = None, str(exc)
    else:
        return None
    message = f"Cannot save to {path}: {reason} (the previous file, if any, is unchanged)"
    return OSError(errno, message, path) if errno is not None else OSError(message)


@contextlib.contextmanager
def atomic_write(path, overwrite: bool = True):
    """Yield a temp path in `path`'s folder; on success it atomically becomes `path` (or the file `path`
    links to)."""
    path = os.fspath(path)
    target = _resolve(path)
    folder = os.path.dirname(target)
    if not overwrite and os.path.exists(target):
        raise FileExistsError(f"{path} already exists and overwrite=False")
    tmp = None
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)
        remove_stale_temps(target)
        mode = _mode_for(target)
        prefix = temp_prefix(target)
        for _ in range(100):
            rand = "".join(secrets.choice(_RAND_CHARS) for _ in range(_RAND_LEN))
            candidate = os.path.join(folder, f"{prefix}{os.getpid()}.{rand}.tmp")
            try:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise FileExistsError(f"no free temp file name beside {target}")
        yield tmp
        os.chmod(tmp, mode)
        _fsync_path(tmp)
        os.replace(tmp, target)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        error = _as_os_error(exc, path) if isinstance(exc, Exception) else None
        if error is None:
            raise
        raise error.with_traceback(sys.exc_info()[2]) from exc
    _fsync_path(folder, directory=True)


@contextlib.contextmanager
def atomic_h5(path, overwrite: bool = True):
    """Yield a new in-memory `h5py.File`; on success its bytes atomically become `path` (see the module notes:
    libhdf5 never writes to the disk itself, so a full disk cannot crash it)."""
    import h5py
    with atomic_write(path, overwrite=overwrite) as tmp:
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as h5:
            yield h5
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())

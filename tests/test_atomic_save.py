"""Saving side effects (issue 12, part 7): temp names with the writer's pid and stale-temp cleanup, symlinks,
permission bits, long names, disk-full and permission errors as OSError with the old file intact, and
`kill -9` during a save."""
from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

import rconv
from rconv import layers
from rconv.saving import atomic

FORMATS = [".keras", ".h5", ".weights.h5"]


def _model(fill=None):
    rconv.utils.set_random_seed(1)
    m = rconv.Sequential([layers.Input((6,)), layers.Dense(5), layers.Dense(3)])
    if fill is not None:
        m.set_weights([np.full(w.shape, fill, np.float32) for w in m.get_weights()])
    return m


def _save(model, path):
    (model.save_weights if str(path).endswith(".weights.h5") else model.save)(path)


def _load_weights(path):
    if str(path).endswith(".weights.h5"):
        m = _model()
        m.load_weights(path)
        return m.get_weights()
    return rconv.saving.load_model(path).get_weights()


def _temps(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_name_carries_the_pid(tmp_path):
    target = tmp_path / "m.keras"
    with atomic.atomic_write(target) as tmp:
        name = os.path.basename(tmp)
        assert re.fullmatch(rf"\.m\.keras\.{os.getpid()}\.[a-z0-9]{{8}}\.tmp", name), name
        assert os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new" and not _temps(tmp_path)


def test_stale_temps_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "m.keras"
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".m.keras.{dead}.abcdefgh.tmp"
        alive = tmp_path / f".m.keras.{live.pid}.abcdefgh.tmp"
        other = tmp_path / f".other.keras.{dead}.abcdefgh.tmp"  # another target's
        unrelated = tmp_path / f".m.keras.{dead}.notours.tmp"  # not a name rconv makes
        for path in (stale, alive, other, unrelated):
            path.write_bytes(b"partial")
        _model().save(target)
        assert not stale.exists()
        assert alive.exists() and other.exists() and unrelated.exists()
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("ext", FORMATS)
def test_saving_through_a_symlink_keeps_the_link(tmp_path, ext):
    real = tmp_path / "store" / ("real" + ext)
    real.parent.mkdir()
    _save(_model(0.5), real)
    link = tmp_path / ("link" + ext)
    link.symlink_to(os.path.relpath(real, tmp_path))
    _save(_model(2.0), link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(real, tmp_path)
    assert all(np.all(w == 2.0) for w in _load_weights(real))
    assert not _temps(tmp_path) and not _temps(real.parent)


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.keras"
    link.symlink_to("made.keras")
    _model(1.0).save(link)
    assert link.is_symlink() and (tmp_path / "made.keras").is_file()


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604])
def test_permission_bits_are_kept(tmp_path, ext, mode):
    path = tmp_path / ("m" + ext)
    _save(_model(0.0), path)
    os.chmod(path, mode)
    _save(_model(1.0), path)
    assert os.stat(path).st_mode & 0o7777 == mode


def test_a_new_file_gets_the_umask_mode(tmp_path):
    path = tmp_path / "m.keras"
    old = os.umask(0o027)
    try:
        atomic._UMASK, saved = 0o027, atomic._UMASK  # read once at import (os.umask is process-wide)
        _model().save(path)
    finally:
        os.umask(old)
        atomic._UMASK = saved
    assert os.stat(path).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("ext", FORMATS)
def test_long_file_names(tmp_path, ext):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    path = tmp_path / ("n" * (name_max - len(ext)) + ext)  # exactly NAME_MAX bytes
    _save(_model(3.0), path)
    _save(_model(4.0), path)  # the second save replaces the first
    assert all(np.all(w == 4.0) for w in _load_weights(path)) and not _temps(tmp_path)


def test_temp_names_fit_name_max_with_multibyte_names(tmp_path):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    target = tmp_path / ("é" * ((name_max - 6) // 2) + ".keras")
    with atomic.atomic_write(target) as tmp:
        assert len(os.fsencode(os.path.basename(tmp))) <= name_max
        os.fsdecode(os.path.basename(tmp)).encode("utf-8")  # not cut inside a character
    assert target.exists()


def _old_file_intact(path, before: bytes):
    assert path.read_bytes() == before
    assert not _temps(path.parent)


def test_disk_full_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    _model(1.0).save(path)
    before = path.read_bytes()
    original = zipfile.ZipFile.writestr

    def full(self, name, data, *args, **kwargs):
        if name == "model.weights.h5":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
    with pytest.raises(OSError, match=re.escape(str(path))) as info:
        _model(2.0).save(path)
    assert info.value.errno == errno.ENOSPC
    _old_file_intact(path, before)


def test_a_failed_replace_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "m.weights.h5"
    _model(1.0).save_weights(path)
    before = path.read_bytes()

    def denied(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), dst)

    monkeypatch.setattr(atomic.os, "replace", denied)
    with pytest.raises(PermissionError, match=re.escape(str(path))):
        _model(2.0).save_weights(path)
    _old_file_intact(path, before)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
@pytest.mark.parametrize("ext", FORMATS)
def test_read_only_directory_is_an_oserror_naming_the_file(tmp_path, ext):
    path = tmp_path / ("m" + ext)
    _save(_model(1.0), path)
    before = path.read_bytes()
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(OSError, match=re.escape(str(path))):
            _save(_model(2.0), path)
    finally:
        os.chmod(tmp_path, 0o755)
    _old_file_intact(path, before)


# A real "disk full": RLIMIT_FSIZE makes writes past the limit fail with EFBIG (SIGXFSZ ignored). In a
# subprocess, so a libhdf5 crash fails the test instead of killing pytest.
FSIZE_SCRIPT = textwrap.dedent("""
    import os, resource, signal, sys
    import numpy as np
    import rconv
    from rconv import layers
    from rconv.saving import atomic
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path, how = sys.argv[1], sys.argv[2]
    m = rconv.Sequential([layers.Input((64,)), layers.Dense(256)])

    def save():
        if how == "atomic_h5":
            with atomic.atomic_h5(path) as h5:
                h5["kernel"] = m.get_weights()[0]
        elif path.endswith(".weights.h5"):
            m.save_weights(path)
        else:
            m.save(path)

    save()
    before = open(path, "rb").read()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
    try:
        save()
    except OSError as e:
        assert path in str(e), e
    else:
        raise SystemExit("no error")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert open(path, "rb").read() == before
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]
    print("ok")
""")


@pytest.mark.parametrize("name,how", [("m.keras", "model"), ("m.h5", "atomic_h5"),
                                      pytest.param("m.h5", "model"),
                                      pytest.param("m.weights.h5", "model")])
def test_file_size_limit_is_an_oserror_with_the_old_file_intact(tmp_path, name, how):
    proc = subprocess.run([sys.executable, "-c", FSIZE_SCRIPT, str(tmp_path / name), how], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


# kill -9 during saves: a child saves models whose weights are all one value, in a loop.
KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import rconv
    from rconv import layers
    path, start = sys.argv[1], int(sys.argv[2])
    rconv.utils.set_random_seed(0)
    m = rconv.Sequential([layers.Input((128,)), layers.Dense(256), layers.Dense(64)])
    for i in range(start, start + 100000):
        m.set_weights([np.full(w.shape, i, np.float32) for w in m.get_weights()])
        (m.save_weights if path.endswith(".weights.h5") else m.save)(path)
        if i == start:
            print("saved", flush=True)
""")


@pytest.mark.parametrize("ext", FORMATS)
def test_kill_9_during_save_leaves_a_whole_model(tmp_path, ext):
    path = tmp_path / ("m" + ext)
    rng = np.random.default_rng(0)
    for round_ in range(3):
        child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), str(1000 * round_)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "saved"
            time.sleep(float(rng.uniform(0.0, 0.15)))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(60)
            child.stdout.close()
        if ext == ".weights.h5":
            m = rconv.Sequential([layers.Input((128,)), layers.Dense(256), layers.Dense(64)])
            m.load_weights(path)
            loaded = m.get_weights()
        else:
            loaded = rconv.saving.load_model(path).get_weights()
        values = {float(v) for w in loaded for v in np.unique(w)}
        assert len(values) == 1 and values.pop() >= 1000 * round_, "a torn or stale model"
    (tmp_path / f".{path.name}.{_dead_pid()}.zzzzzzzz.tmp").write_bytes(b"x")  # certainly one stale temp
    m = rconv.Sequential([layers.Input((128,)), layers.Dense(256), layers.Dense(64)])
    (m.save_weights if ext == ".weights.h5" else m.save)(path)
    assert not _temps(tmp_path), "the next save removes the temps of killed writers"

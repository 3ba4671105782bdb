"""`rconv.datasets.cifar10` / `cifar100` (issue 13, item 7): small batch files written here in the real CIFAR
"python version" format (Python 2 protocol-2 pickles: `str` as BINSTRING, arrays through
`numpy.core.multiarray._reconstruct`), found in $RCONV_DATA, the rconv cache, Keras's cache layout, or
"downloaded" from a file:// tar.gz with its SHA-256 checked; malicious pickles are refused without running
anything."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from rconv.datasets import DatasetNotFoundError, _cifar, _files, cifar10, cifar100


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str the way Python 2's cPickle wrote its `str` (SHORT_BINSTRING / BINSTRING)."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2str
    dispatch[str] = save_py2str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")  # as NumPy 1 wrote


def _images(n, seed):
    """(N, 3072) rows in CIFAR's layout (1024 red, 1024 green, 1024 blue, each row-major 32x32)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_cifar10(folder: Path, sizes=(3, 2, 1, 2, 1), test=2, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for i, n in enumerate(sizes, 1):
        batches[f"data_batch_{i}"] = (_images(n, seed + i), rng.integers(0, 10, n).tolist())
    batches["test_batch"] = (_images(test, seed + 9), rng.integers(0, 10, test).tolist())
    for name, (data, labels) in batches.items():
        (folder / name).write_bytes(py2_pickle({b"batch_label": f"{name} of 5".encode(), b"labels": labels,
                                                b"data": data, b"filenames": [b"x.png"] * len(labels)}))
    return batches


def write_cifar100(folder: Path, n_train=4, n_test=3, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
        out[name] = (_images(n, seed + n), fine, coarse)
        (folder / name).write_bytes(py2_pickle({b"filenames": [b"f.png"] * n, b"batch_label": b"train",
                                                b"fine_labels": fine, b"coarse_labels": coarse,
                                                b"data": out[name][0]}))
    return out


def _nhwc(rows):
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Only file:// URLs open; the caches live under tmp_path; RCONV_DATA starts unset."""
    real = _files._open_url

    def open_url(url, timeout):
        if url.startswith("file://"):
            return real(url, timeout)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(_files, "_open_url", open_url)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("RCONV_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RCONV_DATA", raising=False)


def test_cifar10_from_rconv_data(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path / "data" / "cifar10" / "cifar-10-batches-py")
    monkeypatch.setenv("RCONV_DATA", str(tmp_path / "data"))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (9, 32, 32, 3) and y_train.shape == (9, 1) and x_test.shape == (2, 32, 32, 3)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(x_train, _nhwc(np.concatenate([d for d, _ in train])))
    np.testing.assert_array_equal(y_train[:, 0], np.concatenate([lab for _, lab in train]))
    np.testing.assert_array_equal(x_test, _nhwc(batches["test_batch"][0]))
    # Keras's layout: pixel (row 0, col 1) of image 0 has red = data[0][1], green = data[0][1025], blue = [2049]
    first = batches["data_batch_1"][0][0]
    assert tuple(x_train[0, 0, 1]) == (first[1], first[1025], first[2049])


def test_batch_files_directly_in_the_rconv_data_subfolder(tmp_path, monkeypatch):
    write_cifar100(tmp_path / "data" / "cifar100", n_train=2, n_test=1)
    monkeypatch.setenv("RCONV_DATA", str(tmp_path / "data"))
    (x_train, y_train), (x_test, _) = cifar100.load_data("coarse")
    assert x_train.shape == (2, 32, 32, 3) and x_test.shape == (1, 32, 32, 3) and y_train.max() < 20


def test_cifar10_from_keras_cache_layout(tmp_path):
    write_cifar10(tmp_path / "user" / ".keras" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py",
                  sizes=(1, 1, 1, 1, 1), test=1)
    (x_train, _), (x_test, _) = cifar10.load_data()
    assert x_train.shape[0] == 5 and x_test.shape[0] == 1


@pytest.mark.parametrize("mode,classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_label_modes_from_the_rconv_cache(tmp_path, mode, classes):
    written = write_cifar100(tmp_path / "home" / "datasets" / "cifar-100-python")
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(label_mode=mode)
    pick = 1 if mode == "fine" else 2
    np.testing.assert_array_equal(y_train[:, 0], written["train"][pick])
    np.testing.assert_array_equal(y_test[:, 0], written["test"][pick])
    np.testing.assert_array_equal(x_test, _nhwc(written["test"][0]))
    assert x_train.shape == (4, 32, 32, 3) and y_train.shape == (4, 1) and y_test.max() < classes
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data(label_mode="medium")


def _tar_gz(src: Path, arcname: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src, arcname=arcname)
    return buf.getvalue()


def test_cifar10_download_checks_sha256_and_extracts_into_the_cache(tmp_path, monkeypatch):
    write_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "server" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(_tar_gz(tmp_path / "src" / "cifar-10-batches-py", "cifar-10-batches-py"))
    monkeypatch.setattr(cifar10, "ORIGIN", archive.as_uri())
    with pytest.raises(ValueError, match="SHA-256.*expected 6d958be0"):  # the real hash: our archive differs
        cifar10.load_data()
    assert not any((tmp_path / "home" / "datasets").glob("cifar-10-batches-py-target*"))
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    (x_train, _), _ = cifar10.load_data()
    assert x_train.shape == (9, 32, 32, 3)
    assert (tmp_path / "home" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py" /
            "test_batch").is_file()
    archive.unlink()
    assert cifar10.load_data()[0][0].shape == (9, 32, 32, 3)  # from the cache now


def test_not_found_lists_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        cifar10.load_data()
    msg = str(e.value)
    assert "CIFAR-10" in msg and "cifar-10-python.tar.gz" in msg and str(tmp_path / "home" / "datasets") in msg
    assert str(tmp_path / "user" / ".keras" / "datasets") in msg


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [
    {b"data": _Evil(), b"labels": [0]},
    {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil()},
])
def test_malicious_pickles_are_refused_without_running_code(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "test_batch"
    bad.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch.*refusing to load `(posix|os|nt)\.system`"):
        _cifar.read_batch(bad, "labels", 10)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("payload,message", [
    ([1, 2], "holds a dict"),
    ({b"labels": [0]}, "lacks 'data'"),
    ({b"data": np.zeros((1, 3072), np.uint8)}, "lacks 'labels'"),
    ({b"data": np.zeros((1, 3000), np.uint8), b"labels": [0]}, r"uint8 array of shape \(N, 3072\)"),
    ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "float32"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must be 2 integers"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "out of range"),
])
def test_bad_batch_files_name_the_file(tmp_path, payload, message):
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(py2_pickle(payload))
    with pytest.raises(ValueError, match=message) as e:
        _cifar.read_batch(bad, "labels", 10)
    assert str(bad) in str(e.value)
    bad.write_bytes(py2_pickle(payload)[:-5])  # truncated
    with pytest.raises(ValueError, match="data_batch_1"):
        _cifar.read_batch(bad, "labels", 10)


def test_implausible_array_sizes_are_a_value_error(tmp_path):
    import importlib
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")

    class Huge:
        def __reduce__(self):
            return (multiarray._reconstruct, (np.ndarray, (1 << 62,), b"b"))

    bad = tmp_path / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": Huge(), b"labels": [0]}, protocol=4))
    with pytest.raises(ValueError, match="data_batch_1"):
        _cifar.read_batch(bad, "labels", 10)


def test_python3_pickles_of_both_protocols_read_too(tmp_path):
    data = _images(2, 5)
    for protocol in (2, 4):
        path = tmp_path / f"p{protocol}"
        path.write_bytes(pickle.dumps({b"data": data, b"labels": [3, 4]}, protocol=protocol))
        x, y = _cifar.read_batch(path, "labels", 10)
        np.testing.assert_array_equal(x, _nhwc(data))
        assert y.tolist() == [3, 4]

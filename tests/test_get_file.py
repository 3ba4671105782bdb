"""`rconv.utils.get_file` (issue 13, item 7), Keras 3 semantics: a cache folder, SHA-256 (or MD5) checks,
archive extraction that refuses path traversal. No network: origins are `file://` URLs or files placed in the
cache beforehand; any other download fails as offline."""
from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from rconv.datasets import ChecksumError, DownloadError, _files
from rconv.utils import file_utils, get_file

PAYLOAD = b"rconv get_file payload\n" * 10
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(autouse=True)
def offline_except_file_urls(monkeypatch, tmp_path):
    """Only file:// URLs open; the default cache is isolated under tmp_path."""
    real = _files._open_url

    def open_url(url, timeout):
        if url.startswith("file://"):
            return real(url, timeout)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(_files, "_open_url", open_url)
    monkeypatch.setenv("RCONV_HOME", str(tmp_path / "home"))


def _origin(tmp_path, data=PAYLOAD, name="payload.bin") -> str:
    src = tmp_path / "server" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    return src.as_uri()


def test_downloads_once_into_the_cache(tmp_path, capsys):
    origin = _origin(tmp_path)
    path = get_file("data.bin", origin, file_hash=SHA, cache_dir=tmp_path / "cache")
    assert Path(path) == tmp_path / "cache" / "datasets" / "data.bin" and Path(path).read_bytes() == PAYLOAD
    assert "Downloading data from" in capsys.readouterr().out
    (tmp_path / "server" / "payload.bin").unlink()  # the cached copy is used from now on
    assert get_file("data.bin", origin, file_hash=SHA, cache_dir=tmp_path / "cache") == path
    assert "Downloading" not in capsys.readouterr().out


def test_default_cache_is_rconv_home_then_dot_keras(tmp_path, monkeypatch):
    origin = _origin(tmp_path)
    assert Path(get_file(origin=origin)) == tmp_path / "home" / "datasets" / "payload.bin"  # fname from origin
    monkeypatch.delenv("RCONV_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    path = get_file("p.bin", origin, cache_subdir="models")
    assert Path(path) == tmp_path / "user" / ".keras" / "models" / "p.bin"


def test_bad_hash_of_a_download_is_a_value_error_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"payload\.bin.*SHA-256.*expected 0{64}.*data\.bin") as e:
        get_file("data.bin", _origin(tmp_path), file_hash="0" * 64, cache_dir=tmp_path / "cache")
    assert isinstance(e.value, ChecksumError)
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []  # nothing left behind


def test_pre_placed_cache_files_need_no_network(tmp_path):
    cached = tmp_path / "cache" / "datasets" / "weights.h5"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    offline = "https://example.invalid/weights.h5"
    assert get_file("weights.h5", offline, file_hash=SHA, cache_dir=tmp_path / "cache") == str(cached)
    assert get_file("weights.h5", offline, cache_dir=tmp_path / "cache") == str(cached)  # no hash: no check
    cached.write_bytes(PAYLOAD + b"tampered")
    with pytest.raises(ValueError, match=r"weights\.h5.*hash.*not the expected.*example\.invalid"):
        get_file("weights.h5", offline, file_hash=SHA, cache_dir=tmp_path / "cache")


def test_stale_cache_file_is_downloaded_again(tmp_path):
    cached = tmp_path / "cache" / "datasets" / "data.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"old")
    get_file("data.bin", _origin(tmp_path), file_hash=SHA, cache_dir=tmp_path / "cache")
    assert cached.read_bytes() == PAYLOAD
    cached.write_bytes(b"old")
    get_file("data.bin", _origin(tmp_path), cache_dir=tmp_path / "cache", force_download=True)
    assert cached.read_bytes() == PAYLOAD


def test_md5_and_hash_algorithm_rules(tmp_path):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    origin = _origin(tmp_path)
    get_file("a.bin", origin, md5_hash=md5, cache_dir=tmp_path / "c")
    get_file("b.bin", origin, file_hash=md5, cache_dir=tmp_path / "c")  # auto: 32 digits -> MD5
    get_file("c.bin", origin, file_hash=SHA, hash_algorithm="sha256", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="MD5"):
        get_file("d.bin", origin, file_hash=SHA[:32], cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="hash_algorithm"):
        get_file("e.bin", origin, file_hash=SHA, hash_algorithm="sha1", cache_dir=tmp_path / "c")
    assert file_utils.validate_file(tmp_path / "c" / "datasets" / "a.bin", SHA)
    assert file_utils.hash_file(tmp_path / "c" / "datasets" / "a.bin", "md5") == md5


def test_bad_arguments_and_failed_downloads(tmp_path):
    with pytest.raises(ValueError, match="origin"):
        get_file("x.bin")
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        get_file("sub/x.bin", _origin(tmp_path), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Can't parse the file name"):
        get_file(origin="https://example.invalid/", cache_dir=tmp_path)
    with pytest.raises(DownloadError, match=r"example\.invalid/missing\.bin"):
        get_file("missing.bin", "https://example.invalid/missing.bin", cache_dir=tmp_path)
    with pytest.raises(DownloadError, match="nothing-here"):
        get_file("n.bin", (tmp_path / "nothing-here").as_uri(), cache_dir=tmp_path)


def _tar_bytes(members, mode="w:gz") -> bytes:
    """members: (name, bytes) files, or (name, "->target") symlinks, or (name, "=>target") hard links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type = tarfile.SYMTYPE if data.startswith("->") else tarfile.LNKTYPE
                info.linkname = data[2:]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(name, data)
    return buf.getvalue()


def test_extract_tar_and_zip_like_keras(tmp_path):
    tgz = _tar_bytes([("pkg/a.txt", b"A"), ("pkg/sub/b.txt", b"B"), ("pkg/link", "->a.txt")])
    path = get_file("pkg.tar.gz", _origin(tmp_path, tgz, "pkg.tar.gz"), extract=True, cache_dir=tmp_path / "c")
    assert Path(path) == tmp_path / "c" / "datasets" / "pkg_extracted"  # Keras 3's folder name
    assert (Path(path) / "pkg" / "sub" / "b.txt").read_bytes() == b"B"
    assert (Path(path) / "pkg" / "link").read_bytes() == b"A"
    assert (tmp_path / "c" / "datasets" / "pkg.tar.gz").is_file()
    zipped = _zip_bytes([("z/one.txt", b"1")])
    path = get_file("bundle", _origin(tmp_path, zipped, "b.zip"), extract=True, cache_dir=tmp_path / "c")
    assert Path(path) == tmp_path / "c" / "datasets" / "bundle" and (Path(path) / "z" / "one.txt").read_bytes() == b"1"
    assert (tmp_path / "c" / "datasets" / "bundle_archive").is_file()
    path = get_file("legacy", _origin(tmp_path, _tar_bytes([("x.txt", b"X")], "w"), "l.tar"), untar=True,
                    cache_dir=tmp_path / "c")
    assert (Path(path) / "x.txt").read_bytes() == b"X"
    with pytest.raises(ValueError, match="could not extract"):
        get_file("plain", _origin(tmp_path), extract=True, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("members", [
    [("ok.txt", b"ok"), ("../escaped.txt", b"evil")],
    [("ok.txt", b"ok"), ("pkg/../../escaped.txt", b"evil")],
    [("/tmp/escaped_abs.txt", b"evil")],
    [("ok.txt", b"ok"), ("link", "->../escaped.txt")],
    [("ok.txt", b"ok"), ("sub/link", "->/etc/passwd")],
    [("ok.txt", b"ok"), ("hard", "=>../escaped.txt")],
])
def test_tar_path_traversal_is_refused_before_writing(tmp_path, members):
    origin = _origin(tmp_path, _tar_bytes(members), "evil.tar.gz")
    with pytest.raises(ValueError, match=r"evil\.tar\.gz.*refusing to extract.*outside the target folder"):
        get_file("evil.tar.gz", origin, extract=True, cache_dir=tmp_path / "c")
    datadir = tmp_path / "c" / "datasets"
    assert not (datadir / "evil_extracted").exists() and not (tmp_path / "c" / "escaped.txt").exists()
    assert not (datadir / "escaped.txt").exists()


def test_zip_path_traversal_is_refused(tmp_path):
    origin = _origin(tmp_path, _zip_bytes([("ok.txt", b"ok"), ("../../escaped.txt", b"evil")]), "evil.zip")
    with pytest.raises(ValueError, match=r"'\.\./\.\./escaped\.txt'"):
        get_file("evil.zip", origin, extract=True, cache_dir=tmp_path / "c")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "c" / "datasets" / "evil_extracted").exists()

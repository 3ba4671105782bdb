"""Loading hostile files (issue 12, parts 3-4): refused HDF5 features, bounded sizes, nesting limits, exception
classes, initializers not run while loading, and all-or-nothing loads that leave the model bit-identical."""
import io
import json
import os
import struct
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import rconv  # noqa: E402
from rconv import initializers, layers, saving  # noqa: E402
from rconv.saving import keras_zip  # noqa: E402

SECRET = np.arange(12, dtype=np.float32) * 1000 + 7  # recognizable bytes of a "private" local file


def small_model(units=3, seed=0):
    rconv.backend.clear_session()
    rconv.utils.set_random_seed(seed)
    model = rconv.Sequential([rconv.Input((4,)), layers.Dense(units, activation="relu"), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed)
    model.train_on_batch(rng.random((5, 4), dtype=np.float32), rng.random((5, 2), dtype=np.float32))
    return model


def state(model):
    """Weights, optimizer slots and iteration count, copied."""
    opt = model.optimizer
    slots = [s.copy() for var in model.trainable_weights for s in opt._slots.get(var, ())]
    return [w.copy() for w in model.get_weights()], slots, opt.iterations, opt.learning_rate


def assert_unchanged(model, before):
    after = state(model)
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        np.testing.assert_array_equal(a, b)
    assert len(before[0]) == len(after[0]) and len(before[1]) == len(after[1])
    assert before[2:] == after[2:]


def secret_file(tmp_path):
    path = tmp_path / "private.bin"
    path.write_bytes(SECRET.tobytes())
    return str(path)


def expect_refused(model, path, match, exc=ValueError):
    """load_weights raises `exc` naming the file and matching `match`; the model is unchanged."""
    before = state(model)
    with pytest.raises(exc, match=match) as info:
        model.load_weights(path)
    assert os.fspath(path) in str(info.value)
    assert_unchanged(model, before)
    return info.value


@pytest.fixture
def saved(tmp_path):
    """A trained model saved as .weights.h5, .h5 and .keras, and a fresh differently-seeded target."""
    model = small_model()
    paths = {ext: str(tmp_path / f"m{ext}") for ext in (".weights.h5", ".h5", ".keras")}
    for path in paths.values():
        (model.save_weights if path.endswith(".weights.h5") else model.save)(path)
    target = small_model(seed=1)
    return model, target, paths


def edit_h5(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def keras_with_weights(src, dst, edit):
    """Copy the .keras `src` to `dst` with its model.weights.h5 edited by `edit(h5py.File)`."""
    with zipfile.ZipFile(src) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    buf = io.BytesIO(entries[keras_zip.WEIGHTS_FILE])
    with h5py.File(buf, "r+") as f:
        edit(f)
    entries[keras_zip.WEIGHTS_FILE] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return dst


def replace(f, path, **kwargs):
    del f[path]
    f.create_dataset(path, **kwargs)


# --- HDF5 features that read other files ---------------------------------------------------------------
@pytest.mark.parametrize("kind", [".weights.h5", ".h5", ".keras"])
def test_external_storage_is_refused_and_never_read(saved, tmp_path, kind):
    _, target, paths = saved
    secret = secret_file(tmp_path)

    def edit(f):
        name = "layers/dense/vars/0" if "layers" in f else "model_weights/dense/dense/kernel:0"
        replace(f, name, shape=(4, 3), dtype="f4", external=[(secret, 0, SECRET.nbytes)])
    if kind == ".keras":
        path = keras_with_weights(paths[kind], str(tmp_path / "ext.keras"), edit)
    else:
        edit_h5(paths[kind], edit)
        path = paths[kind]
    err = expect_refused(target, path, "external files")
    assert "private.bin" in str(err)
    with pytest.raises(ValueError, match="external files"):
        saving.load_model(path)


def test_external_link_is_refused(saved, tmp_path):
    model, target, paths = saved
    other = str(tmp_path / "other.weights.h5")
    small_model(seed=5).save_weights(other)  # a valid file whose weights must not end up in the target
    edit_h5(paths[".weights.h5"], lambda f: (f.__delitem__("layers/dense"),
                                             f.__setitem__("layers/dense", h5py.ExternalLink(other, "/layers/dense"))))
    err = expect_refused(target, paths[".weights.h5"], "external link")
    assert "other.weights.h5" in str(err)


def test_virtual_dataset_is_refused(saved, tmp_path):
    _, target, paths = saved
    source = str(tmp_path / "source.h5")
    with h5py.File(source, "w") as f:
        f.create_dataset("data", data=SECRET.reshape(4, 3))
    layout = h5py.VirtualLayout(shape=(4, 3), dtype="f4")
    layout[:] = h5py.VirtualSource(source, "data", shape=(4, 3))
    edit_h5(paths[".weights.h5"], lambda f: (f.__delitem__("layers/dense/vars/0"),
                                             f.create_virtual_dataset("layers/dense/vars/0", layout)))
    expect_refused(target, paths[".weights.h5"], "virtual dataset")


@pytest.mark.parametrize("where", ["layers/dense/vars", "junk"])
def test_soft_links_and_soft_link_cycles_are_refused(saved, where):
    _, target, paths = saved

    def edit(f):
        if where in f:
            del f[where]
        f[where] = h5py.SoftLink("/" + where)  # points at itself
    edit_h5(paths[".weights.h5"], edit)
    expect_refused(target, paths[".weights.h5"], "soft link")


def test_hard_link_cycle_terminates_and_loads(saved):
    model, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: f.__setitem__("layers/loop", f["layers"]))
    target.load_weights(paths[".weights.h5"])
    for a, b in zip(model.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unknown_filter_is_refused(saved):
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", data=np.ones((4, 3), "f4"),
                                                    chunks=(4, 3), compression=307, allow_unknown_filter=True))
    expect_refused(target, paths[".weights.h5"], "filter 307")


# --- shapes, dtypes and sizes checked before reading ---------------------------------------------------
def test_huge_compressed_dataset_is_refused_before_decompressing(saved):
    import tracemalloc
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", shape=(25000, 25000), dtype="f4",
                                                    chunks=(1000, 1000), compression="gzip", fillvalue=1.0))
    assert os.path.getsize(paths[".weights.h5"]) < 100_000
    tracemalloc.start()
    try:
        expect_refused(target, paths[".weights.h5"], r"\(25000, 25000\)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


def test_shape_mismatch_names_the_layer_and_variable(saved):
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", data=np.ones((4, 5), "f4"),
                                                    chunks=(2, 5), compression="gzip"))
    expect_refused(target, paths[".weights.h5"], r"layers/dense/vars/0 \(layer 'dense', variable 'dense/kernel'\)"
                   r"' has shape \(4, 5\) in the file, but the model expects \(4, 3\)")


def test_declared_size_must_be_backed_by_storage(saved):
    _, target, paths = saved  # an unallocated dataset would read as gigabytes of fill values
    edit_h5(paths[".weights.h5"], lambda f: f.create_dataset("junk", shape=(100000, 1000), dtype="f4",
                                                             chunks=(1000, 100), compression="gzip"))
    expect_refused(target, paths[".weights.h5"], "'junk' declares shape .* stores only 0 bytes")


def test_oversized_chunks_are_refused(saved):
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", data=np.ones((4, 3), "f4"),
                                                    chunks=(4, 300000), maxshape=(4, None)))
    expect_refused(target, paths[".weights.h5"], "chunks")


@pytest.mark.parametrize("data", [np.ones((4, 3), np.complex64), np.full((4, 3), b"abc"),
                                  np.zeros((4, 3), [("a", "f4"), ("b", "f4")]), np.ones((4, 3), bool)])
def test_non_real_dtypes_are_refused(saved, data):
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", data=data))
    expect_refused(target, paths[".weights.h5"], "dtype")


def test_array_dtype_cannot_hide_extra_dimensions(saved):
    _, target, paths = saved
    edit_h5(paths[".weights.h5"], lambda f: replace(f, "layers/dense/vars/0", shape=(4, 3),
                                                    dtype=np.dtype(("f4", (1000,)))))
    expect_refused(target, paths[".weights.h5"], "dtype|shape")


# --- all-or-nothing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [".weights.h5", ".keras"])
@pytest.mark.parametrize("bad", ["slot_shape", "iteration_inf", "iteration_negative", "lr_nan", "last_weight"])
def test_failed_load_changes_nothing(saved, tmp_path, kind, bad):
    _, target, paths = saved

    def edit(f):
        if bad == "slot_shape":
            replace(f, "optimizer/vars/5", data=np.zeros((7,), "f4"))
        elif bad == "iteration_inf":
            replace(f, "optimizer/vars/0", data=np.float64(np.inf))
        elif bad == "iteration_negative":
            replace(f, "optimizer/vars/0", data=np.int64(-3))
        elif bad == "lr_nan":
            replace(f, "optimizer/vars/1", data=np.float32(np.nan))
        else:
            replace(f, "layers/dense_1/vars/1", data=np.zeros((5,), "f4"))
    if kind == ".keras":
        path = keras_with_weights(paths[kind], str(tmp_path / "bad.keras"), edit)
    else:
        edit_h5(paths[kind], edit)
        path = paths[kind]
    expect_refused(target, path, "optimizer|dense_1")
    with pytest.raises(ValueError, match="bad.keras|m.weights.h5"):
        saving.load_model(path) if kind == ".keras" else saving.load_weights(target, path)


def test_legacy_h5_optimizer_state_is_checked_before_loading(saved):
    _, _, paths = saved

    def edit(f):
        names = [n.decode() for n in f["optimizer_weights"].attrs["weight_names"]]
        iteration = [n for n in names if n.endswith("iteration")][0]
        replace(f, f"optimizer_weights/{iteration}", data=np.float32(np.inf))
    edit_h5(paths[".h5"], edit)
    with pytest.raises(ValueError, match=r"m\.h5.*iteration.*inf"):
        saving.load_model(paths[".h5"])
    assert saving.load_model(paths[".h5"], compile=False).get_weights()  # weights alone still load


# --- .keras zip bounds ---------------------------------------------------------------------------------
def rezip(src, dst, entries=None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zf:
        data = {name: zf.read(name) for name in zf.namelist()}
    data.update(entries or {})
    with zipfile.ZipFile(dst, "w", compression=compression) as zf:
        for name, value in data.items():
            zf.writestr(name, value)
    return dst


def test_weights_entry_larger_than_the_model_needs_is_refused(saved, tmp_path):
    _, target, paths = saved
    bomb = rezip(paths[".keras"], str(tmp_path / "bomb.keras"), {keras_zip.WEIGHTS_FILE: bytes(64 << 20)},
                 compression=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(bomb) < 1 << 20
    expect_refused(target, bomb, "too large")
    with pytest.raises(ValueError, match="bomb.keras.*too large"):
        saving.load_model(bomb)


def test_lying_zip_header_is_caught_by_the_capped_read(saved, tmp_path):
    _, target, paths = saved
    real = zipfile.ZipFile(paths[".keras"]).read(keras_zip.WEIGHTS_FILE)
    path = rezip(paths[".keras"], str(tmp_path / "liar.keras"), {keras_zip.WEIGHTS_FILE: real + bytes(32 << 20)},
                 compression=zipfile.ZIP_DEFLATED)
    raw = bytearray(open(path, "rb").read())
    name = keras_zip.WEIGHTS_FILE.encode()
    for sig, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        pos = raw.find(sig)
        while raw[pos + name_at:pos + name_at + len(name)] != name:
            pos = raw.find(sig, pos + 1)
        raw[pos + size_at:pos + size_at + 4] = struct.pack("<I", len(real))  # claims the honest size
    open(path, "wb").write(bytes(raw))
    expect_refused(target, path, "inflates to more than|CRC")  # zipfile stops at the stated size, or we do


def test_only_the_expected_entries_are_read(saved, tmp_path, monkeypatch):
    model, target, paths = saved
    path = rezip(paths[".keras"], str(tmp_path / "extra.keras"),
                 {"../../evil.py": b"raise SystemExit", "assets/huge.bin": bytes(64 << 20)},
                 compression=zipfile.ZIP_DEFLATED)
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    loaded = saving.load_model(path)
    target.load_weights(path)
    assert set(opened) <= {keras_zip.CONFIG_FILE, keras_zip.METADATA_FILE, keras_zip.WEIGHTS_FILE}
    for a, b, c in zip(model.get_weights(), loaded.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_zip_directory_with_too_many_entries_is_refused(saved, tmp_path):
    _, target, paths = saved
    path = rezip(paths[".keras"], str(tmp_path / "many.keras"), {f"x{i}": b"" for i in range(200)})
    expect_refused(target, path, "zip directory lists")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_unusual_compression_methods_are_refused(saved, tmp_path, method):
    _, target, paths = saved
    path = rezip(paths[".keras"], str(tmp_path / "odd.keras"), compression=method)
    expect_refused(target, path, "compression method")


# --- configs -------------------------------------------------------------------------------------------
def with_config(src, dst, change):
    with zipfile.ZipFile(src) as zf:
        config = json.loads(zf.read(keras_zip.CONFIG_FILE))
    config = change(config)
    return rezip(src, dst, {keras_zip.CONFIG_FILE: config if isinstance(config, str) else json.dumps(config)})


def nested(depth):
    entry = {"class_name": "Dense", "config": {"units": 2}}
    for _ in range(depth):
        entry = {"class_name": "Sequential", "config": {"layers": [{"class_name": "InputLayer", "config": {
            "batch_shape": [None, 2]}}, entry]}}
    return entry


@pytest.mark.parametrize("change, match", [
    (lambda c: nested(saving.model_config.MAX_MODEL_DEPTH + 5), "nests models"),
    (lambda c: {**c, "config": {**c["config"], "layers": [[[]]] * 1 + [json.loads("[" * 800 + "]" * 800)]}},
     "nested more than"),
    (lambda c: "[" * 100_000 + "]" * 100_000, "nested too deeply|not valid JSON"),
    (lambda c: {**c, "compile_config": 7}, "training configuration"),
    (lambda c: {**c, "config": {**c["config"], "layers": 5}}, "layers"),
    (lambda c: {**c, "class_name": ["Sequential"]}, "class_name"),
])
def test_hostile_configs_raise_value_errors_naming_the_file(saved, tmp_path, change, match):
    _, _, paths = saved
    path = with_config(paths[".keras"], str(tmp_path / "cfg.keras"), change)
    with pytest.raises(ValueError, match=match) as info:
        saving.load_model(path)
    assert "cfg.keras" in str(info.value) and not isinstance(info.value.__cause__, RecursionError)


def test_functional_output_layers_as_a_string(tmp_path):
    rconv.backend.clear_session()
    x = rconv.Input((3,))
    model = rconv.Model(x, layers.Dense(2, name="dense")(x))
    path = str(tmp_path / "f.keras")
    model.save(path)
    path = with_config(path, str(tmp_path / "bad.keras"),
                       lambda c: {**c, "config": {**c["config"], "output_layers": "dense"}})
    with pytest.raises(saving.ConfigError, match="bad.keras.*output_layers"):
        saving.load_model(path)


def test_nesting_within_the_limit_loads(tmp_path):
    model = saving.model_from_config(nested(saving.model_config.MAX_MODEL_DEPTH - 1))
    path = str(tmp_path / "deep.keras")
    model.save(path)
    loaded = saving.load_model(path)
    x = np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


@pytest.mark.parametrize("kind", [".h5", ".keras"])
def test_odd_config_types_and_values(saved, tmp_path, kind):
    _, _, paths = saved
    if kind == ".h5":
        with h5py.File(paths[".h5"], "r+") as f:
            f.attrs["training_config"] = "7"  # valid JSON, wrong type
        with pytest.raises(ValueError, match=r"m\.h5.*training configuration"):
            saving.load_model(paths[".h5"])
        return
    pool = rconv.Sequential([rconv.Input((4, 4, 1)), layers.MaxPooling2D(2)])
    pool.save(paths[".keras"])
    for key, value in [("strides", [0, 0]), ("strides", [1e400, 1]), ("strides", "x"), ("pool_size", [0, 0]),
                       ("pool_size", 10**30), ("padding", {"a": 1})]:
        def change(c):
            assert c["config"]["layers"][-1]["class_name"] == "MaxPooling2D"
            c["config"]["layers"][-1]["config"][key] = value
            return c
        path = with_config(paths[".keras"], str(tmp_path / "pool.keras"), change)
        with pytest.raises(ValueError, match="pool.keras"):
            saving.load_model(path)


# --- no initializers while loading ---------------------------------------------------------------------
def test_huge_config_runs_no_initializer_and_is_refused_before_reading(saved, tmp_path, monkeypatch):
    _, _, paths = saved
    calls = []
    real = initializers.VarianceScaling.__call__
    monkeypatch.setattr(initializers.VarianceScaling, "__call__", lambda self, *a, **k: calls.append(a) or real(
        self, *a, **k))

    def huge(c):
        c["config"]["layers"][1]["config"]["units"] = 3_000_000
        return c
    path = with_config(paths[".keras"], str(tmp_path / "huge.keras"), huge)
    with pytest.raises(ValueError, match="huge.keras.*3000000|huge.keras.*parameters"):
        saving.load_model(path)
    assert calls == []
    with pytest.raises(ValueError, match="m.h5"):  # same config in a legacy file
        with h5py.File(paths[".h5"], "r+") as f:
            config = json.loads(f.attrs["model_config"])
            config["config"]["layers"][1]["config"]["units"] = 3_000_000
            f.attrs["model_config"] = json.dumps(config)
        saving.load_model(paths[".h5"])
    assert calls == []


def test_deferred_switch_is_scoped():
    with initializers.deferred():
        assert initializers.deferring()
        layer = layers.Dense(3)
        layer.build((None, 4))
        assert not layer.kernel.numpy().any()
    assert not initializers.deferring()
    layer = layers.Dense(3)
    layer.build((None, 4))
    assert layer.kernel.numpy().any()


def test_loaded_model_matches_after_deferred_build(saved):
    model, _, paths = saved
    x = np.random.default_rng(3).random((3, 4), dtype=np.float32)
    for path in (paths[".keras"], paths[".h5"]):
        loaded = saving.load_model(path)
        np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


# --- not regular files, wrapped library errors -----------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
@pytest.mark.parametrize("name", ["fifo.weights.h5", "fifo.keras", "fifo.h5"])
def test_fifo_is_refused_without_blocking(saved, tmp_path, name):
    _, target, _ = saved
    path = str(tmp_path / name)
    os.mkfifo(path)
    expect_refused(target, path, "not a regular file", exc=OSError)
    with pytest.raises(OSError, match="not a regular file"):
        saving.load_model(path)


@pytest.mark.parametrize("error", [MemoryError, KeyError, RuntimeError, RecursionError, OverflowError])
def test_other_exceptions_become_value_errors_naming_the_file(saved, monkeypatch, error):
    _, target, paths = saved

    def boom(*args, **kwargs):
        raise error("boom")
    monkeypatch.setattr(saving.hdf5, "read_dataset", boom)
    err = expect_refused(target, paths[".weights.h5"], "m.weights.h5")
    assert isinstance(err.__cause__, error)


def test_corrupt_dataset_header_is_a_value_error(saved):
    _, target, paths = saved
    raw = bytearray(open(paths[".weights.h5"], "rb").read())
    pos = raw.find(b"OHDR")  # with libver latest there are v2 object headers; otherwise damage the B-tree
    pos = pos if pos > 0 else raw.find(b"TREE")
    raw[pos:pos + 64] = bytes(64)
    open(paths[".weights.h5"], "wb").write(bytes(raw))
    before = state(target)
    with pytest.raises((ValueError, OSError), match="m.weights.h5"):
        target.load_weights(paths[".weights.h5"])
    assert_unchanged(target, before)

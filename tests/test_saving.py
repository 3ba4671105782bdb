"""rconv.saving: round trips through .keras / .h5 / .weights.h5, atomic saves, and bad files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import rconv  # noqa: E402
from rconv import layers, saving  # noqa: E402
from rconv.saving import keras_zip, weights as weights_module  # noqa: E402


def seed_convnet(optimizer="adam"):
    rconv.backend.clear_session()
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([
        rconv.Input((28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return (rng.random((16, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 16),
            rng.random((5, 28, 28, 1), dtype=np.float32))


def trained(data, optimizer="adam"):
    x, y, _ = data
    if optimizer == "sgd_momentum":
        optimizer = rconv.optimizers.SGD(0.05, momentum=0.9)
    model = seed_convnet(optimizer)
    model.train_on_batch(x[:8], y[:8])
    model.train_on_batch(x[8:], y[8:])
    return model


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)


# --- round trips ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd_momentum"])
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_model_round_trip_keeps_predictions_config_and_optimizer_state(tmp_path, data, ext, optimizer):
    x, y, xt = data
    model = trained(data, optimizer)
    path = tmp_path / f"model{ext}"
    model.save(path)
    loaded = rconv.models.load_model(path)
    assert type(loaded) is rconv.Sequential
    np.testing.assert_array_equal(loaded.predict(xt, verbose=0), model.predict(xt, verbose=0))
    assert loaded.get_config() == model.get_config()
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.compiled and type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 2
    assert loaded.loss.get_config() == model.loss.get_config()
    # Training resumes exactly: one step after reload == one step without saving.
    loaded.train_on_batch(x[:8], y[:8])
    model.train_on_batch(x[:8], y[:8])
    assert_same_weights(loaded, model)
    logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_load_model_compile_false(tmp_path, data):
    model = trained(data)
    for ext in (".keras", ".h5"):
        model.save(tmp_path / f"m{ext}")
        loaded = saving.load_model(tmp_path / f"m{ext}", compile=False)
        assert not loaded.compiled
        np.testing.assert_array_equal(loaded.predict(data[2], verbose=0), model.predict(data[2], verbose=0))


def test_uncompiled_and_untrained_models_round_trip(tmp_path, data):
    model = seed_convnet(optimizer=None)
    model.save(tmp_path / "m.keras")
    loaded = saving.load_model(tmp_path / "m.keras")
    assert not loaded.compiled
    np.testing.assert_array_equal(loaded.predict(data[2], verbose=0), model.predict(data[2], verbose=0))
    compiled = seed_convnet()  # compiled but never trained: optimizer has no slots yet
    compiled.save(tmp_path / "c.keras")
    compiled.save(tmp_path / "c.h5")
    for name in ("c.keras", "c.h5"):
        again = saving.load_model(tmp_path / name)
        assert again.optimizer.iterations == 0 and not again.optimizer.built


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5"])
def test_weights_round_trip(tmp_path, data, name):
    x, y, xt = data
    model = trained(data)
    model.save_weights(tmp_path / name)
    fresh = seed_convnet()
    fresh.load_weights(tmp_path / name)
    np.testing.assert_array_equal(fresh.predict(xt, verbose=0), model.predict(xt, verbose=0))
    if name.endswith(".weights.h5"):  # Keras 3 layout also carries the optimizer state
        assert fresh.optimizer.iterations == 2
        fresh.train_on_batch(x[:8], y[:8])
        model.train_on_batch(x[:8], y[:8])
        assert_same_weights(fresh, model)


def test_weights_file_layouts(tmp_path, data):
    model = trained(data)
    model.save_weights(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert f["layers/conv2d/vars/0"].shape == (3, 3, 1, 32)
        assert f["layers/conv2d_2/vars/1"].shape == (64,)
        assert f["layers/dense_1/vars/0"].shape == (64, 10)
        assert f["optimizer/vars/0"][()] == 2 and f["optimizer/vars/0"].dtype == np.int64
        assert len(f["optimizer/vars"]) == 2 + 2 * 10  # iteration, lr, (m, v) per variable
    with h5py.File(tmp_path / "w.h5", "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[0] == "conv2d" and names[-1] == "dense_1"
        assert [n.decode() for n in f["conv2d"].attrs["weight_names"]] == ["conv2d/kernel:0", "conv2d/bias:0"]
        assert f["conv2d/conv2d/kernel:0"].shape == (3, 3, 1, 32)


def test_keras_and_h5_file_layouts(tmp_path, data):
    model = trained(data)
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert set(zf.namelist()) == {"metadata.json", "config.json", "model.weights.h5"}
        config = json.loads(zf.read("config.json"))
        assert config["class_name"] == "Sequential" and config["module"] == "keras"
        assert config["compile_config"]["loss"] == "sparse_categorical_crossentropy"
        assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
        assert config["config"]["layers"][0]["class_name"] == "InputLayer"
        assert "keras_version" in json.loads(zf.read("metadata.json"))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        mc = json.loads(f.attrs["model_config"])
        assert mc["class_name"] == "Sequential"
        assert mc["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 28, 28, 1]
        assert "module" not in mc["config"]["layers"][1]
        tc = json.loads(f.attrs["training_config"])
        assert tc["optimizer_config"]["class_name"] == "Adam" and tc["loss"] == "sparse_categorical_crossentropy"
        assert f.attrs["backend"] == "tensorflow" and f.attrs["keras_version"]
        assert "model_weights/conv2d/conv2d/kernel:0" in f
        assert len(f["optimizer_weights"].attrs["weight_names"]) == 22


def test_loss_object_and_metric_round_trip(tmp_path, data):
    x, y, _ = data
    model = seed_convnet(optimizer=None)
    model.compile(optimizer=rconv.optimizers.Adam(3e-4),
                  loss=rconv.losses.SparseCategoricalCrossentropy(from_logits=False), metrics=["accuracy"])
    model.train_on_batch(x, y)
    for ext in (".keras", ".h5"):
        model.save(tmp_path / f"m{ext}")
        loaded = saving.load_model(tmp_path / f"m{ext}")
        assert type(loaded.loss) is rconv.losses.SparseCategoricalCrossentropy
        assert loaded.optimizer.learning_rate == pytest.approx(3e-4)


def test_api_entry_points(tmp_path, data):
    model = trained(data)
    saving.save_model(model, tmp_path / "a.keras")
    assert isinstance(rconv.saving.load_model(str(tmp_path / "a.keras")), rconv.Sequential)
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        model.save(tmp_path / "a.pkl")
    with pytest.raises(ValueError, match="File format not supported"):
        saving.load_model(tmp_path / "a.pkl")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "a.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "a.keras", overwrite=False)
    model.load_weights(tmp_path / "a.keras")  # weights straight from a .keras archive


# --- atomic saves --------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext, writer", [(".keras", "write_keras3"), (".h5", "write_legacy"),
                                         (".weights.h5", "write_keras3")])
def test_failed_save_keeps_previous_file(tmp_path, data, monkeypatch, ext, writer):
    model = trained(data)
    path = tmp_path / f"model{ext}"
    (model.save_weights if ext == ".weights.h5" else model.save)(path)
    before = path.read_bytes()
    real = getattr(weights_module, writer)

    def crash(h5, *args, **kwargs):
        real(h5, *args, **kwargs)  # write everything, then die before the file is complete
        raise RuntimeError("simulated crash mid-save")

    monkeypatch.setattr(weights_module, writer, crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        (model.save_weights if ext == ".weights.h5" else model.save)(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]  # no temp file left behind
    monkeypatch.undo()
    if ext != ".weights.h5":
        saving.load_model(path)


def test_save_into_new_folder_and_permissions(tmp_path, data):
    model = trained(data)
    path = tmp_path / "sub" / "m.keras"
    model.save(path)
    from rconv.saving import atomic
    assert (os.stat(path).st_mode & 0o777) == 0o666 & ~atomic._UMASK  # not mkstemp's 0600


# --- bad files -----------------------------------------------------------------------------------------
@pytest.fixture()
def saved(tmp_path, data):
    model = trained(data)
    model.save(tmp_path / "good.keras")
    model.save(tmp_path / "good.h5")
    return tmp_path


def _rewrite_zip(src, dst, drop=(), replace=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if replace and info.filename in replace:
                data = replace[info.filename](data)
            zout.writestr(info.filename, data)


def test_truncated_keras_file(saved):
    data = (saved / "good.keras").read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        (saved / "bad.keras").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="bad.keras"):
            saving.load_model(saved / "bad.keras")


def test_non_zip_keras_file(saved):
    (saved / "bad.keras").write_text("not a zip at all")
    with pytest.raises(ValueError, match="not a zip archive"):
        saving.load_model(saved / "bad.keras")


def test_corrupt_member_in_keras_file(saved):
    data = bytearray((saved / "good.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF  # flips a weight byte: CRC check fails
    (saved / "bad.keras").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt|bad.keras"):
        saving.load_model(saved / "bad.keras")


def test_missing_weights_in_keras_file(saved):
    _rewrite_zip(saved / "good.keras", saved / "bad.keras", drop=("model.weights.h5",))
    with pytest.raises(ValueError, match="no model.weights.h5"):
        saving.load_model(saved / "bad.keras")
    _rewrite_zip(saved / "good.keras", saved / "bad2.keras", drop=("config.json",))
    with pytest.raises(ValueError, match="no config.json"):
        saving.load_model(saved / "bad2.keras")
    _rewrite_zip(saved / "good.keras", saved / "bad3.keras", replace={"config.json": lambda b: b[:50]})
    with pytest.raises(ValueError, match="not valid JSON"):
        saving.load_model(saved / "bad3.keras")


def _shrink_dense_in_h5(blob):
    buf = io.BytesIO(blob)
    with h5py.File(buf, "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", data=np.zeros((576, 32), np.float32))
    return buf.getvalue()


def test_wrong_weight_shapes(saved, data):
    _rewrite_zip(saved / "good.keras", saved / "bad.keras", replace={"model.weights.h5": _shrink_dense_in_h5})
    with pytest.raises(ValueError, match=r"layers/dense/vars/0.*\(576, 32\).*\(576, 64\)"):
        saving.load_model(saved / "bad.keras")
    other = rconv.Sequential([rconv.Input((28, 28, 1)), layers.Conv2D(8, 3), layers.Flatten(), layers.Dense(10)])
    with pytest.raises(ValueError, match="good.keras"):
        other.load_weights(saved / "good.keras")
    with pytest.raises(ValueError, match="good.h5"):
        other.load_weights(saved / "good.h5")
    before = other.get_weights()
    small = rconv.Sequential([rconv.Input((28, 28, 1)), layers.Conv2D(32, 3), layers.Conv2D(5, 3)])
    with pytest.raises(ValueError):
        small.load_weights(saved / "good.h5")
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights()))  # nothing half-loaded


def test_non_hdf5_h5_file(saved):
    (saved / "bad.h5").write_bytes(b"\x89HDF\r\n garbage" * 10)
    with pytest.raises(ValueError, match="not an HDF5 file"):
        saving.load_model(saved / "bad.h5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        seed_convnet().load_weights(saved / "bad.h5")
    data = (saved / "good.h5").read_bytes()
    (saved / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises((ValueError, OSError), match="trunc.h5"):
        saving.load_model(saved / "trunc.h5")
    with pytest.raises(FileNotFoundError):
        saving.load_model(saved / "missing.h5")


def test_missing_groups_in_h5(saved):
    with h5py.File(saved / "good.h5", "a") as f:
        del f["model_weights"]
    with pytest.raises(ValueError, match="model_weights"):
        saving.load_model(saved / "good.h5")
    with h5py.File(saved / "noconf.h5", "w") as f:
        f.create_group("model_weights")
    with pytest.raises(ValueError, match="no model config"):
        saving.load_model(saved / "noconf.h5")
    with h5py.File(saved / "empty.weights.h5", "w"):
        pass
    with pytest.raises(ValueError, match="no Keras weights"):
        seed_convnet().load_weights(saved / "empty.weights.h5")


def _edit_config(saved, fn, name="edited.keras"):
    def edit(blob):
        config = json.loads(blob)
        fn(config)
        return json.dumps(config).encode()
    _rewrite_zip(saved / "good.keras", saved / name, replace={"config.json": edit})
    return saved / name


def test_unknown_layer_is_refused(saved):
    def rename(config):
        config["config"]["layers"][1]["class_name"] = "MyFancyLayer"
    with pytest.raises(ValueError, match="MyFancyLayer.*Conv2D.*Dense"):
        saving.load_model(_edit_config(saved, rename))

    def custom_module(config):
        config["config"]["layers"][1]["module"] = "evil.module"
    with pytest.raises(ValueError, match="evil.module"):
        saving.load_model(_edit_config(saved, custom_module, "m2.keras"))


def test_lambda_layer_is_refused(saved, monkeypatch):
    import builtins
    calls = []
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(builtins, "eval", lambda *a, **k: calls.append(a))

    def add_lambda(config):
        config["config"]["layers"].insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "lambda", "function": {"class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAdABkAYMBUwApAk7aAmhp",
                "defaults": None, "closure": None}}}})
    with pytest.raises(ValueError, match="Lambda"):
        saving.load_model(_edit_config(saved, add_lambda))
    with h5py.File(saved / "good.h5", "a") as f:
        mc = json.loads(f.attrs["model_config"])
        mc["config"]["layers"].insert(2, {"class_name": "Lambda", "config": {
            "name": "lambda", "function": ["4wEAAAAAAAAA", None, None], "function_type": "lambda"}})
        f.attrs["model_config"] = json.dumps(mc)
    with pytest.raises(ValueError, match="Lambda"):
        saving.load_model(saved / "good.h5")
    assert calls == []


def test_custom_objects_refused(saved):
    with pytest.raises(ValueError, match="custom objects"):
        saving.load_model(saved / "good.keras", custom_objects={"X": object})
    saving.load_model(saved / "good.keras", safe_mode=False)  # nothing to run: loads as usual


def test_keras_zip_constants():
    assert keras_zip.WEIGHTS_FILE == "model.weights.h5" and keras_zip.CONFIG_FILE == "config.json"

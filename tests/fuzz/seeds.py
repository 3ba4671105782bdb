"""Seed files, sentinel files and sentinel twins for the fuzzer.

Every external reference a mutation plants (HDF5 external storage, external links, virtual datasets) points at
a file under `<workdir>/private/` whose numbers are *sentinel values*: 31337 + k (k < 97), exact in every
dtype the weights use. A loaded weight holding such values means the loader read a file other than the one
it was given (a foreign read).
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "keras_fixtures"
SENTINEL_BASE = 31337.0
SENTINEL_SPAN = 97
BOMB_SEED = "rconv_convnet.keras"


@dataclass(frozen=True)
class Seed:
    name: str          # file name under <workdir>/seeds/
    kind: str          # "keras" | "h5model" | "h5weights"
    model_source: str  # seed whose load_model gives the model that load_weights loads into

    @property
    def suffix(self) -> str:
        return ".weights.h5" if self.name.endswith(".weights.h5") else Path(self.name).suffix


# (fixture file, kind, model source); weights-only files load into the model of their sibling.
_FIXTURE_SEEDS = [
    ("seed_convnet.keras", "keras", "seed_convnet.keras"),
    ("seed_convnet_sgd.h5", "h5model", "seed_convnet_sgd.h5"),
    ("small_functional.keras", "keras", "small_functional.keras"),
    ("small_functional.h5", "h5model", "small_functional.h5"),
    ("small_functional.weights.h5", "h5weights", "small_functional.keras"),
    ("multi_io.keras", "keras", "multi_io.keras"),
    ("multi_io.h5", "h5model", "multi_io.h5"),
    ("tfkeras2_small.h5", "h5model", "tfkeras2_small.h5"),
    ("tfkeras2_small_weights.h5", "h5weights", "tfkeras2_small.h5"),
]
_RCONV_SEEDS = [
    ("rconv_convnet.keras", "keras", "rconv_convnet.keras"),
    ("rconv_convnet.h5", "h5model", "rconv_convnet.h5"),
    ("rconv_convnet.weights.h5", "h5weights", "rconv_convnet.keras"),
    ("rconv_multi_io.keras", "keras", "rconv_multi_io.keras"),
    ("rconv_multi_io.h5", "h5model", "rconv_multi_io.h5"),
    ("rconv_multi_io.weights.h5", "h5weights", "rconv_multi_io.keras"),
]
SEEDS = [Seed(*s) for s in _FIXTURE_SEEDS + _RCONV_SEEDS]


def sentinel_values(n: int, dtype) -> np.ndarray:
    return (SENTINEL_BASE + np.arange(n) % SENTINEL_SPAN).astype(dtype)


def contains_sentinel(array) -> bool:
    """True when `array` holds sentinel values (at least 4, or all of a smaller array)."""
    a = np.asarray(array)
    if a.dtype.kind not in "fiu" or a.size == 0:
        return False
    a = a.astype(np.float64, copy=False).ravel()
    hits = np.count_nonzero((a >= SENTINEL_BASE) & (a < SENTINEL_BASE + SENTINEL_SPAN) & (a == np.floor(a)))
    return hits >= min(4, a.size)


def sentinel_file(workdir, dtype, nbytes: int) -> str:
    """A private raw file of at least `nbytes` bytes of sentinel values in `dtype` (made once, atomically)."""
    dtype = np.dtype(dtype)
    size = max(1 << 16, 1 << (max(int(nbytes), 1) - 1).bit_length())
    path = Path(workdir) / "private" / f"secret_{dtype.str.replace('<', 'le').replace('>', 'be')}_{size}.bin"
    if not path.exists():
        data = sentinel_values(size // dtype.itemsize + 1, dtype).tobytes()[:size]
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return str(path)


def _make_twin(src: str, dst: str) -> None:
    """A copy of the HDF5 file `src` whose every numeric dataset holds sentinel values."""
    import h5py
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as h5:
        def fill(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fiu" and obj.shape is not None:
                if obj.dtype.kind == "f" or obj.dtype.itemsize >= 2:
                    obj[...] = sentinel_values(obj.size, obj.dtype).reshape(obj.shape)
        h5.visititems(fill)


def _make_rconv_seeds(seed_dir: Path) -> None:
    import rconv
    from rconv import layers
    rconv.utils.set_random_seed(1234)
    rng = np.random.default_rng(0)
    conv = rconv.Sequential([rconv.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
                             layers.MaxPooling2D(2), layers.Conv2D(3, 2, padding="same"), layers.Flatten(),
                             layers.Dense(5, activation="relu"), layers.Dense(3, activation="softmax")])
    conv.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    conv.fit(rng.random((8, 12, 12, 1), dtype=np.float32), rng.integers(0, 3, 8), batch_size=4, epochs=1,
             verbose=0)
    a, b = rconv.Input((4,), name="a"), rconv.Input((3,), name="b")
    h = layers.Dense(6, activation="relu", name="h")(layers.Concatenate(name="cat")([a, b]))
    y1, y2 = layers.Dense(2, activation="softmax", name="y1")(h), layers.Dense(1, name="y2")(h)
    multi = rconv.Model([a, b], [y1, y2])
    multi.compile(optimizer="rmsprop", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mae"]])
    multi.fit([rng.random((6, 4), dtype=np.float32), rng.random((6, 3), dtype=np.float32)],
              [rng.integers(0, 2, 6), rng.random((6, 1), dtype=np.float32)], batch_size=3, epochs=1, verbose=0)
    for model, stem in ((conv, "rconv_convnet"), (multi, "rconv_multi_io")):
        model.save(str(seed_dir / f"{stem}.keras"))
        model.save(str(seed_dir / f"{stem}.h5"))
        model.save_weights(str(seed_dir / f"{stem}.weights.h5"))


def _write_bomb(path: Path, seed: Path, size: int) -> None:
    """`seed` (a .keras) whose `model.weights.h5` is padded with zeros to `size` bytes (deflated: ~1/1000)."""
    with zipfile.ZipFile(seed) as src:
        entries = {n: src.read(n) for n in src.namelist()}
    inner = entries.pop("model.weights.h5")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        with zf.open(zipfile.ZipInfo("model.weights.h5"), "w", force_zip64=True) as out:
            out.write(inner)
            zeros, left = bytes(1 << 22), size - len(inner)
            while left > 0:
                out.write(zeros[:min(left, len(zeros))])
                left -= len(zeros)


def prepare(workdir, bomb_bytes: int = 3 << 30) -> dict:
    """Make seeds, private files, twins, the FIFO and the zip-bomb payload under `workdir`; returns the
    context every worker reads (also written to `<workdir>/context.json`)."""
    work = Path(workdir)
    seed_dir, private = work / "seeds", work / "private"
    for d in (seed_dir, private, work / "cases"):
        d.mkdir(parents=True, exist_ok=True)
    for name, _, _ in _FIXTURE_SEEDS:
        shutil.copyfile(FIXTURES / name, seed_dir / name)
    _make_rconv_seeds(seed_dir)
    twins = {}
    for seed in SEEDS:
        src = seed_dir / seed.name
        if seed.kind == "keras":
            inner = private / f"{seed.name}.inner.h5"
            with zipfile.ZipFile(src) as zf:
                inner.write_bytes(zf.read("model.weights.h5"))
            src = inner
        twins[seed.name] = str(private / f"twin_{seed.name}.h5")
        _make_twin(str(src), twins[seed.name])
    fifo = private / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    bomb = work / "bomb_template.keras"
    if bomb_bytes:
        _write_bomb(bomb, seed_dir / BOMB_SEED, bomb_bytes)
    ctx = {"workdir": str(work), "seeds": [asdict(s) for s in SEEDS], "twins": twins, "fifo": str(fifo),
           "bomb": str(bomb) if bomb_bytes else "", "bomb_bytes": bomb_bytes}
    (work / "context.json").write_text(json.dumps(ctx, indent=1))
    return ctx

"""The batch image decoder (thread pool, rows written in place, reduced-size JPEG decoding) and sharded batches
(a data-parallel rank computes only its rows of a global batch)."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from rconv.data.epoch_iterator import EpochIterator  # noqa: E402
from rconv.preprocessing import _decode  # noqa: E402
from rconv.preprocessing.image import ImageDataGenerator  # noqa: E402
from rconv.preprocessing.image_utils import img_to_array, load_img  # noqa: E402
from rconv.preprocessing.iterators import shard_rows  # noqa: E402
from rconv.utils import image_dataset_from_directory  # noqa: E402

AUG = dict(rescale=1.0 / 255, rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
           zoom_range=0.2, horizontal_flip=True)


def _picture(h, w, seed):
    """A smooth photo-like RGB image with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.random(6) * 8 / max(h, w)
    img = np.stack([127 + 100 * np.sin(a[c] * xx + a[c + 3] * yy + c) for c in range(3)], -1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _tree(root, sizes, ext, per_class=5):
    """root/{a,b}/NN.ext with the given (h, w) sizes cycling."""
    k = 0
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[k % len(sizes)]
            Image.fromarray(_picture(h, w, k)).save(root / cls / f"{i:02d}.{ext}", quality=85)
            k += 1
    return root


def _reference_batch(it, index_array, rng):
    """The pre-thread-pool implementation: load_img + img_to_array per file, then the per-image augmentation
    loop (draws, one affine kernel call, flips, standardize per image)."""
    batch = np.zeros((len(index_array),) + it.image_shape, dtype=it.dtype)
    for i, j in enumerate(index_array):
        img = load_img(it.filepaths[j], color_mode=it.color_mode, target_size=it.target_size,
                       interpolation=it.interpolation, keep_aspect_ratio=it.keep_aspect_ratio)
        batch[i] = img_to_array(img, data_format=it.data_format, dtype=it.dtype)
    g = it.image_data_generator
    params = [g._draw_params(batch[i].shape, rng) for i in range(len(batch))]
    matrices = [g._matrix(p, batch[i].shape) for i, p in enumerate(params)]
    if any(m is not None for m in matrices):
        batch = g._affine_batch(batch, matrices).astype(g.dtype, copy=False)
    out = np.empty(batch.shape, dtype=g.dtype)
    for i in range(len(batch)):
        out[i] = g.standardize(np.array(g._post_affine(batch[i], params[i]), dtype=g.dtype, copy=True))
    return out


def _reference(it, idx):
    index_array = it._epoch_indices(it.epoch)[it.batch_size * idx: it.batch_size * (idx + 1)]
    return _reference_batch(it, index_array, np.random.default_rng([it._base_seed, it.epoch, idx, 1]))


# --- same outputs as before -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext,sizes,target", [
    ("png", [(60, 80), (30, 20), (41, 33)], (24, 32)),          # PNGs: never reduced
    ("jpg", [(40, 30), (30, 44), (24, 32)], (24, 32)),          # JPEGs less than twice the target
    ("jpg", [(200, 260)], (200, 260)),                          # JPEGs at the target size
])
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
@pytest.mark.parametrize("augmented", [False, True])
def test_same_batches_as_the_per_image_path(tmp_path, ext, sizes, target, color_mode, augmented):
    root = _tree(tmp_path / "d", sizes, ext)
    gen = ImageDataGenerator(**AUG) if augmented else ImageDataGenerator(rescale=1.0 / 255)
    it = gen.flow_from_directory(root, target_size=target, color_mode=color_mode, batch_size=4, seed=3,
                                 class_mode="binary")
    for idx in range(len(it)):
        np.testing.assert_array_equal(it[idx][0], _reference(it, idx))


def test_keep_aspect_ratio_and_channels_first_match(tmp_path):
    root = _tree(tmp_path / "d", [(50, 70), (33, 20)], "png")
    it = ImageDataGenerator(**AUG, data_format="channels_first").flow_from_directory(
        root, target_size=(16, 16), keep_aspect_ratio=True, batch_size=3, seed=1, interpolation="bilinear")
    for idx in range(len(it)):
        np.testing.assert_array_equal(it[idx][0], _reference(it, idx))


def test_reduce_jpeg_off_is_the_full_decode(tmp_path):
    root = _tree(tmp_path / "d", [(375, 500), (300, 260)], "jpg")
    it = ImageDataGenerator().flow_from_directory(root, target_size=(100, 100), batch_size=4, reduce_jpeg=False,
                                                  shuffle=False)
    for idx in range(len(it)):
        np.testing.assert_array_equal(it[idx][0], _reference(it, idx))
    ds = image_dataset_from_directory(root, image_size=(100, 100), batch_size=4, shuffle=False, verbose=False,
                                      reduce_jpeg=False)
    full = np.concatenate([x for x, _ in ds])
    ref = np.stack([img_to_array(load_img(p, target_size=(100, 100), interpolation="bilinear"))
                    for p in ds.file_paths])
    np.testing.assert_array_equal(full, ref)


# --- reduced-size JPEG decoding ---------------------------------------------------------------------------------

def test_draft_scale():
    assert _decode.draft_scale((500, 375), (100, 100)) == 2        # 1/4 would give 94 rows < 100
    assert _decode.draft_scale((500, 375), (90, 120)) == 4
    assert _decode.draft_scale((500, 375), (180, 180)) == 2
    assert _decode.draft_scale((500, 375), (200, 260)) == 1
    assert _decode.draft_scale((1600, 1600), (100, 100)) == 8
    assert _decode.draft_scale((500, 375), (100, 100), box=(62, 0, 437, 375)) == 2


@pytest.mark.parametrize("target,interpolation,keep", [((100, 100), "bilinear", False), ((90, 120), "bilinear", False),
                                                       ((100, 100), "bilinear", True), ((60, 60), "box", False),
                                                       ((100, 100), "nearest", False)])
def test_reduced_jpeg_is_close_to_the_full_decode(tmp_path, target, interpolation, keep):
    """Tolerance (0..255 pixels, photo-like images): mean |difference| <= 1.5 and max <= 24 for bilinear / box;
    nearest picks single pixels of the full image, where the DCT scaling averages: mean <= 3, max <= 40."""
    root = _tree(tmp_path / "d", [(375, 500), (480, 360)], "jpg", per_class=3)
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    out = np.zeros((len(paths),) + target + (3,), np.float32)
    _decode.decode_into(out, paths, target_size=target, interpolation=interpolation, keep_aspect_ratio=keep)
    ref = np.stack([img_to_array(load_img(p, target_size=target, interpolation=interpolation,
                                          keep_aspect_ratio=keep)) for p in paths])
    diff = np.abs(out - ref)
    mean_tol, max_tol = (3, 40) if interpolation == "nearest" else (1.5, 24)
    assert diff.mean() <= mean_tol and diff.max() <= max_tol, (diff.mean(), diff.max())
    img = _decode.load_reduced(paths[0], target_size=target, interpolation=interpolation, keep_aspect_ratio=keep)
    assert img.size == (target[1], target[0])
    gray = np.zeros((len(paths),) + target + (1,), np.float32)
    _decode.decode_into(gray, paths, color_mode="grayscale", target_size=target, interpolation=interpolation)
    ref = np.stack([img_to_array(load_img(p, color_mode="grayscale", target_size=target,
                                          interpolation=interpolation)) for p in paths])
    assert np.abs(gray - ref).mean() <= mean_tol


@pytest.mark.parametrize("subsampling,progressive", [(0, False), (1, False), (2, False), (2, True)])
@pytest.mark.parametrize("keep", [False, True])
def test_turbo_jpeg_path_gives_pillows_pixels(tmp_path, monkeypatch, subsampling, progressive, keep):
    """simplejpeg (when installed) and Pillow decode to the same pixels, at every scale; grayscale and CMYK
    JPEGs, other color modes and undecodable files go through Pillow."""
    pytest.importorskip("simplejpeg")
    paths = []
    for k, (h, w) in enumerate([(375, 500), (217, 333), (9, 17), (603, 801), (100, 100)]):
        p = tmp_path / f"{k}.jpg"
        Image.fromarray(_picture(h, w, k)).save(p, quality=90, subsampling=subsampling, progressive=progressive)
        paths.append(str(p))
    gray, cmyk = tmp_path / "gray.jpg", tmp_path / "cmyk.jpg"
    Image.fromarray(_picture(120, 90, 9)[..., 0]).save(gray)
    Image.fromarray(_picture(120, 90, 9)).convert("CMYK").save(cmyk)
    paths += [str(gray), str(cmyk)]
    for target, interpolation in [((100, 100), "nearest"), ((40, 60), "bilinear"), ((600, 800), "nearest"),
                                  ((20, 20), "box")]:
        for color_mode, ch in [("rgb", 3), ("grayscale", 1)]:
            fast = np.zeros((len(paths),) + target + (ch,), np.float32)
            _decode.decode_into(fast, paths, color_mode=color_mode, target_size=target, interpolation=interpolation,
                                keep_aspect_ratio=keep)
            with monkeypatch.context() as m:
                m.setattr(_decode, "simplejpeg", None)
                slow = np.zeros_like(fast)
                _decode.decode_into(slow, paths, color_mode=color_mode, target_size=target,
                                    interpolation=interpolation, keep_aspect_ratio=keep)
            np.testing.assert_array_equal(fast, slow)
    assert _decode._turbo_jpeg(open(paths[0], "rb").read(), "rgb", (100, 100), False, True)[1] == 2
    for data, mode in [(open(gray, "rb").read(), "rgb"), (open(cmyk, "rb").read(), "rgb"),
                       (open(paths[0], "rb").read(), "grayscale"), (b"\xff\xd8\xff garbage", "rgb")]:
        assert _decode._turbo_jpeg(data, mode, (100, 100), False, True) is None


# --- threads, order, errors ---------------------------------------------------------------------------------------

def test_thread_count_and_prefetch_do_not_change_batches(tmp_path, monkeypatch):
    root = _tree(tmp_path / "d", [(375, 500), (40, 60), (120, 90)], "jpg", per_class=7)

    def batches(threads, prefetch, stream):
        monkeypatch.setattr(_decode, "DECODE_THREADS", threads)
        it = ImageDataGenerator(**AUG).flow_from_directory(root, target_size=(50, 50), batch_size=4, seed=5)
        it.prefetch = prefetch
        out = [next(it)[0] for _ in range(2 * len(it))] if stream else [it[i][0] for i in range(len(it))]
        it.close()
        return out

    ref = batches(1, 0, False)
    for threads, prefetch in ((3, 0), (2, 3), (8, 1)):
        for a, b in zip(batches(threads, prefetch, False), ref):
            np.testing.assert_array_equal(a, b)
    stream = batches(2, 3, True)
    for a, b in zip(stream[:len(ref)], ref):
        np.testing.assert_array_equal(a, b)


def test_a_failing_file_is_named_and_nothing_hangs(tmp_path):
    root = _tree(tmp_path / "d", [(30, 40)], "png", per_class=6)
    (root / "a" / "03.png").write_bytes(b"not an image")
    (root / "b" / "01.png").write_bytes(b"not an image either")
    it = ImageDataGenerator().flow_from_directory(root, target_size=(8, 8), batch_size=12, shuffle=False)
    with pytest.raises(OSError, match=r"a[/\\]03\.png"):  # the first failing row, whatever the thread timing
        it[0]
    with pytest.raises(OSError, match=r"a[/\\]03\.png"):
        next(it)
    p = it._prefetcher
    it.close()
    assert p is None or not p.alive
    before = {t.name for t in threading.enumerate() if t.name.startswith("rconv-") and "decode" not in t.name}
    assert not before, before


def test_other_errors_get_the_file_name(tmp_path, monkeypatch):
    paths = [str(p) for p in sorted(_tree(tmp_path / "d", [(10, 10)], "png", per_class=3).rglob("*.png"))]
    real = _decode.finish_img

    def broken(img, path, *args, **kwargs):
        if str(path).endswith("b/01.png"):
            raise ValueError("boom")
        return real(img, path, *args, **kwargs)
    monkeypatch.setattr(_decode, "finish_img", broken)
    with pytest.raises(ValueError, match="boom") as info:
        _decode.decode_into(np.zeros((len(paths), 10, 10, 3), np.float32), paths, target_size=(10, 10))
    assert any("01.png" in note for note in getattr(info.value, "__notes__", [])), info.value
    out = np.zeros((len(paths), 10, 10, 3), np.float32)  # the pool still works
    monkeypatch.setattr(_decode, "finish_img", real)
    _decode.decode_into(out, paths, target_size=(10, 10))
    assert out.any()


def test_abandoned_iterators_leave_no_thread(tmp_path):
    root = _tree(tmp_path / "d", [(30, 40)], "jpg", per_class=6)
    it = ImageDataGenerator(**AUG).flow_from_directory(root, target_size=(8, 8), batch_size=3)
    next(it)
    it[0], it[1]
    threads = [it._prefetcher, it._seq_prefetcher]
    del it
    gc.collect()
    deadline = time.time() + 5
    while any(p is not None and p.alive for p in threads) and time.time() < deadline:
        time.sleep(0.02)
    assert not any(p is not None and p.alive for p in threads)


# --- shards ----------------------------------------------------------------------------------------------------

def _count_loads(monkeypatch):
    loads = []
    real = _decode.load_reduced

    def counted(path, *args, **kwargs):
        loads.append(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(_decode, "load_reduced", counted)
    return loads


@pytest.mark.parametrize("augmented", [False, True])
def test_a_shard_decodes_only_its_rows(tmp_path, monkeypatch, augmented):
    root = _tree(tmp_path / "d", [(375, 500), (40, 60)], "jpg", per_class=7)
    gen = ImageDataGenerator(**AUG) if augmented else ImageDataGenerator(rescale=1.0 / 255)
    it = gen.flow_from_directory(root, target_size=(50, 50), batch_size=5, seed=2, class_mode="binary")
    it.prefetch = 0
    loads = _count_loads(monkeypatch)
    for idx in range(len(it)):
        full_x, full_y = it[idx]
        n = len(full_x)
        for shard in ((0, 2), (1, 2), (2, 3)):
            del loads[:]
            x, y = it._get_shard(idx, shard)
            lo, hi = shard_rows(n, shard)
            assert len(loads) == hi - lo and x.shape == full_x.shape
            np.testing.assert_array_equal(x[lo:hi], full_x[lo:hi])
            np.testing.assert_array_equal(y, full_y)
            assert not x[:lo].any() and not x[hi:].any()


def test_flow_and_custom_transform_shards(monkeypatch):
    x = np.random.default_rng(0).random((11, 9, 8, 3), dtype=np.float32) * 255
    y = np.arange(11)

    class Custom(ImageDataGenerator):
        def get_random_transform(self, img_shape, seed=None):
            return dict(super().get_random_transform(img_shape, seed), brightness=None)

    for gen in (ImageDataGenerator(**AUG), ImageDataGenerator(**AUG, channel_shift_range=20),
                Custom(**AUG)):
        it = gen.flow(x, y, batch_size=4, seed=1)
        for idx in range(len(it)):
            full_x, full_y = it[idx]
            lo, hi = shard_rows(len(full_x), (1, 2))
            part_x, part_y = it._get_shard(idx, (1, 2))
            np.testing.assert_array_equal(part_x[lo:hi], full_x[lo:hi])
            np.testing.assert_array_equal(part_y, full_y)


def test_epoch_iterator_shards_image_inputs(tmp_path, monkeypatch):
    root = _tree(tmp_path / "d", [(64, 48)], "png", per_class=5)
    loads = _count_loads(monkeypatch)
    it = ImageDataGenerator(**AUG).flow_from_directory(root, target_size=(16, 16), batch_size=4, seed=0,
                                                       class_mode="binary")
    it.prefetch = 0  # count exactly (the prefetch thread decodes ahead)
    full = [b for _, b in EpochIterator(it, shuffle=True).enumerate_epoch()]
    total = len(loads)
    it.epoch = 0  # the same epoch again (EpochIterator called on_epoch_end)
    del loads[:]
    part = [b for _, b in EpochIterator(it, shuffle=True, shard=(0, 2)).enumerate_epoch()]
    assert total == 10 and 0 < len(loads) < total
    for (fx, fy, _), (px, py, _) in zip(full, part):
        lo, hi = shard_rows(len(fx), (0, 2))
        np.testing.assert_array_equal(px[lo:hi], fx[lo:hi])
        np.testing.assert_array_equal(py, fy)

    ds = image_dataset_from_directory(root, image_size=(16, 16), batch_size=3, seed=4, verbose=False)
    ds.prefetch_batches = 0
    del loads[:]
    full = [b for _, b in EpochIterator(ds).enumerate_epoch()]
    ds._epoch = 0
    n_full = len(loads)
    del loads[:]
    part = [b for _, b in EpochIterator(ds, shard=(1, 2)).enumerate_epoch()]
    assert len(loads) == sum(hi - lo for lo, hi in (shard_rows(len(b[0]), (1, 2)) for b in full)) < n_full
    for (fx, fy, _), (px, py, _) in zip(full, part):
        lo, hi = shard_rows(len(fx), (1, 2))
        np.testing.assert_array_equal(px[lo:hi], fx[lo:hi])
        np.testing.assert_array_equal(py, fy)
    with pytest.raises(ValueError, match="rank"):
        EpochIterator(ds, shard=(2, 2))


# --- PyDataset(workers > 1): batches loaded ahead by threads, used in order ---------------------------------------

def test_pydataset_workers_prefetch_in_order():
    import rconv
    from rconv.utils import PyDataset

    class Data(PyDataset):
        def __init__(self, fail_at=None, **kw):
            super().__init__(**kw)
            self.fail_at, self.calls, self.running, self.peak = fail_at, [], 0, 0
            self.lock = threading.Lock()

        def __len__(self):
            return 9

        def __getitem__(self, i):
            with self.lock:
                self.calls.append(i)
                self.running += 1
                self.peak = max(self.peak, self.running)
            time.sleep(0.01 * ((i * 7) % 3))  # finish out of order
            with self.lock:
                self.running -= 1
            if i == self.fail_at:
                raise KeyError(f"batch {i} failed")
            x = np.full((2, 3), i, np.float32)
            return x, np.full((2, 1), i, np.float32)

    serial = [b for _, b in EpochIterator(Data()).enumerate_epoch()]
    data = Data(workers=3, max_queue_size=4)
    threaded = [b for _, b in EpochIterator(data).enumerate_epoch()]
    assert [int(b[0][0, 0]) for b in threaded] == list(range(9)) and data.peak > 1 and data.running == 0
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(KeyError, match="batch 4 failed"):
        list(EpochIterator(Data(fail_at=4, workers=2)).enumerate_epoch())
    # an abandoned pass leaves no load running
    data = Data(workers=2)
    it = EpochIterator(data).enumerate_epoch()
    next(it)
    it.close()
    assert data.running == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("rconv-pydataset")]
    # fit on it trains like the serial dataset
    def train(ds):
        rconv.utils.set_random_seed(0)
        model = rconv.Sequential([rconv.layers.Input((3,)), rconv.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(ds, epochs=2, verbose=0)
        return model.get_weights()
    for a, b in zip(train(Data()), train(Data(workers=4))):
        np.testing.assert_array_equal(a, b)

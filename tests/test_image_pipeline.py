"""The Keras image pipeline: ImageDataGenerator / flow / flow_from_directory / image_dataset_from_directory."""
import gc
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

import rconv
from rconv.preprocessing import affine as affine_mod
from rconv.preprocessing.image import ImageDataGenerator, array_to_img, img_to_array, load_img, save_img
from rconv.utils import image_dataset_from_directory

HAS_KERNEL = affine_mod.kernel_available()
TARGET = (16, 20)  # non-square (h, w), so a row/column swap shows up


# --- fixtures ---------------------------------------------------------------------------------------------

def _make_tree(root):
    """cats/: 10 reddish images, dogs/: 9 bluish + 1 in a nested folder; PNG and JPEG; plus non-images."""
    rs = np.random.RandomState(0)
    for cls, base in (("cats", (210, 40, 40)), ("dogs", (40, 40, 210))):
        os.makedirs(root / cls / "sub", exist_ok=True)
        for i in range(10):
            w, h = 24 + 3 * i, 18 + 2 * i
            arr = np.clip(np.array(base) + rs.randint(-25, 25, size=(h, w, 3)), 0, 255).astype(np.uint8)
            ext = "png" if i % 2 == 0 else "jpg"
            sub = "sub/" if (cls == "dogs" and i == 9) else ""
            Image.fromarray(arr).save(root / cls / f"{sub}{cls[:-1]}_{i:02d}.{ext}")
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\x00\x01")
    (root / "README.md").write_text("a file at top level is not a class")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return _make_tree(tmp_path_factory.mktemp("imgs"))


def _is_cat(x):
    """Reddish → cat (class 0), bluish → dog (class 1); works on 0..255 or rescaled images."""
    return x[..., 0].mean() > x[..., 2].mean()


# --- flow_from_directory ----------------------------------------------------------------------------------

def test_counts_message_and_indices(tree, capsys):
    it = ImageDataGenerator().flow_from_directory(str(tree), target_size=TARGET, batch_size=6, shuffle=False)
    assert capsys.readouterr().out == "Found 20 images belonging to 2 classes.\n"
    assert it.class_indices == {"cats": 0, "dogs": 1}
    assert it.samples == it.n == 20 and it.batch_size == 6 and len(it) == 4
    assert it.classes.dtype == np.int32 and list(it.classes) == [0] * 10 + [1] * 10
    assert it.filenames[0] == os.path.join("cats", "cat_00.png")
    assert os.path.join("dogs", "sub", "dog_09.jpg") in it.filenames
    assert not any(f.endswith((".txt", ".db", ".md")) for f in it.filenames)
    assert it.filepaths[0] == os.path.join(str(tree), "cats", "cat_00.png")
    x, y = it[3]                       # last, short batch
    assert x.shape == (2,) + TARGET + (3,) and x.dtype == np.float32
    assert y.dtype == np.float32 and y.shape == (2, 2)
    it.close()


@pytest.mark.parametrize("mode", ["binary", "sparse", "categorical", "input", None])
def test_class_modes(tree, mode):
    it = ImageDataGenerator(rescale=1 / 255).flow_from_directory(tree, target_size=TARGET, class_mode=mode,
                                                                 batch_size=8, seed=1)
    out = it[0]
    x = out if mode is None else out[0]
    assert x.shape == (8,) + TARGET + (3,)
    if mode is None:
        return
    y = out[1]
    assert y.dtype == np.float32
    truth = np.array([0.0 if _is_cat(xi) else 1.0 for xi in x], dtype=np.float32)
    if mode in ("binary", "sparse"):
        assert y.shape == (8,)
        np.testing.assert_array_equal(y, truth)
    elif mode == "categorical":
        np.testing.assert_array_equal(y, np.stack([1 - truth, truth], 1))
    else:
        np.testing.assert_array_equal(y, x)


def test_validation_split_subsets(tree, capsys):
    gen = ImageDataGenerator(validation_split=0.3)
    tr = gen.flow_from_directory(tree, target_size=TARGET, subset="training")
    va = gen.flow_from_directory(tree, target_size=TARGET, subset="validation")
    out = capsys.readouterr().out
    # Keras splits each class: validation = first int(0.3 * 10) = 3 files of each class.
    assert out == "Found 14 images belonging to 2 classes.\nFound 6 images belonging to 2 classes.\n"
    assert set(tr.filenames).isdisjoint(va.filenames)
    assert len(set(tr.filenames) | set(va.filenames)) == 20
    assert va.filenames[:3] == [os.path.join("cats", f"cat_0{i}.{e}") for i, e in ((0, "png"), (1, "jpg"), (2, "png"))]
    with pytest.raises(ValueError):
        gen.flow_from_directory(tree, subset="test")


def test_rescale_and_grayscale(tree):
    raw = ImageDataGenerator().flow_from_directory(tree, target_size=TARGET, shuffle=False, batch_size=5)
    scaled = ImageDataGenerator(rescale=1.0 / 255).flow_from_directory(tree, target_size=TARGET, shuffle=False,
                                                                       batch_size=5)
    np.testing.assert_allclose(scaled[1][0], raw[1][0] / 255, rtol=1e-6)
    assert raw[1][0].max() > 1.5 and scaled[1][0].max() <= 1.0
    # load_img + nearest resize, like Keras's default interpolation
    ref = np.asarray(Image.open(raw.filepaths[5]).convert("RGB").resize(TARGET[::-1], Image.NEAREST), np.float32)
    np.testing.assert_array_equal(raw[1][0][0], ref)
    g = ImageDataGenerator().flow_from_directory(tree, target_size=TARGET, color_mode="grayscale", batch_size=4)
    assert g[0][0].shape == (4,) + TARGET + (1,)


def test_seeded_augmentation_is_deterministic(tree):
    kw = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
              horizontal_flip=True, rescale=1.0 / 255)
    a = ImageDataGenerator(**kw).flow_from_directory(tree, target_size=TARGET, batch_size=7, seed=5)
    b = ImageDataGenerator(**kw).flow_from_directory(tree, target_size=TARGET, batch_size=7, seed=5)
    b.prefetch = 0  # synchronous: same batches whatever computes them
    c = ImageDataGenerator(**kw).flow_from_directory(tree, target_size=TARGET, batch_size=7, seed=6)
    for _ in range(4):                 # crosses an epoch boundary (3 batches per epoch)
        xa, ya = next(a)
        xb, yb = next(b)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])
    np.testing.assert_array_equal(a[1][0], b[1][0])       # Sequence access agrees with the stream's epoch 0
    a.close()


# --- the stream: infinite, reshuffling, prefetching ---------------------------------------------------------

def _indexed(n=10, h=4, w=5):
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, h, w, 3), np.float32)
    return x, np.arange(n)


def test_flow_batches_infinite_and_reshuffled():
    x, y = _indexed()
    it = ImageDataGenerator().flow(x, y, batch_size=4, seed=0)
    assert len(it) == 3
    epochs = []
    for _ in range(3):
        seen = []
        for size in (4, 4, 2):         # Keras's stream: the last batch of each epoch is short
            bx, by = next(it)
            assert bx.shape == (size, 4, 5, 3) and by.shape == (size,)
            np.testing.assert_array_equal(bx[:, 0, 0, 0], by)       # images stay paired with labels
            seen += list(by)
        assert sorted(seen) == list(range(10))
        epochs.append(seen)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    order0 = np.concatenate([it[i][1] for i in range(3)])
    it.on_epoch_end()
    order1 = np.concatenate([it[i][1] for i in range(3)])
    assert sorted(order1) == list(range(10)) and list(order0) != list(order1)
    it.close()
    plain = ImageDataGenerator().flow(x, batch_size=3, shuffle=False)   # no y: images only
    np.testing.assert_array_equal(next(plain), x[:3])
    plain.close()


def test_flow_sample_weight_and_subset():
    x, y = _indexed(10)
    y = y % 2
    sw = np.linspace(0, 1, 10)
    bx, by, bw = ImageDataGenerator().flow(x, y, sample_weight=sw, shuffle=False, batch_size=5)[1]
    np.testing.assert_array_equal(by, y[5:])
    np.testing.assert_array_equal(bw, sw[5:])
    gen = ImageDataGenerator(validation_split=0.2)
    va = gen.flow(x, y, subset="validation", shuffle=False)
    tr = gen.flow(x, y, subset="training", shuffle=False)
    assert va.n == 2 and tr.n == 8
    np.testing.assert_array_equal(va[0][1], y[:2])
    with pytest.raises(ValueError):
        ImageDataGenerator().flow(x[:, 0])         # rank 3


def test_prefetch_thread_stops(tree):
    it = ImageDataGenerator().flow_from_directory(tree, target_size=TARGET, batch_size=4)
    next(it)
    p = it._prefetcher
    assert p is not None and p.alive
    it.reset()
    assert not p.alive
    next(it)
    p = it._prefetcher
    del it
    gc.collect()
    deadline = time.time() + 5
    while p.alive and time.time() < deadline:
        time.sleep(0.02)
    assert not p.alive, "an abandoned iterator's prefetch thread must exit"


def test_no_hang_at_interpreter_exit(tree):
    code = textwrap.dedent(f"""
        from rconv.preprocessing.image import ImageDataGenerator
        it = ImageDataGenerator(rotation_range=10).flow_from_directory({str(tree)!r}, target_size=(16, 20),
                                                                       batch_size=2)
        next(it)
        print("done")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("done")


def test_worker_errors_reach_the_consumer(tmp_path):
    root = _make_tree(tmp_path / "d")
    (root / "cats" / "zz_broken.png").write_bytes(b"this is not a png")
    it = ImageDataGenerator().flow_from_directory(root, target_size=TARGET, batch_size=21, shuffle=False)
    with pytest.raises(OSError, match="zz_broken.png"):
        next(it)
    with pytest.raises(OSError, match="zz_broken.png"):
        it[0]


def test_missing_directory(tmp_path):
    missing = tmp_path / "no_such_dir"
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        ImageDataGenerator().flow_from_directory(missing)
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        image_dataset_from_directory(missing)


# --- standardisation, fit ------------------------------------------------------------------------------------

def test_standardize_order_and_fit():
    rs = np.random.RandomState(0)
    x = rs.uniform(0, 255, size=(6, 5, 4, 3)).astype(np.float32)
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, rescale=0.5)
    gen.fit(x)
    np.testing.assert_allclose(gen.mean.ravel(), (x * 0.5).mean(axis=(0, 1, 2)), rtol=1e-5)
    out = gen.flow(x, batch_size=6, shuffle=False)[0]
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-3)
    # Keras's order: preprocessing_function runs before rescale
    g2 = ImageDataGenerator(rescale=2.0, preprocessing_function=lambda im: im + 1, samplewise_center=True)
    np.testing.assert_allclose(g2.standardize(x[0].copy()), (x[0] + 1) * 2 - ((x[0] + 1) * 2).mean(),
                               rtol=1e-5, atol=1e-3)


def test_random_transform_params():
    gen = ImageDataGenerator(rotation_range=30, width_shift_range=0.1, height_shift_range=3, zoom_range=0.2,
                             shear_range=10, horizontal_flip=True)
    ps = [gen.get_random_transform((40, 50, 3), seed=s) for s in range(200)]
    assert all(abs(p["theta"]) <= 30 and abs(p["shear"]) <= 10 for p in ps)
    assert all(abs(p["ty"]) <= 0.1 * 50 for p in ps)                  # width shift: fraction of width
    assert {abs(p["tx"]) for p in ps} <= {0.0, 1.0, 2.0}               # int range: pixels in [0, 3)
    assert all(0.8 <= p["zx"] <= 1.2 and 0.8 <= p["zy"] <= 1.2 for p in ps)
    assert any(p["zx"] != p["zy"] for p in ps)                         # independent zooms
    assert 50 < sum(p["flip_horizontal"] for p in ps) < 150
    assert gen.get_random_transform((40, 50, 3), seed=3) == gen.get_random_transform((40, 50, 3), seed=3)


# --- geometric augmentation vs NumPy references ---------------------------------------------------------------

def _keras_matrix(p, h, w):
    """Keras's composition (row, col), written out independently of the library."""
    t, s = np.deg2rad(p["theta"]), np.deg2rad(p["shear"])
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    shift = np.array([[1, 0, p["tx"]], [0, 1, p["ty"]], [0, 0, 1]])
    shear = np.array([[1, -np.sin(s), 0], [0, np.cos(s), 0], [0, 0, 1]])
    zoom = np.array([[p["zx"], 0, 0], [0, p["zy"], 0], [0, 0, 1]])
    m = rot @ shift @ shear @ zoom
    o = np.array([[1, 0, h / 2 - 0.5], [0, 1, w / 2 - 0.5], [0, 0, 1]])
    r = np.array([[1, 0, -(h / 2 - 0.5)], [0, 1, -(w / 2 - 0.5)], [0, 0, 1]])
    return o @ m @ r


def _scipy_like_bilinear(img, m):
    """scipy.ndimage.affine_transform(order=1, mode='nearest') per channel: out[o] = in[m @ o]."""
    h, w, _ = img.shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    sr = m[0, 0] * rr + m[0, 1] * cc + m[0, 2]
    sc = m[1, 0] * rr + m[1, 1] * cc + m[1, 2]
    sr, sc = np.clip(sr, 0, h - 1), np.clip(sc, 0, w - 1)
    r0, c0 = np.floor(sr).astype(int), np.floor(sc).astype(int)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (sr - r0)[..., None], (sc - c0)[..., None]
    return ((1 - fr) * ((1 - fc) * img[r0, c0] + fc * img[r0, c1]) + fr * ((1 - fc) * img[r1, c0] + fc * img[r1, c1]))


def _image(h, w, c=3, seed=0):
    return np.random.RandomState(seed).uniform(0, 255, size=(h, w, c)).astype(np.float32)


def test_rotation_90_and_whole_pixel_shift():
    img = _image(9, 9)
    gen = ImageDataGenerator(fill_mode="constant", cval=-1.0)
    rot = gen.apply_transform(img, {"theta": 90})
    np.testing.assert_allclose(rot, np.rot90(img, -1, axes=(0, 1)), atol=1e-3)
    img2 = _image(8, 11, seed=1)
    shifted = gen.apply_transform(img2, {"tx": 2, "ty": -3})      # out[r, c] = in[r + 2, c - 3]
    ref = np.full_like(img2, -1.0)
    ref[:-2, 3:] = img2[2:, :-3]
    np.testing.assert_allclose(shifted, ref, atol=1e-3)
    flipped = gen.apply_transform(img2, {"flip_horizontal": True, "flip_vertical": True})
    np.testing.assert_array_equal(flipped, img2[::-1, ::-1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_matrix_matches_bilinear_reference(seed):
    img = _image(13, 17, seed=seed)
    gen = ImageDataGenerator(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=20,
                             zoom_range=0.3, fill_mode="nearest")
    p = gen.get_random_transform(img.shape, seed=seed)
    p["flip_horizontal"] = False
    out = gen.apply_transform(img, p)
    ref = _scipy_like_bilinear(img.astype(np.float64), _keras_matrix(p, 13, 17))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=2e-2)


def test_kernel_vector_conversion():
    m = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0, 0, 1]])
    # input_x(col) = m11 x + m10 y + m12, input_y(row) = m01 x + m00 y + m02
    np.testing.assert_array_equal(affine_mod.matrix_to_kernel_vector(m), [5, 4, 6, 2, 1, 3, 0, 0])


@pytest.mark.skipif(not HAS_KERNEL, reason="rconv._rconv.affine_transform not built yet")
def test_batches_go_through_the_rust_kernel(monkeypatch):
    calls = []
    real = rconv.ops.affine_transform

    def spy(*a, **k):
        calls.append(np.shape(a[0]))
        return real(*a, **k)
    monkeypatch.setattr(rconv.ops, "affine_transform", spy)
    x = np.stack([_image(10, 12, seed=i) for i in range(5)])
    out = ImageDataGenerator(rotation_range=30, zoom_range=0.2).flow(x, batch_size=5, shuffle=False, seed=0)[0]
    assert calls == [(5, 10, 12, 3)]                                  # one call for the whole batch
    assert out.shape == x.shape
    ref = affine_mod.numpy_affine_transform  # and the kernel agrees with the NumPy resampler
    params = dict(theta=25, tx=1.5, ty=-2.25, shear=8, zx=0.9, zy=1.2)
    vec = affine_mod.matrix_to_kernel_vector(_keras_matrix(params, 10, 12))
    for mode in ("constant", "nearest", "reflect", "wrap"):
        for interp in ("bilinear", "nearest"):
            k = real(x[:2], np.stack([vec, vec]), interpolation=interp, fill_mode=mode, fill_value=3.0)
            r = ref(x[:2], np.stack([vec, vec]), interp, mode, 3.0)
            np.testing.assert_allclose(k, r, atol=1e-2, err_msg=f"{mode}/{interp}")


# --- image I/O helpers -----------------------------------------------------------------------------------------

def test_load_save_roundtrip(tmp_path):
    img = _image(6, 7).round()
    save_img(tmp_path / "a.png", img, scale=False)
    back = img_to_array(load_img(tmp_path / "a.png"))
    np.testing.assert_array_equal(back, img)
    assert img_to_array(load_img(tmp_path / "a.png", color_mode="grayscale")).shape == (6, 7, 1)
    assert load_img(tmp_path / "a.png", target_size=(3, 4)).size == (4, 3)
    assert array_to_img(img).mode == "RGB"
    Image.fromarray(img.astype(np.uint8)).save(tmp_path / "b.gif")
    assert img_to_array(load_img(str(tmp_path / "b.gif"))).shape == (6, 7, 3)


# --- image_dataset_from_directory -------------------------------------------------------------------------------

def test_image_dataset_from_directory(tree, capsys):
    ds = image_dataset_from_directory(tree, image_size=TARGET, batch_size=8, seed=3)
    assert capsys.readouterr().out == "Found 20 files belonging to 2 classes.\n"
    assert ds.class_names == ["cats", "dogs"] and len(ds) == 3
    assert len(set(ds.file_paths)) == 20 and not any(p.endswith((".txt", ".db", ".md")) for p in ds.file_paths)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [8, 8, 4]
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (8,) + TARGET + (3,) and x.max() > 1.5 and y.dtype == np.int32
    np.testing.assert_array_equal(y, [0 if _is_cat(xi) else 1 for xi in x])
    assert sum(b[0].shape[0] for b in ds) == 20           # re-iterable
    assert len(list(ds.take(2))) == 2 and len(ds.take(2)) == 2
    assert len(list(ds.prefetch(2).cache())) == 3


def test_image_dataset_file_order_matches_keras(tree):
    ds = image_dataset_from_directory(tree, image_size=TARGET, seed=11, verbose=False)
    files = []
    for cls in ("cats", "dogs"):
        for root, _, names in sorted(os.walk(tree / cls), key=lambda t: t[0]):
            files += [os.path.join(root, n) for n in sorted(names) if n.endswith((".png", ".jpg"))]
    np.random.RandomState(11).shuffle(files)
    assert [os.path.normpath(p) for p in ds.file_paths] == [os.path.normpath(p) for p in files]


@pytest.mark.parametrize("label_mode,shape,dtype", [("categorical", (5, 2), np.float32),
                                                    ("binary", (5, 1), np.float32), ("int", (5,), np.int32)])
def test_image_dataset_label_modes(tree, label_mode, shape, dtype):
    ds = image_dataset_from_directory(tree, label_mode=label_mode, image_size=TARGET, batch_size=5, seed=0,
                                      color_mode="grayscale", verbose=False)
    x, y = next(iter(ds))
    assert x.shape == (5,) + TARGET + (1,) and y.shape == shape and y.dtype == dtype


def test_image_dataset_validation_split(tree, capsys):
    tr = image_dataset_from_directory(tree, validation_split=0.2, subset="training", seed=7, image_size=TARGET)
    va = image_dataset_from_directory(tree, validation_split=0.2, subset="validation", seed=7, image_size=TARGET)
    out = capsys.readouterr().out.splitlines()
    assert out == ["Found 20 files belonging to 2 classes.", "Using 16 files for training.",
                   "Found 20 files belonging to 2 classes.", "Using 4 files for validation."]
    assert set(tr.file_paths).isdisjoint(va.file_paths) and len(tr.file_paths) + len(va.file_paths) == 20
    both = image_dataset_from_directory(tree, validation_split=0.2, subset="both", seed=7, image_size=TARGET,
                                        verbose=False)
    assert both[0].file_paths == tr.file_paths and both[1].file_paths == va.file_paths
    with pytest.raises(ValueError, match="seed"):
        image_dataset_from_directory(tree, validation_split=0.2, subset="training")
    images_only = image_dataset_from_directory(tree, labels=None, image_size=TARGET, batch_size=20, seed=0)
    assert capsys.readouterr().out.endswith("Found 20 files.\n")
    assert next(iter(images_only)).shape == (20,) + TARGET + (3,)


def test_sequence_access_is_prefetched_and_identical(tree):
    kw = dict(rotation_range=20, zoom_range=0.1, horizontal_flip=True)
    a = ImageDataGenerator(**kw).flow_from_directory(tree, target_size=TARGET, batch_size=6, seed=2)
    b = ImageDataGenerator(**kw).flow_from_directory(tree, target_size=TARGET, batch_size=6, seed=2)
    b.prefetch = 0
    for _ in range(2):                                    # Keras 3 fit's PyDataset pattern
        for i in range(len(a)):
            (xa, ya), (xb, yb) = a[i], b[i]
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
        assert a._seq_prefetcher is not None and a._seq_prefetcher.alive
        a.on_epoch_end()
        b.on_epoch_end()
    np.testing.assert_array_equal(a[2][0], b[2][0])       # random access after sequential access
    a.close()
    assert a._seq_prefetcher is None


def test_stream_continues_after_a_failed_batch(tmp_path):
    root = _make_tree(tmp_path / "d")
    (root / "cats" / "cat_00.png").write_bytes(b"corrupt")
    it = ImageDataGenerator().flow_from_directory(root, target_size=TARGET, batch_size=10, shuffle=False,
                                                        class_mode="binary")
    with pytest.raises(OSError, match="cat_00.png"):
        next(it)
    x, y = next(it)                                       # the failed batch is skipped, like Keras
    assert list(y) == [1.0] * 10
    it.close()


def test_numpy_fallback_matches_kernel_path(monkeypatch):
    x = np.stack([_image(10, 12, seed=i) for i in range(4)])
    kw = dict(rotation_range=30, width_shift_range=0.1, shear_range=10, zoom_range=0.2, fill_mode="reflect")
    with_kernel = ImageDataGenerator(**kw).flow(x, batch_size=4, shuffle=False, seed=0)[0]
    monkeypatch.setattr(affine_mod, "kernel_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="NumPy"):
        monkeypatch.setattr(affine_mod, "_warned_fallback", False)
        fallback = ImageDataGenerator(**kw).flow(x, batch_size=4, shuffle=False, seed=0)[0]
    np.testing.assert_allclose(fallback, with_kernel, atol=2e-2)

"""Batch image decoding on a small thread pool, straight into the rows of a preallocated batch array.

``decode_into(out, paths, ...)`` decodes ``paths[k]`` into ``out[k]`` (a view of the batch: no intermediate list
and no ``np.stack``). Pillow releases the GIL while it decodes and resizes, so ``decode_threads()`` threads (the
calling thread plus a shared pool) use every core. Rows are independent, so the result does not depend on the
thread count or on timing; when rows fail, the error of the first failing row (in row order) is raised in the
calling thread, naming the file.

**Reduced-size JPEG decoding** (``reduce_jpeg=True``, the default of the batch loaders): when a JPEG is at least
twice as large as the target in both dimensions (of the ``keep_aspect_ratio`` crop box, when cropping), it is
decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's ``Image.draft``: the largest such scale that keeps
the decoded image at least as large as the target), then resized to the target with the requested
interpolation, exactly as a full-size decode would be. The DCT scaling averages pixels, so a reduced image is a
smoother version of the full decode + resize (which, with Keras's default ``nearest``, picks single pixels);
PNGs, other formats and JPEGs that need no reduction (scale < 2) give exactly the pixels ``load_img`` gives.
``reduce_jpeg=False`` (``flow_from_directory(..., reduce_jpeg=False)``, ``image_dataset_from_directory(...,
reduce_jpeg=False)``) always decodes at full size, like Keras.

**JPEG decoding** goes through simplejpeg when it is installed (the ``images`` extra): libjpeg-turbo, like
Pillow's decoder (each wheel bundles its own build), with the same settings (accurate integer DCT, fancy
upsampling, the same DCT scales), so the same pixels -- checked against Pillow over baseline and progressive
files, 4:4:4/4:2:2/4:2:0, odd sizes and every scale (``tests/test_image_decode.py``) -- but from the whole file
in memory, with the GIL released, instead of Pillow's marker parsing in Python and its suspending decoder. It
handles ``color_mode="rgb"`` and YCbCr or RGB JPEGs; anything else, or a file it refuses, goes through Pillow.
"""
from __future__ import annotations

import concurrent.futures
import io
import itertools
import os
import threading

import numpy as np

from .image_utils import aspect_crop_box, finish_img, open_img, pil_image, read_img_file

try:
    import simplejpeg
except ImportError:  # pragma: no cover - simplejpeg comes with the `images` extra; Pillow decodes without it
    simplejpeg = None

_DRAFT_FORMATS = ("JPEG", "MPO")
_DRAFT_SCALES = (8, 4, 2)
_SOI = b"\xff\xd8\xff"  # a JPEG's first marker

#: Threads that decode one batch (the calling thread included); None = the CPUs this process may use.
DECODE_THREADS: int | None = None

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def decode_threads() -> int:
    if DECODE_THREADS is not None:
        return max(1, int(DECODE_THREADS))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _get_pool(workers):
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old = _pool
            _pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rconv-decode")
            _pool_size = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def _reset_after_fork():  # a forked child has the pool object but not its threads
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def draft_scale(size, target_size, box=None) -> int:
    """The DCT scale (1, 2, 4 or 8) a reduced decode of an image of ``size`` (w, h) uses for ``target_size``
    (h, w): the largest keeping the decoded image (or ``box``, (left, top, right, bottom)) at least as large
    as the target. 1 means no reduction."""
    w, h = (box[2] - box[0], box[3] - box[1]) if box is not None else size
    th, tw = int(target_size[0]), int(target_size[1])
    if th < 1 or tw < 1:
        return 1
    fits = min(w // tw, h // th)
    return next((s for s in _DRAFT_SCALES if fits >= s), 1)


def _reduction_scale(w, h, target_size, keep_aspect_ratio) -> int:
    """``draft_scale`` of a w × h JPEG for ``target_size``, of the crop box when ``keep_aspect_ratio``."""
    box = aspect_crop_box(w, h, int(target_size[1]), int(target_size[0])) if keep_aspect_ratio else None
    return draft_scale((w, h), target_size, box)


def load_reduced(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False,
                 reduce_jpeg=True):
    """``load_img`` with reduced-size JPEG decoding (see the module doc); identical to ``load_img`` whenever no
    reduction applies."""
    data = None if isinstance(path, io.BytesIO) else read_img_file(path)
    fast = _turbo_jpeg(data, color_mode, target_size, keep_aspect_ratio, reduce_jpeg)
    if fast is not None:
        img, scale, orig_size = fast
        return finish_img(img, path, color_mode, target_size, interpolation, keep_aspect_ratio, scale, orig_size)
    img = open_img(path, data)
    scale, orig_size = 1, img.size
    if reduce_jpeg and target_size is not None and img.format in _DRAFT_FORMATS:
        w, h = img.size
        scale = _reduction_scale(w, h, target_size, keep_aspect_ratio)
        if scale > 1:
            # Pillow picks the largest scale s with min(w // rw, h // rh) >= s: ask for exactly ours.
            drafted = img.draft(img.mode, (w // scale, h // scale)) is not None
            scale = int(img.decoderconfig[0]) if drafted else 1
    return finish_img(img, path, color_mode, target_size, interpolation, keep_aspect_ratio, scale, orig_size)


def _turbo_jpeg(data, color_mode, target_size, keep_aspect_ratio, reduce_jpeg):
    """(decoded PIL image, scale, original (w, h)) of a JPEG file's bytes through simplejpeg, at the scale
    Pillow's draft would use; None where that does not apply (see the module doc)."""
    if simplejpeg is None or data is None or color_mode != "rgb" or not data.startswith(_SOI):
        return None
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "RGB") or w < 1 or h < 1:
            return None
        reduce = reduce_jpeg and target_size is not None
        scale = _reduction_scale(w, h, target_size, keep_aspect_ratio) if reduce else 1
        size = (-(-h // scale), -(-w // scale))  # libjpeg's (and Pillow's draft's) rounding
        a = simplejpeg.decode_jpeg(data, "RGB", min_height=size[0], min_width=size[1], min_factor=scale)
    except (ValueError, RuntimeError):
        return None  # Pillow decodes it, or reports the error as before
    if a.shape != (*size, 3):
        return None
    return pil_image.fromarray(a), scale, (w, h)


def _write_row(row, img, data_format):
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None] if data_format != "channels_first" else a[None]
    elif data_format == "channels_first":
        a = a.transpose(2, 0, 1)
    if a.shape != row.shape:
        raise ValueError(f"decoded image has shape {a.shape}, expected {row.shape}")
    np.copyto(row, a, casting="unsafe")


def _name_file(exc, path):
    text = f"{path}"
    if text not in str(exc) and hasattr(exc, "add_note"):
        exc.add_note(f"while loading image file {text!r}")
    return exc


def decode_into(out, paths, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False,
                data_format="channels_last", reduce_jpeg=True, threads=None) -> None:
    """Decode ``paths[k]`` into ``out[k]`` for every k, on ``threads`` threads (default ``decode_threads()``)."""
    n = len(paths)
    if len(out) != n:
        raise ValueError(f"decode_into: {n} files for {len(out)} rows")
    if n == 0:
        return
    counter = itertools.count()
    errors = {}
    state = {"closed": False, "active": 0}
    cond = threading.Condition()

    def work(helper):
        if helper:
            with cond:
                if state["closed"]:
                    return
                state["active"] += 1
        try:
            while True:
                k = next(counter)
                if k >= n:
                    return
                try:
                    img = load_reduced(paths[k], color_mode, target_size, interpolation, keep_aspect_ratio,
                                       reduce_jpeg)
                    try:
                        _write_row(out[k], img, data_format)
                    finally:
                        img.close()
                except BaseException as exc:  # reported in row order by the caller
                    errors[k] = exc
        finally:
            if helper:
                with cond:
                    state["active"] -= 1
                    cond.notify_all()

    threads = decode_threads() if threads is None else max(1, int(threads))
    helpers = min(threads, n) - 1
    if helpers > 0:
        try:
            pool = _get_pool(helpers)
            for _ in range(helpers):
                pool.submit(work, True)
        except RuntimeError:  # interpreter shutting down: the caller decodes everything itself
            pass
    work(False)
    with cond:
        state["closed"] = True  # helpers not started yet return at once; wait for those decoding a row
        while state["active"]:
            cond.wait()
    if errors:
        k = min(errors)
        raise _name_file(errors[k], paths[k])

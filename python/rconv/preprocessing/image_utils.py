"""Pillow-backed image I/O, like ``keras.utils.load_img`` / ``img_to_array`` / ``array_to_img`` / ``save_img``."""
from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np

try:
    from PIL import Image as pil_image
except ImportError:  # pragma: no cover - Pillow is a dependency of the image pipeline
    pil_image = None

if pil_image is not None:
    _R = getattr(pil_image, "Resampling", pil_image)
    PIL_INTERPOLATION_METHODS = {
        "nearest": _R.NEAREST, "bilinear": _R.BILINEAR, "bicubic": _R.BICUBIC,
        "hamming": _R.HAMMING, "box": _R.BOX, "lanczos": _R.LANCZOS,
    }
else:  # pragma: no cover
    PIL_INTERPOLATION_METHODS = {}

# Extensions each Keras entry point accepts (they differ, and so does the count each one prints).
GENERATOR_FORMATS = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")   # ImageDataGenerator
DATASET_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")               # image_dataset_from_directory

_COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


def _require_pil():
    if pil_image is None:
        raise ImportError("rconv's image loading needs Pillow: `pip install pillow`.")


def color_mode_channels(color_mode: str) -> int:
    if color_mode not in _COLOR_MODES:
        raise ValueError(f'Invalid color mode: {color_mode!r}; expected "rgb", "rgba", or "grayscale".')
    return _COLOR_MODES[color_mode]


def aspect_crop_box(width: int, height: int, target_width: int, target_height: int):
    """Keras's centred crop box (left, upper, right, lower) with the target's aspect ratio."""
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top = (height - crop_height) // 2
    left = (width - crop_width) // 2
    return [left, top, left + crop_width, top + crop_height]


def _decode_error(path, exc):
    return OSError(f"cannot decode image file {path!r}: {exc}")


def read_img_file(path):
    """The bytes of the image file at ``path`` (path-like), read whole; errors name the file."""
    if isinstance(path, pathlib.Path):
        path = str(path.resolve())
    if not isinstance(path, (bytes, str)):
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _decode_error(path, exc) from exc


def open_img(path, data=None):
    """Open an image file (not yet decoded: ``draft`` may still be applied); errors name the file. ``data``:
    the file's bytes, already read (``read_img_file``)."""
    _require_pil()
    if isinstance(path, pathlib.Path):
        path = str(path.resolve())
    if data is None and not isinstance(path, io.BytesIO):
        data = read_img_file(path)
    try:
        return pil_image.open(path if data is None else io.BytesIO(data))
    except (pil_image.UnidentifiedImageError, SyntaxError, ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _decode_error(path, exc) from exc


def finish_img(img, path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False,
               scale=1, orig_size=None):
    """Decode an opened image, convert it to ``color_mode`` and resize it to ``target_size`` (Keras's
    ``load_img`` steps). ``scale`` > 1: ``img`` was drafted to 1/scale of ``orig_size`` (w, h); the resize then
    reads the same region of the picture (the aspect crop box divided by the scale)."""
    if pil_image is not None and isinstance(path, pathlib.Path):
        path = str(path.resolve())
    orig_size = orig_size or img.size
    try:
        img.load()
    except (pil_image.UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise OSError(f"cannot decode image file {path!r}: {exc}") from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise OSError(f"cannot decode image file {path!r}: {exc}") from exc

    if color_mode == "grayscale":
        # An 'I' / 'I;16' image stays 32/16-bit, like Keras.
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif img.mode != "RGB":
        img = img.convert("RGB")

    if target_size is not None:
        width_height = (int(target_size[1]), int(target_size[0]))
        if img.size != width_height or scale > 1:
            if interpolation not in PIL_INTERPOLATION_METHODS:
                raise ValueError(f"Invalid interpolation method {interpolation!r}; supported: "
                                 + ", ".join(PIL_INTERPOLATION_METHODS))
            resample = PIL_INTERPOLATION_METHODS[interpolation]
            if keep_aspect_ratio:
                box = aspect_crop_box(*orig_size, *width_height)
                img = img.resize(width_height, resample, box=[v / scale for v in box])
            elif scale > 1:
                img = img.resize(width_height, resample, box=(0, 0, orig_size[0] / scale, orig_size[1] / scale))
            else:
                img = img.resize(width_height, resample)
    return img


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """Load an image file into a PIL image, exactly like ``keras.utils.load_img``.

    target_size is (height, width); interpolation is one of nearest, bilinear, bicubic, hamming, box,
    lanczos. Undecodable files raise ``OSError`` naming the file.
    """
    color_mode_channels(color_mode)
    return finish_img(open_img(path), path, color_mode, target_size, interpolation, keep_aspect_ratio)


def img_to_array(img, data_format=None, dtype=None):
    """PIL image → NumPy array (h, w, c) (or (c, h, w) for channels_first), float32 by default."""
    data_format = data_format or "channels_last"
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError(f"Unknown data_format: {data_format}")
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape) if data_format == "channels_first" else x.reshape(x.shape + (1,))
    else:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """NumPy array (h, w, c) → PIL image; with ``scale`` the values are stretched to 0..255 (Keras)."""
    _require_pil()
    data_format = data_format or "channels_last"
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"Expected image array to have rank 3 (single image). Got array with shape: {x.shape}")
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError(f"Invalid data_format: {data_format}")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x = x / x_max
        x = x * 255
    if x.shape[2] == 4:
        return pil_image.fromarray(x.astype("uint8"), "RGBA")
    if x.shape[2] == 3:
        return pil_image.fromarray(x.astype("uint8"), "RGB")
    if x.shape[2] == 1:
        if np.max(x) > 255:
            return pil_image.fromarray(x[:, :, 0].astype("int32"), "I")
        return pil_image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {x.shape[2]}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save a NumPy image array to a file (format from ``file_format`` or the extension)."""
    img = array_to_img(x, data_format=data_format, scale=scale)
    if file_format is None and isinstance(path, (str, os.PathLike)):
        ext = os.path.splitext(os.fspath(path))[1][1:].lower()
        file_format = ext or None
    if file_format == "jpg":
        file_format = "jpeg"
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPG format does not support RGBA images, converting to RGB.", stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def list_image_files(directory, formats, follow_links=False):
    """(root, fname) pairs under ``directory`` with an allowed extension, in Keras's sorted walk order."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links), key=lambda t: t[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def check_directory(directory, who):
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise FileNotFoundError(f"{who}: directory {directory!r} {what}.")
    return directory

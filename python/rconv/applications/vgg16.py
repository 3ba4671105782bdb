"""`VGG16` with Keras's exact architecture and layer names (`block1_conv1` ... `block5_pool`, `flatten`,
`fc1`, `fc2`, `predictions`), so Keras's VGG16 `.h5` weight files load into it; `preprocess_input`
(caffe mode: RGB -> BGR, minus the ImageNet channel means)."""
from __future__ import annotations

import os

import numpy as np

from .. import layers
from ..keras_tensor import KerasTensor

WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
WEIGHTS_FILE_NO_TOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
_IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def _models_dir() -> str:
    return os.path.join(os.path.expanduser("~"), ".rconv", "models")


def _input_shape(input_shape, include_top: bool, weights) -> tuple:
    """Keras's `obtain_input_shape` for VGG16 (default 224, minimum 32, channels_last)."""
    if weights == "imagenet" and include_top:
        if input_shape is not None and tuple(input_shape) != (224, 224, 3):
            raise ValueError("When setting `include_top=True` and loading `imagenet` weights, `input_shape` "
                             f"should be (224, 224, 3).  Received: input_shape={input_shape}")
        return (224, 224, 3)
    if input_shape is None:
        return (224, 224, 3) if include_top else (None, None, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be a tuple of three integers. Received: input_shape={input_shape}")
    if weights == "imagenet" and input_shape[-1] != 3:
        raise ValueError(f"The input must have 3 channels; Received `input_shape={input_shape}`")
    if any(d is not None and d < 32 for d in input_shape[:2]):
        raise ValueError(f"Input size must be at least 32x32; Received: input_shape={input_shape}")
    if include_top and None in input_shape:
        raise ValueError("If `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def _weights_path(weights, include_top: bool):
    if weights is None:
        return None
    if weights == "imagenet":
        fname = WEIGHTS_FILE if include_top else WEIGHTS_FILE_NO_TOP
        path = os.path.join(_models_dir(), fname)
        if not os.path.exists(path):
            raise ValueError(f"weights='imagenet': rconv cannot download weights (no network access). Put "
                             f"Keras's file '{fname}' in {_models_dir()}/ or pass its path as `weights=`.")
        return path
    if not os.path.exists(str(weights)):
        raise ValueError("The `weights` argument should be either `None` (random initialization), `imagenet` "
                         "(pre-training on ImageNet), or the path to the weights file to be loaded. "
                         f"Received: weights={weights}")
    return str(weights)


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16"):
    """Keras's `keras.applications.VGG16`. `weights`: None, a path to a Keras VGG16 `.h5`/`.weights.h5`
    file, or 'imagenet' (only if the Keras file is already in `~/.rconv/models/`)."""
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("If using `weights='imagenet'` with `include_top=True`, `classes` should be 1000.  "
                         f"Received classes={classes}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    weights_path = _weights_path(weights, include_top)  # fail before building a big model
    if input_tensor is None:
        img_input = layers.Input(shape=_input_shape(input_shape, include_top, weights))
    else:
        if not isinstance(input_tensor, KerasTensor):
            raise ValueError(f"`input_tensor` must be a KerasTensor from `rconv.Input`. Received: {input_tensor!r}")
        img_input = input_tensor

    x = img_input
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)

    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)

    from ..models import Model
    model = Model(img_input, x, name=name)
    if weights_path is not None:
        _load_weights(model, weights_path)
    return model


def _load_weights(model, path: str) -> None:
    model.load_weights(path)  # the hardened loader (rconv.saving): checked before anything is assigned


def preprocess_input(x, data_format=None):
    """Keras's VGG16 `preprocess_input` ('caffe' mode): RGB -> BGR, then subtract the ImageNet means
    (no scaling). Expects pixels in [0, 255], channels last. Returns a new float32 array."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"rconv only supports data_format='channels_last', got {data_format!r}")
    x = np.asarray(x, dtype=np.float32)
    return x[..., ::-1] - _IMAGENET_MEAN_BGR


def decode_predictions(preds, top=5):
    raise NotImplementedError("decode_predictions needs Keras's ImageNet class index file, which rconv "
                              "cannot download")


__all__ = ["VGG16", "preprocess_input", "decode_predictions"]

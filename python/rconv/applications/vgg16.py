"""`keras.applications.vgg16`: `VGG16` with Keras's architecture and layer names, `preprocess_input`
(caffe mode) and `decode_predictions`."""
from __future__ import annotations

from . import _vgg, imagenet_utils

WEIGHTS_FILE, WEIGHTS_FILE_NO_TOP = imagenet_utils.keras_file_names("vgg16")


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16"):
    """Keras's `keras.applications.VGG16`. `weights`: None, the path of a Keras weights file (`.h5` or
    `.weights.h5`), or 'imagenet' (Keras's cached file, see `imagenet_utils.weights_file`)."""
    return _vgg.build((2, 2, 3, 3, 3), app="VGG16", file_prefix="vgg16", include_top=include_top, weights=weights,
                      input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                      classifier_activation=classifier_activation, name=name)


preprocess_input, decode_predictions = imagenet_utils.module_functions("caffe", "VGG16")

__all__ = ["VGG16", "preprocess_input", "decode_predictions"]

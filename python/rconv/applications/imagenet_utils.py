"""What every application shares, as keras/src/applications/imagenet_utils.py: `preprocess_input` (modes
caffe/tf/torch, on NumPy arrays and on KerasTensors), `decode_predictions` (the ImageNet class index ships
with rconv: imagenet_class_index.json, made by _make_imagenet_index.py), `obtain_input_shape`, `correct_pad`,
`validate_activation`; plus the argument checks, the weight-file lookup (Keras's cache names, no download),
the classifier/pooling top and the model assembly the architecture modules have in common."""
from __future__ import annotations

import contextlib
import json
import os
import warnings

import numpy as np

from .. import activations, initializers, layers
from ..keras_tensor import KerasTensor

CLASS_INDEX = None
CLASS_INDEX_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_class_index.json")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _check_data_format(data_format) -> None:
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError("Expected data_format to be one of `channels_first` or `channels_last`. "
                         f"Received: data_format={data_format}")
    if data_format == "channels_first":
        raise ValueError("rconv's applications support data_format='channels_last' only. "
                         f"Received: data_format={data_format}")


def preprocess_input(x, data_format=None, mode="caffe"):
    """Keras's `imagenet_utils.preprocess_input`. caffe: RGB -> BGR, minus the ImageNet means (no scaling);
    tf: x / 127.5 - 1; torch: x / 255, minus the means, divided by the stds (per channel). NumPy input: a
    float array is updated in place and returned, as Keras does (other dtypes become float32); a KerasTensor
    gives a KerasTensor (graph nodes)."""
    if mode not in ("caffe", "tf", "torch"):
        raise ValueError(f"Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode={mode}")
    _check_data_format(data_format)
    if isinstance(x, KerasTensor):
        return _preprocess_symbolic(x, mode)
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype(np.float32)
    if x.ndim < 1 or x.shape[-1] != 3 and mode != "tf":
        raise ValueError(f"preprocess_input(mode={mode!r}) expects images with 3 channels last. "
                         f"Received an array of shape {x.shape}")
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        x -= np.asarray(_TORCH_MEAN, x.dtype)
        x /= np.asarray(_TORCH_STD, x.dtype)
        return x
    x = x[..., ::-1]
    x -= np.asarray(_CAFFE_MEAN_BGR, x.dtype)
    return x


def _preprocess_symbolic(x: KerasTensor, mode: str) -> KerasTensor:
    if mode == "tf":
        return x / 127.5 - 1.0
    if x.shape[-1] != 3:
        raise ValueError(f"preprocess_input(mode={mode!r}) expects images with 3 channels last. "
                         f"Received a KerasTensor of shape {x.shape}")
    if mode == "torch":
        return (x / 255.0 - np.asarray(_TORCH_MEAN, np.float32)) / np.asarray(_TORCH_STD, np.float32)
    return x[..., ::-1] - np.asarray(_CAFFE_MEAN_BGR, np.float32)


def _class_index() -> dict:
    global CLASS_INDEX
    if CLASS_INDEX is None:
        with open(CLASS_INDEX_FILE) as f:
            CLASS_INDEX = json.load(f)
    return CLASS_INDEX


def decode_predictions(preds, top=5):
    """Keras's `decode_predictions`: for each row of a (samples, 1000) batch, the `top` classes as
    `(wordnet_id, class_name, score)` tuples, highest score first."""
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, 1000)). Received array with shape: {preds.shape}")
    index = _class_index()
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results


def obtain_input_shape(input_shape, default_size, min_size, require_flatten, weights=None, app="model"):
    """Keras's `obtain_input_shape` for channels_last; errors name the application."""
    if input_shape is not None:
        input_shape = tuple(input_shape)
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if input_shape[-1] not in {1, 3}:
            warnings.warn(f"{app}: this model usually expects 1 or 3 input channels. However, it was passed an "
                          f"input_shape with {input_shape[-1]} input channels.", stacklevel=3)
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(f"{app}: when setting `include_top=True` and loading `imagenet` weights, "
                             f"`input_shape` should be {default_shape}.  Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3:
            raise ValueError(f"{app}: `input_shape` must be a tuple of three integers. "
                             f"Received: input_shape={input_shape}")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(f"{app}: the input must have 3 channels; Received `input_shape={input_shape}`")
        if any(d is not None and d < min_size for d in input_shape[:2]):
            raise ValueError(f"{app}: input size must be at least {min_size}x{min_size}; Received: "
                             f"input_shape={input_shape}")
    else:
        input_shape = default_shape if require_flatten else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(f"{app}: if `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return input_shape


def correct_pad(inputs, kernel_size):
    """Keras's `correct_pad`: the ((top, bottom), (left, right)) zero padding before a stride-2 'valid'
    convolution that reproduces TF's 'same' alignment."""
    rows, cols = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    adjust = (1, 1) if rows is None else (1 - rows % 2, 1 - cols % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


def validate_activation(classifier_activation, weights, app="model") -> None:
    """Pretrained weights go with a `softmax` or no (None/'linear') classifier activation only."""
    if weights is None:
        return
    fn = activations.get(classifier_activation)
    if fn not in (activations.get("softmax"), activations.get(None)):
        raise ValueError(f"{app}: only `None` and `softmax` activations are allowed for the "
                         "`classifier_activation` argument when using pretrained weights, with "
                         f"`include_top=True`; Received: classifier_activation={classifier_activation}")


def models_dir() -> str:
    """Keras's cache folder for application weights: `$RCONV_HOME/models` or `~/.keras/models`."""
    from ..utils import file_utils
    return str(file_utils._home() / "models")


def check_arguments(app, weights, include_top, classes, pooling) -> None:
    """Keras's checks of `weights` and `classes` (plus `pooling`), made before anything is built."""
    if not (weights in (None, "imagenet") or (isinstance(weights, (str, os.PathLike))
                                              and os.path.exists(weights))):
        raise ValueError(f"{app}: the `weights` argument should be either `None` (random initialization), "
                         "'imagenet' (pre-training on ImageNet), or the path to the weights file to be loaded.  "
                         f"Received: weights={weights}")
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"{app}: if using `weights='imagenet'` with `include_top=True`, `classes` should be "
                         f"1000.  Received classes={classes}")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{app}: `pooling` must be None, 'avg' or 'max'. Received: pooling={pooling!r}")


def weights_file(app, weights, file_name):
    """The file to load: None, the given path, or for 'imagenet' Keras's cached `file_name` (which must be
    there already: rconv downloads nothing)."""
    if weights is None:
        return None
    if weights != "imagenet":
        return os.fspath(weights)
    path = os.path.join(models_dir(), file_name)
    if not os.path.exists(path):
        raise ValueError(f"{app}: weights='imagenet' needs Keras's file '{file_name}' at {path} (rconv cannot "
                         "download it: copy it there from a machine with Keras, or pass the path of a Keras "
                         "weights file as `weights=`).")
    return path


def input_layer(input_tensor, input_shape, app="model"):
    """Keras's `Input(shape=input_shape)` unless a KerasTensor is given."""
    if input_tensor is None:
        return layers.Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor):
        raise ValueError(f"{app}: `input_tensor` must be a KerasTensor (from `rconv.Input` or a layer call). "
                         f"Received: {type(input_tensor).__name__}")
    if input_tensor.ndim != 4:
        raise ValueError(f"{app}: `input_tensor` must be a batch of images (rank 4). Received shape "
                         f"{input_tensor.shape}")
    return input_tensor


def source_inputs(tensor: KerasTensor) -> list:
    """The Input tensors upstream of `tensor` (Keras's `operation_utils.get_source_inputs`)."""
    found, stack, seen = [], [tensor], set()
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        history = t._keras_history
        if history is None or not history[1]:
            found.append(t)
        else:
            stack.extend(reversed(list(history[1])))
    return found


def classifier(x, include_top, pooling, classes, classifier_activation, weights, app,
               top_pool="avg_pool", avg_name=None, max_name=None):
    """Keras's shared head: global average pooling + Dense 'predictions' with `include_top`, else the
    optional global pooling. Layer names differ per architecture (None: Keras's automatic name)."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name=top_pool)(x)
        validate_activation(classifier_activation, weights, app)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=avg_name)(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=max_name)(x)
    return x


def building(weights_path):
    """Skip the initializers while building when every weight is loaded from a file afterwards."""
    return initializers.deferred() if weights_path is not None else contextlib.nullcontext()


def finish(img_input, input_tensor, x, name, weights_path):
    """The functional model over the source inputs of `input_tensor` (or `img_input`), with its weights."""
    from ..models import Model
    inputs = img_input if input_tensor is None else source_inputs(input_tensor)
    if isinstance(inputs, list) and len(inputs) == 1:
        inputs = inputs[0]
    model = Model(inputs, x, name=name)
    if weights_path is not None:
        model.load_weights(weights_path)  # the hardened loader: checked before anything is assigned
    return model


def keras_file_names(prefix: str):
    """Keras's (top, notop) cache names `<prefix>_weights_tf_dim_ordering_tf_kernels[_notop].h5`."""
    return (f"{prefix}_weights_tf_dim_ordering_tf_kernels.h5",
            f"{prefix}_weights_tf_dim_ordering_tf_kernels_notop.h5")


def module_functions(mode: str, app: str):
    """A module's `preprocess_input(x, data_format=None)` (Keras's mode for that family) and
    `decode_predictions(preds, top=5)`."""
    def module_preprocess_input(x, data_format=None):
        return preprocess_input(x, data_format=data_format, mode=mode)

    def module_decode_predictions(preds, top=5):
        return decode_predictions(preds, top=top)

    module_preprocess_input.__name__ = module_preprocess_input.__qualname__ = "preprocess_input"
    module_preprocess_input.__doc__ = f"{app}'s `preprocess_input`: `imagenet_utils.preprocess_input` in {mode!r} mode."
    module_decode_predictions.__name__ = module_decode_predictions.__qualname__ = "decode_predictions"
    module_decode_predictions.__doc__ = decode_predictions.__doc__
    return module_preprocess_input, module_decode_predictions


__all__ = ["preprocess_input", "decode_predictions", "obtain_input_shape", "correct_pad", "validate_activation"]

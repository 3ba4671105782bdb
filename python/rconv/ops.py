"""Functional ops: the public, NumPy-facing face of the Rust kernels in ``rconv._rconv``.

Every function takes NumPy arrays (any float dtype; computed in float32), checks them, and calls one
GIL-released Rust kernel. Layout is NHWC; kernels use Keras's layouts: conv ``(kh, kw, cin, cout)``,
dense ``(in, out)``. Strides and pool sizes accept an int or a pair, like Keras.

The in-place optimizer updates (``*_update``) need float32 C-contiguous writeable arrays: they are the
model's own parameter and slot buffers, and copying them would silently drop the update.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _rconv

IntOrPair = Union[int, Sequence[int]]

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_relu_max_pool", "conv2d_relu_max_pool_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "dense", "dense_backward",
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "softmax", "softmax_backward",
    "softmax_cross_entropy", "sigmoid_cross_entropy", "categorical_cross_entropy",
    "binary_cross_entropy", "mean_squared_error",
    "sgd_update", "rmsprop_update", "adam_update", "affine_transform", "affine_transform_backward",
]


def _f32(x, op: str, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array, copying only when needed."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: `{name}` must be a floating-point array, got dtype {arr.dtype} "
                        f"with shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _int(v, op: str, name: str, value) -> int:
    """An int (or an integral float, as configs may carry); bools and fractions are refused."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise TypeError(f"{op}: `{name}` must be an int or a pair of ints, got {value!r}")


def _pair(value: IntOrPair, op: str, name: str) -> Tuple[int, int]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        pair: Tuple[int, ...] = (_int(value, op, name, value),) * 2
    else:
        pair = tuple(_int(v, op, name, value) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{op}: `{name}` must be a positive int or a pair of positive ints, got {value!r}")
    return pair  # type: ignore[return-value]


def _float(value, op: str, name: str) -> float:
    """A real scalar for the kernels (an int too large for a float is a ValueError, not OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{op}: `{name}` is too large for a float: {repr(value)[:30]}...") from None
    except (TypeError, ValueError):
        raise TypeError(f"{op}: `{name}` must be a real number, got {value!r}") from None


def _padding(padding: str, op: str) -> str:
    mode = str(padding).lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same', got {padding!r}")
    return mode


def _labels(labels, op: str) -> np.ndarray:
    """Class ids (n,) as int64, or one-hot / soft targets (n, c) as float32."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iub" and arr.ndim == 1:
        return np.ascontiguousarray(arr, dtype=np.int64)
    return _f32(arr, op, "labels")


# --- convolution -------------------------------------------------------------------------------------

def conv2d(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid", *,
           activation: Optional[str] = None) -> np.ndarray:
    """2-D convolution (cross-correlation, like Keras): x (n, h, w, cin), kernel (kh, kw, cin, cout).
    ``activation='relu'`` fuses the ReLU into the kernel's store."""
    op = "conv2d"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.conv2d(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b,
                         _pair(strides, op, "strides"), _padding(padding, op), activation)


def conv2d_backward(x, kernel, grad_y, strides: IntOrPair = (1, 1), padding: str = "valid", *,
                    relu_output=None, need_grad_x: bool = True):
    """Gradients of conv2d: returns (grad_x, grad_kernel, grad_bias).

    ``relu_output`` (the output of a fused ``activation='relu'`` forward) masks ``grad_y`` first;
    ``need_grad_x=False`` skips the input gradient (returned as None), as the first layer needs.
    """
    op = "conv2d_backward"
    y = None if relu_output is None else _f32(relu_output, op, "relu_output")
    return _rconv.conv2d_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                  _pair(strides, op, "strides"), _padding(padding, op), bool(need_grad_x), y)


def conv2d_relu_max_pool(x, kernel, bias=None, strides: IntOrPair = (1, 1), padding: str = "valid",
                         pool_size: IntOrPair = (2, 2), pool_strides: Optional[IntOrPair] = None,
                         pool_padding: str = "valid", *, winners: bool = False):
    """``max_pool2d(relu(conv2d(x, kernel, bias)))`` in one kernel, without materialising the
    convolution's output. Returns ``(y, winners)``: with ``winners=True``, a uint32 array shaped like
    ``y`` holding, per image, the offset in the convolution output of the cell each maximum came from
    (``0xFFFFFFFF`` where the ReLU was inactive), which ``conv2d_relu_max_pool_backward`` needs;
    otherwise None."""
    op = "conv2d_relu_max_pool"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.conv2d_relu_max_pool(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b,
                                       _pair(strides, op, "strides"), _padding(padding, op),
                                       *_pool_args(op, pool_size, pool_strides, pool_padding), bool(winners))


def conv2d_relu_max_pool_backward(x, kernel, grad_y, winners, strides: IntOrPair = (1, 1), padding: str = "valid",
                                  pool_size: IntOrPair = (2, 2), pool_strides: Optional[IntOrPair] = None,
                                  pool_padding: str = "valid", *, need_grad_x: bool = True):
    """Gradients of ``conv2d_relu_max_pool`` from the pooled output's gradient and the forward's
    ``winners``: returns (grad_x or None, grad_kernel, grad_bias)."""
    op = "conv2d_relu_max_pool_backward"
    if isinstance(winners, np.ndarray):
        winners = np.ascontiguousarray(winners)
    return _rconv.conv2d_relu_max_pool_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"),
                                                _f32(grad_y, op, "grad_y"), winners,
                                                _pair(strides, op, "strides"), _padding(padding, op),
                                                *_pool_args(op, pool_size, pool_strides, pool_padding),
                                                bool(need_grad_x))


# --- pooling ------------------------------------------------------------------------------------------

def _pool_args(op: str, pool_size: IntOrPair, strides: Optional[IntOrPair], padding: str):
    pool = _pair(pool_size, op, "pool_size")
    stride = pool if strides is None else _pair(strides, op, "strides")
    return pool, stride, _padding(padding, op)


def max_pool2d(x, pool_size: IntOrPair, strides: Optional[IntOrPair] = None, padding: str = "valid"):
    op = "max_pool2d"
    return _rconv.pool2d(_f32(x, op, "x"), "max", *_pool_args(op, pool_size, strides, padding))


def max_pool2d_backward(x, grad_y, pool_size: IntOrPair, strides: Optional[IntOrPair] = None,
                        padding: str = "valid", *, y=None):
    """Gradient of max pooling; passing the forward's output ``y`` saves recomputing the maxima."""
    op = "max_pool2d_backward"
    return _rconv.pool2d_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "max",
                                  *_pool_args(op, pool_size, strides, padding),
                                  None if y is None else _f32(y, op, "y"))


def avg_pool2d(x, pool_size: IntOrPair, strides: Optional[IntOrPair] = None, padding: str = "valid"):
    """Average pooling; with 'same' padding it divides by the number of real (unpadded) elements, like TF."""
    op = "avg_pool2d"
    return _rconv.pool2d(_f32(x, op, "x"), "avg", *_pool_args(op, pool_size, strides, padding))


def avg_pool2d_backward(x, grad_y, pool_size: IntOrPair, strides: Optional[IntOrPair] = None,
                        padding: str = "valid"):
    op = "avg_pool2d_backward"
    return _rconv.pool2d_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "avg",
                                  *_pool_args(op, pool_size, strides, padding))


# --- dense ----------------------------------------------------------------------------------------------

def dense(x, kernel, bias=None, *, activation: Optional[str] = None) -> np.ndarray:
    """x (n, in) @ kernel (in, out) + bias (out,); ``activation='relu'`` fuses the ReLU."""
    op = "dense"
    b = None if bias is None else _f32(bias, op, "bias")
    return _rconv.dense(_f32(x, op, "x"), _f32(kernel, op, "kernel"), b, activation)


def dense_backward(x, kernel, grad_y, *, relu_output=None, need_grad_x: bool = True):
    """Gradients of dense: returns (grad_x, grad_kernel, grad_bias); keywords as in conv2d_backward."""
    op = "dense_backward"
    y = None if relu_output is None else _f32(relu_output, op, "relu_output")
    return _rconv.dense_backward(_f32(x, op, "x"), _f32(kernel, op, "kernel"), _f32(grad_y, op, "grad_y"),
                                 bool(need_grad_x), y)


# --- activations (any shape; softmax over the last axis) ----------------------------------------------

def relu(x) -> np.ndarray:
    return _rconv.activation(_f32(x, "relu", "x"), "relu")


def relu_backward(x, grad_y) -> np.ndarray:
    """grad_y where x > 0, else 0 (x is the ReLU's input)."""
    op = "relu_backward"
    return _rconv.activation_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), "relu")


def sigmoid(x) -> np.ndarray:
    return _rconv.activation(_f32(x, "sigmoid", "x"), "sigmoid")


def sigmoid_backward(y, grad_y) -> np.ndarray:
    """grad_y * y * (1 - y), where y is the sigmoid's output."""
    op = "sigmoid_backward"
    return _rconv.activation_backward(_f32(y, op, "y"), _f32(grad_y, op, "grad_y"), "sigmoid")


def softmax(z) -> np.ndarray:
    return _rconv.activation(_f32(z, "softmax", "z"), "softmax")


def softmax_backward(y, grad_y) -> np.ndarray:
    """Vector-Jacobian product of softmax over the last axis, where y is the softmax's output."""
    op = "softmax_backward"
    return _rconv.activation_backward(_f32(y, op, "y"), _f32(grad_y, op, "grad_y"), "softmax")


# --- losses: each returns (mean loss over the batch, gradient of that mean) -------------------------

def softmax_cross_entropy(logits, labels) -> Tuple[float, np.ndarray]:
    """Fused, stable softmax + categorical cross-entropy. labels: int ids (n,) or one-hot (n, c)."""
    op = "softmax_cross_entropy"
    return _rconv.loss(_f32(logits, op, "logits"), _labels(labels, op), "softmax_cross_entropy")


def sigmoid_cross_entropy(logits, labels) -> Tuple[float, np.ndarray]:
    """Fused, stable sigmoid + binary cross-entropy, averaged over every element."""
    op = "sigmoid_cross_entropy"
    return _rconv.loss(_f32(logits, op, "logits"), _f32(labels, op, "labels"), "sigmoid_cross_entropy")


def categorical_cross_entropy(probs, labels) -> Tuple[float, np.ndarray]:
    """Cross-entropy on probabilities (Keras: rows renormalised, clipped to [1e-7, 1 - 1e-7])."""
    op = "categorical_cross_entropy"
    return _rconv.loss(_f32(probs, op, "probs"), _labels(labels, op), "categorical_cross_entropy")


def binary_cross_entropy(probs, labels) -> Tuple[float, np.ndarray]:
    """Binary cross-entropy on probabilities (Keras: clipped to [1e-7, 1 - 1e-7]), mean over elements."""
    op = "binary_cross_entropy"
    return _rconv.loss(_f32(probs, op, "probs"), _f32(labels, op, "labels"), "binary_cross_entropy")


def mean_squared_error(pred, target) -> Tuple[float, np.ndarray]:
    op = "mean_squared_error"
    return _rconv.loss(_f32(pred, op, "pred"), _f32(target, op, "target"), "mean_squared_error")


# --- optimizer updates: in place, Keras 3 formulas -----------------------------------------------------

def sgd_update(param, grad, momentum_buf, learning_rate: float, momentum: float = 0.0,
               nesterov: bool = False) -> None:
    """Keras SGD. momentum_buf (same shape as param) is needed when momentum > 0, else may be None."""
    op = "sgd_update"
    _rconv.sgd_update(param, _f32(grad, op, "grad"), momentum_buf,
                      _float(learning_rate, op, "learning_rate"), _float(momentum, op, "momentum"), bool(nesterov))


def rmsprop_update(param, grad, velocity, learning_rate: float, rho: float = 0.9,
                   epsilon: float = 1e-7) -> None:
    """Keras RMSprop: v = rho v + (1-rho) g^2; param -= lr g / sqrt(v + eps)."""
    op = "rmsprop_update"
    _rconv.rmsprop_update(param, _f32(grad, op, "grad"), velocity, _float(learning_rate, op, "learning_rate"),
                          _float(rho, op, "rho"), _float(epsilon, op, "epsilon"))


def adam_update(param, grad, m, v, learning_rate: float, beta_1: float = 0.9, beta_2: float = 0.999,
                epsilon: float = 1e-7, step: int = 1) -> None:
    """Keras Adam; step is the 1-based iteration count used for bias correction."""
    if int(step) < 1:
        raise ValueError(f"adam_update: step is the 1-based iteration count, got {step}")
    op = "adam_update"
    _rconv.adam_update(param, _f32(grad, op, "grad"), m, v, _float(learning_rate, op, "learning_rate"),
                       _float(beta_1, op, "beta_1"), _float(beta_2, op, "beta_2"), _float(epsilon, op, "epsilon"),
                       int(step))


# --- image resampling ----------------------------------------------------------------------------------

def affine_transform(images, transforms, interpolation: str = "bilinear", fill_mode: str = "constant",
                     fill_value: float = 0.0, output_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Resample NHWC images through per-image projective transforms, like ``keras.ops.image.affine_transform``.

    ``transforms`` is (8,) or (n, 8): ``[a0, a1, a2, b0, b1, b2, c0, c1]`` maps an *output* pixel (x, y) to
    the *input* point ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`` with ``k = c0 x + c1 y + 1``.
    interpolation: 'bilinear' | 'nearest'; fill_mode: 'constant' | 'nearest' | 'reflect' | 'wrap'
    (TensorFlow's semantics). ``output_shape`` (height, width) defaults to the input's.
    """
    op = "affine_transform"
    x = _f32(images, op, "images")
    t = _resample_args(op, x, transforms, interpolation, fill_mode)
    size = None if output_shape is None else _pair(output_shape, op, "output_shape")
    return _rconv.affine_transform(x, t, interpolation, fill_mode, float(fill_value), size)


def affine_transform_backward(grad_y, transforms, interpolation: str = "bilinear", fill_mode: str = "constant",
                              image_shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Input gradient of :func:`affine_transform`: the exact adjoint of its (linear) resampling.

    ``grad_y`` is the gradient of the output (n, out_h, out_w, c); the result has the images' shape
    (n, h, w, c), with ``image_shape`` = (h, w) defaulting to (out_h, out_w). Each output pixel's
    gradient goes to the input pixels it sampled, with the interpolation weights; taps that read the
    fill value (``fill_mode='constant'``) pass no gradient, folded taps (reflect/wrap/nearest) pass it
    to the pixel they were folded onto. Same transforms, interpolation and fill mode as the forward.
    """
    op = "affine_transform_backward"
    g = _f32(grad_y, op, "grad_y")
    t = _resample_args(op, g, transforms, interpolation, fill_mode)
    size = None if image_shape is None else _pair(image_shape, op, "image_shape")
    return _rconv.affine_transform_backward(g, t, interpolation, fill_mode, size)


def _resample_args(op: str, x: np.ndarray, transforms, interpolation: str, fill_mode: str) -> np.ndarray:
    """Check the modes; return the transforms as float32 (n, 8) (a single (8,) one is used for every image)."""
    t = np.asarray(transforms)
    t = _f32(t.astype(np.float32) if t.dtype.kind in "iu" else t, op, "transforms")  # ints are fine here
    if t.ndim == 1:
        t = np.ascontiguousarray(np.broadcast_to(t, (x.shape[0] if x.ndim == 4 else 1, t.shape[0])))
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"{op}: interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    if fill_mode not in ("constant", "nearest", "reflect", "wrap"):
        raise ValueError(f"{op}: fill_mode must be 'constant', 'nearest', 'reflect' or 'wrap', got {fill_mode!r}")
    return t


# --- normalization (the channels / features on the last axis; any rank) ------------------------------

__all__ += ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"]


def _opt_f32(v, op: str, name: str):
    return None if v is None else _f32(v, op, name)


def batch_norm(x, gamma=None, beta=None, mean=None, variance=None, epsilon: float = 1e-3):
    """Batch normalization over the last axis: returns (y, mean, variance). Without ``mean``/``variance``
    the batch's own per-channel statistics (biased variance, like Keras) are used and returned."""
    op = "batch_norm"
    return _rconv.batch_norm(_f32(x, op, "x"), _opt_f32(gamma, op, "gamma"), _opt_f32(beta, op, "beta"),
                             _opt_f32(mean, op, "mean"), _opt_f32(variance, op, "variance"),
                             _float(epsilon, op, "epsilon"))


def batch_norm_backward(x, grad_y, gamma, mean, variance, epsilon: float = 1e-3, *, batch_stats: bool = True,
                        need_grad_x: bool = True):
    """Gradients of batch_norm: (grad_x, grad_gamma, grad_beta). ``batch_stats``: the statistics were the
    batch's (training; the gradient flows through them) rather than constants (inference)."""
    op = "batch_norm_backward"
    return _rconv.batch_norm_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), _opt_f32(gamma, op, "gamma"),
                                      _f32(mean, op, "mean"), _f32(variance, op, "variance"),
                                      _float(epsilon, op, "epsilon"), bool(batch_stats), bool(need_grad_x))


def layer_norm(x, gamma=None, beta=None, epsilon: float = 1e-3):
    """Layer normalization over the last axis: returns (y, mean, inv_std), one mean and 1/std per row
    (all axes but the last, flattened) for layer_norm_backward."""
    op = "layer_norm"
    return _rconv.layer_norm(_f32(x, op, "x"), _opt_f32(gamma, op, "gamma"), _opt_f32(beta, op, "beta"),
                             _float(epsilon, op, "epsilon"))


def layer_norm_backward(x, grad_y, gamma, mean, inv_std, *, need_grad_x: bool = True):
    """Gradients of layer_norm: (grad_x, grad_gamma, grad_beta)."""
    op = "layer_norm_backward"
    return _rconv.layer_norm_backward(_f32(x, op, "x"), _f32(grad_y, op, "grad_y"), _opt_f32(gamma, op, "gamma"),
                                      _f32(mean, op, "mean"), _f32(inv_std, op, "inv_std"), bool(need_grad_x))

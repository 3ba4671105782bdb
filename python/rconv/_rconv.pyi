"""Type stubs of the native module. Arrays are float32 and C-contiguous; the public, checked API is
``rconv.ops``."""
from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt

# PyO3 sets the runtime `__all__` to the functions in registration order; stubtest checks this list against it.
__all__ = [
    "conv2d", "conv2d_backward", "conv2d_relu_max_pool", "conv2d_relu_max_pool_backward", "pool2d",
    "pool2d_backward", "dense", "dense_backward", "activation", "activation_backward", "loss", "sgd_update",
    "rmsprop_update", "adam_update", "affine_transform", "affine_transform_backward", "num_threads",
    "batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward",
]

_F32 = npt.NDArray[np.float32]

def conv2d(
    x: _F32, kernel: _F32, bias: Optional[_F32], strides: Tuple[int, int], padding: str,
    activation: Optional[str] = None,
) -> _F32: ...
def conv2d_backward(
    x: _F32, kernel: _F32, grad_y: _F32, strides: Tuple[int, int], padding: str, need_grad_x: bool = True,
    relu_output: Optional[_F32] = None,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def conv2d_relu_max_pool(
    x: _F32, kernel: _F32, bias: Optional[_F32], strides: Tuple[int, int], padding: str, pool_size: Tuple[int, int],
    pool_strides: Tuple[int, int], pool_padding: str, winners: bool = False,
) -> Tuple[_F32, Optional[npt.NDArray[np.uint32]]]: ...
def conv2d_relu_max_pool_backward(
    x: _F32, kernel: _F32, grad_y: _F32, winners: npt.NDArray[np.uint32], strides: Tuple[int, int], padding: str,
    pool_size: Tuple[int, int], pool_strides: Tuple[int, int], pool_padding: str, need_grad_x: bool = True,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def pool2d(x: _F32, kind: str, pool_size: Tuple[int, int], strides: Tuple[int, int], padding: str) -> _F32: ...
def pool2d_backward(
    x: _F32, grad_y: _F32, kind: str, pool_size: Tuple[int, int], strides: Tuple[int, int], padding: str,
    y: Optional[_F32] = None,
) -> _F32: ...
def dense(x: _F32, kernel: _F32, bias: Optional[_F32], activation: Optional[str] = None) -> _F32: ...
def dense_backward(
    x: _F32, kernel: _F32, grad_y: _F32, need_grad_x: bool = True, relu_output: Optional[_F32] = None
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def activation(x: _F32, kind: str) -> _F32: ...
def activation_backward(saved: _F32, grad_y: _F32, kind: str) -> _F32: ...
def loss(pred: _F32, labels: npt.NDArray[np.float32] | npt.NDArray[np.int64], kind: str) -> Tuple[float, _F32]: ...
def sgd_update(
    param: _F32, grad: _F32, momentum_buf: Optional[_F32], learning_rate: float, momentum: float, nesterov: bool
) -> None: ...
def rmsprop_update(
    param: _F32, grad: _F32, velocity: _F32, learning_rate: float, rho: float, epsilon: float,
    momentum_buf: Optional[_F32] = None, momentum: float = 0.0, average_grad: Optional[_F32] = None,
) -> None: ...
def adam_update(
    param: _F32, grad: _F32, m: _F32, v: _F32, learning_rate: float, beta_1: float, beta_2: float, epsilon: float,
    step: int, v_hat: Optional[_F32] = None,
) -> None: ...
def num_threads() -> int: ...
def affine_transform(
    images: _F32, transforms: _F32, interpolation: str, fill_mode: str, fill_value: float,
    output_shape: Optional[Tuple[int, int]] = None,
) -> _F32: ...
def affine_transform_backward(
    grad_y: _F32, transforms: _F32, interpolation: str, fill_mode: str, image_shape: Optional[Tuple[int, int]] = None,
) -> _F32: ...
def batch_norm(
    x: _F32, gamma: Optional[_F32], beta: Optional[_F32], mean: Optional[_F32] = None,
    variance: Optional[_F32] = None, epsilon: float = 1e-3,
) -> Tuple[_F32, _F32, _F32]: ...
def batch_norm_backward(
    x: _F32, grad_y: _F32, gamma: Optional[_F32], mean: _F32, variance: _F32, epsilon: float, batch_stats: bool,
    need_grad_x: bool = True,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def layer_norm(
    x: _F32, gamma: Optional[_F32], beta: Optional[_F32], epsilon: float = 1e-3
) -> Tuple[_F32, _F32, _F32]: ...
def layer_norm_backward(
    x: _F32, grad_y: _F32, gamma: Optional[_F32], mean: _F32, inv_std: _F32, need_grad_x: bool = True
) -> Tuple[Optional[_F32], _F32, _F32]: ...

# ---- Sections added per kernel family; each extends `__all__` with its own names, in registration order. ----

# == convolutions: dilation, groups, depthwise, transposed (py/conv.rs) ==
__all__ += [
    "conv2d_general", "conv2d_general_backward", "depthwise_conv2d", "depthwise_conv2d_backward",
    "conv2d_transpose", "conv2d_transpose_backward", "set_winograd", "winograd_enabled", "winograd_tile",
]

def conv2d_general(
    x: _F32, kernel: _F32, bias: Optional[_F32], strides: Tuple[int, int], padding: str,
    dilation_rate: Tuple[int, int], groups: int,
) -> _F32: ...
def conv2d_general_backward(
    x: _F32, kernel: _F32, grad_y: _F32, strides: Tuple[int, int], padding: str, dilation_rate: Tuple[int, int],
    groups: int, need_grad_x: bool = True,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def depthwise_conv2d(
    x: _F32, kernel: _F32, bias: Optional[_F32], strides: Tuple[int, int], padding: str,
    dilation_rate: Tuple[int, int],
) -> _F32: ...
def depthwise_conv2d_backward(
    x: _F32, kernel: _F32, grad_y: _F32, strides: Tuple[int, int], padding: str, dilation_rate: Tuple[int, int],
    need_grad_x: bool = True,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def conv2d_transpose(
    x: _F32, kernel: _F32, bias: Optional[_F32], output_size: Tuple[int, int], strides: Tuple[int, int],
    padding: str, dilation_rate: Tuple[int, int],
) -> _F32: ...
def conv2d_transpose_backward(
    x: _F32, kernel: _F32, grad_y: _F32, strides: Tuple[int, int], padding: str, dilation_rate: Tuple[int, int],
    need_grad_x: bool = True,
) -> Tuple[Optional[_F32], _F32, _F32]: ...
def set_winograd(enabled: bool, tile: int = 0) -> None: ...
def winograd_enabled() -> bool: ...
def winograd_tile(
    input_shape: list[int], kernel_shape: list[int], strides: Tuple[int, int], padding: str,
) -> int: ...

# == activations with parameters (py/activation.rs) ==
__all__ += ["activation_with", "activation_with_backward", "activation_saves_input", "prelu", "prelu_backward"]

def activation_with(x: _F32, kind: str, params: list[float] = ..., axis: int = ...) -> _F32: ...
def activation_with_backward(
    saved: _F32, grad_y: _F32, kind: str, params: list[float] = ..., axis: int = ...
) -> _F32: ...
def activation_saves_input(kind: str, params: list[float] = ...) -> bool: ...
def prelu(x: _F32, alpha: _F32) -> _F32: ...
def prelu_backward(x: _F32, alpha: _F32, grad_y: _F32) -> Tuple[_F32, _F32]: ...

# == losses (py/loss.rs) ==
__all__ += ["row_loss"]

def row_loss(pred: _F32, labels: npt.NDArray[np.float32] | npt.NDArray[np.int64], kind: str, coef: _F32,
             params: Optional[dict[str, float]] = None) -> Tuple[float, _F32, _F32]: ...

# == optimizers (py/optim.rs) ==
__all__ += ["adadelta_update", "adagrad_update", "adamax_update", "nadam_update", "lion_update",
            "weight_decay_update", "ema_update", "sum_squares"]
def adadelta_update(
    param: _F32, grad: _F32, accumulated_grad: _F32, accumulated_delta: _F32, learning_rate: float, rho: float,
    epsilon: float,
) -> None: ...
def adagrad_update(param: _F32, grad: _F32, accumulator: _F32, learning_rate: float, epsilon: float) -> None: ...
def adamax_update(
    param: _F32, grad: _F32, m: _F32, u: _F32, learning_rate: float, beta_1: float, beta_2: float, epsilon: float,
    step: int,
) -> None: ...
def nadam_update(
    param: _F32, grad: _F32, m: _F32, v: _F32, learning_rate: float, beta_1: float, beta_2: float, epsilon: float,
    step: int, u_product: float,
) -> None: ...
def lion_update(param: _F32, grad: _F32, m: _F32, learning_rate: float, beta_1: float, beta_2: float) -> None: ...
def weight_decay_update(param: _F32, weight_decay: float, learning_rate: float) -> None: ...
def ema_update(average: _F32, value: _F32, momentum: float) -> None: ...
def sum_squares(x: _F32) -> float: ...

# == normalization: group normalization (py/norm.rs) ==
__all__ += ["group_norm", "group_norm_backward"]

def group_norm(
    x: _F32, gamma: Optional[_F32], beta: Optional[_F32], groups: int, epsilon: float = 1e-3
) -> Tuple[_F32, _F32, _F32]: ...
def group_norm_backward(
    x: _F32, grad_y: _F32, gamma: Optional[_F32], mean: _F32, inv_std: _F32, groups: int, need_grad_x: bool = True
) -> Tuple[Optional[_F32], _F32, _F32]: ...

# == resampling: up-sampling, resizing (py/resample.rs) ==
__all__ += ["resize", "resize_backward"]

def resize(images: _F32, size: Tuple[int, int], interpolation: str) -> _F32: ...
def resize_backward(grad_y: _F32, image_shape: Tuple[int, int], interpolation: str) -> _F32: ...

# == GEMM compute precision: float32 or bfloat16 (py/precision.rs) ==
__all__ += ["set_compute_precision", "compute_precision", "bf16_kernel"]

def set_compute_precision(name: str) -> None: ...
def compute_precision() -> str: ...
def bf16_kernel() -> str: ...

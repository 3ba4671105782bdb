"""Process-wide settings, under Keras's `keras.config` names where Keras has one.

* Kernel fusion: a ReLU `Conv2D` whose output only a `MaxPooling2D` reads runs with it as one kernel
  (`ops.conv2d_relu_max_pool`), which never writes the convolution's output to memory. Results equal the
  unfused layers (the same maxima; gradients up to float32 summation order). On by default; the
  environment variable ``RCONV_FUSION=0`` or `disable_kernel_fusion()` turns it off (tests compare both).
  A model picks the setting up the next time it runs: its plan variants are keyed by it.
* Winograd convolution: 3×3 stride-1 `Conv2D` layers whose shape the kernels' cost model favours run
  Winograd's F(2×2,3×3) or F(4×4,3×3) algorithm (fewer multiplications, float32 rounding up to about
  10⁻⁵ of the terms' magnitude). On by default (the cost model picks it for larger images with 32+
  channels, never for the MNIST convnet's small layers); ``RCONV_WINOGRAD=0`` or
  `set_winograd_enabled(False)` turns it off for every later call (``RCONV_WINOGRAD=2``/``4`` or `tile=`
  forces one tile size).
"""
from __future__ import annotations

import os

_fusion = os.environ.get("RCONV_FUSION", "1").strip().lower() not in ("0", "false", "off", "no")


def enable_kernel_fusion() -> None:
    global _fusion
    _fusion = True


def disable_kernel_fusion() -> None:
    global _fusion
    _fusion = False


def is_kernel_fusion_enabled() -> bool:
    return _fusion


def set_winograd_enabled(enabled: bool, tile: int = 0) -> None:
    """Winograd convolution on or off; `tile` 2 or 4 forces F(2×2,3×3) or F(4×4,3×3) where it applies
    (0: chosen per layer shape)."""
    from . import _rconv
    _rconv.set_winograd(bool(enabled), int(tile))


def is_winograd_enabled() -> bool:
    from . import _rconv
    return _rconv.winograd_enabled()


# Keras's `keras.config` names for the dtype policy (one implementation, in `rconv.mixed_precision`).
from .mixed_precision.policy import dtype_policy, set_dtype_policy  # noqa: E402

# Keras's `keras.config` names for the backend settings (one implementation, in `rconv.backend`).
from .backend import (backend, epsilon, floatx, image_data_format, set_epsilon,  # noqa: E402
                      set_floatx, set_image_data_format)

__all__ = ["enable_kernel_fusion", "disable_kernel_fusion", "is_kernel_fusion_enabled", "set_winograd_enabled",
           "is_winograd_enabled", "floatx", "set_floatx", "dtype_policy", "set_dtype_policy",
           "image_data_format", "set_image_data_format", "epsilon", "set_epsilon", "backend"]

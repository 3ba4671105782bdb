"""Functional ops: the public, NumPy-facing face of the Rust kernels in ``rconv._rconv``.

Every function takes NumPy arrays (any float dtype; computed in float32), checks them, and calls one
GIL-released Rust kernel. Layout is NHWC; kernels use Keras's layouts: conv ``(kh, kw, cin, cout)``,
dense ``(in, out)``. Strides and pool sizes accept an int or a pair, like Keras.

The in-place optimizer updates (``*_update``) need float32 C-contiguous writeable arrays: they are the
model's own parameter and slot buffers, and copying them would silently drop the update.

Each family lives in its own module (`ops/<family>.py`, mirroring `src/ops/<family>.rs`); this package
re-exports their `__all__` (so `rconv.ops.dense` is the op, not the module).
"""
from . import activation as _activation, augment as _augment, conv as _conv, dense as _dense, loss as _loss
from . import norm as _norm, numpy as _numpy, optim as _optim, pool as _pool, resample as _resample
from .conv import *  # noqa: F403
from .pool import *  # noqa: F403
from .dense import *  # noqa: F403
from .activation import *  # noqa: F403
from .loss import *  # noqa: F403
from .optim import *  # noqa: F403
from .augment import *  # noqa: F403
from .norm import *  # noqa: F403
from .resample import *  # noqa: F403
from .numpy import *  # noqa: F403

__all__ = [
    *_conv.__all__, *_pool.__all__, *_dense.__all__, *_activation.__all__, *_loss.__all__, *_optim.__all__,
    *_augment.__all__, *_norm.__all__, *_resample.__all__, *_numpy.__all__,
]

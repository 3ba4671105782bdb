"""The native boundary with arrays and ints NumPy allows but a Rust slice or usize cannot take as is.

* A C-contiguous float32 array whose data is not 4-byte aligned (``np.frombuffer(buf, np.float32,
  offset=1)``) used to panic (``pyo3_runtime.PanicException``, a BaseException). Every binding now reads a
  copy and returns exactly what it returns for the aligned array; an in-place update's buffer cannot be
  copied (the update would be lost), so an unaligned one is a TypeError and is left untouched.
* Ints that do not fit the native type (``2**64``, negatives for sizes) are a ValueError naming the op
  and the argument, not PyO3's bare OverflowError.
"""
from __future__ import annotations

import numpy as np
import pytest

from rconv import _rconv, ops


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts one byte into a buffer (so it is not aligned)."""
    buf = bytearray(a.nbytes + 1)
    out = np.frombuffer(buf, a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert out.flags.c_contiguous and (a.size == 0 or not out.flags.aligned)
    return out


def same(a):
    return a


X4, K4, B4 = f32(2, 6, 6, 3, seed=1), f32(3, 3, 3, 4, seed=2), f32(4, seed=3)
X2, K2, B2 = f32(4, 5, seed=4), f32(5, 3, seed=5), f32(3, seed=6)
T8 = np.tile(np.array([1.1, 0.1, -0.5, -0.1, 0.9, 0.3, 0.0, 0.0], np.float32), (2, 1))
WINNERS = _rconv.conv2d_relu_max_pool(X4, K4, B4, (1, 1), "same", (2, 2), (2, 2), "valid", True)[1]
BN_MEAN, BN_VAR = X2.mean(0), X2.var(0)

# binding name -> function of `u` (applied to every array argument) returning the call's arguments.
CASES = {
    "conv2d": lambda u: (u(X4), u(K4), u(B4), (1, 1), "same", "relu"),
    "conv2d_backward": lambda u: (u(X4), u(K4), u(f32(2, 6, 6, 4)), (1, 1), "same", True, None),
    "conv2d_relu_max_pool": lambda u: (u(X4), u(K4), u(B4), (1, 1), "same", (2, 2), (2, 2), "valid", True),
    "conv2d_relu_max_pool_backward": lambda u: (u(X4), u(K4), u(f32(2, 3, 3, 4)), u(WINNERS), (1, 1), "same",
                                                (2, 2), (2, 2), "valid", True),
    "conv2d_general": lambda u: (u(X4), u(f32(3, 3, 1, 6, seed=2)), u(f32(6, seed=3)), (1, 1), "same", (2, 1), 3),
    "conv2d_general_backward": lambda u: (u(X4), u(f32(3, 3, 1, 6, seed=2)), u(f32(2, 6, 6, 6)), (1, 1), "same",
                                          (2, 1), 3, True),
    "depthwise_conv2d": lambda u: (u(X4), u(f32(3, 3, 3, 2, seed=2)), u(f32(6, seed=3)), (2, 1), "same", (1, 1)),
    "depthwise_conv2d_backward": lambda u: (u(X4), u(f32(3, 3, 3, 2, seed=2)), u(f32(2, 3, 6, 6)), (2, 1), "same",
                                            (1, 1), True),
    "conv2d_transpose": lambda u: (u(X4), u(f32(3, 3, 4, 3, seed=2)), u(B4), (12, 11), (2, 2), "same", (1, 1)),
    "conv2d_transpose_backward": lambda u: (u(X4), u(f32(3, 3, 4, 3, seed=2)), u(f32(2, 12, 11, 4)), (2, 2), "same",
                                            (1, 1), True),
    "pool2d": lambda u: (u(X4), "max", (2, 2), (2, 2), "valid"),
    "pool2d_backward": lambda u: (u(X4), u(f32(2, 3, 3, 3)), "avg", (2, 2), (2, 2), "valid", None),
    "dense": lambda u: (u(X2), u(K2), u(B2), "relu"),
    "dense_backward": lambda u: (u(X2), u(K2), u(f32(4, 3)), True, u(np.maximum(f32(4, 3, seed=9), 0))),
    "activation": lambda u: (u(X2), "softmax"),
    "activation_backward": lambda u: (u(X2), u(f32(4, 5, seed=7)), "sigmoid"),
    "activation_with": lambda u: (u(X4), "relu", [0.1, 6.0, 0.2], -1),
    "activation_with_backward": lambda u: (u(X4), u(f32(2, 6, 6, 3, seed=7)), "log_softmax", [], 1),
    "activation_saves_input": lambda u: ("gelu", [1.0]),
    "prelu": lambda u: (u(X4), u(f32(1, 1, 3, seed=4))),
    "prelu_backward": lambda u: (u(X4), u(f32(1, 6, 3, seed=4)), u(f32(2, 6, 6, 3, seed=7))),
    "loss": lambda u: (u(X2), u(np.array([0, 4, 2, 1], np.int64)), "softmax_cross_entropy"),
    "row_loss": lambda u: (u(X2), u(f32(4, 5, seed=7)), "huber", u(f32(4, seed=3)), {"delta": 0.5}),
    "sgd_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.zeros((4, 5), np.float32), 0.1, 0.9, True),
    "rmsprop_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.ones((4, 5), np.float32), 0.1, 0.9, 1e-7),
    "adam_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.zeros((4, 5), np.float32),
                              np.zeros((4, 5), np.float32), 0.1, 0.9, 0.999, 1e-7, 3),
    "adadelta_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.ones((4, 5), np.float32),
                                  np.ones((4, 5), np.float32), 0.5, 0.9, 1e-7),
    "adagrad_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.ones((4, 5), np.float32), 0.1, 1e-7),
    "adamax_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.zeros((4, 5), np.float32),
                                np.zeros((4, 5), np.float32), 0.1, 0.9, 0.999, 1e-7, 3),
    "nadam_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.zeros((4, 5), np.float32),
                               np.zeros((4, 5), np.float32), 0.1, 0.9, 0.999, 1e-7, 3, 0.5),
    "lion_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), np.ones((4, 5), np.float32), 0.1, 0.9, 0.99),
    "weight_decay_update": lambda u: (X2.copy(), 0.01, 0.1),
    "ema_update": lambda u: (X2.copy(), u(f32(4, 5, seed=8)), 0.9),
    "sum_squares": lambda u: (u(X2),),
    "affine_transform": lambda u: (u(X4), u(T8), "bilinear", "reflect", 0.0, (5, 7)),
    "affine_transform_backward": lambda u: (u(f32(2, 5, 7, 3)), u(T8), "bilinear", "reflect", (6, 6)),
    "resize": lambda u: (u(X4), (5, 7), "bilinear"),
    "resize_backward": lambda u: (u(f32(2, 5, 7, 3)), (6, 6), "bilinear"),
    "batch_norm": lambda u: (u(X2), u(f32(5)), u(f32(5, seed=1)), u(BN_MEAN), u(BN_VAR), 1e-3),
    "batch_norm_backward": lambda u: (u(X2), u(f32(4, 5, seed=7)), u(f32(5)), u(BN_MEAN), u(BN_VAR), 1e-3, True, True),
    "layer_norm": lambda u: (u(X2), u(f32(5)), u(f32(5, seed=1)), 1e-3),
    "layer_norm_backward": lambda u: (u(X2), u(f32(4, 5, seed=7)), u(f32(5)),
                                      *map(u, _rconv.layer_norm(X2, None, None, 1e-3)[1:]), True),
    "group_norm": lambda u: (u(X4), u(f32(3)), u(f32(3, seed=1)), 3, 1e-3),
    "group_norm_backward": lambda u: (u(X4), u(f32(2, 6, 6, 3, seed=7)), u(f32(3)),
                                      *map(u, _rconv.group_norm(X4, None, None, 3, 1e-3)[1:]), 3, True),
}


def wrap_arrays(u):
    """Apply ``u`` to ndarrays only (tuples of ints and strings pass through)."""
    return lambda a: u(a) if isinstance(a, np.ndarray) else a


def call(name, u):
    args = CASES[name](wrap_arrays(u))
    out = getattr(_rconv, name)(*args)
    # In-place updates return None: their result is the updated parameter (and slots).
    return [a for a in args if isinstance(a, np.ndarray)] if out is None else out


def assert_identical(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif a is None or isinstance(a, float):
        assert a == b
    else:
        np.testing.assert_array_equal(a, b)


BUILT = sorted(name for name in CASES if hasattr(_rconv, name))


# Settings and queries that take no array: nothing for the unaligned-buffer cases to exercise.
NO_ARRAYS = {"num_threads", "set_compute_precision", "compute_precision", "bf16_kernel", "set_winograd",
             "winograd_enabled", "winograd_tile"}


def test_every_binding_has_a_case():
    assert set(_rconv.__all__) - NO_ARRAYS <= set(CASES)


@pytest.mark.parametrize("name", BUILT)
def test_unaligned_inputs_give_the_aligned_result(name):
    assert_identical(call(name, unaligned), call(name, same))


@pytest.mark.parametrize("name", ["sgd_update", "rmsprop_update", "adam_update"])
def test_unaligned_parameter_buffer_is_refused_untouched(name):
    args = list(CASES[name](same))
    args[0] = unaligned(args[0])
    before = args[0].copy()
    with pytest.raises(TypeError, match=f"{name}: `param`.*aligned"):
        getattr(_rconv, name)(*args)
    np.testing.assert_array_equal(args[0], before)


def test_public_ops_accept_unaligned_views():
    x = unaligned(X4)
    np.testing.assert_array_equal(ops.relu(x), ops.relu(X4))
    np.testing.assert_array_equal(ops.max_pool2d(x, 2), ops.max_pool2d(X4, 2))
    labels = unaligned(np.array([0, 4, 2, 1], np.int64))
    assert ops.softmax_cross_entropy(unaligned(X2), labels)[0] == ops.softmax_cross_entropy(X2, labels)[0]
    p1, p2 = X2.copy(), X2.copy()
    ops.sgd_update(p1, unaligned(f32(4, 5, seed=8)), None, 0.1)
    ops.sgd_update(p2, f32(4, 5, seed=8), None, 0.1)
    np.testing.assert_array_equal(p1, p2)


# --- ints that overflow the native types -----------------------------------------------------------------

@pytest.mark.parametrize("size", [2**64, 2**70, -1])
def test_pool_sizes_beyond_usize_are_value_errors(size):
    with pytest.raises(ValueError, match="max_pool2d: `pool_size`"):
        _rconv.pool2d(X4, "max", (size, 1), (1, 1), "valid")
    with pytest.raises(ValueError, match="max_pool2d"):
        ops.max_pool2d(X4, size)


def test_huge_but_representable_windows_are_value_errors():
    # 2**63 fits a usize, but the window arithmetic (out * stride + window) would overflow.
    with pytest.raises(ValueError, match="max_pool2d"):
        ops.max_pool2d(X4, 2**63)
    with pytest.raises(ValueError, match="avg_pool2d"):
        ops.avg_pool2d(X4, (2**64 - 1, 1), padding="same")
    with pytest.raises(ValueError, match="conv2d: `strides`"):
        ops.conv2d(X4, K4, strides=2**64)


def test_other_int_arguments_beyond_their_type():
    with pytest.raises(ValueError, match="adam_update: `step`"):
        _rconv.adam_update(X2.copy(), X2, np.zeros_like(X2), np.zeros_like(X2), 0.1, 0.9, 0.999, 1e-7, 2**64)
    with pytest.raises(ValueError, match="affine_transform: `output_shape`"):
        _rconv.affine_transform(X4, T8, "bilinear", "constant", 0.0, (2**64, 1))
    with pytest.raises(ValueError, match="affine_transform_backward: `image_shape`"):
        _rconv.affine_transform_backward(X4, T8, "bilinear", "constant", (-3, 1))
    with pytest.raises(TypeError, match="conv2d: `strides` must be a pair of ints"):
        _rconv.conv2d(X4, K4, None, "ab", "valid")


@pytest.mark.parametrize("value", [2.5, True, "2", None, (1, 1.5)])
def test_sizes_that_are_not_ints_are_type_errors(value):
    with pytest.raises(TypeError, match="max_pool2d: `pool_size` must be an int or a pair of ints"):
        ops.max_pool2d(X4, value)


def test_integral_floats_and_numpy_ints_are_sizes():
    expected = ops.max_pool2d(X4, 2)
    for value in (2.0, np.int32(2), (np.int64(2), 2), np.array([2, 2])):
        np.testing.assert_array_equal(ops.max_pool2d(X4, value), expected)


def test_float_arguments_beyond_a_float_are_value_errors():
    with pytest.raises(ValueError, match="sgd_update: `learning_rate` is too large"):
        ops.sgd_update(X2.copy(), X2, None, 2**2000)
    with pytest.raises(TypeError, match="adam_update: `beta_1` must be a real number"):
        ops.adam_update(X2.copy(), X2, np.zeros_like(X2), np.zeros_like(X2), 0.1, beta_1="x")

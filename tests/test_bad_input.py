"""Bad inputs raise clear ValueError / TypeError naming the op and the offending shapes, never crash.

Also: non-contiguous float inputs work through the public ops (and give identical results), the raw
``rconv._rconv`` functions refuse them cleanly, in-place optimizer updates never silently update a
copy, NaN passes through, and empty batches neither crash nor panic.

A ``pyo3_runtime.PanicException`` derives from BaseException, not Exception, so ``pytest.raises``
with ValueError/TypeError lets it through as a failure, as it should.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import reference as ref


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


@pytest.fixture(scope="module")
def raw():
    from rconv import _rconv
    return _rconv


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def mentions_shape(msg: str, shape) -> bool:
    """True if msg shows the shape as (a, b), [a, b], (a,) or [a]."""
    dims = r"\s*,\s*".join(str(int(d)) for d in shape)
    return re.search(r"[\[(]\s*" + dims + r"\s*,?\s*[\])]", msg) is not None


def expect(exc, fn, *args, op, shapes=(), words=(), **kwargs):
    """Call fn; it must raise exc with a message naming op, every shape in shapes and every word."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert op in msg, f"message does not name the op {op!r}: {msg!r}"
    for s in shapes:
        assert mentions_shape(msg, s), f"message does not show shape {tuple(s)}: {msg!r}"
    for w in words:
        assert w in msg, f"message does not mention {w!r}: {msg!r}"
    return msg


# --- conv2d -------------------------------------------------------------------------------------------

def test_conv2d_wrong_rank(ops):
    expect(ValueError, ops.conv2d, f32(5, 5, 3), f32(3, 3, 3, 4), op="conv2d", shapes=[(5, 5, 3)])
    expect(ValueError, ops.conv2d, f32(1, 2, 5, 5, 3), f32(3, 3, 3, 4), op="conv2d", shapes=[(1, 2, 5, 5, 3)])
    expect(ValueError, ops.conv2d, f32(2, 5, 5, 3), f32(3, 3, 3), op="conv2d", shapes=[(3, 3, 3)])
    expect(ValueError, ops.conv2d_backward, f32(5, 5, 3), f32(3, 3, 3, 4), f32(3, 3, 4),
           op="conv2d_backward", shapes=[(5, 5, 3)])


def test_conv2d_channel_mismatch(ops):
    expect(ValueError, ops.conv2d, f32(2, 5, 5, 3), f32(3, 3, 4, 8), op="conv2d", shapes=[(2, 5, 5, 3), (3, 3, 4, 8)])
    expect(ValueError, ops.conv2d_backward, f32(2, 5, 5, 3), f32(3, 3, 4, 8), f32(2, 3, 3, 8),
           op="conv2d_backward", shapes=[(2, 5, 5, 3), (3, 3, 4, 8)])


def test_conv2d_kernel_larger_than_input_valid(ops):
    expect(ValueError, ops.conv2d, f32(1, 2, 2, 1), f32(3, 3, 1, 1), padding="valid",
           op="conv2d", shapes=[(1, 2, 2, 1), (3, 3, 1, 1)])
    expect(ValueError, ops.conv2d, f32(1, 5, 2, 1), f32(1, 3, 1, 1), padding="valid",
           op="conv2d", shapes=[(1, 5, 2, 1), (1, 3, 1, 1)])
    # the same shapes are fine with 'same' padding
    assert ops.conv2d(f32(1, 2, 2, 1), f32(3, 3, 1, 1), padding="same").shape == (1, 2, 2, 1)


def test_conv2d_bad_bias(ops):
    expect(ValueError, ops.conv2d, f32(2, 5, 5, 3), f32(3, 3, 3, 4), f32(5), op="conv2d", shapes=[(5,)])
    expect(ValueError, ops.conv2d, f32(2, 5, 5, 3), f32(3, 3, 3, 4), f32(1, 4), op="conv2d", shapes=[(1, 4)])
    expect(TypeError, ops.conv2d, f32(2, 5, 5, 3), f32(3, 3, 3, 4), np.arange(4), op="conv2d", shapes=[(4,)])


def test_conv2d_backward_grad_y_shape(ops):
    expect(ValueError, ops.conv2d_backward, f32(2, 5, 5, 3), f32(3, 3, 3, 4), f32(2, 5, 5, 4), padding="valid",
           op="conv2d_backward", shapes=[(2, 5, 5, 4), (2, 3, 3, 4)])
    expect(ValueError, ops.conv2d_backward, f32(2, 5, 5, 3), f32(3, 3, 3, 4), f32(2, 3, 3, 5),
           op="conv2d_backward", shapes=[(2, 3, 3, 5)])


def test_conv2d_integer_and_other_dtypes(ops):
    xi = np.ones((2, 5, 5, 3), dtype=np.int64)
    expect(TypeError, ops.conv2d, xi, f32(3, 3, 3, 4), op="conv2d", shapes=[(2, 5, 5, 3)], words=["int64"])
    expect(TypeError, ops.conv2d, f32(2, 5, 5, 3), np.ones((3, 3, 3, 4), np.int32), op="conv2d",
           shapes=[(3, 3, 3, 4)], words=["int32"])
    expect(TypeError, ops.conv2d, np.ones((2, 5, 5, 3), bool), f32(3, 3, 3, 4), op="conv2d")
    expect(TypeError, ops.conv2d, np.ones((2, 5, 5, 3), np.complex64), f32(3, 3, 3, 4), op="conv2d")
    expect(TypeError, ops.conv2d_backward, f32(2, 5, 5, 3), f32(3, 3, 3, 4), np.ones((2, 3, 3, 4), np.int8),
           op="conv2d_backward", shapes=[(2, 3, 3, 4)])


@pytest.mark.parametrize("padding", ["full", "", "VALIDD", None, 1])
def test_conv2d_bad_padding(ops, padding):
    expect(ValueError, ops.conv2d, f32(1, 5, 5, 1), f32(3, 3, 1, 1), padding=padding, op="conv2d", words=["padding"])
    expect(ValueError, ops.conv2d_backward, f32(1, 5, 5, 1), f32(3, 3, 1, 1), f32(1, 3, 3, 1), padding=padding,
           op="conv2d_backward", words=["padding"])


@pytest.mark.parametrize("strides", [0, -1, (0, 1), (1, 0), (2, -2), (1, 2, 3), (1,)])
def test_conv2d_bad_strides(ops, strides):
    expect(ValueError, ops.conv2d, f32(1, 5, 5, 1), f32(3, 3, 1, 1), strides=strides, op="conv2d", words=["strides"])
    expect(ValueError, ops.conv2d_backward, f32(1, 5, 5, 1), f32(3, 3, 1, 1), f32(1, 3, 3, 1), strides=strides,
           op="conv2d_backward", words=["strides"])


def test_conv2d_zero_sized_kernel_or_channels(ops):
    for x, k in ((f32(1, 5, 5, 0), f32(3, 3, 0, 2)), (f32(1, 5, 5, 2), f32(3, 3, 2, 0)),
                 (f32(1, 5, 5, 2), f32(0, 3, 2, 2))):
        try:
            y = ops.conv2d(x, k, padding="same")
        except ValueError as e:
            assert "conv2d" in str(e)
        else:
            assert y.size == 0 or np.all(np.isfinite(y))


# --- pooling ----------------------------------------------------------------------------------------

POOLS = [("max_pool2d", "max_pool2d_backward"), ("avg_pool2d", "avg_pool2d_backward")]


@pytest.mark.parametrize("fwd,bwd", POOLS)
def test_pool_bad_inputs(ops, fwd, bwd):
    f, b = getattr(ops, fwd), getattr(ops, bwd)
    expect(ValueError, f, f32(5, 5, 3), 2, op=fwd, shapes=[(5, 5, 3)])
    expect(ValueError, b, f32(5, 5, 3), f32(2, 2, 3), 2, op=bwd, shapes=[(5, 5, 3)])
    expect(ValueError, f, f32(1, 2, 2, 1), 3, padding="valid", op=fwd, shapes=[(1, 2, 2, 1)])
    expect(ValueError, f, f32(1, 5, 2, 1), (2, 3), padding="valid", op=fwd, shapes=[(1, 5, 2, 1)])
    for bad in (0, -2, (2, 0), (1, 2, 3)):
        expect(ValueError, f, f32(1, 4, 4, 1), bad, op=fwd, words=["pool_size"])
        expect(ValueError, f, f32(1, 4, 4, 1), 2, bad, op=fwd, words=["strides"])
        expect(ValueError, b, f32(1, 4, 4, 1), f32(1, 2, 2, 1), 2, bad, op=bwd, words=["strides"])
    for pad in ("full", None):
        expect(ValueError, f, f32(1, 4, 4, 1), 2, padding=pad, op=fwd, words=["padding"])
    expect(TypeError, f, np.ones((1, 4, 4, 1), np.int32), 2, op=fwd, shapes=[(1, 4, 4, 1)])
    expect(TypeError, b, f32(1, 4, 4, 1), np.ones((1, 2, 2, 1), np.int64), 2, op=bwd, shapes=[(1, 2, 2, 1)])
    # grad_y of the wrong shape: names both the given and the expected shape
    expect(ValueError, b, f32(2, 4, 4, 3), f32(2, 3, 3, 3), 2, op=bwd, shapes=[(2, 3, 3, 3), (2, 2, 2, 3)])
    expect(ValueError, b, f32(2, 4, 4, 3), f32(2, 2, 2, 4), 2, op=bwd, shapes=[(2, 2, 2, 4)])


# --- dense --------------------------------------------------------------------------------------------

def test_dense_bad_inputs(ops):
    expect(ValueError, ops.dense, f32(5), f32(5, 3), op="dense", shapes=[(5,)])
    expect(ValueError, ops.dense, f32(2, 3, 5), f32(5, 3), op="dense", shapes=[(2, 3, 5)])
    expect(ValueError, ops.dense, f32(2, 5), f32(5), op="dense", shapes=[(5,)])
    expect(ValueError, ops.dense, f32(2, 5), f32(4, 3), op="dense", shapes=[(2, 5), (4, 3)])
    expect(ValueError, ops.dense, f32(2, 5), f32(5, 3), f32(4), op="dense", shapes=[(4,)])
    expect(ValueError, ops.dense, f32(2, 5), f32(5, 3), f32(1, 3), op="dense", shapes=[(1, 3)])
    expect(TypeError, ops.dense, np.ones((2, 5), np.int64), f32(5, 3), op="dense", shapes=[(2, 5)])
    expect(TypeError, ops.dense, f32(2, 5), f32(5, 3), np.zeros(3, np.int64), op="dense", shapes=[(3,)])
    expect(ValueError, ops.dense_backward, f32(2, 5), f32(5, 3), f32(2, 4), op="dense_backward",
           shapes=[(2, 4), (2, 3)])
    expect(ValueError, ops.dense_backward, f32(2, 5), f32(5, 3), f32(3, 3), op="dense_backward", shapes=[(3, 3)])
    expect(ValueError, ops.dense_backward, f32(2, 5), f32(4, 3), f32(2, 3), op="dense_backward",
           shapes=[(2, 5), (4, 3)])
    expect(TypeError, ops.dense_backward, f32(2, 5), f32(5, 3), np.ones((2, 3), np.int32), op="dense_backward")


# --- activations --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["relu", "sigmoid", "softmax"])
def test_activation_bad_inputs(ops, name):
    f, b = getattr(ops, name), getattr(ops, name + "_backward")
    expect(TypeError, f, np.arange(6).reshape(2, 3), op=name, shapes=[(2, 3)])
    expect(TypeError, b, np.arange(6).reshape(2, 3), f32(2, 3), op=name + "_backward", shapes=[(2, 3)])
    expect(TypeError, b, f32(2, 3), np.arange(6).reshape(2, 3), op=name + "_backward", shapes=[(2, 3)])
    expect(ValueError, b, f32(2, 3), f32(3, 2), op=name + "_backward", shapes=[(3, 2), (2, 3)])
    expect(ValueError, b, f32(2, 3), f32(6), op=name + "_backward", shapes=[(6,), (2, 3)])


def test_softmax_of_empty_last_axis(ops):
    for shape in ((3, 0), (0,)):
        try:
            y = ops.softmax(np.zeros(shape, np.float32))
        except ValueError as e:
            assert "softmax" in str(e)
        else:
            assert y.shape == shape


# --- losses -------------------------------------------------------------------------------------------

def test_loss_bad_labels(ops):
    z = f32(4, 5)
    for name in ("softmax_cross_entropy", "categorical_cross_entropy"):
        f = getattr(ops, name)
        p = np.abs(z) + 0.1
        expect(ValueError, f, p, np.array([0, 1, 2]), op=name, shapes=[(4, 5)], words=["3"])       # 3 ids for 4 rows
        expect(ValueError, f, p, np.array([0, 1, 2, 3, 4]), op=name, shapes=[(4, 5)], words=["5"])
        expect(ValueError, f, p, np.array([0, 1, 5, 2]), op=name, words=["5"])                     # id out of range
        expect(ValueError, f, p, np.array([0, -1, 2, 2]), op=name, words=["-1"])
        expect(ValueError, f, p, ref.one_hot([0, 1, 2], 5), op=name, shapes=[(3, 5), (4, 5)])
        expect(ValueError, f, p, ref.one_hot([0, 1, 2, 3], 6), op=name, shapes=[(4, 6), (4, 5)])
        expect(TypeError, f, np.ones((4, 5), np.int64), np.array([0, 1, 2, 3]), op=name, shapes=[(4, 5)])
        expect(TypeError, f, p, np.ones((4, 5), np.int64), op=name, shapes=[(4, 5)])  # integer one-hot
    for name in ("sigmoid_cross_entropy", "binary_cross_entropy", "mean_squared_error"):
        f = getattr(ops, name)
        p = 1 / (1 + np.exp(-z))
        expect(ValueError, f, p, p[:3], op=name, shapes=[(3, 5), (4, 5)])
        expect(ValueError, f, p, p.reshape(5, 4), op=name, shapes=[(5, 4), (4, 5)])
        expect(ValueError, f, p, p.ravel(), op=name, shapes=[(20,), (4, 5)])
        expect(TypeError, f, np.ones((4, 5), np.int32), p, op=name, shapes=[(4, 5)])
        expect(TypeError, f, p, np.ones((4, 5), np.int64), op=name, shapes=[(4, 5)])


# --- optimizers: never update a copy silently ------------------------------------------------------

def _param_cases():
    base = f32(4, 6, seed=5)
    ro = base.copy()
    ro.setflags(write=False)
    return {
        "float64": (base.astype(np.float64), TypeError),
        "non-contiguous": (f32(4, 12, seed=5)[:, ::2], ValueError),
        "fortran-order": (np.asfortranarray(base.copy()), ValueError),
        "read-only": (ro, ValueError),
        "int32": (np.ones((4, 6), np.int32), TypeError),
    }


def _updates(ops):
    """(name, call(param, grad, buf)) for each optimizer, with buf used for every slot buffer."""
    return [
        ("sgd_update", lambda p, g, b: ops.sgd_update(p, g, b, 0.1, 0.9, False)),
        ("rmsprop_update", lambda p, g, b: ops.rmsprop_update(p, g, b, 0.1)),
        ("adam_update", lambda p, g, b: ops.adam_update(p, g, b, np.zeros((4, 6), np.float32), 0.1)),
        ("adam_update", lambda p, g, b: ops.adam_update(p, g, np.zeros((4, 6), np.float32), b, 0.1)),
    ]


@pytest.mark.parametrize("kind", ["float64", "non-contiguous", "fortran-order", "read-only", "int32"])
def test_optimizer_rejects_bad_param(ops, kind):
    param, exc = _param_cases()[kind]
    for name, call in _updates(ops)[:3]:
        before = param.copy()
        expect((ValueError, TypeError), call, param, np.ones((4, 6), np.float32), np.zeros((4, 6), np.float32), op=name)
        with pytest.raises(exc):
            call(param, np.ones((4, 6), np.float32), np.zeros((4, 6), np.float32))
        np.testing.assert_array_equal(param, before, err_msg=f"{name}: rejected {kind} param was modified")
    with pytest.raises(exc):
        ops.sgd_update(param, np.ones((4, 6), np.float32), None, 0.1)


@pytest.mark.parametrize("kind", ["float64", "non-contiguous", "fortran-order", "read-only", "int32"])
def test_optimizer_rejects_bad_slot_buffer(ops, kind):
    buf, exc = _param_cases()[kind]
    for name, call in _updates(ops):
        p = f32(4, 6, seed=9)
        before, buf_before = p.copy(), buf.copy()
        with pytest.raises(exc) as info:
            call(p, np.ones((4, 6), np.float32), buf)
        assert name in str(info.value), str(info.value)
        np.testing.assert_array_equal(p, before, err_msg=f"{name}: param updated although a {kind} buffer was rejected")
        np.testing.assert_array_equal(buf, buf_before)


def test_optimizer_shape_mismatch(ops):
    p = f32(4, 6)
    for name, call in _updates(ops):
        before = p.copy()
        expect(ValueError, call, p, np.ones((4, 5), np.float32), np.zeros((4, 6), np.float32), op=name)  # grad
        expect(ValueError, call, p, np.ones((4, 6), np.float32), np.zeros((4, 5), np.float32), op=name)  # buffer
        np.testing.assert_array_equal(p, before, err_msg=f"{name}: param modified by a rejected call")
    before = p.copy()
    expect(ValueError, ops.sgd_update, p, np.ones((3, 6), np.float32), None, 0.1, op="sgd_update")
    np.testing.assert_array_equal(p, before)


def test_optimizer_same_size_different_shape(ops):
    # grad / buffers with the parameter's element count but another shape are almost surely a bug
    # in the caller (e.g. the wrong layer's weights); they must not be applied silently
    for name, call in _updates(ops):
        p = f32(4, 6)
        before = p.copy()
        expect(ValueError, call, p, np.ones((6, 4), np.float32), np.zeros((4, 6), np.float32), op=name,
               shapes=[(6, 4), (4, 6)])
        expect(ValueError, call, p, np.ones((4, 6), np.float32), np.zeros((24,), np.float32), op=name,
               shapes=[(24,), (4, 6)])
        np.testing.assert_array_equal(p, before)


def test_optimizer_other_bad_arguments(ops):
    p = f32(3)
    expect(ValueError, ops.sgd_update, p, f32(3), None, 0.1, 0.9, op="sgd_update", words=["momentum"])
    expect(TypeError, ops.sgd_update, p, np.ones(3, np.int64), None, 0.1, op="sgd_update", shapes=[(3,)])
    expect(ValueError, ops.adam_update, p, f32(3), np.zeros(3, np.float32), np.zeros(3, np.float32), 0.1, step=0,
           op="adam_update", words=["step"])
    # the same buffer passed as both of Adam's moments
    m = np.zeros(3, np.float32)
    expect(ValueError, ops.adam_update, p, f32(3), m, m, 0.1, op="adam_update")
    # a Python list is not a parameter buffer
    expect(TypeError, ops.sgd_update, [1.0, 2.0, 3.0], f32(3), None, 0.1, op="sgd_update")


def test_adam_negative_step(ops):
    # must be a ValueError naming the op, not PyO3's bare "OverflowError: can't convert negative int to unsigned"
    p = f32(3)
    before = p.copy()
    expect(ValueError, ops.adam_update, p, f32(3), np.zeros(3, np.float32), np.zeros(3, np.float32), 0.1, step=-1,
           op="adam_update", words=["step"])
    np.testing.assert_array_equal(p, before)


def test_optimizer_grad_may_be_float64_or_non_contiguous(ops):
    p1, p2 = f32(4, 6, seed=1), f32(4, 6, seed=1)
    g = np.random.default_rng(2).standard_normal((6, 4))
    ops.sgd_update(p1, np.ascontiguousarray(g.T, dtype=np.float32), None, 0.1)
    ops.sgd_update(p2, g.T, None, 0.1)  # float64, transposed view
    np.testing.assert_array_equal(p1, p2)


# --- non-contiguous inputs --------------------------------------------------------------------------

def _views(a):
    """Non-contiguous float views equal to a: strided slice, Fortran order, negative strides, float64."""
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    yield "strided", big[..., ::2]
    if a.ndim > 1:
        yield "fortran", np.asfortranarray(a)
    flipped = np.ascontiguousarray(a[::-1])
    yield "negative-stride", flipped[::-1]
    yield "float64-strided", big[..., ::2].astype(np.float64)


def _noncontig_calls(ops):
    x, k, b = f32(2, 7, 6, 3, seed=1), f32(3, 2, 3, 4, seed=2), f32(4, seed=3)
    gyc = f32(2, 4, 3, 4, seed=4)
    gyp = f32(2, 4, 3, 3, seed=5)
    xd, kd, gyd = f32(5, 7, seed=6), f32(7, 3, seed=7), f32(5, 3, seed=8)
    p = np.abs(f32(5, 4, seed=9)) + 0.05
    y01 = (f32(5, 4, seed=10) > 0).astype(np.float32)
    return [
        ("conv2d", lambda x, k, b: ops.conv2d(x, k, b, (2, 2), "same"), (x, k, b)),
        ("conv2d_backward", lambda x, k, g: ops.conv2d_backward(x, k, g, (2, 2), "same"), (x, k, gyc)),
        ("max_pool2d", lambda x: ops.max_pool2d(x, 2, None, "same"), (x,)),
        ("max_pool2d_backward", lambda x, g: ops.max_pool2d_backward(x, g, 2, None, "same"), (x, gyp)),
        ("avg_pool2d", lambda x: ops.avg_pool2d(x, 2, None, "same"), (x,)),
        ("avg_pool2d_backward", lambda x, g: ops.avg_pool2d_backward(x, g, 2, None, "same"), (x, gyp)),
        ("dense", ops.dense, (xd, kd, f32(3, seed=11))),
        ("dense_backward", ops.dense_backward, (xd, kd, gyd)),
        ("relu", ops.relu, (x,)), ("relu_backward", ops.relu_backward, (x, x)),
        ("sigmoid", ops.sigmoid, (x,)), ("sigmoid_backward", ops.sigmoid_backward, (x, x)),
        ("softmax", ops.softmax, (x,)), ("softmax_backward", ops.softmax_backward, (x, x)),
        ("softmax_cross_entropy", ops.softmax_cross_entropy, (xd, ref.one_hot(np.arange(5) % 7, 7).astype(np.float32))),
        ("sigmoid_cross_entropy", ops.sigmoid_cross_entropy, (p, y01)),
        ("categorical_cross_entropy", ops.categorical_cross_entropy,
         (p, ref.one_hot(np.arange(5) % 4, 4).astype(np.float32))),
        ("binary_cross_entropy", ops.binary_cross_entropy, (p / p.max(), y01)),
        ("mean_squared_error", ops.mean_squared_error, (p, y01)),
    ]


def _as_list(out):
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def test_public_ops_accept_non_contiguous_inputs(ops):
    for name, fn, args in _noncontig_calls(ops):
        expected = _as_list(fn(*args))
        for pos in range(len(args)):
            for vname, view in _views(args[pos]):
                if vname != "float64-strided":
                    assert not view.flags.c_contiguous, (name, vname)
                new_args = list(args)
                new_args[pos] = view
                got = _as_list(fn(*new_args))
                for e, g in zip(expected, got):
                    np.testing.assert_array_equal(g, e, err_msg=f"{name}: argument {pos} as a {vname} view")


def test_labels_as_non_contiguous_int_ids(ops):
    z = f32(5, 4)
    ids = np.array([0, 9, 1, 9, 2, 9, 3, 9, 0, 9])[::2]
    assert not ids.flags.c_contiguous
    for name in ("softmax_cross_entropy", "categorical_cross_entropy"):
        f = getattr(ops, name)
        a = f(np.abs(z) + 0.1, ids)
        b = f(np.abs(z) + 0.1, np.ascontiguousarray(ids))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def _raw_calls(raw):
    x, k, b = f32(2, 5, 5, 3), f32(3, 3, 3, 4), f32(4)
    gy = f32(2, 3, 3, 4)
    gyp = f32(2, 2, 2, 3)
    xd, kd, gyd = f32(4, 6), f32(6, 3), f32(4, 3)
    p = np.abs(f32(4, 3)) + 0.1
    ids = np.array([0, 1, 2, 1], np.int64)
    return [
        ("conv2d", lambda a: raw.conv2d(a[0], a[1], a[2], (1, 1), "valid"), [x, k, b]),
        ("conv2d_backward", lambda a: raw.conv2d_backward(a[0], a[1], a[2], (1, 1), "valid", True), [x, k, gy]),
        ("max_pool2d", lambda a: raw.pool2d(a[0], "max", (2, 2), (2, 2), "valid"), [x]),
        ("avg_pool2d", lambda a: raw.pool2d(a[0], "avg", (2, 2), (2, 2), "valid"), [x]),
        ("max_pool2d_backward", lambda a: raw.pool2d_backward(a[0], a[1], "max", (2, 2), (2, 2), "valid"), [x, gyp]),
        ("avg_pool2d_backward", lambda a: raw.pool2d_backward(a[0], a[1], "avg", (2, 2), (2, 2), "valid"), [x, gyp]),
        ("dense", lambda a: raw.dense(a[0], a[1], a[2]), [xd, kd, f32(3)]),
        ("dense_backward", lambda a: raw.dense_backward(a[0], a[1], a[2]), [xd, kd, gyd]),
        ("relu", lambda a: raw.activation(a[0], "relu"), [x]),
        ("softmax_backward", lambda a: raw.activation_backward(a[0], a[1], "softmax"), [x, x]),
        ("softmax_cross_entropy", lambda a: raw.loss(a[0], a[1], "softmax_cross_entropy"),
         [p, ref.one_hot(ids, 3).astype(np.float32)]),
        ("categorical_cross_entropy", lambda a: raw.loss(a[0], a[1], "categorical_cross_entropy"), [p, ids]),
        ("mean_squared_error", lambda a: raw.loss(a[0], a[1], "mean_squared_error"), [p, p.copy()]),
        ("sgd_update", lambda a: raw.sgd_update(a[0], a[1], a[2], 0.1, 0.9, False), [f32(4, 3), f32(4, 3), f32(4, 3)]),
        ("rmsprop_update", lambda a: raw.rmsprop_update(a[0], a[1], a[2], 0.1, 0.9, 1e-7),
         [f32(4, 3), f32(4, 3), np.ones((4, 3), np.float32)]),
        ("adam_update", lambda a: raw.adam_update(a[0], a[1], a[2], a[3], 0.1, 0.9, 0.999, 1e-7, 1),
         [f32(4, 3), f32(4, 3), f32(4, 3), np.ones((4, 3), np.float32)]),
    ]


def test_raw_functions_refuse_non_contiguous_and_wrong_dtype(raw):
    for name, fn, args in _raw_calls(raw):
        fn([a.copy() for a in args])  # the contiguous call works
        for pos, a in enumerate(args):
            if a.ndim == 1 and a.dtype == np.int64:
                big = np.zeros(2 * a.size, a.dtype)
                big[::2] = a
                view = big[::2]
            else:
                big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
                big[..., ::2] = a
                view = big[..., ::2]
            new = [b.copy() for b in args]
            new[pos] = view
            expect((ValueError, TypeError), fn, new, op=name)
            if a.dtype == np.float32:
                new = [b.copy() for b in args]
                new[pos] = a.astype(np.float64)
                expect(TypeError, fn, new, op=name, words=["float64"])


def test_raw_functions_bad_kind_strings(raw):
    x = f32(1, 4, 4, 1)
    with pytest.raises(ValueError, match="min"):
        raw.pool2d(x, "min", (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="min"):
        raw.pool2d_backward(x, f32(1, 2, 2, 1), "min", (2, 2), (2, 2), "valid")
    with pytest.raises(ValueError, match="tanh"):
        raw.activation(x, "tanh")
    with pytest.raises(ValueError, match="tanh"):
        raw.activation_backward(x, x, "tanh")
    with pytest.raises(ValueError, match="hinge"):
        raw.loss(f32(2, 2), f32(2, 2), "hinge")


# --- NaN --------------------------------------------------------------------------------------------------

def test_nan_propagates_through_conv(ops):
    x, k, b = f32(2, 7, 6, 3, seed=1), f32(3, 3, 3, 4, seed=2), f32(4, seed=3)
    x[1, 3, 2, 1] = np.nan
    for strides, padding in (((1, 1), "same"), ((2, 2), "same"), ((1, 2), "valid")):
        y = ops.conv2d(x, k, b, strides, padding)
        r = ref.conv2d(ref.r32(x), ref.r32(k), ref.r32(b), strides, padding)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(r),
                                      err_msg=f"conv2d NaN pattern, strides {strides}, {padding}")
        assert np.isnan(y).any()
        ok = ~np.isnan(r)
        ref.assert_close(y[ok], r[ok], f"conv2d outputs untouched by the NaN, strides {strides}, {padding}")
        gx, gk, gb = ops.conv2d_backward(x, k, np.ones_like(y), strides, padding)
        assert np.isnan(gk).any() and not np.isnan(gx).any() and not np.isnan(gb).any()


def test_nan_passes_through_elementwise_ops(ops):
    x = np.array([[np.nan, 1.0, -1.0, 0.5]], np.float32)
    r = ops.relu(x)
    assert (np.isnan(r[0, 0]) or r[0, 0] == 0) and r[0, 1] == 1 and r[0, 2] == 0
    assert np.isnan(ops.sigmoid(x)[0, 0]) and not np.isnan(ops.sigmoid(x)[0, 1:]).any()
    assert np.isnan(ops.softmax(x)).all()  # one NaN poisons its row's normaliser
    ops.relu_backward(x, np.ones_like(x))
    ops.sigmoid_backward(x, np.ones_like(x))
    ops.softmax_backward(x, np.ones_like(x))
    y = ops.dense(x, f32(4, 3))
    assert np.isnan(y).all()
    m = ops.max_pool2d(np.array([1.0, np.nan, 2.0, 3.0], np.float32).reshape(1, 2, 2, 1), 2)
    assert m.shape == (1, 1, 1, 1)
    ops.max_pool2d_backward(np.array([1.0, np.nan, 2.0, 3.0], np.float32).reshape(1, 2, 2, 1), np.ones((1, 1, 1, 1)), 2)
    a = ops.avg_pool2d(np.array([1.0, np.nan, 2.0, 3.0], np.float32).reshape(1, 2, 2, 1), 2)
    assert np.isnan(a).all()


def test_nan_in_losses_and_updates(ops):
    z = np.array([[np.nan, 1.0], [0.0, 1.0]], np.float32)
    for name, labels in (("softmax_cross_entropy", np.array([0, 1])), ("sigmoid_cross_entropy", np.ones((2, 2))),
                         ("mean_squared_error", np.ones((2, 2))), ("binary_cross_entropy", np.ones((2, 2))),
                         ("categorical_cross_entropy", np.array([0, 1]))):
        loss, grad = getattr(ops, name)(z, labels)
        assert grad.shape == z.shape
        if name != "binary_cross_entropy":  # a clip may legitimately swallow a NaN probability
            assert np.isnan(loss), f"{name}: NaN in the input but loss {loss}"
    p = np.zeros(3, np.float32)
    ops.sgd_update(p, np.array([np.nan, 1, 1], np.float32), None, 0.1)
    assert np.isnan(p[0]) and np.all(p[1:] == np.float32(-0.1))


# --- empty batches ----------------------------------------------------------------------------------------

def _empty_ok(name, fn, *args, expected_shapes):
    """Either a clear ValueError naming the op, or results of the expected (empty) shapes."""
    try:
        out = fn(*args)
    except ValueError as e:
        assert name in str(e), f"{name}: unclear error for an empty batch: {e}"
        return
    got = [np.shape(o) for o in (out if isinstance(out, tuple) else (out,))]
    assert got == [tuple(s) for s in expected_shapes], f"{name}: empty batch gave shapes {got}"
    for o in (out if isinstance(out, tuple) else (out,)):
        if isinstance(o, np.ndarray) and o.size:
            assert np.all(o == 0), f"{name}: gradients over an empty batch must be zero"


def test_empty_batch(ops):
    x0, k = np.zeros((0, 5, 5, 3), np.float32), f32(3, 3, 3, 4)
    _empty_ok("conv2d", ops.conv2d, x0, k, f32(4), 1, "same", expected_shapes=[(0, 5, 5, 4)])
    _empty_ok("conv2d", ops.conv2d, x0, k, None, 2, "valid", expected_shapes=[(0, 2, 2, 4)])
    _empty_ok("conv2d_backward", ops.conv2d_backward, x0, k, np.zeros((0, 5, 5, 4), np.float32), 1, "same",
              expected_shapes=[(0, 5, 5, 3), (3, 3, 3, 4), (4,)])
    for name in ("max_pool2d", "avg_pool2d"):
        _empty_ok(name, getattr(ops, name), x0, 2, None, "same", expected_shapes=[(0, 3, 3, 3)])
        _empty_ok(name + "_backward", getattr(ops, name + "_backward"), x0, np.zeros((0, 3, 3, 3), np.float32), 2,
                  None, "same", expected_shapes=[(0, 5, 5, 3)])
    xd = np.zeros((0, 6), np.float32)
    _empty_ok("dense", ops.dense, xd, f32(6, 2), f32(2), expected_shapes=[(0, 2)])
    _empty_ok("dense_backward", ops.dense_backward, xd, f32(6, 2), np.zeros((0, 2), np.float32),
              expected_shapes=[(0, 6), (6, 2), (2,)])
    for name in ("relu", "sigmoid", "softmax"):
        _empty_ok(name, getattr(ops, name), np.zeros((0, 4), np.float32), expected_shapes=[(0, 4)])
        _empty_ok(name + "_backward", getattr(ops, name + "_backward"), np.zeros((0, 4), np.float32),
                  np.zeros((0, 4), np.float32), expected_shapes=[(0, 4)])
    for name, labels in (("softmax_cross_entropy", np.zeros(0, np.int64)),
                         ("categorical_cross_entropy", np.zeros((0, 4))),
                         ("sigmoid_cross_entropy", np.zeros((0, 4))), ("binary_cross_entropy", np.zeros((0, 4))),
                         ("mean_squared_error", np.zeros((0, 4)))):
        try:
            loss, grad = getattr(ops, name)(np.zeros((0, 4), np.float32), labels)
        except ValueError as e:
            assert name in str(e), f"{name}: unclear error for an empty batch: {e}"
        else:
            assert grad.shape == (0, 4), f"{name}: empty batch gave grad shape {grad.shape}"
    p = np.zeros((0, 3), np.float32)
    ops.sgd_update(p, np.zeros((0, 3), np.float32), None, 0.1)
    ops.rmsprop_update(p, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), 0.1)
    ops.adam_update(p, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), 0.1)


def test_zero_sized_spatial_dims(ops):
    for shape in ((1, 0, 5, 2), (1, 5, 0, 2)):
        x = np.zeros(shape, np.float32)
        for fn, args in ((ops.conv2d, (x, f32(1, 1, 2, 3), None, 1, "same")), (ops.max_pool2d, (x, 2, None, "same")),
                         (ops.avg_pool2d, (x, 2, None, "same")), (ops.conv2d, (x, f32(3, 3, 2, 3), None, 1, "valid"))):
            try:
                y = fn(*args)
            except ValueError:
                pass
            else:
                assert y.size == 0


def test_errors_leave_arrays_usable(ops):
    # a rejected call must release its borrows: the same arrays work right after
    p, m = f32(4), np.zeros(4, np.float32)
    with pytest.raises(ValueError):
        ops.sgd_update(p, f32(5), m, 0.1, 0.9)
    ops.sgd_update(p, f32(4), m, 0.1, 0.9)
    x = f32(1, 4, 4, 2)
    with pytest.raises(ValueError):
        ops.conv2d(x, f32(3, 3, 3, 1))
    ops.conv2d(x, f32(3, 3, 2, 1))


def test_max_pool_backward_rejects_saved_output_of_wrong_shape():
    from rconv import ops
    x = np.zeros((1, 4, 4, 2), np.float32)
    gy = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"max_pool2d_backward.*`y`.*\[1, 3, 3, 2\]"):
        ops.max_pool2d_backward(x, gy, 2, y=np.zeros((1, 3, 3, 2), np.float32))

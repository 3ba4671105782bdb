"""The resize kernels (`ops.resize`, `ops.resize_backward`; src/ops/resample.rs).

* forward against a float64 reference written independently (one dense interpolation matrix per axis,
  from TensorFlow's half-pixel formulas in exact arithmetic), over odd shapes, batch 1, one channel,
  integer factors 1..3 and non-integer ratios up and down, and an exhaustive 1-D sweep of sizes;
* backward against the transposed reference, which is checked once against finite differences of the
  reference forward, plus the adjoint identity <resize(x), g> = <x, resize_backward(g)>;
* TF's float32 nearest-index arithmetic, where it differs from exact arithmetic, against real TF outputs
  (`tests/keras_fixtures/resample_expected.npz`; the layer-level TF cases are in
  tests/test_resample_layers.py); bitwise equal results for any thread count, empty batches, and the
  errors for bad arguments.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import reference as ref
from rconv import ops
from threads import arrays_per_thread_count

METHODS = ("nearest", "bilinear")
FIXTURE = Path(__file__).parent / "keras_fixtures" / "resample_expected.npz"
NEAREST_QUIRKS = [(6, 37), (12, 37), (14, 23), (24, 37), (26, 11), (28, 23), (30, 29)]
# (image shape, output size): integer factors 1..3, non-integer ratios up and down, odd sizes, 1x1.
CASES = [
    ((1, 1, 1, 1), (1, 1)), ((1, 1, 1, 2), (3, 2)), ((2, 5, 7, 3), (10, 21)), ((1, 4, 4, 1), (4, 4)),
    ((1, 4, 4, 1), (12, 8)), ((3, 6, 5, 2), (4, 3)), ((1, 7, 3, 1), (2, 10)), ((2, 11, 12, 2), (22, 36)),
    ((2, 9, 1, 4), (5, 3)), ((1, 13, 17, 3), (6, 5)), ((1, 5, 7, 1), (7, 5)), ((1, 3, 2, 1), (1, 1)),
]


def nearest_index(o: int, n_in: int, n_out: int, exact: bool = False) -> int:
    """floor((o + 1/2) * n_in / n_out), clamped: TF computes it in float32 (`exact=False`), which for a few
    sizes picks a neighbour of the exact index (NEAREST_QUIRKS; TF's own outputs are in the fixture)."""
    if exact:
        return min((2 * o + 1) * n_in // (2 * n_out), n_in - 1)
    scale = np.float32(n_in) / np.float32(n_out)
    return min(int(np.floor((np.float32(o) + np.float32(0.5)) * scale)), n_in - 1)


def axis_matrix(n_in: int, n_out: int, method: str, exact: bool = False) -> np.ndarray:
    """(n_out, n_in): TF's resize along one axis (half-pixel centres), in float64 (bilinear) arithmetic."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if method == "nearest":
            m[o, nearest_index(o, n_in, n_out, exact)] = 1.0
        else:
            s = (o + 0.5) * n_in / n_out - 0.5
            f = math.floor(s)
            m[o, min(max(f, 0), n_in - 1)] += 1.0 - (s - f)
            m[o, min(max(f + 1, 0), n_in - 1)] += s - f
    return m


def resize_ref(x, size, method):
    mh, mw = axis_matrix(x.shape[1], size[0], method), axis_matrix(x.shape[2], size[1], method)
    return np.einsum("oh,nhwc,pw->nopc", mh, np.asarray(x, np.float64), mw)


def resize_backward_ref(g, image, method):
    mh, mw = axis_matrix(image[0], g.shape[1], method), axis_matrix(image[1], g.shape[2], method)
    return np.einsum("oh,nopc,pw->nhwc", mh, np.asarray(g, np.float64), mw)


def _data(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape,size", CASES)
def test_resize_forward_matches_float64(shape, size, method):
    x = _data(shape)
    y = ops.resize(x, size, method)
    assert y.dtype == np.float32 and y.shape == (shape[0], *size, shape[3])
    ref.assert_close(y, resize_ref(ref.r32(x), size, method), f"resize {shape} -> {size} {method}",
                     rtol=1e-6, atol_scale=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape,size", CASES)
def test_resize_backward_matches_float64_and_is_the_adjoint(shape, size, method):
    x = _data(shape)
    g = _data((shape[0], *size, shape[3]), seed=1)
    gx = ops.resize_backward(g, shape[1:3], method)
    assert gx.dtype == np.float32 and gx.shape == shape
    ref.assert_close(gx, resize_backward_ref(ref.r32(g), shape[1:3], method), f"resize_backward {shape} <- {size}",
                     rtol=1e-5, atol_scale=1e-5)
    lhs = float((ops.resize(x, size, method).astype(np.float64) * g).sum())
    rhs = float((x.astype(np.float64) * gx).sum())
    assert abs(lhs - rhs) <= 1e-5 * (1 + abs(lhs)), f"<Mx, g> = {lhs} but <x, M^T g> = {rhs}"


@pytest.mark.parametrize("method", METHODS)
def test_backward_reference_matches_finite_differences(method):
    shape, size = (1, 3, 4, 2), (5, 3)
    x, g = ref.f64(_data(shape)), ref.f64(_data((1, *size, 2), seed=1))
    numeric = ref.numeric_grad(lambda v: float((resize_ref(v, size, method) * g).sum()), x)
    ref.assert_close(resize_backward_ref(g, shape[1:3], method), numeric, "backward reference vs differences",
                     rtol=1e-7, atol_scale=1e-7)


@pytest.mark.parametrize("method", METHODS)
def test_every_axis_size_up_to_40(method):
    """All (n_in, n_out) pairs in 1..40 along one axis against the reference."""
    for n_in in range(1, 41):
        x = _data((1, n_in, 1, 1), seed=n_in)
        for n_out in range(1, 41):
            y = ops.resize(x, (n_out, 1), method)
            want = axis_matrix(n_in, n_out, method) @ ref.r32(x)[0, :, 0, 0]
            err = float(np.abs(y[0, :, 0, 0] - want).max())
            # bilinear: TF (and rconv) compute the source coordinate in float32, so the weights carry an error
            # of about one ulp of the coordinate (up to 40: ~4e-6); nearest must be exact
            assert err <= (8e-6 if method == "bilinear" else 0.0), f"{method} {n_in} -> {n_out}: max error {err}"


def test_nearest_float32_index_quirks_match_tensorflow():
    """Where TF's float32 nearest index is not the exact one, rconv picks TF's (real TF outputs in the fixture)."""
    quirks = [(n_in, n_out) for n_in in range(1, 41) for n_out in range(1, 41)
              if any(nearest_index(o, n_in, n_out) != nearest_index(o, n_in, n_out, exact=True) for o in range(n_out))]
    assert quirks == NEAREST_QUIRKS
    with np.load(FIXTURE) as tf_out:
        for n_in, n_out in quirks:
            axis = (np.arange(n_in, dtype=np.float32) + 0.25).reshape(1, n_in, 1, 1)
            want = tf_out[f"axis_nearest:{n_in}x{n_out}"]
            np.testing.assert_array_equal(ops.resize(axis, (n_out, 1), "nearest"), want, err_msg=f"{n_in} -> {n_out}")


def test_nearest_integer_upsampling_is_exact_repetition():
    x = _data((2, 5, 3, 2))
    for fh in (1, 2, 3):
        for fw in (1, 2, 3):
            y = ops.resize(x, (5 * fh, 3 * fw), "nearest")
            np.testing.assert_array_equal(y, np.repeat(np.repeat(x, fh, axis=1), fw, axis=2))
            g = _data(y.shape, seed=2)
            want = g.reshape(2, 5, fh, 3, fw, 2).sum(axis=(2, 4))
            ref.assert_close(ops.resize_backward(g, (5, 3), "nearest"), want, "nearest up-sampling backward",
                             rtol=1e-6, atol_scale=1e-6)


def test_empty_batch_and_channels():
    assert ops.resize(np.zeros((0, 3, 4, 2), np.float32), (5, 5)).shape == (0, 5, 5, 2)
    assert ops.resize(np.zeros((2, 3, 4, 0), np.float32), (5, 5)).shape == (2, 5, 5, 0)
    assert ops.resize_backward(np.zeros((0, 5, 5, 2), np.float32), (3, 4)).shape == (0, 3, 4, 2)


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    script = """
import sys
import numpy as np
from rconv import ops
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (3, 37, 29, 5)).astype(np.float32)
out = []
for method in ("nearest", "bilinear"):
    for size in ((74, 87), (11, 13)):
        y = ops.resize(x, size, method)
        out += [y, ops.resize_backward(rng.standard_normal(y.shape).astype(np.float32), (37, 29), method)]
np.savez(sys.argv[1], *out)
"""
    one, many = arrays_per_thread_count(script, tmp_path)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call,error,words", [
    (lambda: ops.resize(np.zeros((3, 4, 2), np.float32), (2, 2)), ValueError, ["resize", "rank 4", "[3, 4, 2]"]),
    (lambda: ops.resize(np.zeros((1, 0, 4, 2), np.float32), (2, 2)), ValueError, ["resize", "[1, 0, 4, 2]"]),
    (lambda: ops.resize(np.zeros((1, 3, 4, 2), np.float32), (0, 2)), ValueError, ["resize", "size"]),
    (lambda: ops.resize(np.zeros((1, 3, 4, 2), np.float32), (2, 2), "bicubic"), ValueError, ["interpolation"]),
    (lambda: ops.resize(np.zeros((1, 3, 4, 2), np.int32), (2, 2)), TypeError, ["images", "int32"]),
    (lambda: ops.resize_backward(np.zeros((1, 3, 4), np.float32), (2, 2)), ValueError, ["resize_backward", "rank 4"]),
    (lambda: ops.resize_backward(np.zeros((1, 3, 4, 1), np.float32), (2, -1)), ValueError, ["image_shape"]),
])
def test_bad_arguments(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

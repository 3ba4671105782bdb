"""Winograd convolution (off by default; `rconv.config.set_winograd_enabled`) through the Python ops and a layer:
forward, both backward passes and the fused conv + ReLU + max-pool kernel, each tile size forced, against the
float64 direct reference over odd sizes, same padding with asymmetric pads, batch 1, channel 1 and channel counts
that are not multiples of the vector width. Tolerances reflect the transforms' rounding (F(4x4) constants up to
8). The Rust unit tests (src/ops/conv/winograd_tests.rs) check the transforms themselves."""
import os

import numpy as np
import pytest

import rconv
import reference as ref
from rconv import _rconv, ops

# (n, h, w, cin, cout, padding)
SHAPES = [(1, 5, 5, 1, 1, "valid"), (2, 7, 6, 3, 5, "same"), (1, 9, 8, 17, 33, "same"), (3, 10, 11, 16, 32, "valid"),
          (2, 4, 4, 8, 16, "same"), (1, 3, 3, 2, 3, "valid"), (2, 13, 13, 32, 64, "valid")]
IDS = [f"{n}x{h}x{w}x{ci}-{co}-{p}" for n, h, w, ci, co, p in SHAPES]
TOL = {2: 2e-5, 4: 2e-4}


@pytest.fixture(params=[2, 4], ids=["F2", "F4"])
def tile(request):
    was = rconv.config.is_winograd_enabled()
    rconv.config.set_winograd_enabled(True, tile=request.param)
    yield request.param
    rconv.config.set_winograd_enabled(was)


def _inputs(n, h, w, ci, co, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, ci)).astype(np.float32)
    k = rng.standard_normal((3, 3, ci, co)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    return x, k, b


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_backward_match_float64(tile, shape):
    n, h, w, ci, co, pad = shape
    x, k, b = _inputs(n, h, w, ci, co, 1)
    assert _rconv.winograd_tile(list(x.shape), list(k.shape), (1, 1), pad) == tile
    y = ops.conv2d(x, k, b, padding=pad)
    ry = ref.conv2d(x, k, b, (1, 1), pad)
    ref.assert_close(y, ry, f"forward F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    gy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    gx, gk, gb = ops.conv2d_backward(x, k, gy, padding=pad)
    rgx, rgk, rgb = ref.conv2d_backward(x, k, gy, (1, 1), pad)
    ref.assert_close(gx, rgx, f"grad_x F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    ref.assert_close(gk, rgk, f"grad_kernel F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    ref.assert_close(gb, rgb, f"grad_bias F{tile}")


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_relu_and_fused_pool_match_float64(tile, shape):
    n, h, w, ci, co, pad = shape
    x, k, b = _inputs(n, h, w, ci, co, 3)
    z = ref.relu(ref.conv2d(x, k, b, (1, 1), pad))
    ref.assert_close(ops.conv2d(x, k, b, padding=pad, activation="relu"), z, f"relu F{tile}", rtol=TOL[tile],
                     atol_scale=TOL[tile])
    if min(z.shape[1:3]) < 2:
        return
    y, winners = ops.conv2d_relu_max_pool(x, k, b, padding=pad, pool_size=(2, 2), winners=True)
    ref.assert_close(y, ref.max_pool2d(z, (2, 2)), f"fused forward F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    gy = np.random.default_rng(4).standard_normal(y.shape).astype(np.float32)
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, winners, padding=pad, pool_size=(2, 2))
    # The reference routes the pooled gradient through the winners rconv chose (ties cannot be compared across
    # roundings): each winner is the offset of a window's maximum in the image's convolution output.
    at = winners.reshape(n, -1).astype(np.int64)
    live = at != 0xFFFFFFFF
    np.testing.assert_array_equal(live, y.reshape(n, -1) > 0)
    z32 = ops.conv2d(x, k, b, padding=pad, activation="relu").reshape(n, -1)
    np.testing.assert_array_equal(np.take_along_axis(z32, np.where(live, at, 0), 1)[live], y.reshape(n, -1)[live])
    gz = np.zeros((n, z32.shape[1]))
    for i in range(n):
        np.add.at(gz[i], at[i][live[i]], gy.reshape(n, -1)[i][live[i]].astype(np.float64))
    gz = gz.reshape(z.shape)
    rgx, rgk, rgb = ref.conv2d_backward(x, k, gz, (1, 1), pad)
    ref.assert_close(gx, rgx, f"fused grad_x F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    ref.assert_close(gk, rgk, f"fused grad_kernel F{tile}", rtol=TOL[tile], atol_scale=TOL[tile])
    ref.assert_close(gb, rgb, f"fused grad_bias F{tile}")


def test_default_is_per_shape_and_the_cost_model_picks_the_measured_winners():
    if not os.environ.get("RCONV_WINOGRAD"):
        assert rconv.config.is_winograd_enabled(), "Winograd is on (per shape) unless RCONV_WINOGRAD=0"
    was = rconv.config.is_winograd_enabled()
    try:
        rconv.config.set_winograd_enabled(False)
        assert _rconv.winograd_tile([32, 43, 43, 64], [3, 3, 64, 128], (1, 1), "valid") == 0
        rconv.config.set_winograd_enabled(True)
        # The calibrated choices (src/ops/conv/winograd.rs), each the fastest measured: the seed models' layers
        # and the MNIST convnet's 13x13x32->64 at training batch sizes...
        assert _rconv.winograd_tile([32, 43, 43, 64], [3, 3, 64, 128], (1, 1), "valid") == 4
        assert _rconv.winograd_tile([32, 23, 23, 64], [3, 3, 64, 128], (1, 1), "valid") == 4
        assert _rconv.winograd_tile([32, 49, 49, 32], [3, 3, 32, 64], (1, 1), "valid") == 4
        assert _rconv.winograd_tile([32, 20, 20, 128], [3, 3, 128, 256], (1, 1), "valid") == 2
        assert _rconv.winograd_tile([64, 13, 13, 32], [3, 3, 32, 64], (1, 1), "valid") == 4
        # ...never a few tiles per image against a large kernel (5x5x64, 9x9x256)...
        assert _rconv.winograd_tile([64, 5, 5, 64], [3, 3, 64, 64], (1, 1), "valid") == 0
        assert _rconv.winograd_tile([32, 9, 9, 256], [3, 3, 256, 256], (1, 1), "valid") == 0
        # ...nor at batch 1 for small images, where the kernel transform and the call's fixed cost dominate.
        assert _rconv.winograd_tile([1, 13, 13, 32], [3, 3, 32, 64], (1, 1), "valid") == 0
        assert _rconv.winograd_tile([1, 23, 23, 64], [3, 3, 64, 128], (1, 1), "valid") == 0
        assert _rconv.winograd_tile([1, 20, 20, 128], [3, 3, 128, 256], (1, 1), "valid") == 0
        # (from 43x43 and 49x49 up, F(4x4) is faster even at batch 1: the fused layer splits each image)
        assert _rconv.winograd_tile([1, 49, 49, 32], [3, 3, 32, 64], (1, 1), "valid") == 4
        assert _rconv.winograd_tile([1, 5, 5, 64], [3, 3, 64, 64], (1, 1), "valid") == 0
        assert _rconv.winograd_tile([64, 13, 13, 32], [3, 3, 32, 64], (2, 2), "valid") == 0  # stride 2: never
    finally:
        rconv.config.set_winograd_enabled(was)

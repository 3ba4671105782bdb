"""conv2d / conv2d_backward against the float64 references in tests/reference.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

import reference as ref
from threads import arrays_per_thread_count
from reference import r32 as R

PORTABLE = os.environ.get("RCONV_KERNELS", "").lower() == "portable"

SEED = 20240601
N_RANDOM = 230


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


# --- cases --------------------------------------------------------------------------------------------

# (n, h, w, cin, kh, kw, cout, sh, sw, padding): hand-picked edge cases first.
EDGE = [
    (1, 5, 5, 3, 3, 3, 4, 1, 1, "valid"),     # batch 1
    (1, 6, 6, 1, 3, 3, 1, 1, 1, "same"),      # batch 1, channels 1 in and out
    (2, 7, 7, 1, 3, 3, 2, 1, 1, "valid"),     # cin 1
    (3, 7, 9, 3, 3, 3, 1, 1, 1, "same"),      # odd sizes, cout 1
    (2, 9, 9, 2, 2, 2, 3, 3, 3, "valid"),     # stride > kernel
    (1, 10, 11, 2, 1, 1, 3, 4, 3, "same"),    # stride > kernel (1x1), same
    (2, 8, 8, 2, 2, 2, 2, 3, 3, "same"),      # stride > kernel, same
    (2, 11, 7, 2, 2, 1, 2, 4, 3, "valid"),    # stride > rectangular kernel
    (2, 5, 5, 3, 5, 5, 4, 1, 1, "valid"),     # kernel == input
    (2, 4, 6, 2, 4, 6, 3, 2, 2, "valid"),     # kernel == input, rectangular, stride
    (1, 5, 5, 2, 5, 5, 2, 1, 1, "same"),      # kernel == input, same
    (1, 3, 3, 2, 5, 5, 2, 1, 1, "same"),      # kernel > input, same
    (1, 2, 3, 2, 4, 6, 2, 2, 1, "same"),      # kernel > input, same, strided
    (2, 6, 6, 2, 3, 3, 2, 1, 1, "same"),      # same, even total pad (2: 1 / 1)
    (2, 6, 6, 2, 2, 2, 2, 1, 1, "same"),      # same, odd total pad (1: 0 / 1)
    (2, 7, 7, 2, 4, 4, 2, 2, 2, "same"),      # same, odd total pad (3: 1 / 2)
    (2, 8, 8, 2, 4, 4, 2, 2, 2, "same"),      # same, even total pad (2: 1 / 1)
    (2, 6, 7, 2, 5, 2, 2, 3, 2, "same"),      # same, mixed per-axis pads
    (2, 5, 5, 2, 1, 1, 3, 2, 2, "same"),      # same, zero pad
    (2, 7, 8, 3, 3, 1, 4, 1, 1, "valid"),     # rectangular kernel
    (2, 7, 8, 3, 1, 4, 4, 1, 1, "same"),      # rectangular kernel
    (2, 9, 6, 2, 2, 5, 3, 1, 1, "same"),      # rectangular kernel, odd/even pads
    (2, 9, 10, 2, 3, 3, 2, 2, 1, "valid"),    # rectangular strides
    (2, 9, 10, 2, 3, 3, 2, 1, 3, "same"),     # rectangular strides
    (2, 5, 5, 8, 1, 1, 16, 1, 1, "valid"),    # 1x1
    (2, 6, 6, 4, 1, 1, 5, 2, 2, "same"),      # 1x1 strided
    (1, 1, 1, 3, 1, 1, 2, 1, 1, "valid"),     # 1x1 image
    (1, 1, 1, 3, 3, 3, 2, 2, 2, "same"),      # 1x1 image, same, 3x3 kernel
    (2, 6, 6, 17, 3, 3, 33, 1, 1, "same"),    # large channels
    (1, 5, 5, 33, 3, 3, 17, 2, 2, "valid"),   # large channels
    (1, 4, 4, 64, 3, 3, 64, 1, 1, "same"),    # larger channels
    (4, 12, 12, 3, 5, 5, 8, 1, 1, "same"),    # bigger spatial
    (1, 1, 9, 2, 1, 3, 2, 1, 2, "valid"),     # single row
    (1, 9, 1, 2, 3, 1, 2, 2, 1, "same"),      # single column
]


def _make_cases():
    rng = np.random.default_rng(SEED)
    cases = []
    for (n, h, w, cin, kh, kw, cout, sh, sw, pad) in EDGE:
        cases.append(dict(n=n, h=h, w=w, cin=cin, kh=kh, kw=kw, cout=cout, sh=sh, sw=sw, pad=pad,
                          bias=True, f64=False, sform="tuple"))
    while len(cases) < len(EDGE) + N_RANDOM:
        pad = str(rng.choice(["valid", "same"]))
        h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        if pad == "valid" and (kh > h or kw > w):
            continue
        sh, sw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        if rng.random() < 0.4:
            sw = sh
        cases.append(dict(
            n=int(rng.choice([1, 1, 2, 3, 4])), h=h, w=w,
            cin=int(rng.choice([1, 2, 3, 4, 5, 8, 17])), kh=kh, kw=kw,
            cout=int(rng.choice([1, 2, 3, 4, 7, 16, 33])), sh=sh, sw=sw, pad=pad,
            bias=bool(rng.random() < 0.7), f64=bool(rng.random() < 0.2),
            sform=str(rng.choice(["tuple", "list", "int"]))))
    return cases


CASES = _make_cases()


def _cid(i, c):
    return (f"{i:03d}-n{c['n']}-{c['h']}x{c['w']}x{c['cin']}-k{c['kh']}x{c['kw']}x{c['cout']}"
            f"-s{c['sh']}x{c['sw']}-{c['pad']}{'-b' if c['bias'] else ''}{'-f64' if c['f64'] else ''}")


IDS = [_cid(i, c) for i, c in enumerate(CASES)]


def _strides(c):
    if c["sform"] == "int" and c["sh"] == c["sw"]:
        return c["sh"]
    if c["sform"] == "list":
        return [c["sh"], c["sw"]]
    return (c["sh"], c["sw"])


def _inputs(i, c):
    rng = np.random.default_rng(SEED + 1000 + i)
    dt = np.float64 if c["f64"] else np.float32
    x = rng.standard_normal((c["n"], c["h"], c["w"], c["cin"])).astype(dt)
    k = rng.standard_normal((c["kh"], c["kw"], c["cin"], c["cout"])).astype(dt)
    b = rng.standard_normal(c["cout"]).astype(dt) if c["bias"] else None
    oh = ref.out_and_pad(c["h"], c["kh"], c["sh"], c["pad"])[0]
    ow = ref.out_and_pad(c["w"], c["kw"], c["sw"], c["pad"])[0]
    gy = rng.standard_normal((c["n"], oh, ow, c["cout"])).astype(dt)
    return x, k, b, gy


# --- coverage of the required situations -------------------------------------------------------------

def test_case_coverage():
    def total_pad(n, k, s):
        _, a, b = ref.out_and_pad(n, k, s, "same")
        return a + b
    assert len(CASES) >= 200
    checks = {
        "batch 1": any(c["n"] == 1 for c in CASES),
        "cin 1": any(c["cin"] == 1 for c in CASES),
        "cout 1": any(c["cout"] == 1 for c in CASES),
        "odd sizes": any(c["h"] % 2 and c["w"] % 2 for c in CASES),
        "stride > kernel": any(c["sh"] > c["kh"] and c["sw"] > c["kw"] for c in CASES),
        "kernel == input (valid)": any(c["pad"] == "valid" and (c["kh"], c["kw"]) == (c["h"], c["w"]) for c in CASES),
        "same, odd total pad": any(c["pad"] == "same" and total_pad(c["h"], c["kh"], c["sh"]) % 2 == 1 for c in CASES),
        "same, even nonzero total pad": any(c["pad"] == "same" and total_pad(c["h"], c["kh"], c["sh"]) % 2 == 0
                                            and total_pad(c["h"], c["kh"], c["sh"]) > 0 for c in CASES),
        "rectangular kernel": any(c["kh"] != c["kw"] for c in CASES),
        "rectangular strides": any(c["sh"] != c["sw"] for c in CASES),
        "1x1 kernel": any(c["kh"] == c["kw"] == 1 for c in CASES),
        "cin >= 17": any(c["cin"] >= 17 for c in CASES),
        "cout >= 33": any(c["cout"] >= 33 for c in CASES),
        "float64 input": any(c["f64"] for c in CASES),
        "int strides": any(c["sform"] == "int" and c["sh"] == c["sw"] for c in CASES),
        "no bias": any(not c["bias"] for c in CASES),
    }
    missing = [k for k, v in checks.items() if not v]
    assert not missing, f"case generator misses: {missing}"


# --- the references themselves, against finite differences ------------------------------------------

@pytest.mark.parametrize("shape", [
    # (n, h, w, cin, kh, kw, cout, sh, sw, pad)
    (2, 5, 4, 2, 3, 2, 3, 1, 1, "valid"),
    (1, 5, 6, 2, 2, 3, 2, 2, 2, "same"),   # odd total pads
    (2, 4, 4, 1, 3, 3, 2, 1, 1, "same"),   # even total pads
    (1, 7, 5, 2, 4, 2, 2, 3, 2, "same"),
    (1, 3, 3, 2, 5, 4, 1, 2, 1, "same"),   # kernel > input
    (1, 7, 7, 2, 2, 2, 2, 3, 3, "valid"),  # stride > kernel
])
def test_reference_conv_backward_matches_finite_differences(shape):
    n, h, w, cin, kh, kw, cout, sh, sw, pad = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, h, w, cin))
    k = rng.standard_normal((kh, kw, cin, cout))
    b = rng.standard_normal(cout)
    y = ref.conv2d(x, k, b, (sh, sw), pad)
    gy = rng.standard_normal(y.shape)
    gx, gk, gb = ref.conv2d_backward(x, k, gy, (sh, sw), pad)
    np.testing.assert_allclose(gx, ref.numeric_grad(lambda v: (ref.conv2d(v, k, b, (sh, sw), pad) * gy).sum(), x),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gk, ref.numeric_grad(lambda v: (ref.conv2d(x, v, b, (sh, sw), pad) * gy).sum(), k),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gb, ref.numeric_grad(lambda v: (ref.conv2d(x, k, v, (sh, sw), pad) * gy).sum(), b),
                               rtol=1e-6, atol=1e-7)


def test_reference_conv_same_padding_rule():
    # TF: out = ceil(n/s), total = max((out-1)*s + k - n, 0), extra pad at the bottom/right
    assert ref.out_and_pad(6, 2, 1, "same") == (6, 0, 1)
    assert ref.out_and_pad(7, 4, 2, "same") == (4, 1, 2)
    assert ref.out_and_pad(8, 4, 2, "same") == (4, 1, 1)
    assert ref.out_and_pad(5, 1, 2, "same") == (3, 0, 0)
    assert ref.out_and_pad(3, 5, 1, "same") == (3, 2, 2)
    assert ref.out_and_pad(10, 3, 4, "same") == (3, 0, 1)  # total = 8 + 3 - 10 = 1
    assert ref.out_and_pad(7, 3, 2, "valid") == (3, 0, 0)
    # a hand-checked 1-D example: x = [1,2,3,4], k = [1,10], same, stride 1 -> pad right by one
    x = np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1)
    k = np.array([1.0, 10]).reshape(1, 2, 1, 1)
    np.testing.assert_array_equal(ref.conv2d(x, k, None, 1, "same").ravel(), [21, 32, 43, 4])


# --- kernel vs reference ----------------------------------------------------------------------------

@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_conv2d_forward(ops, i):
    c = CASES[i]
    x, k, b, _ = _inputs(i, c)
    y = ops.conv2d(x, k, b, strides=_strides(c), padding=c["pad"])
    ref.assert_close(y, ref.conv2d(R(x), R(k), R(b), (c["sh"], c["sw"]), c["pad"]), f"conv2d {IDS[i]}")


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_conv2d_backward(ops, i):
    c = CASES[i]
    x, k, _, gy = _inputs(i, c)
    out = ops.conv2d_backward(x, k, gy, strides=_strides(c), padding=c["pad"])
    assert len(out) == 3, f"conv2d_backward must return (grad_x, grad_kernel, grad_bias), got {len(out)} items"
    gx, gk, gb = out
    rgx, rgk, rgb = ref.conv2d_backward(R(x), R(k), R(gy), (c["sh"], c["sw"]), c["pad"])
    ref.assert_close(gx, rgx, f"conv2d_backward grad_x {IDS[i]}")
    ref.assert_close(gk, rgk, f"conv2d_backward grad_kernel {IDS[i]}")
    ref.assert_close(gb, rgb, f"conv2d_backward grad_bias {IDS[i]}")


def test_conv2d_output_dtype_and_padding_case(ops):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 3))            # float64 in
    k = rng.standard_normal((3, 2, 3, 4))
    y = ops.conv2d(x, k, None, strides=2, padding="SAME")
    assert y.dtype == np.float32, y.dtype
    ref.assert_close(y, ref.conv2d(R(x), R(k), None, 2, "same"), "conv2d float64 input, padding='SAME'")
    gx, gk, gb = ops.conv2d_backward(x, k, np.ones(y.shape), strides=np.array([2, 2]), padding="Same")
    for name, a in (("grad_x", gx), ("grad_kernel", gk), ("grad_bias", gb)):
        assert a.dtype == np.float32, f"{name} dtype {a.dtype}"
    assert gx.shape == x.shape and gk.shape == k.shape and gb.shape == (4,)


def test_conv2d_bias_none_equals_zero_bias(ops):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.conv2d(x, k, None, 1, "same"),
                                  ops.conv2d(x, k, np.zeros(4, np.float32), 1, "same"))


def test_conv2d_is_deterministic(ops):
    # multithreaded kernels must still give bit-identical results run to run
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 16, 16, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    gy = rng.standard_normal((8, 16, 16, 16)).astype(np.float32)
    y0 = ops.conv2d(x, k, None, 1, "same")
    g0 = ops.conv2d_backward(x, k, gy, 1, "same")
    for _ in range(3):
        np.testing.assert_array_equal(ops.conv2d(x, k, None, 1, "same"), y0)
        for a, b in zip(ops.conv2d_backward(x, k, gy, 1, "same"), g0):
            np.testing.assert_array_equal(a, b)


def test_conv2d_larger_batch(ops):
    # big enough that a parallel kernel splits the work; still checked against the reference
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 10, 9, 5)).astype(np.float32)
    k = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y = ops.conv2d(x, k, b, (2, 1), "same")
    ref.assert_close(y, ref.conv2d(x, k, b, (2, 1), "same"), "conv2d n=16 10x9x5 k3x4x6 s2x1 same")
    gy = rng.standard_normal(y.shape).astype(np.float32)
    for name, a, r in zip(("grad_x", "grad_kernel", "grad_bias"), ops.conv2d_backward(x, k, gy, (2, 1), "same"),
                          ref.conv2d_backward(x, k, gy, (2, 1), "same")):
        ref.assert_close(a, r, f"conv2d_backward {name} n=16 10x9x5 k3x4x6 s2x1 same")


# Few output pixels but much work (late layers at small batches): the forward splits into 8 smaller pixel blocks,
# or with fewer than 24 pixels a block (7x7 pixels at batch 1, 2,304 taps, 256 channels) into groups of output
# channels (src/ops/conv.rs, SPLIT_ITEMS / SPLIT_ROWS). Checked
# against the float64 reference and, bit for bit, against the same images inside a batch large enough to
# split over pixels; channel counts that leave a narrower last group, strides, same padding.
@pytest.mark.parametrize("h,w,cin,cout,strides,pad", [
    (9, 9, 256, 256, 1, "valid"),
    (8, 11, 96, 80, 1, "same"),
    (15, 13, 128, 112, 2, "same"),
    (16, 18, 128, 64, 1, "valid"),   # 224 pixels: 8 blocks of 30
    (12, 12, 64, 64, 1, "same"),     # 144 pixels: 8 blocks of 18 -> channel groups of 16
])
def test_few_pixel_forward_split_over_channels(ops, h, w, cin, cout, strides, pad):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, h, w, cin)).astype(np.float32)
    k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y = ops.conv2d(x, k, b, strides, pad, activation="relu")
    assert 2 * y.size * 9 * cin >= 4 << 21 and y.shape[1] * y.shape[2] < 8 * 128, "the case must take the split"
    ref.assert_close(y, ref.relu(ref.conv2d(R(x), R(k), R(b), strides, pad)), f"conv2d b1 {h}x{w}x{cin}->{cout}")
    many = np.concatenate([x] + [rng.standard_normal(x.shape).astype(np.float32) for _ in range(31)])
    from rconv import _rconv
    was = _rconv.winograd_enabled()
    try:
        _rconv.set_winograd(False)  # the direct convolution at both sizes (Winograd rounds differently)
        y = ops.conv2d(x, k, b, strides, pad, activation="relu")
        whole = ops.conv2d(many, k, b, strides, pad, activation="relu")[:1]
    finally:
        _rconv.set_winograd(was)
    if PORTABLE:  # the portable GEMM may round a narrower product differently
        np.testing.assert_allclose(y, whole, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(y, whole)


def test_results_do_not_depend_on_thread_count(ops, tmp_path):
    # the kernels split work into fixed blocks, so one thread and all threads must agree bit for bit
    script = r"""
import sys
import numpy as np
from rconv import ops
rng = np.random.default_rng(8)
x = rng.standard_normal((5, 13, 11, 6)).astype(np.float32)
k = rng.standard_normal((3, 3, 6, 7)).astype(np.float32)
gy = rng.standard_normal((5, 7, 6, 7)).astype(np.float32)
xd = rng.standard_normal((70, 90)).astype(np.float32)
kd = rng.standard_normal((90, 20)).astype(np.float32)
gd = rng.standard_normal((70, 20)).astype(np.float32)
out = [ops.conv2d(x, k, None, 2, "same"), *ops.conv2d_backward(x, k, gy, 2, "same"),
       ops.dense(xd, kd), *ops.dense_backward(xd, kd, gd)]
np.savez(sys.argv[1], *out)
"""
    results = arrays_per_thread_count(script, tmp_path)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)

"""max_pool2d / avg_pool2d, forward and backward, against the float64 references."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from reference import r32 as R

SEED = 777
N_RANDOM = 220


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


# (n, h, w, c, ph, pw, sh, sw, padding); sh = None means "strides default to pool_size".
EDGE = [
    (1, 4, 4, 1, 2, 2, None, None, "valid"),   # batch 1, channels 1
    (2, 7, 9, 3, 2, 2, None, None, "valid"),   # odd sizes: the last row/column is dropped
    (2, 7, 9, 3, 2, 2, None, None, "same"),    # odd sizes, same: partial windows at bottom/right
    (2, 9, 9, 2, 2, 2, 3, 3, "valid"),         # stride > pool
    (2, 10, 11, 2, 1, 1, 3, 2, "same"),        # stride > pool, 1x1 pool
    (1, 9, 8, 2, 2, 1, 3, 3, "same"),          # stride > rectangular pool
    (2, 5, 5, 3, 5, 5, None, None, "valid"),   # pool == input
    (2, 4, 6, 3, 4, 6, 1, 1, "valid"),         # pool == input, rectangular
    (1, 5, 5, 2, 5, 5, 1, 1, "same"),          # pool == input, same
    (1, 3, 3, 2, 5, 5, 1, 1, "same"),          # pool > input, same
    (1, 2, 3, 2, 4, 5, 2, 2, "same"),          # pool > input, same, strided
    (2, 6, 6, 2, 3, 3, 1, 1, "same"),          # same, even total pad (1 / 1)
    (2, 6, 6, 2, 2, 2, 1, 1, "same"),          # same, odd total pad (0 / 1)
    (2, 7, 7, 2, 4, 4, 2, 2, "same"),          # same, odd total pad (1 / 2)
    (2, 8, 8, 2, 3, 3, 2, 2, "same"),          # same, total pad 1 (0 / 1)
    (2, 8, 8, 2, 4, 4, 2, 2, "same"),          # same, even total pad (1 / 1)
    (2, 7, 8, 3, 3, 1, None, None, "valid"),   # rectangular pool
    (2, 9, 10, 2, 3, 2, 2, 1, "same"),         # rectangular pool and strides
    (2, 9, 10, 2, 3, 3, 1, 3, "valid"),        # rectangular strides
    (2, 5, 5, 4, 1, 1, 1, 1, "valid"),         # 1x1 pool: identity
    (2, 6, 6, 17, 3, 3, 2, 2, "same"),         # large channels
    (1, 5, 5, 33, 2, 2, None, None, "valid"),  # large channels
    (3, 12, 12, 5, 3, 3, 2, 2, "valid"),       # overlapping windows
    (3, 12, 12, 5, 3, 3, 2, 2, "same"),        # overlapping windows, same
    (1, 1, 1, 3, 1, 1, 1, 1, "valid"),         # 1x1 image
    (1, 1, 1, 3, 2, 2, 2, 2, "same"),          # 1x1 image, same
    (1, 1, 9, 2, 1, 3, 1, 2, "valid"),         # single row
    (1, 9, 1, 2, 3, 1, 2, 1, "same"),          # single column
]


def _make_cases():
    rng = np.random.default_rng(SEED)
    cases = []
    for (n, h, w, c, ph, pw, sh, sw, pad) in EDGE:
        cases.append(dict(n=n, h=h, w=w, c=c, ph=ph, pw=pw, sh=sh, sw=sw, pad=pad, f64=False, form="tuple"))
    while len(cases) < len(EDGE) + N_RANDOM:
        pad = str(rng.choice(["valid", "same"]))
        h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        ph, pw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        if rng.random() < 0.4:
            pw = ph
        if pad == "valid" and (ph > h or pw > w):
            continue
        if rng.random() < 0.3:
            sh = sw = None
        else:
            sh, sw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
            if rng.random() < 0.4:
                sw = sh
        cases.append(dict(n=int(rng.choice([1, 1, 2, 3, 4])), h=h, w=w, c=int(rng.choice([1, 2, 3, 4, 8, 17, 33])),
                          ph=ph, pw=pw, sh=sh, sw=sw, pad=pad, f64=bool(rng.random() < 0.2),
                          form=str(rng.choice(["tuple", "list", "int"]))))
    return cases


CASES = _make_cases()


def _cid(i, c):
    s = "default" if c["sh"] is None else f"{c['sh']}x{c['sw']}"
    return (f"{i:03d}-n{c['n']}-{c['h']}x{c['w']}x{c['c']}-p{c['ph']}x{c['pw']}-s{s}-{c['pad']}"
            f"{'-f64' if c['f64'] else ''}")


IDS = [_cid(i, c) for i, c in enumerate(CASES)]


def _form(a, b, form):
    if form == "int" and a == b:
        return a
    return [a, b] if form == "list" else (a, b)


def _args(c):
    """(pool_size, strides) as passed to ops, and as passed to the reference."""
    pool = _form(c["ph"], c["pw"], c["form"])
    strides = None if c["sh"] is None else _form(c["sh"], c["sw"], c["form"])
    ref_strides = (c["ph"], c["pw"]) if c["sh"] is None else (c["sh"], c["sw"])
    return pool, strides, (c["ph"], c["pw"]), ref_strides


def _inputs(i, c):
    rng = np.random.default_rng(SEED + 1000 + i)
    dt = np.float64 if c["f64"] else np.float32
    x = rng.standard_normal((c["n"], c["h"], c["w"], c["c"])).astype(dt)
    _, rs = _args(c)[2:]
    gy = rng.standard_normal(ref.pool_out_shape(x.shape, (c["ph"], c["pw"]), rs, c["pad"])).astype(dt)
    return x, gy


def test_case_coverage():
    def total_pad(n, k, s):
        _, a, b = ref.out_and_pad(n, k, s, "same")
        return a + b
    assert len(CASES) >= 200
    st = lambda c: (c["ph"], c["pw"]) if c["sh"] is None else (c["sh"], c["sw"])  # noqa: E731
    checks = {
        "batch 1": any(c["n"] == 1 for c in CASES),
        "channels 1": any(c["c"] == 1 for c in CASES),
        "odd sizes": any(c["h"] % 2 and c["w"] % 2 for c in CASES),
        "stride > pool": any(st(c)[0] > c["ph"] and st(c)[1] > c["pw"] for c in CASES),
        "pool == input (valid)": any(c["pad"] == "valid" and (c["ph"], c["pw"]) == (c["h"], c["w"]) for c in CASES),
        "same, odd total pad": any(c["pad"] == "same" and total_pad(c["h"], c["ph"], st(c)[0]) % 2 for c in CASES),
        "same, even nonzero total pad": any(c["pad"] == "same" and total_pad(c["h"], c["ph"], st(c)[0]) % 2 == 0
                                            and total_pad(c["h"], c["ph"], st(c)[0]) > 0 for c in CASES),
        "rectangular pool": any(c["ph"] != c["pw"] for c in CASES),
        "rectangular strides": any(st(c)[0] != st(c)[1] for c in CASES),
        "1x1 pool": any(c["ph"] == c["pw"] == 1 for c in CASES),
        "channels >= 17": any(c["c"] >= 17 for c in CASES),
        "default strides": any(c["sh"] is None for c in CASES),
        "int pool_size": any(c["form"] == "int" and c["ph"] == c["pw"] for c in CASES),
        "float64 input": any(c["f64"] for c in CASES),
    }
    missing = [k for k, v in checks.items() if not v]
    assert not missing, f"case generator misses: {missing}"


# --- the references themselves ------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [
    (2, 5, 4, 2, 2, 2, 2, 2, "valid"),
    (1, 5, 5, 2, 3, 3, 2, 2, "same"),    # partial windows, even pads
    (1, 6, 5, 3, 2, 3, 1, 2, "same"),    # odd pads, overlapping
    (1, 3, 3, 1, 5, 4, 1, 1, "same"),    # pool > input
    (1, 7, 7, 2, 2, 2, 3, 3, "valid"),   # stride > pool: some cells get no gradient
])
def test_reference_pool_backward_matches_finite_differences(shape):
    n, h, w, c, ph, pw, sh, sw, pad = shape
    rng = np.random.default_rng(11)
    x = rng.permutation(n * h * w * c).reshape(n, h, w, c) * 0.1 + rng.uniform(0, 0.01, (n, h, w, c))  # distinct
    y = ref.avg_pool2d(x, (ph, pw), (sh, sw), pad)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(
        ref.avg_pool2d_backward(x, gy, (ph, pw), (sh, sw), pad),
        ref.numeric_grad(lambda v: (ref.avg_pool2d(v, (ph, pw), (sh, sw), pad) * gy).sum(), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        ref.max_pool2d_backward(x, gy, (ph, pw), (sh, sw), pad),
        ref.numeric_grad(lambda v: (ref.max_pool2d(v, (ph, pw), (sh, sw), pad) * gy).sum(), x), rtol=1e-6, atol=1e-8)


def test_reference_pool_hand_examples():
    x = np.array([[1.0, 5, 2, 0], [3, 4, 7, 1]]).reshape(1, 2, 4, 1)
    np.testing.assert_array_equal(ref.max_pool2d(x, 2).ravel(), [5, 7])
    np.testing.assert_array_equal(ref.max_pool2d_backward(x, np.array([1.0, 2]).reshape(1, 1, 2, 1), 2).ravel(),
                                  [0, 1, 0, 0, 0, 0, 2, 0])
    # TF same avg: 3 wide, pool 2, stride 2 -> the last window holds one real cell
    x = np.array([2.0, 4, 9]).reshape(1, 1, 3, 1)
    np.testing.assert_array_equal(ref.avg_pool2d(x, (1, 2), (1, 2), "same").ravel(), [3, 9])
    # padded cells never win a max, even when every real value is negative
    x = -np.arange(1.0, 10).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(ref.max_pool2d(x, 2, 2, "same").ravel(), [-1, -3, -7, -9])
    # ties: the first maximum in row-major window order takes the gradient
    x = np.array([[3.0, 3], [3, 3]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(ref.max_pool2d_backward(x, np.ones((1, 1, 1, 1)), 2).ravel(), [1, 0, 0, 0])


# --- kernel vs reference ----------------------------------------------------------------------------

@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_max_pool2d_forward(ops, i):
    c = CASES[i]
    x, _ = _inputs(i, c)
    pool, strides, rp, rs = _args(c)
    ref.assert_close(ops.max_pool2d(x, pool, strides, c["pad"]), ref.max_pool2d(R(x), rp, rs, c["pad"]),
                     f"max_pool2d {IDS[i]}")


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_max_pool2d_backward(ops, i):
    c = CASES[i]
    x, gy = _inputs(i, c)
    pool, strides, rp, rs = _args(c)
    expected = ref.max_pool2d_backward(R(x), R(gy), rp, rs, c["pad"])
    ref.assert_close(ops.max_pool2d_backward(x, gy, pool, strides, c["pad"]), expected,
                     f"max_pool2d_backward {IDS[i]}")
    # With the forward's output passed in (what the layer does), the kernel skips recomputing maxima.
    y = ops.max_pool2d(x, pool, strides, c["pad"])
    ref.assert_close(ops.max_pool2d_backward(x, gy, pool, strides, c["pad"], y=y), expected,
                     f"max_pool2d_backward with y {IDS[i]}")


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_avg_pool2d_forward(ops, i):
    c = CASES[i]
    x, _ = _inputs(i, c)
    pool, strides, rp, rs = _args(c)
    ref.assert_close(ops.avg_pool2d(x, pool, strides, c["pad"]), ref.avg_pool2d(R(x), rp, rs, c["pad"]),
                     f"avg_pool2d {IDS[i]}")


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_avg_pool2d_backward(ops, i):
    c = CASES[i]
    x, gy = _inputs(i, c)
    pool, strides, rp, rs = _args(c)
    ref.assert_close(ops.avg_pool2d_backward(x, gy, pool, strides, c["pad"]),
                     ref.avg_pool2d_backward(R(x), R(gy), rp, rs, c["pad"]), f"avg_pool2d_backward {IDS[i]}")


# The kernel gives a tied maximum's gradient to the first maximum in row-major window order (like
# TF's MaxPoolGrad); integer-valued inputs force many ties.
TIE_CASES = [c for c in CASES if c["sh"] is not None or c["ph"] * c["pw"] > 1][:60]


@pytest.mark.parametrize("i", range(len(TIE_CASES)), ids=[_cid(i, c) for i, c in enumerate(TIE_CASES)])
def test_max_pool2d_backward_ties_go_to_first_max(ops, i):
    c = TIE_CASES[i]
    rng = np.random.default_rng(SEED + 5000 + i)
    x = rng.integers(0, 3, (c["n"], c["h"], c["w"], c["c"])).astype(np.float32)
    pool, strides, rp, rs = _args(c)
    gy = rng.standard_normal(ref.pool_out_shape(x.shape, rp, rs, c["pad"])).astype(np.float32)
    ref.assert_close(ops.max_pool2d(x, pool, strides, c["pad"]), ref.max_pool2d(x, rp, rs, c["pad"]),
                     f"max_pool2d ties {_cid(i, c)}")
    expected = ref.max_pool2d_backward(x, gy, rp, rs, c["pad"])
    ref.assert_close(ops.max_pool2d_backward(x, gy, pool, strides, c["pad"]), expected,
                     f"max_pool2d_backward ties {_cid(i, c)}")
    y = ops.max_pool2d(x, pool, strides, c["pad"])
    ref.assert_close(ops.max_pool2d_backward(x, gy, pool, strides, c["pad"], y=y), expected,
                     f"max_pool2d_backward ties with y {_cid(i, c)}")


def test_max_pool_padding_never_wins(ops):
    x = -np.arange(1.0, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(ops.max_pool2d(x, 2, 2, "same").ravel(), [-1, -3, -7, -9])
    x = -np.abs(np.random.default_rng(0).standard_normal((2, 5, 5, 3)).astype(np.float32)) - 1
    y = ops.max_pool2d(x, 3, 2, "same")
    assert (y < 0).all(), "a padded zero won a max over negative inputs"
    ref.assert_close(y, ref.max_pool2d(x, 3, 2, "same"), "max_pool2d negative inputs, same")


def test_pool_output_dtype(ops):
    x = np.random.default_rng(1).standard_normal((2, 6, 6, 3))  # float64 in
    for f in (ops.max_pool2d, ops.avg_pool2d):
        y = f(x, 2, None, "SAME")
        assert y.dtype == np.float32 and y.shape == (2, 3, 3, 3), (f.__name__, y.dtype, y.shape)
    for f in (ops.max_pool2d_backward, ops.avg_pool2d_backward):
        g = f(x, np.ones((2, 3, 3, 3)), 2)
        assert g.dtype == np.float32 and g.shape == x.shape, (f.__name__, g.dtype, g.shape)


def test_pool_larger_batch(ops):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 13, 11, 6)).astype(np.float32)
    gy = rng.standard_normal((16, 7, 6, 6)).astype(np.float32)
    for name in ("max", "avg"):
        f, fb = getattr(ops, f"{name}_pool2d"), getattr(ops, f"{name}_pool2d_backward")
        rf, rb = getattr(ref, f"{name}_pool2d"), getattr(ref, f"{name}_pool2d_backward")
        ref.assert_close(f(x, 3, 2, "same"), rf(x, 3, 2, "same"), f"{name}_pool2d n=16 13x11x6 p3 s2 same")
        ref.assert_close(fb(x, gy, 3, 2, "same"), rb(x, gy, 3, 2, "same"),
                         f"{name}_pool2d_backward n=16 13x11x6 p3 s2 same")

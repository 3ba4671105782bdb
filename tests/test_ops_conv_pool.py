"""conv2d_relu_max_pool / conv2d_relu_max_pool_backward (the fused conv + ReLU + max-pool kernel).

Checked against the float64 references in tests/reference.py, against the unfused rconv ops (the
forward must be bit-identical to ``max_pool2d(conv2d(..., activation="relu"))``), against a NumPy
reference for the ``winners`` array, and against finite differences. Shapes cover the AVX-512
"gather" path (kh*kw*cin <= 32 taps and cout a multiple of 16, not a stride-1 1x1 conv) and the
im2col path on either side of its limits; run with ``RCONV_KERNELS=portable`` to check the
portable code paths too.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

import reference as ref
from threads import arrays_per_thread_count
from rconv import _rconv
from reference import r32 as R

SEED = 20240917
N_RANDOM = 200
NO_WINNER = 0xFFFFFFFF
GATHER_MAX_TAPS = 32  # src/ops/conv.rs: convs with at most this many taps (and cout % 16 == 0) gather
PORTABLE = os.environ.get("RCONV_KERNELS", "").lower() == "portable"


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


# --- cases --------------------------------------------------------------------------------------------

# (n, h, w, cin, kh, kw, cout, sh, sw, padding, ph, pw, psh, psw, pool_padding); psh = None means
# "pool_strides default to pool_size". Hand-picked edge cases first.
EDGE = [
    # few-tap convs with cout a multiple of 16: the gather kernels on AVX-512
    (1, 8, 8, 1, 3, 3, 16, 1, 1, "valid", 2, 2, None, None, "valid"),    # batch 1, cin 1, cout 16
    (2, 9, 9, 1, 3, 3, 32, 1, 1, "same", 2, 2, None, None, "valid"),     # odd sizes: last conv row/col dropped
    (2, 10, 9, 3, 3, 3, 48, 1, 1, "same", 3, 3, 2, 2, "same"),           # 27 taps, overlapping 'same' pool
    (2, 11, 11, 2, 3, 3, 64, 2, 2, "same", 2, 2, None, None, "same"),    # strided conv, odd conv output
    (2, 8, 8, 2, 4, 4, 16, 1, 1, "valid", 2, 2, None, None, "valid"),    # exactly 32 taps (last gathering)
    (2, 7, 7, 2, 4, 4, 16, 2, 2, "same", 2, 2, None, None, "same"),      # 32 taps, asymmetric pads 1 / 2
    (2, 9, 9, 11, 3, 1, 16, 1, 1, "same", 2, 2, None, None, "valid"),    # 33 taps: just past the gather limit
    (2, 9, 9, 4, 1, 1, 16, 2, 2, "valid", 2, 2, None, None, "valid"),    # strided 1x1: gathers
    (2, 6, 6, 3, 1, 1, 32, 1, 1, "valid", 2, 2, None, None, "valid"),    # pointwise 1x1: never gathers
    (2, 13, 13, 2, 2, 2, 16, 3, 3, "valid", 2, 2, None, None, "valid"),  # stride > kernel, input tail unused
    (2, 10, 11, 1, 3, 3, 32, 4, 4, "same", 2, 2, None, None, "same"),    # stride > kernel, same (pad 0 / 1)
    (2, 9, 9, 2, 2, 5, 32, 1, 1, "same", 3, 2, 2, 1, "valid"),           # rectangular kernel and pool
    (1, 3, 3, 1, 5, 5, 16, 1, 1, "same", 2, 2, None, None, "same"),      # kernel > input, same
    (2, 6, 6, 1, 3, 3, 16, 1, 1, "valid", 4, 4, None, None, "valid"),    # pool == conv output (4x4)
    (2, 6, 8, 2, 3, 3, 64, 1, 1, "valid", 4, 6, 1, 1, "valid"),          # pool == rectangular conv output
    (17, 14, 14, 1, 3, 3, 64, 1, 1, "valid", 2, 2, None, None, "valid"), # backward image groups of 7 + 2
    # the same situations on the im2col path (cout not a multiple of 16, or many taps)
    (1, 8, 8, 1, 3, 3, 15, 1, 1, "valid", 2, 2, None, None, "valid"),    # batch 1, cin 1, cout 15
    (2, 7, 7, 1, 3, 3, 17, 1, 1, "same", 2, 2, None, None, "valid"),     # cout 17, odd sizes
    (1, 6, 6, 1, 3, 3, 1, 1, 1, "valid", 2, 2, None, None, "valid"),     # cin 1, cout 1
    (3, 7, 9, 3, 3, 3, 1, 1, 1, "same", 2, 2, None, None, "same"),       # odd sizes, same pool
    (2, 11, 7, 2, 2, 1, 5, 4, 3, "valid", 2, 2, None, None, "valid"),    # stride > rectangular kernel
    (2, 7, 8, 3, 4, 2, 7, 2, 1, "same", 2, 2, None, None, "valid"),      # same, asymmetric pads, rect kernel
    (2, 6, 6, 2, 2, 2, 3, 1, 1, "same", 3, 3, 1, 1, "same"),             # same conv pad 0 / 1, pool stride 1
    (2, 9, 10, 2, 3, 1, 6, 1, 1, "valid", 3, 2, 2, 1, "same"),           # rectangular pool, overlapping
    (2, 9, 10, 2, 1, 3, 6, 1, 1, "valid", 2, 3, 1, 2, "same"),           # rectangular pool, overlapping
    (2, 12, 12, 2, 3, 3, 4, 1, 1, "same", 2, 2, 3, 3, "valid"),          # pool stride > pool
    (2, 5, 5, 3, 3, 3, 5, 1, 1, "valid", 3, 3, None, None, "valid"),     # pool == conv output (3x3)
    (2, 5, 7, 3, 3, 3, 5, 1, 1, "valid", 3, 5, 2, 2, "valid"),           # pool == rect conv output
    (2, 4, 4, 2, 3, 3, 3, 1, 1, "same", 5, 5, 1, 1, "same"),             # pool > conv output, same
    (2, 6, 6, 3, 3, 3, 4, 1, 1, "same", 1, 1, None, None, "valid"),      # 1x1 pool: relu(conv) itself
    (2, 7, 7, 8, 3, 3, 16, 1, 1, "same", 2, 2, None, None, "valid"),     # cin 8: 72 taps, cout 16
    (1, 6, 6, 40, 3, 3, 48, 1, 1, "same", 2, 2, None, None, "same"),     # cin 40, cout 48
    (2, 8, 8, 17, 3, 3, 33, 1, 1, "same", 3, 3, 2, 2, "valid"),          # cin 17, cout 33
    (1, 5, 5, 40, 3, 3, 64, 1, 1, "valid", 2, 2, 1, 1, "valid"),         # cin 40, cout 64, overlapping pool
    (17, 14, 14, 8, 3, 3, 64, 1, 1, "valid", 2, 2, None, None, "valid"), # n 17, many taps, cout 64
    (1, 1, 1, 3, 3, 3, 16, 1, 1, "same", 2, 2, None, None, "same"),      # 1x1 image
    (1, 1, 9, 2, 1, 3, 16, 1, 1, "valid", 1, 2, None, None, "valid"),    # single row
    (1, 9, 1, 2, 3, 1, 5, 2, 1, "same", 2, 1, None, None, "same"),       # single column
    (4, 3, 3, 8, 3, 3, 7, 1, 1, "valid", 1, 1, None, None, "valid"),     # kernel == input: 1x1 conv output
    (3, 4, 5, 5, 3, 4, 3, 3, 2, "valid", 1, 1, None, None, "same"),      # 1x1 conv output, strided
]


def _make_cases():
    rng = np.random.default_rng(SEED)
    cases = []
    for e in EDGE:
        (n, h, w, cin, kh, kw, cout, sh, sw, pad, ph, pw, psh, psw, ppad) = e
        cases.append(dict(n=n, h=h, w=w, cin=cin, kh=kh, kw=kw, cout=cout, sh=sh, sw=sw, pad=pad, ph=ph, pw=pw,
                          psh=psh, psw=psw, ppad=ppad, bias=True, f64=False, form="tuple"))
    while len(cases) < len(EDGE) + N_RANDOM:
        pad, ppad = str(rng.choice(["valid", "same"])), str(rng.choice(["valid", "same"]))
        h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))
        few = rng.random() < 0.5  # half the cases: a few-tap 3x3-ish conv (gather candidates)
        cin = int(rng.choice([1, 2, 3])) if few else int(rng.choice([1, 2, 4, 5, 8, 17, 24, 40]))
        kh, kw = (3, 3) if few and rng.random() < 0.6 else (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        if pad == "valid" and (kh > h or kw > w):
            continue
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if rng.random() < 0.5:
            sw = sh
        oh = ref.out_and_pad(h, kh, sh, pad)[0]
        ow = ref.out_and_pad(w, kw, sw, pad)[0]
        ph, pw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        if rng.random() < 0.5:
            pw = ph
        if ppad == "valid" and (ph > oh or pw > ow):
            continue
        if rng.random() < 0.35:
            psh = psw = None
        else:
            psh, psw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            if rng.random() < 0.5:
                psw = psh
        cases.append(dict(
            n=int(rng.choice([1, 1, 2, 3, 4])), h=h, w=w, cin=cin, kh=kh, kw=kw,
            cout=int(rng.choice([16, 32, 48, 64, 1, 3, 7, 17, 33])), sh=sh, sw=sw, pad=pad,
            ph=ph, pw=pw, psh=psh, psw=psw, ppad=ppad,
            bias=bool(rng.random() < 0.75), f64=bool(rng.random() < 0.15),
            form=str(rng.choice(["tuple", "list", "int"]))))
    return cases


CASES = _make_cases()


def _cid(i, c):
    ps = "d" if c["psh"] is None else f"{c['psh']}x{c['psw']}"
    return (f"{i:03d}-n{c['n']}-{c['h']}x{c['w']}x{c['cin']}-k{c['kh']}x{c['kw']}x{c['cout']}"
            f"-s{c['sh']}x{c['sw']}-{c['pad']}-p{c['ph']}x{c['pw']}-ps{ps}-{c['ppad']}"
            f"{'-b' if c['bias'] else ''}{'-f64' if c['f64'] else ''}")


IDS = [_cid(i, c) for i, c in enumerate(CASES)]


def _form(a, b, form):
    if form == "int" and a == b:
        return a
    return [a, b] if form == "list" else (a, b)


def _geom(c):
    """Keyword geometry as the ops take it (ints, lists or tuples, pool_strides maybe None)."""
    return dict(strides=_form(c["sh"], c["sw"], c["form"]), padding=c["pad"],
                pool_size=_form(c["ph"], c["pw"], c["form"]),
                pool_strides=None if c["psh"] is None else _form(c["psh"], c["psw"], c["form"]),
                pool_padding=c["ppad"])


def _ref_geom(c):
    """(conv strides, padding, pool, pool strides, pool padding) as plain tuples for the references."""
    ps = (c["ph"], c["pw"]) if c["psh"] is None else (c["psh"], c["psw"])
    return (c["sh"], c["sw"]), c["pad"], (c["ph"], c["pw"]), ps, c["ppad"]


def _conv_out(c):
    return (ref.out_and_pad(c["h"], c["kh"], c["sh"], c["pad"])[0],
            ref.out_and_pad(c["w"], c["kw"], c["sw"], c["pad"])[0])


def _pool_out(c):
    oh, ow = _conv_out(c)
    _, _, pool, ps, ppad = _ref_geom(c)
    return ref.out_and_pad(oh, pool[0], ps[0], ppad)[0], ref.out_and_pad(ow, pool[1], ps[1], ppad)[0]


def _taps(c):
    return c["kh"] * c["kw"] * c["cin"]


def _gathers(c):
    """The conv takes the AVX-512 gather path (when the CPU has it and RCONV_KERNELS != portable)."""
    pointwise = c["kh"] == c["kw"] == 1 and c["sh"] == c["sw"] == 1
    return _taps(c) <= GATHER_MAX_TAPS and c["cout"] % 16 == 0 and not pointwise


def _pointwise(c):
    """A 1x1, stride-1 conv: the kernels read x itself as the im2col matrix."""
    return c["kh"] == c["kw"] == 1 and c["sh"] == c["sw"] == 1


def _one_pixel_rows(c):
    """Cases where the fused forward runs the bias GEMM on 1-row blocks (a 1x1 conv output per image)
    while the unfused conv runs it on n rows: see test_forward_bit_equal_to_unfused_one_pixel_images."""
    return _conv_out(c) == (1, 1) and c["n"] > 1 and c["bias"] and c["cout"] % 16 != 0


def _inputs(i, c):
    """x, kernel, bias (or None) and the pooled output's gradient. The bias is on the scale of the conv
    output (sqrt(taps)), so some channels are mostly inactive and their windows' maxima are ReLU zeros."""
    rng = np.random.default_rng(SEED + 1000 + i)
    dt = np.float64 if c["f64"] else np.float32
    x = rng.standard_normal((c["n"], c["h"], c["w"], c["cin"])).astype(dt)
    k = rng.standard_normal((c["kh"], c["kw"], c["cin"], c["cout"])).astype(dt)
    b = (rng.standard_normal(c["cout"]) * np.sqrt(_taps(c))).astype(dt) if c["bias"] else None
    gy = rng.standard_normal((c["n"], *_pool_out(c), c["cout"])).astype(dt)
    return x, k, b, gy


def ref_winners(z, pool, pool_strides, pool_padding):
    """The winners array from a (float32) ReLU'd conv output z: per image, the offset (oy*ow+ox)*cout+c
    of the first cell (row-major window order) holding the window's maximum, NO_WINNER where it is <= 0.
    Windows follow TF: 'same' pads with cells that never take part."""
    z = np.asarray(z)
    n, h, w, c = z.shape
    oh, pt, _ = ref.out_and_pad(h, pool[0], pool_strides[0], pool_padding)
    ow, pl, _ = ref.out_and_pad(w, pool[1], pool_strides[1], pool_padding)
    out = np.empty((n, oh, ow, c), dtype=np.uint32)
    ch = np.arange(c)[None, :]
    for i in range(oh):
        r0 = max(i * pool_strides[0] - pt, 0)
        r1 = min(i * pool_strides[0] - pt + pool[0], h)
        for j in range(ow):
            c0 = max(j * pool_strides[1] - pl, 0)
            c1 = min(j * pool_strides[1] - pl + pool[1], w)
            win = z[:, r0:r1, c0:c1, :].reshape(n, -1, c)
            arg = np.argmax(win, axis=1)  # first maximum
            best = np.take_along_axis(win, arg[:, None, :], axis=1)[:, 0, :]
            rows, cols = r0 + arg // (c1 - c0), c0 + arg % (c1 - c0)
            off = ((rows * w + cols) * c + ch).astype(np.uint32)
            out[:, i, j, :] = np.where(best > 0, off, np.uint32(NO_WINNER))
    return out


def ref_backward(ops, x, k, b, gy, c):
    """Reference gradients built from rconv's own float32 ReLU'd conv output z, so that ReLU zeros and
    tied maxima are decided on the same values the fused kernel saw: g_z = max-pool backward of gy
    onto z, masked by z > 0, then the float64 conv backward."""
    st, pad, pool, ps, ppad = _ref_geom(c)
    z = ops.conv2d(x, k, b, strides=st, padding=pad, activation="relu")
    g_z = ref.max_pool2d_backward(z, R(gy), pool, ps, ppad) * (z > 0)
    return ref.conv2d_backward(R(x), R(k), g_z, st, pad)


# --- coverage of the required situations -------------------------------------------------------------

def test_case_coverage():
    def pads(n, k, s):
        _, a, b = ref.out_and_pad(n, k, s, "same")
        return a, b

    def pool_strides(c):
        return (c["ph"], c["pw"]) if c["psh"] is None else (c["psh"], c["psw"])

    assert len(CASES) >= 200 + len(EDGE)
    checks = {
        "batch 1": any(c["n"] == 1 for c in CASES),
        "batch >= 16": any(c["n"] >= 16 for c in CASES),
        "cin 1": any(c["cin"] == 1 for c in CASES),
        "cout 1": any(c["cout"] == 1 for c in CASES),
        "odd sizes": any(c["h"] % 2 and c["w"] % 2 for c in CASES),
        "stride > kernel": any(c["sh"] > c["kh"] and c["sw"] > c["kw"] for c in CASES),
        "same conv, asymmetric pads": any(c["pad"] == "same" and pads(c["h"], c["kh"], c["sh"])[0]
                                          != pads(c["h"], c["kh"], c["sh"])[1] for c in CASES),
        "same conv, symmetric nonzero pads": any(c["pad"] == "same" and pads(c["h"], c["kh"], c["sh"])[0] > 0
                                                 and len(set(pads(c["h"], c["kh"], c["sh"]))) == 1 for c in CASES),
        "rectangular kernel": any(c["kh"] != c["kw"] for c in CASES),
        "rectangular conv strides": any(c["sh"] != c["sw"] for c in CASES),
        "rectangular pool": any(c["ph"] != c["pw"] for c in CASES),
        "overlapping pool (stride < size)": any(pool_strides(c)[0] < c["ph"] and pool_strides(c)[1] < c["pw"]
                                                for c in CASES),
        "pool stride > pool": any(pool_strides(c)[0] > c["ph"] and pool_strides(c)[1] > c["pw"] for c in CASES),
        "same pool, nonzero pads": any(c["ppad"] == "same" and sum(pads(_conv_out(c)[0], c["ph"], pool_strides(c)[0]))
                                       > 0 for c in CASES),
        "pool == conv output (valid)": any(c["ppad"] == "valid" and (c["ph"], c["pw"]) == _conv_out(c)
                                           and c["ph"] > 1 for c in CASES),
        "pool > conv output (same)": any(c["ppad"] == "same" and c["ph"] > _conv_out(c)[0] for c in CASES),
        "1x1 pool": any(c["ph"] == c["pw"] == 1 for c in CASES),
        "default pool strides": any(c["psh"] is None for c in CASES),
        "few taps (cin 1..3, 3x3)": any(c["cin"] <= 3 and (c["kh"], c["kw"]) == (3, 3) for c in CASES),
        "many taps (cin 8..40)": any(8 <= c["cin"] <= 40 and c["kh"] * c["kw"] > 1 for c in CASES),
        "cin 40": any(c["cin"] == 40 for c in CASES),
        "taps == 32, gathers": any(_taps(c) == GATHER_MAX_TAPS and _gathers(c) for c in CASES),
        "taps == 33, cout % 16 == 0": any(_taps(c) == GATHER_MAX_TAPS + 1 and c["cout"] % 16 == 0 for c in CASES),
        "strided 1x1, gathers": any(c["kh"] == c["kw"] == 1 and _gathers(c) for c in CASES),
        "pointwise 1x1, cout % 16 == 0": any(c["kh"] == c["kw"] == 1 and c["sh"] == c["sw"] == 1
                                             and c["cout"] % 16 == 0 for c in CASES),
        "gather, same conv padding": any(_gathers(c) and c["pad"] == "same" for c in CASES),
        "gather, stride > kernel": any(_gathers(c) and c["sh"] > c["kh"] for c in CASES),
        "gather, batch 1": any(_gathers(c) and c["n"] == 1 for c in CASES),
        "cout not a multiple of 16": any(c["cout"] % 16 for c in CASES),
        "cout % 16 == 0 but too many taps": any(c["cout"] % 16 == 0 and _taps(c) > GATHER_MAX_TAPS for c in CASES),
        "float64 input": any(c["f64"] for c in CASES),
        "int strides and pool": any(c["form"] == "int" and c["sh"] == c["sw"] and c["ph"] == c["pw"] for c in CASES),
        "no bias": any(not c["bias"] for c in CASES),
    }
    for cout in (16, 32, 48, 64):  # every gather width, on both paths
        checks[f"cout {cout}, gathers"] = any(c["cout"] == cout and _gathers(c) for c in CASES)
        checks[f"cout {cout}, im2col"] = any(c["cout"] == cout and not _gathers(c) for c in CASES)
    missing = [k for k, v in checks.items() if not v]
    assert not missing, f"case generator misses: {missing}"


def test_cases_route_gradients_both_ways(ops):
    # The winners comparisons only mean something if the cases hold both live maxima and ReLU-dead
    # windows (NO_WINNER), including a genuine offset 0 that must not be confused with "none".
    live = dead = zero = 0
    for i, c in enumerate(CASES[:len(EDGE)]):
        x, k, b, _ = _inputs(i, c)
        _, at = ops.conv2d_relu_max_pool(x, k, b, **_geom(c), winners=True)
        live += int((at != NO_WINNER).sum())
        dead += int((at == NO_WINNER).sum())
        zero += int((at == 0).sum())
    assert live > 5000 and dead > 5000 and zero > 0, (live, dead, zero)


# --- the reference composition itself, against finite differences ----------------------------------

@pytest.mark.parametrize("shape", [
    # (n, h, w, cin, kh, kw, cout, sh, sw, pad, ph, pw, psh, psw, ppad)
    (2, 6, 5, 2, 3, 2, 3, 1, 1, "valid", 2, 2, 2, 2, "valid"),
    (1, 5, 6, 2, 2, 3, 2, 2, 1, "same", 3, 2, 2, 1, "same"),   # asymmetric pads, overlapping pool
])
def test_reference_composition_matches_finite_differences(shape):
    # The backward reference (pool backward, ReLU mask, conv backward) against central differences of
    # the composed float64 forward; distinct, well-separated values keep every max and ReLU decision
    # away from its kink by far more than the step.
    n, h, w, cin, kh, kw, cout, sh, sw, pad, ph, pw, psh, psw, ppad = shape
    rng = np.random.default_rng(17)
    x = rng.standard_normal((n, h, w, cin))
    k = rng.standard_normal((kh, kw, cin, cout))
    b = rng.standard_normal(cout) * 0.5

    def f(xv, kv, bv):
        return ref.max_pool2d(ref.relu(ref.conv2d(xv, kv, bv, (sh, sw), pad)), (ph, pw), (psh, psw), ppad)

    y = f(x, k, b)
    gy = rng.standard_normal(y.shape)
    z = ref.conv2d(x, k, b, (sh, sw), pad)
    assert np.sort(np.abs(z).ravel())[0] > 1e-3, "pick another seed: a conv output sits on the ReLU kink"
    g_z = ref.relu_backward(z, ref.max_pool2d_backward(ref.relu(z), gy, (ph, pw), (psh, psw), ppad))
    gx, gk, gb = ref.conv2d_backward(x, k, g_z, (sh, sw), pad)
    h_ = 1e-6
    np.testing.assert_allclose(gx, ref.numeric_grad(lambda v: (f(v, k, b) * gy).sum(), x, h_), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gk, ref.numeric_grad(lambda v: (f(x, v, b) * gy).sum(), k, h_), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gb, ref.numeric_grad(lambda v: (f(x, k, v) * gy).sum(), b, h_), rtol=1e-5, atol=1e-6)
    assert np.abs(gk).max() > 0.1, "the check would be vacuous"


# --- forward -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_forward(ops, i):
    c = CASES[i]
    x, k, b, _ = _inputs(i, c)
    g = _geom(c)
    st, pad, pool, ps, ppad = _ref_geom(c)
    y, at = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
    assert y.dtype == np.float32 and y.shape == (c["n"], *_pool_out(c), c["cout"]), (y.dtype, y.shape)
    # 1. the float64 reference
    expected = ref.max_pool2d(ref.relu(ref.conv2d(R(x), R(k), R(b), st, pad)), pool, ps, ppad)
    ref.assert_close(y, expected, f"conv2d_relu_max_pool {IDS[i]}")
    # 2. bit-identical to the unfused rconv ops (one known 1-ulp exception has its own test below)
    z = ops.conv2d(x, k, b, strides=g["strides"], padding=pad, activation="relu")
    if not _one_pixel_rows(c) or PORTABLE:
        np.testing.assert_array_equal(y, ops.max_pool2d(z, g["pool_size"], g["pool_strides"], ppad),
                                      err_msg=f"fused forward differs from max_pool2d(conv2d(relu)) {IDS[i]}")
    # 3. winners: dtype, shape, and exactly the first maximum's offset (or NO_WINNER)
    assert at is not None and at.dtype == np.uint32 and at.shape == y.shape, (
        None if at is None else (at.dtype, at.shape))
    np.testing.assert_array_equal(at, ref_winners(z, pool, ps, ppad), err_msg=f"winners {IDS[i]}")
    # 4. without winners: the same y, and None
    y2, none = ops.conv2d_relu_max_pool(x, k, b, **g)
    assert none is None, f"winners=False must return None, got {type(none)}"
    np.testing.assert_array_equal(y2, y, err_msg=f"winners=False changes y {IDS[i]}")


def _scaled_inputs(seed, n, h, w, cin, cout):
    """(rng, x, 3x3 kernel scaled by 1/sqrt(fan-in), small bias) for the large-image cases below."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, cin), dtype=np.float32)
    k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) * 0.1
    return rng, x, k, b


# Convolution outputs above 3 MB per image (786,432 values) are computed and pooled a band of rows at a time
# (src/ops/conv_pool.rs, BAND_MIN_VALUES); winners must still be offsets in the whole image. Batches of
# at least 4: fewer images than kernel threads take the batch-1 path instead.
BANDED = [
    # (n, h, w, cin, cout, padding, pool, pool padding): gather path, valid pool dropping the last row
    (4, 162, 161, 3, 32, "valid", 2, "valid"),
    # im2col path (cout 40), same conv, odd rows: the last band's pool window runs past the output
    (4, 161, 171, 4, 40, "same", 2, "same"),
    # non-tiling pool windows (3 with stride 3 does tile; 3 with stride 2 would not band)
    (4, 150, 180, 2, 32, "same", 3, "valid"),
]


@pytest.mark.parametrize("n,h,w,cin,cout,pad,pool,ppad", BANDED)
def test_banded_forward_matches_unfused(ops, n, h, w, cin, cout, pad, pool, ppad):
    rng, x, k, b = _scaled_inputs(7, n, h, w, cin, cout)
    z = ops.conv2d(x, k, b, padding=pad, activation="relu")
    assert z[0].size > 786_432, "the case must take the banded path"
    y, at = ops.conv2d_relu_max_pool(x, k, b, padding=pad, pool_size=pool, pool_padding=ppad, winners=True)
    np.testing.assert_array_equal(y, ops.max_pool2d(z, pool, pool, ppad))
    np.testing.assert_array_equal(at, ref_winners(z, (pool, pool), (pool, pool), ppad))
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, padding=pad, pool_size=pool, pool_padding=ppad)
    gz = ops.max_pool2d_backward(z, gy, pool, pool, ppad)
    rx, rk, rb = ops.conv2d_backward(x, k, gz, padding=pad, relu_output=z)
    ref.assert_close(gk, R(rk), "banded grad_kernel")
    ref.assert_close(gx, R(rx), "banded grad_x")
    ref.assert_close(gb, R(rb), "banded grad_bias")


# Batch-1 inference (fewer images than threads, enough work per image) cuts each image into bands of
# convolution rows computed in parallel (src/ops/conv_pool.rs, forward_split): bands a multiple of the pool
# stride and of Winograd's tile, the last band cut short, pool windows running past the output, non-tiling
# windows (no split: the whole-image path). Same bits as the unfused ops; winners offsets in the whole image.
SPLIT = [
    # (h, w, cin, cout, padding, pool, pool strides, pool padding)
    (100, 100, 3, 32, "valid", 2, 2, "valid"),     # seed 004's first layer: gather path
    (61, 47, 20, 40, "same", 2, 2, "same"),       # im2col path, odd rows: the last window runs past the output
    (49, 53, 32, 64, "valid", 3, 3, "valid"),     # pool 3: bands of 6 (F2) or 12 (F4) rows, rows left unpooled
    (45, 40, 16, 48, "valid", 3, 2, "valid"),     # windows overlap: no bands
]


@pytest.mark.parametrize("tile", [0, 2, 4])
@pytest.mark.parametrize("h,w,cin,cout,pad,pool,pstride,ppad", SPLIT)
def test_batch_one_split_forward_matches_unfused(ops, tile, h, w, cin, cout, pad, pool, pstride, ppad):
    _, x, k, b = _scaled_inputs(11, 1, h, w, cin, cout)
    assert 2 * (h - 2) * (w - 2) * 9 * cin * cout >= 4 << 21, "the case must have enough work to be split"
    was = _rconv.winograd_enabled()
    try:
        _rconv.set_winograd(tile > 0, tile)
        z = ops.conv2d(x, k, b, padding=pad, activation="relu")
        y, at = ops.conv2d_relu_max_pool(x, k, b, padding=pad, pool_size=pool, pool_strides=pstride,
                                         pool_padding=ppad, winners=True)
        y2, _ = ops.conv2d_relu_max_pool(x, k, b, padding=pad, pool_size=pool, pool_strides=pstride,
                                         pool_padding=ppad)
    finally:
        _rconv.set_winograd(was, 0)
    np.testing.assert_array_equal(y, ops.max_pool2d(z, pool, pstride, ppad))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(at, ref_winners(z, (pool, pool), (pstride, pstride), ppad))


# Without the input gradient (a model's first layer), images whose convolution output exceeds 65,536 values
# get their kernel and bias gradients a band of pooled rows at a time, the band's output gradient expanded
# from the winners (src/ops/conv_pool.rs, kernel_grad_banded / expand_band): checked against the unfused ops
# and against the whole-image path (with the input gradient), for tiling windows of 2 and 3, rows and
# columns left under no window, "same" pooling whose last window runs past the output, gather and im2col.
BANDED_BACKWARD = [
    # (n, h, w, cin, cout, padding, pool, pool padding)
    (3, 61, 53, 3, 32, "valid", 2, "valid"),    # gather path; 59x51 output: last row and column unpooled
    (2, 48, 50, 4, 40, "same", 2, "same"),      # im2col path (36 taps, cout 40)
    (2, 47, 45, 1, 32, "same", 3, "same"),      # 3x3 windows, the last ones past the output
    (2, 52, 52, 3, 32, "valid", 3, "valid"),    # 3x3 windows, 50 = 16*3 + 2 rows unpooled
]


@pytest.mark.parametrize("n,h,w,cin,cout,pad,pool,ppad", BANDED_BACKWARD)
def test_banded_kernel_grad_matches_unfused(ops, n, h, w, cin, cout, pad, pool, ppad):
    rng, x, k, b = _scaled_inputs(9, n, h, w, cin, cout)
    z = ops.conv2d(x, k, b, padding=pad, activation="relu")
    assert z[0].size > 65_536, "the case must take the banded backward"
    y, at = ops.conv2d_relu_max_pool(x, k, b, padding=pad, pool_size=pool, pool_padding=ppad, winners=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    none, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, padding=pad, pool_size=pool, pool_padding=ppad,
                                                     need_grad_x=False)
    assert none is None
    gz = ops.max_pool2d_backward(z, gy, pool, pool, ppad)
    _, rk, rb = ops.conv2d_backward(x, k, gz, padding=pad, relu_output=z)
    ref.assert_close(gk, R(rk), "banded grad_kernel")
    ref.assert_close(gb, R(rb), "banded grad_bias")
    _, wk, wb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, padding=pad, pool_size=pool, pool_padding=ppad)
    np.testing.assert_allclose(gk, wk, rtol=1e-5, atol=1e-5 * float(np.abs(wk).max()))
    np.testing.assert_allclose(gb, wb, rtol=1e-5, atol=1e-5 * float(np.abs(wb).max()))


ONE_PIXEL = [i for i, c in enumerate(CASES) if _one_pixel_rows(c)]


def test_forward_rounds_like_unfused_one_pixel_images(ops):
    # The one known exception to bit-equality: with one conv output pixel per image the fused kernel
    # multiplies one row per image, the unfused conv all rows at once, and the `gemm` crate (cout % 16
    # != 0) rounds beta*C + A.B differently for a single row. The difference must stay at rounding level.
    assert len(ONE_PIXEL) >= 3, "the case list lost its one-pixel-per-image cases"
    for i in ONE_PIXEL:
        c = CASES[i]
        x, k, b, _ = _inputs(i, c)
        g = _geom(c)
        y, _ = ops.conv2d_relu_max_pool(x, k, b, **g)
        z = ops.conv2d(x, k, b, strides=g["strides"], padding=g["padding"], activation="relu")
        np.testing.assert_allclose(y, ops.max_pool2d(z, g["pool_size"], g["pool_strides"], g["pool_padding"]),
                                   rtol=1e-6, atol=1e-6 * float(np.abs(z).max()))


def test_winners_hand_example(ops):
    # A 1x2 'same' conv (pad 0 left, 1 right) with weights [1, -1, 0] on the first column, zero on the
    # second, and bias [0, 5, 0] gives channels x, 5 - x and 0 (a real 1x1 conv is pointwise, see
    # pointwise); then a 2x2, stride 2, 'same' pool over the 3x4 conv output: rows {0,1},
    # {2} (one padded row), cols {0,1}, {2,3}. Offsets are (row * 4 + col) * 3 + channel, per image.
    x = np.array([[[1, 5, 2, 0], [3, 5, 7, 1], [9, 9, 9, 9]],
                  [[7, 0, 0, 4], [0, 6, 0, 0], [2, 0, 0, 0]]], dtype=np.float32)[..., None]
    k = np.array([[1, -1, 0], [0, 0, 0]], dtype=np.float32).reshape(1, 2, 1, 3)
    b = np.array([0, 5, 0], dtype=np.float32)
    y, at = ops.conv2d_relu_max_pool(x, k, b, 1, "same", 2, 2, "same", winners=True)
    N = NO_WINNER
    # image 0, channel 0 (x): 5 first at (0,1) (tied with (1,1)); 7 at (1,2); 9 first at (2,0) and (2,2)
    # image 0, channel 1 (5-x): 4 at (0,0); relu(3,5,-2,4) -> 5 at (0,3); bottom row -4: dead
    # image 1, channel 0: 7 at (0,0) -> offset 0 (a real winner, not "none"); 4 at (0,3); 2 at (2,0); zeros: dead
    # image 1, channel 1: relu(-2,5,5,-1) -> first 5 at (0,1); 5 first at (0,2); 3,5 -> (2,1); 5,5 -> (2,2)
    # channel 2 is identically zero: every window dead
    exp_y = np.array([[[[5, 4, 0], [7, 5, 0]], [[9, 0, 0], [9, 0, 0]]],
                      [[[7, 5, 0], [4, 5, 0]], [[2, 5, 0], [0, 5, 0]]]], dtype=np.float32)
    exp_at = np.array([[[[3, 1, N], [18, 10, N]], [[24, N, N], [30, N, N]]],
                       [[[0, 4, N], [9, 7, N]], [[24, 28, N], [N, 31, N]]]], dtype=np.uint32)
    np.testing.assert_array_equal(y, exp_y)
    np.testing.assert_array_equal(at, exp_at)
    np.testing.assert_array_equal(at, ref_winners(ops.conv2d(x, k, b, 1, "same", activation="relu"),
                                                  (2, 2), (2, 2), "same"))
    # Backward with grad_y = 1: each live output adds 1 at its winning cell (r, c). grad_bias counts the
    # live outputs per channel; grad_kernel[0, 0] sums x[r, c] over the winners, grad_kernel[0, 1]
    # sums x[r, c + 1] (0 past the right edge); grad_x[r, c] gets the first-column weight of the channel.
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, np.ones_like(y), at, 1, "same", 2, 2, "same")
    np.testing.assert_array_equal(gb, [7, 6, 0])
    np.testing.assert_array_equal(gk[0, 0, 0], [5 + 7 + 9 + 9 + 7 + 4 + 2, 1 + 0 + 0 + 0 + 0 + 0, 0])
    np.testing.assert_array_equal(gk[0, 1, 0], [2 + 1 + 9 + 9 + 0 + 0 + 0, 5 + 0 + 0 + 4 + 0 + 0, 0])
    exp_gx = np.zeros_like(x)
    for img, r, c, ch in [(0, 0, 1, 0), (0, 1, 2, 0), (0, 2, 0, 0), (0, 2, 2, 0), (0, 0, 0, 1), (0, 0, 3, 1),
                          (1, 0, 0, 0), (1, 0, 3, 0), (1, 2, 0, 0), (1, 0, 1, 1), (1, 0, 2, 1), (1, 2, 1, 1),
                          (1, 2, 2, 1)]:
        exp_gx[img, r, c, 0] += k[0, 0, 0, ch]
    np.testing.assert_array_equal(gx, exp_gx)


def test_all_relu_inactive(ops):
    # A bias far below the conv output: every window's maximum is a ReLU zero, y is all zeros, every
    # winner is NO_WINNER and nothing flows back (on both paths: cout 16 gathers, cout 5 does not).
    rng = np.random.default_rng(5)
    for cout in (16, 5):
        x = rng.standard_normal((2, 7, 7, 2)).astype(np.float32)
        k = rng.standard_normal((3, 3, 2, cout)).astype(np.float32)
        b = np.full(cout, -1000.0, np.float32)
        y, at = ops.conv2d_relu_max_pool(x, k, b, 1, "same", 2, None, "same", winners=True)
        assert y.shape == (2, 4, 4, cout)
        assert (y == 0).all() and (at == NO_WINNER).all(), (cout, y.max(), np.unique(at))
        gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, rng.standard_normal(y.shape), at, 1, "same",
                                                       2, None, "same")
        assert not gx.any() and not gk.any() and not gb.any(), cout


def test_padding_is_case_insensitive_and_bias_none_is_zero(ops):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 7, 6, 2))  # float64 in, float32 out
    k = rng.standard_normal((3, 3, 2, 16))
    y, at = ops.conv2d_relu_max_pool(x, k, None, 1, "SAME", 3, 2, "Same", winners=True)
    y0, at0 = ops.conv2d_relu_max_pool(x, k, np.zeros(16), 1, "same", 3, 2, "same", winners=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_array_equal(at, at0)
    ref.assert_close(y, ref.max_pool2d(ref.relu(ref.conv2d(R(x), R(k), None, 1, "same")), 3, 2, "same"),
                     "conv2d_relu_max_pool float64 input, padding='SAME'")


# --- backward ------------------------------------------------------------------------------------------

BACKWARD_PARAMS = [pytest.param(i, id=IDS[i], marks=[])
                   for i, c in enumerate(CASES)]


@pytest.mark.parametrize("i", BACKWARD_PARAMS)
def test_backward(ops, i):
    c = CASES[i]
    x, k, b, gy = _inputs(i, c)
    g = _geom(c)
    _, at = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
    out = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g)
    assert len(out) == 3, f"backward must return (grad_x, grad_kernel, grad_bias), got {len(out)} items"
    gx, gk, gb = out
    for name, a, shape in (("grad_x", gx, x.shape), ("grad_kernel", gk, k.shape), ("grad_bias", gb, (c["cout"],))):
        assert a is not None and a.dtype == np.float32 and a.shape == shape, (
            name, None if a is None else (a.dtype, a.shape))
    rgx, rgk, rgb = ref_backward(ops, x, k, b, gy, c)
    ref.assert_close(gx, rgx, f"grad_x {IDS[i]}")
    ref.assert_close(gk, rgk, f"grad_kernel {IDS[i]}")
    ref.assert_close(gb, rgb, f"grad_bias {IDS[i]}")
    # need_grad_x=False: no input gradient, and the very same kernel and bias gradients
    none, gk2, gb2 = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g, need_grad_x=False)
    assert none is None, f"need_grad_x=False must return None for grad_x, got {type(none)}"
    np.testing.assert_array_equal(gk2, gk, err_msg=f"grad_kernel with need_grad_x=False {IDS[i]}")
    np.testing.assert_array_equal(gb2, gb, err_msg=f"grad_bias with need_grad_x=False {IDS[i]}")


POINTWISE = [i for i, c in enumerate(CASES) if _pointwise(c)]


def test_pointwise_kernel_and_bias_grads(ops):
    assert len(POINTWISE) >= 2, "the case list lost its pointwise convs"
    for i in POINTWISE:
        c = CASES[i]
        x, k, b, gy = _inputs(i, c)
        g = _geom(c)
        _, at = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
        none, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g, need_grad_x=False)
        assert none is None
        _, rgk, rgb = ref_backward(ops, x, k, b, gy, c)
        ref.assert_close(gk, rgk, f"grad_kernel {IDS[i]}")
        ref.assert_close(gb, rgb, f"grad_bias {IDS[i]}")


# Integer-valued inputs make the conv exact in float32, so maxima tie often (and ReLU zeros are exact):
# the gradient must go to the first maximum in row-major window order, as the winners say. Exactness needs the
# direct convolution (Winograd's transforms round), hence `direct_convolution`.
TIE_CASES = [i for i, c in enumerate(CASES) if c["ph"] * c["pw"] > 1 and c["n"] <= 4][:40]


def _tie_inputs(i, c):
    rng = np.random.default_rng(SEED + 5000 + i)
    x = rng.integers(-1, 3, (c["n"], c["h"], c["w"], c["cin"])).astype(np.float32)
    k = rng.integers(-1, 2, (c["kh"], c["kw"], c["cin"], c["cout"])).astype(np.float32)
    b = rng.integers(-2, 2, c["cout"]).astype(np.float32)
    gy = rng.standard_normal((c["n"], *_pool_out(c), c["cout"])).astype(np.float32)
    return x, k, b, gy


@pytest.mark.parametrize("i", [pytest.param(i, id=IDS[i], marks=[])
                               for i in TIE_CASES])
def test_ties_go_to_first_max(ops, i, direct_convolution):
    c = CASES[i]
    x, k, b, gy = _tie_inputs(i, c)
    g = _geom(c)
    st, pad, pool, ps, ppad = _ref_geom(c)
    y, at = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
    z = ops.conv2d(x, k, b, strides=st, padding=pad, activation="relu")
    np.testing.assert_array_equal(z, ref.relu(ref.conv2d(x, k, b, st, pad)), err_msg="integer conv not exact")
    np.testing.assert_array_equal(y, ref.max_pool2d(z, pool, ps, ppad), err_msg=f"ties forward {IDS[i]}")
    np.testing.assert_array_equal(at, ref_winners(z, pool, ps, ppad), err_msg=f"ties winners {IDS[i]}")
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g)
    rgx, rgk, rgb = ref_backward(ops, x, k, b, gy, c)
    ref.assert_close(gx, rgx, f"ties grad_x {IDS[i]}")
    ref.assert_close(gk, rgk, f"ties grad_kernel {IDS[i]}")
    ref.assert_close(gb, rgb, f"ties grad_bias {IDS[i]}")


def test_tie_cases_have_ties(ops, direct_convolution):
    # The tie tests only bite if windows really hold a repeated positive maximum, where "first
    # maximum" and "some other maximum" differ: count such (window, channel) pairs.
    ties = 0
    for i in TIE_CASES:
        c = CASES[i]
        x, k, b, _ = _tie_inputs(i, c)
        st, pad, pool, ps, ppad = _ref_geom(c)
        z = ops.conv2d(x, k, b, strides=st, padding=pad, activation="relu")
        n, h, w, ch = z.shape
        oh, pt, _ = ref.out_and_pad(h, pool[0], ps[0], ppad)
        ow, pl, _ = ref.out_and_pad(w, pool[1], ps[1], ppad)
        for oi in range(oh):
            for oj in range(ow):
                r0, c0 = oi * ps[0] - pt, oj * ps[1] - pl
                win = z[:, max(r0, 0):r0 + pool[0], max(c0, 0):c0 + pool[1]]
                m = win.max(axis=(1, 2))
                ties += int(((m > 0) & ((win == m[:, None, None, :]).sum(axis=(1, 2)) > 1)).sum())
    assert len(TIE_CASES) >= 30 and ties >= 500, (len(TIE_CASES), ties)


@pytest.mark.parametrize("shape", [
    # (n, h, w, cin, kh, kw, cout, sh, sw, pad, ph, pw, psh, psw, ppad)
    (2, 6, 5, 1, 3, 3, 16, 1, 1, "same", 2, 2, None, None, "same"),  # gathers on AVX-512
    (1, 7, 6, 3, 3, 2, 5, 2, 1, "same", 3, 2, 2, 1, "valid"),       # im2col, overlapping pool
])
def test_backward_matches_finite_differences_of_the_op(ops, shape):
    # Central differences of the op itself: the fused map is piecewise linear, and exactly linear
    # between x - h and x + h when neither perturbed forward changes a winner (same max cell, same
    # ReLU state), so those differences are exact up to float32 rounding of y. Coordinates whose
    # perturbation crosses a kink are skipped (and must be rare).
    n, h, w, cin, kh, kw, cout, sh, sw, pad, ph, pw, psh, psw, ppad = shape
    geom = dict(strides=(sh, sw), padding=pad, pool_size=(ph, pw),
                pool_strides=None if psh is None else (psh, psw), pool_padding=ppad)
    rng = np.random.default_rng(23)
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    k = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32)
    b = (rng.standard_normal(cout) * 2).astype(np.float32)
    y, at = ops.conv2d_relu_max_pool(x, k, b, **geom, winners=True)
    assert (at != NO_WINNER).any() and (at == NO_WINNER).any()
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **geom)
    gy = gy.astype(np.float64)
    step = 3e-3
    for name, arr, grad in (("x", x, gx), ("kernel", k, gk), ("bias", b, gb)):
        checked = 0
        for idx in np.ndindex(arr.shape):
            vals = []
            for sign in (1, -1):
                p = arr.copy()
                p[idx] += sign * np.float32(step)
                args = {"x": x, "kernel": k, "bias": b}
                args[name] = p
                yp, atp = ops.conv2d_relu_max_pool(args["x"], args["kernel"], args["bias"], **geom, winners=True)
                vals.append((float((yp.astype(np.float64) * gy).sum()), np.array_equal(atp, at),
                             float(p[idx]) - float(arr[idx])))
            (fp, same_p, dp), (fm, same_m, dm) = vals
            if not (same_p and same_m):
                continue
            checked += 1
            fd = (fp - fm) / (dp - dm)
            assert abs(fd - float(grad[idx])) <= 2e-3 * max(1.0, abs(fd)), \
                f"grad_{name}{idx}: op {float(grad[idx]):.6g}, finite difference {fd:.6g}"
        assert checked >= 0.8 * arr.size, f"only {checked} of {arr.size} {name} coordinates checkable"


def test_larger_batch_deterministic(ops):
    # Big enough to run on several threads and to group images in the backward; results must repeat
    # bit for bit and still match the reference.
    rng = np.random.default_rng(9)
    c = dict(n=24, h=16, w=15, cin=2, kh=3, kw=3, cout=32, sh=1, sw=1, pad="same", ph=3, pw=3, psh=2, psw=2,
             ppad="same", form="tuple")
    x = rng.standard_normal((24, 16, 15, 2)).astype(np.float32)
    k = rng.standard_normal((3, 3, 2, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    g = _geom(c)
    y, at = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g)
    for _ in range(2):
        y2, at2 = ops.conv2d_relu_max_pool(x, k, b, **g, winners=True)
        np.testing.assert_array_equal(y2, y)
        np.testing.assert_array_equal(at2, at)
        for a, a2 in zip(grads, ops.conv2d_relu_max_pool_backward(x, k, gy, at, **g)):
            np.testing.assert_array_equal(a2, a)
    st, pad, pool, ps, ppad = _ref_geom(c)
    ref.assert_close(y, ref.max_pool2d(ref.relu(ref.conv2d(x, k, b, st, pad)), pool, ps, ppad), "n=24 forward")
    for name, a, r in zip(("grad_x", "grad_kernel", "grad_bias"), grads, ref_backward(ops, x, k, b, gy, c)):
        ref.assert_close(a, r, f"n=24 {name}")


def test_results_do_not_depend_on_thread_count(tmp_path):
    # The fused kernels split work by images and fixed partial-sum groups, never by thread count.
    script = r"""
import sys
import numpy as np
from rconv import ops
rng = np.random.default_rng(8)
out = []
for (n, cin, cout) in ((40, 1, 32), (40, 5, 7)):
    x = rng.standard_normal((n, 12, 12, cin)).astype(np.float32)
    k = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y, at = ops.conv2d_relu_max_pool(x, k, b, 1, "same", 2, None, "valid", winners=True)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    out += [y, at, *ops.conv2d_relu_max_pool_backward(x, k, gy, at, 1, "same", 2, None, "valid")]
np.savez(sys.argv[1], *out)
"""
    results = arrays_per_thread_count(script, tmp_path)
    assert len(results[0]) == 10
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_empty_batch(ops):
    for cout in (16, 5):
        x = np.zeros((0, 6, 6, 1), np.float32)
        k = np.ones((3, 3, 1, cout), np.float32)
        y, at = ops.conv2d_relu_max_pool(x, k, None, 1, "valid", 2, None, "valid", winners=True)
        assert y.shape == at.shape == (0, 2, 2, cout)
        gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, y, at, 1, "valid", 2, None, "valid")
        assert gx.shape == x.shape and gk.shape == k.shape and gb.shape == (cout,)
        assert not gk.any() and not gb.any()


def test_empty_image_forward(ops):
    # zero-height / zero-width images with 'same' padding: an empty result, like max_pool2d
    for cout in (16, 5):
        k = np.ones((3, 3, 1, cout), np.float32)
        for shape, out in (((2, 0, 6, 1), (2, 0, 3, cout)), ((2, 6, 0, 1), (2, 3, 0, cout))):
            y, at = ops.conv2d_relu_max_pool(np.zeros(shape, np.float32), k, None, 1, "same", 2, None, "same",
                                             winners=True)
            assert y.shape == at.shape == out, (shape, y.shape, at.shape)


def test_empty_image_backward(ops):
    for cout in (16, 5):
        k = np.ones((3, 3, 1, cout), np.float32)
        for shape in ((2, 0, 6, 1), (2, 6, 0, 1)):
            x = np.zeros(shape, np.float32)
            y, at = ops.conv2d_relu_max_pool(x, k, None, 1, "same", 2, None, "same", winners=True)
            gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, y, at, 1, "same", 2, None, "same")
            assert gx.shape == x.shape and not gk.any() and not gb.any()


# --- bad input -----------------------------------------------------------------------------------------

FWD = "conv2d_relu_max_pool"
BWD = "conv2d_relu_max_pool_backward"


def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def expect(exc, fn, *args, op, words=(), **kwargs):
    """fn must raise exc (not crash, not panic) with a message naming op and every word."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert re.search(rf"\b{op}\b", msg), f"message does not name the op {op!r}: {msg!r}"
    for w in words:
        assert w in msg, f"message does not mention {w!r}: {msg!r}"
    return msg


@pytest.fixture(scope="module")
def good(ops):
    """A valid forward/backward setup: x (2,6,6,1), kernel (3,3,1,16), conv output 4x4x16, pool 2."""
    x, k = _f32(2, 6, 6, 1), _f32(3, 3, 1, 16, seed=1)
    y, at = ops.conv2d_relu_max_pool(x, k, None, 1, "valid", 2, None, "valid", winners=True)
    return x, k, y, at


def test_bad_input_forward(ops):
    x, k = _f32(2, 6, 6, 1), _f32(3, 3, 1, 16, seed=1)
    f = ops.conv2d_relu_max_pool
    expect(TypeError, f, x.astype(np.int32), k, op=FWD, words=["x", "int32"])
    expect(TypeError, f, x, k.astype(np.int64), op=FWD, words=["kernel"])
    expect(TypeError, f, x, k, np.zeros(16, np.int64), op=FWD, words=["bias"])
    expect(ValueError, f, x[0], k, op=FWD, words=["rank"])
    expect(ValueError, f, x[None], k, op=FWD, words=["rank"])
    expect(ValueError, f, x, k[0], op=FWD, words=["rank"])
    expect(ValueError, f, _f32(2, 6, 6, 2), k, op=FWD, words=["channels"])
    expect(ValueError, f, x, k, np.zeros(15, np.float32), op=FWD, words=["bias", "16"])
    expect(ValueError, f, x, k, np.zeros((1, 16), np.float32), op=FWD, words=["bias"])
    expect(ValueError, f, x, _f32(7, 3, 1, 16), op=FWD)  # kernel taller than the input, valid
    # the conv output is 4x4: a 5-high or 5-wide pool does not fit with 'valid' pool padding
    expect(ValueError, f, x, k, pool_size=5, op=FWD, words=["pool_size"])
    expect(ValueError, f, x, k, pool_size=(2, 5), op=FWD, words=["pool_size"])
    expect(ValueError, f, x, k, strides=2, pool_size=3, op=FWD, words=["pool_size"])  # conv output 2x2
    expect(ValueError, f, x, k, pool_size=0, op=FWD, words=["pool_size"])
    expect(ValueError, f, x, k, pool_strides=(1, 0), op=FWD, words=["strides"])
    expect(ValueError, f, x, k, strides=0, op=FWD, words=["strides"])
    expect(ValueError, f, x, k, padding="full", op=FWD, words=["padding"])
    expect(ValueError, f, x, k, pool_padding="full", op=FWD, words=["padding"])
    # ... while a pool larger than the conv output is fine with 'same' pool padding
    y, _ = f(x, k, None, 1, "valid", 5, None, "same")
    assert y.shape == (2, 1, 1, 16)


def test_bad_input_backward(ops, good):
    x, k, y, at = good
    f = ops.conv2d_relu_max_pool_backward
    geo = (1, "valid", 2, None, "valid")
    expect(TypeError, f, x.astype(np.int64), k, y, at, *geo, op=BWD, words=["x"])
    expect(TypeError, f, x, k, y.astype(np.int32), at, *geo, op=BWD, words=["grad_y"])
    expect(ValueError, f, x[0], k, y, at, *geo, op=BWD, words=["rank"])
    expect(ValueError, f, x, k[..., 0], y, at, *geo, op=BWD, words=["rank"])
    expect(ValueError, f, _f32(2, 6, 6, 3), k, y, at, *geo, op=BWD, words=["channels"])
    expect(ValueError, f, x, k, y, at, 1, "valid", 5, None, "valid", op=BWD, words=["pool_size"])
    # grad_y of the wrong shape
    expect(ValueError, f, x, k, y[..., :15], at, *geo, op=BWD, words=["grad_y"])
    expect(ValueError, f, x, k, y[:1], at, *geo, op=BWD, words=["grad_y"])
    expect(ValueError, f, x, k, y[..., None], at, *geo, op=BWD, words=["grad_y"])
    # grad_y and winners from another geometry (pool 1 instead of 2)
    y1, at1 = ops.conv2d_relu_max_pool(x, k, None, 1, "valid", 1, None, "valid", winners=True)
    expect(ValueError, f, x, k, y1, at1, *geo, op=BWD, words=["grad_y"])
    # winners of the wrong type / dtype
    for bad in (at.astype(np.int64), at.astype(np.int32), at.astype(np.float32), at.astype(np.uint64),
                at.tolist(), None):
        expect(TypeError, f, x, k, y, bad, *geo, op=BWD, words=["winners"])
    # winners of the wrong shape
    for bad in (at[:1], at[..., :15], at.reshape(2, 4, 16), at[..., None], at.reshape(-1)):
        expect(ValueError, f, x, k, y, bad, *geo, op=BWD, words=["winners"])
    # non-contiguous winners: ops copies them to C order (like every other array); the raw binding refuses them
    expect(ValueError, _rconv.conv2d_relu_max_pool_backward, x, k, y, at[:, :, ::-1], (1, 1), "valid", (2, 2), (2, 2),
           "valid", op=BWD, words=["winners"])
    for a, b in zip(f(x, k, y, at[:, :, ::-1], *geo), f(x, k, y, np.ascontiguousarray(at[:, :, ::-1]), *geo)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", [(0, 0, 0, 0), (1, 1, 1, 15)])
@pytest.mark.parametrize("value", [4 * 4 * 16, 4 * 4 * 16 + 1, 2 * 4 * 4 * 16, 0x7FFFFFFF, 0xFFFFFFFE])
def test_winners_out_of_range(ops, good, where, value):
    # Offsets index one image's conv output (4*4*16 = 256 values): 256 and beyond must be a ValueError
    # (not a crash, not a silent out-of-bounds write); 0xFFFFFFFF alone means "no winner".
    x, k, y, at = good
    bad = at.copy()
    bad[where] = value
    expect(ValueError, ops.conv2d_relu_max_pool_backward, x, k, y, bad, 1, "valid", 2, None, "valid",
           op=BWD, words=["winners"])


def test_winners_extreme_valid_values_accepted(ops, good):
    # The largest in-range offset and NO_WINNER are valid; the gradient follows them.
    x, k, y, at = good
    w = np.full_like(at, NO_WINNER)
    w[1, 0, 0, 15] = 4 * 4 * 16 - 1  # image 1, conv pixel (3, 3), channel 15
    gy = np.zeros_like(y)
    gy[1, 0, 0, 15] = 2.0
    gx, gk, gb = ops.conv2d_relu_max_pool_backward(x, k, gy, w, 1, "valid", 2, None, "valid")
    np.testing.assert_array_equal(gb, np.eye(16, dtype=np.float32)[15] * 2)
    ref.assert_close(gk[..., 15], 2 * x[1, 3:6, 3:6, :], "grad_kernel from one hand-set winner")
    exp_gx = np.zeros_like(x)
    exp_gx[1, 3:6, 3:6, :] = 2 * k[..., 15]
    ref.assert_close(gx, exp_gx, "grad_x from one hand-set winner")


def test_fortran_ordered_winners(ops, good):
    x, k, y, at = good
    gy = _f32(*y.shape, seed=3)
    expected = ops.conv2d_relu_max_pool_backward(x, k, gy, at, 1, "valid", 2, None, "valid")
    fortran = np.asfortranarray(at)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    try:
        got = ops.conv2d_relu_max_pool_backward(x, k, gy, fortran, 1, "valid", 2, None, "valid")
    except ValueError as e:  # refusing it cleanly is fine too
        assert BWD in str(e) and "winners" in str(e)
        return
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_batch_one_fused_forward_does_not_depend_on_thread_count(tmp_path):
    # With fewer images than threads the fused kernel splits the convolution over pixels instead of images:
    # the results must be the same bits as one thread's per-image path (direct and Winograd).
    from threads import arrays_per_thread_count
    script = r"""
import sys
import numpy as np
from rconv import _rconv, ops
rng = np.random.default_rng(0)
outs = []
for tile in (0, 2, 4):
    _rconv.set_winograd(tile > 0, tile)
    for h, ci, co in [(100, 3, 32), (49, 32, 64), (60, 16, 48)]:
        x = rng.standard_normal((1, h, h, ci), dtype=np.float32)
        k = rng.standard_normal((3, 3, ci, co), dtype=np.float32)
        y, at = ops.conv2d_relu_max_pool(x, k, rng.standard_normal(co, dtype=np.float32), winners=True)
        outs += [y, at]
np.savez(sys.argv[1], *outs)
"""
    one, three = arrays_per_thread_count(script, tmp_path)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)

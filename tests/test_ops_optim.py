"""In-place optimizer updates (Keras 3 formulas) against the float64 references, step by step."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref

SEED = 31337
N_CASES = 210


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


def h32(v: float) -> float:
    """A hyperparameter as the float32 kernel sees it."""
    return float(np.float32(v))


def assert_update(p_new, p_old, p_ref, what):
    """Compare the update itself (p_new - p_old), not just p_new: a small step is invisible next to p.

    Allowed error per element: 1e-4 relative to the reference step, 1e-4 of the largest step, and two
    float32 ulps of the parameter (the rounding of storing p + step in float32).
    """
    assert p_new.dtype == np.float32
    old = p_old.astype(np.float64)
    step, rstep = p_new.astype(np.float64) - old, p_ref - old
    scale = float(np.abs(rstep).max()) if rstep.size else 0.0
    ulp = np.spacing(np.maximum(np.abs(p_new), np.abs(p_ref)).astype(np.float32))
    allowed = 1e-4 * np.abs(rstep) + 1e-4 * scale + 2 * ulp
    err = np.abs(step - rstep)
    bad = err > allowed
    if bad.any():
        k = np.unravel_index(int(np.argmax(err - allowed)), err.shape)
        raise AssertionError(f"{what}: {int(bad.sum())}/{bad.size} elements off; worst at {tuple(map(int, k))}: "
                             f"step {step[k]:.7g} vs reference {rstep[k]:.7g} (param {old[k]:.7g}), "
                             f"max |error| {float(err.max()):.3e}")


def _shape(rng):
    if rng.random() < 0.05:
        return (int(rng.choice([16385, 40000, 70001])),)  # spans several parallel chunks
    rank = int(rng.integers(1, 5))
    return tuple(int(rng.integers(1, 9 if rank > 2 else 40)) for _ in range(rank))


def _cases(kind):
    rng = np.random.default_rng(SEED + {"sgd": 0, "rmsprop": 1, "adam": 2}[kind])
    cases = []
    for i in range(N_CASES):
        c = dict(shape=(1,) if i == 0 else (3, 3, 17, 33) if i == 1 else _shape(rng),
                 lr=float(rng.choice([1e-4, 1e-3, 1e-2, 0.1, 1.0])),
                 gscale=float(rng.choice([1e-4, 1e-2, 1.0, 100.0])),
                 steps=int(rng.integers(1, 5)), g64=bool(rng.random() < 0.2), fresh=bool(rng.random() < 0.3))
        if kind == "sgd":
            c["momentum"] = float(rng.choice([0.0, 0.0, 0.5, 0.9, 0.99]))
            c["nesterov"] = bool(rng.random() < 0.5)
        elif kind == "rmsprop":
            c["rho"] = float(rng.choice([0.0, 0.5, 0.9, 0.99]))
            c["eps"] = float(rng.choice([1e-7, 1e-7, 1e-3, 1.0]))
        else:
            c["b1"] = float(rng.choice([0.0, 0.5, 0.9, 0.9]))
            c["b2"] = float(rng.choice([0.9, 0.99, 0.999, 0.999, 0.9999]))
            c["eps"] = float(rng.choice([1e-7, 1e-7, 1e-3]))
            c["t0"] = 1 if c["fresh"] else int(rng.choice([1, 2, 3, 10, 100, 1000, 100000]))
        cases.append(c)
    return cases


def _ids(cases, kind):
    out = []
    for i, c in enumerate(cases):
        extra = {"sgd": lambda: f"mom{c['momentum']:g}{'-nesterov' if c['nesterov'] else ''}",
                 "rmsprop": lambda: f"rho{c['rho']:g}-eps{c['eps']:g}",
                 "adam": lambda: f"b1{c['b1']:g}-b2{c['b2']:g}-eps{c['eps']:g}-t{c['t0']}"}[kind]()
        out.append(f"{i:03d}-{'x'.join(map(str, c['shape']))}-lr{c['lr']:g}-g{c['gscale']:g}-{extra}-{c['steps']}steps"
                   f"{'-g64' if c['g64'] else ''}")
    return out


SGD, RMS, ADAM = _cases("sgd"), _cases("rmsprop"), _cases("adam")
SGD_IDS, RMS_IDS, ADAM_IDS = _ids(SGD, "sgd"), _ids(RMS, "rmsprop"), _ids(ADAM, "adam")


def _grad(rng, c):
    g = rng.standard_normal(c["shape"]) * c["gscale"]
    return g if c["g64"] else g.astype(np.float32)


@pytest.mark.parametrize("i", range(len(SGD)), ids=SGD_IDS)
def test_sgd_update(ops, i):
    c = SGD[i]
    rng = np.random.default_rng(SEED + 1000 + i)
    p = rng.standard_normal(c["shape"]).astype(np.float32)
    use_buf = c["momentum"] != 0.0
    m = (np.zeros(c["shape"], np.float32) if c["fresh"] else rng.standard_normal(c["shape"]).astype(np.float32) * 0.1) \
        if use_buf else None
    for s in range(c["steps"]):
        g = _grad(rng, c)
        p0, m0 = p.copy(), None if m is None else m.copy()
        ops.sgd_update(p, g, m, c["lr"], c["momentum"], c["nesterov"])
        rp, rm = ref.sgd_update(p0, g.astype(np.float32), m0, h32(c["lr"]), h32(c["momentum"]), c["nesterov"])
        what = f"sgd_update {SGD_IDS[i]} step {s + 1}"
        assert_update(p, p0, rp, what + " param")
        if use_buf:
            ref.assert_close(m, rm, what + " momentum_buf", floor=1e-30)


@pytest.mark.parametrize("i", range(len(RMS)), ids=RMS_IDS)
def test_rmsprop_update(ops, i):
    c = RMS[i]
    rng = np.random.default_rng(SEED + 2000 + i)
    p = rng.standard_normal(c["shape"]).astype(np.float32)
    v = np.zeros(c["shape"], np.float32) if c["fresh"] else \
        (rng.uniform(0, 2, c["shape"]) * c["gscale"] ** 2).astype(np.float32)
    for s in range(c["steps"]):
        g = _grad(rng, c)
        p0, v0 = p.copy(), v.copy()
        ops.rmsprop_update(p, g, v, c["lr"], c["rho"], c["eps"])
        rp, rv = ref.rmsprop_update(p0, g.astype(np.float32), v0, h32(c["lr"]), h32(c["rho"]), h32(c["eps"]))
        what = f"rmsprop_update {RMS_IDS[i]} step {s + 1}"
        assert_update(p, p0, rp, what + " param")
        ref.assert_close(v, rv, what + " velocity", floor=1e-30)


@pytest.mark.parametrize("i", range(len(ADAM)), ids=ADAM_IDS)
def test_adam_update(ops, i):
    c = ADAM[i]
    rng = np.random.default_rng(SEED + 3000 + i)
    p = rng.standard_normal(c["shape"]).astype(np.float32)
    if c["fresh"]:
        m, v = np.zeros(c["shape"], np.float32), np.zeros(c["shape"], np.float32)
    else:
        m = (rng.standard_normal(c["shape"]) * c["gscale"]).astype(np.float32)
        v = (rng.uniform(0, 2, c["shape"]) * c["gscale"] ** 2).astype(np.float32)
    for s in range(c["steps"]):
        t = c["t0"] + s
        g = _grad(rng, c)
        p0, m0, v0 = p.copy(), m.copy(), v.copy()
        ops.adam_update(p, g, m, v, c["lr"], c["b1"], c["b2"], c["eps"], t)
        rp, rm, rv = ref.adam_update(p0, g.astype(np.float32), m0, v0, h32(c["lr"]), h32(c["b1"]), h32(c["b2"]),
                                     h32(c["eps"]), t)
        what = f"adam_update {ADAM_IDS[i]} step {t}"
        assert_update(p, p0, rp, what + " param")
        ref.assert_close(m, rm, what + " m", floor=1e-30)
        ref.assert_close(v, rv, what + " v", floor=1e-30)


def test_optimizer_case_coverage():
    assert min(len(SGD), len(RMS), len(ADAM)) >= 200
    assert any(c["momentum"] == 0 for c in SGD) and any(c["momentum"] > 0 and c["nesterov"] for c in SGD)
    assert any(c["momentum"] > 0 and not c["nesterov"] for c in SGD)
    assert any(c["t0"] == 1 and c["fresh"] for c in ADAM) and any(c["t0"] >= 1000 for c in ADAM)
    assert any(c["shape"][0] > 16384 for c in SGD + RMS + ADAM)


# --- hand-computed single steps (Keras 3 numbers), so the reference itself is pinned down --------------

def test_reference_optimizer_hand_values():
    p, m = ref.sgd_update(np.array([1.0]), np.array([2.0]), np.array([0.5]), 0.1, 0.9, False)
    np.testing.assert_allclose(m, [0.9 * 0.5 - 0.2])
    np.testing.assert_allclose(p, [1.0 + 0.25])
    p, m = ref.sgd_update(np.array([1.0]), np.array([2.0]), np.array([0.5]), 0.1, 0.9, True)
    np.testing.assert_allclose(p, [1.0 + 0.9 * 0.25 - 0.2])
    p, _ = ref.sgd_update(np.array([1.0]), np.array([2.0]), None, 0.1)
    np.testing.assert_allclose(p, [0.8])
    p, v = ref.rmsprop_update(np.array([1.0]), np.array([2.0]), np.array([0.0]), 0.1, 0.9, 1e-7)
    np.testing.assert_allclose(v, [0.4])
    np.testing.assert_allclose(p, [1.0 - 0.2 / np.sqrt(0.4 + 1e-7)])
    # Adam's first step moves every coordinate by ~lr against the gradient's sign
    p, m, v = ref.adam_update(np.array([0.0, 0.0]), np.array([3.0, -0.01]), np.zeros(2), np.zeros(2), 0.01, step=1)
    np.testing.assert_allclose(p, [-0.01, 0.01], rtol=1e-3)  # eps = 1e-7 next to sqrt(v) = 3e-4 costs 3e-4
    np.testing.assert_allclose(m, [0.3, -0.001])
    np.testing.assert_allclose(v, [0.009, 1e-7])


def test_sgd_nesterov_sequence_matches_keras_closed_form(ops):
    # three steps with a constant gradient, worked out by hand from Keras's update rule
    p = np.array([1.0], np.float32)
    m = np.zeros(1, np.float32)
    lr, mu, g = 0.1, 0.5, np.array([1.0], np.float32)
    expected_m, expected_p, mm, pp = [], [], 0.0, 1.0
    for _ in range(3):
        mm = mu * mm - lr * 1.0
        pp = pp + mu * mm - lr * 1.0
        expected_m.append(mm)
        expected_p.append(pp)
    for k in range(3):
        ops.sgd_update(p, g, m, lr, mu, True)
        np.testing.assert_allclose(m, [expected_m[k]], rtol=1e-6)
        np.testing.assert_allclose(p, [expected_p[k]], rtol=1e-6)


def test_updates_are_in_place_and_return_none(ops):
    p = np.ones((4, 3), np.float32)
    buf_id = p.__array_interface__["data"][0]
    assert ops.sgd_update(p, np.ones((4, 3)), None, 0.5) is None
    assert p.__array_interface__["data"][0] == buf_id
    np.testing.assert_allclose(p, 0.5)
    v = np.zeros_like(p)
    assert ops.rmsprop_update(p, np.ones((4, 3), np.float32), v, 0.1) is None
    assert np.all(v > 0) and np.all(p < 0.5)
    m, v = np.zeros_like(p), np.zeros_like(p)
    assert ops.adam_update(p, np.ones((4, 3), np.float32), m, v, 0.1) is None
    assert np.all(m > 0) and np.all(v > 0)


def test_update_into_a_view_of_a_larger_buffer(ops):
    # a contiguous slice of a flat parameter buffer (how a model may pack its weights) must be updated in place
    flat = np.zeros(20, np.float32)
    view = flat[5:15].reshape(2, 5)
    ops.sgd_update(view, np.ones((2, 5), np.float32), None, 1.0)
    np.testing.assert_array_equal(flat[5:15], -1.0)
    assert np.all(flat[:5] == 0) and np.all(flat[15:] == 0)

"""Losses: each returns (batch-mean loss, gradient of that mean), checked against the references."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from reference import r32 as R

SEED = 9090
N_CASES = 220
GRAD_FLOOR = 1e-6  # loss gradients are O(1/size): let the absolute tolerance follow their own scale


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


def _check(ops_out, ref_out, what):
    loss, grad = ops_out
    rloss, rgrad = ref_out
    assert np.ndim(loss) == 0, f"{what}: loss must be a scalar, got {type(loss)} {np.shape(loss)}"
    assert np.isfinite(loss) or not np.isfinite(rloss), f"{what}: loss {loss} is not finite (ref {rloss})"
    ref.assert_close(np.float64(loss), np.float64(rloss), f"{what} loss")
    assert isinstance(grad, np.ndarray) and grad.dtype == np.float32, f"{what}: grad must be a float32 array"
    ref.assert_close(grad, rgrad, f"{what} grad", floor=GRAD_FLOOR)


def _onehot_or_soft(rng, n, c, form):
    ids = rng.integers(0, c, n)
    if form == "ids64":
        return ids.astype(np.int64)
    if form == "ids32":
        return ids.astype(np.int32)
    if form == "idsu8":
        return ids.astype(np.uint8)
    if form == "list":
        return [int(i) for i in ids]
    if form == "onehot":
        return ref.one_hot(ids, c).astype(np.float32)
    if form == "onehot64":
        return ref.one_hot(ids, c)
    if form == "soft":  # rows sum to one
        t = rng.dirichlet(np.ones(c), n)
        return (t / t.sum(1, keepdims=True)).astype(np.float32)
    raise ValueError(form)


LABEL_FORMS = ["ids64", "ids32", "idsu8", "list", "onehot", "onehot64", "soft"]


# --- softmax_cross_entropy --------------------------------------------------------------------------

def _sce_cases():
    rng = np.random.default_rng(SEED)
    cases = [dict(n=1, c=1, scale=1.0, form="ids64"), dict(n=3, c=1, scale=1.0, form="onehot"),
             dict(n=1, c=2, scale=100.0, form="ids64"), dict(n=4, c=10, scale=1000.0, form="onehot"),
             dict(n=64, c=10, scale=3.0, form="ids64"), dict(n=5, c=257, scale=5.0, form="soft"),
             dict(n=2, c=3, scale=0.0, form="soft")]
    for f in LABEL_FORMS:
        cases.append(dict(n=7, c=5, scale=2.0, form=f))
    while len(cases) < N_CASES:
        cases.append(dict(n=int(rng.integers(1, 33)), c=int(rng.choice([2, 3, 4, 5, 7, 10, 17, 33])),
                          scale=float(rng.choice([0.1, 1.0, 3.0, 10.0, 50.0])), form=str(rng.choice(LABEL_FORMS))))
    return cases


SCE = _sce_cases()
SCE_IDS = [f"{i:03d}-n{c['n']}-c{c['c']}-scale{c['scale']:g}-{c['form']}" for i, c in enumerate(SCE)]


@pytest.mark.parametrize("i", range(len(SCE)), ids=SCE_IDS)
def test_softmax_cross_entropy(ops, i):
    c = SCE[i]
    rng = np.random.default_rng(SEED + 1000 + i)
    z = (rng.standard_normal((c["n"], c["c"])) * c["scale"]).astype(np.float32)
    y = _onehot_or_soft(rng, c["n"], c["c"], c["form"])
    _check(ops.softmax_cross_entropy(z, y), ref.softmax_cross_entropy(z, y), f"softmax_cross_entropy {SCE_IDS[i]}")


# --- sigmoid_cross_entropy / binary_cross_entropy / mean_squared_error: shapes and labels ------------

def _elementwise_cases(seed):
    rng = np.random.default_rng(seed)
    cases = [dict(shape=(1, 1)), dict(shape=(5, 1)), dict(shape=(1, 9)), dict(shape=(7,)), dict(shape=(2, 3, 4)),
             dict(shape=(3, 4, 4, 2)), dict(shape=(64, 10)), dict(shape=(1000, 1))]
    while len(cases) < N_CASES:
        rank = int(rng.choice([1, 2, 2, 2, 3]))
        cases.append(dict(shape=tuple(int(rng.integers(1, 17 if rank < 3 else 6)) for _ in range(rank))))
    for c in cases:
        c["soft"] = bool(rng.random() < 0.4)
        c["f64"] = bool(rng.random() < 0.2)
        c["scale"] = float(rng.choice([0.5, 2.0, 10.0, 40.0]))
        c["clip"] = bool(rng.random() < 0.3)
    return cases


ELEM = _elementwise_cases(SEED + 1)
ELEM_IDS = [f"{i:03d}-{'x'.join(map(str, c['shape']))}{'-soft' if c['soft'] else ''}{'-f64' if c['f64'] else ''}"
            for i, c in enumerate(ELEM)]


def _labels01(rng, c):
    y = rng.uniform(0, 1, c["shape"]) if c["soft"] else rng.integers(0, 2, c["shape"]).astype(float)
    return y.astype(np.float64 if c["f64"] else np.float32)


@pytest.mark.parametrize("i", range(len(ELEM)), ids=ELEM_IDS)
def test_sigmoid_cross_entropy(ops, i):
    c = ELEM[i]
    rng = np.random.default_rng(SEED + 2000 + i)
    z = (rng.standard_normal(c["shape"]) * c["scale"]).astype(np.float64 if c["f64"] else np.float32)
    y = _labels01(rng, c)
    _check(ops.sigmoid_cross_entropy(z, y), ref.sigmoid_cross_entropy(R(z), R(y)),
           f"sigmoid_cross_entropy {ELEM_IDS[i]} scale {c['scale']}")


def _probs01(rng, c):
    p = rng.uniform(0.001, 0.999, c["shape"])
    if c["clip"]:  # saturated predictions: exactly 0 / 1 and values beyond the clip
        mask = rng.random(c["shape"])
        p[mask < 0.15] = 0.0
        p[(mask >= 0.15) & (mask < 0.3)] = 1.0
        p[(mask >= 0.3) & (mask < 0.35)] = 1e-9
    return p.astype(np.float64 if c["f64"] else np.float32)


@pytest.mark.parametrize("i", range(len(ELEM)),
                         ids=[s + ("-clip" if c["clip"] else "") for s, c in zip(ELEM_IDS, ELEM)])
def test_binary_cross_entropy(ops, i):
    c = ELEM[i]
    rng = np.random.default_rng(SEED + 3000 + i)
    p = _probs01(rng, c)
    y = _labels01(rng, c)
    _check(ops.binary_cross_entropy(p, y), ref.binary_cross_entropy(R(p), R(y)), f"binary_cross_entropy {ELEM_IDS[i]}")


@pytest.mark.parametrize("i", range(len(ELEM)), ids=ELEM_IDS)
def test_mean_squared_error(ops, i):
    c = ELEM[i]
    rng = np.random.default_rng(SEED + 4000 + i)
    dt = np.float64 if c["f64"] else np.float32
    p = (rng.standard_normal(c["shape"]) * c["scale"]).astype(dt)
    t = (rng.standard_normal(c["shape"]) * c["scale"]).astype(dt)
    _check(ops.mean_squared_error(p, t), ref.mean_squared_error(R(p), R(t)), f"mean_squared_error {ELEM_IDS[i]}")


# --- categorical_cross_entropy on probabilities -------------------------------------------------------

def _cce_cases():
    rng = np.random.default_rng(SEED + 5)
    cases = [dict(n=1, c=1, kind="uniform", form="ids64"), dict(n=3, c=1, kind="uniform", form="onehot"),
             dict(n=4, c=3, kind="onehot_probs", form="ids64"), dict(n=4, c=3, kind="zeros", form="onehot"),
             dict(n=64, c=10, kind="softmax", form="ids64"), dict(n=5, c=100, kind="uniform", form="soft")]
    for f in LABEL_FORMS:
        cases.append(dict(n=6, c=4, kind="softmax", form=f))
    kinds = ["uniform", "uniform", "softmax", "softmax", "zeros", "tiny", "onehot_probs"]
    while len(cases) < N_CASES:
        cases.append(dict(n=int(rng.integers(1, 33)), c=int(rng.choice([2, 3, 4, 5, 7, 10, 17])),
                          kind=str(rng.choice(kinds)),
                          form=str(rng.choice(LABEL_FORMS))))
    return cases


CCE = _cce_cases()
CCE_IDS = [f"{i:03d}-n{c['n']}-c{c['c']}-{c['kind']}-{c['form']}" for i, c in enumerate(CCE)]


def _cce_probs(rng, c):
    n, k = c["n"], c["c"]
    if c["kind"] == "uniform":      # unnormalised: Keras renormalises the rows
        p = rng.uniform(0.05, 1.0, (n, k))
    elif c["kind"] == "softmax":
        p = ref.softmax(rng.standard_normal((n, k)) * 2)
    elif c["kind"] == "zeros":      # some exact zeros: clipped from below
        p = rng.uniform(0.05, 1.0, (n, k))
        p[rng.random((n, k)) < 0.3] = 0.0
        p[:, 0] = np.maximum(p[:, 0], 0.1)  # keep every row's sum positive
    elif c["kind"] == "tiny":       # below the clip after renormalising, but not zero
        p = rng.uniform(0.05, 1.0, (n, k))
        p[rng.random((n, k)) < 0.3] = 1e-10
    elif c["kind"] == "onehot_probs":  # saturated: one entry 1, others 0 (clipped both ways)
        p = ref.one_hot(rng.integers(0, k, n), k)
    else:
        raise ValueError(c["kind"])
    return p.astype(np.float32)


@pytest.mark.parametrize("i", range(len(CCE)), ids=CCE_IDS)
def test_categorical_cross_entropy(ops, i):
    c = CCE[i]
    rng = np.random.default_rng(SEED + 6000 + i)
    p = _cce_probs(rng, c)
    y = _onehot_or_soft(rng, c["n"], c["c"], c["form"])
    _check(ops.categorical_cross_entropy(p, y), ref.categorical_cross_entropy(p, y),
           f"categorical_cross_entropy {CCE_IDS[i]}")


# --- the references themselves ------------------------------------------------------------------------

def test_reference_losses_match_finite_differences():
    rng = np.random.default_rng(12)
    n, c = 4, 5
    ids = rng.integers(0, c, n)
    soft = rng.dirichlet(np.ones(c), n)
    z = rng.standard_normal((n, c)) * 2
    for y in (ids, ref.one_hot(ids, c), soft):
        _, g = ref.softmax_cross_entropy(z, y)
        np.testing.assert_allclose(g, ref.numeric_grad(lambda v: ref.softmax_cross_entropy(v, y)[0], z), atol=1e-8)
        p = rng.uniform(0.05, 1.0, (n, c))  # unnormalised, unclipped
        _, g = ref.categorical_cross_entropy(p, y)
        np.testing.assert_allclose(g, ref.numeric_grad(lambda v: ref.categorical_cross_entropy(v, y)[0], p),
                                   rtol=1e-6, atol=1e-8)
    y01 = rng.integers(0, 2, (n, c)).astype(float)
    ysoft = rng.uniform(0, 1, (n, c))
    for y in (y01, ysoft):
        _, g = ref.sigmoid_cross_entropy(z, y)
        np.testing.assert_allclose(g, ref.numeric_grad(lambda v: ref.sigmoid_cross_entropy(v, y)[0], z), atol=1e-8)
        p = rng.uniform(0.01, 0.99, (n, c))
        _, g = ref.binary_cross_entropy(p, y)
        np.testing.assert_allclose(g, ref.numeric_grad(lambda v: ref.binary_cross_entropy(v, y)[0], p),
                                   rtol=1e-6, atol=1e-8)
        _, g = ref.mean_squared_error(z, y)
        np.testing.assert_allclose(g, ref.numeric_grad(lambda v: ref.mean_squared_error(v, y)[0], z), atol=1e-8)
    # clipped entries: the loss is flat there, so finite differences (with a step that stays inside
    # the clipped region) give zero, and the renormalisation term still reaches them in CCE
    def fd_mixed(f, p, clipped):  # tiny steps at clipped entries, ordinary steps elsewhere
        return np.where(clipped, ref.numeric_grad(f, p, h=1e-13), ref.numeric_grad(f, p))

    p = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [1e-12, 0.3, 0.7]])
    y = np.array([1, 0, 2])
    _, g = ref.categorical_cross_entropy(p, y)
    f = lambda v: ref.categorical_cross_entropy(v, y)[0]  # noqa: E731
    np.testing.assert_allclose(g, fd_mixed(f, p, (p < 1e-9) | (p == 1)), rtol=1e-5, atol=1e-3)
    p = np.array([[0.0, 1.0, 1e-12, 0.5]])
    y = np.array([[1.0, 0.0, 0.0, 1.0]])
    _, g = ref.binary_cross_entropy(p, y)
    f = lambda v: ref.binary_cross_entropy(v, y)[0]  # noqa: E731
    np.testing.assert_allclose(g, fd_mixed(f, p, (p < 1e-9) | (p == 1)), rtol=1e-5, atol=1e-3)
    assert g[0, 0] == g[0, 1] == g[0, 2] == 0.0
    # hand values: log(2) for a fair coin, Keras's clip value for a confident miss
    np.testing.assert_allclose(ref.sigmoid_cross_entropy(np.zeros((1, 1)), np.ones((1, 1)))[0], np.log(2))
    np.testing.assert_allclose(ref.binary_cross_entropy(np.zeros((1, 1)), np.ones((1, 1)))[0],
                               -np.log(np.float32(1e-7)))


def test_loss_case_coverage():
    assert min(len(SCE), len(ELEM), len(CCE)) >= 200
    assert {c["form"] for c in SCE} >= set(LABEL_FORMS) and {c["form"] for c in CCE} >= set(LABEL_FORMS)
    assert any(c["n"] == 1 for c in SCE) and any(c["n"] == 1 for c in CCE)
    assert {c["kind"] for c in CCE} >= {"uniform", "softmax", "zeros", "tiny", "onehot_probs"}
    assert any(c["clip"] for c in ELEM) and any(len(c["shape"]) != 2 for c in ELEM)


# --- specific behaviours --------------------------------------------------------------------------------

def test_softmax_cross_entropy_ids_equal_one_hot(ops):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((9, 6)).astype(np.float32)
    ids = rng.integers(0, 6, 9)
    a, ga = ops.softmax_cross_entropy(z, ids)
    b, gb = ops.softmax_cross_entropy(z, ref.one_hot(ids, 6))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-6, atol=1e-9)
    a, ga = ops.categorical_cross_entropy(ref.softmax(z), ids)
    b, gb = ops.categorical_cross_entropy(ref.softmax(z), ref.one_hot(ids, 6))
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ga, gb, rtol=1e-6, atol=1e-9)


def test_softmax_cross_entropy_stable_for_huge_logits(ops):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=np.float32)
    loss, g = ops.softmax_cross_entropy(z, np.array([1, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(g)), (loss, g)
    _check((loss, g), ref.softmax_cross_entropy(z, np.array([1, 1])), "softmax_cross_entropy huge logits")


def test_sigmoid_cross_entropy_stable_for_huge_logits(ops):
    z = np.array([[100.0, -100.0, 1e4, -1e4]], dtype=np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    loss, g = ops.sigmoid_cross_entropy(z, y)
    assert np.isfinite(loss) and np.all(np.isfinite(g)), (loss, g)
    _check((loss, g), ref.sigmoid_cross_entropy(z, y), "sigmoid_cross_entropy huge logits")


def test_bce_saturated_predictions_are_finite(ops):
    p = np.array([[0.0, 1.0, 0.0, 1.0]], dtype=np.float32)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=np.float32)
    loss, g = ops.binary_cross_entropy(p, y)
    assert np.isfinite(loss) and np.all(g == 0), (loss, g)
    _check((loss, g), ref.binary_cross_entropy(p, y), "binary_cross_entropy saturated")

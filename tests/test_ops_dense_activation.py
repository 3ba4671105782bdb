"""dense / dense_backward and relu / sigmoid / softmax (forward and backward) against the references."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from reference import r32 as R

SEED = 4242
N_RANDOM = 220


@pytest.fixture(scope="module")
def ops():
    from rconv import ops as _ops  # an import failure must fail the tests, not skip them
    return _ops


# --- dense cases --------------------------------------------------------------------------------------

DENSE_EDGE = [  # (n, in, out)
    (1, 1, 1), (1, 5, 1), (1, 1, 7), (3, 1, 1), (1, 33, 17), (2, 17, 33), (16, 8, 4), (17, 8, 4),
    (33, 20, 10), (64, 100, 10), (50, 3, 65), (5, 257, 3),
]


def _dense_cases():
    rng = np.random.default_rng(SEED)
    cases = [dict(n=n, fin=i, fout=o, bias=True, f64=False) for n, i, o in DENSE_EDGE]
    while len(cases) < len(DENSE_EDGE) + N_RANDOM:
        cases.append(dict(n=int(rng.choice([1, 2, 3, 5, 8, 16, 17, 31])), fin=int(rng.integers(1, 41)),
                          fout=int(rng.integers(1, 41)), bias=bool(rng.random() < 0.7), f64=bool(rng.random() < 0.2)))
    return cases


DENSE = _dense_cases()
DENSE_IDS = [f"{i:03d}-n{c['n']}-in{c['fin']}-out{c['fout']}{'-b' if c['bias'] else ''}{'-f64' if c['f64'] else ''}"
             for i, c in enumerate(DENSE)]


def _dense_inputs(i, c):
    rng = np.random.default_rng(SEED + 1000 + i)
    dt = np.float64 if c["f64"] else np.float32
    x = rng.standard_normal((c["n"], c["fin"])).astype(dt)
    k = rng.standard_normal((c["fin"], c["fout"])).astype(dt)
    b = rng.standard_normal(c["fout"]).astype(dt) if c["bias"] else None
    gy = rng.standard_normal((c["n"], c["fout"])).astype(dt)
    return x, k, b, gy


def test_reference_dense_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    for n, fin, fout in ((1, 1, 1), (3, 4, 5), (4, 7, 2)):
        x, k, b = rng.standard_normal((n, fin)), rng.standard_normal((fin, fout)), rng.standard_normal(fout)
        gy = rng.standard_normal((n, fout))
        gx, gk, gb = ref.dense_backward(x, k, gy)
        np.testing.assert_allclose(gx, ref.numeric_grad(lambda v: (ref.dense(v, k, b) * gy).sum(), x),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(gk, ref.numeric_grad(lambda v: (ref.dense(x, v, b) * gy).sum(), k),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(gb, ref.numeric_grad(lambda v: (ref.dense(x, k, v) * gy).sum(), b),
                                   rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("i", range(len(DENSE)), ids=DENSE_IDS)
def test_dense_forward(ops, i):
    c = DENSE[i]
    x, k, b, _ = _dense_inputs(i, c)
    y = ops.dense(x, k, b)
    assert y.dtype == np.float32, f"dense {DENSE_IDS[i]}: dtype {y.dtype}"
    ref.assert_close(y, ref.dense(R(x), R(k), R(b)), f"dense {DENSE_IDS[i]}")


@pytest.mark.parametrize("i", range(len(DENSE)), ids=DENSE_IDS)
def test_dense_backward(ops, i):
    c = DENSE[i]
    x, k, _, gy = _dense_inputs(i, c)
    out = ops.dense_backward(x, k, gy)
    assert len(out) == 3, f"dense_backward must return (grad_x, grad_kernel, grad_bias), got {len(out)} items"
    for name, a, r in zip(("grad_x", "grad_kernel", "grad_bias"), out, ref.dense_backward(R(x), R(k), R(gy))):
        ref.assert_close(a, r, f"dense_backward {name} {DENSE_IDS[i]}")


def test_dense_deterministic_and_large(ops):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 300)).astype(np.float32)
    k = rng.standard_normal((300, 70)).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    y = ops.dense(x, k, b)
    ref.assert_close(y, R(x) @ R(k) + R(b), "dense n=200 in=300 out=70")
    np.testing.assert_array_equal(ops.dense(x, k, b), y)
    gy = rng.standard_normal((200, 70)).astype(np.float32)
    gx, gk, gb = ops.dense_backward(x, k, gy)
    ref.assert_close(gx, R(gy) @ R(k).T, "dense_backward grad_x n=200 in=300 out=70")
    ref.assert_close(gk, R(x).T @ R(gy), "dense_backward grad_kernel n=200 in=300 out=70")
    ref.assert_close(gb, R(gy).sum(0), "dense_backward grad_bias n=200 in=300 out=70")


@pytest.mark.parametrize("n,fin,fout", [(32, 1100, 130), (49, 513, 64), (97, 40, 200), (20, 1025, 17),
                                         (1, 600, 65), (48, 512, 1), (4, 513, 70), (5, 257, 9), (2, 1, 3),
                                         (3, 256, 1), (1, 12800, 64), (256, 1030, 48), (257, 1030, 48),
                                         (300, 520, 130), (5, 1100, 20), (4, 1100, 20)])
def test_dense_work_split_boundaries(ops, n, fin, fout):
    # forward: up to 256 rows, blocks of 512 kernel rows (256 up to 4 rows; matrix-vector products when the
    # width is not a multiple of 16) summed in order; above, row blocks of 48 x column strips of 64 x depth
    # slices of 512. Backward: batches not a multiple of 16
    rng = np.random.default_rng(n * 7 + fin + fout)
    x, k = rng.standard_normal((n, fin)).astype(np.float32), rng.standard_normal((fin, fout)).astype(np.float32)
    b, gy = rng.standard_normal(fout).astype(np.float32), rng.standard_normal((n, fout)).astype(np.float32)
    what = f"n={n} in={fin} out={fout}"
    z = R(x) @ R(k) + R(b)
    ref.assert_close(ops.dense(x, k, b), z, f"dense {what}")
    y = ops.dense(x, k, b, activation="relu")
    ref.assert_close(y, np.maximum(z, 0), f"dense relu {what}")
    gx, gk, gb = ops.dense_backward(x, k, gy, relu_output=y)
    g = R(gy) * (R(y) > 0)
    ref.assert_close(gx, g @ R(k).T, f"dense_backward grad_x {what}")
    ref.assert_close(gk, R(x).T @ g, f"dense_backward grad_kernel {what}")
    ref.assert_close(gb, g.sum(0), f"dense_backward grad_bias {what}")
    assert ops.dense_backward(x, k, gy, need_grad_x=False)[0] is None


def test_dense_results_do_not_depend_on_thread_count(tmp_path):
    from threads import arrays_per_thread_count
    script = r"""
import sys
import numpy as np
from rconv import ops
rng = np.random.default_rng(3)
x = rng.standard_normal((50, 1300)).astype(np.float32)
k = rng.standard_normal((1300, 200)).astype(np.float32)
gy = rng.standard_normal((50, 200)).astype(np.float32)
b = rng.standard_normal(200).astype(np.float32)
x3 = rng.standard_normal((300, 1300)).astype(np.float32)
np.savez(sys.argv[1], ops.dense(x, k, b, activation="relu"), *ops.dense_backward(x, k, gy),
         ops.dense(x[:1], k, b), ops.dense(x[:3], k, None, activation="relu"), ops.dense(x3, k, b))
"""
    for a, b in zip(*arrays_per_thread_count(script, tmp_path)):
        np.testing.assert_array_equal(a, b)


# --- activation cases ---------------------------------------------------------------------------------

ACT_EDGE = [  # (shape, scale)
    ((1,), 1.0), ((7,), 1.0), ((1, 1), 1.0), ((3, 1), 3.0), ((2, 5), 1.0), ((4, 10), 30.0), ((4, 10), 100.0),
    ((2, 3, 4, 5), 1.0), ((2, 4, 4, 17), 5.0), ((1, 33), 50.0), ((5, 1000), 10.0), ((3, 10000), 3.0),
    ((40000,), 10.0), ((2000, 10), 20.0), ((2, 2, 2, 2), 200.0),
]


def _act_cases():
    rng = np.random.default_rng(SEED + 1)
    cases = [dict(shape=s, scale=sc, f64=False) for s, sc in ACT_EDGE]
    while len(cases) < len(ACT_EDGE) + N_RANDOM:
        rank = int(rng.integers(1, 5))
        shape = tuple(int(rng.integers(1, 9 if rank > 2 else 40)) for _ in range(rank))
        scale = float(rng.choice([0.5, 1.0, 3.0, 10.0, 60.0]))
        cases.append(dict(shape=shape, scale=scale, f64=bool(rng.random() < 0.2)))
    return cases


ACTS = _act_cases()
ACT_IDS = [f"{i:03d}-{'x'.join(map(str, c['shape']))}-scale{c['scale']:g}{'-f64' if c['f64'] else ''}"
           for i, c in enumerate(ACTS)]


def _act_inputs(i, c):
    rng = np.random.default_rng(SEED + 2000 + i)
    dt = np.float64 if c["f64"] else np.float32
    x = (rng.standard_normal(c["shape"]) * c["scale"]).astype(dt)
    gy = rng.standard_normal(c["shape"]).astype(dt)
    return x, gy


def test_reference_activation_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    for shape in ((5,), (3, 4), (2, 3, 6)):
        x = rng.standard_normal(shape) * 2
        x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink out of the finite differences
        g = rng.standard_normal(shape)
        np.testing.assert_allclose(ref.relu_backward(x, g),
                                   ref.numeric_grad(lambda v: (ref.relu(v) * g).sum(), x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ref.sigmoid_backward(ref.sigmoid(x), g),
                                   ref.numeric_grad(lambda v: (ref.sigmoid(v) * g).sum(), x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ref.softmax_backward(ref.softmax(x), g),
                                   ref.numeric_grad(lambda v: (ref.softmax(v) * g).sum(), x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ref.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])),
                               [[0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(ref.sigmoid(np.array([-800.0, 0.0, 800.0])), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("i", range(len(ACTS)), ids=ACT_IDS)
def test_relu(ops, i):
    x, gy = _act_inputs(i, ACTS[i])
    ref.assert_close(ops.relu(x), ref.relu(R(x)), f"relu {ACT_IDS[i]}")
    ref.assert_close(ops.relu_backward(x, gy), ref.relu_backward(R(x), R(gy)), f"relu_backward {ACT_IDS[i]}")


@pytest.mark.parametrize("i", range(len(ACTS)), ids=ACT_IDS)
def test_sigmoid(ops, i):
    x, gy = _act_inputs(i, ACTS[i])
    y = ops.sigmoid(x)
    ref.assert_close(y, ref.sigmoid(R(x)), f"sigmoid {ACT_IDS[i]}")
    assert np.all((y >= 0) & (y <= 1)), f"sigmoid {ACT_IDS[i]}: output outside [0, 1]"
    ys = R(ref.sigmoid(R(x)))  # the float32 output the layer would save
    ref.assert_close(ops.sigmoid_backward(ys.astype(x.dtype), gy), ref.sigmoid_backward(ys, R(gy)),
                     f"sigmoid_backward {ACT_IDS[i]}")


@pytest.mark.parametrize("i", range(len(ACTS)), ids=ACT_IDS)
def test_softmax(ops, i):
    x, gy = _act_inputs(i, ACTS[i])
    y = ops.softmax(x)
    ref.assert_close(y, ref.softmax(R(x)), f"softmax {ACT_IDS[i]}")
    assert np.all(np.isfinite(y)), f"softmax {ACT_IDS[i]}: non-finite output"
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=0, atol=1e-5,
                               err_msg=f"softmax {ACT_IDS[i]}: rows must sum to 1")
    ys = R(ref.softmax(R(x)))
    ref.assert_close(ops.softmax_backward(ys.astype(x.dtype), gy), ref.softmax_backward(ys, R(gy)),
                     f"softmax_backward {ACT_IDS[i]}")


def test_activation_dtypes(ops):
    x = np.linspace(-3, 3, 12).reshape(3, 4)  # float64 in
    for f in (ops.relu, ops.sigmoid, ops.softmax):
        y = f(x)
        assert y.dtype == np.float32 and y.shape == x.shape, (f.__name__, y.dtype, y.shape)
    for f in (ops.relu_backward, ops.sigmoid_backward, ops.softmax_backward):
        g = f(x, np.ones_like(x))
        assert g.dtype == np.float32 and g.shape == x.shape, (f.__name__, g.dtype, g.shape)


def test_activation_extremes(ops):
    x = np.array([[-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4]], dtype=np.float32)
    y = ops.sigmoid(x)
    assert np.all(np.isfinite(y)), y
    ref.assert_close(y, ref.sigmoid(x), "sigmoid extremes")
    s = ops.softmax(x)
    assert np.all(np.isfinite(s)), s
    ref.assert_close(s, ref.softmax(x), "softmax extremes")
    np.testing.assert_array_equal(ops.relu(x), np.maximum(x, 0))
    # ReLU's gradient at exactly 0 is 0 (like TF)
    np.testing.assert_array_equal(ops.relu_backward(np.array([0.0, -0.0], np.float32), np.ones(2, np.float32)), [0, 0])

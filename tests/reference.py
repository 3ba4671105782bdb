"""Independent float64 NumPy references for the ops in ``rconv.ops``.

Written plainly (explicit loops over output positions) so they are easy to check by eye; they never
call ``rconv``. Every backward here is derived on its own (scatter per output position), not through
the forward, and ``tests/test_ops_*.py`` check each backward against finite differences of its
forward once, so a wrong reference cannot hide a wrong kernel.

The references compute in float64 on exactly what they are given; tests pass them ``r32(x)`` (the
float32-rounded inputs the kernels see). Also holds the shared test helpers (tolerance check,
finite differences).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

EPS_KERAS = 1e-7  # keras.backend.epsilon()
# Keras clips float32 probabilities to [1e-7, 1 - 1e-7] computed in float32: 1 - 1e-7 rounds to
# 1 - 2**-23 there, so log(1 - p_max) is log(1.19e-7), not log(1e-7). The references use those bounds.
CLIP_LO = float(np.float32(EPS_KERAS))
CLIP_HI = float(np.float32(1.0) - np.float32(EPS_KERAS))


# --- helpers ---------------------------------------------------------------------------------------

def as_pair(v) -> Tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def f64(a) -> np.ndarray:
    """float64 copy (no rounding: the finite-difference checks perturb float64 inputs)."""
    return np.array(a, dtype=np.float64)


def r32(a) -> np.ndarray:
    """The exact values a float32 kernel sees, in float64: tests pass these to the references."""
    if a is None:
        return None
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def assert_close(actual, ref, what: str, rtol: float = 1e-4, atol_scale: float = 1e-4, floor: float = 1.0) -> None:
    """rtol 1e-4 plus an absolute tolerance of 1e-4 * max(floor, max|ref|) (float32 sums).

    floor=1 suits values of order one; small gradients (losses) pass a small floor so the absolute
    tolerance follows their own scale.
    """
    actual = np.asarray(actual)
    ref = np.asarray(ref, dtype=np.float64)
    assert actual.shape == ref.shape, f"{what}: shape {actual.shape} != reference shape {ref.shape}"
    scale = max(floor, float(np.abs(ref).max())) if ref.size else floor
    atol = atol_scale * scale
    if actual.size:
        err = np.abs(actual.astype(np.float64) - ref)
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        detail = (f"{what}: max abs error {float(err.max()):.3e} at {tuple(int(i) for i in worst)} "
                  f"(got {float(actual[worst]):.7g}, ref {float(ref[worst]):.7g}; atol {atol:.2e}, rtol {rtol})")
    else:
        detail = what
    np.testing.assert_allclose(actual.astype(np.float64), ref, rtol=rtol, atol=atol, err_msg=detail)


def numeric_grad(f, x: np.ndarray, h: float = 1e-6, indices=None) -> np.ndarray:
    """Central finite differences of the scalar function f at x (float64).

    Every entry by default (same shape as x); with `indices` (flat indices into x) only those
    entries, returned as a 1-D array aligned with `indices`.
    """
    x = np.array(x, dtype=np.float64)
    flat = x.reshape(-1)  # a view: writing flat[i] perturbs x
    chosen = range(flat.size) if indices is None else [int(i) for i in indices]
    g = np.zeros(len(chosen))
    for k, i in enumerate(chosen):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        g[k] = (fp - fm) / (2 * h)
    return g.reshape(x.shape) if indices is None else g


# --- padding (TensorFlow rule) ----------------------------------------------------------------------

def out_and_pad(n: int, k: int, s: int, padding: str) -> Tuple[int, int, int]:
    """Output size and (pad_before, pad_after) along one axis, TensorFlow's rule."""
    padding = padding.lower()
    if padding == "valid":
        if k > n:
            raise ValueError(f"window {k} larger than input {n} with 'valid' padding")
        return (n - k) // s + 1, 0, 0
    if padding == "same":
        out = -(-n // s)  # ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        before = total // 2
        return out, before, total - before
    raise ValueError(padding)


# --- convolution ------------------------------------------------------------------------------------

def conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid") -> np.ndarray:
    x, kernel = f64(x), f64(kernel)
    n, h, w, cin = x.shape
    kh, kw, kcin, cout = kernel.shape
    assert kcin == cin
    sh, sw = as_pair(strides)
    oh, pt, pb = out_and_pad(h, kh, sh, padding)
    ow, pl, pr = out_and_pad(w, kw, sw, padding)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, cin))
    xp[:, pt:pt + h, pl:pl + w, :] = x
    y = np.zeros((n, oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]  # (n, kh, kw, cin)
            y[:, i, j, :] = np.tensordot(patch, kernel, axes=([1, 2, 3], [0, 1, 2]))
    if bias is not None:
        y += f64(bias)
    return y


def conv2d_backward(x, kernel, grad_y, strides=(1, 1), padding="valid"):
    """(grad_x, grad_kernel, grad_bias), by scattering each output position's gradient."""
    x, kernel, gy = f64(x), f64(kernel), f64(grad_y)
    n, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    sh, sw = as_pair(strides)
    oh, pt, pb = out_and_pad(h, kh, sh, padding)
    ow, pl, pr = out_and_pad(w, kw, sw, padding)
    assert gy.shape == (n, oh, ow, cout)
    xp = np.zeros((n, h + pt + pb, w + pl + pr, cin))
    xp[:, pt:pt + h, pl:pl + w, :] = x
    gxp = np.zeros_like(xp)
    gk = np.zeros_like(kernel)
    for i in range(oh):
        for j in range(ow):
            g = gy[:, i, j, :]  # (n, cout)
            # y[b,i,j,o] = sum_{a,c,ci} xp[b, i*sh+a, j*sw+c, ci] * k[a,c,ci,o]
            gxp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :] += np.einsum("bo,acio->baci", g, kernel)
            gk += np.einsum("baci,bo->acio", xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :], g)
    gx = gxp[:, pt:pt + h, pl:pl + w, :]
    gb = gy.sum(axis=(0, 1, 2))
    return gx, gk, gb


# --- pooling (TF semantics: padded cells never take part) -------------------------------------------

def _windows(h, w, pool, strides, padding):
    """Yield (i, j, r0, r1, c0, c1): output position and its window clipped to the real input."""
    ph, pw = as_pair(pool)
    sh, sw = as_pair(strides)
    oh, pt, _ = out_and_pad(h, ph, sh, padding)
    ow, pl, _ = out_and_pad(w, pw, sw, padding)
    for i in range(oh):
        r0 = i * sh - pt
        r1 = min(r0 + ph, h)
        r0 = max(r0, 0)
        for j in range(ow):
            c0 = j * sw - pl
            c1 = min(c0 + pw, w)
            c0 = max(c0, 0)
            yield i, j, r0, r1, c0, c1


def pool_out_shape(x_shape, pool, strides, padding):
    n, h, w, c = x_shape
    ph, pw = as_pair(pool)
    sh, sw = as_pair(strides)
    return n, out_and_pad(h, ph, sh, padding)[0], out_and_pad(w, pw, sw, padding)[0], c


def max_pool2d(x, pool_size, strides=None, padding="valid") -> np.ndarray:
    x = f64(x)
    strides = pool_size if strides is None else strides
    y = np.full(pool_out_shape(x.shape, pool_size, strides, padding), np.nan)
    for i, j, r0, r1, c0, c1 in _windows(x.shape[1], x.shape[2], pool_size, strides, padding):
        y[:, i, j, :] = x[:, r0:r1, c0:c1, :].max(axis=(1, 2))
    return y


def max_pool2d_backward(x, grad_y, pool_size, strides=None, padding="valid") -> np.ndarray:
    """Each output's gradient goes to the first maximum of its window in row-major order."""
    x, gy = f64(x), f64(grad_y)
    strides = pool_size if strides is None else strides
    n, _, _, c = x.shape
    gx = np.zeros_like(x)
    bidx = np.arange(n)[:, None]
    cidx = np.arange(c)[None, :]
    for i, j, r0, r1, c0, c1 in _windows(x.shape[1], x.shape[2], pool_size, strides, padding):
        win = x[:, r0:r1, c0:c1, :].reshape(n, -1, c)
        arg = np.argmax(win, axis=1)  # (n, c): first max in row-major order
        ww = c1 - c0
        rows = r0 + arg // ww
        cols = c0 + arg % ww
        np.add.at(gx, (bidx, rows, cols, cidx), gy[:, i, j, :])
    return gx


def avg_pool2d(x, pool_size, strides=None, padding="valid") -> np.ndarray:
    x = f64(x)
    strides = pool_size if strides is None else strides
    y = np.full(pool_out_shape(x.shape, pool_size, strides, padding), np.nan)
    for i, j, r0, r1, c0, c1 in _windows(x.shape[1], x.shape[2], pool_size, strides, padding):
        y[:, i, j, :] = x[:, r0:r1, c0:c1, :].sum(axis=(1, 2)) / ((r1 - r0) * (c1 - c0))
    return y


def avg_pool2d_backward(x, grad_y, pool_size, strides=None, padding="valid") -> np.ndarray:
    x, gy = f64(x), f64(grad_y)
    strides = pool_size if strides is None else strides
    gx = np.zeros_like(x)
    for i, j, r0, r1, c0, c1 in _windows(x.shape[1], x.shape[2], pool_size, strides, padding):
        count = (r1 - r0) * (c1 - c0)
        gx[:, r0:r1, c0:c1, :] += gy[:, i, j, None, None, :] / count
    return gx


def global_avg_pool2d(x, keepdims=False) -> np.ndarray:
    x = f64(x)
    n, h, w, c = x.shape
    y = np.zeros((n, c))
    for r in range(h):
        for col in range(w):
            y += x[:, r, col, :]
    y /= h * w
    return y.reshape(n, 1, 1, c) if keepdims else y


def global_max_pool2d(x, keepdims=False) -> np.ndarray:
    x = f64(x)
    n, _, _, c = x.shape
    y = x.reshape(n, -1, c).max(axis=1)
    return y.reshape(n, 1, 1, c) if keepdims else y


# --- dense --------------------------------------------------------------------------------------------

def dense(x, kernel, bias=None) -> np.ndarray:
    """x (..., in) @ kernel (in, out) + bias: rank > 2 inputs act on the last axis, like Keras."""
    x, kernel = f64(x), f64(kernel)
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    n, fin = x.shape
    fout = kernel.shape[1]
    y = np.zeros((n, fout))
    for b in range(n):
        for o in range(fout):
            y[b, o] = np.dot(x[b, :], kernel[:, o])
    if bias is not None:
        y += f64(bias)
    return y.reshape(lead + (fout,))


def dense_backward(x, kernel, grad_y):
    x, kernel, gy = f64(x), f64(kernel), f64(grad_y)
    gx = np.zeros_like(x)
    gk = np.zeros_like(kernel)
    for b in range(x.shape[0]):
        gx[b] = kernel @ gy[b]
        gk += np.outer(x[b], gy[b])
    return gx, gk, gy.sum(axis=0)


# --- activations ------------------------------------------------------------------------------------

def relu(x):
    x = f64(x)
    return np.where(x > 0, x, 0.0)


def relu_backward(x, grad_y):
    return np.where(f64(x) > 0, f64(grad_y), 0.0)


def sigmoid(x):
    x = f64(x)
    # split by sign so exp never overflows
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def sigmoid_backward(y, grad_y):
    y = f64(y)
    return f64(grad_y) * y * (1.0 - y)


def softmax(z):
    z = f64(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(y, grad_y):
    """J^T g with J_ij = y_i (delta_ij - y_j), per row of the last axis: y_i (g_i - sum_j g_j y_j)."""
    y, g = f64(y), f64(grad_y)
    return y * (g - (g * y).sum(axis=-1, keepdims=True))


def linear(x):
    return f64(x)


ACTIVATIONS = {"relu": relu, "sigmoid": sigmoid, "softmax": softmax, "linear": linear}


def activation(name: str, x) -> np.ndarray:
    """The float64 reference of the activation called `name` (Keras's names)."""
    if name not in ACTIVATIONS:
        raise KeyError(f"tests/reference.py has no reference for activation {name!r}; add one to ACTIVATIONS")
    return ACTIVATIONS[name](x)


# --- losses: (mean loss, gradient of the mean) --------------------------------------------------------

def one_hot(labels, c: int) -> np.ndarray:
    labels = np.asarray(labels)
    out = np.zeros((labels.shape[0], c))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


def _targets(labels, c):
    labels = np.asarray(labels)
    if labels.dtype.kind in "iub" and labels.ndim == 1:
        return one_hot(labels, c)
    return f64(labels)


def softmax_cross_entropy(logits, labels):
    z = f64(logits)
    n, c = z.shape
    y = _targets(labels, c)
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    logp = z - lse
    loss = float(-(y * logp).sum() / n)
    p = np.exp(logp)
    # d/dz of -sum_j y_j (z_j - lse) = p * sum_j y_j - y   (= p - y for one-hot / normalised labels)
    grad = (p * y.sum(axis=1, keepdims=True) - y) / n
    return loss, grad


def sigmoid_cross_entropy(logits, labels):
    z, y = f64(logits), f64(labels)
    size = z.size
    per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return float(per.sum() / size), (sigmoid(z) - y) / size


def categorical_cross_entropy(probs, labels):
    """Keras: q = p / sum(p); q = clip(q, eps, 1-eps); -sum(y log q) per row; mean over rows.

    Gradient: exact chain rule through the renormalisation; none through clipped entries (the clip
    passes gradient on [eps, 1-eps] inclusive, like tf.clip_by_value).
    """
    p = f64(probs)
    n, c = p.shape
    y = _targets(labels, c)
    s = p.sum(axis=1, keepdims=True)
    q = p / s
    qc = np.clip(q, CLIP_LO, CLIP_HI)
    loss = float(-(y * np.log(qc)).sum() / n)
    active = (q >= CLIP_LO) & (q <= CLIP_HI)
    g_q = np.where(active, -y / qc, 0.0) / n  # dL/dq
    # q_j = p_j / s  ->  dL/dp_k = sum_j g_q[j] (delta_jk - q_j) / s = (g_q[k] - sum_j g_q[j] q_j) / s
    grad = (g_q - (g_q * q).sum(axis=1, keepdims=True)) / s
    return loss, grad


def binary_cross_entropy(probs, labels):
    """Keras 3: clip to [eps, 1-eps]; -(y log p + (1-y) log(1-p)); mean over every element.

    The gradient is zero where the clip is active.
    """
    p, y = f64(probs), f64(labels)
    size = p.size
    pc = np.clip(p, CLIP_LO, CLIP_HI)
    loss = float(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)).sum() / size)
    active = (p >= CLIP_LO) & (p <= CLIP_HI)
    grad = np.where(active, (-y / pc + (1 - y) / (1 - pc)), 0.0) / size
    return loss, grad


def mean_squared_error(pred, target):
    p, t = f64(pred), f64(target)
    return float(((p - t) ** 2).sum() / p.size), 2.0 * (p - t) / p.size


# --- optimizers (Keras 3 formulas); return new arrays, float64 ------------------------------------

def sgd_update(param, grad, momentum_buf, lr, momentum=0.0, nesterov=False):
    """Returns (new_param, new_momentum_buf or None)."""
    p, g = f64(param), f64(grad)
    if momentum == 0.0 and momentum_buf is None:
        return p - lr * g, None
    m = momentum * f64(momentum_buf) - lr * g
    if nesterov:
        p = p + momentum * m - lr * g
    else:
        p = p + m
    return p, m


def rmsprop_update(param, grad, velocity, lr, rho=0.9, epsilon=1e-7):
    p, g, v = f64(param), f64(grad), f64(velocity)
    v = rho * v + (1 - rho) * g * g
    p = p - lr * g / np.sqrt(v + epsilon)
    return p, v


def adam_update(param, grad, m, v, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1):
    p, g, m, v = f64(param), f64(grad), f64(m), f64(v)
    alpha = lr * math.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m = m + (g - m) * (1 - beta_1)
    v = v + (g * g - v) * (1 - beta_2)
    p = p - alpha * m / (np.sqrt(v) + epsilon)
    return p, m, v


# --- normalization ---------------------------------------------------------------------------------------

def _moved(x, axes) -> Tuple[np.ndarray, tuple, list]:
    """x with the normalized `axes` moved to the end and flattened to (rows, cols); the moved shape; the axes."""
    x = f64(x)
    axes = [a % x.ndim for a in ([axes] if isinstance(axes, (int, np.integer)) else axes)]
    moved = np.moveaxis(x, sorted(axes), list(range(x.ndim - len(axes), x.ndim)))
    return moved.reshape(-1, int(np.prod([x.shape[a] for a in axes]))), moved.shape, sorted(axes)


def _unmoved(y2, moved_shape, axes, ndim) -> np.ndarray:
    return np.moveaxis(y2.reshape(moved_shape), list(range(ndim - len(axes), ndim)), axes)


def batch_moments(x, axis=-1) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance over every axis but `axis` (Keras's batch statistics)."""
    x2 = _moved(x, axis)[0]
    mean = x2.mean(axis=0)
    return mean, ((x2 - mean) ** 2).mean(axis=0)


def batch_norm(x, gamma, beta, mean, variance, epsilon, axis=-1) -> np.ndarray:
    """gamma * (x - mean) / sqrt(variance + epsilon) + beta per channel (gamma/beta None: 1/0)."""
    x2, shape, axes = _moved(x, axis)
    y = (x2 - f64(mean)) / np.sqrt(f64(variance) + epsilon)
    y = y * (1.0 if gamma is None else f64(gamma)) + (0.0 if beta is None else f64(beta))
    return _unmoved(y, shape, axes, np.ndim(x))


def batch_norm_training_backward(x, grad_y, gamma, epsilon):
    """Last-axis batch norm with the batch's statistics: (grad_x, grad_gamma, grad_beta), from the chain rule
    through mean and variance written out term by term (not the compact textbook form)."""
    x, g = f64(x).reshape(-1, np.shape(x)[-1]), f64(grad_y).reshape(-1, np.shape(x)[-1])
    n = x.shape[0]
    gam = 1.0 if gamma is None else f64(gamma)
    mean = x.mean(0)
    var = ((x - mean) ** 2).mean(0)
    s = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - mean) * s
    d_xhat = g * gam
    d_var = (d_xhat * (x - mean)).sum(0) * -0.5 * s ** 3
    d_mean = -(d_xhat * s).sum(0) + d_var * (-2.0 * (x - mean)).mean(0)
    gx = d_xhat * s + d_var * 2.0 * (x - mean) / n + d_mean / n
    return gx.reshape(np.shape(grad_y)), (g * xhat).sum(0), g.sum(0)


def layer_norm(x, gamma, beta, axes, epsilon) -> np.ndarray:
    """Per-sample normalization over `axes` (gamma/beta shaped like those axes, or None)."""
    x2, shape, axes = _moved(x, axes)
    mean = x2.mean(axis=1, keepdims=True)
    var = ((x2 - mean) ** 2).mean(axis=1, keepdims=True)
    y = (x2 - mean) / np.sqrt(var + epsilon)
    y = y * (1.0 if gamma is None else f64(gamma).reshape(-1)) + (0.0 if beta is None else f64(beta).reshape(-1))
    return _unmoved(y, shape, axes, np.ndim(x))

"""The convolution kernels beside the plain conv2d: dilated / grouped conv2d, depthwise_conv2d and
conv2d_transpose, against float64 NumPy references written here (tap-by-tap einsums with TF's padding
rule, the transpose as an explicit scatter), their backward passes against finite differences of those
references, and their shape errors. The layer tests (test_conv_layers.py) import the references."""
from __future__ import annotations

import numpy as np
import pytest

from rconv import ops
from reference import r32


# --- float64 references --------------------------------------------------------------------------------

def tf_axis(n, k, s, d, padding):
    """(output length, pad before) of one axis by TF's rule, for a window of dilated extent (k-1)d+1."""
    extent = (k - 1) * d + 1
    if padding == "same":
        out = -(-n // s)
        return out, max((out - 1) * s + extent - n, 0) // 2
    return (n - extent) // s + 1, 0


def _patches(x, kernel_hw, strides, padding, dilation):
    """Yield (ky, kx, patch) with patch[n, oy, ox, c] = x[n, oy*s + ky*d - pad, ...] (zero outside)."""
    n, h, w, c = x.shape
    (oh, ph), (ow, pw) = (tf_axis(h, kernel_hw[0], strides[0], dilation[0], padding),
                          tf_axis(w, kernel_hw[1], strides[1], dilation[1], padding))
    need_h = (oh - 1) * strides[0] + (kernel_hw[0] - 1) * dilation[0] + 1
    need_w = (ow - 1) * strides[1] + (kernel_hw[1] - 1) * dilation[1] + 1
    xp = np.zeros((n, max(need_h, ph + h), max(need_w, pw + w), c))
    xp[:, ph:ph + h, pw:pw + w] = x
    for ky in range(kernel_hw[0]):
        for kx in range(kernel_hw[1]):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            rows = slice(y0, y0 + (oh - 1) * strides[0] + 1, strides[0])
            yield ky, kx, xp[:, rows, x0:x0 + (ow - 1) * strides[1] + 1:strides[1]]


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv_ref(x, k, b=None, strides=1, padding="valid", dilation=1, groups=1):
    """Grouped, dilated 2-D cross-correlation: x (n, h, w, cin), k (kh, kw, cin/groups, f)."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    cg, og = k.shape[2], k.shape[3] // groups
    y = None
    for ky, kx, p in _patches(x, k.shape[:2], pair(strides), padding, pair(dilation)):
        part = np.concatenate([np.einsum("nhwc,co->nhwo", p[..., g * cg:(g + 1) * cg],
                                         k[ky, kx, :, g * og:(g + 1) * og]) for g in range(groups)], axis=-1)
        y = part if y is None else y + part
    return y if b is None else y + b


def depthwise_ref(x, k, b=None, strides=1, padding="valid", dilation=1):
    """Depthwise: output channel c*dm + m = sum over taps of x[..., c] * k[ky, kx, c, m]."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    y = None
    for ky, kx, p in _patches(x, k.shape[:2], pair(strides), padding, pair(dilation)):
        part = (p[..., :, None] * k[ky, kx]).reshape(p.shape[:3] + (-1,))
        y = part if y is None else y + part
    return y if b is None else y + b


def transpose_ref(x, k, b=None, strides=1, padding="valid", dilation=1, out_hw=None):
    """Transposed convolution as a scatter: input pixel (iy, ix) adds x[iy, ix] @ k[ky, kx].T at output
    (iy*s + ky*d - pad), pad by TF's rule for the convolution from `out_hw` back to the input."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    (sh, sw), (dh, dw) = pair(strides), pair(dilation)
    n, h, w, _ = x.shape
    kh, kw, f, _ = k.shape
    ph, pw = tf_axis(out_hw[0], kh, sh, dh, padding)[1], tf_axis(out_hw[1], kw, sw, dw, padding)[1]
    canvas = np.zeros((n, max((h - 1) * sh + (kh - 1) * dh + 1, ph + out_hw[0]),
                       max((w - 1) * sw + (kw - 1) * dw + 1, pw + out_hw[1]), f))
    for ky in range(kh):
        for kx in range(kw):
            canvas[:, ky * dh:ky * dh + (h - 1) * sh + 1:sh, kx * dw:kx * dw + (w - 1) * sw + 1:sw] += \
                np.einsum("nhwc,fc->nhwf", x, k[ky, kx])
    y = canvas[:, ph:ph + out_hw[0], pw:pw + out_hw[1]]
    return y if b is None else y + b


def keras_deconv_length(n, k, s, padding, output_padding, d):
    """keras/src/backend/common/backend_utils.py `_get_output_shape_given_tf_padding`, restated."""
    k = (k - 1) * d + 1
    if padding == "valid":
        return (n - 1) * s + k + (max(k, s) - k if output_padding is None else output_padding)
    return n * s if output_padding is None else (n - 1) * s + k % 2 + output_padding


# --- helpers --------------------------------------------------------------------------------------------

def rnd(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_grads(fwd, args, grads, g, points=25, seed=0, tol=2e-4):
    """`grads[i]` (float32 backward) against central differences of <fwd(*args), g> in float64 (the ops
    are linear in each argument, so a unit step is exact), at sampled entries of each argument."""
    rng = np.random.default_rng(seed)
    base = [r32(a) for a in args]
    for i, grad in enumerate(grads):
        assert grad.shape == base[i].shape
        scale = max(1.0, float(np.abs(grad).max()))
        for flat in rng.choice(base[i].size, size=min(points, base[i].size), replace=False):
            idx = np.unravel_index(flat, base[i].shape)
            plus, minus = [a.copy() for a in base], [a.copy() for a in base]
            plus[i][idx] += 1.0
            minus[i][idx] -= 1.0
            fd = (np.sum(fwd(*plus) * g) - np.sum(fwd(*minus) * g)) / 2
            assert abs(grad[idx] - fd) <= tol * scale, f"argument {i} at {idx}: {grad[idx]} vs {fd}"


def close(y, want, tol=1e-5):
    assert y.shape == want.shape, (y.shape, want.shape)
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


# --- grouped / dilated conv2d ---------------------------------------------------------------------------

CONV_CASES = [  # x shape, (kh, kw), filters, strides, padding, dilation, groups
    ((2, 7, 6, 4), (3, 2), 6, 1, "same", (2, 1), 2),
    ((1, 9, 9, 3), (3, 3), 3, (2, 1), "valid", 1, 3),       # one channel per group
    ((3, 5, 8, 2), (2, 3), 4, 1, "same", (1, 3), 1),         # dilation alone, asymmetric 'same' pads
    ((1, 11, 4, 6), (3, 1), 9, 1, "valid", (3, 1), 3),
    ((2, 1, 13, 4), (1, 3), 4, (1, 3), "same", 1, 2),         # height 1 (Conv1D's shape), stride > kernel
    ((1, 10, 10, 4), (3, 3), 32, 1, "same", (2, 2), 4),      # 8 filters per group
    ((1, 6, 7, 1), (2, 2), 1, 1, "valid", (3, 2), 1),        # channels 1, batch 1
    ((2, 8, 8, 8), (1, 1), 16, 2, "same", 1, 8),
]


@pytest.mark.parametrize("shape,khw,filters,strides,padding,dilation,groups", CONV_CASES)
def test_grouped_dilated_conv2d(shape, khw, filters, strides, padding, dilation, groups):
    x, k, b = rnd(shape, 1), rnd(khw + (shape[3] // groups, filters), 2), rnd((filters,), 3)
    kw = dict(strides=strides, padding=padding, dilation=dilation, groups=groups)
    y = ops.conv2d(x, k, b, strides, padding, dilation_rate=dilation, groups=groups)
    close(y, conv_ref(r32(x), r32(k), r32(b), **kw))
    g = rnd(y.shape, 4)
    gx, gk, gb = ops.conv2d_backward(x, k, g, strides, padding, dilation_rate=dilation, groups=groups)
    check_grads(lambda x, k, b: conv_ref(x, k, b, **kw), (x, k, b), (gx, gk, gb), r32(g))
    none, gk2, gb2 = ops.conv2d_backward(x, k, g, strides, padding, dilation_rate=dilation, groups=groups,
                                         need_grad_x=False)
    assert none is None
    np.testing.assert_array_equal(gk2, gk)
    np.testing.assert_array_equal(gb2, gb)


def test_general_path_fuses_relu_like_the_plain_one():
    x, k, b = rnd((2, 6, 6, 4), 1), rnd((3, 3, 2, 4), 2), rnd((4,), 3)
    z = ops.conv2d(x, k, b, 1, "same", groups=2)
    y = ops.conv2d(x, k, b, 1, "same", groups=2, activation="relu")
    np.testing.assert_array_equal(y, np.maximum(z, 0))
    g = rnd(y.shape, 4)
    fused = ops.conv2d_backward(x, k, g, 1, "same", groups=2, relu_output=y)
    plain = ops.conv2d_backward(x, k, np.where(y > 0, g, 0), 1, "same", groups=2)
    for a, want in zip(fused, plain):
        np.testing.assert_array_equal(a, want)


def test_dilation_one_group_one_matches_the_plain_kernel():
    # The general kernel, forced through groups=1 and dilation 1 by a 1-group call of conv2d_general,
    # computes what the fast kernel does (same geometry rules).
    from rconv import _rconv
    x, k = rnd((2, 9, 7, 3), 1), rnd((3, 2, 3, 16), 2)
    for padding, strides in (("same", (2, 3)), ("valid", (1, 1))):
        fast = ops.conv2d(x, k, None, strides, padding)
        general = _rconv.conv2d_general(x, k, None, strides, padding, (1, 1), 1)
        np.testing.assert_allclose(general, fast, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.conv2d(rnd((1, 5, 5, 4), 0), rnd((3, 3, 4, 4), 0), None, 1, "valid", groups=2), "4 channels"),
    (lambda: ops.conv2d(rnd((1, 5, 5, 4), 0), rnd((3, 3, 2, 3), 0), None, 1, "valid", groups=2), "multiples of groups"),
    (lambda: ops.conv2d(rnd((1, 5, 5, 4), 0), rnd((3, 3, 2, 4), 0), None, 1, "valid", dilation_rate=3, groups=2),
     "larger than the input"),
    (lambda: ops.conv2d(rnd((1, 5, 5, 4), 0), rnd((3, 3, 2, 4), 0), None, 1, "valid", groups=0), "groups"),
    (lambda: ops.conv2d(rnd((1, 5, 5, 4), 0), rnd((3, 3, 2, 4), 0), rnd((3,), 0), 1, "valid", groups=2), "bias"),
    (lambda: ops.conv2d_backward(rnd((1, 5, 5, 4), 0), rnd((3, 3, 2, 4), 0), rnd((1, 2, 2, 4), 0), 1, "valid",
                                 groups=2), "grad_y"),
])
def test_grouped_conv_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- depthwise ------------------------------------------------------------------------------------------

DEPTHWISE_CASES = [  # x shape, (kh, kw), depth_multiplier, strides, padding, dilation
    ((2, 7, 6, 3), (3, 2), 1, 1, "same", 1),
    ((1, 9, 8, 2), (3, 3), 3, (2, 3), "same", 1),
    ((3, 6, 7, 1), (2, 2), 2, 1, "valid", (2, 3)),
    ((1, 5, 5, 4), (1, 1), 2, 3, "valid", 1),                 # stride > kernel
    ((2, 12, 10, 16), (3, 3), 1, 1, "same", (2, 2)),
    ((1, 4, 4, 3), (5, 5), 2, 2, "same", 1),                  # kernel larger than the input, 'same'
]


@pytest.mark.parametrize("shape,khw,dm,strides,padding,dilation", DEPTHWISE_CASES)
def test_depthwise_conv2d(shape, khw, dm, strides, padding, dilation):
    x, k, b = rnd(shape, 1), rnd(khw + (shape[3], dm), 2), rnd((shape[3] * dm,), 3)
    kw = dict(strides=strides, padding=padding, dilation=dilation)
    y = ops.depthwise_conv2d(x, k, b, strides, padding, dilation)
    close(y, depthwise_ref(r32(x), r32(k), r32(b), **kw))
    g = rnd(y.shape, 4)
    gx, gk, gb = ops.depthwise_conv2d_backward(x, k, g, strides, padding, dilation)
    check_grads(lambda x, k, b: depthwise_ref(x, k, b, **kw), (x, k, b), (gx, gk, gb), r32(g))
    assert ops.depthwise_conv2d_backward(x, k, g, strides, padding, dilation, need_grad_x=False)[0] is None


def test_depthwise_errors():
    with pytest.raises(ValueError, match="depthwise_conv2d: input has 3 channels but the kernel expects 2"):
        ops.depthwise_conv2d(rnd((1, 5, 5, 3), 0), rnd((3, 3, 2, 1), 0))
    with pytest.raises(ValueError, match="depthwise_conv2d: .*larger than the input"):
        ops.depthwise_conv2d(rnd((1, 2, 5, 3), 0), rnd((3, 3, 3, 1), 0))
    with pytest.raises(ValueError, match="bias"):
        ops.depthwise_conv2d(rnd((1, 5, 5, 3), 0), rnd((3, 3, 3, 2), 0), rnd((3,), 0))


# --- transposed -----------------------------------------------------------------------------------------

TRANSPOSE_CASES = [  # x shape, (kh, kw), filters, strides, padding, output_padding, dilation
    ((2, 3, 4, 2), (3, 3), 5, 2, "same", None, 1),
    ((2, 3, 4, 2), (3, 3), 5, 2, "same", 1, 1),
    ((1, 3, 3, 1), (2, 3), 2, 3, "valid", None, 1),           # stride > kernel: gaps in the output
    ((1, 3, 4, 2), (2, 3), 3, 3, "valid", (2, 1), 1),
    ((2, 4, 5, 3), (3, 2), 1, 1, "valid", None, 1),
    ((1, 5, 4, 2), (3, 3), 3, 1, "same", None, 2),
    ((1, 5, 4, 2), (3, 2), 3, 1, "valid", None, (2, 3)),
    ((2, 4, 5, 2), (4, 4), 3, 2, "same", 1, 1),               # even kernel: asymmetric crop
    ((1, 2, 2, 16), (3, 3), 16, 2, "same", None, 1),
]


@pytest.mark.parametrize("shape,khw,filters,strides,padding,output_padding,dilation", TRANSPOSE_CASES)
def test_conv2d_transpose(shape, khw, filters, strides, padding, output_padding, dilation):
    x, k, b = rnd(shape, 1), rnd(khw + (filters, shape[3]), 2), rnd((filters,), 3)
    ops_ = pair(output_padding) if output_padding is not None else (None, None)
    out_hw = tuple(keras_deconv_length(shape[1 + i], khw[i], pair(strides)[i], padding, ops_[i], pair(dilation)[i])
                   for i in range(2))
    kw = dict(strides=strides, padding=padding, dilation=dilation, out_hw=out_hw)
    y = ops.conv2d_transpose(x, k, b, strides, padding, output_padding, dilation)
    assert y.shape == (shape[0],) + out_hw + (filters,)
    close(y, transpose_ref(r32(x), r32(k), r32(b), **kw))
    g = rnd(y.shape, 4)
    gx, gk, gb = ops.conv2d_transpose_backward(x, k, g, strides, padding, dilation)
    check_grads(lambda x, k, b: transpose_ref(x, k, b, **kw), (x, k, b), (gx, gk, gb), r32(g))
    assert ops.conv2d_transpose_backward(x, k, g, strides, padding, dilation, need_grad_x=False)[0] is None


def test_transpose_is_the_adjoint_of_conv():
    # <conv(u, k), v> == <u, conv_transpose(v, k)>: the same kernel, read as (kh, kw, in, out) by conv2d.
    u, k = rnd((2, 8, 7, 3), 1), rnd((3, 3, 3, 4), 2)
    y = ops.conv2d(u, k, None, 2, "same")
    v = rnd(y.shape, 3)
    t = ops.conv2d_transpose(v, k, None, 2, "same", output_padding=(1, 0))
    assert t.shape == u.shape
    np.testing.assert_allclose(np.sum(y * v, dtype=np.float64), np.sum(u * t, dtype=np.float64), rtol=1e-4)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.conv2d_transpose(rnd((1, 3, 3, 2), 0), rnd((3, 3, 4, 3), 0)), "kernel .* expects 3"),
    (lambda: ops.conv2d_transpose(rnd((1, 3, 3, 2), 0), rnd((3, 3, 4, 2), 0), None, 2, "same", 2),
     "output_padding must be smaller than strides"),
    (lambda: ops.conv2d_transpose(rnd((1, 3, 3, 1), 0), rnd((4, 4, 2, 1), 0), None, 2, "same", 0),
     "does not match the input"),
    (lambda: ops.conv2d_transpose(rnd((1, 3, 3, 1), 0), rnd((3, 3, 2, 1), 0), rnd((1,), 0)), "bias"),
    (lambda: ops.conv2d_transpose_backward(rnd((1, 3, 3, 1), 0), rnd((3, 3, 2, 1), 0), rnd((1, 4, 4, 2), 0), 2,
                                           "valid"), "does not match the input"),
])
def test_transpose_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    from threads import arrays_per_thread_count
    script = """
import sys
import numpy as np
from rconv import ops
r = np.random.default_rng(0)
f = lambda *s: r.standard_normal(s).astype(np.float32)
x, kg, kd, kt = f(3, 40, 36, 8), f(3, 3, 2, 16), f(3, 3, 8, 2), f(3, 3, 5, 8)
y = ops.conv2d(x, kg, None, 1, "same", dilation_rate=2, groups=4)
z = ops.depthwise_conv2d(x, kd, None, 1, "same", 2)
t = ops.conv2d_transpose(x, kt, None, 2, "same")
out = [y, z, t, *ops.conv2d_backward(x, kg, y, 1, "same", dilation_rate=2, groups=4),
       *ops.depthwise_conv2d_backward(x, kd, z, 1, "same", 2), *ops.conv2d_transpose_backward(x, kt, t, 2, "same")]
np.savez(sys.argv[1], *out)
"""
    one, three = arrays_per_thread_count(script, tmp_path)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)

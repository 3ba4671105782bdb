"""Input gradients of the augmentation layers (and of `ops.affine_transform`) against independent float64
NumPy references and central finite differences, on odd sizes, batch 1, channels 1 and 3; plus an
end-to-end check that a convolution *before* an augmentation layer trains."""
import re

import numpy as np
import pytest

import rconv
from rconv import layers, ops

H, W = 5, 7
INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("constant", "nearest", "reflect", "wrap")
FILL_VALUE = 0.7
FLIPPING_SEED = next(s for s in range(100) if np.random.default_rng(s).uniform() <= 0.5)  # RandomFlip flips image 0


# --- an independent float64 reference of the resampling (TF ImageProjectiveTransformV3) ----------------------

def _fold(c: float, n: int, mode: str) -> float:
    """TF's map_coordinate: fold an input coordinate into [0, n-1]; 'constant' leaves it as is."""
    if mode == "constant":
        return c
    if mode == "reflect" and n > 1:
        c = np.fmod(c, 2 * n)
        c = c + 2 * n if c < 0 else c  # in [0, 2n): (d c b a | a b c d | d c b a)
        c = 2 * n - 1 - c if c >= n else c
    elif mode == "wrap" and n > 1:
        c = np.fmod(c, n)
        c = c + n if c < 0 else c
    elif mode != "nearest":
        c = 0.0
    return min(max(c, 0.0), n - 1.0)


def resampling_matrix(t, h, w, oh, ow, interpolation, fill_mode):
    """(oh*ow, h*w) float64 matrix M and (oh*ow,) fill weights f with out = M @ image + f * fill_value.

    Source coordinates are evaluated in float32 in TF's order (so the tap choice sees the same numbers
    as the kernel); folding and weights are float64."""
    t = np.asarray(t, np.float32)
    m, fill = np.zeros((oh * ow, h * w)), np.zeros(oh * ow)
    for oy in range(oh):
        for ox in range(ow):
            row = oy * ow + ox
            x, y = np.float32(ox), np.float32(oy)
            k = t[6] * x + t[7] * y + np.float32(1)
            if k == 0:
                fill[row] = 1.0
                continue
            sx = _fold(float((t[0] * x + t[1] * y + t[2]) / k), w, fill_mode)
            sy = _fold(float((t[3] * x + t[4] * y + t[5]) / k), h, fill_mode)
            if interpolation == "nearest":  # round half away from zero
                taps = [(np.sign(sy) * np.floor(abs(sy) + 0.5), np.sign(sx) * np.floor(abs(sx) + 0.5), 1.0)]
            else:
                y0, x0 = np.floor(sy), np.floor(sx)
                fy, fx = sy - y0, sx - x0
                taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                        (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
            for ty, tx, wt in taps:
                if 0 <= ty < h and 0 <= tx < w:
                    m[row, int(ty) * w + int(tx)] += wt
                else:
                    fill[row] += wt
    return m, fill


def adjoint_reference(grad, transforms, image_hw, interpolation, fill_mode):
    """dx = Mᵀ dy per image and channel, float64."""
    n, oh, ow, c = grad.shape
    h, w = image_hw
    out = np.zeros((n, h, w, c))
    for i in range(n):
        m, _ = resampling_matrix(transforms[i], h, w, oh, ow, interpolation, fill_mode)
        out[i] = (m.T @ grad[i].reshape(oh * ow, c).astype(np.float64)).reshape(h, w, c)
    return out


def finite_difference(f, x, eps):
    """Central differences of the scalar f at x (float64), one coordinate at a time."""
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (f(plus) - f(minus)) / (2 * eps)
    return grad


def _rand(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


# --- the op ----------------------------------------------------------------------------------------------

PROJECTIVE = np.array([[0.8, -0.6, 2.3, 0.6, 0.8, -1.7, 0.0, 0.0],      # rotation about an off-centre point
                       [1.37, 0.0, -1.1, 0.0, 0.63, 1.2, 0.0, 0.0],     # anisotropic zoom
                       [1.0, 0.0, -4.6, 0.0, 1.0, 3.3, 0.0, 0.0],       # a shift that leaves the image
                       [0.9, 0.15, 0.4, -0.1, 1.1, 0.3, 0.02, -0.03]],  # projective
                      np.float32)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("out_hw", [(H, W), (6, 4)])
def test_op_backward_is_the_transpose(interpolation, fill_mode, out_hw):
    images = _rand((4, H, W, 3), 1)
    y = ops.affine_transform(images, PROJECTIVE, interpolation, fill_mode, FILL_VALUE, output_shape=out_hw)
    # The reference matrix reproduces the forward, so its transpose is the right adjoint to compare with.
    for i in range(4):
        m, fill = resampling_matrix(PROJECTIVE[i], H, W, *out_hw, interpolation, fill_mode)
        expected = m @ images[i].reshape(H * W, 3) + fill[:, None] * FILL_VALUE
        np.testing.assert_allclose(y[i].reshape(-1, 3), expected, rtol=1e-5, atol=1e-5)
    grad = _rand(y.shape, 2)
    dx = ops.affine_transform_backward(grad, PROJECTIVE, interpolation, fill_mode, image_shape=(H, W))
    assert dx.shape == images.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, adjoint_reference(grad, PROJECTIVE, (H, W), interpolation, fill_mode),
                               rtol=1e-5, atol=1e-5)


def test_op_backward_fill_and_fold_routing():
    """Shift left by 1.5 px: in constant mode the fill takes no gradient; folded taps get it."""
    t = np.array([1, 0, 1.5, 0, 1, 0, 0, 0], np.float32)
    g = np.ones((1, 1, 4, 1), np.float32)
    dx = {m: ops.affine_transform_backward(g, t, "bilinear", m)[0, 0, :, 0] for m in FILL_MODES}
    np.testing.assert_allclose(dx["constant"], [0, 0.5, 1, 1])  # x=2.5 and 3.5 read the fill for half/all
    np.testing.assert_allclose(dx["nearest"], [0, 0.5, 1, 2.5])  # clamped onto the last pixel
    assert dx["wrap"].sum() == pytest.approx(4) and dx["reflect"].sum() == pytest.approx(4)


def test_op_backward_bad_input():
    g = np.zeros((2, 5, 7, 1), np.float32)
    with pytest.raises(ValueError, match=r"affine_transform_backward.*transforms.*\[2, 8\].*\[3, 8\]"):
        ops.affine_transform_backward(g, np.zeros((3, 8), np.float32))
    with pytest.raises(ValueError, match=r"affine_transform_backward.*rank 4.*\[5, 7, 1\]"):
        ops.affine_transform_backward(g[0], np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="affine_transform_backward.*fill_mode"):
        ops.affine_transform_backward(g, PROJECTIVE[:2], fill_mode="mirror")
    with pytest.raises(ValueError, match="affine_transform_backward.*image_shape"):
        ops.affine_transform_backward(g, PROJECTIVE[:2], image_shape=(0, 3))
    with pytest.raises(TypeError, match="affine_transform_backward.*grad_y"):
        ops.affine_transform_backward(g.astype(np.int32), PROJECTIVE[:2])
    # The raw binding checks too (ops normally does it first).
    raw = rconv._rconv.affine_transform_backward
    with pytest.raises(ValueError, match="affine_transform_backward.*interpolation.*cubic"):
        raw(g, PROJECTIVE[:2], "cubic", "wrap")
    with pytest.raises(ValueError, match="affine_transform_backward.*C-contiguous"):
        raw(g[:, ::-1], PROJECTIVE[:2], "bilinear", "wrap")
    with pytest.raises(TypeError, match="affine_transform_backward.*transforms.*float32"):
        raw(g, PROJECTIVE[:2].astype(np.float64), "bilinear", "wrap")
    # Non-contiguous inputs are fine through ops.
    g = _rand((2, 5, 7, 2), 4)
    np.testing.assert_array_equal(ops.affine_transform_backward(g[:, ::-1], PROJECTIVE[:2], fill_mode="wrap"),
                                  ops.affine_transform_backward(g[:, ::-1].copy(), PROJECTIVE[:2], fill_mode="wrap"))
    # Empty batches, empty images, non-finite transforms: results, not crashes.
    assert ops.affine_transform_backward(np.zeros((0, 3, 3, 2), np.float32), np.zeros((0, 8), np.float32)).shape \
        == (0, 3, 3, 2)
    bad = np.array([np.nan, 0, 0, 0, 1, 0, 0, 0], np.float32)
    assert np.isfinite(ops.affine_transform_backward(np.ones((1, 3, 3, 1), np.float32), bad)).all()


# --- the layers: reference and finite differences -------------------------------------------------------------

GEOMETRIC = {
    "rotation": lambda interp, fill, seed: layers.RandomRotation(0.5, fill_mode=fill, interpolation=interp,
                                                                 fill_value=FILL_VALUE, seed=seed),
    "zoom": lambda interp, fill, seed: layers.RandomZoom((-0.4, 0.6), (-0.5, 0.5), fill_mode=fill,
                                                         interpolation=interp, fill_value=FILL_VALUE, seed=seed),
    "translation": lambda interp, fill, seed: layers.RandomTranslation(0.35, 0.35, fill_mode=fill,
                                                                       interpolation=interp, fill_value=FILL_VALUE,
                                                                       seed=seed),
}


def _check_layer_gradient(make, x, reference, eps, tol=2e-4):
    """backward of `make()` (a freshly seeded layer, so the random draws repeat) vs `reference(ctx, w)` and vs
    central differences of sum(w * y) in x."""
    w = _rand(x.shape, 99).astype(np.float64)
    y, ctx = make().forward(x, training=True)
    assert not np.array_equal(y, x)  # the draw did something
    dx, grads = make().backward(ctx, w.astype(np.float32))
    assert grads == [] and dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_allclose(dx, reference(ctx, w), rtol=tol, atol=tol)

    def objective(xv):
        return float((make().forward(xv.astype(np.float32), training=True)[0].astype(np.float64) * w).sum())

    np.testing.assert_allclose(dx, finite_difference(objective, x.astype(np.float64), eps), rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("kind", sorted(GEOMETRIC))
def test_geometric_layer_gradient(kind, interpolation, fill_mode, channels):
    x = _rand((1, H, W, channels), 5)

    def reference(ctx, w):
        transforms = ctx[1]  # the per-image transforms the forward drew
        return adjoint_reference(w, transforms, (H, W), interpolation, fill_mode)

    # The resampling is linear in x, so central differences are exact up to rounding at any step.
    _check_layer_gradient(lambda: GEOMETRIC[kind](interpolation, fill_mode, 3), x, reference, eps=0.5)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_flip_gradient(mode, channels):
    x = _rand((1, H, W, channels), 6)
    seed = FLIPPING_SEED

    def reference(ctx, w):
        flip = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}[mode]
        return np.flip(w, axis=flip)

    _check_layer_gradient(lambda: layers.RandomFlip(mode, seed=seed), x, reference, eps=0.5)


def test_flip_gradient_per_image():
    x = _rand((6, H, W, 2), 7)
    flips = np.random.default_rng(4).uniform(size=6) <= 0.5
    assert 0 < flips.sum() < 6
    layer = layers.RandomFlip("horizontal", seed=4)
    _, ctx = layer.forward(x, training=True)
    g = _rand(x.shape, 8)
    dx, _ = layer.backward(ctx, g)
    for i in range(6):
        np.testing.assert_array_equal(dx[i], g[i, :, ::-1] if flips[i] else g[i])


def _contrast_reference(x, factor, value_range):
    """float64 forward pieces: pre-clip output and the per-image factor."""
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    pre = (x - mean) * factor + mean
    return pre, (pre >= value_range[0]) & (pre <= value_range[1])


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("clip", [False, True])
def test_contrast_gradient(clip, channels):
    x = np.random.default_rng(9).uniform(0, 1, size=(1, H, W, channels)).astype(np.float32)
    seed = 2
    factor = np.random.default_rng(seed).uniform(0.5, 1.6)  # the layer's draw for factor (0.5, 0.6)
    eps = 1e-3
    value_range = (-10.0, 10.0)
    if clip:
        # Put each bound in the middle of a wide gap between pre-clip values, so that some values clip and
        # none is within the finite-difference step of a bound.
        pre = np.sort(_contrast_reference(x, factor, value_range)[0].ravel())
        bounds = []
        for lo_q, hi_q in ((0.15, 0.45), (0.55, 0.85)):
            window = pre[int(lo_q * len(pre)):int(hi_q * len(pre)) + 1]
            gap = np.argmax(np.diff(window))
            assert window[gap + 1] - window[gap] > 8 * eps
            bounds.append(float(window[gap] + window[gap + 1]) / 2)
        value_range = tuple(bounds)

    def make():
        return layers.RandomContrast((0.5, 0.6), value_range=value_range, seed=seed)

    def reference(ctx, w):
        _, passed = _contrast_reference(x, factor, value_range)
        assert passed.all() != clip
        g = w * passed
        return factor * g + (1 - factor) * g.mean(axis=(1, 2), keepdims=True)

    _check_layer_gradient(make, x, reference, eps=eps)


def test_contrast_clip_passes_gradient_at_the_bounds():
    """TF's clip_by_value gradient is zero only strictly outside the range: a flat image at a bound (its
    output equals its mean exactly) still gets c * g + (1 - c) * mean(g)."""
    x = np.zeros((1, H, W, 1), np.float32)
    layer = layers.RandomContrast(0.5, value_range=(0, 255), seed=1)
    y, ctx = layer.forward(x, training=True)
    assert (y == 0).all()
    g = _rand(x.shape, 3)
    c = np.random.default_rng(1).uniform(1.0, 1.5)
    np.testing.assert_allclose(layer.backward(ctx, g)[0], c * g + (1 - c) * g.mean(), rtol=1e-5, atol=1e-6)


ALL = [lambda **k: layers.RandomFlip(**k), lambda **k: layers.RandomRotation(0.2, **k),
       lambda **k: layers.RandomZoom(0.3, **k), lambda **k: layers.RandomTranslation(0.2, 0.3, **k),
       lambda **k: layers.RandomContrast(0.4, **k)]


@pytest.mark.parametrize("make", ALL)
def test_backward_contract(make):
    x = np.random.default_rng(0).uniform(0, 255, size=(3, H, W, 2)).astype(np.float32)
    seed = FLIPPING_SEED
    layer = make(seed=seed)
    g = _rand(x.shape, 1)
    # Inference: identity both ways.
    dx, grads = layer.backward(None, g)
    assert dx is g and grads == []
    # need_input_grad=False: nothing to compute.
    _, ctx = layer.forward(x, training=True)
    dx, grads = layer.backward(ctx, g, need_input_grad=False)
    assert dx is None and grads == []
    # Unbatched images give the batch-of-one gradient; empty batches give an empty one.
    _, ctx1 = make(seed=seed).forward(x[0], training=True)
    dx1, _ = make(seed=seed).backward(ctx1, g[0])
    _, ctx_b = make(seed=seed).forward(x[:1], training=True)
    assert dx1.shape == x[0].shape and not np.array_equal(dx1, g[0])
    np.testing.assert_array_equal(dx1, make(seed=seed).backward(ctx_b, g[:1])[0][0])
    _, ctx0 = layer.forward(x[:0], training=True)
    assert layer.backward(ctx0, g[:0])[0].shape == (0, H, W, 2)
    # A gradient of the wrong shape is named.
    with pytest.raises(ValueError, match=re.escape(type(layer).__name__ + f" '{layer.name}'") +
                       r".*\(3, 5, 7, 1\).*\(3, 5, 7, 2\)"):
        layer.backward(ctx, g[..., :1])


# --- end to end -------------------------------------------------------------------------------------------

def _conv_kernel_moves(model):
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 2, size=16)
    conv = next(layer for layer in model.layers if isinstance(layer, layers.Conv2D))
    before = np.array(conv.get_weights()[0])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # two steps
    return np.abs(np.array(conv.get_weights()[0]) - before).max()


def test_conv_before_random_flip_trains():
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([rconv.Input((8, 8, 1)), layers.Conv2D(2, 3, padding="same"), layers.RandomFlip(seed=1),
                              layers.Flatten(), layers.Dense(2, activation="softmax")])
    assert _conv_kernel_moves(model) > 1e-6  # it was bit-identical when backward returned zeros


def test_conv_before_geometric_and_contrast_trains_functional():
    rconv.utils.set_random_seed(0)
    inputs = rconv.Input((8, 8, 1))
    z = layers.Conv2D(2, 3, padding="same")(inputs)
    z = layers.RandomRotation(0.2, seed=2)(z)
    z = layers.RandomContrast(0.3, value_range=(-5, 5), seed=3)(z)
    outputs = layers.Dense(2, activation="softmax")(layers.Flatten()(z))
    assert _conv_kernel_moves(rconv.Model(inputs, outputs)) > 1e-6

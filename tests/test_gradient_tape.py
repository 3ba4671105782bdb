"""`rconv.GradientTape`: gradients of eager computations equal central finite differences (float64 where the
computation is NumPy, float32 tolerances through the Rust layers) and the layers' own backward passes; Grad-CAM's
gradient w.r.t. an inner layer output; TensorFlow's rules for unconnected sources, non-scalar targets and
non-persistent tapes; a custom training loop that trains exactly like `train_on_batch`."""
import numpy as np
import pytest

import rconv
from rconv import layers, ops


def numeric_grad(f, x, eps=1e-6, limit=None):
    x = np.array(x, np.float64)
    g = np.zeros_like(x)
    for n, i in enumerate(np.ndindex(x.shape)):
        if limit is not None and n >= limit:
            break
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def tape_grad(fn, x):
    x = ops.convert_to_tensor(x, dtype="float64")
    with rconv.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x)


RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)) + 0.1
B = RNG.standard_normal((4, 2))
P = RNG.random((3, 4)) + 0.5  # positive

CASES = {
    "mean_square": (lambda x: ops.mean(ops.square(x - 0.3)), A),
    "sum_axis": (lambda x: ops.sum(ops.sum(x, axis=1) ** 2), A),
    "mean_axis_keepdims": (lambda x: ops.sum(ops.exp(ops.mean(x, axis=0, keepdims=True))), A),
    "sqrt_log": (lambda x: ops.sum(ops.sqrt(x) + ops.log(x) * 2.0), P),
    "abs_tanh": (lambda x: ops.sum(ops.abs(x) * ops.tanh(x)), A),
    "maximum_minimum": (lambda x: ops.sum(ops.maximum(x, 0.2) - ops.minimum(x, -0.1) * 3), A),
    "clip": (lambda x: ops.sum(ops.clip(x, -0.5, 0.5) * x), A),
    "divide_power": (lambda x: ops.sum(ops.divide(1.0, x) + ops.power(x, 3)), P),
    "operators": (lambda x: ((2 - x) * x / (x * x + 1) + -x).sum(), A),
    "slice": (lambda x: ops.sum(x[:, 1:3] * x[1:, :2].mean()), A),
    "fancy_index": (lambda x: ops.sum(x[[0, 2, 0], [1, 1, 3]] ** 2), A),
    "reshape_transpose": (lambda x: ops.sum(ops.transpose(ops.reshape(x, (2, 6)))[1:] ** 2), A),
    "expand_squeeze": (lambda x: ops.sum(ops.squeeze(ops.expand_dims(x, 0), 0) ** 3), A),
    "matmul": (lambda x: ops.sum(ops.matmul(x, B) ** 2), A),
    "matmul_vector": (lambda x: ops.sum(ops.matmul(x[0], B)), A),
    "concat_stack": (lambda x: ops.sum(ops.concatenate([x, x * 2], axis=1) ** 2)
                     + ops.sum(ops.stack([x, x ** 2])[1]), A),
    "max_reduce": (lambda x: ops.sum(ops.max(x, axis=1)) + ops.max(x), A),
    "normalize": (lambda x: ops.sum(ops.normalize(x) * B.T[:1]), A),
    "std": (lambda x: ops.std(x, axis=0).sum(), A),
    "numpy_functions": (lambda x: np.mean(np.square(x)) + np.sum(np.exp(x[:, 0])), A),
    "where": (lambda x: ops.sum(ops.where(x > 0, x * 2, x ** 2)), A),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rules_match_finite_differences(name):
    fn, x = CASES[name]
    got = tape_grad(fn, x)
    want = numeric_grad(lambda v: float(np.asarray(fn(v))), x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def _model(seed=0, conv_activation="relu"):
    rconv.utils.set_random_seed(seed)
    inp = rconv.Input((6, 5, 2))
    c = layers.Conv2D(3, 3, activation=conv_activation, padding="same", name="conv")(inp)
    h = layers.MaxPooling2D()(c)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.Flatten()(h)
    out = layers.Dense(4, activation="softmax", name="probs")(h)
    return rconv.Model(inp, out)


def test_model_input_and_weight_gradients_match_finite_differences():
    model = _model()
    x = RNG.random((2, 6, 5, 2)).astype(np.float32)
    target = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)

    def loss_of(pred):
        return ops.mean(ops.square(pred - target))

    with rconv.GradientTape() as tape:
        tape.watch(x)
        loss = loss_of(model(x))
    grads = tape.gradient(loss, [x] + model.trainable_weights)

    def f_x(v):
        return float(np.mean((model.predict(v.astype(np.float32), verbose=0).astype(np.float64) - target) ** 2))

    np.testing.assert_allclose(grads[0], numeric_grad(f_x, x, eps=1e-3), atol=1e-5)  # values up to ~6e-3
    kernel = model.get_layer("probs").kernel
    k0 = kernel.numpy()

    def f_k(v):
        kernel.assign(v)
        return f_x(x)

    num = numeric_grad(f_k, k0, eps=1e-3)
    kernel.assign(k0)
    np.testing.assert_allclose(grads[model.trainable_weights.index(kernel) + 1], num, atol=1e-5)


def test_layer_gradients_equal_the_layer_backward():
    dense = layers.Dense(3, activation="tanh")
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    g = RNG.standard_normal((4, 3)).astype(np.float32)
    with rconv.GradientTape() as tape:
        tape.watch(x)
        y = dense(x)
        target = ops.sum(y * g)
    gx, gk, gb = tape.gradient(target, [x, dense.kernel, dense.bias])
    out, ctx = dense.forward(x)
    ref_x, (ref_k, ref_b) = dense.backward(ctx, g)
    np.testing.assert_array_equal(gx, ref_x)
    np.testing.assert_array_equal(gk, ref_k)
    np.testing.assert_array_equal(gb, ref_b)


def test_grad_cam_gradient_wrt_an_inner_layer_output():
    model = _model(1, conv_activation="tanh")  # no exact zeros: no max-pool ties, where differences mislead
    x = RNG.random((2, 6, 5, 2)).astype(np.float32)
    conv = model.get_layer("conv")
    grad_model = rconv.Model(model.inputs, [conv.output, model.output])
    with rconv.GradientTape() as tape:
        conv_out, preds = grad_model(x)
        tape.watch(conv_out)
        top = preds[:, 2]
    grads = tape.gradient(top, conv_out)
    # The same gradient from a model that starts at the conv output (the "classifier head").
    head_in = rconv.Input(conv_out.shape[1:])
    h = head_in
    for layer in model.layers[model.layers.index(conv) + 1:]:
        h = layer(h)
    head = rconv.Model(head_in, h)
    c = np.asarray(conv_out, np.float64)
    num = numeric_grad(lambda v: float(head.predict(v.astype(np.float32), verbose=0)[:, 2].sum()), c, eps=1e-3)
    np.testing.assert_allclose(grads, num, rtol=2e-3, atol=6e-5)  # float32 differences; values up to ~0.2
    assert np.abs(grads).sum() > 0


def test_tensorflow_rules():
    x = ops.convert_to_tensor(np.ones((2, 3)))
    other = ops.convert_to_tensor(np.ones(3))
    with rconv.GradientTape() as tape:
        tape.watch([x, other])
        y = x * 3.0  # non-scalar target: summed
    gx, go = tape.gradient(y, [x, other])
    np.testing.assert_array_equal(gx, np.full((2, 3), 3.0))
    assert go is None  # not connected
    with pytest.raises(RuntimeError, match="non-persistent GradientTape"):
        tape.gradient(y, x)
    with rconv.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ops.sum(ops.square(x))
        z = ops.sum(x)
    np.testing.assert_array_equal(tape.gradient(y, x), 2 * x)
    np.testing.assert_array_equal(tape.gradient(z, x), np.ones_like(x))
    assert tape.gradient(z, other, unconnected_gradients="zero").shape == (3,)
    with rconv.GradientTape() as tape:
        tape.watch(x)
        with tape.stop_recording():
            hidden = ops.sum(x * 2)
        seen = ops.sum(x * 5)
    assert tape.gradient(hidden, x) is None
    with rconv.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(x * 5)
    assert np.all(tape.gradient(y, x) == 5)
    assert tape.gradient if seen is not None else None
    with pytest.raises(TypeError, match="watch"):
        rconv.GradientTape().watch("x")


def test_nothing_is_tracked_outside_a_tape():
    x = np.ones(3, np.float32)
    y = layers.Dense(2)(x[None])
    assert type(y) is np.ndarray and type(ops.mean(x)) is np.ndarray


def test_custom_training_loop_trains_like_train_on_batch():
    x = RNG.random((8, 6, 5, 2)).astype(np.float32)
    y = RNG.random((8, 4)).astype(np.float32)
    loop, fitted = _model(3), _model(3)
    fitted.compile(optimizer=rconv.optimizers.SGD(learning_rate=0.1), loss="mse")
    opt = rconv.optimizers.SGD(learning_rate=0.1)
    for _ in range(2):
        with rconv.GradientTape() as tape:
            loss = ops.mean(ops.square(y - loop(x, training=True)))
        grads = tape.gradient(loss, loop.trainable_weights)
        opt.apply_gradients(zip(grads, loop.trainable_weights))
        fitted.train_on_batch(x, y)
    for a, b in zip(loop.get_weights(), fitted.get_weights()):  # moving statistics included
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_activations_and_losses_are_recorded():
    x = ops.convert_to_tensor(RNG.standard_normal((3, 4)))
    y = np.eye(4, dtype=np.float32)[[0, 2, 3]]
    for fn in (rconv.activations.gelu, rconv.activations.softplus, rconv.activations.elu, rconv.activations.relu,
               rconv.activations.sigmoid, ops.relu, ops.sigmoid, ops.softmax):
        with rconv.GradientTape() as tape:
            tape.watch(x)
            target = ops.sum(fn(x) * 1.5)
        got = tape.gradient(target, x)
        want = numeric_grad(lambda v: float(np.sum(np.asarray(fn(v.astype(np.float32)), np.float64) * 1.5)), x,
                            eps=1e-3)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
    loss_fn = rconv.losses.CategoricalCrossentropy()
    with rconv.GradientTape() as tape:
        tape.watch(x)
        probs = rconv.activations.softmax(x)
        loss = loss_fn(y, probs)
    got = tape.gradient(loss, x)
    p = np.exp(np.asarray(x, np.float64))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, (p - y) / 3, rtol=1e-4, atol=1e-6)  # d mean CE / d logits


def test_custom_loop_with_a_loss_object_trains_like_fit():
    x = RNG.random((8, 6, 5, 2)).astype(np.float32)
    y = RNG.integers(0, 4, 8)
    loop, fitted = _model(4), _model(4)
    # SGD: Adam's normalisation would magnify float rounding in near-zero gradients into whole steps
    fitted.compile(optimizer=rconv.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    opt = rconv.optimizers.SGD(0.1)
    loss_fn = rconv.losses.SparseCategoricalCrossentropy()
    for _ in range(3):
        with rconv.GradientTape() as tape:
            loss = loss_fn(y, loop(x, training=True))
        grads = tape.gradient(loss, loop.trainable_weights)
        opt.apply_gradients(zip(grads, loop.trainable_weights))
        fitted.train_on_batch(x, y)
    for a, b in zip(loop.get_weights(), fitted.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

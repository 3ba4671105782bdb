"""Conv2D(relu) + MaxPooling2D fusion, a pass over the model's plan (graph/passes.py): Sequential and functional
models give the same predictions (bit for bit), gradients and training as with the fusion switched off
(`rconv.config.disable_kernel_fusion()`),
fuse exactly the pairs they may (spied on the fused kernel), and stay deterministic."""
import numpy as np
import pytest

import rconv
from rconv import layers, ops
from rconv import config
from rconv.graph import passes


@pytest.fixture(autouse=True)
def fusion_back_on():
    yield
    config.enable_kernel_fusion()


def set_fusion(enabled):
    (config.enable_kernel_fusion if enabled else config.disable_kernel_fusion)()


@pytest.fixture
def spy(monkeypatch):
    """Counts the fused kernel's forward calls and records `need_grad_x` of its backward calls."""
    calls = {"forward": 0, "backward": []}
    fwd, bwd = ops.conv2d_relu_max_pool, ops.conv2d_relu_max_pool_backward

    def forward(*args, **kwargs):
        calls["forward"] += 1
        return fwd(*args, **kwargs)

    def backward(*args, need_grad_x=True, **kwargs):
        calls["backward"].append(need_grad_x)
        return bwd(*args, need_grad_x=need_grad_x, **kwargs)

    monkeypatch.setattr(ops, "conv2d_relu_max_pool", forward)
    monkeypatch.setattr(ops, "conv2d_relu_max_pool_backward", backward)
    return calls


def _data(n=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 12, 12, 1), dtype=np.float32), rng.integers(0, classes, n)


def _close(a, b, rtol=1e-5):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


# --- models (input 12x12x1, 3 classes); each with the number of fused pairs per forward ------------------
def seq_seed():
    return rconv.Sequential([
        rconv.Input((12, 12, 1)),
        layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),        # 10 -> 5
        layers.Conv2D(6, 3, activation="relu"), layers.MaxPooling2D(2),        # 3 -> 1
        layers.Flatten(), layers.Dense(3, activation="softmax")]), 2


def seq_same_padding_strides():
    return rconv.Sequential([
        rconv.Input((12, 12, 1)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(3, strides=2),                                      # 12 -> 5
        layers.Conv2D(5, 3, activation="relu", padding="same", use_bias=False),
        layers.MaxPooling2D(2, strides=1, padding="same"),                      # 5 -> 5
        layers.Conv2D(3, 2, strides=2, activation="relu"), layers.MaxPooling2D(2, strides=1),  # 2 -> 1
        layers.Flatten(), layers.Dense(3, activation="softmax")]), 3


def seq_not_fusable():
    """sigmoid conv + max pool and relu conv + average pool stay unfused; only the last pair fuses."""
    return rconv.Sequential([
        rconv.Input((12, 12, 1)),
        layers.Conv2D(4, 3, activation="sigmoid"), layers.MaxPooling2D(2),        # 10 -> 5
        layers.Conv2D(4, 3, activation="relu", padding="same"), layers.AveragePooling2D(2),  # 5 -> 2
        layers.Conv2D(4, 3, activation="relu", padding="same"), layers.MaxPooling2D(2),  # 2 -> 1
        layers.Flatten(), layers.Dense(3, activation="softmax")]), 1


def fn_chain():
    x = rconv.Input((12, 12, 1))
    h = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, activation="relu")(x))
    h = layers.MaxPooling2D(2)(layers.Conv2D(6, 3, activation="relu")(h))
    return rconv.Model(x, layers.Dense(3, activation="softmax")(layers.Flatten()(h))), 2


def fn_conv_read_twice():
    """The first conv's output feeds two pooling layers (an Add joins them): it must not fuse."""
    x = rconv.Input((12, 12, 1))
    c = layers.Conv2D(4, 3, activation="relu")(x)
    h = layers.Add()([layers.MaxPooling2D(2)(c), layers.MaxPooling2D(2, strides=2, padding="same")(c)])
    h = layers.MaxPooling2D(2)(layers.Conv2D(6, 3, activation="relu")(h))
    return rconv.Model(x, layers.Dense(3, activation="softmax")(layers.Flatten()(h))), 1


def fn_conv_output_is_model_output():
    x = rconv.Input((12, 12, 1))
    h = layers.MaxPooling2D(2)(layers.Conv2D(4, 3, activation="relu")(x))
    return rconv.Model(x, layers.Conv2D(3, 5, activation="relu")(h)), 1  # (1, 1, 3)


def fn_shared_conv():
    """One conv layer called twice, each call followed by a max pool: both calls fuse, grads are summed."""
    x = rconv.Input((12, 12, 1))
    shared = layers.Conv2D(4, 3, activation="relu")
    y = layers.Conv2D(1, 1, name="mix")(x)
    h = layers.Add()([layers.MaxPooling2D(2)(shared(x)), layers.MaxPooling2D(2)(shared(y))])
    return rconv.Model(x, layers.Dense(3, activation="softmax")(layers.Flatten()(h))), 2


def fn_nested_sequential():
    x = rconv.Input((12, 12, 1))
    inner = rconv.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2)])
    h = layers.MaxPooling2D(2)(layers.Conv2D(6, 3, activation="relu")(inner(x)))
    return rconv.Model(x, layers.Dense(3, activation="softmax")(layers.Flatten()(h))), 2


MODELS = [seq_seed, seq_same_padding_strides, seq_not_fusable, fn_chain, fn_conv_read_twice,
          fn_conv_output_is_model_output, fn_shared_conv, fn_nested_sequential]


def _build(make, seed=0):
    rconv.utils.set_random_seed(seed)
    model, n_fused = make()
    regression = model.output_shape != (None, 3)
    model.compile(optimizer=rconv.optimizers.SGD(0.05, momentum=0.9),
                  loss="mse" if regression else "sparse_categorical_crossentropy")
    return model, n_fused


def _targets(model, y):
    return np.eye(3, dtype=np.float32)[y].reshape(len(y), 1, 1, 3) if model.output_shape != (None, 3) else y


def _train(make, enabled, monkeypatch):
    set_fusion(enabled)
    model, _ = _build(make)
    x, y = _data()
    y = _targets(model, y)
    losses = [float(model.train_on_batch(x[:8], y[:8])) for _ in range(3)]
    losses += model.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
    return model.get_weights(), np.array(losses)


@pytest.mark.parametrize("make", MODELS)
def test_fused_equals_unfused(make, spy, monkeypatch):
    model, n_fused = _build(make)
    x, _ = _data()
    fused = model.predict(x, verbose=0)
    assert spy["forward"] == n_fused  # one batch: every fusable pair ran fused, the others did not
    set_fusion(False)
    plain = model.predict(x, verbose=0)
    assert spy["forward"] == n_fused
    assert np.array_equal(fused, plain)
    set_fusion(True)  # switching back fuses again
    assert np.array_equal(model.predict(x, verbose=0), plain) and spy["forward"] == 2 * n_fused

    w_fused, loss_fused = _train(make, True, monkeypatch)
    w_plain, loss_plain = _train(make, False, monkeypatch)
    _close(loss_fused, loss_plain)
    assert len(w_fused) == len(w_plain)
    for a, b in zip(w_fused, w_plain):
        _close(a, b)


@pytest.mark.parametrize("make", [seq_seed, seq_same_padding_strides, fn_chain, fn_conv_read_twice, fn_shared_conv])
@pytest.mark.parametrize("need_input_grad", [True, False])
def test_gradients_match_unfused(make, need_input_grad, spy, monkeypatch):
    model, n_fused = _build(make)
    x, _ = _data(n=6, seed=1)
    g_out = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32)

    def grads():
        _, tape = model.forward(x, training=True)
        return model.backward(tape, g_out, need_input_grad=need_input_grad)

    gx_fused, g_fused = grads()
    assert spy["forward"] == len(spy["backward"]) == n_fused
    set_fusion(False)
    gx_plain, g_plain = grads()
    assert spy["forward"] == n_fused
    if need_input_grad:
        assert gx_fused.shape == x.shape
        _close(gx_fused, gx_plain)
    else:
        assert gx_fused is None and gx_plain is None
    assert len(g_fused) == len(g_plain) == len(model.weights)
    for a, b in zip(g_fused, g_plain):
        assert (a is None) == (b is None)
        if a is not None:
            _close(a, b)


def test_pointwise_conv_pair_needing_input_grad(spy, monkeypatch):
    def make():
        return rconv.Sequential([
            rconv.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
            layers.Conv2D(4, 1, activation="relu"), layers.MaxPooling2D(2),  # fused, needs grad wrt its input
            layers.Flatten(), layers.Dense(3, activation="softmax")]), 1

    test_gradients_match_unfused(make, True, spy, monkeypatch)


def test_backward_after_inference_forward(monkeypatch):
    model, _ = _build(fn_chain)
    x, _ = _data(n=4)
    g = np.ones((4, 3), np.float32)
    _, tape = model.forward(x, training=False)  # no winners were recorded: the backward finds them
    gx, grads = model.backward(tape, g)
    set_fusion(False)
    _, tape = model.forward(x, training=True)
    gx_plain, grads_plain = model.backward(tape, g)
    _close(gx, gx_plain)
    for a, b in zip(grads, grads_plain):
        _close(a, b)


@pytest.mark.parametrize("make", [seq_seed, fn_chain])
def test_frozen_first_conv_trains(make, spy, monkeypatch):
    def run(enabled):
        set_fusion(enabled)
        rconv.utils.set_random_seed(0)
        model, _ = make()
        convs = [l for l in model.layers if isinstance(l, layers.Conv2D)]
        convs[0].trainable = False
        model.compile(optimizer=rconv.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
        first = convs[0].get_weights()
        second = convs[1].get_weights()
        x, y = _data()
        losses = [float(model.train_on_batch(x, y)) for _ in range(4)]
        for a, b in zip(first, convs[0].get_weights()):
            assert np.array_equal(a, b)  # frozen
        assert not np.allclose(second[0], convs[1].kernel.numpy())  # the second conv (fused) trains
        assert losses[-1] < losses[0]
        return model.get_weights(), losses

    w_fused, l_fused = run(True)
    # Per step: the first pair (nothing trainable upstream) gets no backward at all; the second pair
    # needs no gradient wrt its input.
    assert spy["backward"] == [False] * 4
    w_plain, l_plain = run(False)
    _close(np.array(l_fused), np.array(l_plain))
    for a, b in zip(w_fused, w_plain):
        _close(a, b)


@pytest.mark.parametrize("make, expected", [
    (seq_seed, [True, False]),            # the second pair feeds the first; the first reads the model input
    (fn_chain, [True, False]),
    (fn_conv_read_twice, [True]),         # the fused pair feeds the unfused first conv
    (fn_shared_conv, [True, False]),      # shared(y) feeds the trainable "mix" conv; shared(x) reads the input
])
def test_need_input_grad_per_pair(make, expected, spy):
    model, _ = _build(make)
    x, y = _data(n=8)
    model.train_on_batch(x, y)
    assert spy["backward"] == expected


@pytest.mark.parametrize("make", [seq_seed, fn_shared_conv])
def test_fused_training_is_deterministic(make, monkeypatch):
    (w1, l1), (w2, l2) = _train(make, True, monkeypatch), _train(make, True, monkeypatch)
    assert np.array_equal(l1, l2)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


def test_fusion_pass_is_cached_per_plan(spy):
    model, _ = _build(fn_chain)
    x, _ = _data(n=2)
    model.predict(x, verbose=0)
    steps = passes.variant(model._plan)
    assert sum(s is not None and s.skip for s in steps) == 2  # two conv nodes run inside their pool nodes
    assert passes.variant(model._plan) is steps  # decided once per plan and setting
    set_fusion(False)
    plain = passes.variant(model._plan)
    assert plain is model._plan.steps and not any(s is not None and s.skip for s in plain)


def test_fusion_setting_from_environment():
    import subprocess
    import sys
    code = "import rconv; print(rconv.config.is_kernel_fusion_enabled())"
    out = subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "RCONV_FUSION": "0"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_pairs_too_large_for_winner_offsets_stay_unfused():
    big = rconv.Sequential([rconv.Input((100, 100, 1)), layers.Conv2D(1_000_000, 1, activation="relu"),
                            layers.MaxPooling2D(2)])  # 10^10 conv outputs per image > 2^32
    assert not any(s is not None and s.skip for s in passes.variant(big._plan))
    small = rconv.Sequential([rconv.Input((100, 100, 1)), layers.Conv2D(4, 1, activation="relu"),
                              layers.MaxPooling2D(2)])
    assert any(s is not None and s.skip for s in passes.variant(small._plan))


def _bn_model():
    rconv.utils.set_random_seed(0)
    x = rconv.Input((7, 9, 3))
    h = layers.Conv2D(5, 3, padding="same", use_bias=False)(x)        # folded: linear conv -> BN
    h = layers.Activation("relu")(layers.BatchNormalization()(h))
    h = layers.Conv2D(4, 3, activation="relu")(h)                     # not folded: ReLU sits between
    h = layers.BatchNormalization()(h)
    h = layers.Dense(6)(layers.Flatten()(h))                          # folded: dense with bias -> BN
    y = layers.Dense(2, activation="softmax")(layers.BatchNormalization(epsilon=0.01)(h))
    model = rconv.Model(x, y)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    data = rng.normal(size=(16, 7, 9, 3)).astype(np.float32)
    model.fit(data, rng.integers(0, 2, 16), batch_size=8, epochs=2, verbose=0)  # non-trivial moving statistics
    return model, data


def test_batch_norm_folds_into_the_linear_layer_before_it_at_inference(monkeypatch):
    model, data = _bn_model()
    inference = passes.variant(model._plan, inference=True)
    folded = [s for s in inference if s is not None and type(s.runner).__name__ == "FoldedBatchNorm"]
    assert [type(s.runner.layer).__name__ for s in folded] == ["Conv2D", "Dense"]
    assert not any(type(s.runner).__name__ == "FoldedBatchNorm" for s in passes.variant(model._plan) if s)
    calls = []
    real = ops.batch_norm

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "batch_norm", spy)
    got = model.predict(data, verbose=0)
    assert len(calls) == 1  # only the BN after the ReLU conv runs as its own pass
    set_fusion(False)
    want = model.predict(data, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    set_fusion(True)
    logs = model.evaluate(data, np.zeros(16), verbose=0, return_dict=True)
    assert np.isfinite(logs["loss"])


@pytest.mark.parametrize("linear,shape", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2), (7, 9, 3)),
    (lambda: layers.DepthwiseConv2D(2, use_bias=False), (5, 6, 2)),
    (lambda: layers.SeparableConv2D(4, 3, padding="same", use_bias=False), (7, 9, 3)),
    (lambda: layers.SeparableConv2D(3, 3, depth_multiplier=2), (6, 6, 2)),
    (lambda: layers.Conv2DTranspose(4, 3, strides=2, padding="same"), (4, 5, 3)),
    (lambda: layers.Conv2D(6, 3, groups=3, dilation_rate=2, padding="same", use_bias=False), (7, 9, 3)),
    (lambda: layers.Conv1D(5, 3, padding="causal"), (9, 3)),
])
def test_batch_norm_folds_into_every_linear_layer(linear, shape):
    """Depthwise, separable, transposed, grouped and 1-D convolutions fold a following BatchNormalization at
    inference too, with the unfused result (moving statistics and gamma/beta away from their initial values)."""
    rconv.utils.set_random_seed(1)
    x = rconv.Input(shape)
    layer = linear()
    bn = layers.BatchNormalization()
    model = rconv.Model(x, bn(layer(x)))
    rng = np.random.default_rng(1)
    channels = model.output.shape[-1]
    for var, value in ((bn.gamma, rng.uniform(0.5, 2, channels)), (bn.beta, rng.normal(size=channels)),
                       (bn.moving_mean, rng.normal(size=channels)),
                       (bn.moving_variance, rng.uniform(0.2, 3, channels))):
        var.assign(value.astype(np.float32))
    inference = passes.variant(model._plan, inference=True)
    assert [type(s.runner).__name__ for s in inference if s is not None and not s.skip] == ["FoldedBatchNorm"]
    data = rng.normal(size=(3, *shape)).astype(np.float32)
    got = model.predict(data, verbose=0)
    set_fusion(False)
    want = model.predict(data, verbose=0)  # the layers one after the other
    set_fusion(True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

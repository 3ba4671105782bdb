"""BatchNormalization / LayerNormalization beyond the per-layer contract (tests/test_layers_contract.py):

* the Rust ops against float64 NumPy references (and the backward references against finite differences),
  over odd shapes, one row, one channel, and enough rows for several reduction blocks; bitwise equal results
  whatever the thread count; bad arguments;
* training: the moving statistics after `fit` equal a NumPy replay of Keras's update; a frozen layer runs in
  inference mode and changes nothing; a residual block with two BatchNormalizations trains;
* files: a real-Keras model (tests/keras_fixtures/make_norm_fixtures.py) loads with Keras's predictions, its
  normalization configs unchanged, and resumes training like Keras; rconv's own files round-trip and load in
  real Keras (`keras` marker).
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rconv
import reference as ref
from keras_check import check_in_keras, keras_python
from rconv import layers, ops
from threads import arrays_per_thread_count

FIXTURES = Path(__file__).parent / "keras_fixtures"
TOL = 1e-5
SHAPES = [(1, 1), (7, 3), (2, 5, 7, 3), (3, 1, 1, 1), (1, 4, 4, 1), (70001, 3)]  # the last: many blocks


def _data(shape, seed=0, loc=1.0, scale=2.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + loc).astype(np.float32)


def _affine(c, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, c).astype(np.float32), rng.uniform(-1, 1, c).astype(np.float32)


# --- ops ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_batch_norm_training_op_matches_float64(shape):
    x, g = _data(shape), _data(shape, seed=2, loc=0.0, scale=1.0)
    gamma, beta = _affine(shape[-1])
    y, mean, var = ops.batch_norm(x, gamma, beta, epsilon=1e-3)
    m64, v64 = ref.batch_moments(ref.r32(x))
    ref.assert_close(mean, m64, "batch mean", rtol=TOL, atol_scale=TOL)
    ref.assert_close(var, v64, "batch variance", rtol=TOL, atol_scale=TOL)
    want = ref.batch_norm(ref.r32(x), ref.r32(gamma), ref.r32(beta), m64, v64, 1e-3)
    ref.assert_close(y, want, f"batch_norm forward {shape}", rtol=TOL, atol_scale=TOL)
    gx, dgamma, dbeta = ops.batch_norm_backward(x, g, gamma, mean, var, 1e-3, batch_stats=True)
    wx, wg, wb = ref.batch_norm_training_backward(ref.r32(x), ref.r32(g), ref.r32(gamma), 1e-3)
    for got, want, what in [(gx, wx, "grad_x"), (dgamma, wg, "grad_gamma"), (dbeta, wb, "grad_beta")]:
        ref.assert_close(got, want, f"batch_norm backward {shape}: {what}", rtol=1e-4, atol_scale=1e-4)


@pytest.mark.parametrize("shape", SHAPES[:4])
def test_batch_norm_inference_op_is_the_affine_map(shape):
    c = shape[-1]
    x, g = _data(shape), _data(shape, seed=2, loc=0.0, scale=1.0)
    gamma, beta = _affine(c)
    mm, mv = _data((c,), seed=3), np.abs(_data((c,), seed=4)) + 0.1
    y, m_out, v_out = ops.batch_norm(x, gamma, beta, mm, mv, 1e-3)
    np.testing.assert_array_equal(m_out, mm)
    np.testing.assert_array_equal(v_out, mv)
    ref.assert_close(y, ref.batch_norm(ref.r32(x), gamma, beta, mm, mv, 1e-3), "inference", rtol=TOL, atol_scale=TOL)
    gx, dgamma, dbeta = ops.batch_norm_backward(x, g, gamma, mm, mv, 1e-3, batch_stats=False)
    s = 1.0 / np.sqrt(ref.r32(mv) + 1e-3)
    g64 = ref.r32(g).reshape(-1, c)
    ref.assert_close(gx, ref.r32(g) * ref.r32(gamma) * s, "inference grad_x", rtol=TOL, atol_scale=TOL)
    xhat = (ref.r32(x).reshape(-1, c) - mm) * s
    ref.assert_close(dgamma, (g64 * xhat).sum(0), "inference grad_gamma", rtol=1e-4, atol_scale=1e-4)
    ref.assert_close(dbeta, g64.sum(0), "inference grad_beta", rtol=1e-4, atol_scale=1e-4)


def test_batch_norm_backward_reference_matches_finite_differences():
    x, g = ref.r32(_data((5, 2, 3))), ref.r32(_data((5, 2, 3), seed=2, loc=0.0, scale=1.0))
    gamma = ref.r32(_affine(3)[0])

    def loss(v):
        return float((ref.batch_norm(v, gamma, None, *ref.batch_moments(v), 1e-3) * g).sum())
    ref.assert_close(ref.batch_norm_training_backward(x, g, gamma, 1e-3)[0], ref.numeric_grad(loss, x),
                     "reference batch-norm backward vs finite differences", rtol=1e-6, atol_scale=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_layer_norm_op_matches_float64(shape):
    x, g = _data(shape), _data(shape, seed=2, loc=0.0, scale=1.0)
    gamma, beta = _affine(shape[-1])
    y, mean, inv_std = ops.layer_norm(x, gamma, beta, 1e-3)
    want = ref.layer_norm(ref.r32(x), ref.r32(gamma), ref.r32(beta), -1, 1e-3)
    ref.assert_close(y, want, f"layer_norm forward {shape}", rtol=TOL, atol_scale=TOL)
    gx, dgamma, dbeta = ops.layer_norm_backward(x, g, gamma, mean, inv_std)
    if x.size <= 200:  # float64 finite differences of the reference, every entry
        x64, g64 = ref.r32(x), ref.r32(g)
        ref.assert_close(gx, ref.numeric_grad(lambda v: float((ref.layer_norm(v, gamma, beta, -1, 1e-3) * g64).sum()),
                                              x64), "layer_norm grad_x", rtol=1e-4, atol_scale=1e-4)
    xs = ref.r32(x).reshape(-1, shape[-1])
    xhat = (xs - xs.mean(1, keepdims=True)) / np.sqrt(xs.var(1, keepdims=True) + 1e-3)
    g2 = ref.r32(g).reshape(-1, shape[-1])
    ref.assert_close(dgamma, (g2 * xhat).sum(0), "layer_norm grad_gamma", rtol=1e-4, atol_scale=1e-4)
    ref.assert_close(dbeta, g2.sum(0), "layer_norm grad_beta", rtol=1e-4, atol_scale=1e-4)


def test_norm_ops_are_bitwise_equal_across_thread_counts(tmp_path):
    script = """
import sys, numpy as np
from rconv import ops
rng = np.random.default_rng(0)
x = (rng.standard_normal((40000, 5)) * 3 + 1).astype(np.float32)
g = rng.standard_normal(x.shape).astype(np.float32)
gamma = rng.uniform(0.5, 1.5, 5).astype(np.float32)
y, m, v = ops.batch_norm(x, gamma, None)
out = [y, m, v, *ops.batch_norm_backward(x, g, gamma, m, v, batch_stats=True)]
y2, m2, s2 = ops.layer_norm(x.reshape(-1, 100), None, None)
out += [y2, m2, s2, *ops.layer_norm_backward(x.reshape(-1, 100), g.reshape(-1, 100), None, m2, s2)]
np.savez(sys.argv[1], *out)
"""
    one, three = arrays_per_thread_count(script, tmp_path)
    for i, (a, b) in enumerate(zip(one, three)):
        np.testing.assert_array_equal(a, b, err_msg=f"output {i} differs between 1 and 3 threads")


def test_norm_ops_reject_bad_arguments():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"batch_norm: `gamma` has shape \[2\], expected \[3\]"):
        ops.batch_norm(x, np.ones(2, np.float32), None)
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        ops.batch_norm(x, None, None, mean=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"batch_norm_backward: `grad_y` has shape \[4, 2\], expected \[4, 3\]"):
        ops.batch_norm_backward(x, x[:, :2], None, np.zeros(3, np.float32), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"layer_norm: `x` must be non-empty, got shape \[0, 3\]"):
        ops.layer_norm(np.zeros((0, 3), np.float32))
    with pytest.raises(TypeError, match="floating-point"):
        ops.layer_norm(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"layer_norm_backward: `mean` has shape \[3\], expected \[4\]"):
        ops.layer_norm_backward(x, x, None, np.zeros(3, np.float32), np.ones(4, np.float32))


# --- layers in models -------------------------------------------------------------------------------------

def _bn_model(**bn_kwargs):
    rconv.utils.set_random_seed(0)
    model = rconv.Sequential([layers.Input((4, 4, 3)), layers.BatchNormalization(name="bn", **bn_kwargs),
                              layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer=rconv.optimizers.SGD(0.01), loss="mse")
    return model


def test_moving_statistics_after_fit_equal_a_numpy_replay():
    x, y = _data((20, 4, 4, 3), seed=5), _data((20, 1), seed=6)
    model = _bn_model(momentum=0.9)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    bn = model.get_layer("bn")
    mm, mv = np.zeros(3, np.float32), np.ones(3, np.float32)
    keep, take = np.float32(0.9), np.float32(1.0 - 0.9)
    for _ in range(2):
        for start in range(0, 20, 8):  # batches of 8, 8, 4
            mean, var = ref.batch_moments(x[start:start + 8])
            mm = mm * keep + mean.astype(np.float32) * take
            mv = mv * keep + var.astype(np.float32) * take
    np.testing.assert_allclose(bn.moving_mean.value, mm, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance.value, mv, rtol=1e-6, atol=1e-7)
    assert [w.path.split("/")[-1] for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.trainable for w in bn.weights] == [True, True, False, False]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_frozen_batch_norm_runs_in_inference_mode_and_changes_nothing():
    x, y = _data((12, 4, 4, 3), seed=5), _data((12, 1), seed=6)
    model = _bn_model()
    bn = model.get_layer("bn")
    bn.set_weights([np.full(3, 1.5, np.float32), np.full(3, 0.2, np.float32), np.full(3, 0.5, np.float32),
                    np.full(3, 2.0, np.float32)])
    bn.trainable = False
    model.compile(optimizer=rconv.optimizers.SGD(0.01), loss="mse")
    before = bn.get_weights()
    dense_before = model.layers[-1].get_weights()[0]
    np.testing.assert_array_equal(bn(x, training=True), bn(x, training=False))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.layers[-1].get_weights()[0], dense_before), "the Dense after it must train"


def test_batch_norm_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"BatchNormalization 'bn_a': axis 3 is out of bounds .*\(2, 5\)"):
        layers.BatchNormalization(axis=3, name="bn_a")(np.zeros((2, 5), np.float32))
    bn = layers.BatchNormalization(name="bn_b")
    bn(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNormalization 'bn_b' was built for inputs of shape \(2, 5\)"):
        bn(np.zeros((2, 4), np.float32))
    with pytest.raises(NotImplementedError, match="renorm"):
        layers.BatchNormalization(renorm=True)
    with pytest.raises(ValueError, match="duplicate axes"):
        layers.LayerNormalization(axis=[1, -1])(np.zeros((2, 3), np.float32))


def test_residual_block_with_batch_norm_trains():
    rng = np.random.default_rng(0)
    n = 64
    labels = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 8, 8, 4)).astype(np.float32) * 0.5
    x[labels == 1, 2:6, 2:6, :] += 1.0  # class 1: a bright square in the middle
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((8, 8, 4))
    h = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    h = layers.Activation("relu")(layers.BatchNormalization()(h))
    h = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same", use_bias=False)(h))
    h = layers.Activation("relu")(layers.Add()([inp, h]))
    out = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = rconv.Model(inp, out)
    model.compile(optimizer=rconv.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    history = model.fit(x, labels, batch_size=16, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], f"the residual BN block did not train: losses {losses}"
    assert np.isfinite(model.predict(x, verbose=0)).all()


# --- files ------------------------------------------------------------------------------------------------

def _keras_layer_configs(path):
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    return {lay["config"]["name"]: lay for lay in config["config"]["layers"]}


def _without_object_ids(config):
    if isinstance(config, dict):
        return {k: _without_object_ids(v) for k, v in config.items() if k != "shared_object_id"}
    return config


@pytest.mark.parametrize("filename", ["residual_bn.keras", "residual_bn.h5"])
def test_real_keras_normalization_model_loads_with_keras_predictions(filename):
    expected = np.load(FIXTURES / "residual_bn_expected.npz")
    model = rconv.models.load_model(FIXTURES / filename)
    np.testing.assert_allclose(model.predict(expected["image"], verbose=0), expected["probs"], atol=1e-5)
    bn2 = model.get_layer("bn2")
    assert not np.allclose(bn2.moving_variance.value, 1.0), "the fixture's moving statistics must have moved"


def test_real_keras_normalization_configs_are_reproduced():
    model = rconv.models.load_model(FIXTURES / "residual_bn.keras")
    saved = _keras_layer_configs(FIXTURES / "residual_bn.keras")
    names = [n for n, lay in saved.items() if lay["class_name"].endswith("Normalization")]
    assert sorted(names) == ["bn1", "bn2", "bn_axis1", "ln"]
    for name in names:
        assert model.get_layer(name).get_config() == _without_object_ids(saved[name]["config"]), name


def test_real_keras_normalization_model_resumes_training_like_keras():
    expected, train = np.load(FIXTURES / "residual_bn_expected.npz"), np.load(FIXTURES / "residual_bn_train.npz")
    model = rconv.models.load_model(FIXTURES / "residual_bn.keras")
    model.train_on_batch(train["image"], train["probs"])
    np.testing.assert_allclose(model.predict(expected["image"], verbose=0), train["after_probs"], atol=1e-5)


def _rconv_norm_model(ln_axis=(1, 2, 3)):
    rconv.utils.set_random_seed(0)
    inp = rconv.Input((6, 5, 3), name="image")
    h = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)
    h = layers.Activation("relu")(layers.BatchNormalization(momentum=0.8)(h))
    h = layers.LayerNormalization(axis=list(ln_axis), epsilon=1e-4)(h)
    h = layers.BatchNormalization(axis=1, scale=False)(h)
    out = layers.Dense(2, activation="softmax", name="probs")(layers.GlobalAveragePooling2D()(h))
    model = rconv.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_rconv_normalization_files_round_trip(tmp_path):
    model = _rconv_norm_model()
    x, y = _data((6, 6, 5, 3), seed=3), np.arange(6) % 2
    for _ in range(3):
        model.train_on_batch(x, y)
    want = model.predict(x, verbose=0)
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        loaded = rconv.models.load_model(tmp_path / name)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), want, err_msg=name)
        for a, b in zip(loaded.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: weights (moving statistics included)")


@pytest.mark.keras
def test_rconv_normalization_files_load_in_real_keras(tmp_path):
    exe = keras_python()
    x, y = _data((6, 6, 5, 3), seed=3), np.arange(6) % 2
    tx = _data((6, 6, 5, 3), seed=4)
    np.savez(tmp_path / "inputs.npz", image=x)
    # Keras 3.15 cannot reload its own .h5 of a LayerNormalization over several axes (it builds gamma for the
    # last axis only), so the .h5 model normalizes over the last axis.
    for name, ln_axis in [("m.keras", (1, 2, 3)), ("m.h5", (-1,))]:
        model = _rconv_norm_model(ln_axis)
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(tmp_path / name)
        np.savez(tmp_path / "expected.npz", probs=model.predict(x, verbose=0))
        model.train_on_batch(tx, y)  # Keras must reproduce this step from the saved state (the .keras file)
        np.savez(tmp_path / "train.npz", image=tx, probs=y, after_probs=model.predict(x, verbose=0))
        extra = ["--train", tmp_path / "train.npz"] if name.endswith(".keras") else []
        check_in_keras(exe, tmp_path / name, tmp_path / "inputs.npz", tmp_path / "expected.npz", *extra)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))

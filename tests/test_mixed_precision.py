"""Mixed precision (issue 16 item 2): bfloat16 GEMMs with float32 accumulation, and the Keras policy API.

* Kernels: under `set_compute_precision("bfloat16")` dense and convolution GEMMs (forward and both
  backward products, plain and transposed operands) equal a float64 product of the bfloat16-rounded
  inputs up to float32 summation error, and a float32 product up to bfloat16 rounding; every back end
  (AMX, AVX512_BF16, portable) in its own process; results do not depend on the thread count.
* Policies: names, compute/variable dtypes and reprs as Keras reports them (`keras_fixtures/
  mixed_precision_configs.json`, made by `make_mixed_precision_fixtures.py`), the global policy, layer
  configs, `.keras` round trips, a Keras-saved mixed_bfloat16 model loading, an rconv-saved one loading
  in real Keras (`keras` marker).
* Training: the MNIST convnet reaches the float32 accuracy under mixed_bfloat16.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rconv
from rconv import _rconv, layers, mixed_precision
from keras_check import FIXTURES, check_in_keras, keras_python
from threads import arrays_per_thread_count

U = 2.0 ** -24  # float32 unit roundoff


@pytest.fixture(autouse=True)
def float32_afterwards():
    """Every test leaves the global policy and the kernel precision as it found them (float32)."""
    yield
    mixed_precision.set_global_policy("float32")
    _rconv.set_compute_precision("float32")
    mixed_precision.kernels._current = "float32"


def bf16(x):
    """float32 -> the nearest bfloat16 (ties to even), as float64."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


def data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_product(got, a, b, bias=None, what=""):
    """`got` = a @ b (+ bias) with bfloat16 operands: within float32 summation error of the float64 product of
    the rounded operands, and within bfloat16 rounding of the float32 product."""
    ar, br = bf16(a), bf16(b)
    exact = ar @ br + (0 if bias is None else bias.astype(np.float64))
    size = np.abs(ar) @ np.abs(br) + (0 if bias is None else np.abs(bias.astype(np.float64)))
    k = a.shape[-1]
    err = np.abs(got.astype(np.float64) - exact)
    assert np.all(err <= (k + 2) * U * size + 1e-30), f"{what}: {np.max(err / (size + 1e-30))} of the terms' size"
    plain = a.astype(np.float64) @ b.astype(np.float64) + (0 if bias is None else bias.astype(np.float64))
    assert np.all(np.abs(got - plain) <= 2 ** -7 * size + 1e-30), what
    return np.max(np.abs(got - plain) / (size + 1e-30))


DENSE_SHAPES = [(1, 1, 1), (1, 3, 2), (2, 5, 3), (7, 33, 17), (16, 32, 32), (31, 63, 33), (33, 64, 31),
                (64, 129, 65), (5, 288, 64), (40, 300, 10), (3, 1000, 48), (130, 97, 256), (1, 2304, 1)]


@pytest.mark.parametrize("m,k,n", DENSE_SHAPES)
def test_dense_forward_and_backward_gemms_round_operands_to_bfloat16(m, k, n):
    x, w, b, dy = data((m, k), 1), data((k, n), 2), data((n,), 3), data((m, n), 4)
    _rconv.set_compute_precision("bfloat16")
    y = _rconv.dense(x, w, b)
    dx, dw, db = _rconv.dense_backward(x, w, dy)
    _rconv.set_compute_precision("float32")
    check_product(y, x, w, b, "forward")
    check_product(dx, dy, w.T, what="grad x")  # dy · Wᵀ
    check_product(dw, x.T, dy, what="grad kernel")  # Xᵀ · dy (transposed left operand)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)  # not a GEMM: float32


def test_bfloat16_error_is_bfloat16_sized_and_float32_is_untouched():
    x, w = data((64, 512), 5), data((512, 96), 6)
    y32 = _rconv.dense(x, w, None)
    _rconv.set_compute_precision("bfloat16")
    assert _rconv.compute_precision() == "bfloat16"
    y16 = _rconv.dense(x, w, None)
    _rconv.set_compute_precision("float32")
    worst = check_product(y16, x, w)
    assert 2 ** -12 < worst < 2 ** -7  # clearly bfloat16 rounding, not float32
    np.testing.assert_array_equal(_rconv.dense(x, w, None), y32)  # back to float32, same bits as before
    with pytest.raises(ValueError, match="unknown precision"):
        _rconv.set_compute_precision("float16")


def im2col(x, kh, kw, stride, pad):
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    cols = np.stack([xp[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :]
                     for i in range(kh) for j in range(kw)], axis=3)  # n, oh, ow, taps, c
    return cols.reshape(n * oh * ow, kh * kw * c), (n, oh, ow)


# Shapes that take the im2col GEMM (cin · taps > 32; the few-tap gather kernels stay float32) and no
# Winograd (not 3×3 stride 1): (x shape, kernel (kh, kw, cin, cout), stride, padding)
CONV_CASES = [((2, 9, 7, 6), (3, 2, 6, 16), 1, "valid"), ((1, 11, 12, 9), (2, 2, 9, 32), 2, "valid"),
              ((3, 6, 5, 40), (1, 1, 40, 24), 1, "valid"), ((2, 10, 9, 5), (3, 3, 5, 7), 2, "same"),
              ((1, 13, 13, 16), (5, 5, 16, 33), 1, "same")]


@pytest.mark.parametrize("xs,ks,stride,padding", CONV_CASES)
def test_conv2d_gemms_round_operands_to_bfloat16(xs, ks, stride, padding):
    x, w, b = data(xs, 7), data(ks, 8), data(ks[3:], 9)
    _rconv.set_compute_precision("bfloat16")
    y = _rconv.conv2d(x, w, b, (stride, stride), padding)
    dy = data(y.shape, 10)
    dx, dw, _ = _rconv.conv2d_backward(x, w, dy, (stride, stride), padding)
    _rconv.set_compute_precision("float32")
    kh, kw = ks[:2]
    if padding == "same":
        ph = max((-(-xs[1] // stride) - 1) * stride + kh - xs[1], 0)
        pw = max((-(-xs[2] // stride) - 1) * stride + kw - xs[2], 0)
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    else:
        pad = ((0, 0), (0, 0))
    cols, (n, oh, ow) = im2col(x, kh, kw, stride, pad)
    wm = w.reshape(-1, ks[3])
    check_product(y.reshape(-1, ks[3]), cols, wm, b, "conv forward")
    check_product(dw.reshape(-1, ks[3]), cols.T, dy.reshape(-1, ks[3]), what="conv grad kernel")
    # grad x: col2im of dy · Wᵀ; each pixel's sum mixes several bfloat16 products, so compare per column block.
    dcols = bf16(dy.reshape(-1, ks[3])) @ bf16(wm).T
    ref = np.zeros((n,) + (xs[1] + sum(pad[0]), xs[2] + sum(pad[1]), xs[3]))
    dcols = dcols.reshape(n, oh, ow, kh, kw, xs[3])
    for i in range(kh):
        for j in range(kw):
            ref[:, i:i + stride * oh:stride, j:j + stride * ow:stride, :] += dcols[:, :, :, i, j, :]
    ref = ref[:, pad[0][0]:pad[0][0] + xs[1], pad[1][0]:pad[1][0] + xs[2], :]
    size = np.abs(ref).max() + 1.0
    np.testing.assert_allclose(dx, ref, atol=ks[3] * kh * kw * 4 * U * size * 8)


_BACKEND_SCRIPT = r"""
import sys, numpy as np
from rconv import _rconv
rng = np.random.default_rng(0)
out = {}
for m, k, n in [(1, 1, 1), (37, 77, 45), (128, 288, 64), (9, 1001, 3)]:
    x, w = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    dy = rng.standard_normal((m, n)).astype(np.float32)
    _rconv.set_compute_precision("bfloat16")
    out[f"y{m}"] = _rconv.dense(x, w, None)
    out[f"dx{m}"], out[f"dw{m}"], _ = _rconv.dense_backward(x, w, dy)
np.savez(sys.argv[1], kernel=np.array(_rconv.bf16_kernel()), **out)
"""


def test_every_back_end_computes_the_same_model(tmp_path):
    """AMX, AVX512_BF16 and the portable path (each in its own process: the back end is chosen once) all
    compute float32 sums of exact bfloat16 products: they agree to float32 summation error."""
    results = {}
    for backend in ("amx", "avx512bf16", "portable"):
        path = tmp_path / f"{backend}.npz"
        env = dict(os.environ, RCONV_BF16_KERNEL=backend)
        subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, str(path)], check=True, env=env, timeout=120)
        with np.load(path) as f:
            results[str(f["kernel"])] = {key: f[key] for key in f.files if key != "kernel"}
    assert "portable" in results
    reference = results["portable"]
    for name, arrays in results.items():
        for key, value in arrays.items():
            scale = np.abs(reference[key]).max() + 1.0
            np.testing.assert_allclose(value, reference[key], atol=2000 * U * scale, err_msg=f"{name} {key}")


_THREADS_SCRIPT = r"""
import sys, numpy as np, rconv
from rconv import layers
rconv.mixed_precision.set_global_policy("mixed_bfloat16")
rconv.utils.set_random_seed(1)
model = rconv.Sequential([layers.Input((14, 14, 3)), layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2),
                          layers.Conv2D(32, 3, padding="same", activation="relu"), layers.Flatten(),
                          layers.Dense(24, activation="relu"), layers.Dense(4, activation="softmax", dtype="float32")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(2)
x, y = rng.standard_normal((40, 14, 14, 3)).astype(np.float32), rng.integers(0, 4, 40)
model.fit(x, y, batch_size=8, epochs=2, verbose=0)
np.savez(sys.argv[1], *model.get_weights(), model.predict(x, verbose=0))
"""


def test_bfloat16_training_does_not_depend_on_the_thread_count(tmp_path):
    one, three = arrays_per_thread_count(_THREADS_SCRIPT, tmp_path)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


# --- the policy API, against what Keras reports --------------------------------------------------------
KERAS = json.loads((FIXTURES / "mixed_precision_configs.json").read_text())


@pytest.mark.parametrize("name", sorted(KERAS["policies"]))
def test_policies_match_keras(name):
    policy = mixed_precision.DTypePolicy(name)
    assert [repr(policy), policy.compute_dtype, policy.variable_dtype, policy.get_config()] == KERAS["policies"][name]
    assert mixed_precision.Policy is mixed_precision.DTypePolicy
    assert mixed_precision.get(policy.get_config()["name"]) == policy
    assert mixed_precision.deserialize(mixed_precision.serialize(policy)) == policy
    assert policy == mixed_precision.FloatDTypePolicy(name) and policy != name


def test_policy_errors():
    with pytest.raises(ValueError, match="Cannot convert 'int8_x'"):
        mixed_precision.DTypePolicy("int8_x")
    with pytest.raises(TypeError, match="must be a string"):
        mixed_precision.DTypePolicy(3)
    with pytest.raises(ValueError, match="Invalid `policy` argument"):
        mixed_precision.set_global_policy(3)
    for unsupported in ("mixed_float16", "bfloat16", "float64"):
        with pytest.raises(ValueError, match=f"Layer 'd'.*'{unsupported}'.*mixed_bfloat16"):
            layers.Dense(2, dtype=unsupported, name="d")


def test_global_policy_affects_layers_created_after_it():
    assert repr(mixed_precision.global_policy()) == KERAS["global_after_reset"]
    before = layers.Dense(3)
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert repr(mixed_precision.global_policy()) == KERAS["global_policy"]
    assert rconv.config.dtype_policy() is mixed_precision.global_policy()
    after, kept = layers.Dense(3), layers.Dense(3, dtype="float32")
    assert before.dtype_policy.name == "float32" and after.dtype_policy.name == "mixed_bfloat16"
    assert kept.dtype_policy == mixed_precision.DTypePolicy("float32")
    assert mixed_precision.DTypePolicy().name == "mixed_bfloat16"  # no name: the global one
    def dtypes(layer):
        return [layer.dtype_policy.name, layer.compute_dtype, layer.variable_dtype, layer.dtype]
    assert dtypes(after) == KERAS["layers"]["hidden"] and dtypes(kept) == KERAS["layers"]["probs"]
    rconv.config.set_dtype_policy(mixed_precision.DTypePolicy("float32"))
    assert layers.Conv2D(2, 3).compute_dtype == "float32"
    after.dtype_policy = "float32"  # Keras 3's setter
    assert after.compute_dtype == "float32"


def test_layer_configs_write_the_policy_like_keras():
    conv = layers.Conv2D(8, 3, dtype=mixed_precision.DTypePolicy("mixed_bfloat16"))
    assert conv.get_config()["dtype"] == KERAS["conv1_dtype_config"] == KERAS["serialized"]
    assert layers.Dense(5, dtype="float32").get_config()["dtype"] == KERAS["probs_dtype_config"]
    clone = layers.Conv2D.from_config(conv.get_config())
    assert clone.dtype_policy == conv.dtype_policy
    for layer in (layers.Dense(4), layers.Dense(4, dtype=KERAS["conv1_dtype_config"])):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def _mixed_model():
    rconv.utils.set_random_seed(4)
    mixed_precision.set_global_policy("mixed_bfloat16")
    inputs = rconv.Input((10, 10, 6), name="image")
    h = layers.Conv2D(16, 3, activation="relu")(inputs)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Flatten()(layers.Conv2D(32, 2, padding="same", activation="relu")(h))
    h = layers.Dense(40, activation="relu")(h)
    outputs = layers.Dense(3, activation="softmax", dtype="float32", name="probs")(h)
    mixed_precision.set_global_policy("float32")
    model = rconv.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_models_run_each_layer_in_its_compute_precision():
    model = _mixed_model()
    x = data((5, 10, 10, 6), 11)
    mixed = model.predict(x, verbose=0)
    assert _rconv.compute_precision() == "float32"  # restored after the walk
    eager = model(x)
    np.testing.assert_array_equal(eager, mixed)  # eager calls use the same policies
    for layer in model.layers:
        layer.dtype_policy = "float32"
    plain = model.predict(x, verbose=0)
    assert 1e-6 < np.abs(mixed - plain).max() < 5e-2  # bfloat16-sized differences
    # A layer called eagerly computes its GEMM in its own precision.
    dense = layers.Dense(7, dtype="mixed_bfloat16")
    h = data((4, 50), 12)
    out = dense(h)
    check_product(out, h, dense.get_weights()[0], dense.get_weights()[1])
    assert _rconv.compute_precision() == "float32"
    # Training keeps float32 variables and changes them.
    model = _mixed_model()
    before = model.get_weights()
    model.fit(x, np.arange(5) % 3, epochs=2, batch_size=5, verbose=0)
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_keras_file_round_trip_keeps_policies(tmp_path):
    model = _mixed_model()
    x = data((4, 10, 10, 6), 13)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = rconv.saving.load_model(tmp_path / "m.keras")
    names = [layer.dtype_policy.name for layer in loaded.layers[1:]]  # (the InputLayer's "dtype" is its input's)
    assert names == [layer.dtype_policy.name for layer in model.layers[1:]] == ["mixed_bfloat16"] * 5 + ["float32"]
    assert loaded.get_layer("probs").compute_dtype == "float32"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


def test_keras_saved_mixed_bfloat16_model_loads():
    model = rconv.saving.load_model(FIXTURES / "mixed_bfloat16.keras")
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    for name in ("conv1", "conv2", "hidden", "probs"):
        assert policies[name] == KERAS["layers"][name][0]
    with np.load(FIXTURES / "mixed_bfloat16_expected.npz") as f:
        np.testing.assert_allclose(model.predict(f["x"], verbose=0), f["y"], atol=1e-2)  # Keras: bf16 activations


@pytest.mark.keras
def test_rconv_saved_mixed_bfloat16_model_loads_in_real_keras(tmp_path):
    exe = keras_python()
    model = _mixed_model()
    x = data((4, 10, 10, 6), 14)
    model.fit(x, np.arange(4) % 3, epochs=1, batch_size=4, verbose=0)
    np.savez(tmp_path / "inputs.npz", image=x)
    np.savez(tmp_path / "expected.npz", probs=model.predict(x, verbose=0))
    model.save(tmp_path / "m.keras")
    check_in_keras(exe, tmp_path / "m.keras", tmp_path / "inputs.npz", tmp_path / "expected.npz", "--atol", "2e-2")
    script = ("import sys, keras; m = keras.saving.load_model(sys.argv[1]); "
              "print([l.dtype_policy.name for l in m.layers])")
    out = subprocess.run([exe, "-c", script, str(tmp_path / "m.keras")], capture_output=True, text=True, timeout=300)
    assert "'mixed_bfloat16', 'mixed_bfloat16'" in out.stdout and out.stdout.strip().endswith("'float32']"), out


# --- training --------------------------------------------------------------------------------------------
def _mnist_convnet():
    model = rconv.Sequential([
        layers.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.Flatten(), layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax", dtype="float32")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _mnist(n_train):
    (x, y), (tx, ty) = rconv.datasets.mnist.load_data()
    return (x[:n_train].reshape(-1, 28, 28, 1).astype("float32") / 255, y[:n_train],
            tx.reshape(-1, 28, 28, 1).astype("float32") / 255, ty)


def test_mnist_convnet_learns_under_mixed_bfloat16_small():
    x, y, tx, ty = _mnist(12000)
    rconv.utils.set_random_seed(0)
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = _mnist_convnet()
    assert model.layers[0].compute_dtype == "bfloat16" and model.layers[-1].compute_dtype == "float32"
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.evaluate(tx[:2000], ty[:2000], verbose=0)[1] >= 0.9


@pytest.mark.slow
def test_mnist_convnet_reaches_float32_accuracy_under_mixed_bfloat16():
    x, y, tx, ty = _mnist(60000)
    rconv.utils.set_random_seed(0)
    mixed_precision.set_global_policy("mixed_bfloat16")
    model = _mnist_convnet()
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    assert model.evaluate(tx, ty, verbose=0)[1] >= 0.98

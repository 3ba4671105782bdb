"""The preprocessing `Normalization` layer (EfficientNet's) in its adapted form: `adapt` on arrays and on
batches (Keras's merge), statistics in the non-trainable weights mean/variance/count, the backward pass
against float64 finite differences (input and statistics), `invert`, files and argument errors."""
import numpy as np
import pytest

import rconv
from rconv.layers.normalization_preprocessing import Normalization


def _reference(x, mean, var, invert=False):
    s = np.maximum(np.sqrt(np.asarray(var, np.float64)), 1e-7)
    return mean + x * s if invert else (x - mean) / s


def test_adapt_on_array_and_batches():
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(9, 5, 3, 3)) * [1.0, 5.0, 0.1] + [10.0, -2.0, 0.5]).astype(np.float32)
    layer = Normalization()
    layer.adapt(data)
    assert [v.path for v in layer.weights] == ["normalization/mean", "normalization/variance", "normalization/count"]
    assert [v.shape for v in layer.weights] == [(3,), (3,), ()] and not any(v.trainable for v in layer.weights)
    flat = data.astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(layer.adapt_variance.numpy(), flat.var(0), rtol=1e-6)
    y = layer(data)
    np.testing.assert_allclose(y, _reference(data, flat.mean(0), flat.var(0)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(y).reshape(-1, 3).std(0), 1.0, rtol=1e-5)
    batched = Normalization()
    batched.adapt([data[:4], data[4:5], data[5:]])  # unequal batches merge exactly
    np.testing.assert_allclose(batched.adapt_mean.numpy(), flat.mean(0), rtol=1e-6)
    np.testing.assert_allclose(batched.adapt_variance.numpy(), flat.var(0), rtol=1e-5)


def test_adapt_other_axes():
    data = np.random.default_rng(1).normal(size=(6, 4, 2)).astype(np.float32)
    layer = Normalization(axis=(1, 2))
    layer.adapt(data)
    np.testing.assert_allclose(layer.adapt_mean.numpy(), data.astype(np.float64).mean(0), rtol=1e-5, atol=1e-7)
    scalar = Normalization(axis=None)
    scalar.adapt(data)
    assert scalar.adapt_mean.shape == ()
    np.testing.assert_allclose(scalar(data), (data - data.mean()) / data.std(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 5, 3), (1, 1, 1, 1), (3, 4)])
def test_backward_matches_finite_differences(invert, shape):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    c = shape[-1]
    mean, var = rng.uniform(-0.5, 0.5, c), rng.uniform(0.3, 2.0, c)
    layer = Normalization(invert=invert)
    layer.build(shape)
    layer.set_weights([mean.astype(np.float32), var.astype(np.float32), np.zeros((), np.float32)])
    g = rng.standard_normal(shape)
    y, ctx = layer.forward(x, training=True)
    m32, v32 = mean.astype(np.float32).astype(np.float64), var.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(y, _reference(x.astype(np.float64), m32, v32, invert), rtol=1e-5, atol=1e-6)
    gx, (gm, gv, gc) = layer.backward(ctx, g.astype(np.float32))
    assert gc.shape == () and gc == 0

    def loss(xx, mm, vv):
        return float((_reference(xx, mm, vv, invert) * g).sum())

    h = 1e-6
    for name, arr, got in [("x", x.astype(np.float64), gx), ("mean", m32, gm), ("variance", v32, gv)]:
        num = np.zeros(arr.size)
        for i in range(arr.size):
            up, down = arr.copy().reshape(-1), arr.copy().reshape(-1)
            up[i] += h
            down[i] -= h
            args = {"x": x.astype(np.float64), "mean": m32, "variance": v32}
            args[name] = up.reshape(arr.shape)
            lu = loss(args["x"], args["mean"], args["variance"])
            args[name] = down.reshape(arr.shape)
            num[i] = (lu - loss(args["x"], args["mean"], args["variance"])) / (2 * h)
        np.testing.assert_allclose(np.asarray(got, np.float64).reshape(-1), num, rtol=1e-4, atol=1e-4,
                                   err_msg=f"gradient of {name}")
    gx2, grads2 = layer.backward(ctx, g.astype(np.float32), need_input_grad=False)
    assert gx2 is None and all(np.array_equal(a, b) for a, b in zip(grads2, [gm, gv, gc]))


def test_zero_variance_uses_epsilon():
    layer = Normalization(mean=[1.0], variance=[0.0])
    x = np.array([[1.0], [1.5]], np.float32)
    np.testing.assert_allclose(layer(x), [[0.0], [0.5 / 1e-7]], rtol=1e-6)


def test_adapted_layer_in_a_saved_model(tmp_path):
    data = np.random.default_rng(3).normal(3.0, 2.0, (8, 4, 4, 3)).astype(np.float32)
    norm = Normalization(name="norm")
    norm.adapt(data)
    inputs = rconv.Input((4, 4, 3))
    model = rconv.Model(inputs, rconv.layers.Conv2D(2, 1)(norm(inputs)))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = rconv.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)
    assert loaded.get_layer("norm").get_config()["mean"] is None
    np.testing.assert_array_equal(loaded.get_layer("norm").adapt_mean.numpy(), norm.adapt_mean.numpy())


def test_errors():
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        Normalization(mean=[1.0])
    with pytest.raises(ValueError, match="same shape"):
        Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="rank of `mean`"):
        Normalization(mean=[[1.0]], variance=[[1.0]])
    with pytest.raises(ValueError, match=r"Normalization 'n'.*\[-ndim, ndim\)"):
        Normalization(axis=3, name="n").build((None, 4))
    with pytest.raises(ValueError, match="unknown axis"):
        Normalization(axis=1).build((None, None, 3))
    layer = Normalization(name="n")
    layer.adapt(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Normalization 'n' was built for inputs of shape \(2, 3\).*\(2, 4\)"):
        layer.adapt(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Normalization 'n'.*\(5, 4\)"):
        layer(np.ones((5, 4), np.float32))
    with pytest.raises(ValueError, match="cannot be used"):
        Normalization(mean=[0.0], variance=[1.0]).adapt(np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="empty"):
        Normalization().adapt([])
    with pytest.raises(TypeError, match="adapt"):
        Normalization().adapt(3)

"""`sample_weight` and `class_weight` in fit/evaluate/train_on_batch and `weighted_metrics`, with Keras 3's
semantics: each output's loss is sum(weight * per-sample loss) / number of samples, weighted metrics are
weighted means, and `class_weight` becomes per-sample weights. The expected numbers marked "Keras 3.15.1"
were printed by real Keras (the script is in the comment of `test_matches_keras`)."""
import numpy as np
import pytest

import rconv
from rconv import layers

X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 3.0]], np.float32)
Y = np.array([0, 1, 1])
KERNEL = np.array([[1.0, -1.0], [0.5, 2.0]], np.float32)


def _model(weighted=True, lr=0.1):
    model = rconv.Sequential([rconv.Input((2,)), layers.Dense(2, activation="softmax")])
    model.layers[0].kernel.assign(KERNEL)
    model.layers[0].bias.assign(np.zeros(2, np.float32))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=rconv.optimizers.SGD(learning_rate=lr),
                  metrics=["accuracy"], weighted_metrics=["accuracy"] if weighted else None)
    return model


def _per_sample_ce(kernel=KERNEL):
    z = X.astype(np.float64) @ kernel
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(3), Y])


def test_matches_keras():
    # keras.Sequential([Input((2,)), Dense(2, activation="softmax")]), kernel KERNEL, zero bias; compile(
    # loss="sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"]);
    # evaluate(X, Y, sample_weight=[1, .5, 3]); then SGD(0.1).fit(X, Y, class_weight={0: 2, 1: .5}, batch_size=3)
    model = _model()
    logs = model.evaluate(X, Y, sample_weight=np.array([1.0, 0.5, 3.0]), verbose=0, return_dict=True)
    assert logs == pytest.approx({"accuracy": 1.0, "loss": 0.12929697334766388, "weighted_accuracy": 1.0}, rel=1e-5)
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(0.08480171114206314, rel=1e-5)
    model = _model(weighted=False)
    model.fit(X, Y, class_weight={0: 2.0, 1: 0.5}, batch_size=3, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(),
                               [[1.0066825151443481, -1.0066825151443481], [0.4946262240409851, 2.00537371635437]],
                               rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), [0.005892131011933088, -0.00589212728664279],
                               rtol=1e-4)


def test_weighted_loss_is_sum_over_batch_size():
    w = np.array([0.25, 0.0, 2.0])
    model = _model()
    loss = model.evaluate(X, Y, sample_weight=w, verbose=0)[0]
    assert loss == pytest.approx(float((w * _per_sample_ce()).sum() / 3), rel=1e-5)
    # fit's weights equal an explicit per-sample weighting in the gradient.
    a, b = _model(weighted=False), _model(weighted=False)
    a.fit(X, Y, sample_weight=w, batch_size=3, epochs=1, verbose=0, shuffle=False)
    b.fit(X, Y, class_weight=None, batch_size=3, epochs=1, verbose=0, shuffle=False)
    assert not np.allclose(a.layers[0].kernel.numpy(), b.layers[0].kernel.numpy())
    ones = _model(weighted=False)
    ones.fit(X, Y, sample_weight=np.ones(3), batch_size=3, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(ones.layers[0].kernel.numpy(), b.layers[0].kernel.numpy(), rtol=1e-6)


def test_weighted_metric_is_a_weighted_mean():
    model = _model()
    model.layers[0].kernel.assign(np.array([[1.0, -1.0], [-0.5, -2.0]], np.float32))  # gets samples 2, 3 wrong
    w = np.array([3.0, 1.0, 0.0])
    logs = model.evaluate(X, Y, sample_weight=w, verbose=0, return_dict=True)
    pred = (X @ model.layers[0].kernel.numpy()).argmax(axis=1)
    correct = (pred == Y).astype(np.float64)
    assert logs["accuracy"] == pytest.approx(correct.mean())
    assert logs["weighted_accuracy"] == pytest.approx((w * correct).sum() / w.sum())


def test_weights_from_generators_and_train_on_batch():
    w = np.array([0.5, 1.5, 2.0], np.float32)
    a, b = _model(weighted=False), _model(weighted=False)
    a.fit(((X, Y, w) for _ in range(2)), steps_per_epoch=2, epochs=1, verbose=0)
    b.train_on_batch(X, Y, sample_weight=w)
    b.train_on_batch(X, Y, sample_weight=w)
    np.testing.assert_allclose(a.layers[0].kernel.numpy(), b.layers[0].kernel.numpy(), rtol=1e-6)
    c = _model(weighted=False)
    c.train_on_batch(X, Y, class_weight={0: 0.5, 1: 1.5})
    d = _model(weighted=False)
    d.train_on_batch(X, Y, sample_weight=np.array([0.5, 1.5, 1.5]))
    np.testing.assert_allclose(c.layers[0].kernel.numpy(), d.layers[0].kernel.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="class_weight` and `sample_weight"):
        c.train_on_batch(X, Y, sample_weight=w, class_weight={0: 1.0})
    with pytest.raises(ValueError, match="one entry per sample"):
        c.train_on_batch(X, Y, sample_weight=np.ones(2))


def test_validation_split_splits_sample_weights():
    model = _model()
    x = np.concatenate([X] * 4)
    y = np.concatenate([Y] * 4)
    w = np.linspace(0.1, 2.0, 12)
    hist = model.fit(x, y, sample_weight=w, validation_split=0.25, epochs=1, batch_size=4, verbose=0)
    assert "val_weighted_accuracy" in hist.history


def test_multi_output_weights():
    a = rconv.Input((2,), name="a")
    y1 = layers.Dense(1, name="y1")(a)
    y2 = layers.Dense(1, name="y2")(a)
    model = rconv.Model(a, [y1, y2])
    model.compile(loss="mse", optimizer="sgd")
    t1, t2 = np.ones((3, 1), np.float32), np.zeros((3, 1), np.float32)
    p1, p2 = (p.astype(np.float64) for p in model.predict(X, verbose=0))
    w1, w2 = np.array([1.0, 0.0, 2.0]), np.array([0.5, 0.5, 0.5])
    logs = model.evaluate(X, [t1, t2], sample_weight=[w1, w2], verbose=0, return_dict=True)
    l1 = (w1 * ((p1 - 1) ** 2)[:, 0]).sum() / 3
    l2 = (w2 * (p2 ** 2)[:, 0]).sum() / 3
    assert logs["y1_loss"] == pytest.approx(l1, rel=1e-5) and logs["y2_loss"] == pytest.approx(l2, rel=1e-5)
    assert logs["loss"] == pytest.approx(l1 + l2, rel=1e-5)
    same = model.evaluate(X, [t1, t2], sample_weight=w1, verbose=0, return_dict=True)  # one array for both
    assert same["y2_loss"] == pytest.approx((w1 * (p2 ** 2)[:, 0]).sum() / 3, rel=1e-5)


def test_weighted_metrics_saved_in_compile_config(tmp_path):
    model = _model()
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = rconv.models.load_model(path)
    assert loaded.evaluate(X, Y, verbose=0, return_dict=True).keys() == {"loss", "accuracy", "weighted_accuracy"}

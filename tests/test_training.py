"""Training: gradients vs a plain float64 NumPy reference, real MNIST learning, reproducibility,
frozen layers, callbacks, history keys and progress output."""
import time

import numpy as np
import pytest

import rconv
from rconv import backend, callbacks, layers, models
from rconv.utils import set_random_seed, to_categorical
from seed_models import seed_convnet


# --- one step's gradients against a hand-written float64 reference ---------------------------------

def reference_grads(x, y, K, kb, W, wb, loss):
    """conv 3x3 (valid) → relu → maxpool 2x2 → flatten → dense → softmax → loss, forward and backward."""
    n, h, w, _ = x.shape
    kh, kw, _, f = K.shape
    oh, ow = h - kh + 1, w - kw + 1
    z = np.zeros((n, oh, ow, f))
    for a in range(kh):
        for b in range(kw):
            z += np.einsum("nijc,cf->nijf", x[:, a:a + oh, b:b + ow, :], K[a, b])
    z += kb
    r = np.maximum(z, 0)
    windows = r.reshape(n, oh // 2, 2, ow // 2, 2, f)
    p = windows.max(axis=(2, 4))
    flat = p.reshape(n, -1)
    logits = flat @ W + wb
    e = np.exp(logits - logits.max(1, keepdims=True))
    s = e / e.sum(1, keepdims=True)
    if loss == "categorical_crossentropy":
        value = -np.mean(np.sum(y * np.log(s), axis=1))
        dlogits = (s - y) / n
    else:  # mse through the softmax's Jacobian
        value = np.mean((s - y) ** 2)
        ds = 2 * (s - y) / y.size
        dlogits = s * (ds - np.sum(ds * s, axis=1, keepdims=True))
    dW, dwb = flat.T @ dlogits, dlogits.sum(0)
    dp = (dlogits @ W.T).reshape(p.shape)
    is_max = windows == p[:, :, None, :, None, :]
    dr = (is_max * dp[:, :, None, :, None, :]).reshape(r.shape)
    dz = dr * (z > 0)
    dK = np.zeros_like(K)
    for a in range(kh):
        for b in range(kw):
            dK[a, b] = np.einsum("nijc,nijf->cf", x[:, a:a + oh, b:b + ow, :], dz)
    return value, [dK, dz.sum((0, 1, 2)), dW, dwb]


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "mse"])
def test_one_step_gradients_match_numpy_reference(loss):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    y = to_categorical(rng.integers(0, 5, 4), 5)
    model = models.Sequential([layers.Conv2D(3, (3, 3), activation="relu", input_shape=(8, 8, 2)),
                               layers.MaxPooling2D((2, 2)), layers.Flatten(),
                               layers.Dense(5, activation="softmax")])
    # SGD with lr=1 and no momentum: new = old - grad, so the update *is* the gradient.
    model.compile(optimizer=rconv.optimizers.SGD(learning_rate=1.0), loss=loss)
    before = model.get_weights()
    value = model.train_on_batch(x, y)
    grads = [b - a for b, a in zip(before, model.get_weights())]
    ref_value, ref_grads = reference_grads(*(a.astype(np.float64) for a in [x, y, *before]), loss)
    assert value == pytest.approx(ref_value, rel=1e-5)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-6)


# --- real data ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist():
    from rconv.datasets import mnist as mnist_data
    (x_train, y_train), (x_test, y_test) = mnist_data.load_data()
    return ((x_train[:10000].reshape(-1, 28, 28, 1).astype("float32") / 255, y_train[:10000]),
            (x_test[:1000].reshape(-1, 28, 28, 1).astype("float32") / 255, y_test[:1000]))


def test_seed_convnet_learns_mnist_subset_in_two_epochs(mnist):
    """10,000 training images, 2 epochs (~8 s on 2 cores): >= 0.93 on 1,000 test images."""
    (x, y), (x_test, y_test) = mnist
    set_random_seed(0)
    model = seed_convnet()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    history = model.fit(x, to_categorical(y), epochs=2, batch_size=64, verbose=0)
    assert time.time() - start < 60
    assert list(history.history) == ["accuracy", "loss"]
    test_loss, test_acc = model.evaluate(x_test, to_categorical(y_test), verbose=0)
    assert test_acc >= 0.93, test_acc
    assert test_loss < 0.3
    probs = model.predict(x_test[:10], verbose=0)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_dense_net_sparse_labels_acc_keys_and_validation(mnist):
    (x, y), (x_test, y_test) = mnist
    model = models.Sequential([layers.Dense(128, activation="relu", input_shape=(784,)),
                               layers.Dropout(0.2), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(x.reshape(-1, 784), y, epochs=2, batch_size=128, verbose=0,
                        validation_data=(x_test.reshape(-1, 784), y_test))
    assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert len(history.history["loss"]) == 2 and history.epoch == [0, 1]
    assert history.history["val_acc"][-1] > 0.88
    logs = model.evaluate(x_test.reshape(-1, 784), y_test, verbose=0, return_dict=True)
    assert logs["acc"] == pytest.approx(history.history["val_acc"][-1])
    # validation_split takes the last fraction, like Keras
    history = model.fit(x.reshape(-1, 784), y, epochs=1, verbose=0, validation_split=0.1)
    assert set(history.history) == {"acc", "loss", "val_acc", "val_loss"}


def small_problem(n=256):
    rng = np.random.default_rng(1)
    x = rng.random((n, 10, 10, 1), dtype=np.float32)
    y = to_categorical((x[:, :5].mean((1, 2, 3)) > x[:, 5:].mean((1, 2, 3))).astype(int), 2)
    return x, y


def small_model(dropout=0.3):
    return models.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
                              layers.MaxPooling2D(), layers.Flatten(), layers.Dropout(dropout),
                              layers.Dense(2, activation="softmax")])


def test_set_random_seed_reproduces_weights_and_history():
    x, y = small_problem()
    runs = []
    for _ in range(2):
        backend.clear_session()
        set_random_seed(123)
        model = small_model()
        initial = model.get_weights()
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
        runs.append((initial, model.get_weights(), history.history))
    (init_a, final_a, hist_a), (init_b, final_b, hist_b) = runs
    for a, b in zip(init_a + final_a, init_b + final_b):
        np.testing.assert_array_equal(a, b)
    assert hist_a == hist_b


def test_frozen_layer_is_bit_identical_after_fit():
    x, y = small_problem()
    model = small_model()
    model.layers[0].trainable = False
    before = model.get_weights()
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before[:2], after[:2]))
    assert not np.array_equal(before[2], after[2])  # the dense head did learn


def test_binary_sigmoid_output_and_scalar_evaluate():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((512, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    model = models.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer=rconv.optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.95 and isinstance(model.metrics_names if hasattr(model, "metrics_names") else [], list)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    assert isinstance(model.evaluate(x, y, verbose=0), float)


class Recorder(callbacks.Callback):
    def __init__(self, stop_at_epoch=None):
        super().__init__()
        self.events = []
        self.stop_at_epoch = stop_at_epoch

    def on_train_begin(self, logs=None): self.events.append("train_begin")
    def on_epoch_begin(self, epoch, logs=None): self.events.append(f"epoch_begin{epoch}")
    def on_train_batch_end(self, batch, logs=None): self.events.append("batch")
    def on_test_begin(self, logs=None): self.events.append("test_begin")

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(f"epoch_end{epoch}:{sorted(logs)}")
        if epoch == self.stop_at_epoch:
            self.model.stop_training = True

    def on_train_end(self, logs=None): self.events.append("train_end")


def test_callbacks_hooks_and_stop_training():
    x, y = small_problem(64)
    model = small_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    rec = Recorder(stop_at_epoch=1)
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0, callbacks=[rec], validation_data=(x, y))
    assert rec.model is model and rec.params["epochs"] == 5
    assert rec.events == ["train_begin", "epoch_begin0", "batch", "batch", "test_begin",
                          "epoch_end0:['accuracy', 'loss', 'val_accuracy', 'val_loss']",
                          "epoch_begin1", "batch", "batch", "test_begin",
                          "epoch_end1:['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]
    assert len(history.history["loss"]) == 2 and model.history is history


def test_progress_output_off_terminal_has_no_control_characters(capsys):
    x, y = small_problem(64)
    model = small_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=16)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out and "\b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("4/4 ━━━━━━━━━━━━━━━━━━━━ ") and "step - accuracy: " in lines[1]
    assert " - loss: " in lines[1]
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("4/4 - ")
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y)
    assert capsys.readouterr().out.startswith("2/2 ━")
    model.predict(x)
    assert capsys.readouterr().out.startswith("2/2 ━")

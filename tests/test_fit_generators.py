"""fit / evaluate / predict on generators, Sequence / PyDataset objects and rconv's image iterators:
step counts, epoch hooks, validation streams, Keras's error messages, deprecated *_generator aliases
and History keys."""
import warnings

import numpy as np
import pytest

import rconv
from rconv import layers
from rconv.utils import PyDataset, Sequence, set_random_seed


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def make_model(metrics=("accuracy",), lr=0.05):
    set_random_seed(1)
    model = rconv.Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer=rconv.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                  metrics=list(metrics))
    return model


class ArraySequence(Sequence):
    """Batches of (x, y) in order; records accesses and epoch hooks."""

    def __init__(self, x, y, batch_size=16, extra=None):
        super().__init__()
        self.x, self.y, self.batch_size, self.extra = x, y, batch_size, extra
        self.accessed, self.epoch_ends, self.epoch_begins = [], 0, 0

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        self.accessed.append(i)
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        if self.extra == "x_only":
            return self.x[s]
        if self.extra == "weights":
            return self.x[s], self.y[s], np.ones(len(self.x[s]), np.float32)
        return self.x[s], self.y[s]

    def on_epoch_begin(self):
        self.epoch_begins += 1

    def on_epoch_end(self):
        self.epoch_ends += 1


class DuckSequence:
    """No base class: just __len__ / __getitem__ (Keras accepts such objects through PyDataset)."""

    def __init__(self, x, y, batch_size=16):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.y[s]


def batch_generator(x, y, batch_size=16, counter=None, loops=None):
    loop = 0
    while loops is None or loop < loops:
        for start in range(0, len(x), batch_size):
            if counter is not None:
                counter.append(start)
            yield x[start:start + batch_size], y[start:start + batch_size]
        loop += 1


# --- generators --------------------------------------------------------------------------------------------

def test_fit_generator_with_steps_per_epoch():
    x, y = make_data()
    model = make_model()
    seen = []
    history = model.fit(batch_generator(x, y, counter=seen), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(seen) == 6  # exactly steps_per_epoch * epochs batches drawn
    assert history.epoch == [0, 1]
    assert sorted(history.history) == ["accuracy", "loss"]
    assert model.optimizer.iterations == 6


def test_bare_generator_needs_steps_per_epoch():
    x, y = make_data()
    model = make_model()
    with pytest.raises(ValueError, match=r"`steps_per_epoch=None` is only valid for a generator based on the "
                                         r"`keras.utils.Sequence` class"):
        model.fit(batch_generator(x, y), epochs=1, verbose=0)


def test_generator_rejects_y_and_validation_split():
    x, y = make_data()
    model = make_model()
    with pytest.raises(ValueError, match="`y` argument is not supported"):
        model.fit(batch_generator(x, y), y, steps_per_epoch=2, verbose=0)
    with pytest.raises(ValueError, match="`validation_split` is only supported"):
        model.fit(batch_generator(x, y), steps_per_epoch=2, validation_split=0.2, verbose=0)


def test_generator_running_out_stops_training():
    x, y = make_data(n=48)  # 3 batches, one pass only
    model = make_model()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = model.fit(batch_generator(x, y, loops=1), steps_per_epoch=2, epochs=5, verbose=0)
    assert history.epoch == [0, 1]
    assert model.optimizer.iterations == 3


def test_generator_matches_arrays_exactly():
    """The same batches in the same order give the same weights as the array path."""
    x, y = make_data()
    a = make_model()
    a.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    b = make_model()
    b.fit(batch_generator(x, y), steps_per_epoch=4, epochs=2, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    c = make_model()
    c.fit(ArraySequence(x, y), epochs=2, shuffle=False, verbose=0)
    for wa, wc in zip(a.get_weights(), c.get_weights()):
        np.testing.assert_allclose(wa, wc, rtol=1e-6, atol=1e-7)


def test_evaluate_and_predict_on_generators():
    x, y = make_data()
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0)
    ref_loss, ref_acc = model.evaluate(x, y, batch_size=16, verbose=0)
    # A finite generator without `steps` is read to the end (Keras 3).
    loss, acc = model.evaluate(batch_generator(x, y, loops=1), verbose=0)
    assert loss == pytest.approx(ref_loss, rel=1e-6) and acc == pytest.approx(ref_acc)
    # `steps` limits an endless one.
    logs = model.evaluate(batch_generator(x, y), steps=4, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(ref_loss, rel=1e-6)
    ref_pred = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(batch_generator(x, y), steps=4, verbose=0), ref_pred, rtol=1e-6)
    # x-only batches, and a partial run.
    x_only = (x[i:i + 16] for i in range(0, 64, 16))
    np.testing.assert_allclose(model.predict(x_only, verbose=0), ref_pred, rtol=1e-6)
    assert model.predict(batch_generator(x, y), steps=2, verbose=0).shape == (32, 3)


def test_bad_batch_structure():
    x, y = make_data()
    model = make_model()
    gen = ((x[:8], y[:8], None, None) for _ in range(3))
    with pytest.raises(ValueError, match=r"Data is expected to be in format `x`, `\(x,\)`, `\(x, y\)`"):
        model.fit(gen, steps_per_epoch=2, verbose=0)


# --- Sequence / PyDataset ----------------------------------------------------------------------------------

def test_sequence_default_steps_and_epoch_hooks(capsys):
    x, y = make_data()
    seq = ArraySequence(x, y)
    model = make_model()
    history = model.fit(seq, epochs=3, verbose=2)
    assert seq.epoch_ends == 3 and seq.epoch_begins == 3
    assert sorted(seq.accessed) == sorted(list(range(4)) * 3)  # every batch once per epoch (order shuffled)
    assert model.optimizer.iterations == 12
    assert len(history.history["loss"]) == 3
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "4/4" in out


def test_sequence_batch_order_shuffled_only_when_asked():
    x, y = make_data(n=160)
    seq = ArraySequence(x, y)  # 10 batches
    make_model().fit(seq, epochs=1, shuffle=False, verbose=0)
    assert seq.accessed == list(range(10))
    seq.accessed.clear()
    import random
    random.seed(0)
    make_model().fit(seq, epochs=1, shuffle=True, verbose=0)
    assert sorted(seq.accessed) == list(range(10)) and seq.accessed != list(range(10))


def test_sequence_with_explicit_steps_continues_across_epochs():
    x, y = make_data()
    seq = ArraySequence(x, y)  # 4 batches
    model = make_model()
    model.fit(seq, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    assert seq.accessed == [0, 1, 2, 3, 0, 1]
    assert seq.epoch_ends == 3


def test_duck_typed_sequence_and_pydataset_alias():
    assert Sequence is PyDataset and rconv.utils.PyDataset is PyDataset
    x, y = make_data()
    model = make_model()
    history = model.fit(DuckSequence(x, y), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert model.optimizer.iterations == 8
    loss, _ = model.evaluate(DuckSequence(x, y), verbose=0)
    assert loss == pytest.approx(model.evaluate(x, y, batch_size=16, verbose=0)[0], rel=1e-6)
    pred = model.predict(ArraySequence(x, y, extra="x_only"), verbose=0)
    np.testing.assert_allclose(pred, model.predict(x, verbose=0), rtol=1e-6)
    pred = model.predict(ArraySequence(x, y), verbose=0)  # (x, y) batches: y is ignored
    assert pred.shape == (64, 3)


def test_validation_streams():
    x, y = make_data()
    xv, yv = make_data(n=32, seed=5)
    model = make_model()
    h1 = model.fit(ArraySequence(x, y), validation_data=ArraySequence(xv, yv), epochs=2, verbose=0)
    assert sorted(h1.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h1.history["val_loss"][-1] == pytest.approx(model.evaluate(xv, yv, verbose=0)[0], rel=1e-6)
    seen = []
    h2 = model.fit(batch_generator(x, y), steps_per_epoch=4, epochs=2, verbose=0,
                   validation_data=batch_generator(xv, yv, batch_size=8, counter=seen), validation_steps=4)
    assert len(seen) == 8 and len(h2.history["val_loss"]) == 2
    with pytest.raises(ValueError, match="`validation_steps=None` is only valid"):
        model.fit(batch_generator(x, y), steps_per_epoch=4, validation_data=batch_generator(xv, yv), verbose=0)
    # Array validation data with a generator for training, and validation_steps on arrays.
    h3 = model.fit(batch_generator(x, y), steps_per_epoch=4, validation_data=(xv, yv), validation_steps=1,
                   validation_batch_size=8, verbose=0)
    assert h3.history["val_loss"][0] == pytest.approx(model.evaluate(xv[:8], yv[:8], verbose=0)[0], rel=1e-5)


def test_model_built_by_first_generator_batch():
    """A model without an Input learns its shape from the first batch, and trains its weights."""
    x, y = make_data()
    set_random_seed(1)
    model = rconv.Sequential([layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=rconv.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["acc"])
    history = model.fit(batch_generator(x, y), steps_per_epoch=4, epochs=3, verbose=0)
    assert model.built and history.history["loss"][-1] < history.history["loss"][0]
    assert sorted(history.history) == ["acc", "loss"]


# --- image iterators ---------------------------------------------------------------------------------------

def test_image_data_generator_flow():
    from rconv.preprocessing.image import ImageDataGenerator
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(40, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 2, 40)
    set_random_seed(0)
    model = rconv.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(2, 3, activation="relu"), layers.Flatten(),
                              layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    it = ImageDataGenerator(rescale=1 / 255).flow(images, labels, batch_size=16, seed=1)
    val = ImageDataGenerator(rescale=1 / 255).flow(images, labels, batch_size=16, shuffle=False)
    history = model.fit(it, epochs=2, validation_data=val, verbose=0)
    assert model.optimizer.iterations == 2 * len(it) == 6
    assert it.epoch == 2  # on_epoch_end advanced the iterator's epoch
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert model.predict(val, verbose=0).shape == (40, 2)
    assert np.isfinite(model.evaluate(it, verbose=0)[0])
    # next()-style consumption through a bare iterator wrapper with steps_per_epoch.
    model.fit(iter(it.__next__, None), steps_per_epoch=3, epochs=1, verbose=0)
    it.close()
    val.close()


# --- deprecated aliases and history keys -------------------------------------------------------------------

def test_deprecated_generator_methods():
    x, y = make_data()
    model = make_model()
    with pytest.warns(DeprecationWarning, match="`Model.fit_generator` is deprecated"):
        history = model.fit_generator(batch_generator(x, y), steps_per_epoch=4, epochs=2, verbose=0,
                                      validation_data=ArraySequence(x, y), workers=1)
    assert len(history.history["val_loss"]) == 2
    with pytest.warns(DeprecationWarning, match="`Model.evaluate_generator` is deprecated"):
        loss, acc = model.evaluate_generator(ArraySequence(x, y))
    assert loss == pytest.approx(model.evaluate(x, y, batch_size=16, verbose=0)[0], rel=1e-6)
    with pytest.warns(DeprecationWarning, match="`Model.predict_generator` is deprecated"):
        pred = model.predict_generator(batch_generator(x, y), steps=4)
    np.testing.assert_allclose(pred, model.predict(x, verbose=0), rtol=1e-6)


@pytest.mark.parametrize("metric", ["acc", "accuracy"])
def test_history_keys_follow_keras3(metric):
    x, y = make_data()
    model = make_model(metrics=[metric])
    h_arrays = model.fit(x, y, validation_data=(x, y), epochs=1, verbose=0)
    h_gen = model.fit(batch_generator(x, y), steps_per_epoch=4, validation_data=ArraySequence(x, y), epochs=1,
                      verbose=0)
    expected = sorted([metric, "loss", "val_" + metric, "val_loss"])
    assert sorted(h_arrays.history) == expected and sorted(h_gen.history) == expected
    logs = model.evaluate(ArraySequence(x, y), verbose=0, return_dict=True)
    assert sorted(logs) == sorted([metric, "loss"])


def test_unknown_step_count_progress_bar(capsys):
    x, y = make_data()
    model = make_model()
    model.evaluate(batch_generator(x, y, loops=1), verbose=1)
    out = capsys.readouterr().out
    assert "4/4" in out and "Unknown" not in out


def test_array_path_unchanged():
    x, y = make_data()
    model = make_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    assert model.optimizer.iterations == 2 * 3
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]

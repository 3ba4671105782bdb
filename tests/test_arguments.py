"""Bad arguments are refused where they enter, with an error naming the layer or method and the value
(issue 12, part 5: the bad-argument table)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import rconv
from rconv import layers

X = np.zeros((6, 5, 5, 1), np.float32)
Y = np.zeros(6, np.int64)


def _model():
    m = rconv.Sequential([layers.Input((5, 5, 1)), layers.Conv2D(2, 3), layers.Flatten(),
                          layers.Dense(3, activation="softmax")], name="net")
    m.compile("adam", "sparse_categorical_crossentropy")
    return m


# (call, expected message fragments): each must raise ValueError naming the method and the value.
METHOD_CASES = {
    "predict batch_size=-1": (lambda m: m.predict(X, batch_size=-1), "predict()", "batch_size", "-1"),
    "predict batch_size=0": (lambda m: m.predict(X, batch_size=0), "predict()", "batch_size", "0"),
    "predict batch_size=2.5": (lambda m: m.predict(X, batch_size=2.5), "predict()", "batch_size", "2.5"),
    "predict batch_size=True": (lambda m: m.predict(X, batch_size=True), "predict()", "batch_size", "True"),
    "predict batch_size='4'": (lambda m: m.predict(X, batch_size="4"), "predict()", "batch_size", "'4'"),
    "predict steps=0": (lambda m: m.predict(X, steps=0), "predict()", "steps", "0"),
    "fit batch_size=-3": (lambda m: m.fit(X, Y, batch_size=-3), "fit()", "batch_size", "-3"),
    "fit batch_size=0": (lambda m: m.fit(X, Y, batch_size=0), "fit()", "batch_size", "0"),
    "fit epochs=-1": (lambda m: m.fit(X, Y, epochs=-1), "fit()", "epochs", "-1"),
    "fit epochs=1.5": (lambda m: m.fit(X, Y, epochs=1.5), "fit()", "epochs", "1.5"),
    "fit initial_epoch=-1": (lambda m: m.fit(X, Y, initial_epoch=-1), "fit()", "initial_epoch", "-1"),
    "fit steps_per_epoch=0": (lambda m: m.fit(X, Y, steps_per_epoch=0), "fit()", "steps_per_epoch", "0"),
    "fit validation_steps=-2": (lambda m: m.fit(X, Y, validation_data=(X, Y), validation_steps=-2), "fit()",
                                "validation_steps", "-2"),
    "fit validation_batch_size=0": (lambda m: m.fit(X, Y, validation_data=(X, Y), validation_batch_size=0),
                                    "fit()", "validation_batch_size", "0"),
    "fit validation_freq=0": (lambda m: m.fit(X, Y, validation_data=(X, Y), validation_freq=0), "fit()",
                              "validation_freq", "0"),
    "evaluate batch_size=-1": (lambda m: m.evaluate(X, Y, batch_size=-1), "evaluate()", "batch_size", "-1"),
    "evaluate steps=-5": (lambda m: m.evaluate(X, Y, steps=-5), "evaluate()", "steps", "-5"),
}


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_method_arguments(case):
    call, *fragments = METHOD_CASES[case]
    m = _model()
    before = m.get_weights()
    with pytest.raises(ValueError) as info:
        call(m)
    message = str(info.value)
    for fragment in ("Model 'net'", *fragments):
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights())), "nothing trained"


def test_epochs_zero_trains_nothing():
    m = _model()
    before = m.get_weights()
    m.fit(X, Y, epochs=0, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_numpy_integers_are_accepted():
    m = _model()
    m.fit(X, Y, batch_size=np.int64(4), epochs=np.int32(1), verbose=0)
    assert m.predict(X, batch_size=np.int16(5), verbose=0).shape == (6, 3)


LAYER_CASES = [
    (lambda: layers.Conv2D(4, 3, strides=0), "Conv2D", "strides", "0"),
    (lambda: layers.Conv2D(4, 3, strides=(1, -2)), "Conv2D", "strides", "(1, -2)"),
    (lambda: layers.Conv2D(-1, 3), "Conv2D", "filters must be a positive integer", "-1"),
    (lambda: layers.Conv2D(0, 3), "Conv2D", "filters must be a positive integer", "0"),
    (lambda: layers.Conv2D(2.5, 3), "Conv2D", "filters", "2.5"),
    (lambda: layers.Conv2D(4, 0), "Conv2D", "kernel_size", "0"),
    (lambda: layers.Conv2D(4, (3, 3, 3)), "Conv2D", "kernel_size", "(3, 3, 3)"),
    (lambda: layers.Conv2D(4, "3"), "Conv2D", "kernel_size", "'3'"),
    (lambda: layers.Conv2D(4, 3, dilation_rate=0), "Conv2D", "dilation_rate", "0"),
    (lambda: layers.MaxPooling2D(0), "MaxPooling2D", "pool_size", "0"),
    (lambda: layers.MaxPooling2D(2, strides=0), "MaxPooling2D", "strides", "0"),
    (lambda: layers.AveragePooling2D((2, -1)), "AveragePooling2D", "pool_size", "(2, -1)"),
    (lambda: layers.AveragePooling2D(2.0), "AveragePooling2D", "pool_size", "2.0"),
    (lambda: layers.Dense(0), "Dense", "units must be a positive integer", "0"),
    (lambda: layers.Dense(-4), "Dense", "units", "-4"),
    (lambda: layers.Dense(2.5), "Dense", "units", "2.5"),
    (lambda: layers.Dense(True), "Dense", "units", "True"),
]


@pytest.mark.parametrize("make,layer,name,value", LAYER_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_layer_arguments(make, layer, name, value):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert message.startswith(f"{layer} '") and name in message and value in message, message


def test_layer_arguments_from_a_config_are_checked():
    config = layers.Conv2D(2, 3, name="c").get_config()
    with pytest.raises(ValueError, match="Conv2D 'c'.*strides"):
        layers.Conv2D.from_config({**config, "strides": [0, 0]})  # was a ZeroDivisionError at call time


@pytest.mark.parametrize("value", [
    np.ones((5, 3), np.complex64),
    np.ones((5, 3), np.float32).astype(object),
    np.full((5, 3), "1"),
    np.zeros((5, 3), "datetime64[s]"),
], ids=["complex", "object", "str", "datetime"])
def test_set_weights_refuses_non_real_dtypes(value):
    layer = layers.Dense(3, name="d")
    layer.build((None, 5))
    before = layer.get_weights()
    with pytest.raises(TypeError, match=rf"Dense 'd': weight 'd/kernel'.*{re.escape(str(value.dtype))}"):
        layer.set_weights([value, np.zeros(3)])
    assert all(np.array_equal(a, b) for a, b in zip(before, layer.get_weights())), "nothing assigned"


def test_set_weights_on_a_model_refuses_complex():
    m = _model()
    weights = m.get_weights()
    weights[-1] = weights[-1] + 1j
    with pytest.raises(TypeError, match="complex"):
        m.set_weights(weights)


@pytest.mark.parametrize("value", [np.ones((5, 3), np.int64), np.ones((5, 3), bool), np.ones((5, 3)).tolist(),
                                   np.ones((5, 3), np.float64)], ids=["int", "bool", "list", "float64"])
def test_set_weights_takes_real_numbers(value):
    layer = layers.Dense(3)
    layer.build((None, 5))
    layer.set_weights([value, np.zeros(3)])
    np.testing.assert_array_equal(layer.get_weights()[0], np.ones((5, 3), np.float32))


# Empty data: a clear ValueError, never a ZeroDivisionError or a silent no-op.
class _EmptyBatches(rconv.utils.PyDataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return np.zeros((0, 5, 5, 1), np.float32), np.zeros(0)


def _no_batches():
    yield from ()


@pytest.mark.parametrize("call,match", [
    (lambda m: m.fit(X[:0], Y[:0], verbose=0), "0 samples"),
    (lambda m: m.evaluate(X[:0], Y[:0], verbose=0), "0 samples"),
    (lambda m: m.predict(X[:0], verbose=0), "0 samples"),
    (lambda m: m.fit(X, Y, validation_data=(X[:0], Y[:0]), verbose=0), "0 samples"),
    (lambda m: m.fit(_EmptyBatches(), verbose=0), "batch with 0 samples"),
    (lambda m: m.fit(_no_batches(), steps_per_epoch=2, verbose=0), "produced no batch"),
    (lambda m: m.predict(_no_batches(), verbose=0), "produced no batch"),
], ids=["fit", "evaluate", "predict", "validation", "empty-batches", "no-batches", "predict-no-batches"])
def test_empty_data(call, match):
    with pytest.raises(ValueError, match=match):
        call(_model())

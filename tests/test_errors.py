"""Bad inputs give clear Keras-like errors naming what was expected and what came."""
import numpy as np
import pytest

from rconv import layers, losses, models
from rconv.utils import to_categorical


def convnet():
    model = models.Sequential([layers.Conv2D(4, 3, activation="relu", input_shape=(28, 28, 1)),
                               layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def test_wrong_input_shape_names_model_and_both_shapes():
    model = convnet()
    x = np.zeros((8, 784), np.float32)
    with pytest.raises(ValueError) as info:
        model.fit(x, to_categorical(np.arange(8) % 10, 10), verbose=0)
    msg = str(info.value)
    assert '"sequential"' in msg and "(None, 28, 28, 1)" in msg and "(8, 784)" in msg
    with pytest.raises(ValueError, match=r"\(8, 784\)"):
        model.predict(x, verbose=0)


def test_integer_labels_with_categorical_crossentropy_suggest_fixes():
    model = convnet()
    x = np.zeros((8, 28, 28, 1), np.float32)
    for labels in (np.arange(8) % 10, (np.arange(8) % 10).reshape(8, 1)):
        with pytest.raises(ValueError) as info:
            model.fit(x, labels, verbose=0)
        msg = str(info.value)
        assert "sparse_categorical_crossentropy" in msg and "to_categorical" in msg
        assert "(None, 10)" in msg and str(labels.shape) in msg


def test_one_hot_labels_with_sparse_loss_suggest_categorical():
    model = convnet()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"\(8, 10\).*categorical_crossentropy"):
        model.fit(np.zeros((8, 28, 28, 1)), to_categorical(np.arange(8) % 10, 10), verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 10\).*12"):
        model.fit(np.zeros((8, 28, 28, 1)), np.arange(8) + 5, verbose=0)


def test_target_shape_mismatch_names_both_shapes():
    model = convnet()
    with pytest.raises(ValueError, match=r"\(None, 10\).*\(8, 5\)"):
        model.fit(np.zeros((8, 28, 28, 1)), np.zeros((8, 5)), verbose=0)
    with pytest.raises(ValueError, match=r"same number of samples.*\(8, 28, 28, 1\).*\(7, 10\)"):
        model.fit(np.zeros((8, 28, 28, 1)), np.zeros((7, 10)), verbose=0)


def test_fit_before_compile_is_a_runtime_error():
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    for call in (lambda: model.fit(np.zeros((2, 3)), np.zeros((2, 2))),
                 lambda: model.evaluate(np.zeros((2, 3)), np.zeros((2, 2))),
                 lambda: model.train_on_batch(np.zeros((2, 3)), np.zeros((2, 2)))):
        with pytest.raises(RuntimeError, match=r"You must call `compile\(\)` before"):
            call()
    assert model.predict(np.zeros((2, 3)), verbose=0).shape == (2, 2)  # predict needs no compile


def test_unknown_names_list_the_accepted_ones():
    model = models.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'ftrl'.*rmsprop"):
        model.compile(optimizer="ftrl", loss="mse")
    with pytest.raises(ValueError, match=r"Unknown loss: 'circle'.*categorical_crossentropy"):
        model.compile(optimizer="sgd", loss="circle")
    with pytest.raises(ValueError, match=r"Unknown metric: 'f1'.*accuracy"):
        model.compile(optimizer="sgd", loss="mse", metrics=["f1"])
    with pytest.raises(ValueError, match=r"Unknown activation function: 'celu'.*softmax"):
        layers.Conv2D(2, 3, activation="celu")
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        layers.Dense(2, unit_s=3)


def test_loss_function_forms_give_per_sample_values_and_classes_batch_means():
    y = to_categorical([0, 1], 2)
    p = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    assert losses.categorical_crossentropy(y, p) == pytest.approx([-np.log(0.9), -np.log(0.8)], rel=1e-5)
    assert losses.get("mse")(y, p) == pytest.approx(np.mean((y - p) ** 2), rel=1e-5)


def test_kernel_larger_than_input_names_the_layer():
    import rconv
    from rconv import layers
    inputs = rconv.Input(shape=(4, 4, 3))
    x = layers.Conv2D(8, 3, name="first")(inputs)
    with pytest.raises(ValueError, match=r"Conv2D 'too_big'.*\(None, 2, 2, 8\)"):
        layers.Conv2D(8, 3, name="too_big")(x)
    with pytest.raises(ValueError, match=r"MaxPooling2D 'pool'.*\(None, 2, 2, 8\)"):
        layers.MaxPooling2D(3, name="pool")(x)

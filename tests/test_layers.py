"""Layers: Keras naming, configs, weights API, initializers, simple forward semantics."""
import numpy as np
import pytest

import rconv
from rconv import backend, initializers, layers
from rconv.utils import set_random_seed, to_categorical


def test_auto_names_follow_keras_per_class_counters():
    assert [layers.Conv2D(1, 3).name for _ in range(3)] == ["conv2d", "conv2d_1", "conv2d_2"]
    assert [layers.Dense(1).name for _ in range(2)] == ["dense", "dense_1"]
    assert layers.MaxPooling2D().name == "max_pooling2d"
    assert layers.MaxPool2D().name == "max_pooling2d_1"  # alias of the same class
    assert layers.AveragePooling2D().name == "average_pooling2d"
    assert layers.ReLU().name == "re_lu"
    assert layers.Dense(1, name="head").name == "head"
    backend.clear_session()
    assert layers.Dense(1).name == "dense"


ALL_LAYERS = [
    lambda: layers.Conv2D(8, (3, 5), strides=2, padding="same", activation="relu", use_bias=False),
    lambda: layers.Dense(4, activation="softmax", kernel_initializer="he_normal"),
    lambda: layers.MaxPooling2D((3, 3), strides=(1, 2), padding="same"),
    lambda: layers.AveragePooling2D(),
    lambda: layers.Flatten(),
    lambda: layers.Dropout(0.25, seed=3),
    lambda: layers.Activation("sigmoid"),
    lambda: layers.ReLU(),
    lambda: layers.Softmax(),
    lambda: layers.Rescaling(1 / 255, offset=0.5),
    lambda: layers.InputLayer(shape=(28, 28, 1)),
]


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_get_config_from_config_round_trip(make):
    layer = make()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_conv2d_config_has_keras3_keys_and_serialized_initializers():
    config = layers.Conv2D(32, 3, activation="relu").get_config()
    assert set(config) == {"name", "trainable", "dtype", "filters", "kernel_size", "strides", "padding",
                           "data_format", "dilation_rate", "groups", "activation", "use_bias",
                           "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
                           "activity_regularizer", "kernel_constraint", "bias_constraint"}
    assert config["kernel_size"] == (3, 3) and config["strides"] == (1, 1)
    assert config["data_format"] == "channels_last" and config["activation"] == "relu"
    assert config["kernel_initializer"] == {"module": "keras.initializers", "class_name": "GlorotUniform",
                                            "config": {"seed": None}, "registered_name": None}
    assert config["bias_initializer"]["class_name"] == "Zeros"


def test_channels_first_is_a_clear_error():
    with pytest.raises(ValueError, match="channels_last"):
        layers.Conv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        layers.MaxPooling2D(data_format="channels_first")


def test_weights_api_and_count_params():
    layer = layers.Conv2D(4, (3, 3))
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    layer.build((None, 8, 8, 2))
    layer.built = True
    assert [w.shape for w in layer.weights] == [(3, 3, 2, 4), (4,)]
    assert layer.count_params() == 3 * 3 * 2 * 4 + 4
    new = [np.full((3, 3, 2, 4), 0.5, np.float32), np.arange(4, dtype=np.float32)]
    layer.set_weights(new)
    np.testing.assert_array_equal(layer.get_weights()[1], np.arange(4))
    with pytest.raises(ValueError, match=r"\(4,\).*\(5,\)"):
        layer.set_weights([new[0], np.zeros(5)])
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2


def test_layers_are_callable_on_arrays_and_shapes_match_compute_output_shape():
    x = np.random.default_rng(0).random((2, 9, 9, 3), dtype=np.float32)
    for layer in [layers.Conv2D(5, 3, padding="same", strides=2), layers.Conv2D(5, 3),
                  layers.MaxPooling2D(), layers.AveragePooling2D(3, strides=1), layers.Flatten()]:
        y = layer(x)
        assert y.shape == layer.compute_output_shape(x.shape)


def test_dense_on_rank3_inputs_acts_on_last_axis():
    layer = layers.Dense(3)
    x = np.random.default_rng(0).random((2, 4, 5), dtype=np.float32)
    y = layer(x)
    np.testing.assert_allclose(y, x @ layer.kernel.numpy() + layer.bias.numpy(), rtol=1e-5, atol=1e-6)


def test_dropout_is_inverted_training_only_and_seeded():
    x = np.ones((200, 50), np.float32)
    layer = layers.Dropout(0.4)
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    y = layer(x, training=True)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.6)}
    assert abs(y.mean() - 1.0) < 0.05
    set_random_seed(1)
    a = layer(x, training=True)
    set_random_seed(1)
    np.testing.assert_array_equal(a, layer(x, training=True))


def test_rescaling_and_activation_layers():
    x = np.array([[-2.0, 0.0, 255.0]], np.float32)
    np.testing.assert_allclose(layers.Rescaling(1 / 255, offset=-1)(x), x / 255 - 1, rtol=1e-6)
    np.testing.assert_array_equal(layers.ReLU()(x), [[0, 0, 255]])
    np.testing.assert_allclose(layers.Softmax()(x).sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(layers.Activation(rconv.activations.relu)(x), [[0, 0, 255]])


def test_unknown_activation_lists_accepted_names():
    with pytest.raises(ValueError, match="swishy.*relu"):
        layers.Dense(3, activation="swishy")


def test_initializers_follow_keras_formulas_and_global_seed():
    shape = (3, 3, 16, 32)
    limit = np.sqrt(6 / (3 * 3 * 16 + 3 * 3 * 32))
    w = initializers.GlorotUniform()(shape)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    he = initializers.get("he_normal")((1000, 100))
    assert abs(he.std() - np.sqrt(2 / 1000)) < 0.1 * np.sqrt(2 / 1000)
    assert np.abs(he).max() <= 2 * np.sqrt(2 / 1000) / 0.87962566103423978 + 1e-6  # truncated at 2 sigma
    np.testing.assert_array_equal(initializers.get("zeros")((2,)), [0, 0])
    np.testing.assert_array_equal(initializers.Ones()((2,)), [1, 1])
    set_random_seed(5)
    a = initializers.RandomNormal()((4, 4))
    set_random_seed(5)
    np.testing.assert_array_equal(a, initializers.RandomNormal()((4, 4)))
    seeded = initializers.GlorotUniform(seed=7)
    np.testing.assert_array_equal(seeded((3, 3)), seeded((3, 3)))
    with pytest.raises(ValueError, match="glorot_uniform"):
        initializers.get("glorot_unifrom")


def test_to_categorical_matches_keras():
    y = to_categorical([0, 2, 1])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert to_categorical(np.array([[1], [0]]), num_classes=4).shape == (2, 4)
    assert to_categorical(np.zeros((2, 3), int), 5).shape == (2, 3, 5)

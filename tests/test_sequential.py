"""Sequential: building, Keras 3 summary text, layers/pop, configs."""
import numpy as np
import pytest

import rconv
from rconv import layers, models
from seed_models import seed_convnet


def test_summary_of_the_seed_convnet_matches_keras():
    lines = []
    seed_convnet().summary(print_fn=lines.append)
    text = lines[0]
    expected = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 26, 26, 32)     │           320 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 11, 11, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 5, 5, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_2 (Conv2D)               │ (None, 3, 3, 64)       │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 576)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 64)             │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 93,322 (364.54 KB)
 Trainable params: 93,322 (364.54 KB)
 Non-trainable params: 0 (0.00 B)"""
    assert text == expected


def test_summary_counts_frozen_layers_as_non_trainable(capsys):
    model = seed_convnet()
    model.layers[0].trainable = False
    model.summary()
    out = capsys.readouterr().out
    assert " Trainable params: 93,002 (363.29 KB)" in out
    assert " Non-trainable params: 320 (1.25 KB)" in out


def test_unbuilt_model_summary_and_lazy_build_from_data():
    model = models.Sequential([layers.Dense(4, activation="relu"), layers.Dense(2)])
    lines = []
    model.summary(print_fn=lines.append)
    assert "0 (unbuilt)" in lines[0] and "│ ?" in lines[0]
    out = model.predict(np.zeros((3, 5), np.float32), verbose=0)
    assert out.shape == (3, 2) and model.built
    assert model.count_params() == 5 * 4 + 4 + 4 * 2 + 2
    assert [l.output_shape for l in model.layers] == [(None, 4), (None, 2)]


def test_layers_hides_input_layer_pop_and_input_tensor():
    model = models.Sequential([rconv.Input(shape=(6,)), layers.Dense(3), layers.Dense(2)])
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Dense"]
    assert model.layers[0].kernel.shape == (6, 3)  # built as soon as the input is known
    popped = model.pop()
    assert popped.name == "dense_1" and len(model.layers) == 1
    assert model.output_shape == (None, 3)
    with pytest.raises(TypeError, match="Only instances"):
        model.add("dense")


def test_duplicate_layer_names_rejected():
    model = models.Sequential([layers.Dense(2, name="a", input_shape=(3,))])
    with pytest.raises(ValueError, match="unique names"):
        model.add(layers.Dense(2, name="a"))


def test_import_rconv_as_keras():
    import rconv as keras
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    assert isinstance(model, keras.Model) and keras.models.Sequential is keras.Sequential


def test_get_weights_set_weights_and_config_round_trip():
    model = seed_convnet()
    config = model.get_config()
    assert config["name"] == "sequential"
    assert [c["class_name"] for c in config["layers"]][:2] == ["InputLayer", "Conv2D"]
    assert config["layers"][0]["config"]["batch_shape"] == (None, 28, 28, 1)
    clone = models.Sequential.from_config(config)
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert clone.count_params() == 93322
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="10 weights"):
        model.set_weights(model.get_weights()[:-1])

"""Conv2D (dilation_rate, groups), Conv1D, DepthwiseConv2D, SeparableConv2D and Conv2DTranspose as layers. Their
layer contract (`run_layer_test`: forward against float64 references, backward against finite differences,
config, `.keras` saving, output shapes, bad inputs, over many shapes) runs from tests/contract_cases_conv.py
through tests/test_layers_contract.py. Here: Keras's own tests
(keras/src/layers/convolutional/{conv,depthwise_conv,separable_conv,conv_transpose}_test.py: their
shape cases and argument errors) ported; regularizers/constraints wiring; `.keras` and `.h5` round trips
of a model holding every layer; the conv+pool fusion left to plain convolutions."""
from __future__ import annotations

import numpy as np
import pytest

import rconv
from rconv import constraints, layers, regularizers
from contract_cases_conv import conv2d_layer_ref, depthwise_layer_ref, separable_layer_ref, transpose_layer_ref
from keras_check import check_in_keras, keras_python


# --- ports of Keras's tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,kwargs,input_shape,output_shape", [
    # conv_test.py test_conv1d_basic / test_conv2d_basic (channels_last)
    (layers.Conv1D, dict(filters=5, kernel_size=2), (3, 5, 4), (3, 4, 5)),
    (layers.Conv1D, dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2,), groups=2), (3, 4, 4), (3, 4, 6)),
    (layers.Conv1D, dict(filters=6, kernel_size=2, padding="causal", dilation_rate=(2,), groups=2), (3, 4, 4),
     (3, 4, 6)),
    (layers.Conv1D, dict(filters=6, kernel_size=2, strides=(2,), groups=2), (3, 5, 4), (3, 2, 6)),
    (layers.Conv2D, dict(filters=5, kernel_size=2), (3, 5, 5, 4), (3, 4, 4, 5)),
    (layers.Conv2D, dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2), groups=2), (3, 4, 4, 4),
     (3, 4, 4, 6)),
    (layers.Conv2D, dict(filters=6, kernel_size=(2, 2), strides=(2, 1), groups=2), (3, 5, 5, 4), (3, 2, 4, 6)),
    # depthwise_conv_test.py test_depthwise_conv2d_basic
    (layers.DepthwiseConv2D, dict(depth_multiplier=5, kernel_size=2), (3, 5, 5, 4), (3, 4, 4, 20)),
    (layers.DepthwiseConv2D, dict(depth_multiplier=6, kernel_size=2, padding="same", dilation_rate=(2, 2)),
     (3, 4, 4, 4), (3, 4, 4, 24)),
    (layers.DepthwiseConv2D, dict(depth_multiplier=6, kernel_size=(2, 2), strides=(2, 2)), (3, 5, 5, 4),
     (3, 2, 2, 24)),
    # separable_conv_test.py test_separable_conv2d_basic
    (layers.SeparableConv2D, dict(depth_multiplier=5, filters=5, kernel_size=2), (3, 5, 5, 4), (3, 4, 4, 5)),
    (layers.SeparableConv2D, dict(depth_multiplier=6, filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2)),
     (3, 4, 4, 4), (3, 4, 4, 6)),
    (layers.SeparableConv2D, dict(depth_multiplier=6, filters=6, kernel_size=(2, 2), strides=(2, 2)), (3, 5, 5, 4),
     (3, 2, 2, 6)),
    # conv_transpose_test.py test_conv2d_transpose_basic (channels_last)
    (layers.Conv2DTranspose, dict(filters=5, kernel_size=2, strides=2), (2, 8, 8, 4), (2, 16, 16, 5)),
    (layers.Conv2DTranspose, dict(filters=6, kernel_size=2, strides=3, padding="same", output_padding=2),
     (2, 8, 8, 4), (2, 23, 23, 6)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=(7, 7), strides=(16, 16)), (1, 14, 14, 2), (1, 224, 224, 2)),
])
def test_keras_basic_shapes(cls, kwargs, input_shape, output_shape):
    layer = cls(**kwargs)
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    assert layer(x).shape == output_shape
    assert layer(rconv.Input(input_shape[1:])).shape == (None,) + output_shape[1:]
    assert len(layer.trainable_weights) == (3 if cls is layers.SeparableConv2D else 2)


@pytest.mark.parametrize("cls,kwargs", [
    # conv_test.py test_conv2d (ConvCorrectnessTest, channels_last); inputs (2, 8, 8, 4)
    (layers.Conv2D, dict(filters=5, kernel_size=2)),
    (layers.Conv2D, dict(filters=4, kernel_size=3, strides=2, padding="same")),
    (layers.Conv2D, dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2), groups=2)),
    (layers.Conv2D, dict(filters=6, kernel_size=2, padding="same", dilation_rate=(2, 3), groups=2)),
    (layers.Conv2D, dict(filters=6, kernel_size=(4, 3), strides=(2, 1), groups=2)),
    # depthwise_conv_test.py test_depthwise_conv2d
    (layers.DepthwiseConv2D, dict(depth_multiplier=5, kernel_size=2)),
    (layers.DepthwiseConv2D, dict(depth_multiplier=6, kernel_size=2, padding="same", dilation_rate=(2, 2))),
    (layers.DepthwiseConv2D, dict(depth_multiplier=6, kernel_size=(2, 2), strides=(2, 2))),
    # separable_conv_test.py test_separable_conv2d
    (layers.SeparableConv2D, dict(depth_multiplier=5, filters=5, kernel_size=2)),
    (layers.SeparableConv2D, dict(depth_multiplier=6, filters=6, kernel_size=2, padding="same", dilation_rate=(2, 2))),
    (layers.SeparableConv2D, dict(depth_multiplier=6, filters=6, kernel_size=(2, 2), strides=(2, 2))),
    # conv_transpose_test.py test_conv2d_transpose
    (layers.Conv2DTranspose, dict(filters=5, kernel_size=2, strides=2)),
    (layers.Conv2DTranspose, dict(filters=6, kernel_size=7, strides=16, padding="same", output_padding=2)),
    (layers.Conv2DTranspose, dict(filters=6, kernel_size=(2, 3), strides=(2, 1))),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=(7, 7), strides=(16, 16))),
])
def test_keras_correctness(cls, kwargs):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    layer = cls(**kwargs)
    layer(x)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.weights]
    layer.set_weights(weights)
    make = {layers.Conv2D: conv2d_layer_ref, layers.DepthwiseConv2D: depthwise_layer_ref,
            layers.SeparableConv2D: separable_layer_ref, layers.Conv2DTranspose: transpose_layer_ref}[cls]
    want = make(**kwargs)(x.astype(np.float64), [w.astype(np.float64) for w in weights])
    np.testing.assert_allclose(layer(x), want, rtol=5e-4, atol=1e-4)


@pytest.mark.parametrize("make,match", [
    # conv_test.py test_bad_init_args
    (lambda: layers.Conv1D(filters=0, kernel_size=1), "filters must be a positive integer"),
    (lambda: layers.Conv2D(filters=2, kernel_size=(1, 0)), "kernel_size"),
    (lambda: layers.Conv2D(filters=2, kernel_size=(2, 2), strides=(1, 0)), "strides"),
    (lambda: layers.Conv2D(filters=2, kernel_size=(2, 2), strides=2, dilation_rate=(2, 1)),
     r"strides > 1 is not supported with dilation_rate > 1.*\(2, 2\).*\(2, 1\)"),
    (lambda: layers.Conv2D(filters=5, kernel_size=(2, 2), groups=0), "groups must be a positive integer"),
    (lambda: layers.Conv2D(filters=5, kernel_size=(2, 2), groups=2),
     r"filters \(5\) must be divisible by groups \(2\)"),
    (lambda: layers.Conv2D(filters=4, kernel_size=2, padding="causal"), "padding"),
    (lambda: layers.Conv1D(filters=4, kernel_size=2, padding="full"), "padding"),
    # depthwise_conv_test.py / separable_conv_test.py test_bad_init_args
    (lambda: layers.DepthwiseConv2D(depth_multiplier=0, kernel_size=1), "depth_multiplier"),
    (lambda: layers.DepthwiseConv2D(depth_multiplier=1, kernel_size=(1, 0)), "kernel_size"),
    (lambda: layers.DepthwiseConv2D(depth_multiplier=1, kernel_size=2, strides=(1, 0)), "strides"),
    (lambda: layers.SeparableConv2D(filters=0, kernel_size=1), "filters"),
    (lambda: layers.SeparableConv2D(filters=2, depth_multiplier=0, kernel_size=1), "depth_multiplier"),
    # conv_transpose_test.py test_bad_init_args
    (lambda: layers.Conv2DTranspose(filters=0, kernel_size=1), "filters"),
    (lambda: layers.Conv2DTranspose(filters=2, kernel_size=(1, 0)), "kernel_size"),
    (lambda: layers.Conv2DTranspose(filters=2, kernel_size=(2, 2), strides=(1, 0)), "strides"),
    (lambda: layers.Conv2DTranspose(filters=2, kernel_size=2, strides=2, dilation_rate=(2, 1)), "dilation_rate"),
    (lambda: layers.Conv2DTranspose(filters=2, kernel_size=3, strides=2, output_padding=2),
     r"Conv2DTranspose '.*': `output_padding` must be strictly less than `strides`.*axis 0.*output_padding 2 and "
     r"stride 2"),
    (lambda: layers.Conv2DTranspose(filters=2, kernel_size=3, output_padding=-1), "output_padding"),
])
def test_bad_init_args(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer,shape,match", [
    # depthwise_conv_test.py test_invalid_output_shape_raises (2-D half), and the same for the others
    (lambda: layers.DepthwiseConv2D(5, strides=2), (2, 4, 4, 3), r"DepthwiseConv2D '.*'.*, 4, 4, 3\)"),
    (lambda: layers.SeparableConv2D(2, 5, strides=2), (2, 4, 4, 3), r"SeparableConv2D '.*'.*, 4, 4, 3\)"),
    (lambda: layers.Conv1D(2, 11, strides=5), (4, 10, 3), r"Conv1D '.*'.*, 10, 3\)"),
    (lambda: layers.Conv2D(1, 3, dilation_rate=4), (1, 8, 8, 1), r"Conv2D '.*'.*dilation_rate \(4, 4\)"),
    (lambda: layers.Conv2D(4, 2, groups=4), (1, 8, 8, 6), r"Conv2D '.*': the input's 6 channels .* groups \(4\)"),
    (lambda: layers.Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=0), (1, 3, 3, 1),
     r"Conv2DTranspose '.*'.*, 3, 3, 1\)"),
])
def test_invalid_input_shapes_raise(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer()(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=match):
        layer()(rconv.Input(shape[1:]))


def test_output_padding_serialization():
    # conv_transpose_test.py test_output_padding_serialization (2-D case)
    layer = layers.Conv2DTranspose(2, 3, strides=2, output_padding=1)
    config = layer.get_config()
    assert config["output_padding"] == (1, 1)
    revived = layers.Conv2DTranspose.from_config(config)
    assert revived.output_padding == layer.output_padding
    assert revived.compute_output_shape((1, 5, 5, 3)) == layer.compute_output_shape((1, 5, 5, 3)) == (1, 12, 12, 2)


# --- weights, names, configs -----------------------------------------------------------------------------

def test_keras_weight_names_order_and_config_keys():
    x = np.zeros((1, 6, 6, 4), np.float32)
    sep = layers.SeparableConv2D(3, 3, depth_multiplier=2)
    sep(x)
    assert [w.path.split("/")[-1] for w in sep.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert [w.shape for w in sep.weights] == [(3, 3, 4, 2), (1, 1, 8, 3), (3,)]
    dw = layers.DepthwiseConv2D(3, depth_multiplier=3)
    dw(x)
    assert [(w.path.split("/")[-1], w.shape) for w in dw.weights] == [("kernel", (3, 3, 4, 3)), ("bias", (12,))]
    tr = layers.Conv2DTranspose(5, (2, 3))
    tr(x)
    assert [(w.path.split("/")[-1], w.shape) for w in tr.weights] == [("kernel", (2, 3, 5, 4)), ("bias", (5,))]
    c1 = layers.Conv1D(6, 3, groups=2)
    c1(x[:, 0])
    assert [w.shape for w in c1.weights] == [(3, 2, 6), (6,)]
    base = {"name", "trainable", "dtype", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
            "activation", "use_bias", "bias_initializer", "bias_regularizer", "activity_regularizer", "bias_constraint"}
    kernel = {"kernel_initializer", "kernel_regularizer", "kernel_constraint"}
    dwk = {"depthwise_initializer", "depthwise_regularizer", "depthwise_constraint"}
    pwk = {"pointwise_initializer", "pointwise_regularizer", "pointwise_constraint"}
    assert set(c1.get_config()) == base | kernel | {"filters", "groups"}
    assert set(dw.get_config()) == base | dwk | {"depth_multiplier"}
    assert set(sep.get_config()) == base | dwk | pwk | {"depth_multiplier", "filters"}
    assert set(tr.get_config()) == base | kernel | {"filters", "output_padding"}
    assert c1.get_config()["strides"] == (1,) and c1.get_config()["dilation_rate"] == (1,)


@pytest.mark.parametrize("cls,kwargs,prefixes", [
    (layers.Conv2D, dict(filters=4, kernel_size=3, groups=2), ("kernel", "bias")),
    (layers.Conv1D, dict(filters=4, kernel_size=3), ("kernel", "bias")),
    (layers.DepthwiseConv2D, dict(kernel_size=3), ("depthwise", "bias")),
    (layers.SeparableConv2D, dict(filters=4, kernel_size=3), ("depthwise", "pointwise", "bias")),
    (layers.Conv2DTranspose, dict(filters=4, kernel_size=3), ("kernel", "bias")),
])
def test_regularizers_and_constraints_reach_the_weights(cls, kwargs, prefixes):
    extra = {f"{p}_regularizer": regularizers.L2(0.5) for p in prefixes}
    extra.update({f"{p}_constraint": constraints.NonNeg() for p in prefixes})
    layer = cls(**kwargs, **extra, activity_regularizer="l1")
    layer(np.zeros((1, 6, 6, 4) if cls is not layers.Conv1D else (1, 6, 4), np.float32))
    assert all(isinstance(w.regularizer, regularizers.L2) for w in layer.weights)
    assert all(isinstance(w.constraint, constraints.NonNeg) for w in layer.weights)
    config = layer.get_config()
    assert config["activity_regularizer"]["class_name"] == "L1"
    revived = cls.from_config(config)
    assert revived.get_config() == config
    for p in prefixes:
        assert config[f"{p}_regularizer"]["class_name"] == "L2"
        assert config[f"{p}_constraint"]["class_name"] == "NonNeg"


# --- models: saving, fusion -----------------------------------------------------------------------------

def _model():
    inp = rconv.Input((9, 8, 4))
    h = layers.Conv2D(6, 3, padding="same", dilation_rate=2, groups=2, activation="relu")(inp)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same")(h)
    h = layers.SeparableConv2D(4, 3, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=(0, 1))(h)
    h = layers.Reshape((9 * 8, 3))(h)
    h = layers.Conv1D(2, 3, padding="causal", dilation_rate=2)(h)
    return rconv.Model(inp, layers.Dense(2)(layers.Flatten()(h)))


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_with_every_layer_trains_and_round_trips(tmp_path, suffix):
    rconv.utils.set_random_seed(3)
    model = _model()
    x = np.random.default_rng(0).standard_normal((4, 9, 8, 4)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    before = model.predict(x, verbose=0)
    model.fit(x, np.ones((4, 2), np.float32), epochs=2, batch_size=2, verbose=0)
    after = model.predict(x, verbose=0)
    assert not np.allclose(before, after), "every layer's weights train"
    path = tmp_path / f"m{suffix}"
    model.save(path)
    loaded = rconv.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), after)
    assert [type(lay).__name__ for lay in loaded.layers] == [type(lay).__name__ for lay in model.layers]


def test_dilated_or_grouped_relu_conv_before_max_pool_is_not_fused():
    # graph/fused.py fuses Conv2D(relu) + MaxPooling2D only for dilation 1 and one group: the others must
    # give what the unfused layers give.
    for kwargs in (dict(dilation_rate=2), dict(groups=2)):
        rconv.utils.set_random_seed(0)
        conv, pool = layers.Conv2D(4, 3, activation="relu", padding="same", **kwargs), layers.MaxPooling2D()
        model = rconv.Sequential([rconv.Input((8, 8, 2)), conv, pool])
        x = np.random.default_rng(1).standard_normal((2, 8, 8, 2)).astype(np.float32)
        np.testing.assert_array_equal(model.predict(x, verbose=0), pool(conv(x)))


@pytest.mark.keras
def test_rconv_model_with_every_layer_loads_in_real_keras(tmp_path):
    exe = keras_python()
    rconv.utils.set_random_seed(4)
    model = _model()
    x = np.random.default_rng(2).standard_normal((3, 9, 8, 4)).astype(np.float32)
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(x, np.ones((3, 2), np.float32))
    np.savez(tmp_path / "inputs.npz", x=x)
    np.savez(tmp_path / "expected.npz", y=model.predict(x, verbose=0))
    for name in ("m.keras", "m.h5"):
        model.save(tmp_path / name)
        check_in_keras(exe, tmp_path / name, tmp_path / "inputs.npz", tmp_path / "expected.npz", "--atol", "1e-4")


def test_batch_norm_folds_into_a_grouped_dilated_conv():
    # graph/passes.py folds an inference BatchNormalization into the Conv2D before it through Conv2D.linear:
    # with groups and dilation the folded kernel (scaled on its filters axis) must give the unfolded result.
    rconv.utils.set_random_seed(0)
    conv = layers.Conv2D(4, 3, padding="same", groups=2, dilation_rate=2)
    bn = layers.BatchNormalization()
    model = rconv.Sequential([rconv.Input((7, 6, 4)), conv, bn])
    rng = np.random.default_rng(5)
    bn.set_weights([rng.uniform(0.5, 2, 4).astype(np.float32) for _ in range(4)])
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), bn(conv(x), training=False), rtol=1e-5, atol=1e-5)

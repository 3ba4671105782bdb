"""Real-Keras fixtures with every layer family issue 13 added (run with a Python that has Keras 3 + TF):

    /work/kvenv/bin/python tests/keras_fixtures/make_layers_fixtures.py

`layers_image.{keras,h5}` (an image model: convolution variants, resampling, padding/cropping, normalization,
parametric activations, merges, regularizers and constraints), `layers_seq.{keras,h5}` (Conv1D, RepeatVector,
Reshape, Permute, Dot), each trained two steps with Adam so every weight moved, and `layers_expected.npz`: inputs
and Keras's predictions. rconv must load them with equal predictions (tests/test_keras_layers_fixtures.py), and
the same models built in rconv must load in Keras (ibid., `@pytest.mark.keras`).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))


def image_model(keras):
    """`keras` may be Keras or rconv: the same code builds the same model in both."""
    L = keras.layers
    inp = keras.Input((12, 12, 3), name="image")
    a = L.Conv2D(8, 3, padding="same", dilation_rate=2, kernel_regularizer=keras.regularizers.L2(1e-3),
                 name="dilated")(inp)
    a = L.LeakyReLU(negative_slope=0.1, name="leaky")(a)
    b = L.Conv2D(8, 3, padding="same", groups=2, name="grouped")(a)
    b = L.GroupNormalization(groups=4, name="gn")(b)
    b = L.PReLU(shared_axes=[1, 2], name="prelu")(b)
    c = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(a)
    c = L.Conv2D(8, 1, name="pointwise", kernel_constraint=keras.constraints.MaxNorm(2.0))(c)
    c = L.ELU(alpha=0.5, name="elu")(c)
    s = L.SeparableConv2D(8, 3, padding="same", depth_multiplier=1, name="separable")(a)
    s = L.BatchNormalization(name="bn")(s)
    s = L.Activation("gelu", name="gelu")(s)
    m = L.Add(name="add")([b, c])
    m = L.Subtract(name="sub")([m, s])
    m = L.Multiply(name="mul")([m, L.Activation("sigmoid", name="gate")(s)])
    m = L.Average(name="avg")([m, b])
    m = L.Maximum(name="max")([m, c])
    m = L.Minimum(name="min")([m, L.Activation("swish", name="swish")(a)])
    d = L.MaxPooling2D(2, name="pool")(m)  # 6x6
    d = L.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(d)  # 7x7
    d = L.Cropping2D(((1, 0), (0, 1)), name="crop")(d)  # 6x6
    u = L.UpSampling2D(2, interpolation="bilinear", name="up_bilinear")(d)  # 12x12
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="transpose")(d)  # 12x12
    n = L.UpSampling2D(2, name="up_nearest")(L.Conv2D(4, 3, strides=2, padding="same", name="down")(inp))
    x = L.Concatenate(name="concat")([u, t, n])
    x = L.SpatialDropout2D(0.2, name="sdrop")(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.Activation("selu", name="selu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(16, activation="elu", name="dense", bias_regularizer=keras.regularizers.L1(1e-3),
                activity_regularizer=keras.regularizers.L2(1e-4))(x)
    x = L.GaussianNoise(0.1, name="noise")(x)
    out = L.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def seq_model(keras):
    L = keras.layers
    inp = keras.Input((10, 4), name="seq")
    x = L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="tanh", name="conv1d")(inp)
    x = L.Conv1D(6, 2, strides=2, name="conv1d_strided")(x)  # 5 steps
    x = L.Permute((2, 1), name="permute")(x)  # (6, 5)
    x = L.Reshape((5, 6), name="reshape")(x)
    y = L.Dense(6, activation="softplus", name="proj")(x)
    d = L.Dot(axes=2, normalize=True, name="dot")([x, y])  # (5, 5)
    f = L.Flatten(name="flat")(d)
    r = L.RepeatVector(2, name="repeat")(L.Dense(3, activation="softsign", name="small")(f))  # (2, 3)
    out = L.Dense(2, name="out")(L.Flatten(name="flat2")(r))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    return model


def main():
    import keras
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    img = image_model(keras)
    xi = rng.random((6, 12, 12, 3)).astype(np.float32)
    yi = rng.integers(0, 3, 6)
    seq = seq_model(keras)
    xs = rng.standard_normal((6, 10, 4)).astype(np.float32)
    ys = rng.standard_normal((6, 2)).astype(np.float32)
    for _ in range(2):
        img.train_on_batch(xi, yi)
        seq.train_on_batch(xs, ys)
    for name, model in (("layers_image", img), ("layers_seq", seq)):
        model.save(os.path.join(OUT, f"{name}.keras"))
        model.save(os.path.join(OUT, f"{name}.h5"))
    np.savez(os.path.join(OUT, "layers_expected.npz"), image=xi, probs=img.predict(xi, verbose=0), seq=xs,
             out=seq.predict(xs, verbose=0))
    print("OK", keras.__version__)


if __name__ == "__main__":
    sys.exit(main())

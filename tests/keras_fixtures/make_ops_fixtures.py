"""A real-Keras functional model made of one-tensor `keras.ops` functions (run with Keras 3 + TF):

    /work/kvenv/bin/python tests/keras_fixtures/make_ops_fixtures.py

writes `numpy_ops.keras` and `numpy_ops_expected.npz` (input `x`, outputs `y0`, `y1`), which rconv must load with
Keras's predictions (tests/test_symbolic_ops.py). `build(keras)` builds the same model with Keras or rconv.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))


def build(keras):
    ops = keras.ops
    i = keras.Input((4, 3), name="x")
    a = ops.square(ops.mean(i, axis=1))
    d = ops.clip(ops.reshape(a, (-1, 3, 1)), 0.1, 0.5)
    e = ops.max(ops.transpose(d, (0, 2, 1)), axis=-1, keepdims=True)
    s = ops.expand_dims(ops.sum(i, axis=[1, 2]), -1)
    f = ops.sqrt(ops.absolute(ops.exp(ops.log(ops.tanh(s) + 1.5)))) - ops.min(i, axis=(1, 2))[:, None]
    g = ops.squeeze(ops.negative(e), axis=-1)
    return keras.Model(i, [ops.tanh(g) * 2.0, f])


def main():
    import keras
    model = build(keras)
    x = np.random.default_rng(0).random((3, 4, 3)).astype(np.float32)
    y0, y1 = model.predict(x, verbose=0)
    model.save(os.path.join(OUT, "numpy_ops.keras"))
    np.savez(os.path.join(OUT, "numpy_ops_expected.npz"), x=x, y0=y0, y1=y1)
    print("OK", keras.__version__)


if __name__ == "__main__":
    main()

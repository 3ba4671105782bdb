"""Generate the real-Keras normalization fixture (run with a Python that has Keras 3 + TF).

    /work/kvenv/bin/python tests/keras_fixtures/make_norm_fixtures.py      # writes into tests/keras_fixtures/

The model (`residual_bn`) is a residual block with BatchNormalization and LayerNormalization:

    x = Input((7, 7, 3), name="image")
    h = relu(bn1(conv1(x)))                                  # Conv2D(4, 3, same, use_bias=False)
    h = relu(Add()([h, bn2(conv2(h))]))                      # bn2: momentum=0.9, epsilon=1e-2
    h = bn_axis1(ln(h))                       # LayerNormalization(); BatchNormalization(axis=1, center=False)
    y = probs(GlobalAveragePooling2D()(h))                   # Dense(2, softmax)

compiled with Adam(1e-2) and sparse_categorical_crossentropy and trained 3 steps (train_on_batch) on inputs
with mean 1 and std 2, so the moving statistics are far from their initial values. Files:

* `residual_bn.keras`, `residual_bn.h5`: what Keras saves (the .keras one with the Adam state).
* `residual_bn_expected.npz`: fixed inputs `image` and Keras's predictions `probs` on them.
* `residual_bn_train.npz`: a training batch (`image`, targets `probs`) and the predictions on the fixed
  inputs after one more train_on_batch from the saved state (`after_probs`): batch statistics in the
  forward, the moving-statistics update and the batch-norm backward all enter it.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))


def build(keras):
    from keras import layers
    x = keras.Input((7, 7, 3), name="image")
    h = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(x)
    h = layers.Activation("relu", name="relu1")(layers.BatchNormalization(name="bn1")(h))
    r = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv2")(h)
    r = layers.BatchNormalization(momentum=0.9, epsilon=1e-2, name="bn2")(r)
    h = layers.Activation("relu", name="relu2")(layers.Add(name="add")([h, r]))
    h = layers.LayerNormalization(name="ln")(h)
    h = layers.BatchNormalization(axis=1, center=False, name="bn_axis1")(h)
    y = layers.Dense(2, activation="softmax", name="probs")(layers.GlobalAveragePooling2D(name="gap")(h))
    return keras.Model(x, y, name="residual_bn")


def main():
    import keras
    keras.utils.set_random_seed(0)
    model = build(keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)

    def batch(n):
        return (rng.standard_normal((n, 7, 7, 3)) * 2 + 1).astype(np.float32), rng.integers(0, 2, n)

    for _ in range(3):
        model.train_on_batch(*batch(6))
    fixed, _ = batch(5)
    model.save(os.path.join(OUT, "residual_bn.keras"))
    model.save(os.path.join(OUT, "residual_bn.h5"))
    np.savez(os.path.join(OUT, "residual_bn_expected.npz"), image=fixed, probs=model.predict(fixed, verbose=0))
    tx, ty = batch(6)
    model.train_on_batch(tx, ty)
    np.savez(os.path.join(OUT, "residual_bn_train.npz"), image=tx, probs=ty,
             after_probs=model.predict(fixed, verbose=0))
    print(json.dumps({"keras": keras.__version__}))


if __name__ == "__main__":
    main()

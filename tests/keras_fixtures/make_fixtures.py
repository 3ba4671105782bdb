"""Generate real Keras files for rconv's interop tests (run with a Python that has Keras + TF).

    python3 tests/keras_fixtures/make_fixtures.py            # writes into tests/keras_fixtures/

Writes, for each model, the file(s) Keras saves plus `<name>.x.npy` (inputs) and `<name>.y.npy`
(Keras's predictions on them), so CI (no Keras) can check rconv loads real Keras files and predicts
the same (the multi-input/multi-output `multi_io.*` files come from make_multi_io_fixtures.py, called
here too). Keras 3 files come from `keras`; Keras 2 (tf.keras) legacy `.h5` files from `tf_keras`
when it is installed. `versions.json` records what produced them.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))


def save_io(name, model, x):
    np.save(os.path.join(OUT, f"{name}.x.npy"), x.astype(np.float32))
    np.save(os.path.join(OUT, f"{name}.y.npy"), np.asarray(model.predict(x, verbose=0), np.float32))


def disable_dropout(model):
    """`after_step` files record one more training step from the saved state; dropout is switched off
    for it (rate 0, train function retraced) so the step is deterministic and comparable."""
    for layer in model.layers:
        if type(layer).__name__ == "Dropout":
            layer.rate = 0.0


def keras3_fixtures(keras):
    from keras import layers
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(1)

    # 1. The seed MNIST convnet (Sequential), compiled with Adam and trained one step so the
    #    optimizer has slot variables; saved as .keras. Then recompiled with plain SGD, trained one
    #    more step and saved as legacy .h5 (small optimizer_weights: iteration + learning_rate).
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = rng.random((4, 28, 28, 1), dtype=np.float32)
    xt = rng.random((8, 28, 28, 1), dtype=np.float32)
    yt = rng.integers(0, 10, 8)
    model.train_on_batch(xt, yt)
    model.save(os.path.join(OUT, "seed_convnet.keras"))
    save_io("seed_convnet", model, x)
    np.save(os.path.join(OUT, "seed_convnet.train_x.npy"), xt)
    np.save(os.path.join(OUT, "seed_convnet.train_y.npy"), yt)
    # Weights after one more Adam step from the saved state: what a faithful reload must reproduce.
    model.train_on_batch(xt, yt)
    np.save(os.path.join(OUT, "seed_convnet.after_step.npy"), np.asarray(model.predict(x, verbose=0)))

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.train_on_batch(xt, yt)
    model.save(os.path.join(OUT, "seed_convnet_sgd.h5"))
    save_io("seed_convnet_sgd", model, x)

    # 2. A small functional model using every supported layer type, RMSprop, categorical CE.
    inputs = keras.Input(shape=(12, 12, 3), name="img")
    h = layers.Rescaling(1.0 / 255)(inputs)
    h = layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer="he_normal")(h)
    h = layers.AveragePooling2D(2)(h)
    h = layers.Conv2D(6, 3, strides=2, use_bias=True)(h)
    h = layers.ReLU()(h)
    h = layers.MaxPool2D(pool_size=2, strides=1, padding="same")(h)
    h = layers.Flatten()(h)
    h = layers.Dropout(0.25)(h)
    h = layers.Dense(8)(h)
    h = layers.Activation("relu")(h)
    h = layers.Dense(3)(h)
    outputs = layers.Softmax()(h)
    fmodel = keras.Model(inputs, outputs, name="small_functional")
    fmodel.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
                   loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
    fx = rng.random((5, 12, 12, 3), dtype=np.float32) * 255
    fxt = rng.random((6, 12, 12, 3), dtype=np.float32) * 255
    fyt = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    fmodel.train_on_batch(fxt, fyt)
    fmodel.save(os.path.join(OUT, "small_functional.keras"))
    fmodel.save(os.path.join(OUT, "small_functional.h5"))
    fmodel.save_weights(os.path.join(OUT, "small_functional.weights.h5"))
    save_io("small_functional", fmodel, fx)
    np.save(os.path.join(OUT, "small_functional.train_x.npy"), fxt)
    np.save(os.path.join(OUT, "small_functional.train_y.npy"), fyt)
    disable_dropout(fmodel)
    fmodel.make_train_function(force=True)
    fmodel.train_on_batch(fxt, fyt)
    np.save(os.path.join(OUT, "small_functional.after_step.npy"), np.asarray(fmodel.predict(fx, verbose=0)))


def keras2_fixtures(tf_keras):
    """A Keras 2 (tf.keras) Sequential with `input_shape` (-> batch_input_shape), legacy .h5 + Adam."""
    from tf_keras import layers
    rng = np.random.default_rng(2)
    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential([
        layers.Conv2D(8, 3, activation="relu", input_shape=(10, 10, 1)),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(16, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(4, activation="softmax"),
    ])
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    xt = rng.random((6, 10, 10, 1), dtype=np.float32)
    yt = rng.integers(0, 4, 6)
    model.train_on_batch(xt, yt)
    model.save(os.path.join(OUT, "tfkeras2_small.h5"))
    model.save_weights(os.path.join(OUT, "tfkeras2_small_weights.h5"))
    x = rng.random((3, 10, 10, 1), dtype=np.float32)
    save_io("tfkeras2_small", model, x)
    np.save(os.path.join(OUT, "tfkeras2_small.train_x.npy"), xt)
    np.save(os.path.join(OUT, "tfkeras2_small.train_y.npy"), yt)
    disable_dropout(model)
    model.make_train_function(force=True)
    model.train_on_batch(xt, yt)
    np.save(os.path.join(OUT, "tfkeras2_small.after_step.npy"), np.asarray(model.predict(x, verbose=0)))


def main():
    import keras
    import tensorflow as tf
    versions = {"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend(),
                "python": sys.version.split()[0]}
    keras3_fixtures(keras)
    from make_multi_io_fixtures import multi_io_fixtures  # two-input two-output Functional (multi_io.*)
    multi_io_fixtures(keras)
    try:
        import tf_keras
    except ImportError:
        tf_keras = None
    if tf_keras is not None:
        versions["tf_keras"] = tf_keras.__version__
        keras2_fixtures(tf_keras)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump(versions, f, indent=1)
        f.write("\n")
    print(versions)


if __name__ == "__main__":
    main()

"""Generate the real-Keras two-input / two-output fixture (run with a Python that has Keras 3 + TF).

    python3 tests/keras_fixtures/make_multi_io_fixtures.py      # writes into tests/keras_fixtures/

(`make_fixtures.py` calls this too.) The model is

    a = Input((4,), name="a"); b = Input((3,), name="b")
    h = Dense(8, "relu", name="h")(Concatenate(name="cat")([a, b]))
    y1 = Dense(2, "softmax", name="y1")(h); y2 = Dense(1, name="y2")(h)
    Model([a, b], [y1, y2], name="multi_io")

compiled with Adam, loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
metrics=[["accuracy"], ["mae"]] and trained 2 steps (train_on_batch) so Adam has slot variables. Files:

* `multi_io.keras`, `multi_io.h5`: what Keras saves (the .keras one with the Adam state, iterations == 2).
* `multi_io_expected.npz`: fixed inputs `a`, `b` and Keras's predictions `y1`, `y2` on them.
* `multi_io_train.npz`: the training batch (`a`, `b`, targets `y1`, `y2`), Keras's `evaluate(return_dict=True)`
  on it before the next step (`evaluate_loss`, `evaluate_y1_loss`, `evaluate_y2_loss`, `evaluate_y1_accuracy`,
  `evaluate_y2_mae`), and the predictions on the fixed inputs after one more train_on_batch from the saved
  state (`after_y1`, `after_y2`): what a faithful reload must reproduce.

`check_in_keras.py multi_io.keras multi_io_expected.npz multi_io_expected.npz --train multi_io_train.npz`
passes on these files (the same check the lead runs on rconv-saved multi-input/multi-output files).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))


def build_multi_io(keras):
    from keras import layers
    a = keras.Input((4,), name="a")
    b = keras.Input((3,), name="b")
    h = layers.Dense(8, "relu", name="h")(layers.Concatenate(name="cat")([a, b]))
    y1 = layers.Dense(2, "softmax", name="y1")(h)
    y2 = layers.Dense(1, name="y2")(h)
    return keras.Model([a, b], [y1, y2], name="multi_io")


def multi_io_fixtures(keras):
    rng = np.random.default_rng(7)
    keras.utils.set_random_seed(7)
    model = build_multi_io(keras)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5],
                  metrics=[["accuracy"], ["mae"]])
    # Inputs in odd ranges (negative, > 1) so the ReLU and both heads see varied values;
    # train batch 6, prediction batch 5.
    ta = rng.normal(0.0, 1.5, (6, 4)).astype(np.float32)
    tb = rng.uniform(-2.0, 2.0, (6, 3)).astype(np.float32)
    ty1 = rng.integers(0, 2, 6)
    ty2 = rng.normal(0.5, 1.0, (6, 1)).astype(np.float32)
    for _ in range(2):
        model.train_on_batch([ta, tb], [ty1, ty2])
    assert int(model.optimizer.iterations) == 2
    model.save(os.path.join(OUT, "multi_io.keras"))
    model.save(os.path.join(OUT, "multi_io.h5"))

    a = rng.normal(0.0, 1.5, (5, 4)).astype(np.float32)
    b = rng.uniform(-2.0, 2.0, (5, 3)).astype(np.float32)
    y1, y2 = model.predict([a, b], verbose=0)
    np.savez(os.path.join(OUT, "multi_io_expected.npz"), a=a, b=b, y1=np.asarray(y1, np.float32),
             y2=np.asarray(y2, np.float32))

    ev = model.evaluate([ta, tb], [ty1, ty2], verbose=0, return_dict=True)
    model.train_on_batch([ta, tb], [ty1, ty2])
    after_y1, after_y2 = model.predict([a, b], verbose=0)
    np.savez(os.path.join(OUT, "multi_io_train.npz"), a=ta, b=tb, y1=ty1, y2=ty2,
             after_y1=np.asarray(after_y1, np.float32), after_y2=np.asarray(after_y2, np.float32),
             **{f"evaluate_{k}": np.float32(v) for k, v in ev.items()})
    return ev


def main():
    import keras
    ev = multi_io_fixtures(keras)
    print("multi_io fixtures written; evaluate on the train batch:", ev)


if __name__ == "__main__":
    main()

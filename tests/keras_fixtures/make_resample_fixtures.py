"""Generate the real-Keras resampling fixture (run with a Python that has Keras 3 + TF).

    /work/kvenv/bin/python tests/keras_fixtures/make_resample_fixtures.py   # writes resample_expected.npz here

Keras 3 on TensorFlow resizes with `tf.image.resize` (half-pixel centres, no antialiasing). For fixed inputs
`x` (2, 5, 7, 2) and `x_tall` (1, 9, 4, 1) the file holds, per case name, Keras's output `<case>` and the
input gradient `<case>:grad` of `sum(output * cot_<case>)` (TensorFlow's registered gradient, which for
these resizes is the exact adjoint), with the cotangent `<case>:cot`. `tests/test_resample_layers.py` checks
rconv's layers against it. Cases (layer and kwargs) are listed in `CASES` and stored as JSON in `cases`.

`axis_nearest:<in>x<out>`: TF's nearest resize of `arange(in) + 0.25` along one axis to `out` samples, for
the pairs (in, out <= 40) where TF's float32 source index `floor((o + 0.5f) * (in / out)f)` differs from
the exact one (tests/test_resample.py reproduces TF, not exact arithmetic).

`resample_model.keras`: a functional model holding all twelve layers of this family (`build_model`), trained
two steps with Adam; `model:image` / `model:probs` in the npz are fixed inputs and Keras's predictions. (Its
RandomCrop keeps the input size: Keras >= 3.8 does not crop at inference.) `resample_model.h5` and
`model_h5:probs`: the same without RandomBrightness, which Keras 3.15 cannot write to .h5 ("cannot pickle
'module' object"). `resample_train.keras`: the same with the random layers made the identity (factor, rate
and stddev 0), `train:probs` its predictions, and `train:after_probs` the predictions after one more
`train_on_batch(train:image, train:labels)` from the saved state: TF's gradients through every layer enter it.
"""
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))

# (in, out) pairs where TF's float32 nearest index differs from exact arithmetic (found by sweeping 1..40).
NEAREST_QUIRKS = [(6, 37), (12, 37), (14, 23), (24, 37), (26, 11), (28, 23), (30, 29)]

# name -> (layer class, kwargs, input name)
CASES = {
    "up_bilinear_2x3": ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}, "x"),
    "up_nearest_3x2": ("UpSampling2D", {"size": (3, 2), "interpolation": "nearest"}, "x"),
    "resize_bilinear_up_8x10": ("Resizing", {"height": 8, "width": 10}, "x"),
    "resize_bilinear_down_3x4": ("Resizing", {"height": 3, "width": 4}, "x"),
    "resize_bilinear_mixed_2x11": ("Resizing", {"height": 2, "width": 11}, "x"),
    "resize_nearest_mixed_7x3": ("Resizing", {"height": 7, "width": 3, "interpolation": "nearest"}, "x"),
    "resize_crop_4x4": ("Resizing", {"height": 4, "width": 4, "crop_to_aspect_ratio": True}, "x"),
    "resize_pad_4x4": ("Resizing", {"height": 4, "width": 4, "pad_to_aspect_ratio": True, "fill_value": 0.5}, "x"),
    "resize_pad_tall_6x3": ("Resizing", {"height": 6, "width": 3, "pad_to_aspect_ratio": True}, "x_tall"),
    "resize_crop_tall_2x3": ("Resizing", {"height": 2, "width": 3, "crop_to_aspect_ratio": True}, "x_tall"),
    "center_crop_slice_3x4": ("CenterCrop", {"height": 3, "width": 4}, "x"),
    "center_crop_resize_6x4": ("CenterCrop", {"height": 6, "width": 4}, "x"),
    "center_crop_resize_tall_10x2": ("CenterCrop", {"height": 10, "width": 2}, "x_tall"),
}


def build_model(keras, brightness=0.1, rate=0.2, stddev=0.05):
    from keras import layers as L
    inp = keras.Input((9, 8, 3), name="image")
    h = L.Resizing(10, 12, name="resize")(inp)
    if brightness is not None:
        h = L.RandomBrightness(brightness, value_range=(-10, 10), seed=1, name="brightness")(h)
    h = L.RandomCrop(10, 12, seed=2, name="random_crop")(h)
    h = L.Conv2D(4, 3, padding="same", name="conv")(h)
    h = L.SpatialDropout2D(rate, seed=3, name="sdrop")(h)
    h = L.GaussianNoise(stddev, seed=4, name="noise")(h)
    h = L.UpSampling2D((2, 1), interpolation="bilinear", name="up_bilinear")(h)
    h = L.UpSampling2D((1, 2), name="up_nearest")(h)
    h = L.ZeroPadding2D(((1, 0), (2, 1)), name="pad")(h)
    h = L.Cropping2D(((0, 1), (1, 2)), name="crop")(h)
    h = L.CenterCrop(12, 9, name="center_crop")(h)
    h = L.Resizing(7, 5, crop_to_aspect_ratio=True, interpolation="nearest", name="resize_crop")(h)
    h = L.Resizing(9, 5, pad_to_aspect_ratio=True, fill_value=0.25, name="resize_pad")(h)
    h = L.Conv2D(2, 1, name="conv_out")(h)
    h = L.Reshape((-1, 2), name="reshape")(h)
    h = L.Permute((2, 1), name="permute")(h)
    h = L.Flatten(name="flatten")(h)
    h = L.RepeatVector(2, name="repeat")(L.Dense(3, name="dense")(h))
    out = L.Dense(2, activation="softmax", name="probs")(L.Reshape((6,), name="reshape_flat")(h))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def save_model(keras, rng, out):
    x = rng.uniform(-1, 1, (6, 9, 8, 3)).astype(np.float32)
    image = rng.uniform(-1, 1, (4, 9, 8, 3)).astype(np.float32)
    out["model:image"] = image
    variants = [("model", "resample_model.keras", {}), ("model_h5", "resample_model.h5", {"brightness": None}),
                ("train", "resample_train.keras", {"brightness": 0.0, "rate": 0.0, "stddev": 0.0})]
    for key, name, kwargs in variants:
        keras.utils.set_random_seed(0)
        model = build_model(keras, **kwargs)
        for _ in range(2):
            model.train_on_batch(x, np.arange(6) % 2)
        model.save(os.path.join(OUT, name))
        out[f"{key}:probs"] = model.predict(image, verbose=0)
    # The deterministic variant resumes training: one more step from the saved state (Adam slots included).
    tx = rng.uniform(-1, 1, (5, 9, 8, 3)).astype(np.float32)
    ty = np.array([0, 1, 1, 0, 1])
    model.train_on_batch(tx, ty)
    out["train:image"], out["train:labels"] = tx, ty
    out["train:after_probs"] = model.predict(image, verbose=0)


def main():
    import keras
    import tensorflow as tf
    from keras import layers

    rng = np.random.default_rng(7)
    inputs = {"x": rng.uniform(-1, 1, (2, 5, 7, 2)).astype(np.float32),
              "x_tall": rng.uniform(-1, 1, (1, 9, 4, 1)).astype(np.float32)}
    out = dict(inputs)
    for name, (cls, kwargs, source) in CASES.items():
        layer = getattr(layers, cls)(**kwargs)
        x = tf.constant(inputs[source])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=False)
            cot = rng.standard_normal(tuple(y.shape)).astype(np.float32)
            loss = tf.reduce_sum(y * cot)
        out[name] = np.asarray(y)
        out[name + ":cot"] = cot
        out[name + ":grad"] = np.asarray(tape.gradient(loss, x))
    for n_in, n_out in NEAREST_QUIRKS:
        axis = (np.arange(n_in, dtype=np.float32) + 0.25).reshape(1, n_in, 1, 1)
        out[f"axis_nearest:{n_in}x{n_out}"] = tf.image.resize(axis, (n_out, 1), method="nearest").numpy()
    save_model(keras, rng, out)
    out["cases"] = np.array(json.dumps(CASES))
    out["keras_version"] = np.array(keras.__version__)
    np.savez(os.path.join(OUT, "resample_expected.npz"), **out)
    print("wrote", os.path.join(OUT, "resample_expected.npz"), "keras", keras.__version__)


if __name__ == "__main__":
    main()

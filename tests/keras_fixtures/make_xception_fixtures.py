"""Real-Keras fixtures for issue 13 (run with a Python that has Keras 3 + TF):

    /work/kvenv/bin/python tests/keras_fixtures/make_xception_fixtures.py

* `mini_xception.{keras,h5}`: the mini-Xception of Deep Learning with Python (2nd ed.) chapter 9, scaled down
  (augmentation, Rescaling, residual blocks of BatchNormalization + ReLU + SeparableConv2D + max pooling with a
  strided 1x1 Conv2D shortcut, global average pooling, dropout, a sigmoid unit), trained a few steps so the moving
  statistics and the Adam slots moved. `mini_xception_expected.npz`: inputs and Keras's predictions (no resumed
  training step: its augmentation layers draw random transforms, so a step cannot be replayed elsewhere).
* `segmentation.{keras,h5}`: the chapter's segmentation shape (strided Conv2D down, Conv2DTranspose up, per-pixel
  softmax), plus a Conv2DTranspose with valid padding and output_padding, and a DepthwiseConv2D.
  `segmentation_expected.npz`: inputs and predictions; `segmentation_train.npz`: one more RMSprop training batch
  and Keras's predictions after it.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

OUT = os.path.dirname(os.path.abspath(__file__))


def mini_xception(keras, size=32, sizes=(8, 16)):
    from keras import layers
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.RandomZoom(0.2)(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(filters=8, kernel_size=5, use_bias=False)(x)
    for size_ in sizes:
        residual = x
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size_, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size_, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size_, 1, strides=2, padding="same", use_bias=False)(residual)
        x = layers.add([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="prob")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def segmentation(keras, size=16, classes=3):
    from keras import layers
    inputs = keras.Input(shape=(size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(8, 3, activation="relu", padding="same", strides=2)(x)
    x = layers.Conv2DTranspose(6, 2, strides=2, padding="valid", output_padding=1)(x)  # 8 -> 17
    x = layers.Cropping2D(((0, 1), (0, 1)))(x) if hasattr(layers, "Cropping2D") else x
    outputs = layers.Conv2D(classes, 3, activation="softmax", padding="same", name="mask")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return model


def main():
    import keras
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    # mini-Xception: a few steps on random images, two classes.
    model = mini_xception(keras)
    xt = rng.integers(0, 256, (16, 32, 32, 3)).astype(np.float32)
    yt = (rng.random(16) > 0.5).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(xt, yt)
    x = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    model.save(os.path.join(OUT, "mini_xception.keras"))
    model.save(os.path.join(OUT, "mini_xception.h5"))
    np.savez(os.path.join(OUT, "mini_xception_expected.npz"), image=x, prob=model.predict(x, verbose=0))
    # segmentation
    keras.utils.set_random_seed(8)
    seg = segmentation(keras)
    xs = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.float32)
    ys = rng.integers(0, 3, (6, 16, 16))
    for _ in range(2):
        seg.train_on_batch(xs, ys)
    xe = rng.integers(0, 256, (2, 16, 16, 3)).astype(np.float32)
    seg.save(os.path.join(OUT, "segmentation.keras"))
    seg.save(os.path.join(OUT, "segmentation.h5"))
    np.savez(os.path.join(OUT, "segmentation_expected.npz"), image=xe, mask=seg.predict(xe, verbose=0))
    seg.train_on_batch(xs, ys)
    np.savez(os.path.join(OUT, "segmentation_train.npz"), image=xs, mask=ys, after=seg.predict(xe, verbose=0))
    print("OK", keras.__version__)


if __name__ == "__main__":
    main()

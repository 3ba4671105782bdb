"""The mini-Xception of Deep Learning with Python (2nd ed.), chapter 9.3, written as a Keras 3 user would, with
`keras` replaced by `rconv`: data augmentation, residual blocks of BatchNormalization + ReLU + SeparableConv2D +
max pooling with strided 1x1 shortcuts, trained from a directory of images with `image_dataset_from_directory`.

usage: python examples/mini_xception.py [DATA_DIR] [--epochs N] [--size PIXELS] [--per-class N] [--out MODEL.keras]
DATA_DIR holds train/ and validation/, each with one folder per class. Without it, a small synthetic two-class
image tree (JPEG and PNG files) is written to a temporary folder so the workflow runs anywhere. Prints the final
validation accuracy and saves the model (default: mini_xception.keras in a temporary folder).
"""
import argparse
import os
import tempfile

import numpy as np

import rconv as keras
from rconv import layers


def synthetic_tree(root, per_class=48, size=64):
    """Class 0 has a bright disc, class 1 a bright bar, on noise: learnable only by looking at shapes."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("validation", per_class // 2)):
        for label, cls in enumerate(("discs", "bars")):
            os.makedirs(os.path.join(root, split, cls), exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
                cy, cx = rng.integers(size // 4, size - size // 4, 2)
                yy, xx = np.ogrid[:size, :size]
                if label == 0:
                    shape = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2
                else:
                    shape = (abs(yy - cy) < size // 12) & (abs(xx - cx) < size // 3)
                img[shape] = 230
                ext = "jpg" if i % 2 else "png"
                Image.fromarray(img).save(os.path.join(root, split, cls, f"{cls}.{i}.{ext}"))
    return root


def build_model(size, sizes=(16, 32, 64)):
    data_augmentation = keras.Sequential([
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.2),
    ])
    inputs = keras.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(filters=16, kernel_size=5, use_bias=False)(x)
    for filters in sizes:
        residual = x
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False)(residual)
        x = layers.add([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--per-class", type=int, default=200, help="synthetic training images per class")
    parser.add_argument("--out", default=os.path.join(tempfile.mkdtemp(prefix="mini-xception-"), "mini_xception.keras"))
    args = parser.parse_args(argv)
    base = args.data_dir or synthetic_tree(tempfile.mkdtemp(prefix="mini-xception-data-"), per_class=args.per_class,
                                           size=args.size)
    keras.utils.set_random_seed(0)
    train_dataset = keras.utils.image_dataset_from_directory(
        os.path.join(base, "train"), image_size=(args.size, args.size), batch_size=16)
    validation_dataset = keras.utils.image_dataset_from_directory(
        os.path.join(base, "validation"), image_size=(args.size, args.size), batch_size=16)
    model = build_model(args.size)
    callbacks = [keras.callbacks.ModelCheckpoint(filepath=args.out, save_best_only=True, monitor="val_loss")]
    history = model.fit(train_dataset, epochs=args.epochs, validation_data=validation_dataset, callbacks=callbacks,
                        verbose=2)
    best = keras.models.load_model(args.out)
    loss, accuracy = best.evaluate(validation_dataset, verbose=0)
    print(f"validation accuracy {accuracy:.3f} (best checkpoint {args.out}); last epoch "
          f"{history.history['val_accuracy'][-1]:.3f}")
    return best, accuracy


if __name__ == "__main__":
    main()

"""Transfer learning and fine-tuning a pretrained base — keras-io's "Transfer learning & fine-tuning" and Deep
Learning with Python 8.3, written as a Keras 3 user would, with `keras` replaced by `rconv`:

1. a frozen `Xception` (or `ResNet50`) base under a new classifier head, trained on a two-class image tree;
2. then its top block unfrozen and trained with a low learning rate, every BatchNormalization kept frozen (a
   frozen BatchNormalization runs in inference mode: its moving statistics stay those of the pretraining).

usage: python examples/fine_tune_pretrained.py [DATA_DIR] [--base xception|resnet50] [--weights FILE]
           [--size PIXELS] [--epochs N] [--fine-tune-epochs N]
DATA_DIR holds train/ and validation/ with one folder per class. Without it, a small synthetic two-class tree is
written. `--weights` takes a Keras `.h5`/`.weights.h5` of the base (include_top=False); without it, the base has
random weights (there is no download here), which exercises the workflow but not the accuracy of transfer.
"""
import argparse
import os
import tempfile

import numpy as np

import rconv as keras
from rconv import layers

BASES = {  # name -> (constructor, preprocess_input, layers of the top block to unfreeze)
    "xception": ("xception", "Xception", "block14_"),
    "resnet50": ("resnet50", "ResNet50", "conv5_block3_"),
}


def synthetic_tree(root, per_class=24, size=96):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("validation", per_class // 2)):
        for label, cls in enumerate(("discs", "bars")):
            os.makedirs(os.path.join(root, split, cls), exist_ok=True)
            for i in range(count):
                img = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
                cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
                yy, xx = np.ogrid[:size, :size]
                shape = ((yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2) if label == 0 else \
                    (abs(yy - cy) < size // 12) & (abs(xx - cx) < size // 3)
                img[shape] = 230
                Image.fromarray(img).save(os.path.join(root, split, cls, f"{cls}.{i}.jpg"))
    return root


def build(base_name, size, weights):
    module_name, class_name, _ = BASES[base_name]
    module = getattr(keras.applications, module_name)
    base_model = getattr(module, class_name)(weights=weights, input_shape=(size, size, 3), include_top=False)
    base_model.trainable = False  # freeze the base
    data_augmentation = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)])
    inputs = keras.Input(shape=(size, size, 3))
    x = data_augmentation(inputs)
    x = module.preprocess_input(x)
    x = base_model(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    return model, base_model


def unfreeze_top_block(base_model, prefix):
    """Unfreeze the layers of the top block; every BatchNormalization stays frozen (inference mode)."""
    base_model.trainable = True
    for layer in base_model.layers:
        in_top_block = layer.name.startswith(prefix)
        layer.trainable = in_top_block and not isinstance(layer, layers.BatchNormalization)
    return [layer.name for layer in base_model.layers if layer.trainable and layer.weights]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--base", choices=sorted(BASES), default="xception")
    parser.add_argument("--weights")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    args = parser.parse_args(argv)
    base = args.data_dir or synthetic_tree(tempfile.mkdtemp(prefix="fine-tune-data-"), size=args.size)
    keras.utils.set_random_seed(0)
    train_ds = keras.utils.image_dataset_from_directory(os.path.join(base, "train"), image_size=(args.size, args.size),
                                                        batch_size=8)
    validation_ds = keras.utils.image_dataset_from_directory(os.path.join(base, "validation"),
                                                             image_size=(args.size, args.size), batch_size=8)
    model, base_model = build(args.base, args.size, args.weights)
    model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy()])
    model.fit(train_ds, epochs=args.epochs, validation_data=validation_ds, verbose=2)
    unfrozen = unfreeze_top_block(base_model, BASES[args.base][2])
    print(f"fine-tuning {len(unfrozen)} layers of the top block: {unfrozen}")
    model.compile(optimizer=keras.optimizers.Adam(1e-5), loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.BinaryAccuracy()])
    history = model.fit(train_ds, epochs=args.fine_tune_epochs, validation_data=validation_ds, verbose=2)
    print(f"validation accuracy after fine-tuning {history.history['val_binary_accuracy'][-1]:.3f}")
    return model, base_model, unfrozen


if __name__ == "__main__":
    main()

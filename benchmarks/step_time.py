"""Training step time of two workloads, through the public API only (so any two versions of rconv can be
compared on the same machine, one after the other):

* the seed MNIST convnet (Deep Learning with Python 5.1), batch 64, RMSprop;
* fine-tuning VGG16 (random weights, include_top=False) at 150x150 with only block5 trainable, under
  Flatten -> Dense(256, relu) -> Dense(1, sigmoid), batch 20, RMSprop(1e-5) (Deep Learning with Python 5.3).

usage: step_time.py [repeats]   -- prints the median and best ms/step of `train_on_batch` for each.
"""
import statistics
import sys
import time

import numpy as np

import rconv
from rconv import layers


def timed_steps(model, x, y, n):
    model.train_on_batch(x, y)  # warm up (builds, allocates optimizer slots)
    model.train_on_batch(x, y)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, min(times) * 1e3


def seed_convnet(loss="sparse_categorical_crossentropy"):
    model = rconv.Sequential([
        layers.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss=loss, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    return model, rng.random((64, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 64)


def vgg16_block5():
    conv_base = rconv.applications.VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))
    for layer in conv_base.layers:
        layer.trainable = layer.name.startswith("block5")
    model = rconv.Sequential([conv_base, layers.Flatten(), layers.Dense(256, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=rconv.optimizers.RMSprop(1e-5), loss="binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    return model, rng.random((20, 150, 150, 3), dtype=np.float32), rng.integers(0, 2, (20, 1)).astype(np.float32)


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    rconv.utils.set_random_seed(0)
    for name, make, n in (("seed MNIST convnet, batch 64", seed_convnet, repeats),
                          ("VGG16 block5 fine-tuning, 150x150, batch 20", vgg16_block5, max(3, repeats // 6))):
        model, x, y = make()
        median, best = timed_steps(model, x, y, n)
        print(f"{name}: median {median:.2f} ms/step, best {best:.2f} ms/step ({n} steps)", flush=True)

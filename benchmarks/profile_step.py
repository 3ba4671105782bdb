"""Where one training step goes: wall-clock timers around every runner's forward and backward (a layer, or a
fused conv + ReLU + max-pool pair as one entry), the loss, the metrics, the optimizer (per variable: its
shape) and the rest (Python, batching), over real `fit` batches.

usage: profile_step.py [--model mnist|dogcat4|seed003] [--steps N] [--batch B] [--repeat R]

* mnist: the seed MNIST convnet (Deep Learning with Python 5.1) on MNIST, batch 64, RMSprop;
* dogcat4: seed 004 `model4`, 100x100x3, three conv + pool, Flatten, Dropout, Dense(512), batch 32,
  RMSprop(1e-4), on random images (as ../../shared/bench/images_keraslike.py);
* seed003: the seed 003 functional convnet, 180x180x3, batch 32, RMSprop, on random images.
With --repeat R the epoch runs R times and every entry reports its best (least noisy) epoch.
"""
import argparse
import collections
import time

import numpy as np

import rconv
from rconv import layers
from rconv.graph import executor, fused


def mnist_model():
    from rconv.datasets import mnist
    from step_time import seed_convnet
    (x, y), _ = mnist.load_data()
    model, _, _ = seed_convnet(loss="categorical_crossentropy")
    return (model, x.reshape(-1, 28, 28, 1).astype("float32") / 255, rconv.utils.to_categorical(y)), 64


def dogcat4_model():
    model = rconv.Sequential([
        layers.Input((100, 100, 3)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(512, activation="relu"),
        layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=rconv.optimizers.RMSprop(learning_rate=1e-4),
                  metrics=["accuracy"])
    return (model, *random_images((100, 100, 3))), 32


def seed003_model():
    inputs = rconv.Input(shape=(180, 180, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    for f in (32, 64, 128, 256):
        x = layers.MaxPooling2D(pool_size=2)(layers.Conv2D(filters=f, kernel_size=3, activation="relu")(x))
    x = layers.Dropout(0.5)(layers.Flatten()(layers.Conv2D(filters=256, kernel_size=3, activation="relu")(x)))
    model = rconv.Model(inputs=inputs, outputs=layers.Dense(1, activation="sigmoid")(x))
    model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    return (model, *random_images((180, 180, 3))), 32


def random_images(shape, n=4096):
    rng = np.random.default_rng(0)
    return (rng.random((n,) + shape, dtype=np.float32) * 255).astype(np.float32), \
        rng.integers(0, 2, size=(n, 1)).astype(np.float32)


MODELS = {"mnist": mnist_model, "dogcat4": dogcat4_model, "seed003": seed003_model}
spent = collections.defaultdict(float)
_depth = [0]  # only the outermost timed call counts (a runner calling another, a subclass calling super)


def timed(key, fn):
    def wrapper(*args, **kwargs):
        if _depth[0]:
            return fn(*args, **kwargs)
        _depth[0] += 1
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key(args) if callable(key) else key] += time.perf_counter() - t
            _depth[0] -= 1
    return wrapper


def instrument(model):
    """Timers on every runner class's forward and backward (keyed by the runner's name), the loss, the
    metrics and the optimizer's per-variable update (keyed by the variable's shape)."""
    for cls in {type(layer) for layer in model.layers} | {fused.ConvReluMaxPool}:
        for method in ("forward", "backward"):
            original = getattr(cls, method)
            if not getattr(original, "_profiled", False):
                wrapped = timed(lambda args, m=method: f"{args[0].name} {m}", original)
                wrapped._profiled = True
                setattr(cls, method, wrapped)
    opt = model.optimizer
    opt._update = timed(lambda args: f"optimizer {args[0].shape}", opt._update)
    loss_cls = type(model._compile_loss)
    loss_cls.__call__ = timed("loss", loss_cls.__call__)
    model._compile_metrics.update = timed("metrics", model._compile_metrics.update)
    executor.upstream_trainable = timed("executor bookkeeping", executor.upstream_trainable)
    return opt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch (default: 300 mnist, 40 else)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    rconv.utils.set_random_seed(0)
    (model, x, y), batch = MODELS[args.model]()
    batch = args.batch or batch
    steps = args.steps or (300 if args.model == "mnist" else 40)
    reps = -(-steps * batch // len(x))
    x, y = np.concatenate([x] * reps)[: steps * batch], np.concatenate([y] * reps)[: steps * batch]
    model.fit(x[: batch * 3], y[: batch * 3], batch_size=batch, epochs=1, verbose=0)  # build, warm up
    instrument(model)
    best: dict = {}
    for _ in range(args.repeat):
        spent.clear()
        t = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        spent["total"] = time.perf_counter() - t
        spent["rest (python, batching, executor)"] = 2 * spent["total"] - sum(spent.values())
        for key, seconds in spent.items():
            best[key] = min(best.get(key, np.inf), seconds)
    total = best.pop("total")
    print(f"{args.model}: {steps} steps of {batch}: {total / steps * 1e3:.2f} ms/step, {steps * batch / total:.0f} "
          f"img/s (best of {args.repeat})")
    for key, seconds in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"  {key:40s} {seconds / steps * 1e3:7.3f} ms  {seconds / total * 100:5.1f} %")


if __name__ == "__main__":
    main()

"""Where one training step of the seed MNIST convnet spends its time: wall-clock timers around every
layer's forward and backward, the loss, the optimizer and the rest (Python, metrics), over real `fit`
batches. usage: profile_step.py [steps] [batch]"""
import collections
import sys
import time

import rconv
from rconv.datasets import mnist
from rconv.graph.fused import ConvReluMaxPool
from step_time import seed_convnet

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
rconv.utils.set_random_seed(0)
(xtr, ytr), _ = mnist.load_data()
xtr = xtr[: steps * batch].reshape(-1, 28, 28, 1).astype("float32") / 255
ytr = rconv.utils.to_categorical(ytr[: steps * batch])
model, _, _ = seed_convnet(loss="categorical_crossentropy")

spent = collections.defaultdict(float)


def timed(key, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - t
    return wrapper


for layer in model.layers:
    layer.forward = timed(f"{layer.name} forward", layer.forward)
    layer.backward = timed(f"{layer.name} backward", layer.backward)
# Fused conv + ReLU + max-pool pairs run through their own runner, not the layers' methods.
for method in ("forward", "backward"):
    original = getattr(ConvReluMaxPool, method)

    def fused(self, *args, _original=original, _method=method, **kwargs):
        return timed(f"{self.conv.name}+{self.pool.name} {_method}", _original)(self, *args, **kwargs)
    setattr(ConvReluMaxPool, method, fused)
model.fit(xtr[:batch * 20], ytr[:batch * 20], batch_size=batch, epochs=1, verbose=0)  # warm up
model.optimizer.apply = timed("optimizer", model.optimizer.apply)
model.loss.fused_value_and_grad = timed("loss", model.loss.fused_value_and_grad)
spent.clear()
t = time.perf_counter()
model.fit(xtr, ytr, batch_size=batch, epochs=1, verbose=0)
total = time.perf_counter() - t
n = len(xtr) // batch
print(f"{n} steps of {batch}: {total / n * 1e3:.2f} ms/step, {len(xtr) / total:.0f} img/s")
for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
    print(f"  {key:32s} {seconds / n * 1e3:6.3f} ms")
print(f"  {'rest (python, metrics, batching)':32s} {(total - sum(spent.values())) / n * 1e3:6.3f} ms")

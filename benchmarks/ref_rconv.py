"""rconv on the seed MNIST convnet, printing the same lines as ../shared/bench/ref_torch.py.
usage: ref_rconv.py [epochs] [batch] [dataset]"""
import sys
import time

import rconv
from rconv import layers, models
from rconv.datasets import fashion_mnist, mnist

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
name = sys.argv[3] if len(sys.argv) > 3 else "mnist"
rconv.utils.set_random_seed(0)
(xtr, ytr), (xte, yte) = (fashion_mnist if name == "fashion-mnist" else mnist).load_data()
xtr = xtr.reshape(-1, 28, 28, 1).astype("float32") / 255
xte = xte.reshape(-1, 28, 28, 1).astype("float32") / 255
ytr = rconv.utils.to_categorical(ytr)
yte = rconv.utils.to_categorical(yte)
model = models.Sequential([
    layers.Input((28, 28, 1)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.Flatten(), layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
print("params", model.count_params())
model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
for ep in range(epochs):
    t0 = time.perf_counter()
    history = model.fit(xtr, ytr, epochs=1, batch_size=batch, verbose=0)
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    loss, acc = model.evaluate(xte, yte, batch_size=1000, verbose=0)
    dti = time.perf_counter() - t1
    print(f"epoch {ep + 1}: train {dt:.2f}s ({len(xtr) / dt:.0f} img/s) loss {history.history['loss'][-1]:.4f} "
          f"test_acc {acc:.4f} infer {len(xte) / dti:.0f} img/s")
x1 = xte[:1]
for _ in range(50):
    model.predict_on_batch(x1)
t = time.perf_counter()
for _ in range(500):
    model.predict_on_batch(x1)
print(f"latency1 {(time.perf_counter() - t) / 500 * 1e6:.0f} us")

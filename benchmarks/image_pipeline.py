"""flow_from_directory throughput (img/s and CPU ms per image) of rconv vs Keras's ImageDataGenerator, and the seed
004 loop end to end (dogcat4 `fit` on flow_from_directory with seed 004's augmentation).

usage: image_pipeline.py make DIR [per_class]          # 500x375 photo-like JPEGs in DIR/{cat,dog}
       image_pipeline.py flow {keras|rconv|rconv-full} DIR [batches]
       image_pipeline.py fit {keras|rconv} DIR [steps]

`rconv-full` turns reduced-size JPEG decoding off (`reduce_jpeg=False`). Run the systems alternately and take
the best of several runs: the machine is shared.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

AUG = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2, zoom_range=0.2,
           horizontal_flip=True)


def make(root, per_class=160):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for cls in ("cat", "dog"):
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for i in range(per_class):
            a = rng.random(6) * 0.05
            img = np.stack([127 + 100 * np.sin(a[c] * xx + a[c + 3] * yy + c) for c in range(3)], -1)
            img += rng.normal(0, 4, img.shape)
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(root, cls, f"{i:04d}.jpg"),
                                                                         quality=75)


def generator_class(lib):
    if lib == "keras":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    else:
        from rconv.preprocessing.image import ImageDataGenerator
    return ImageDataGenerator


def flow(lib, root, nb=30):
    gen_cls = generator_class(lib)
    extra = {"reduce_jpeg": False} if lib == "rconv-full" else {}
    for size in ((100, 100), (180, 180)):
        for name, kw in (("plain", {}), ("augmented", AUG)):
            it = gen_cls(rescale=1.0 / 255, **kw).flow_from_directory(root, target_size=size, class_mode="binary",
                                                                      batch_size=32, **extra)
            next(it)
            t, c = time.perf_counter(), time.process_time()
            for _ in range(nb):
                next(it)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            print(f"{lib} flow_from_directory {size[0]}x{size[1]} {name}: {nb * 32 / dt:.0f} img/s, "
                  f"{dc / (nb * 32) * 1e3:.2f} CPU ms/img", flush=True)


def fit(lib, root, steps=30):
    K = __import__("keras" if lib == "keras" else "rconv")
    layers = K.layers
    K.utils.set_random_seed(0)
    m = K.Sequential([K.Input((100, 100, 3)), layers.Conv2D(32, (3, 3), activation="relu"),
                      layers.MaxPooling2D((2, 2)), layers.Conv2D(64, (3, 3), activation="relu"),
                      layers.MaxPooling2D((2, 2)), layers.Conv2D(128, (3, 3), activation="relu"),
                      layers.MaxPooling2D((2, 2)), layers.Flatten(), layers.Dropout(0.5),
                      layers.Dense(512, activation="relu"), layers.Dense(1, activation="sigmoid")])
    m.compile(loss="binary_crossentropy", optimizer=K.optimizers.RMSprop(learning_rate=1e-4), metrics=["accuracy"])
    it = generator_class(lib)(rescale=1.0 / 255, **AUG).flow_from_directory(root, target_size=(100, 100),
                                                                            class_mode="binary", batch_size=32)
    m.fit(it, epochs=1, verbose=0)  # build, warm up
    epochs = max(1, round(steps / len(it)))  # whole passes: a PyDataset epoch ends with its last batch
    t = time.perf_counter()
    m.fit(it, epochs=epochs, verbose=0)
    dt = time.perf_counter() - t
    print(f"{lib} seed004 fit on flow_from_directory (augmented JPEGs): {it.n * epochs / dt:.0f} img/s", flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 160)
    elif cmd == "flow":
        flow(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 30)
    elif cmd == "fit":
        fit(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 30)
    else:
        sys.exit(__doc__)

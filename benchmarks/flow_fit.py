"""The whole seed 004 loop, end to end: `fit` of `model4` (dogcat4, 100x100x3) on `flow_from_directory`
with seed 004's ImageDataGenerator augmentation (rotation 40, shifts 0.2, shear 0.2, zoom 0.2, horizontal
flip, rescale), batch 32, reading JPEG files. Runs with Keras 3 (`keras`) or `rconv`, same code; the model
is the one ../shared/bench/images_keraslike.py trains on arrays. Prints train img/s over `steps` batches
(after 2 warm-up batches) and the peak RSS. Used by `compare.py`.

usage: flow_fit.py {keras|rconv} DIR [steps]      (DIR holds one folder per class)
"""
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
lib, directory = sys.argv[1], sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
if lib == "keras":
    from keras.src.legacy.preprocessing.image import ImageDataGenerator  # Keras 3 keeps the class here
else:
    from rconv.preprocessing.image import ImageDataGenerator

K = __import__(lib)
layers = K.layers
K.utils.set_random_seed(0)
model = K.Sequential([
    K.Input((100, 100, 3)), layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Conv2D(128, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
    layers.Flatten(), layers.Dropout(0.5), layers.Dense(512, activation="relu"), layers.Dense(1, activation="sigmoid")])
model.compile(loss="binary_crossentropy", optimizer=K.optimizers.RMSprop(learning_rate=1e-4), metrics=["accuracy"])

gen = ImageDataGenerator(rescale=1.0 / 255, rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                         shear_range=0.2, zoom_range=0.2, horizontal_flip=True)
it = gen.flow_from_directory(directory, target_size=(100, 100), batch_size=32, class_mode="binary")
model.fit(it, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: the generator input path, tracing
t = time.perf_counter()
model.fit(it, steps_per_epoch=steps, epochs=1, verbose=0)
dt = time.perf_counter() - t
print(f"{lib} flow_fit batch 32: train {steps * 32 / dt:.1f} img/s "
      f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")

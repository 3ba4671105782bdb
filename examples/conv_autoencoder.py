"""keras-io's "Convolutional autoencoder for image denoising" (Santiago L. Valdarrama), with `keras` replaced by
`rconv`: a Conv2D / MaxPooling2D encoder and a Conv2DTranspose decoder learn to remove Gaussian noise from MNIST.

usage: python examples/conv_autoencoder.py [--epochs N] [--samples N]   (default: 10 epochs on 60000 samples)
Prints the denoising loss on the test images against the loss of the noisy images themselves.
"""
import sys

import numpy as np

from rconv import layers
from rconv.datasets import mnist
from rconv.models import Model

epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 10
samples = int(sys.argv[sys.argv.index("--samples") + 1]) if "--samples" in sys.argv else None


def preprocess(array):
    """Normalizes the supplied array and reshapes it into the appropriate format."""
    array = array.astype("float32") / 255.0
    array = np.reshape(array, (len(array), 28, 28, 1))
    return array


def noise(array):
    """Adds random noise to each image in the supplied array."""
    noise_factor = 0.4
    noisy_array = array + noise_factor * np.random.normal(loc=0.0, scale=1.0, size=array.shape)
    return np.clip(noisy_array, 0.0, 1.0).astype("float32")


np.random.seed(0)
(train_data, _), (test_data, _) = mnist.load_data()
train_data = preprocess(train_data[:samples])
test_data = preprocess(test_data[:2000])
noisy_train_data = noise(train_data)
noisy_test_data = noise(test_data)

input = layers.Input(shape=(28, 28, 1))
# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
# Decoder
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

# Autoencoder
autoencoder = Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

autoencoder.fit(x=noisy_train_data, y=train_data, epochs=epochs, batch_size=128, shuffle=True,
                validation_data=(noisy_test_data, test_data), verbose=2)
denoised = autoencoder.evaluate(noisy_test_data, test_data, verbose=0)
eps = 1e-7
clipped = np.clip(noisy_test_data, eps, 1 - eps)
baseline = float(np.mean(-(test_data * np.log(clipped) + (1 - test_data) * np.log(1 - clipped))))
print(f"denoising loss {denoised:.4f} (the noisy images themselves: {baseline:.4f})")

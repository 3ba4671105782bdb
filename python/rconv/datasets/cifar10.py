"""CIFAR-10 small images classification, as ``keras.datasets.cifar10``.

50,000 training and 10,000 test 32x32 colour images in 10 classes: airplane, automobile, bird, cat, deer,
dog, frog, horse, ship, truck (labels 0-9 in that order).
"""
from __future__ import annotations

from . import _cifar

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)


def load_data():
    """Load CIFAR-10 like ``keras.datasets.cifar10.load_data``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes ``(50000, 32, 32, 3)``,
        ``(50000, 1)``, ``(10000, 32, 32, 3)`` and ``(10000, 1)`` (channels last).

    The extracted folder ``cifar-10-batches-py/`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) is
    looked for in ``$RCONV_DATA/cifar10/``, ``$RCONV_DATA/``, the cache ``$RCONV_HOME/datasets``
    (``~/.rconv/datasets``) and Keras's cache ``~/.keras/datasets`` (also in Keras's
    ``cifar-10-batches-py-target/`` layout); if absent, ``cifar-10-python.tar.gz`` is downloaded into the
    cache, its SHA-256 checked, and extracted. The batch files are pickles, read with an unpickler that only
    builds NumPy arrays and plain containers.

    Raises:
        DatasetNotFoundError: nothing found and the download failed (the message lists where it looked).
        ValueError: a batch file is corrupt or not in the CIFAR format (the message names it), or the
            download's hash is wrong.
    """
    return _cifar.load(title="CIFAR-10", subdir="cifar10", dirname="cifar-10-batches-py", origin=ORIGIN,
                       sha256=SHA256, train=TRAIN_FILES, test=TEST_FILES, label_key="labels", num_classes=10)

"""Built-in datasets, as ``keras.datasets``: ``mnist``, ``fashion_mnist``, ``cifar10`` and ``cifar100``.

Each module has ``load_data()`` returning ``(x_train, y_train), (x_test, y_test)`` as uint8 NumPy
arrays. Files are looked for in ``$RCONV_DATA`` (a folder with ``mnist/`` and ``fashion-mnist/``
subfolders, or the files directly), then in the cache ``~/.rconv/datasets`` (``$RCONV_HOME``
moves it, like ``KERAS_HOME``), and downloaded into the cache from Keras's mirror if absent. The CIFAR
loaders also look in Keras's own cache (``~/.keras/datasets``).
"""
from . import cifar10, cifar100, fashion_mnist, mnist
from ._files import ChecksumError, DatasetNotFoundError, DownloadError

__all__ = ["mnist", "fashion_mnist", "cifar10", "cifar100", "DatasetNotFoundError", "ChecksumError", "DownloadError"]

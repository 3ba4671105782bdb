"""CIFAR-100 small images classification, as ``keras.datasets.cifar100``.

50,000 training and 10,000 test 32x32 colour images in 100 fine classes grouped into 20 coarse classes.
"""
from __future__ import annotations

from . import _cifar

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode="fine"):
    """Load CIFAR-100 like ``keras.datasets.cifar100.load_data``.

    Args:
        label_mode: ``"fine"`` (100 classes, labels 0-99) or ``"coarse"`` (20 superclasses, labels 0-19).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes ``(50000, 32, 32, 3)``,
        ``(50000, 1)``, ``(10000, 32, 32, 3)`` and ``(10000, 1)`` (channels last).

    The extracted folder ``cifar-100-python/`` (``train``, ``test``) is looked for and downloaded like
    ``cifar10.load_data`` does (subfolder ``cifar100/`` of ``$RCONV_DATA``).
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
    return _cifar.load(title="CIFAR-100", subdir="cifar100", dirname="cifar-100-python", origin=ORIGIN,
                       sha256=SHA256, train=("train",), test=("test",), label_key=f"{label_mode}_labels",
                       num_classes=100 if label_mode == "fine" else 20)

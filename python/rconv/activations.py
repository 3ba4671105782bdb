"""Activations by name or as callables (`rconv.activations.relu`), each backed by an `ops` kernel.

rconv has no autodiff, so every activation also registers its backward and says which tensor that
backward wants (`_SAVES_INPUT`): most work from the output alone (ReLU: y > 0 ⇔ x > 0; sigmoid,
softmax), a few (gelu, swish) need the input. Layers call `forward(fn, z) -> (y, saved)`, keep `saved`,
and later call `backward(fn, saved, grad_y)`.
"""
from __future__ import annotations

import numpy as np

from . import ops, registry


@registry.register("activations")
def relu(x):
    return ops.relu(x)


@registry.register("activations")
def sigmoid(x):
    return ops.sigmoid(x)


@registry.register("activations")
def softmax(x, axis=-1):
    if axis != -1:
        raise NotImplementedError("rconv's softmax only supports axis=-1")
    return ops.softmax(x)


@registry.register("activations")
def linear(x):
    return x


# fn → backward(y, grad_y) where y is the activation's *output* (see module docstring for ReLU).
_BACKWARD = {
    relu: ops.relu_backward,
    sigmoid: ops.sigmoid_backward,
    softmax: ops.softmax_backward,
    linear: None,
}


def get(identifier):
    """None/'linear' → linear; a known name → its function; a known callable → itself."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return registry.get("activations", identifier)
    if isinstance(identifier, dict):  # Keras serialises some activations as {"class_name": "relu", ...}
        return get(identifier.get("config", identifier.get("class_name")))
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation identifier: {identifier!r}")


def serialize(fn) -> str:
    """Keras 3 stores activations in layer configs by name: 'relu', 'linear', ..."""
    return registry.name_of("activations", fn, getattr(fn, "__name__", str(fn)))


def name_of(fn):
    """The registered name of `fn`, or None for a custom callable."""
    return registry.name_of("activations", fn, None)


# Activations whose backward needs their input rather than their output.
_SAVES_INPUT: set = set()


def forward(fn, z: np.ndarray):
    """`(fn(z), saved)`, where `saved` is what `backward` needs: the input for the activations in
    `_SAVES_INPUT`, the output for the rest."""
    y = fn(z)
    return y, (z if fn in _SAVES_INPUT else y)


def backward(fn, saved: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    """Gradient through activation `fn`, given what `forward` saved."""
    if fn is linear:
        return grad_y
    try:
        bwd = _BACKWARD[fn]
    except KeyError:
        raise TypeError(f"Activation {fn!r} has no backward in rconv (no autodiff); use one of "
                        f"{registry.names('activations')} for trainable models") from None
    return bwd(saved, grad_y)

"""Activations by name or as callables (`rconv.activations.relu`), each backed by a Rust kernel
(`ops.activate`), with Keras 3's names, formulas and defaults.

rconv has no autodiff, so every activation also registers its backward (`_BACKWARD`) and says which
tensor that backward wants (`_SAVES_INPUT`): some work from the output alone (ReLU: y > 0 ⇔ x > 0;
sigmoid, tanh, softmax), the rest (gelu, swish, elu, ...) need the input. Layers call
`forward(fn, z) -> (y, saved)`, keep `saved`, and later call `backward(fn, saved, grad_y)`.

`fn` may also be `Configured(relu, max_value=6.0)`: an activation with non-default parameters (what
the ReLU, LeakyReLU, ELU and Softmax layers use); it has no name of its own, so layers holding one
serialize their parameters, not the callable.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import autograd, ops, registry

# fn -> (kernel kind, its parameter names in the kernel's order). softmax/log_softmax take `axis` instead.
_KIND: dict = {}
# fn -> backward(saved, grad_y, **params).
_BACKWARD: dict = {}
# Activations whose backward needs their input rather than their output.
_SAVES_INPUT: set = set()


def _float(x):
    """Keras accepts lists and integer arrays: compute them as float32 (a float array passes as itself, so a
    GradientTape still recognises it)."""
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return x
    arr = np.asarray(x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float32)


def _kernel(kind: str, *names: str):
    """Register the decorated function as activation `kind`, backed by the Rust kernel of that kind, whose
    parameters are the function's keyword arguments `names` in this order."""
    def decorate(fn):
        registry.register("activations", fn.__name__)(fn)
        signature = inspect.signature(fn).parameters
        _KIND[fn] = (kind, {n: signature[n].default for n in names})

        def bwd(saved, grad_y, **params):
            return ops.activate_backward(saved, grad_y, kind, _param_list(fn, params))

        _BACKWARD[fn] = bwd
        if ops.activation_saves_input(kind):
            _SAVES_INPUT.add(fn)
        return fn
    return decorate


def _param_list(fn, params: dict) -> list:
    """`fn`'s keyword parameters in its kernel's order, defaults filled in."""
    defaults = _KIND[fn][1]
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"{fn.__name__}() got unexpected parameters {sorted(unknown)}")
    return [params.get(n, d) for n, d in defaults.items()]


def _run(fn, x, **params):
    y = ops.activate(_float(x), _KIND[fn][0], _param_list(fn, params))
    if autograd.connected(x):  # a GradientTape differentiates through this call: record it with its backward
        bound = Configured(fn, **params) if params else fn
        saved = _float(x) if _saves_input(bound) else y
        return autograd.record_unary(x, y, lambda g: backward(bound, saved, g), fn.__name__)
    return y


@_kernel("relu", "negative_slope", "max_value", "threshold")
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); with parameters: `x > threshold ? min(x, max_value) : 0` minus
    `negative_slope * relu(threshold - x)` (Keras 3's formula)."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(_float(x))
    return _run(relu, x, negative_slope=negative_slope, max_value=max_value, threshold=threshold)


@_kernel("leaky_relu", "negative_slope")
def leaky_relu(x, negative_slope=0.2):
    return _run(leaky_relu, x, negative_slope=negative_slope)


@_kernel("relu6")
def relu6(x):
    return _run(relu6, x)


@_kernel("sigmoid")
def sigmoid(x):
    return ops.sigmoid(_float(x))


@_kernel("tanh")
def tanh(x):
    return _run(tanh, x)


@_kernel("elu", "alpha")
def elu(x, alpha=1.0):
    """x if x > 0 else alpha * (exp(x) - 1)."""
    return _run(elu, x, alpha=alpha)


@_kernel("selu")
def selu(x):
    """scale * elu(x, alpha), alpha = 1.67326324, scale = 1.05070098."""
    return _run(selu, x)


@_kernel("gelu", "approximate")
def gelu(x, approximate=False):
    """x * Phi(x) (exact, Keras 3's default), or the tanh approximation."""
    return _run(gelu, x, approximate=bool(approximate))


@_kernel("silu")
def silu(x):
    """x * sigmoid(x)."""
    return _run(silu, x)


@_kernel("softplus")
def softplus(x):
    return _run(softplus, x)


@_kernel("softsign")
def softsign(x):
    return _run(softsign, x)


@_kernel("hard_sigmoid")
def hard_sigmoid(x):
    """relu6(x + 3) / 6 (Keras 3; Keras 2 used 0.2 x + 0.5)."""
    return _run(hard_sigmoid, x)


@_kernel("hard_silu")
def hard_silu(x):
    """x * hard_sigmoid(x)."""
    return _run(hard_silu, x)


@_kernel("exponential")
def exponential(x):
    return _run(exponential, x)


@_kernel("mish")
def mish(x):
    """x * tanh(softplus(x))."""
    return _run(mish, x)


# Keras's aliases: the same functions (serialized under their own names, as Keras does), resolved by `get`.
swish = silu
hard_swish = hard_silu
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def _over_axes(fn, arrays, axis):
    """`fn(*arrays, axis)` where `axis` is an int or a list of axes: several axes are moved to the end
    and merged into one (data movement only), and the result is moved back."""
    if not isinstance(axis, (list, tuple)):
        return fn(*arrays, axis)
    if len(axis) == 1:
        return fn(*arrays, axis[0])
    ndim = np.ndim(arrays[0])
    if any(not -ndim <= a < ndim for a in axis) or len({a % ndim for a in axis}) != len(axis):
        raise ValueError(f"softmax: axes {axis!r} repeat or are out of range for an input of rank {ndim}")
    axes = sorted(a % ndim for a in axis)
    rest = [a for a in range(ndim) if a not in axes]
    shape = np.shape(arrays[0])
    moved_shape = [shape[a] for a in rest] + [shape[a] for a in axes]
    flat = [np.moveaxis(np.asarray(a), axes, range(ndim - len(axes), ndim)).reshape(
        [shape[a] for a in rest] + [-1]) for a in arrays]
    out = fn(*flat, -1).reshape(moved_shape)
    return np.ascontiguousarray(np.moveaxis(out, range(ndim - len(axes), ndim), axes))


@registry.register("activations")
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) over `axis` (an int or a list of axes)."""
    return _recorded(softmax, x, _over_axes(lambda v, a: ops.activate(v, "softmax", axis=a), [_float(x)], axis),
                     axis)


@registry.register("activations")
def log_softmax(x, axis=-1):
    """x - log(sum(exp(x))) over `axis`."""
    return _recorded(log_softmax, x,
                     _over_axes(lambda v, a: ops.activate(v, "log_softmax", axis=a), [_float(x)], axis), axis)


def _recorded(fn, x, y, axis):
    """`y = fn(x, axis)`, recorded with its backward when a GradientTape differentiates through `x`."""
    if not autograd.connected(x):
        return y
    bound = Configured(fn, axis=axis) if axis != -1 else fn
    return autograd.record_unary(x, y, lambda g: backward(bound, y, g), fn.__name__)


def _axis_backward(kind):
    def bwd(saved, grad_y, axis=-1):
        return _over_axes(lambda s, g, a: ops.activate_backward(s, g, kind, axis=a), [saved, grad_y], axis)
    return bwd


_BACKWARD[softmax] = _axis_backward("softmax")
_BACKWARD[log_softmax] = _axis_backward("log_softmax")


@registry.register("activations")
def linear(x):
    return x


_BACKWARD[linear] = None


class Configured:
    """Activation `fn` with keyword parameters bound, e.g. `Configured(relu, max_value=6.0)`: callable,
    and `forward`/`backward` give it `fn`'s kernels with those parameters."""

    def __init__(self, fn, **params):
        if fn not in _BACKWARD:
            raise TypeError(f"Configured: {fn!r} is not one of rconv's activations")
        if fn in _KIND:
            _param_list(fn, params)  # refuses unknown names
        elif set(params) - {"axis"}:
            raise TypeError(f"{fn.__name__}() got unexpected parameters {sorted(set(params) - {'axis'})}")
        self.fn, self.params = fn, params

    def __call__(self, x):
        return self.fn(x, **self.params)

    def __eq__(self, other):
        return isinstance(other, Configured) and other.fn is self.fn and other.params == self.params

    def __hash__(self):
        return hash((self.fn, tuple(sorted(self.params.items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Configured({self.fn.__name__}, {args})"


def get(identifier):
    """None/'linear' → linear; a known name → its function; a known callable → itself."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        return registry.get("activations", _ALIASES.get(identifier, identifier))
    if isinstance(identifier, dict):  # Keras serialises some activations as {"class_name": "relu", ...}
        return get(identifier.get("config", identifier.get("class_name")))
    if callable(identifier):
        return identifier
    raise TypeError(f"Could not interpret activation identifier: {identifier!r}")


def deserialize(config, custom_objects=None):
    """Keras's `activations.deserialize`: a name or a serialized-function dict (or a custom object by name)."""
    name = config.get("config", config.get("class_name")) if isinstance(config, dict) else config
    if custom_objects and isinstance(name, str) and name in custom_objects:
        return custom_objects[name]
    return get(config)


def serialize(fn) -> str:
    """Keras 3 stores activations in layer configs by name: 'relu', 'linear', ..."""
    if isinstance(fn, Configured):
        raise ValueError(f"{fn!r} has parameters, which an activation name cannot carry; use the layer that "
                         "holds them (ReLU, LeakyReLU, ELU, Softmax) instead")
    return registry.name_of("activations", fn, getattr(fn, "__name__", str(fn)))


def name_of(fn):
    """The registered name of `fn`, or None for a custom callable (or a `Configured` one)."""
    return registry.name_of("activations", fn, None)


def _parts(fn):
    return (fn.fn, fn.params) if isinstance(fn, Configured) else (fn, {})


def _saves_input(fn) -> bool:
    base, params = _parts(fn)
    if params and base in _KIND:  # parameters can change the kernel (relu with a threshold needs x)
        return ops.activation_saves_input(_KIND[base][0], _param_list(base, params))
    return base in _SAVES_INPUT


def forward(fn, z: np.ndarray):
    """`(fn(z), saved)`, where `saved` is what `backward` needs: the input for the activations in
    `_SAVES_INPUT` (or, with parameters, those whose kernel says so), the output for the rest."""
    y = fn(z)
    return y, (z if _saves_input(fn) else y)


def backward(fn, saved: np.ndarray, grad_y: np.ndarray) -> np.ndarray:
    """Gradient through activation `fn`, given what `forward` saved."""
    base, params = _parts(fn)
    if base is linear:
        return grad_y
    try:
        bwd = _BACKWARD[base]
    except (KeyError, TypeError):
        raise TypeError(f"Activation {fn!r} has no backward in rconv (no autodiff); use one of "
                        f"{registry.names('activations')} for trainable models") from None
    return bwd(saved, grad_y, **params)

"""Keras 2's symbolic backend functions, `backend.gradients` and `backend.function`, as thin wrappers over the
`GradientTape` (the first edition of Deep Learning with Python, 5.4, visualizes filters with them)::

    loss = K.mean(layer_output[:, :, :, filter_index])
    grads = K.gradients(loss, model.input)[0]
    grads /= K.sqrt(K.mean(K.square(grads))) + 1e-5
    iterate = K.function([model.input], [loss, grads])
    loss_value, grads_value = iterate([input_img_data])

`gradients` returns `SymbolicGradient`s: placeholders that `function` evaluates with a tape, and that take part
in arithmetic (`grads / (K.sqrt(...) + 1e-5)`) as deferred expressions.
"""
from __future__ import annotations

import operator

import numpy as np

from ..keras_tensor import KerasTensor
from .tape import GradientTape


class Deferred:
    """A value computed when a `function` runs: `evaluate(env)` with `env` the run's cache."""

    def evaluate(self, env):
        raise NotImplementedError

    def _wrap(self, op, other, reflected=False):
        return _Expr(op, (other, self) if reflected else (self, other))

    def __add__(self, other):
        return self._wrap(operator.add, other)

    def __radd__(self, other):
        return self._wrap(operator.add, other, True)

    def __sub__(self, other):
        return self._wrap(operator.sub, other)

    def __rsub__(self, other):
        return self._wrap(operator.sub, other, True)

    def __mul__(self, other):
        return self._wrap(operator.mul, other)

    def __rmul__(self, other):
        return self._wrap(operator.mul, other, True)

    def __truediv__(self, other):
        return self._wrap(operator.truediv, other)

    def __rtruediv__(self, other):
        return self._wrap(operator.truediv, other, True)

    def __neg__(self):
        return _Expr(operator.neg, (self,))

    def __pow__(self, other):
        return self._wrap(operator.pow, other)


class _Expr(Deferred):
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def evaluate(self, env):
        return self.fn(*[_value(a, env) for a in self.args])


class SymbolicGradient(Deferred):
    """d(sum of `loss`)/d(`source`), both KerasTensors of one graph; evaluated by `function`."""

    def __init__(self, loss: KerasTensor, source: KerasTensor):
        self.loss, self.source = loss, source

    def evaluate(self, env):
        return env["gradient"](self.loss, self.source)


def deferred_apply(fn, *args, **kwargs):
    """`fn(*args)` now, or later if an argument is deferred (backend.mean(grads) and the like)."""
    if any(isinstance(a, Deferred) for a in args):
        return _Expr(lambda *values: fn(*values, **kwargs), args)
    return fn(*args, **kwargs)


def _value(a, env):
    if isinstance(a, Deferred):
        return a.evaluate(env)
    if isinstance(a, KerasTensor):
        return env["tensor"](a)
    return a


def gradients(loss, variables) -> list:
    """Keras 2's `K.gradients(loss, variables)`: the gradients of `loss` w.r.t. each of `variables` (tensors of
    the same functional graph), evaluated when a `function` computing them is called."""
    if not isinstance(loss, KerasTensor):
        raise TypeError(f"gradients: `loss` must be a symbolic tensor (KerasTensor), got {type(loss).__name__}")
    sources = variables if isinstance(variables, (list, tuple)) else [variables]
    for s in sources:
        if not isinstance(s, KerasTensor):
            raise TypeError("gradients: rconv differentiates w.r.t. symbolic tensors (e.g. `model.input` or a "
                            f"layer's output), got {type(s).__name__}")
    return [SymbolicGradient(loss, s) for s in sources]


class Function:
    """What `function(inputs, outputs)` returns: called with a list of arrays (one per input), it returns the
    list of output values."""

    def __init__(self, inputs, outputs, updates=None, name=None):
        if updates:
            raise NotImplementedError("backend.function: `updates` are not supported")
        self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        self.single = not isinstance(outputs, (list, tuple))
        self.outputs = [outputs] if self.single else list(outputs)
        self.name = name
        tensors = []
        for out in self.outputs:
            _collect(out, tensors)
        # Every KerasTensor the outputs need (the graph's outputs), in order; inputs are given, not computed.
        unique = {id(t): t for t in tensors if not any(t is i for i in self.inputs)}
        self._tensors = list(unique.values())
        self._model = None

    def _graph(self):
        if self._model is None:
            from ..models.functional import Functional
            self._model = Functional(self.inputs, self._tensors) if self._tensors else None
        return self._model

    def __call__(self, values):
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if len(values) != len(self.inputs):
            raise ValueError(f"backend.function expects {len(self.inputs)} input array(s), got {len(values)}")
        arrays = [np.asarray(v, np.float32) for v in values]
        model = self._graph()
        needs_grad = any(_has_gradient(o) for o in self.outputs)
        cache: dict = {}
        if model is not None:
            with GradientTape(persistent=True) as tape:
                if needs_grad:
                    tape.watch(arrays)
                outs = model(arrays if len(arrays) > 1 else arrays[0])
            outs = outs if isinstance(outs, list) else [outs]
            cache = {id(t): o for t, o in zip(self._tensors, outs)}
            if needs_grad:
                tape.watch(outs)

        def tensor(t):
            if id(t) in cache:
                return np.asarray(cache[id(t)]).view(np.ndarray)
            for i, inp in enumerate(self.inputs):
                if t is inp:
                    return arrays[i]
            raise ValueError(f"backend.function: tensor {t} is not computed by this function")

        def gradient(loss, source):
            target = cache.get(id(loss))
            if target is None:
                raise ValueError("backend.function: the gradient's loss must be among the function's computed "
                                 "tensors")
            src = arrays[self.inputs.index(source)] if any(source is i for i in self.inputs) else cache.get(id(source))
            if src is None:
                raise ValueError("backend.function: the gradient's source must be an input of the function or a "
                                 "tensor it computes")
            grad = tape.gradient(target, src)
            return np.zeros(np.shape(src), np.float32) if grad is None else grad

        env = {"tensor": tensor, "gradient": gradient}
        results = [_value(o, env) for o in self.outputs]
        results = [np.asarray(r).view(np.ndarray) if isinstance(r, np.ndarray) else r for r in results]
        return results[0] if self.single else results


def _collect(value, out: list) -> None:
    if isinstance(value, KerasTensor):
        out.append(value)
    elif isinstance(value, SymbolicGradient):
        out.extend([value.loss, value.source])
    elif isinstance(value, _Expr):
        for a in value.args:
            _collect(a, out)


def _has_gradient(value) -> bool:
    if isinstance(value, SymbolicGradient):
        return True
    return isinstance(value, _Expr) and any(_has_gradient(a) for a in value.args)


def function(inputs, outputs, updates=None, name=None, **kwargs) -> Function:
    """Keras 2's `K.function(inputs, outputs)`."""
    return Function(inputs, outputs, updates=updates, name=name)

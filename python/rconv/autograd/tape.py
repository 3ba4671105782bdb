"""`GradientTape`: gradients of anything computed eagerly from layer and model calls and NumPy operations, with
the shape of TensorFlow's API (`watch`, `gradient`, `persistent`, `stop_recording`).

While a tape records, the results of recorded operations are `Tracked` arrays (an `np.ndarray` subclass that
remembers the operation that made it); everything else stays a plain `np.ndarray`. NumPy's own operators on a
plain `np.ndarray` cannot be seen, so watch arrays made by `rconv.ops.convert_to_tensor` (a `Tracked` leaf) or
use the `rconv.ops` functions on plain ones (layer calls see plain watched arrays too). What is recorded:

* layer and model calls (`layer(x)`, `model(x, training=True)`) on a watched or tracked input, or by a layer
  with trainable weights: the call runs the layer's `forward`, and the reverse pass its own `backward` (the Rust
  kernels), which also gives the weights' gradients;
* the NumPy operators and functions on tracked arrays (`+ - * / **`, slicing, `np.mean`, `np.square`, ... and
  their `rconv.ops` names), each with its rule in `rules.py`;
* a loss object's call (`loss_fn(y, pred)`), whose kernel returns the gradient with the value.

`tape.gradient(target, sources)` walks the records backwards from `target` (a non-scalar target is summed,
as in TensorFlow); a source the target does not depend on gets None. Sources are arrays (watched inputs or any
tracked intermediate, e.g. a model's inner layer output for Grad-CAM) and `Variable`s (a layer's weights).
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..graph import context
from ..variables import Variable
from .rules import RULES

_local = threading.local()


def _tapes() -> list:
    stack = getattr(_local, "tapes", None)
    if stack is None:
        stack = _local.tapes = []
    return stack


def recording() -> bool:
    """Whether a tape records in this thread (and is not paused by `stop_recording`)."""
    return any(t._recording for t in _tapes())


class Node:
    """One recorded operation: `backward(out_grads) -> (input grads, {id(variable): grad})`."""
    __slots__ = ("inputs", "outputs", "backward", "name")

    def __init__(self, inputs, outputs, backward, name):
        self.inputs = inputs  # the operation's array inputs (objects, so identity marks the edges)
        self.outputs = outputs  # its Tracked outputs
        self.backward = backward
        self.name = name


class Tracked(np.ndarray):
    """An array produced by a recorded operation (`_node`, output `_index`)."""

    def __array_finalize__(self, obj):
        self._node = None
        self._index = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raw = [_plain(i) for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_plain(o) for o in kwargs["out"])
        result = getattr(ufunc, method)(*raw, **kwargs)
        if method != "__call__" or "out" in kwargs:
            return result
        return apply_rule(ufunc.__name__, result, list(inputs), {})

    def __array_function__(self, func, types, args, kwargs):
        result = func(*_plain_nested(args), **_plain_nested(kwargs))
        return apply_rule(func.__name__, result, list(args), dict(kwargs))

    def __getitem__(self, key):
        result = _plain(self)[key]
        return apply_rule("getitem", result, [self, key], {})

    def numpy(self) -> np.ndarray:
        return np.array(self, copy=True).view(np.ndarray)

    # ndarray methods that reduce or reshape through ufunc methods the tape cannot see: route to the ops.
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _ops().sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _ops().mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, out=None, keepdims=False, **kw):
        return _ops().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, out=None, keepdims=False, **kw):
        return _ops().min(self, axis=axis, keepdims=keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _ops().std(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _ops().var(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape, **kw):
        return _ops().reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return _ops().transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    @property
    def T(self):
        return _ops().transpose(self)

    def squeeze(self, axis=None):
        return _ops().squeeze(self, axis)

    def clip(self, min=None, max=None, out=None, **kw):
        return _ops().clip(self, min, max)


def _ops():
    from ..ops import numpy as numpy_ops
    return numpy_ops


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, Tracked) else a


def _plain_nested(value):
    if isinstance(value, (list, tuple)):
        return type(value)(_plain_nested(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain_nested(v) for k, v in value.items()}
    return _plain(value)


def _arrays_in(args) -> list:
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(_arrays_in(a))
        elif isinstance(a, np.ndarray):
            out.append(a)
    return out


def _connected(arrays) -> bool:
    """Does any of `arrays` carry a gradient path (tracked, or watched by a recording tape)?"""
    for a in arrays:
        if isinstance(a, Tracked) and a._node is not None:
            return True
        if any(t._recording and t._is_watched(a) for t in _tapes()):
            return True
    return False


def track(result, node: Node | None, index: int = 0):
    if not isinstance(result, np.ndarray) or result.dtype.kind != "f":
        return result
    out = result.view(Tracked)
    out._node, out._index = node, index
    return out


def apply_rule(name: str, result, args: list, kwargs: dict):
    """Record a NumPy operation's result (when a tape records and an argument is connected)."""
    if isinstance(result, np.generic):
        result = np.asarray(result)  # full reductions return scalars: keep a 0-d array, which can be tracked
    differentiable = isinstance(result, np.ndarray) and result.dtype.kind == "f"
    if not differentiable or not recording() or not _connected(_arrays_in(args)):
        return _plain(result)
    rule = RULES.get(name)
    if rule is None:
        raise TypeError(f"GradientTape: the operation {name!r} has no gradient rule in rconv; use the rconv.ops "
                        "functions (mean, sum, square, sqrt, abs, maximum, clip, reshape, transpose, matmul, exp, "
                        "log, ...) or wrap the computation in tape.stop_recording()")
    plain_args = _plain_nested(args)
    plain_kwargs = _plain_nested(kwargs)

    def backward(grads, want_adjoints=False):
        return rule(grads[0], _plain(result), plain_args, plain_kwargs), {}, None

    node = Node(args, None, backward, name)
    out = track(_plain(result), node)
    node.outputs = [out]
    return out


def record_call(layer, inputs, arrays, training):
    """Run `layer` through its `forward` on `arrays` (the float32 form of the caller's `inputs`) and record
    it; the recorded edges are the caller's objects, so watched arrays are recognised."""
    flat = inputs if isinstance(inputs, list) else [inputs]
    arg = [_plain(x) for x in arrays] if isinstance(arrays, list) else _plain(arrays)
    with context.scope(training=bool(training)):
        outputs, ctx = layer.forward(arg, training=bool(training))
    multi = isinstance(outputs, list)
    outs = outputs if multi else [outputs]
    node = Node(list(flat), None, None, getattr(layer, "name", type(layer).__name__))

    def backward(grads, want_adjoints=False):
        grads = [np.zeros(np.shape(o), np.float32) if g is None else np.asarray(g, np.float32)
                 for g, o in zip(grads, outs)]
        g_arg = grads if multi else grads[0]
        with context.scope(training=True, trainable_ids=_tape_sources()):
            if want_adjoints and hasattr(layer, "backward_with_adjoints"):
                grad_in, weight_grads, adjoints = layer.backward_with_adjoints(ctx, g_arg)
            else:
                grad_in, weight_grads = layer.backward(ctx, g_arg, need_input_grad=True)
                adjoints = None
        grad_in = grad_in if isinstance(inputs, list) else [grad_in]
        by_var = {id(v): g for v, g in zip(layer.weights, weight_grads or ()) if g is not None}
        return grad_in, by_var, adjoints

    node.backward = backward
    node.outputs = [track(np.asarray(o), node, i) for i, o in enumerate(outs)]
    return node.outputs if multi else node.outputs[0]


def record_value(value, grad, y_pred):
    """Record a scalar computed with its gradient w.r.t. `y_pred` (a loss kernel gives both)."""
    if not recording() or not _connected([y_pred]):
        return value

    def backward(grads, want_adjoints=False):
        return [np.asarray(grads[0]) * grad], {}, None

    node = Node([y_pred], None, backward, "loss")
    out = track(np.asarray(value, np.float32), node)
    node.outputs = [out]
    return out


def record_unary(x, y, vjp, name: str):
    """Record `y = f(x)` computed outside the tape (an activation kernel) with `vjp(grad_y) -> grad_x`."""
    if not recording() or not _connected([x]):
        return y

    def backward(grads, want_adjoints=False):
        return [vjp(np.asarray(grads[0], np.float32))], {}, None

    node = Node([x], None, backward, name)
    out = track(_plain(np.asarray(y)), node)
    node.outputs = [out]
    return out


def connected(x) -> bool:
    """Whether a recording tape would differentiate through `x`."""
    return recording() and _connected([x])


def should_record(layer, inputs) -> bool:
    """A layer call is recorded when a tape records and an input is connected or the layer has trainable
    weights (their gradients may be asked for)."""
    if not recording():
        return False
    flat = inputs if isinstance(inputs, list) else [inputs]
    return _connected(flat) or bool(getattr(layer, "trainable_weights", None))


_sources_local = threading.local()


def _tape_sources():
    return getattr(_sources_local, "ids", None)


class GradientTape:
    """Records operations for automatic differentiation (TensorFlow's `tf.GradientTape`).

    ``persistent=True`` allows several `gradient` calls; ``watch_accessed_variables`` is accepted for
    compatibility (the weights of recorded layers are always available as sources)."""

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self._persistent = bool(persistent)
        self._watched: dict = {}  # id -> the watched object (kept alive so ids stay unique)
        self._nodes: list = []
        self._recording = False
        self._used = False

    # --- recording -------------------------------------------------------------------------------------
    def __enter__(self):
        _tapes().append(self)
        self._recording = True
        return self

    def __exit__(self, *exc):
        self._recording = False
        stack = _tapes()
        if self in stack:
            stack.remove(self)
        return False

    def watch(self, tensor) -> None:
        """Ask for gradients w.r.t. `tensor` (an array or a list of arrays/Variables)."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            if isinstance(t, Variable):
                continue  # always available
            if not isinstance(t, np.ndarray):
                raise TypeError(f"GradientTape.watch: expected a NumPy array or Variable, got {type(t).__name__}")
            self._watched[id(t)] = t

    def _is_watched(self, a) -> bool:
        return id(a) in self._watched and self._watched[id(a)] is a

    @contextlib.contextmanager
    def stop_recording(self):
        """Operations in this block are not recorded."""
        if not self._recording:
            raise ValueError("GradientTape.stop_recording() is only valid while the tape is recording")
        self._recording = False
        try:
            yield
        finally:
            self._recording = True

    def reset(self) -> None:
        self._watched.clear()

    def watched_variables(self) -> tuple:
        return ()

    # --- differentiation -----------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(sum of target)/d(source) for each source (a single source, a list or a tuple); None where the
        target does not depend on a source (or zeros with ``unconnected_gradients="zero"``)."""
        if self._recording:
            pass  # TensorFlow allows it (with a warning about efficiency)
        if self._used and not self._persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one set of gradients "
                               "(or jacobians)")
        self._used = True
        single = not isinstance(sources, (list, tuple))
        src_list = [sources] if single else list(sources)
        targets = target if isinstance(target, (list, tuple)) else [target]
        seeds = output_gradients if isinstance(output_gradients, (list, tuple)) else [output_gradients] * len(targets)
        grads = _backprop(targets, seeds, src_list)
        out = []
        for s, g in zip(src_list, grads):
            dtype = s.dtype if isinstance(s, np.ndarray) and s.dtype.kind == "f" else np.float32
            if g is None and unconnected_gradients == "zero":
                g = np.zeros(np.shape(s), dtype)
            out.append(None if g is None else np.array(g, dtype))
        if not self._persistent:
            self._watched.clear()
        return out[0] if single else type(sources)(out) if isinstance(sources, tuple) else out


def _topo(targets) -> list:
    """Nodes reachable from the targets, in reverse topological order (outputs first)."""
    order, seen = [], set()
    stack = [(t._node, False) for t in targets if isinstance(t, Tracked) and t._node is not None]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for a in _arrays_in(node.inputs):
            if isinstance(a, Tracked) and a._node is not None and id(a._node) not in seen:
                stack.append((a._node, False))
    return order[::-1]


def _backprop(targets, seeds, sources) -> list:
    adj: dict = {}  # id(array) -> accumulated gradient
    keep: dict = {}  # id(array) -> array (ids stay valid)

    def add(a, g):
        if g is None or not isinstance(a, np.ndarray):
            return
        g = np.asarray(g)
        if g.shape != np.shape(a):
            g = np.broadcast_to(g, np.shape(a)).copy()
        prev = adj.get(id(a))
        adj[id(a)] = g if prev is None else prev + g
        keep[id(a)] = a

    for t, seed in zip(targets, seeds):
        add(t, np.ones(np.shape(t), np.float32) if seed is None else seed)
    source_ids = {id(s) for s in sources}
    var_ids = frozenset(id(s) for s in sources if isinstance(s, Variable))
    var_grads: dict = {}
    adjoints: dict = {}
    _sources_local.ids = var_ids
    try:
        for node in _topo(targets):
            out_grads = [adj.get(id(o)) for o in node.outputs]
            if all(g is None for g in out_grads):
                continue
            wants = any(id(o) in source_ids for o in node.outputs)
            in_grads, by_var, extra = node.backward(out_grads, want_adjoints=wants)
            if extra is not None:  # a model's inner adjoints of its outputs (e.g. Grad-CAM's conv output)
                for o, g in zip(node.outputs, extra):
                    if g is not None:
                        adjoints[id(o)] = g
            for k, g in by_var.items():
                if k in var_ids:
                    var_grads[k] = g if k not in var_grads else var_grads[k] + g
            for a, g in zip(node.inputs, in_grads):
                if isinstance(a, (list, tuple)):
                    for part, gp in zip(a, g or ()):
                        add(part, gp)
                else:
                    add(a, g)
    finally:
        _sources_local.ids = None
    result = []
    for s in sources:
        if isinstance(s, Variable):
            result.append(var_grads.get(id(s)))
        elif id(s) in adjoints:
            result.append(adjoints[id(s)])
        else:
            result.append(adj.get(id(s)))
    return result

"""Operations on `KerasTensor`s recorded as graph nodes: indexing/slicing (`x[:, 1:3]`), the arithmetic
operators (`x + y`, `2 * x`, `x / 255.0`) and the one-tensor `keras.ops` functions (`ops.mean(x, axis=1)`,
`ops.square`, `ops.reshape`, ...), as Keras 3 records `keras.ops` calls in a functional model.

Each is an ordinary layer of the protocol (forward, backward with the input gradient), so the one executor
runs and differentiates them; `binary_op` is what `KerasTensor.__add__` and friends call. Like Keras's
operations they are not listed in `Model.layers` and hold no weights; in a saved config they take Keras 3's
form (module ``keras.src.ops.numpy``, class ``GetItem`` / ``Add`` / ``Subtract`` / ``Multiply`` /
``TrueDivide``, the key or constant among the node's args), so such models move both ways with Keras.
"""
from __future__ import annotations

import numpy as np

from .. import backend, registry
from ..keras_tensor import KerasTensor
from .layer import Layer

KERAS_OPS_MODULE = "keras.src.ops.numpy"
_OP_CLASS = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "divide": "TrueDivide"}
_BINARY = {
    "add": (np.add, lambda a, b, g: (g, g)),
    "subtract": (np.subtract, lambda a, b, g: (g, -g)),
    "multiply": (np.multiply, lambda a, b, g: (g * b, g * a)),
    "divide": (np.divide, lambda a, b, g: (g / b, -g * a / (b * b))),
}


def _unbroadcast(grad, shape):
    """Sum a broadcast gradient back to `shape`."""
    grad = np.asarray(grad, np.float32)
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return np.ascontiguousarray(grad, np.float32)


def _serialize_key(key):
    if isinstance(key, tuple):
        return {"class_name": "__tuple__", "config": {"value": [_serialize_key(k) for k in key]}}
    if isinstance(key, slice):
        return {"class_name": "__slice__", "config": {"start": key.start, "stop": key.stop, "step": key.step}}
    if key is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if key is None:
        return None
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    raise ValueError(f"GetItem: only ints, slices, None, Ellipsis and tuples of them are supported as keys; "
                     f"got {key!r}")


def _deserialize_key(value):
    if isinstance(value, dict):
        kind, config = value.get("class_name"), value.get("config") or {}
        if kind == "__tuple__":
            return tuple(_deserialize_key(v) for v in config.get("value", []))
        if kind == "__slice__":
            return slice(config.get("start"), config.get("stop"), config.get("step"))
        if kind == "__ellipsis__":
            return Ellipsis
        raise ValueError(f"GetItem: unknown key entry {value!r:.200}")
    if isinstance(value, list):
        return tuple(_deserialize_key(v) for v in value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"GetItem: invalid key {value!r:.200}")


class TensorOp(Layer):
    """Base of the operations recorded on KerasTensors."""

    is_tensor_op = True  # not a "layer" for Model.layers, weights files and summaries (as in Keras)

    def keras_entry(self) -> dict:
        cls = self.keras_class_name()
        return {"module": KERAS_OPS_MODULE, "class_name": cls, "config": {"name": self.name}, "registered_name": cls}

    def keras_class_name(self) -> str:
        raise NotImplementedError

    def node_args(self, tensor_configs: list) -> list:
        """The node's `args` in a saved config: tensors (already serialized) and the op's constants."""
        raise NotImplementedError


class GetItem(TensorOp):
    """`x[key]` for basic keys (ints, slices, None, Ellipsis); the gradient is scattered back."""

    def __init__(self, key, **kwargs):
        super().__init__(**kwargs)
        self.key = _deserialize_key(key) if isinstance(key, (dict, list)) else key
        _serialize_key(self.key)  # refuse unsupported keys now

    def forward(self, inputs, training=False):
        return np.ascontiguousarray(inputs[self.key]), inputs.shape

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        grad = np.zeros(ctx, np.float32)
        grad[self.key] = grad_outputs
        return grad, []

    def compute_output_shape(self, input_shape):
        key = self.key if isinstance(self.key, tuple) else (self.key,)
        if key and isinstance(key[0], (int, np.integer)) and not isinstance(key[0], bool):
            sample = np.zeros(tuple(1 if d is None else d for d in input_shape), np.float32)
            return tuple(np.shape(sample[self.key]))  # one sample: no batch dimension left
        out = Layer.compute_output_shape(self, input_shape)
        batch_sliced = key and isinstance(key[0], slice) and key[0] != slice(None)
        if input_shape[0] is None and batch_sliced:
            raise ValueError(f"GetItem '{self.name}': slicing the batch dimension of a symbolic tensor is not "
                             "supported (an int picks one sample, as in Keras 2's `layer.output[0]`)")
        return out

    def get_config(self):
        return {**super().get_config(), "key": _serialize_key(self.key)}

    def keras_class_name(self) -> str:
        return "GetItem"

    def node_args(self, tensor_configs):
        key = _serialize_key(self.key)
        return [tensor_configs[0], key["config"]["value"] if isinstance(key, dict) and key["class_name"] == "__tuple__"
                else key]

    @classmethod
    def from_node(cls, name, args):
        tensor, key = args
        return cls(key, name=name)(tensor)


class BinaryOp(TensorOp):
    """`a <op> b` for two tensors (a list input, NumPy broadcasting) or a tensor and a constant."""

    def __init__(self, op, constant=None, constant_first=False, **kwargs):
        if op not in _BINARY:
            raise ValueError(f"BinaryOp: unknown op {op!r}; known: {sorted(_BINARY)}")
        if kwargs.get("name") is None:  # Keras's names: add, subtract, multiply, true_divide
            kwargs["name"] = backend.unique_name(backend.to_snake_case(_OP_CLASS[op]))
        super().__init__(**kwargs)
        self.op = op
        self.constant = None if constant is None else np.asarray(constant, np.float32)
        self.constant_first = bool(constant_first)

    def _operands(self, inputs):
        if self.constant is None:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ValueError(f"BinaryOp '{self.name}' ({self.op}) takes two tensors")
            return inputs[0], inputs[1]
        return (self.constant, inputs) if self.constant_first else (inputs, self.constant)

    def forward(self, inputs, training=False):
        a, b = self._operands(inputs)
        return np.asarray(_BINARY[self.op][0](a, b), np.float32), (a, b)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        a, b = ctx
        ga, gb = _BINARY[self.op][1](a, b, grad_outputs)
        if self.constant is None:
            return [_unbroadcast(ga, np.shape(a)), _unbroadcast(gb, np.shape(b))], []
        return (_unbroadcast(gb, np.shape(b)) if self.constant_first else _unbroadcast(ga, np.shape(a))), []

    def get_config(self):
        constant = None if self.constant is None else self.constant.tolist()
        return {**super().get_config(), "op": self.op, "constant": constant, "constant_first": self.constant_first}

    def keras_class_name(self) -> str:
        return _OP_CLASS[self.op]

    def node_args(self, tensor_configs):
        if self.constant is None:
            return list(tensor_configs)
        constant = self.constant.tolist()
        return [constant, tensor_configs[0]] if self.constant_first else [tensor_configs[0], constant]

    @classmethod
    def from_node(cls, name, args, op):
        if len(args) != 2:
            raise ValueError(f"Operation '{name}' ({_OP_CLASS[op]}) takes two arguments, got {len(args)}")
        a, b = args
        if isinstance(a, KerasTensor) and isinstance(b, KerasTensor):
            return cls(op, name=name)([a, b])
        if isinstance(a, KerasTensor):
            return cls(op, constant=b, name=name)(a)
        if isinstance(b, KerasTensor):
            return cls(op, constant=a, constant_first=True, name=name)(b)
        raise ValueError(f"Operation '{name}' ({_OP_CLASS[op]}) has no tensor argument")


# Keras operation class -> (gradient rule / NumPy function name, its parameters in Keras's config, in the
# order the NumPy function takes them after the tensor; "kw:" marks keyword parameters).
_NUMPY_OPS = {
    "Mean": ("mean", ("kw:axis", "kw:keepdims")), "Sum": ("sum", ("kw:axis", "kw:keepdims")),
    "Max": ("max", ("kw:axis", "kw:keepdims", "kw:initial")), "Min": ("min", ("kw:axis", "kw:keepdims", "kw:initial")),
    "Square": ("square", ()), "Sqrt": ("sqrt", ()), "Absolute": ("absolute", ()), "Exp": ("exp", ()),
    "Log": ("log", ()), "Tanh": ("tanh", ()), "Negative": ("negative", ()),
    "ExpandDims": ("expand_dims", ("axis",)), "Squeeze": ("squeeze", ("axis",)),
    "Reshape": ("reshape", ("newshape",)), "Transpose": ("transpose", ("axes",)),
    "Clip": ("clip", ("x_min", "x_max")),
}
_DEFAULTS = {"axis": None, "keepdims": False, "axes": None, "initial": None}


def _tuple_if_list(value):
    return tuple(value) if isinstance(value, list) else value


class NumpyOp(TensorOp):
    """A one-tensor `keras.ops` function on a KerasTensor (`ops.mean(x, axis=1)`, `ops.square(x)`, ...): NumPy
    forward, the tape's gradient rule (`rconv.autograd.rules`) backward, saved as Keras saves the operation."""

    def __init__(self, op, params=None, **kwargs):
        if op not in _NUMPY_OPS:
            raise ValueError(f"NumpyOp: unknown operation {op!r}; known: {sorted(_NUMPY_OPS)}")
        fn_name, names = _NUMPY_OPS[op]
        if kwargs.get("name") is None:
            kwargs["name"] = backend.unique_name(fn_name if op != "Absolute" else "absolute")
        super().__init__(**kwargs)
        self.op = op
        params = dict(params or {})
        self.params = {n.removeprefix("kw:"): params.get(n.removeprefix("kw:"), _DEFAULTS.get(n.removeprefix("kw:")))
                       for n in names}

    def _call(self, x):
        args, kwargs = [x], {}
        for n in _NUMPY_OPS[self.op][1]:
            key = n.removeprefix("kw:")
            value = _tuple_if_list(self.params[key])
            if key == "initial" and value is None:
                continue  # NumPy's max/min take no initial=None
            if n.startswith("kw:"):
                kwargs[key] = value
            else:
                args.append(value)
        return args, kwargs

    def forward(self, inputs, training=False):
        args, kwargs = self._call(inputs)
        return np.ascontiguousarray(getattr(np, _NUMPY_OPS[self.op][0])(*args, **kwargs), np.float32), inputs

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        if not need_input_grad:
            return None, []
        from ..autograd.rules import RULES
        args, kwargs = self._call(ctx)
        out = getattr(np, _NUMPY_OPS[self.op][0])(*args, **kwargs)
        return np.ascontiguousarray(RULES[_NUMPY_OPS[self.op][0]](grad_outputs, out, args, kwargs)[0], np.float32), []

    def compute_output_shape(self, input_shape):
        if self.op == "Reshape":
            return _reshaped(input_shape, self.params["newshape"], self.name)
        return Layer.compute_output_shape(self, input_shape)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "params": dict(self.params)}

    def keras_entry(self) -> dict:
        entry = super().keras_entry()
        entry["config"] = {"name": self.name, **self.params}
        return entry

    def keras_class_name(self) -> str:
        return self.op

    def node_args(self, tensor_configs):
        return [tensor_configs[0]]

    @classmethod
    def from_node(cls, name, args, op, config=None):
        if len(args) != 1 or not isinstance(args[0], KerasTensor):
            raise ValueError(f"Operation '{name}' ({op}) takes one tensor argument")
        params = {k: v for k, v in (config or {}).items() if k != "name"}
        return cls(op, params, name=name)(args[0])


def _reshaped(input_shape, newshape, name):
    """Keras's reshape: `newshape` covers every axis (batch included); one -1 takes the rest."""
    newshape = tuple(newshape)
    known = [d for d in input_shape[1:]]
    if None in known:
        raise ValueError(f"Reshape '{name}': the input's non-batch dimensions must be known, got {input_shape}")
    size = int(np.prod(known))
    if newshape.count(-1) > 1:
        raise ValueError(f"Reshape '{name}': at most one -1 in newshape {newshape}")
    rest = int(np.prod([d for d in newshape[1:] if d != -1])) if len(newshape) > 1 else 1
    if newshape and newshape[0] == -1:
        return (input_shape[0],) + newshape[1:]
    if -1 in newshape[1:]:
        if rest == 0 or size % rest:
            raise ValueError(f"Reshape '{name}': cannot reshape {input_shape} to {newshape}")
        return tuple(d if d != -1 else size // rest for d in newshape)
    return newshape


def numpy_op(op: str, x, **params):
    """Record `keras.ops.<op>` on a KerasTensor."""
    return NumpyOp(op, params)(x)


# Saved Keras operation class name -> factory(name, node args, config) -> output tensor.
registry.register("ops", "GetItem")(lambda name, args, config=None: GetItem.from_node(name, args))
for _op, _cls in _OP_CLASS.items():
    registry.register("ops", _cls)(lambda name, args, config=None, _op=_op: BinaryOp.from_node(name, args, _op))
for _cls in _NUMPY_OPS:
    registry.register("ops", _cls)(lambda name, args, config=None, _cls=_cls: NumpyOp.from_node(name, args, _cls,
                                                                                               config))


class OpNode:
    """What a saved operation entry deserializes to: called on its node's args (tensors and constants), it
    makes the operation layer and returns its output tensor."""

    def __init__(self, class_name: str, name: str, config=None):
        self.class_name, self.name, self.config = class_name, name, dict(config or {})
        self.output = None

    def __call__(self, args):
        return registry.get("ops", self.class_name)(self.name, args if isinstance(args, list) else [args],
                                                    self.config)


def op_from_entry(entry: dict, where: str = "") -> OpNode:
    class_name = entry.get("class_name")
    if registry.find("ops", class_name) is None:
        raise ValueError(f"{where}Unsupported operation {class_name!r} from {KERAS_OPS_MODULE}; rconv can load: "
                         f"{registry.names('ops')}")
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"{where}Operation {class_name!r}: config must be a dict")
    name = config.get("name") or entry.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{where}Operation {class_name!r} has no name")
    return OpNode(class_name, name, config)


def binary_op(op: str, a, b):
    """Record `a <op> b` where at least one side is a KerasTensor."""
    a_sym, b_sym = isinstance(a, KerasTensor), isinstance(b, KerasTensor)
    if a_sym and b_sym:
        return BinaryOp(op)([a, b])
    if a_sym:
        return BinaryOp(op, constant=b)(a)
    return BinaryOp(op, constant=a, constant_first=True)(b)


__all__ = ["TensorOp", "GetItem", "BinaryOp", "NumpyOp", "binary_op", "numpy_op", "OpNode", "op_from_entry",
           "KERAS_OPS_MODULE"]

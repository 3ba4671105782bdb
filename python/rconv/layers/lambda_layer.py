"""`Lambda`: wraps a Python function as a layer, like Keras 3's `keras/src/layers/core/lambda_layer.py`.

rconv has no autodiff, so a Lambda runs forward only: it may sit where no trainable weight lies upstream (input
scaling, reshaping before the first trainable layer), and training through one raises a clear error.

Saving writes Keras's format: a Python lambda as marshalled bytecode (`{"class_name": "__lambda__", ...}`),
a registered rconv activation by name. Loading a `__lambda__` runs that bytecode, so it is refused unless the
loader was called with `safe_mode=False` (`rconv.saving.load_model(..., safe_mode=False)`), as in Keras.
"""
from __future__ import annotations

import codecs
import contextlib
import contextvars
import inspect
import marshal
import types

from .. import activations, registry
from .layer import Layer

__all__ = ["Lambda"]

_SAFE_MODE = contextvars.ContextVar("rconv_safe_mode", default=True)


@contextlib.contextmanager
def safe_mode_scope(safe_mode: bool = True):
    """Within this block, `Lambda.from_config` may (safe_mode=False) or may not load Python bytecode."""
    token = _SAFE_MODE.set(bool(safe_mode))
    try:
        yield
    finally:
        _SAFE_MODE.reset(token)


def _refuse_code(safe_mode: bool) -> None:
    if safe_mode:
        raise ValueError(
            "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. This carries "
            "a potential risk of arbitrary code execution and thus it is disallowed by default. If you trust the "
            "source of the artifact, you can override this error by passing `safe_mode=False` to the loading "
            "function.")


def _func_dump(fn) -> dict:
    code = codecs.encode(marshal.dumps(fn.__code__), "base64").decode("ascii")
    closure = tuple(c.cell_contents for c in fn.__closure__) if fn.__closure__ else None
    return {"class_name": "__lambda__", "config": {"code": code, "defaults": fn.__defaults__, "closure": closure}}


def _func_load(config: dict):
    try:
        code = marshal.loads(codecs.decode(str(config["code"]).encode("ascii"), "base64"))
    except (KeyError, ValueError, EOFError, TypeError) as exc:
        raise ValueError(f"Lambda: the saved function's bytecode cannot be read ({exc})") from None
    if not isinstance(code, types.CodeType):
        raise ValueError("Lambda: the saved function is not Python bytecode")
    defaults = config.get("defaults")
    closure = config.get("closure")

    def cell(value):
        return (lambda: value).__closure__[0]

    cells = tuple(cell(v) for v in closure) if closure is not None else None
    return types.FunctionType(code, {"__builtins__": __builtins__}, code.co_name,
                              tuple(defaults) if isinstance(defaults, list) else defaults, cells)


def _serialize_fn(fn, layer: str):
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        return _func_dump(fn)
    name = activations.name_of(fn)
    if name is not None:
        return {"module": "keras.activations", "class_name": "function", "config": name, "registered_name": "function"}
    raise ValueError(f"Lambda '{layer}': cannot serialize the function {fn!r}; rconv saves Python lambdas and "
                     "registered activations only")


def _deserialize_fn(entry, safe_mode: bool):
    if isinstance(entry, dict) and entry.get("class_name") == "__lambda__":
        _refuse_code(safe_mode)
        return _func_load(entry.get("config") or {})
    if isinstance(entry, (list, tuple)) and len(entry) == 3:  # Keras 2 (.h5): [code, defaults, closure]
        _refuse_code(safe_mode)
        return _func_load(dict(zip(("code", "defaults", "closure"), entry)))
    if isinstance(entry, dict) and entry.get("class_name") == "function":
        return activations.get(entry.get("config"))
    if isinstance(entry, str):
        return activations.get(entry)
    raise ValueError(f"Lambda: cannot load the function {entry!r:.200}; rconv loads Python lambdas (with "
                     "safe_mode=False) and registered activations only")


@registry.register("layers", "Lambda")
class Lambda(Layer):
    differentiable = False  # no autodiff: see the module docstring

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda '{self.name}': `function` must be callable, got {function!r:.100}")
        if mask is not None:
            raise NotImplementedError(f"Lambda '{self.name}': masks are not supported")
        self.function = function
        self.arguments = dict(arguments or {})
        self.mask = None
        self._lambda_output_shape = output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_expects_training_arg = "training" in params

    def compute_output_shape(self, input_shape):
        shape = self._lambda_output_shape
        if shape is None:
            return super().compute_output_shape(input_shape)  # traced on zeros
        if callable(shape):
            return tuple(shape(input_shape))
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (first[0],) + tuple(shape)

    def forward(self, inputs, training=False):
        kwargs = dict(self.arguments)
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return self.function(inputs, **kwargs), None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        raise TypeError(f"Lambda '{self.name}' has no backward pass (rconv has no autodiff): no trainable weight "
                        "may lie upstream of it")

    def get_config(self):
        config = {"function": _serialize_fn(self.function, self.name)}
        shape = self._lambda_output_shape
        if shape is not None:
            config["output_shape"] = _serialize_fn(shape, self.name) if callable(shape) else list(shape)
        config["arguments"] = dict(self.arguments)
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("function_type", None)  # Keras 2
        config.pop("output_shape_type", None)
        config.pop("module", None)
        config.pop("output_shape_module", None)
        safe_mode = _SAFE_MODE.get()
        config["function"] = _deserialize_fn(config.get("function"), safe_mode)
        shape = config.get("output_shape")
        if isinstance(shape, dict):
            config["output_shape"] = _deserialize_fn(shape, safe_mode)
        elif isinstance(shape, list):
            config["output_shape"] = tuple(shape)
        return cls(**config)

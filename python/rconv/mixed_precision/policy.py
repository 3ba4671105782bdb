"""`DTypePolicy` and the global policy, as in Keras 3 (`keras.dtype_policies`, `keras.config.dtype_policy`).

A policy names a layer's compute dtype and variable dtype: ``"float32"`` (both float32), ``"mixed_bfloat16"``
(bfloat16 compute, float32 variables), ``"mixed_float16"``, or any float dtype name (both that dtype).
Any such policy can be built and serialized; rconv layers run the ones whose variables are float32 and
whose compute dtype is float32 or bfloat16 (`check_supported`).
"""
from __future__ import annotations

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_ALIASES = {"float": "float32", "half": "float16", "double": "float64"}


class DTypePolicy:
    """A dtype policy for a layer: `DTypePolicy("mixed_bfloat16")` computes in bfloat16 and keeps its
    variables in float32. `DTypePolicy()` is a copy of the global policy."""

    def __init__(self, name=None):
        if name is None:
            name = dtype_policy().name
        self._name = name
        self._compute_dtype, self._variable_dtype = self._parse_name(name)
        self._quantization_mode = None

    @staticmethod
    def _parse_name(name):
        if not isinstance(name, str):
            raise TypeError(f"'name' must be a string, such as 'mixed_float16'. Received: name={name} "
                            f"(of type {type(name)})")
        if name == "mixed_float16":
            return "float16", "float32"
        if name == "mixed_bfloat16":
            return "bfloat16", "float32"
        dtype = _standardize(name)
        if dtype is None:
            raise ValueError(f"Cannot convert '{name}' to a mixed precision DTypePolicy. Valid policies include "
                             "'mixed_float16', 'mixed_bfloat16', and the name of any float dtype such as 'float32'.")
        return dtype, dtype

    @property
    def name(self) -> str:
        return self._name

    @property
    def compute_dtype(self) -> str:
        """The dtype of the layer's computations (rconv: the GEMM operands' precision; results stay float32)."""
        return self._compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's variables."""
        return self._variable_dtype

    @property
    def quantization_mode(self):
        return self._quantization_mode

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self._name}">'

    def __eq__(self, other) -> bool:
        return type(other) in (DTypePolicy, FloatDTypePolicy) and self._name == other._name

    def __hash__(self) -> int:
        return hash(self._name)


class FloatDTypePolicy(DTypePolicy):
    """Keras's alias of `DTypePolicy`."""


Policy = DTypePolicy  # keras.mixed_precision.Policy (legacy name)


def _standardize(name: str):
    name = _ALIASES.get(name, name)
    return name if name in _FLOAT_DTYPES else None


def serialize(policy: DTypePolicy) -> dict:
    """The Keras 3 config of a policy, as layers write it under "dtype"."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config: dict) -> DTypePolicy:
    class_name = config.get("class_name", "DTypePolicy")
    if class_name not in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
        raise ValueError(f"Unsupported dtype policy {class_name!r} (rconv has no quantized policies)")
    return DTypePolicy.from_config(dict(config.get("config") or {}))


def get(identifier) -> DTypePolicy:
    """A policy from None (the global one), a name, a serialized policy dict or a policy (like
    `keras.dtype_policies.get`)."""
    if identifier is None:
        return dtype_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        return DTypePolicy(identifier)
    name = getattr(identifier, "name", None)  # a NumPy dtype
    if isinstance(name, str) and _standardize(name) is not None:
        return DTypePolicy(_standardize(name))
    raise ValueError(f"Cannot interpret `dtype` argument. Expected a string or an instance of DTypePolicy. "
                     f"Received: dtype={identifier}")


_global: DTypePolicy | None = None


def set_dtype_policy(policy) -> None:
    """Sets the policy of the layers created from now on (`keras.config.set_dtype_policy`)."""
    global _global
    if not isinstance(policy, DTypePolicy):
        if not isinstance(policy, str):
            raise ValueError("Invalid `policy` argument. Expected the string name of a policy (such as "
                             f"'mixed_float16') or a `DTypePolicy` instance. Received: policy={policy} "
                             f"(of type {type(policy)})")
        policy = DTypePolicy(policy)
    _global = policy


def dtype_policy() -> DTypePolicy:
    """The policy new layers get when they are given no dtype (`keras.config.dtype_policy`)."""
    global _global
    if _global is None:
        from .. import backend
        _global = DTypePolicy(backend.floatx())
    return _global


set_global_policy = set_dtype_policy  # keras.mixed_precision's names
global_policy = dtype_policy


def check_supported(policy: DTypePolicy, layer_name: str) -> DTypePolicy:
    """`policy` if rconv layers can run it: float32 variables, float32 or bfloat16 compute."""
    if policy.variable_dtype != "float32" or policy.compute_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"Layer '{layer_name}': rconv keeps variables in float32 and computes in float32 or "
                         f"bfloat16; dtype policy {policy.name!r} (compute {policy.compute_dtype}, variables "
                         f"{policy.variable_dtype}) is not supported. Use 'float32' or 'mixed_bfloat16'.")
    return policy

"""One name -> object table per kind of Keras object ("layers", "losses", "optimizers", ...).

Each kind's module registers its own classes (or functions) where they are defined::

    @register("layers", "Conv2D", "Convolution2D")   # first name is canonical, the rest are aliases
    class Conv2D(Layer): ...

`get(kind, name)` resolves a name (or alias) and raises a ValueError listing the known names;
`name_of(kind, obj)` gives the canonical name, the one Keras writes when serializing. Only what is
registered can be looked up, so configs naming anything else (abstract bases, custom or arbitrary
classes) are refused without importing or evaluating anything. This module imports nothing from
rconv, so every other module can import it.
"""
from __future__ import annotations

from types import MappingProxyType

# kind -> the noun used in error messages.
KINDS = {
    "layers": "layer", "losses": "loss", "optimizers": "optimizer", "metrics": "metric",
    "activations": "activation function", "initializers": "initializer", "models": "model",
    "callbacks": "callback", "ops": "tensor operation", "regularizers": "regularizer",
    "constraints": "constraint", "schedules": "learning rate schedule",
}
# Kinds whose names match case-insensitively (rconv accepts 'adam', 'Adam' and 'ADAM').
CASE_INSENSITIVE = frozenset({"optimizers"})

_MISSING = object()


class Registry:
    """Name tables for the kinds in `KINDS`. The module-level functions use one shared instance;
    tests may build their own."""

    def __init__(self, kinds=None, case_insensitive=CASE_INSENSITIVE):
        self._nouns = dict(KINDS if kinds is None else kinds)
        self._folded = frozenset(case_insensitive)
        self._by_key = {kind: {} for kind in self._nouns}     # lookup key -> object
        self._spelling = {kind: {} for kind in self._nouns}   # lookup key -> name as registered
        self._canonical = {kind: {} for kind in self._nouns}  # id(object) -> (object, canonical name)

    def _kind(self, kind: str) -> str:
        if kind not in self._nouns:
            raise ValueError(f"Unknown registry kind {kind!r}; kinds: {sorted(self._nouns)}")
        return kind

    def _key(self, kind: str, name: str) -> str:
        return name.lower() if kind in self._folded else name

    def register(self, kind: str, *names: str):
        """Decorator registering an object under `names` (default: its `__name__`); the first name is
        canonical. Re-registering a name for the same object is a no-op; for another object, a
        ValueError. Also usable as a function: `register("losses", "mse")(MeanSquaredError)`."""
        self._kind(kind)
        for name in names:
            if not isinstance(name, str) or not name:
                raise TypeError(f"register({kind!r}, ...): names must be non-empty strings, got {name!r}")

        def decorator(obj):
            own = names or (getattr(obj, "__name__", None),)
            if not isinstance(own[0], str):
                raise TypeError(f"register({kind!r}): {obj!r} has no __name__; pass its name explicitly")
            table = self._by_key[kind]
            for name in own:  # check everything before changing anything
                known = table.get(self._key(kind, name), obj)
                if known is not obj:
                    raise ValueError(f"Cannot register {obj!r} as {self._nouns[kind]} {name!r}: that "
                                     f"name already belongs to {known!r}")
            for name in own:
                key = self._key(kind, name)
                table[key] = obj
                self._spelling[kind].setdefault(key, name)
            self._canonical[kind].setdefault(id(obj), (obj, own[0]))
            return obj

        return decorator

    def find(self, kind: str, name, default=None):
        """The object registered as `name`, or `default`."""
        if not isinstance(name, str):
            return default
        return self._by_key[self._kind(kind)].get(self._key(kind, name), default)

    def get(self, kind: str, name):
        """The object registered as `name`; a ValueError listing the known names otherwise."""
        obj = self.find(kind, name, _MISSING)
        if obj is _MISSING:
            known = sorted(self._by_key[kind]) if kind in self._folded else self.names(kind)
            raise ValueError(f"Unknown {self._nouns[kind]}: {name!r}. Known: {known}")
        return obj

    def names(self, kind: str) -> list:
        """Every registered name and alias of `kind`, sorted."""
        return sorted(self._spelling[self._kind(kind)].values())

    def items(self, kind: str) -> list:
        """(canonical name, object) pairs of `kind`, one per object, sorted by name."""
        return sorted(((name, obj) for obj, name in self._canonical[self._kind(kind)].values()),
                      key=lambda pair: pair[0])

    def mapping(self, kind: str):
        """A live read-only {lookup key: object} view of `kind` (keys lower-cased for
        case-insensitive kinds)."""
        return MappingProxyType(self._by_key[self._kind(kind)])

    def name_of(self, kind: str, obj, default=_MISSING):
        """The canonical name `obj` was registered under; `default` (or a ValueError) if it wasn't."""
        entry = self._canonical[self._kind(kind)].get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        if default is not _MISSING:
            return default
        raise ValueError(f"{obj!r} is not a registered {self._nouns[kind]}; known: {self.names(kind)}")


_REGISTRY = Registry()
register = _REGISTRY.register
find = _REGISTRY.find
get = _REGISTRY.get
names = _REGISTRY.names
items = _REGISTRY.items
mapping = _REGISTRY.mapping
name_of = _REGISTRY.name_of



class ConfigObjects:
    """`serialize` / `deserialize` / `get` of one kind of Keras config object (initializers, regularizers,
    constraints): Keras 3's `{"module", "class_name", "config", "registered_name"}` form, and `get` from None
    (when `allow_none`), an instance of `base`, a registered name, a config dict or a registered class."""

    def __init__(self, kind: str, module: str, base: type, noun: str, allow_none: bool = False,
                 allow_callable: bool = False):
        self.kind, self.module, self.base, self.noun = kind, module, base, noun
        self.allow_none, self.allow_callable = allow_none, allow_callable

    def serialize(self, obj):
        if obj is None and self.allow_none:
            return None
        class_name = name_of(self.kind, type(obj), type(obj).__name__)
        return {"module": self.module, "class_name": class_name, "config": obj.get_config(), "registered_name": None}

    def deserialize(self, config: dict):
        return get(self.kind, config.get("class_name")).from_config(config.get("config", {}))

    def get(self, identifier):
        if (identifier is None and self.allow_none) or isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if isinstance(identifier, str):
            return get(self.kind, identifier)()
        if isinstance(identifier, type) and issubclass(identifier, self.base):
            return identifier()
        if self.allow_callable and callable(identifier):
            return identifier
        raise TypeError(f"Could not interpret {self.noun} identifier: {identifier!r}")


__all__ = ["KINDS", "CASE_INSENSITIVE", "Registry", "register", "find", "get", "names", "items", "mapping",
           "name_of", "ConfigObjects"]

"""Weights and optimizer state in the two HDF5 layouts Keras uses.

* Keras 3 (`model.weights.h5` inside `.keras`, and `.weights.h5`): `layers/<snake_class>[_n]/vars/<i>`
  (layers addressed by class name and position, not by layer name), `optimizer/vars/<i>` with
  `[iteration, learning_rate, slot vars interleaved per trainable variable]`, and a root `vars` group.
* Legacy (`.h5`, Keras 2 / tf.keras and Keras 3's legacy writer): per-layer groups listed in the
  `layer_names` attribute, each with a `weight_names` attribute naming its datasets, matched to the
  model's layers that have weights, in order; optimizer state in `optimizer_weights`.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np

from .. import backend
from . import hdf5
from .hdf5 import WeightsError
from .model_config import model_class_name


class Pending:
    """Validated values waiting to be assigned: loads check everything first, then `commit` assigns all
    (a failed load changes neither the weights nor the optimizer state)."""

    def __init__(self):
        self.assignments: list = []
        self.optimizer_commit = None

    def commit(self) -> None:
        for var, arr in self.assignments:
            var.assign(arr)
        if self.optimizer_commit is not None:
            self.optimizer_commit()


def _keras_class_key(layer) -> str:
    if model_class_name(layer) == "Functional":
        return "functional"
    return backend.to_snake_case(type(layer).__name__)


def _saved_layers(model) -> list:
    """The layers Keras's saver visits under `layers/` (`model.layers`: Sequential hides its InputLayer,
    a functional model lists its input layers too)."""
    return list(model.layers)


def _layer_items(model, prefix=""):
    """(path, layer) for every layer, depth first, with Keras 3's unique class-name keys."""
    used = {}
    for layer in _saved_layers(model):
        key = _keras_class_key(layer)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        path = f"{prefix}layers/{key}"
        yield path, layer
        if model_class_name(layer) is not None:
            yield from _layer_items(layer, prefix=path + "/")


def _own_weights(layer) -> list:
    return [] if model_class_name(layer) is not None else list(layer.weights)


def _shape(obj):
    shape = getattr(obj, "shape", None)
    return None if shape is None else tuple(shape)


def _value(source, obj, shape, where) -> np.ndarray:
    """A dataset's (or an in-memory array's) contents, after checking dtype and shape against `shape`."""
    if isinstance(obj, (np.ndarray, np.generic)):
        hdf5.check_numeric(obj.dtype, source, where)
        if tuple(obj.shape) != tuple(shape):
            raise WeightsError(f"{source}: weight '{where}' has shape {tuple(obj.shape)} in the file, but the "
                               f"model expects {tuple(shape)}")
        return np.asarray(obj)
    return hdf5.read_dataset(obj, shape, source, where)


# --- size bounds -------------------------------------------------------------------------------------
_MAX_SLOTS = 3          # optimizer slots per variable in any Keras optimizer (Adam with amsgrad)
_OBJECT_BYTES = 4096    # HDF5 overhead per group or dataset (measured: ~1 KB)


def file_bytes_bound(model) -> int:
    """The most bytes a Keras weights file for `model` (with optimizer state) can reasonably take."""
    params = sum(v.value.size for v in model.weights)
    trainable = sum(v.value.size for v in model.trainable_weights)
    objects = 2 * len(list(_layer_items(model))) + len(model.weights) * (1 + _MAX_SLOTS) + 16
    return 4 * (params + _MAX_SLOTS * trainable) + _OBJECT_BYTES * objects + (1 << 20)


def check_capacity(model, file_bytes: int, source: str) -> None:
    """Refuse, before reading any weight, a file too small to hold the model's parameters even at
    float16 and the best compression ratio HDF5's filters reach (a config that declares a huge model)."""
    params = sum(v.value.size for v in model.weights)
    if 2 * params > file_bytes * hdf5.MAX_RATIO + (1 << 20):
        raise WeightsError(f"{source}: the model config declares {params} parameters, which a {file_bytes}-byte "
                           "weights file cannot hold")


# --- optimizer state ---------------------------------------------------------------------------------
# rconv optimizers keep slot arrays per variable (`_slots`, created by `_slots_for`) in the order of
# `_slot_names`; Keras creates the same slots interleaved per variable, after iteration and learning_rate.
_SLOT_ALIASES = {"momentum": ("momentum", "m", "momentums"), "velocity": ("velocity", "v", "rms", "velocities")}
_ITERATION_NAMES = ("iteration", "iterations", "iter")
_LR_NAMES = ("learning_rate", "lr")


def optimizer_state(model) -> list:
    """[(name, array)] in Keras 3's optimizer.variables order (the optimizer knows it: `keras_variables`)."""
    return model.optimizer.keras_variables(model.trainable_weights)


def _slot_kind(name: str, slot_names):
    parts = re.sub(r":\d+$", "", name).split("/")
    for kind in slot_names:
        aliases = _SLOT_ALIASES.get(kind, (kind,))
        if parts[-1] in aliases or any(parts[-1].endswith("_" + a) for a in aliases):
            return kind
        if len(parts) > 2 and parts[1] in aliases:  # tf.keras 2.11+: "Adam/m/dense/kernel:0"
            return kind
    return None


def _iteration(source, name, arr) -> int:
    value = arr.item()
    if isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            raise WeightsError(f"{source}: optimizer iteration '{name}' is {value!r}, not a step count")
        value = int(value)
    if not 0 <= value < 2 ** 62:
        raise WeightsError(f"{source}: optimizer iteration '{name}' is {value}, not a step count")
    return value


def _learning_rate(source, name, arr) -> float:
    value = float(arr.item())
    if not math.isfinite(value) or value < 0:
        raise WeightsError(f"{source}: optimizer learning rate '{name}' is {value!r}")
    return value


def plan_optimizer_state(model, entries, source: str):
    """Validate [(name, dataset or array)] (Keras 3, tf.keras or Keras 2 order) for `model.optimizer`,
    reading each dataset only after its shape is checked. Returns a function that assigns the state, or
    None (with a warning, as Keras does) if the saved state doesn't fit this optimizer."""
    opt = model.optimizer
    iteration = lr = None
    slots = []
    for name, obj in entries:
        name = str(name)
        base = re.sub(r":\d+$", "", name).split("/")[-1]
        if _shape(obj) == () and base in _ITERATION_NAMES:
            iteration = _iteration(source, name, _value(source, obj, (), f"optimizer '{name}'"))
        elif _shape(obj) == () and base in _LR_NAMES:
            lr = _learning_rate(source, name, _value(source, obj, (), f"optimizer '{name}'"))
        else:
            slots.append((name, obj))
    trainable = model.trainable_weights
    slot_names = tuple(opt._slot_names)
    assignment = {}  # (id(var), j) -> (var, saved name, dataset)
    extra = len(opt.keras_extra_variables())
    if extra and len(slots) == len(trainable) * len(slot_names) + extra:
        slots = slots[:-extra]  # scalars Keras keeps after the slots (Nadam's u_product): recomputed here
    if slots and len(slots) != len(trainable) * len(slot_names):
        warnings.warn(f"{source}: skipping optimizer state: the saved optimizer has {len(slots)} slot "
                      f"variables, but {type(opt).__name__} needs {len(trainable) * len(slot_names)} for this "
                      "model; training resumes with a fresh optimizer state", stacklevel=3)
        return None
    if slots:
        kinds = [_slot_kind(n, slot_names) for n, _ in slots]
        if len(slot_names) > 1 and None not in kinds:
            # Names tell the slot type: match the i-th slot of each type to the i-th variable.
            for j, kind in enumerate(slot_names):
                picked = [(n, o) for (n, o), k in zip(slots, kinds) if k == kind]
                if len(picked) != len(trainable):
                    warnings.warn(f"{source}: skipping optimizer state: unexpected slot variable names",
                                  stacklevel=3)
                    return None
                for var, (n, o) in zip(trainable, picked):
                    assignment[(id(var), j)] = (var, n, o)
        else:  # Keras 3 / tf.keras 2.11+: each slot group interleaved per variable, the groups in turn
            for (i, j, _), entry in zip(opt.keras_slot_positions(len(trainable)), slots):
                assignment[(id(trainable[i]), j)] = (trainable[i], *entry)
    values = [(var, j, _value(source, obj, var.shape, f"optimizer slot '{slot_names[j]}' of {var.path} ({name})"))
              for (_, j), (var, name, obj) in assignment.items()]

    def commit():
        for var, j, arr in values:
            opt._slots_for(var)[j][...] = arr
        if iteration is not None:
            opt.iterations = iteration
        if lr is not None and np.float32(lr) != np.float32(opt.learning_rate):
            opt.learning_rate = lr
    return commit


def restore_optimizer_state(model, entries, source: str) -> bool:
    """Load [(name, array)] into `model.optimizer` (all or nothing). False (with a warning) if skipped."""
    commit = plan_optimizer_state(model, entries, source)
    if commit is None:
        return False
    commit()
    return True


# --- Keras 3 layout ----------------------------------------------------------------------------------
def write_keras3(h5, model, include_optimizer: bool = True) -> None:
    """Write `model`'s variables (and its optimizer's) into an open, empty h5py File."""
    h5.create_group("vars").attrs["name"] = model.name
    for path, layer in _layer_items(model):
        group = h5.create_group(path).create_group("vars")
        group.attrs["name"] = layer.name
        for i, var in enumerate(_own_weights(layer)):
            group.create_dataset(str(i), data=var.numpy())
    if include_optimizer and getattr(model, "optimizer", None) is not None:
        group = h5.create_group("optimizer").create_group("vars")
        group.attrs["name"] = model.optimizer.name
        for i, (_, arr) in enumerate(optimizer_state(model)):
            group.create_dataset(str(i), data=arr)


def _group(h5, path, source):
    import h5py
    group = hdf5.child(h5, path, source)
    return group if isinstance(group, h5py.Group) else None


def _vars_group(h5, path, source):
    group = _group(h5, path, source)
    return None if group is None else _group(group, "vars", source)


def _weight_where(path, layer, var) -> str:
    return f"{path} (layer '{layer.name}', variable '{var.path}')"


def plan_keras3(h5, model, source: str, load_optimizer: bool = True) -> Pending:
    """Check and read everything stored in Keras 3's layout for `model`; nothing is assigned yet."""
    if _group(h5, "layers", source) is None and _group(h5, "vars", source) is None:
        raise WeightsError(f"{source}: no 'layers' group: not a Keras 3 weights file")
    pending = Pending()
    items = list(_layer_items(model))
    for path, layer in items:
        weights = _own_weights(layer)
        group = _vars_group(h5, path, source)
        if group is None:
            if weights:
                raise WeightsError(f"{source}: missing group '{path}/vars' for layer '{layer.name}' "
                                   f"({type(layer).__name__}); the file does not match this model")
            continue
        if len(group) != len(weights):
            raise WeightsError(f"{source}: layer '{layer.name}' ({path}) expects {len(weights)} variables, "
                               f"but the file has {len(group)}")
        for i, var in enumerate(weights):
            dset = hdf5.child(group, str(i), source)
            if dset is None:
                raise WeightsError(f"{source}: missing dataset '{path}/vars/{i}' for layer '{layer.name}'")
            where = _weight_where(f"{path}/vars/{i}", layer, var)
            pending.assignments.append((var, _value(source, dset, var.shape, where)))
    layers_group = _group(h5, "layers", source)
    expected = {p.split("/")[1] for p, _ in items}
    extra = [k for k in (layers_group or {}) if k not in expected
             and len(_vars_group(h5, f"layers/{k}", source) or ())]
    if extra:
        raise WeightsError(f"{source}: the file has weights for layers {extra} that this model does not have")
    if load_optimizer and getattr(model, "optimizer", None) is not None:
        group = _vars_group(h5, "optimizer", source)
        if group is not None and len(group):
            entries = []
            for i in range(len(group)):
                dset = hdf5.child(group, str(i), source)
                if dset is None:
                    raise WeightsError(f"{source}: missing dataset 'optimizer/vars/{i}'")
                entries.append((_keras3_opt_name(i), dset))
            pending.optimizer_commit = plan_optimizer_state(model, entries, source)
    return pending


def read_keras3(h5, model, source: str, load_optimizer: bool = True) -> None:
    """Assign the variables stored in Keras 3's layout (checks everything before assigning anything)."""
    plan_keras3(h5, model, source, load_optimizer).commit()


def _keras3_opt_name(i: int) -> str:
    return {0: "iteration", 1: "learning_rate"}.get(i, f"slot_{i}")


# --- legacy layout -----------------------------------------------------------------------------------
def _legacy_weights(layer) -> list:
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _legacy_layers(model) -> list:
    return list(model.layers)


def load_attributes(group, name, source: str = "") -> list:
    """A list attribute, possibly chunked as name0, name1, ... (Keras's 64 KB header workaround); each
    attribute's shape, type and size are checked before it is read."""
    where = group.name or "/"
    if name in group.attrs:
        return hdf5.string_list_attr(group, name, source, where)
    out, i = [], 0
    while f"{name}{i}" in group.attrs:
        out.extend(hdf5.string_list_attr(group, f"{name}{i}", source, where))
        i += 1
    return out


def save_attributes(group, name, values) -> None:
    data = [v.encode("utf8") for v in values]
    limit = 64512
    if sum(len(x) for x in data) + 16 * len(data) <= limit or not data:
        group.attrs[name] = np.asarray(data, dtype="S") if data else np.zeros((0,), np.float64)
        return
    chunks, current, size = [], [], 0
    for x in data:
        if current and size + len(x) + 16 > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(x)
        size += len(x) + 16
    chunks.append(current)
    for i, chunk in enumerate(chunks):
        group.attrs[f"{name}{i}"] = np.asarray(chunk, dtype="S")


def _legacy_weight_name(layer_name: str, var) -> str:
    return f"{layer_name}/{var.name}:0"


def write_legacy(group, model, keras_version: str) -> None:
    layers = _legacy_layers(model)
    save_attributes(group, "layer_names", [layer.name for layer in layers])
    group.attrs["backend"] = "tensorflow"
    group.attrs["keras_version"] = keras_version
    for layer in sorted(layers, key=lambda l: l.name):
        sub = group.create_group(layer.name)
        weights = _legacy_weights(layer)
        names = [_legacy_weight_name(layer.name, v) for v in weights]
        if model_class_name(layer) is not None:  # nested model: name weights by their own layer
            names = [f"{v.path}:0" for v in weights]
        save_attributes(sub, "weight_names", names)
        for name, var in zip(names, weights):
            sub.create_dataset(name, data=var.numpy())
    top = group.create_group("top_level_model_weights")
    save_attributes(top, "weight_names", [])


def plan_legacy(group, model, source: str) -> Pending:
    """Topological loading, as Keras: the i-th saved layer with weights -> the i-th model layer with
    weights. Everything is checked and read; nothing is assigned yet."""
    import h5py
    layer_names = load_attributes(group, "layer_names", source)
    if not layer_names and "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
        raise WeightsError(f"{source}: no 'layer_names' attribute: not a Keras weights group")
    saved = []
    for name in layer_names:
        sub = hdf5.child(group, name, source)
        if not isinstance(sub, h5py.Group):
            raise WeightsError(f"{source}: missing group '{name}' listed in layer_names")
        weight_names = load_attributes(sub, "weight_names", source)
        if weight_names:
            saved.append((name, sub, weight_names))
    layers = [layer for layer in _legacy_layers(model) if _legacy_weights(layer)]
    if len(saved) != len(layers):
        raise WeightsError(f"{source}: layer count mismatch: the model has {len(layers)} layers with weights "
                           f"({[l.name for l in layers]}), the file has {len(saved)} ({[s[0] for s in saved]})")
    pending = Pending()
    for layer, (name, sub, weight_names) in zip(layers, saved):
        weights = _legacy_weights(layer)
        if len(weight_names) != len(weights):
            raise WeightsError(f"{source}: layer '{layer.name}' expects {len(weights)} weights, but saved layer "
                               f"'{name}' has {len(weight_names)}")
        for var, wname in zip(weights, weight_names):
            dset = hdf5.child(sub, wname, source)
            if dset is None:
                raise WeightsError(f"{source}: missing dataset '{name}/{wname}' for layer '{layer.name}'")
            where = _weight_where(f"{name}/{wname}", layer, var)
            pending.assignments.append((var, _value(source, dset, var.shape, where)))
    return pending


def read_legacy(group, model, source: str) -> None:
    plan_legacy(group, model, source).commit()


def write_legacy_optimizer(h5, model) -> None:
    entries = optimizer_state(model)
    group = h5.create_group("optimizer_weights")
    save_attributes(group, "weight_names", [n for n, _ in entries])
    for name, arr in entries:
        group.create_dataset(name, data=arr)


def plan_legacy_optimizer(h5, model, source: str):
    """The optimizer state of a legacy `.h5` model file, checked and read: a function that assigns it,
    or None (no state, or state that doesn't fit this optimizer)."""
    import h5py
    group = hdf5.child(h5, "optimizer_weights", source)
    if not isinstance(group, h5py.Group):
        return None
    entries = []
    for name in load_attributes(group, "weight_names", source):
        dset = hdf5.child(group, name, source)
        if dset is None:
            raise WeightsError(f"{source}: missing dataset 'optimizer_weights/{name}'")
        entries.append((name, dset))
    return plan_optimizer_state(model, entries, source)

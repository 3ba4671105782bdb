"""Weights and optimizer state in the two HDF5 layouts Keras uses.

* Keras 3 (`model.weights.h5` inside `.keras`, and `.weights.h5`): `layers/<snake_class>[_n]/vars/<i>`
  (layers addressed by class name and position, not by layer name), `optimizer/vars/<i>` with
  `[iteration, learning_rate, slot vars interleaved per trainable variable]`, and a root `vars` group.
* Legacy (`.h5`, Keras 2 / tf.keras and Keras 3's legacy writer): per-layer groups listed in the
  `layer_names` attribute, each with a `weight_names` attribute naming its datasets, matched to the
  model's layers that have weights, in order; optimizer state in `optimizer_weights`.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from .. import backend
from .model_config import model_class_name


class WeightsError(ValueError):
    pass


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


def _check_shape(source, where, expected, array):
    if tuple(array.shape) != tuple(expected):
        raise WeightsError(f"{source}: weight '{where}' has shape {tuple(array.shape)} in the file, but the "
                           f"model expects {tuple(expected)}")


def _read(source, dset, where):
    import h5py
    if not isinstance(dset, h5py.Dataset):
        raise WeightsError(f"{source}: '{where}' is not a dataset")
    if dset.dtype.kind not in "fiub":
        raise WeightsError(f"{source}: '{where}' has non-numeric dtype {dset.dtype}")
    try:
        return np.asarray(dset[()])
    except OSError as exc:
        raise WeightsError(f"{source}: cannot read '{where}' (corrupt or truncated file): {exc}") from exc


# --- optimizer state ---------------------------------------------------------------------------------
# rconv optimizers keep slot arrays per variable (`_slots`, created by `_slots_for`) in the order of
# `_slot_names`; Keras creates the same slots interleaved per variable, after iteration and learning_rate.
_SLOT_ALIASES = {"momentum": ("momentum", "m", "momentums"), "velocity": ("velocity", "v", "rms", "velocities")}


def optimizer_state(model) -> list:
    """[(name, array)] in Keras 3's optimizer.variables order."""
    opt = model.optimizer
    prefix = backend.to_snake_case(type(opt).__name__)
    out = [(f"{prefix}/iteration", np.asarray(opt.iterations, np.int64)),
           (f"{prefix}/learning_rate", np.asarray(opt.learning_rate, np.float32))]
    if opt.built:
        for var in model.trainable_weights:
            for slot_name, arr in zip(opt._slot_names, opt._slots_for(var)):
                out.append((f"{prefix}/{var.path.replace('/', '_')}_{slot_name}", arr))
    return out


def _slot_kind(name: str, slot_names):
    parts = re.sub(r":\d+$", "", name).split("/")
    for kind in slot_names:
        aliases = _SLOT_ALIASES.get(kind, (kind,))
        if parts[-1] in aliases or any(parts[-1].endswith("_" + a) for a in aliases):
            return kind
        if len(parts) > 2 and parts[1] in aliases:  # tf.keras 2.11+: "Adam/m/dense/kernel:0"
            return kind
    return None


def restore_optimizer_state(model, entries, source: str) -> bool:
    """Load [(name, array)] (Keras 3, tf.keras or Keras 2 order) into `model.optimizer`. Returns
    False (with a warning, as Keras does) if the saved state doesn't fit this optimizer."""
    opt = model.optimizer
    entries = [(str(n), np.asarray(a)) for n, a in entries]
    iteration = lr = None
    slots = []
    for name, arr in entries:
        base = re.sub(r":\d+$", "", name).split("/")[-1]
        if arr.shape == () and base in ("iteration", "iterations", "iter"):
            iteration = int(arr)
        elif arr.shape == () and base in ("learning_rate", "lr"):
            lr = float(arr)
        else:
            slots.append((name, arr))
    trainable = model.trainable_weights
    slot_names = tuple(opt._slot_names)
    if not slots:
        assignment = {}
    elif len(slots) != len(trainable) * len(slot_names):
        warnings.warn(f"{source}: skipping optimizer state: the saved optimizer has {len(slots)} slot "
                      f"variables, but {type(opt).__name__} needs {len(trainable) * len(slot_names)} for this "
                      "model; training resumes with a fresh optimizer state", stacklevel=2)
        return False
    else:
        kinds = [_slot_kind(n, slot_names) for n, _ in slots]
        assignment = {}
        if len(slot_names) > 1 and None not in kinds:
            # Names tell the slot type: match the i-th slot of each type to the i-th variable.
            for j, kind in enumerate(slot_names):
                arrays = [a for (_, a), k in zip(slots, kinds) if k == kind]
                if len(arrays) != len(trainable):
                    warnings.warn(f"{source}: skipping optimizer state: unexpected slot variable names", stacklevel=2)
                    return False
                for var, arr in zip(trainable, arrays):
                    assignment[(id(var), j)] = (var, arr)
        else:  # Keras 3 / tf.keras 2.11+: interleaved per variable
            k = len(slot_names)
            for i, var in enumerate(trainable):
                for j in range(k):
                    assignment[(id(var), j)] = (var, slots[i * k + j][1])
        for (_, j), (var, arr) in assignment.items():
            _check_shape(source, f"optimizer slot '{slot_names[j]}' of {var.path}", var.shape, arr)
    for (_, j), (var, arr) in assignment.items():
        opt._slots_for(var)[j][...] = arr
    if iteration is not None:
        opt.iterations = iteration
    if lr is not None and np.float32(lr) != np.float32(opt.learning_rate):
        opt.learning_rate = lr
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


def _vars_group(h5, path):
    import h5py
    group = h5.get(path)
    if not isinstance(group, h5py.Group):
        return None
    group = group.get("vars")
    return group if isinstance(group, h5py.Group) else None


def read_keras3(h5, model, source: str, load_optimizer: bool = True) -> None:
    """Assign the variables stored in Keras 3's layout (checks everything before assigning)."""
    import h5py
    if not isinstance(h5.get("layers"), h5py.Group) and not isinstance(h5.get("vars"), h5py.Group):
        raise WeightsError(f"{source}: no 'layers' group: not a Keras 3 weights file")
    updates = []
    for path, layer in _layer_items(model):
        weights = _own_weights(layer)
        group = _vars_group(h5, path)
        if group is None:
            if weights:
                raise WeightsError(f"{source}: missing group '{path}/vars' for layer '{layer.name}' "
                                   f"({type(layer).__name__}); the file does not match this model")
            continue
        if len(group.keys()) != len(weights):
            raise WeightsError(f"{source}: layer '{layer.name}' ({path}) expects {len(weights)} variables, "
                               f"but the file has {len(group.keys())}")
        for i, var in enumerate(weights):
            if str(i) not in group:
                raise WeightsError(f"{source}: missing dataset '{path}/vars/{i}'")
            arr = _read(source, group[str(i)], f"{path}/vars/{i}")
            _check_shape(source, f"{path}/vars/{i}", var.shape, arr)
            updates.append((var, arr))
    saved = [k for k in (h5.get("layers") or {}).keys()]
    expected = {p.split("/")[1] for p, _ in _layer_items(model)}
    extra = [k for k in saved if k not in expected and _vars_group(h5, f"layers/{k}") is not None
             and len(_vars_group(h5, f"layers/{k}").keys())]
    if extra:
        raise WeightsError(f"{source}: the file has weights for layers {extra} that this model does not have")
    for var, arr in updates:
        var.assign(arr)
    if load_optimizer and getattr(model, "optimizer", None) is not None:
        group = _vars_group(h5, "optimizer")
        if group is not None and len(group.keys()):
            n = len(group.keys())
            entries = []
            for i in range(n):
                if str(i) not in group:
                    raise WeightsError(f"{source}: missing dataset 'optimizer/vars/{i}'")
                entries.append((_keras3_opt_name(i), _read(source, group[str(i)], f"optimizer/vars/{i}")))
            restore_optimizer_state(model, entries, source)


def _keras3_opt_name(i: int) -> str:
    return {0: "iteration", 1: "learning_rate"}.get(i, f"slot_{i}")


# --- legacy layout -----------------------------------------------------------------------------------
def _legacy_weights(layer) -> list:
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _legacy_layers(model) -> list:
    return list(model.layers)


def _str_attr(values) -> list:
    out = []
    for v in np.asarray(values).reshape(-1).tolist():
        out.append(v.decode("utf8") if isinstance(v, bytes) else str(v))
    return out


def load_attributes(group, name) -> list:
    """A list attribute, possibly chunked as name0, name1, ... (Keras's 64 KB header workaround)."""
    if name in group.attrs:
        return _str_attr(group.attrs[name])
    out, i = [], 0
    while f"{name}{i}" in group.attrs:
        out.extend(_str_attr(group.attrs[f"{name}{i}"]))
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


def read_legacy(group, model, source: str) -> None:
    """Topological loading, as Keras: the i-th saved layer with weights -> the i-th model layer with weights."""
    import h5py
    layer_names = load_attributes(group, "layer_names")
    if not layer_names and "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
        raise WeightsError(f"{source}: no 'layer_names' attribute: not a Keras weights group")
    saved = []
    for name in layer_names:
        sub = group.get(name)
        if not isinstance(sub, h5py.Group):
            raise WeightsError(f"{source}: missing group '{name}' listed in layer_names")
        weight_names = load_attributes(sub, "weight_names")
        if weight_names:
            saved.append((name, sub, weight_names))
    layers = [layer for layer in _legacy_layers(model) if _legacy_weights(layer)]
    if len(saved) != len(layers):
        raise WeightsError(f"{source}: layer count mismatch: the model has {len(layers)} layers with weights "
                           f"({[l.name for l in layers]}), the file has {len(saved)} ({[s[0] for s in saved]})")
    updates = []
    for layer, (name, sub, weight_names) in zip(layers, saved):
        weights = _legacy_weights(layer)
        if len(weight_names) != len(weights):
            raise WeightsError(f"{source}: layer '{layer.name}' expects {len(weights)} weights, but saved layer "
                               f"'{name}' has {len(weight_names)}")
        for var, wname in zip(weights, weight_names):
            if wname not in sub:
                raise WeightsError(f"{source}: missing dataset '{name}/{wname}'")
            arr = _read(source, sub[wname], f"{name}/{wname}")
            _check_shape(source, f"{name}/{wname}", var.shape, arr)
            updates.append((var, arr))
    for var, arr in updates:
        var.assign(arr)


def write_legacy_optimizer(h5, model) -> None:
    entries = optimizer_state(model)
    group = h5.create_group("optimizer_weights")
    save_attributes(group, "weight_names", [n for n, _ in entries])
    for name, arr in entries:
        group.create_dataset(name, data=arr)


def read_legacy_optimizer(h5, model, source: str) -> None:
    import h5py
    group = h5.get("optimizer_weights")
    if not isinstance(group, h5py.Group):
        return
    names = load_attributes(group, "weight_names")
    entries = []
    for name in names:
        if name not in group:
            raise WeightsError(f"{source}: missing dataset 'optimizer_weights/{name}'")
        entries.append((name, _read(source, group[name], f"optimizer_weights/{name}")))
    restore_optimizer_state(model, entries, source)

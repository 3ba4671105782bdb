"""JSON-aware mutations of model configs (`.keras` config.json, legacy `.h5` model_config/training_config):
wrong types, huge numbers, inf/nan, negative sizes, deep nesting, unknown classes and modules, `Lambda`,
cycles in inbound_nodes, deleted/added keys, string output_layers, duplicate names."""
from __future__ import annotations

import json
import math
import random

INTERESTING_KEYS = {"units", "filters", "kernel_size", "strides", "pool_size", "batch_shape", "batch_input_shape",
                    "shape", "input_shape", "rate", "axis", "dilation_rate", "padding", "activation",
                    "target_shape", "dims", "data_format", "use_bias", "momentum", "epsilon", "learning_rate",
                    "iterations", "size", "factor", "class_name", "module", "registered_name", "inbound_nodes",
                    "input_layers", "output_layers", "layers", "config", "name", "keras_history", "dtype",
                    "loss", "loss_weights", "metrics", "optimizer", "build_config", "compile_config"}
_HUGE = [3_000_000, 2 ** 31, 2 ** 63, 2 ** 64 + 1, 10 ** 30, 10 ** 400, -(2 ** 63), 1e308, 123456789]
WRONG_VALUES = [None, True, False, "x", 1, 1.5, [], {}, [1, 2], {"a": 1}, "relu", [[1]], "", [None], "a" * 10000]
_CLASSES = ["Lambda", "Evil", "TFOpLambda", "__import__", "eval", "Model", "Functional", "Sequential", "Layer",
            "Dense", "InputLayer", ""]
_MODULES = ["os", "builtins", "subprocess", "keras.layers", "keras.src.ops.numpy", "rconv", "", "evil.module"]
_LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
           "config": {"name": "lam", "function": {"class_name": "__lambda__", "config": {
               "code": "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA+gg8c3RkaW4+",
               "defaults": None, "closure": None}}, "output_shape": None, "arguments": {}}}
_DEPTH = "__FUZZ_DEEP__"


def _paths(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _layer_entries(cfg):
    return [v for _, v in _paths(cfg) if isinstance(v, dict) and "class_name" in v and "config" in v]


def _name(entry):
    conf = entry.get("config")
    return conf.get("name") if isinstance(conf, dict) else None


def _inbound_cycle(cfg, rng):
    layers = [entry for entry in _layer_entries(cfg) if entry.get("inbound_nodes")]
    if not layers:
        return "no inbound nodes"
    entry = rng.choice(layers)
    names = [_name(e) for e in _layer_entries(cfg)]
    own = entry.get("name") or _name(entry)
    target = own if rng.random() < 0.6 else rng.choice([n for n in names if isinstance(n, str)] or [own])
    count = 0
    for path, value in list(_paths(entry["inbound_nodes"])):
        if isinstance(value, str) and value in names and path:
            _set(entry["inbound_nodes"], path, target)
            count += 1
        elif path and path[-1] == "keras_history" and isinstance(value, list) and value:
            value[0] = target
            if rng.random() < 0.3 and len(value) > 1:
                value[1] = rng.choice([10 ** 9, -1, 1])
            count += 1
    return f"{own} -> {target} ({count})"


def mutate_json(cfg, rng: random.Random):
    """Mutate a parsed config in place (or return a replacement); returns (new_cfg, kind, detail)."""
    nodes = list(_paths(cfg))
    keyed = [(p, v) for p, v in nodes if p and p[-1] in INTERESTING_KEYS]
    pool = keyed if keyed and rng.random() < 0.7 else nodes[1:] or nodes
    path, value = rng.choice(pool)
    op = rng.choice(["wrong_type", "huge", "nonfinite", "negative", "deep", "class", "module", "lambda", "cycle",
                     "delete", "add_key", "long_list", "output_layers", "duplicate_name", "swap"])
    detail = "/".join(map(str, path))[-80:]
    if op == "cycle":
        return cfg, "json_cycle", _inbound_cycle(cfg, rng)
    if op in ("class", "module", "lambda", "duplicate_name", "output_layers"):
        entries = _layer_entries(cfg)
        if not entries:
            op = "wrong_type"
        else:
            entry = rng.choice(entries)
            if op == "class":
                entry["class_name"] = rng.choice(_CLASSES)
            elif op == "module":
                entry["module"] = rng.choice(_MODULES)
                if rng.random() < 0.5:
                    entry["registered_name"] = rng.choice(["os>system", "builtins>eval", None, 7])
            elif op == "lambda":
                new = json.loads(json.dumps(_LAMBDA))
                for key in ("name", "inbound_nodes"):
                    if key in entry:
                        new[key] = entry[key]
                entry.clear()
                entry.update(new)
            elif op == "duplicate_name":
                other = rng.choice(entries)
                if isinstance(entry.get("config"), dict) and isinstance(other.get("config"), dict):
                    entry["config"]["name"] = other["config"].get("name")
            else:
                conf = cfg.get("config") if isinstance(cfg, dict) else None
                if isinstance(conf, dict):
                    conf[rng.choice(["output_layers", "input_layers"])] = rng.choice(
                        ["dense", [["dense", 0, 0]] * 3, [[["x"]]], {"a": 1}, [[None, None, None]], []])
            return cfg, f"json_{op}", detail
    if not path:
        return rng.choice(WRONG_VALUES), "json_root", type(cfg).__name__
    new = {"wrong_type": lambda: rng.choice(WRONG_VALUES), "huge": lambda: rng.choice(_HUGE),
           "nonfinite": lambda: rng.choice([math.inf, -math.inf, math.nan]),
           "negative": lambda: rng.choice([-1, 0, -(2 ** 31), [-1, -1], [0, 0]]),
           "deep": lambda: _DEPTH, "long_list": lambda: [1] * rng.choice([100, 100000]),
           "swap": lambda: rng.choice(nodes)[1]}.get(op)
    if op == "delete":
        parent = cfg
        for p in path[:-1]:
            parent = parent[p]
        del parent[path[-1]]
        return cfg, "json_delete", detail
    if op == "add_key":
        if isinstance(value, dict):
            value[rng.choice(["evil", "__class__", "function", "code", "module"])] = rng.choice(WRONG_VALUES)
        return cfg, "json_add_key", detail
    _set(cfg, path, json.loads(json.dumps(new(), allow_nan=True)) if op == "swap" else new())
    return cfg, f"json_{op}", detail


def mutate_json_text(text: str, rng: random.Random):
    cfg = json.loads(text)
    for i in range(rng.choice([1, 1, 1, 2, 3])):
        cfg, kind, detail = mutate_json(cfg, rng)
        if i == 0:
            desc = f"{kind}: {detail}"
    out = json.dumps(cfg, allow_nan=True)
    if _DEPTH in out:
        depth = rng.choice([100, 900, 3000, 100000])
        nest = ("[" * depth + "1" + "]" * depth) if rng.random() < 0.5 else ('{"a":' * depth + "1" + "}" * depth)
        out = out.replace(f'"{_DEPTH}"', nest)
    return out, desc



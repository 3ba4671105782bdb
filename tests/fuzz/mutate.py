"""Case number -> mutated model file. `make_case(n, ctx, base_seed)` is deterministic in (base_seed, n).

Families: raw byte mutations (flips, overwrites, truncation, chunk duplication/removal, header smashes
next to known names), `.keras` zip surgery (config.json mutated as JSON or as bytes, the inner
model.weights.h5 mutated with h5py or as bytes, missing/duplicated/extra entries, a zip bomb), and h5py-level
mutations of `.h5` files (h5mut.py). Each case also says which call to make: `load_model` or `load_weights`.
"""
from __future__ import annotations

import json
import random
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import h5mut, seeds
from .jsonmut import WRONG_VALUES, mutate_json_text

@dataclass
class Case:
    number: int
    seed: str
    path: str
    op: str    # "load_model" | "load_weights"
    desc: str  # "<family>/<kind>: detail"

    @property
    def kind(self) -> str:
        """The mutation class: family and kind without the details."""
        return self.desc.split(":", 1)[0]


# --- bytes ----------------------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random, markers=(b"model_config", b"weight_names", b"layer_names",
                                                          b"vars", b"config.json", b"TREE", b"HEAP")):
    b = bytearray(data)
    if not b:
        return bytes([rng.randrange(256)]), "bytes_insert"
    op = rng.choice(["flip", "flip", "overwrite", "truncate", "dup", "remove", "zero", "smash"])
    n = len(b)
    if op == "flip":
        for _ in range(rng.choice([1, 1, 2, 4, 16, 64])):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == "overwrite":
        at, k = rng.randrange(n), rng.choice([1, 4, 8, 64, 512])
        b[at:at + k] = bytes(rng.randrange(256) for _ in range(k))
    elif op == "truncate":
        b = b[:rng.choice([0, 1, 8, 512, rng.randrange(n)])]
    elif op == "dup":
        at, k = rng.randrange(n), rng.choice([8, 64, 4096])
        chunk = b[at:at + k]
        ins = rng.randrange(n)
        b[ins:ins] = chunk
    elif op == "remove":
        at = rng.randrange(n)
        del b[at:at + rng.choice([1, 8, 64, 4096])]
    elif op == "zero":
        at = rng.randrange(n)
        k = rng.choice([8, 64, 4096])
        b[at:at + k] = bytes(len(b[at:at + k]))
    else:  # smash up to 64 bytes just before a structure name (object/attribute headers live nearby)
        hits = [i for m in markers for i in _find_all(b, m)]
        if not hits:
            return mutate_bytes(data, rng, markers=())
        at = max(0, rng.choice(hits) - rng.randrange(1, 96))
        k = rng.choice([1, 2, 8, 64])
        b[at:at + k] = bytes(rng.randrange(256) for _ in range(k))
    return bytes(b), f"bytes_{op}"


def _find_all(data, marker, limit=64):
    out, at = [], data.find(marker)
    while at >= 0 and len(out) < limit:
        out.append(at)
        at = data.find(marker, at + 1)
    return out


# --- .keras archives --------------------------------------------------------------------------------------

def _read_zip(path):
    with zipfile.ZipFile(path) as zf:
        return [(info, zf.read(info.filename)) for info in zf.infolist()]


def _write_zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name), data)


def _mutate_inner_h5(data: bytes, rng, ctx, seed, scratch: Path):
    if rng.random() < 0.3:
        return mutate_bytes(data, rng)
    scratch.write_bytes(data)
    desc = h5mut.mutate_file(str(scratch), rng, ctx, seed)
    data = scratch.read_bytes()
    scratch.unlink()
    return data, "h5_" + desc


def mutate_keras(src, dst, rng, ctx, seed):
    family = rng.choices(["outer_bytes", "config", "config_bytes", "weights", "zip"], [2, 5, 1, 5, 1])[0]
    if family == "outer_bytes":
        data, kind = mutate_bytes(Path(src).read_bytes(), rng)
        Path(dst).write_bytes(data)
        return f"keras_{kind}"
    entries = [(info.filename, data) for info, data in _read_zip(src)]
    names = [n for n, _ in entries]
    if family in ("config", "config_bytes", "weights"):
        target = {"config": "config.json", "config_bytes": "config.json", "weights": "model.weights.h5"}[family]
        if target not in names:
            family = "zip"
        else:
            i = names.index(target)
            if family == "config":
                text, kind = mutate_json_text(entries[i][1].decode("utf-8"), rng)
                entries[i] = (target, text.encode("utf-8"))
            elif family == "config_bytes":
                data, kind = mutate_bytes(entries[i][1], rng, markers=(b"class_name", b"inbound_nodes"))
                entries[i], kind = (target, data), "config_" + kind
            else:
                data, kind = _mutate_inner_h5(entries[i][1], rng, ctx, seed, Path(dst).with_suffix(".inner.h5"))
                entries[i] = (target, data)
            _write_zip(dst, entries)
            return "keras_" + kind
    op = rng.choice(["missing", "duplicate", "extra", "traversal", "bomb", "metadata", "config_bomb"])
    if op == "config_bomb" and ctx.get("bomb"):  # valid JSON + trailing spaces, deflated (~1/1000)
        i = names.index("config.json") if "config.json" in names else 0
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for j, (name, data) in enumerate(entries):
                with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as out:
                    out.write(data)
                    left = ctx["bomb_bytes"] // 2 if i == j else 0
                    while left > 0:
                        out.write(b" " * min(left, 1 << 22))
                        left -= 1 << 22
        return f"keras_zip_config_bomb: {names[i]} padded to {ctx['bomb_bytes'] // 2} bytes"
    if op == "bomb" and ctx.get("bomb"):
        shutil.copyfile(ctx["bomb"], dst)
        return f"keras_zip_bomb: model.weights.h5 inflates to {ctx['bomb_bytes']} bytes"
    if op == "missing" or op == "bomb":
        victim = rng.choice(names)
        entries = [e for e in entries if e[0] != victim]
        op = f"missing {victim}"
    elif op == "duplicate":
        victim = rng.choice(names)
        entries.append((victim, b"{}" if victim.endswith(".json") else entries[names.index(victim)][1][:100]))
    elif op == "extra":
        entries.append((rng.choice(["model.weights.npz", "assets/x", "x.pkl", "config.json/"]), b"\x80\x04N."))
    elif op == "traversal":
        entries.append(("../../escape.json", b"{}"))
    else:
        bad = json.dumps(rng.choice(WRONG_VALUES)).encode()
        entries = [(n, bad if n == "metadata.json" else d) for n, d in entries]
    _write_zip(dst, entries)
    return f"keras_zip_{op.split()[0]}: {op}"


# --- dispatch ---------------------------------------------------------------------------------------------

def case_rng(base_seed: int, number: int) -> random.Random:
    return random.Random(base_seed * 1_000_003 + number)


def make_case(number: int, ctx: dict, base_seed: int = 0) -> Case:
    rng = case_rng(base_seed, number)
    seed = ctx["seeds"][number % len(ctx["seeds"])]
    name, kind = seed["name"], seed["kind"]
    suffix = ".weights.h5" if name.endswith(".weights.h5") else Path(name).suffix
    src = Path(ctx["workdir"]) / "seeds" / name
    dst = Path(ctx["workdir"]) / "cases" / f"case_{number}{suffix}"
    op = "load_weights" if kind == "h5weights" or rng.random() < 0.3 else "load_model"
    if rng.random() < 0.01:  # the path itself is not a regular file
        target = rng.choice([ctx["fifo"], "/dev/zero", str(Path(ctx["workdir"]) / "private"), "/nonexistent"])
        dst.unlink(missing_ok=True)
        dst.symlink_to(target)
        return Case(number, name, str(dst), op, f"file_special: symlink to {target}")
    if kind == "keras":
        desc = mutate_keras(src, dst, rng, ctx, name)
        if desc.startswith("keras_zip_bomb"):
            name = seeds.BOMB_SEED  # the bomb is made from this seed, so load_weights needs its model
        if desc.startswith(("keras_json", "keras_config")):
            op = "load_model"  # load_weights never reads the config
    elif rng.random() < 0.25:
        data, bkind = mutate_bytes(src.read_bytes(), rng)
        dst.write_bytes(data)
        desc = f"h5_{bkind}"
    else:
        shutil.copyfile(src, dst)
        desc = "h5_" + h5mut.mutate_file(str(dst), rng, ctx, name)
    return Case(number, name, str(dst), op, desc)


def describe(case: Case) -> str:
    return f"case {case.number}: {case.op}({Path(case.path).name}) from seed {case.seed}: {case.desc}"

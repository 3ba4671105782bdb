"""Paired A/B of two builds of the extension in one process: each build's ``_rconv`` library is loaded as a module of
its own and the calls alternate (ABBA order), so both see the same machine noise; the report is the median of the
per-round time ratios. On the shared 2-core machines this resolves 5 % changes that separate-process best-of-N runs
drown in noise.

usage: ab_builds.py save NAME                     # keep the current build's library as /tmp/rconv-ab/NAME.so
       ab_builds.py run A B [--case fused|gemm|dense] [--rounds N]   # A, B: saved names or paths to .so files

Typical use: `make build && ab_builds.py save before`, change the Rust code, `make build`, then
`ab_builds.py run before python/rconv/_rconv.abi3.so`. A speed report, not a test.
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import shutil
import time
from pathlib import Path

import numpy as np

STORE = Path("/tmp/rconv-ab")
HERE = Path(__file__).resolve().parent


def load(name: str, tag: str):
    path = Path(name) if name.endswith(".so") else STORE / f"{name}.so"
    # The module's last name component must be `_rconv` (the library's init symbol); the prefix keeps them apart.
    loader = importlib.machinery.ExtensionFileLoader(f"ab_{tag}._rconv", str(path))
    spec = importlib.util.spec_from_file_location(f"ab_{tag}._rconv", str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def cases(which: str, rng, modules):
    """(label, f(module)) pairs calling the raw `_rconv` functions."""
    out = []
    if which == "fused":  # conv + ReLU + 2x2 max-pool of the seed models, forward and backward
        for name, (b, h, cin, cout) in {"mnist conv2": (64, 13, 32, 64), "model4 conv3": (32, 23, 64, 128),
                                        "seed003 conv3": (32, 43, 64, 128)}.items():
            x = rng.standard_normal((b, h, h, cin), dtype=np.float32)
            k = rng.standard_normal((3, 3, cin, cout), dtype=np.float32) * 0.1
            bias = np.zeros(cout, np.float32)
            args = ((1, 1), "valid", (2, 2), (2, 2), "valid")
            y, winners = modules[0].conv2d_relu_max_pool(x, k, bias, *args, True)
            gy = rng.standard_normal(y.shape, dtype=np.float32)
            out.append((f"{name} fwd", lambda m, x=x, k=k, b=bias: m.conv2d_relu_max_pool(x, k, b, *args, True)))
            out.append((f"{name} bwd", lambda m, x=x, k=k, gy=gy, w=winners:
                        m.conv2d_relu_max_pool_backward(x, k, gy, w, *args, True)))
    elif which == "gemm":  # pointwise convolutions: plain GEMMs through the micro-kernel
        for m_, k_, n_ in [(4096, 288, 64), (2048, 1152, 256), (1024, 1024, 1024)]:
            x = rng.standard_normal((1, 1, m_, k_), dtype=np.float32)
            w = rng.standard_normal((1, 1, k_, n_), dtype=np.float32)
            out.append((f"{m_}x{k_}x{n_}", lambda m, x=x, w=w: m.conv2d(x, w, None, (1, 1), "valid")))
    else:  # dense 12,800 -> 512 (model4's large layer)
        for rows in (1, 32, 64):
            x = rng.standard_normal((rows, 12800), dtype=np.float32)
            w = rng.standard_normal((12800, 512), dtype=np.float32)
            out.append((f"dense {rows}x12800x512", lambda m, x=x, w=w: m.dense(x, w, None, "relu")))
    return out


def run(a: str, b: str, which: str, rounds: int) -> None:
    mods = {"A": load(a, "a"), "B": load(b, "b")}
    for label, f in cases(which, np.random.default_rng(0), list(mods.values())):
        times = {"A": [], "B": []}
        for m in mods.values():
            f(m)
        for r in range(rounds):
            for key in ("AB" if r % 2 == 0 else "BA"):
                t = time.perf_counter()
                f(mods[key])
                times[key].append(time.perf_counter() - t)
        ta, tb = np.array(times["A"]), np.array(times["B"])
        print(f"{label:22s} A min {ta.min() * 1e3:8.3f} ms | B min {tb.min() * 1e3:8.3f} ms | "
              f"B/A paired median {np.median(tb / ta):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    save = sub.add_parser("save")
    save.add_argument("name")
    go = sub.add_parser("run")
    go.add_argument("a")
    go.add_argument("b")
    go.add_argument("--case", choices=("fused", "gemm", "dense"), default="fused")
    go.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if args.cmd == "save":
        STORE.mkdir(parents=True, exist_ok=True)
        src = next((HERE.parent / "python" / "rconv").glob("_rconv*.so"))
        shutil.copy2(src.resolve(), STORE / f"{args.name}.so")
        print(f"saved {src} as {STORE / (args.name + '.so')}")
    else:
        run(args.a, args.b, args.case, args.rounds)


if __name__ == "__main__":
    main()

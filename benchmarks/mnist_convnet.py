"""Side-by-side speed of the seed MNIST convnet: rconv, PyTorch and Keras (when installed), each in its
own process, one after another, on the same data and machine. Prints one table with the ratios.

usage: python benchmarks/mnist_convnet.py [--epochs N] [--python-torch PY] [--python-keras PY]
Not a test: nothing here asserts a timing (the machines are noisy).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_BENCH = HERE.parent.parent / "shared" / "bench"
# Runs a script in this process and reports its peak resident memory when it exits.
RSS_WRAPPER = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "sys.path.insert(0, __import__('os').path.dirname(sys.argv[0]));"
               "runpy.run_path(sys.argv[0], run_name='__main__');"
               "print(f'peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}')")


def run(label: str, python: str, script: Path, args: list[str]) -> dict | None:
    env = dict(os.environ)
    env.setdefault("RCONV_DATA", str(HERE.parent.parent / "shared" / "data"))
    cmd = [python, "-c", RSS_WRAPPER, str(script), *args]
    print(f"running {label}: {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=script.parent)
    if proc.returncode != 0:
        print(f"{label} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    out = proc.stdout
    epochs = re.findall(r"\(([\d.]+) img/s\).*test_acc ([\d.]+) infer ([\d.]+) img/s", out)
    if not epochs:
        print(f"{label}: no epoch line in output:\n{out[-2000:]}", file=sys.stderr)
        return None
    train, acc, infer = (float(v) for v in epochs[-1])
    latency = re.search(r"latency1 ([\d.]+) us", out)
    rss = re.search(r"peak_rss_mb ([\d.]+)", out)
    return {"train": train, "infer": infer, "acc": acc, "latency": float(latency.group(1)) if latency else None,
            "rss": float(rss.group(1)) if rss else None}


def has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--python-torch", default=shutil.which("python3") or sys.executable)
    parser.add_argument("--python-keras", default=shutil.which("python3") or sys.executable)
    args = parser.parse_args()
    common = [str(args.epochs), str(args.batch)]

    results = {"rconv": run("rconv", sys.executable, HERE / "ref_rconv.py", common)}
    if has_module(args.python_torch, "torch"):
        results["pytorch"] = run("pytorch", args.python_torch, SHARED_BENCH / "ref_torch.py", common + ["2"])
    if has_module(args.python_keras, "keras"):
        results["keras"] = run("keras", args.python_keras, SHARED_BENCH / "ref_keras.py", common)

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"
    print(f"\nseed MNIST convnet, batch {args.batch}, {args.epochs} epoch(s), last epoch")
    print(f"{'system':<8} {'train img/s':>11} {'infer img/s':>11} {'batch-1 us':>10} "
          f"{'peak RSS MB':>11} {'test acc':>8}")
    for name, r in results.items():
        if r:
            print(f"{name:<8} {r['train']:11.0f} {r['infer']:11.0f} {fmt(r['latency'], '10.0f')} "
                  f"{fmt(r['rss'], '11.0f')} {r['acc']:8.4f}")
    ours = results.get("rconv")
    refs = {k: v for k, v in results.items() if k != "rconv" and v}
    if ours and refs:
        print("\nratios (rconv / reference; for latency and RSS, reference / rconv; > 1 is better for rconv)")
        for name, r in refs.items():
            parts = [f"train {ours['train'] / r['train']:.2f}x", f"infer {ours['infer'] / r['infer']:.2f}x"]
            if r["latency"] and ours["latency"]:
                parts.append(f"latency {r['latency'] / ours['latency']:.2f}x")
            if r["rss"] and ours["rss"]:
                parts.append(f"RSS {r['rss'] / ours['rss']:.2f}x")
            print(f"  vs {name}: " + ", ".join(parts))


if __name__ == "__main__":
    main()

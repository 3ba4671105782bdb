"""rconv against its peers (PyTorch, Keras 3 with TensorFlow, Keras 3 with JAX) on every workload of the
speed targets, each measurement in its own process with that system's own interpreter, one after another,
systems alternating; prints one table with the ratios.

usage: .venv/bin/python benchmarks/compare.py [--runs N] [--quick] [--only WORKLOAD,...] [--accuracy]
           [--python-torch PY] [--python-tf PY] [--python-jax PY] [--out FILE.md|FILE.json]
Not a test: nothing asserts a timing. Best of --runs per system and metric (TensorFlow's speed is bimodal).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent
SHARED_BENCH = CHECKOUT.parent / "shared" / "bench"
SYSTEMS = ("rconv", "torch", "keras-tf", "keras-jax")
PEERS = SYSTEMS[1:]
# (env var, default interpreter, module that must import, KERAS_BACKEND)
PEER_SETUP = {"torch": ("RCONV_BENCH_TORCH", CHECKOUT.parent / "peers" / "torch" / "bin" / "python", "torch", None),
              "keras-tf": ("RCONV_BENCH_TF", CHECKOUT.parent / "peers" / "tf" / "bin" / "python", "keras",
                           "tensorflow"),
              "keras-jax": ("RCONV_BENCH_JAX", CHECKOUT.parent / "peers" / "jax" / "bin" / "python", "keras", "jax")}
VERSION_PROBE = {"torch": "import torch; print('torch', torch.__version__)",
                 "keras-tf": "import keras, tensorflow as tf; print('keras', keras.__version__, 'tf', tf.__version__)",
                 "keras-jax": "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__)"}

# Steps per measurement: full (a full run of every workload at 3 runs takes ~15 min on 2 cores) and --quick.
SIZES = {"full": {"mnist": 6400, "dogcat4": 12, "seed003": 5, "seed003aug": 5, "flow_fit": 12, "datagen": 15},
         "quick": {"mnist": 1920, "dogcat4": 3, "seed003": 2, "seed003aug": 2, "flow_fit": 3, "datagen": 4}}
WORKLOADS = ("mnist", "dogcat4", "seed003", "seed003aug", "flow_fit", "datagen", "accuracy")
DEFAULT_WORKLOADS = WORKLOADS[:-1]
TITLES = {"mnist": "seed MNIST convnet, batch 64", "dogcat4": "seed 004 model4, 100x100x3, batch 32",
          "seed003": "seed 003 convnet, 180x180x3, batch 32",
          "seed003aug": "seed 003 + RandomFlip/Rotation/Zoom, batch 32",
          "flow_fit": "seed 004 loop: fit on flow_from_directory (JPEG, augmented)",
          "datagen": "flow_from_directory alone, 500x375 JPEG -> 100x100",
          "accuracy": "seed MNIST convnet, 5 epochs (full data)"}
# metric: (label, higher is better, target ratio or absolute, which peers the ratio is against)
METRICS = {"train": ("train img/s", True, 2.0, PEERS), "infer32": ("infer batch 32 img/s", True, 2.0, PEERS),
           "latency_us": ("latency batch 1 us", False, 2.0, PEERS), "peak_rss_mb": ("peak RSS MB", False, 2.0, PEERS),
           "e2e": ("train img/s", True, 2.0, ("keras-tf",)),
           "plain": ("plain img/s", True, 3.0, PEERS), "augmented": ("augmented img/s", True, 3.0, PEERS),
           "test_acc": ("test accuracy", True, 0.990, None)}
ROWS = {"mnist": ("train", "infer32", "latency_us", "peak_rss_mb"),
        "dogcat4": ("train", "infer32", "latency_us", "peak_rss_mb"),
        "seed003": ("train", "infer32", "latency_us", "peak_rss_mb"),
        "seed003aug": ("train", "peak_rss_mb"), "flow_fit": ("e2e", "peak_rss_mb"),
        "datagen": ("plain", "augmented"), "accuracy": ("test_acc",)}


def command(workload: str, system: str, n: int, jpeg_dir: str) -> list[str] | None:
    """Script and arguments measuring `workload` on `system` (None: the system has no such workload)."""
    run, shared = [str(HERE / "bench_run.py")], str(SHARED_BENCH)
    lib = "rconv" if system == "rconv" else "keras"
    if workload == "mnist":
        opts = ["--infer32", "xte", "--latency", "xte", "--mnist-train", str(n)]
        if system == "rconv":
            return run + opts + [str(HERE / "ref_rconv.py"), "2", "64"]
        if system == "torch":
            return run + opts + [f"{shared}/ref_torch.py", "2", "64", "2"]
        return run + opts + [f"{shared}/ref_keras.py", "2", "64"]
    if workload in ("dogcat4", "seed003", "seed003aug"):
        opts = [] if workload == "seed003aug" else ["--infer32", "x", "--latency", "x"]  # inference: as seed003
        if system == "torch":
            return None if workload == "seed003aug" else run + opts + [f"{shared}/images_torch.py", workload,
                                                                        str(n), "32", "2"]
        return run + opts + [f"{shared}/images_keraslike.py", lib, workload, str(n), "32"]
    if system == "torch":  # no flow_from_directory in PyTorch
        return None
    if workload == "flow_fit":
        return [str(HERE / "flow_fit.py"), lib, jpeg_dir, str(n)]
    if workload == "datagen":
        return [f"{shared}/datagen.py", lib, jpeg_dir, str(n)]
    if workload == "accuracy":  # rconv only: the target is absolute
        return [str(HERE / "ref_rconv.py"), "5", "64"] if system == "rconv" else None
    raise ValueError(workload)


def parse(workload: str, out: str, n: int) -> dict:
    """The metrics of one measurement, from the scripts' own lines and bench_run.py's BENCH line."""
    res = {}
    bench = re.search(r"^BENCH (\{.*\})$", out, re.M)
    if bench:
        res.update(json.loads(bench.group(1)))
    if workload == "mnist":  # the last (second) epoch; the first one compiles and warms up
        res["train"] = n / float(re.findall(r"epoch \d+: train ([\d.]+)s", out)[-1])
    elif workload in ("dogcat4", "seed003", "seed003aug", "flow_fit"):
        res["e2e" if workload == "flow_fit" else "train"] = float(re.search(r"train ([\d.]+) img/s", out).group(1))
        if "peak_rss_mb" not in res:
            res["peak_rss_mb"] = float(re.search(r"peak_rss_mb ([\d.]+)", out).group(1))
    elif workload == "datagen":
        for mode in ("plain", "augmented"):
            res[mode] = float(re.search(rf"flow_from_directory {mode}: ([\d.]+) img/s", out).group(1))
    elif workload == "accuracy":
        res["test_acc"] = float(re.findall(r"test_acc ([\d.]+)", out)[-1])
    return res


def interpreters(args) -> dict[str, tuple[str, dict]]:
    """system -> (python, extra environment) for rconv and every peer that imports; prints versions."""
    found = {"rconv": (sys.executable, {})}
    for system in PEERS:
        var, default, module, backend = PEER_SETUP[system]
        python = getattr(args, "python_" + system.split("-")[-1]) or os.environ.get(var) or str(default)
        env = {"KERAS_BACKEND": backend} if backend else {}
        probe = None
        if Path(python).exists():
            probe = subprocess.run([python, "-c", VERSION_PROBE[system]], capture_output=True, text=True,
                                   env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if probe is None or probe.returncode != 0:
            print(f"{system}: not found ({python} cannot import {module}); left out", flush=True)
            continue
        print(f"{system}: {python} ({probe.stdout.strip().splitlines()[-1]})", flush=True)
        found[system] = (python, env)
    return found


def make_jpegs(root: Path, count: int) -> None:
    """`count` photo-like 500x375 JPEGs (smooth colour fields, shapes, sensor noise; ~47 KB each, like the
    dogs-vs-cats photos) in two class folders."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / ("cats", "dogs")[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)).resize((500, 375), Image.BICUBIC)
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x, y, r = int(rng.integers(0, 500)), int(rng.integers(0, 375)), int(rng.integers(10, 80))
            draw.ellipse([x - r, y - r, x + r, y + int(r * 0.7)], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        noisy = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (375, 500, 3)).astype(np.int16)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)


def measure(system: str, python: str, env: dict, cmd: list[str], timeout: float) -> str | None:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    full_env.setdefault("RCONV_DATA", str(CHECKOUT.parent / "shared" / "data"))
    try:
        proc = subprocess.run([python, *cmd], capture_output=True, text=True, env=full_env, cwd=HERE,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  {system}: timed out after {timeout:.0f}s", flush=True)
        return None
    if proc.returncode != 0:
        print(f"  {system} failed:\n{proc.stderr[-1500:]}", flush=True)
        return None
    return proc.stdout


def ratio(metric: str, values: dict) -> float | None:
    """How many times better rconv is than the best peer the target names (> 1: rconv is better)."""
    _, higher, _, against = METRICS[metric]
    ours = values.get("rconv")
    peers = [values[p] for p in (against or ()) if values.get(p) is not None]
    if ours is None or not peers:
        return None
    return ours / max(peers) if higher else min(peers) / ours


def table(results: dict, systems: list[str]) -> tuple[list[str], list[dict]]:
    rows, lines = [], []
    head = ["workload", "metric", *systems, "ratio", "target", "met?"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(systems) + 1) + ["---"] * 2) + "|")
    for workload, metrics in results.items():
        for metric, values in metrics.items():
            label, higher, target, against = METRICS[metric]
            r = ratio(metric, values)
            if against is None:
                ok = values.get("rconv") is not None and values["rconv"] >= target
                target_s, r_s = f">= {target:.3f}", "-"
            else:
                ok = r is not None and r >= target
                target_s = (f">= {target:g}x" if higher else f"<= {1 / target:g}x") + (
                    " keras-tf" if against == ("keras-tf",) else "")
                r_s = "-" if r is None else (f"{r:.2f}x" if higher else f"{1 / r:.2f}x")
            met = "-" if r is None and against is not None else ("yes" if ok else "no")
            digits = ".4f" if metric == "test_acc" else ".0f"
            cells = [format(values[s], digits) if values.get(s) is not None else "-" for s in systems]
            lines.append("| " + " | ".join([TITLES[workload], label, *cells, r_s, target_s, met]) + " |")
            rows.append({"workload": workload, "title": TITLES[workload], "metric": metric, "label": label,
                         "values": values, "ratio_vs_best_peer": r, "target": target_s, "met": met})
    return lines, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="best of N runs per system (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="few steps and one run: checks that everything runs")
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(WORKLOADS))
    parser.add_argument("--accuracy", action="store_true",
                        help="also train rconv 5 epochs on MNIST (~1 min, first run only)")
    parser.add_argument("--python-torch", help="PyTorch interpreter (default $RCONV_BENCH_TORCH, ../peers/torch)")
    parser.add_argument("--python-tf", help="Keras+TensorFlow interpreter (default $RCONV_BENCH_TF, ../peers/tf)")
    parser.add_argument("--python-jax", help="Keras+JAX interpreter (default $RCONV_BENCH_JAX, ../peers/jax)")
    parser.add_argument("--out", help="also write the table: FILE.json (with every run's numbers) or markdown")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per measurement")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    sizes = SIZES["quick" if args.quick else "full"]
    workloads = args.only.split(",") if args.only else list(DEFAULT_WORKLOADS) + (["accuracy"] if args.accuracy else [])
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = os.getloadavg()
    header = [f"CPU: {cpu}, {os.cpu_count()} logical cores; load average at start {load[0]:.2f} {load[1]:.2f} "
              f"{load[2]:.2f}", f"rconv: {sys.executable}"]
    print(header[0], flush=True)
    found = interpreters(args)
    systems = [s for s in SYSTEMS if s in found]
    header += [f"{s}: {found[s][0]}" for s in systems[1:]]

    started = time.perf_counter()
    raw: dict = {w: {s: [] for s in systems} for w in workloads}
    with tempfile.TemporaryDirectory(prefix="rconv-bench-jpeg-") as jpeg_dir:
        if {"flow_fit", "datagen"} & set(workloads):
            make_jpegs(Path(jpeg_dir), 320)
        for run in range(runs):
            order = systems[run % len(systems):] + systems[:run % len(systems)]  # rotate who goes first
            for workload in workloads:
                if workload == "accuracy" and run > 0:  # deterministic: one run is enough
                    continue
                n = sizes.get(workload, 0)
                for system in order:
                    cmd = command(workload, system, n, jpeg_dir)
                    if cmd is None:
                        continue
                    print(f"run {run + 1}/{runs} {workload} {system} ...", end=" ", flush=True)
                    t = time.perf_counter()
                    out = measure(system, *found[system], cmd, args.timeout)
                    if out is None:
                        continue
                    try:
                        res = parse(workload, out, n)
                    except (AttributeError, IndexError, ValueError) as exc:
                        print(f"unreadable output ({exc}):\n{out[-1500:]}", flush=True)
                        continue
                    raw[workload][system].append(res)
                    print(f"{time.perf_counter() - t:.0f}s " + ", ".join(f"{k} {v:.4g}" for k, v in res.items()),
                          flush=True)
    elapsed = time.perf_counter() - started

    results = {}
    for workload in workloads:
        results[workload] = {}
        for metric in ROWS[workload]:
            higher = METRICS[metric][1]
            best = {}
            for system in systems:
                vals = [r[metric] for r in raw[workload][system] if r.get(metric) is not None]
                if vals:
                    best[system] = max(vals) if higher else min(vals)
            if best:
                results[workload][metric] = best
    lines, rows = table(results, systems)
    load = os.getloadavg()
    footer = [f"best of {runs} run(s) per system; {elapsed / 60:.1f} min; load average at end {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f}",
              "ratio: rconv against the best peer the target names (speed: rconv / fastest, latency and RSS: "
              "rconv / smallest); peak RSS includes each script's own input arrays"]
    print("\n" + "\n".join(header + [""] + lines + [""] + footer))
    if args.out:
        if args.out.endswith(".json"):
            text = json.dumps({"header": header, "footer": footer, "rows": rows, "runs": raw}, indent=1)
        else:
            text = "\n".join([*header, "", *lines, "", *footer]) + "\n"
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

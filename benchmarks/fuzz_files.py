"""The long local fuzz run over model files (issue 12): `python benchmarks/fuzz_files.py [N]`.

Runs N seeded mutation cases (default 5000; tests/fuzz/ explains the mutations) through
`rconv.models.load_model` / `model.load_weights`, each in a worker process with a timeout and a 2 GiB address
space limit, and prints the counts by outcome and every failure class (outcome / exception / mutation kind)
with its first case. `--repro-dir DIR` copies the smallest reproducer of each class there (+ index.json);
`--cases 17,42` reruns single cases (same workdir layout, so external references resolve again).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz import harness, minimize  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=5000, help="number of cases (0..N-1)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (cases are reproducible by (seed, number))")
    ap.add_argument("--start", type=int, default=0, help="first case number")
    ap.add_argument("--cases", default="", help="comma-separated case numbers instead of a range")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per load before it counts as a hang")
    ap.add_argument("--mem-limit-mb", type=int, default=2048, help="RLIMIT_AS of the workers")
    ap.add_argument("--rss-bound-mb", type=int, default=1024, help="peak RSS of a load above this is a failure")
    ap.add_argument("--bomb-mb", type=int, default=3072, help="inflated size of the zip-bomb weights entry")
    ap.add_argument("--workdir", default="", help="where seeds and cases go (default: a new temp dir)")
    ap.add_argument("--repro-dir", default="", help="copy the smallest reproducer of each failure class here")
    ap.add_argument("--by-kind", action="store_true", help="print outcome counts per mutation kind")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failing case as it happens")
    args = ap.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="rconv_fuzz_")
    cfg = harness.Config(workdir=workdir, base_seed=args.seed, jobs=args.jobs, timeout=args.timeout,
                         mem_limit=args.mem_limit_mb << 20, rss_bound=args.rss_bound_mb << 20,
                         bomb_bytes=args.bomb_mb << 20)
    numbers = [int(x) for x in args.cases.split(",") if x] or range(args.start, args.start + args.n)
    total = len(numbers)
    start = time.perf_counter()

    def progress(res, done):
        if args.verbose and res.failed:
            print(res.line(), flush=True)
        if done % 500 == 0 or done == total:
            print(f"[{done}/{total}] {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    results = harness.run(cfg, numbers, progress=progress)
    elapsed = time.perf_counter() - start
    counts = harness.counts(results)
    print(f"{len(results)} cases (seed {args.seed}) in {elapsed:.0f} s, workdir {workdir}")
    for outcome in harness.OUTCOMES:
        if counts.get(outcome) or outcome in harness.PASSING:
            print(f"  {outcome:16s} {counts.get(outcome, 0)}")
    slow = sorted(results, key=lambda r: -r.seconds)[:3]
    peak = max(results, key=lambda r: r.peak_rss)
    print(f"slowest loads: {', '.join(f'case {r.case} {r.seconds:.2f} s' for r in slow)}; "
          f"highest peak RSS: case {peak.case} {peak.peak_rss >> 20} MiB")
    if args.by_kind:
        print("by mutation kind (cases, ok, expected, failed):")
        for kind, row in sorted(harness.by_kind(results).items()):
            print(f"  {kind:32s} {sum(row.values()):5d} {row['ok']:5d} {row['expected']:5d} "
                  f"{sum(v for k, v in row.items() if k not in harness.PASSING):5d}")
    classes = harness.failure_classes(results)
    if classes:
        print("failure classes (count, class, first case):")
        for cls, rs in classes.items():
            print(f"  {len(rs):5d} {cls}\n        {rs[0].line()[:400]}")
    if args.repro_dir:
        index = harness.save_repros(results, args.repro_dir)
        quick = dataclasses.replace(cfg, timeout=min(cfg.timeout, 4.0))  # each shrinking trial is a run
        for entry in index:  # byte mutations: shrink to the fewest changed bytes that fail the same way
            first = classes[entry["class"]][0]
            shrunk = minimize.minimize_bytes(quick, first) if entry["file"] else None
            if shrunk:
                data, positions = shrunk
                name = entry["file"].replace(f"_case{first.case}", f"_case{first.case}_min")
                (Path(args.repro_dir) / name).write_bytes(data)
                entry.update(min_file=name, changed_bytes=positions)
        (Path(args.repro_dir) / "index.json").write_text(json.dumps(index, indent=1))
        print(f"reproducers in {args.repro_dir}")
    sys.exit(1 if classes else 0)


if __name__ == "__main__":
    main()

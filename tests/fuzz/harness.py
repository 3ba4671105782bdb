"""Runs fuzz cases over restartable worker processes and classifies the outcomes.

Each worker (run_case.py) takes one case at a time; the parent enforces the per-case timeout (the worker is
killed and restarted on a hang) and turns a dead worker into a `crash` outcome for the case it was loading
(restarting it for the next case). Outcomes `ok` and `expected` pass; every other outcome is a failure.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from . import seeds

TESTS_DIR = Path(__file__).resolve().parent.parent
PASSING = ("ok", "expected")
OUTCOMES = ("ok", "expected", "wrong_exception", "panic", "crash", "timeout", "memory", "foreign_read",
            "partial_load", "worker_error", "gen_error", "gen_timeout")


@dataclass
class Result:
    case: int
    outcome: str
    seed: str = ""
    op: str = ""
    desc: str = ""
    path: str = ""
    exc: str = ""
    msg: str = ""
    where: str = ""
    seconds: float = 0.0
    peak_rss: int = 0

    @property
    def failed(self) -> bool:
        return self.outcome not in PASSING

    @property
    def kind(self) -> str:
        return self.desc.split(":", 1)[0]

    @property
    def failure_class(self) -> str:
        """What groups failures in reports: outcome, exception type and mutation kind."""
        return "/".join(x for x in (self.outcome, self.exc, self.kind) if x)

    def line(self) -> str:
        extra = f" {self.exc}: {self.msg[:160]}" if self.exc or self.msg else ""
        where = f" [{self.where}]" if self.where else ""
        return f"case {self.case} {self.outcome} {self.op}({self.seed}) {self.desc}{extra}{where}"


@dataclass
class Config:
    workdir: str
    base_seed: int = 0
    jobs: int = 2
    timeout: float = 10.0
    gen_timeout: float = 120.0
    mem_limit: int = 2 << 30
    rss_bound: int = 1 << 30
    bomb_bytes: int = 3 << 30


class _Worker:
    def __init__(self, cfg: Config, ctx_path: str, index: int):
        self.index = index
        self.log_path = Path(cfg.workdir) / "logs" / f"worker{index}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
                   MALLOC_ARENA_MAX="2", PYTHONFAULTHANDLER="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fuzz.run_case", ctx_path, str(cfg.base_seed), str(cfg.mem_limit),
             str(cfg.rss_bound)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
            cwd=str(TESTS_DIR))
        log.close()
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.case = None
        self.started = None   # the "start" event of the current case
        self.deadline = 0.0
        self.log_offset = 0

    def assign(self, item, cfg: Config) -> None:
        """`item`: a case number, or a dict naming a file (case, path, seed, op, desc)."""
        self.case, self.started = item if isinstance(item, int) else item["case"], None
        self.deadline = time.monotonic() + cfg.gen_timeout
        self.log_offset = self.log_path.stat().st_size
        self.proc.stdin.write((json.dumps(item) + "\n").encode())
        self.proc.stdin.flush()

    def lines(self):
        """Complete lines available now; raises EOFError when the worker is gone."""
        chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not chunk:
            raise EOFError
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in done if x.strip()]

    def stderr_tail(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            text = f.read()[-4000:].decode("utf-8", "replace")
        keep = [x for x in text.splitlines() if x.strip() and not x.startswith("  ")]
        return " | ".join(keep[-3:])[:300]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def _dead_result(worker: _Worker, outcome: str, cfg: Config) -> Result:
    start = worker.started or {}
    res = Result(worker.case, outcome, start.get("seed", ""), start.get("op", ""), start.get("desc", "(generating)"),
                 start.get("path", ""))
    if outcome == "timeout":
        res.msg = f"no result within {cfg.timeout:g} s"
    else:
        code = worker.proc.returncode
        res.exc = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
        res.msg = worker.stderr_tail()
    return res


def run(cfg: Config, numbers, progress=None) -> list:
    """Run the given case numbers (or file dicts, see _Worker.assign); returns Results in case order.
    Prepares `cfg.workdir` if needed."""
    ctx_path = Path(cfg.workdir) / "context.json"
    if not ctx_path.exists():
        seeds.prepare(cfg.workdir, bomb_bytes=cfg.bomb_bytes)
    todo = list(numbers)[::-1]
    results = []
    sel = selectors.DefaultSelector()
    workers = []

    def start_worker(index):
        w = _Worker(cfg, str(ctx_path), index)
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
        return w

    def next_case(w):
        if todo:
            w.assign(todo.pop(), cfg)
        else:
            w.case = None

    def replace(w):
        sel.unregister(w.proc.stdout)
        w.stop()
        new = start_worker(w.index)
        workers[workers.index(w)] = new
        next_case(new)

    def record(res):
        results.append(res)
        if progress:
            progress(res, len(results))

    for i in range(max(1, cfg.jobs)):
        workers.append(start_worker(i))
        next_case(workers[-1])
    try:
        while any(w.case is not None for w in workers):
            busy = [w for w in workers if w.case is not None]
            wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            for key, _ in sel.select(timeout=wait):
                w = key.data
                if w not in workers or w.case is None:
                    continue
                try:
                    events = w.lines()
                except EOFError:
                    w.proc.wait()
                    record(_dead_result(w, "crash", cfg))
                    replace(w)
                    continue
                for ev in events:
                    if ev["event"] == "start":
                        w.started, w.deadline = ev, time.monotonic() + cfg.timeout
                    elif ev["event"] == "gen_error":
                        record(Result(ev["case"], "gen_error", msg=ev["msg"]))
                        next_case(w)
                    else:
                        s = w.started or {}
                        record(Result(ev["case"], ev["outcome"], s.get("seed", ""), s.get("op", ""),
                                      s.get("desc", ""), s.get("path", ""), ev.get("exc", ""), ev.get("msg", ""),
                                      ev.get("where", ""), ev.get("seconds", 0.0), ev.get("peak_rss", 0)))
                        next_case(w)
            now = time.monotonic()
            for w in list(workers):
                if w.case is not None and now > w.deadline:
                    record(_dead_result(w, "timeout" if w.started else "gen_timeout", cfg))
                    replace(w)
    finally:
        for w in workers:
            w.stop()
        sel.close()
    return sorted(results, key=lambda r: r.case)


def counts(results) -> Counter:
    return Counter(r.outcome for r in results)


def by_kind(results) -> dict:
    """mutation kind -> Counter of outcomes."""
    table: dict = {}
    for r in results:
        table.setdefault(r.kind or "(none)", Counter())[r.outcome] += 1
    return table


def failure_classes(results) -> dict:
    """failure class -> list of failing Results (smallest reproducer file first)."""
    classes: dict = {}
    for r in results:
        if r.failed:
            classes.setdefault(r.failure_class, []).append(r)
    for rs in classes.values():
        rs.sort(key=lambda r: (os.path.getsize(r.path) if r.path and os.path.exists(r.path) else 1 << 60, r.case))
    return dict(sorted(classes.items(), key=lambda kv: -len(kv[1])))


def save_repros(results, repro_dir) -> list:
    """Copy the smallest reproducer of every failure class to `repro_dir` (+ index.json); returns the index."""
    repro_dir = Path(repro_dir)
    repro_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for cls, rs in failure_classes(results).items():
        r = rs[0]
        entry = {"class": cls, "count": len(rs), "case": r.case, "seed": r.seed, "op": r.op, "desc": r.desc,
                 "exc": r.exc, "msg": r.msg, "where": r.where, "file": ""}
        if r.path and os.path.isfile(r.path) and not os.path.islink(r.path):
            suffix = ".weights.h5" if r.path.endswith(".weights.h5") else Path(r.path).suffix
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in cls)[:90] + f"_case{r.case}{suffix}"
            shutil.copyfile(r.path, repro_dir / name)
            entry["file"] = name
        index.append(entry)
    (repro_dir / "index.json").write_text(json.dumps(index, indent=1))
    return index

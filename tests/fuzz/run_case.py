"""The fuzz worker: `python -m fuzz.run_case <context.json> <base_seed> <mem_limit_bytes> <rss_bound_bytes>`.

Reads case numbers on stdin, one a line (or a JSON object naming a file to load, see main); for each, makes
the mutated file, then loads it the case's way (`rconv.models.load_model(path)` or `model.load_weights(path)`
into a fresh model of the seed) and writes
JSON lines to its original stdout: `{"event": "start", ...}` before the load (so the parent knows which case
a crash or hang belongs to) and `{"event": "done", "outcome": ...}` after it. Library output goes to stderr.

Outcomes decided here: ok, expected (ValueError/OSError), wrong_exception, panic (pyo3 PanicException),
memory (MemoryError, or peak RSS of the load above the bound), foreign_read (sentinel values in a loaded
weight or optimizer variable), partial_load (a failed load_weights changed the model). The parent adds
crash (the worker died) and timeout; worker_error means the harness itself failed outside the load (e.g. the
clean seed model did not load).
"""
from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
import traceback

EXPECTED = (ValueError, OSError)
# Self-test hooks for the harness's own tests: "abort:3,hang:4,raise:5,memory:6,foreign:7,partial:8" makes
# those case numbers misbehave on purpose instead of (abort/hang/raise/memory) or after (foreign) the load.
SELFTEST = {int(n): action for action, n in (item.split(":") for item in
                                             os.environ.get("RCONV_FUZZ_SELFTEST", "").split(",") if item)}


def _selftest(action: str, rss_bound: int):
    if action == "abort":
        os.abort()
    if action == "hang":
        time.sleep(3600)
    if action == "raise":
        raise KeyError("selftest")
    if action == "memory":
        return b"\x01" * (rss_bound + (64 << 20))
    if action == "partial":
        raise ValueError("selftest: fails after changing weights")
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _state(model) -> list:
    """Copies of every weight and optimizer variable (what a failed load must leave untouched)."""
    import numpy as np
    opt = getattr(model, "optimizer", None)
    variables = list(model.weights) + list(getattr(opt, "variables", None) or [])
    return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in variables]


def _shift(model) -> None:
    """Move every weight and optimizer variable off the seed file's values (which the target model was loaded
    from), so that a load which assigns anything before failing is visible as a change."""
    import numpy as np
    for v in model.weights:
        v.assign(v.numpy() + 0.5)
    opt = getattr(model, "optimizer", None)
    for v in list(getattr(opt, "variables", None) or []):
        if hasattr(v, "assign"):
            v.assign(np.asarray(v.numpy()) + 1)
        elif isinstance(v, np.ndarray) and v.flags.writeable:
            v += 1


def _same(a, b) -> bool:
    import numpy as np
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True)
                                    for x, y in zip(a, b))


def _where(exc) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "rconv" in f.filename] or frames
    if not ours:
        return ""
    f = ours[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} {f.name}"


def run(case, model_sources: dict, rss_bound: int) -> dict:
    import rconv
    from .seeds import contains_sentinel, sentinel_values
    model = None
    if case.op == "load_weights":
        model = rconv.models.load_model(model_sources[case.seed])
        _shift(model)
        before = _state(model)
    gc.collect()
    _reset_peak()
    start = time.perf_counter()
    result = {"outcome": "ok"}
    error = None
    action = SELFTEST.get(case.number, "")
    path = model_sources[case.seed] if action else case.path  # self-tests load a clean file
    try:
        if action == "partial":
            model.weights[0].assign(model.weights[0].numpy() + 1)
        ballast = _selftest(action, rss_bound)
        if case.op == "load_model":
            model = rconv.models.load_model(path)
        else:
            model.load_weights(path)
        if action == "foreign":
            model.weights[-1].assign(sentinel_values(model.weights[-1].numpy().size, "f4").reshape(
                model.weights[-1].shape))
        del ballast
    except EXPECTED as exc:
        error, result = exc, {"outcome": "expected"}
    except MemoryError as exc:
        error, result = exc, {"outcome": "memory"}
    except BaseException as exc:  # noqa: B036 - PanicException derives from BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        error = exc
        result = {"outcome": "panic" if type(exc).__name__ == "PanicException" else "wrong_exception"}
    if error is not None:
        result.update(exc=type(error).__name__, msg=str(error)[:300], where=_where(error))
        del error
    result["seconds"] = round(time.perf_counter() - start, 4)
    result["peak_rss"] = _peak_rss()
    if result["outcome"] == "ok" and model is not None:
        arrays = _state(model)
        if any(contains_sentinel(a) for a in arrays):
            result["outcome"] = "foreign_read"
    if case.op == "load_weights" and result["outcome"] == "expected" and not _same(before, _state(model)):
        result["outcome"] = "partial_load"
    if result["outcome"] in ("ok", "expected") and result["peak_rss"] > rss_bound:
        result["outcome"] = "memory"
        result["where"] = f"peak RSS {result['peak_rss'] >> 20} MiB"
    return result


def main(argv) -> None:
    ctx_path, base_seed, mem_limit, rss_bound = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    with open(ctx_path) as f:
        ctx = json.load(f)
    if mem_limit:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    from .mutate import make_case
    model_sources = {s["name"]: os.path.join(ctx["workdir"], "seeds", s["model_source"]) for s in ctx["seeds"]}
    import rconv  # noqa: F401 - imported before the first case, so its cost is not a case's
    from .mutate import Case
    for line in sys.stdin:
        item = json.loads(line)
        number = item if isinstance(item, int) else item["case"]
        try:  # a case number, or a given file: {"case", "path", "seed", "op", "desc"}
            case = make_case(number, ctx, base_seed) if isinstance(item, int) else Case(**item)
        except Exception as exc:  # a generator bug, not a loader finding
            out.write(json.dumps({"case": number, "event": "gen_error", "msg": repr(exc)[:300]}) + "\n")
            continue
        out.write(json.dumps({"case": number, "event": "start", "seed": case.seed, "op": case.op,
                              "desc": case.desc, "path": case.path}) + "\n")
        try:
            result = run(case, model_sources, rss_bound)
        except Exception as exc:  # outside the load itself, e.g. the clean seed model no longer loads
            result = {"outcome": "worker_error", "exc": type(exc).__name__, "where": _where(exc),
                      "msg": "".join(traceback.format_exception_only(type(exc), exc))[-300:]}
        if result["outcome"] in ("ok", "expected") and isinstance(item, int):
            os.unlink(case.path)
        out.write(json.dumps({"case": number, "event": "done", **result}) + "\n")


if __name__ == "__main__":
    main(sys.argv)

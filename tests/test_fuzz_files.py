"""Seeded mutation fuzzing of model files (issue 12): hostile `.keras`/`.h5`/`.weights.h5` files never crash,
hang, blow up memory, read another file, change a model on a failed load, or raise outside ValueError/OSError.

A few hundred cases from tests/fuzz/ (byte, zip, JSON-config and h5py-level mutations of the committed
fixtures and of rconv-saved models), each loaded in a worker process with a timeout and a 2 GiB address space
limit. `benchmarks/fuzz_files.py` runs the same cases, more of them (`python benchmarks/fuzz_files.py 300`
reproduces this test's run; `--cases N` reruns one).
"""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from fuzz import harness, mutate, seeds

N_CASES = 300
BASE_SEED = 0
# Cases that still fail, with the reason (case number -> reason). Listed cases may pass; new failures may not.
_LIBHDF5_HEAP = ("memory: a few bytes of corrupt group metadata (symbol-table/local-heap sizes) make libhdf5 "
                 "itself allocate until the address-space limit while h5py iterates the group's links (HDF5 "
                 "2.0.0); it then fails cleanly with OSError/ValueError, but the peak RSS is ~1.9 GB. rconv's "
                 "scan cannot see these sizes through h5py; see /work/notes/fuzz_report.md")
KNOWN_FAILURES: dict = {201: _LIBHDF5_HEAP}


def _config(workdir, **kw) -> harness.Config:
    # 1.5 GiB zip bomb: above the 1 GiB RSS bound, cheap enough (~2 s) to make for CI.
    settings = {"base_seed": BASE_SEED, "jobs": 2, "timeout": 8.0, "bomb_bytes": 3 << 29, **kw}
    return harness.Config(workdir=str(workdir), **settings)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz")
    seeds.prepare(path, bomb_bytes=3 << 29)
    return path


@pytest.fixture(scope="module")
def results(workdir):
    return harness.run(_config(workdir), range(N_CASES))


def test_fuzzed_files_fail_cleanly(results):
    assert len(results) == N_CASES
    new = [r for r in results if r.failed and r.case not in KNOWN_FAILURES]
    assert not new, f"{len(new)} of {N_CASES} fuzz cases failed:\n" + "\n".join(r.line() for r in new)


def test_fuzz_cases_cover_the_mutation_families(results):
    kinds = {r.kind.split("_", 1)[0] + "_" + r.kind.split("_", 2)[1] for r in results if "_" in r.kind}
    for family in ("keras_json", "keras_h5", "keras_bytes", "keras_zip", "h5_bytes", "h5_external", "h5_extlink",
                   "h5_softlink", "h5_huge", "h5_attr", "h5_dtype", "h5_shape"):
        assert family in kinds, (family, sorted(kinds))
    outcomes = harness.counts(results)
    # Mutations that leave a file loadable exist, and most mutations are refused.
    assert outcomes["ok"] >= 10 and outcomes["expected"] >= N_CASES // 3, outcomes
    assert {r.op for r in results} == {"load_model", "load_weights"}


def test_make_case_is_deterministic(workdir):
    ctx = json.loads((workdir / "context.json").read_text())
    for number in (3, 17, 101, 250):
        first = mutate.make_case(number, ctx, BASE_SEED)
        os.replace(first.path, first.path + ".first")
        second = mutate.make_case(number, ctx, BASE_SEED)
        assert (first.desc, first.op, first.seed) == (second.desc, second.op, second.seed)
        with open(first.path + ".first", "rb") as a, open(second.path, "rb") as b:
            assert a.read() == b.read(), number


def test_harness_classifies_every_failure_kind(workdir, monkeypatch):
    """Crash, hang, wrong exception, memory, foreign read and partial load are each caught (and the worker
    restarted after a crash or a hang, so the following case still runs)."""
    # Case numbers are chosen so that case % 15 is a weights-only seed (op load_weights) for "partial".
    plan = {0: "abort", 1: "hang", 2: "raise", 3: "memory", 5: "foreign", 4: "partial"}
    monkeypatch.setenv("RCONV_FUZZ_SELFTEST", ",".join(f"{a}:{n}" for n, a in plan.items()))
    cfg = _config(workdir, timeout=3.0, rss_bound=400 << 20)
    got = {r.case: r for r in harness.run(cfg, [0, 1, 2, 3, 4, 5, 15])}
    assert got[0].outcome == "crash" and got[0].exc == "signal SIGABRT", got[0].line()
    assert got[1].outcome == "timeout", got[1].line()
    assert got[2].outcome == "wrong_exception" and got[2].exc == "KeyError", got[2].line()
    assert got[3].outcome == "memory" and got[3].peak_rss > 400 << 20, got[3].line()
    assert got[4].outcome == "partial_load", got[4].line()
    assert got[5].outcome == "foreign_read", got[5].line()
    assert not got[15].failed, got[15].line()  # case 15 = case 0's seed, in a restarted worker


def test_sentinel_detection():
    assert seeds.contains_sentinel(seeds.sentinel_values(12, "f4").reshape(3, 4))
    assert seeds.contains_sentinel(seeds.sentinel_values(1, "i8"))
    rng = np.random.default_rng(0)
    assert not seeds.contains_sentinel(rng.standard_normal((50, 50)).astype("f4") * 1e5)
    assert not seeds.contains_sentinel(np.full(10, 31336.0))


def test_json_mutations_stay_json_or_deeply_nested():
    text = '{"class_name": "Dense", "config": {"units": 3, "name": "d", "kernel_size": [3, 3]}}'
    rng = random.Random(0)
    for _ in range(50):
        out, desc = mutate.mutate_json_text(text, rng)
        assert isinstance(out, str) and ":" in desc

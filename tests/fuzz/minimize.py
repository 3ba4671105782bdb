"""Shrinks a failing byte-mutation case to the fewest changed bytes that still fail the same way (ddmin over
the positions where the case differs from its seed). Structured mutations are one change already; for them
the reproducer kept is the smallest failing file of the class (harness.save_repros)."""
from __future__ import annotations

from pathlib import Path

from . import harness


def _same_failure(a: harness.Result, b: harness.Result) -> bool:
    return (a.outcome, a.exc) == (b.outcome, b.exc)


def minimize_bytes(cfg: harness.Config, failing: harness.Result, max_trials: int = 40):
    """Returns (minimized bytes, changed positions) or None when the case is not a same-length byte edit."""
    mutated = Path(failing.path).read_bytes()
    original = (Path(cfg.workdir) / "seeds" / failing.seed).read_bytes()
    if len(mutated) != len(original) or "bytes" not in failing.kind:
        return None
    diffs = [i for i in range(len(mutated)) if mutated[i] != original[i]]
    probe = Path(failing.path).with_name(f"min_{failing.case}{Path(failing.path).suffix}")
    if failing.path.endswith(".weights.h5"):
        probe = probe.with_name(f"min_{failing.case}.weights.h5")
    trials = 0

    def build(keep):
        data = bytearray(original)
        for i in keep:
            data[i] = mutated[i]
        return bytes(data)

    def fails(keep) -> bool:
        nonlocal trials
        trials += 1
        probe.write_bytes(build(keep))
        item = {"case": -1, "path": str(probe), "seed": failing.seed, "op": failing.op, "desc": failing.desc}
        return _same_failure(harness.run(cfg, [item])[0], failing)

    keep, n = diffs, 2
    while len(keep) > 1 and trials < max_trials:
        size = max(1, len(keep) // n)
        chunks = [keep[i:i + size] for i in range(0, len(keep), size)]
        reduced = False
        for chunk in chunks:
            rest = [i for i in keep if i not in chunk]
            if trials < max_trials and rest and fails(rest):
                keep, n, reduced = rest, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(keep):
                break
            n = min(len(keep), n * 2)
    probe.unlink(missing_ok=True)
    return build(keep), keep

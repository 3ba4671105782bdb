"""Run a script under several RCONV_NUM_THREADS settings (the thread pool is sized once per process,
so each count needs its own interpreter) and collect the arrays it saved."""
from __future__ import annotations

import os
import subprocess
import sys


def arrays_per_thread_count(script: str, tmp_path, counts=("1", "3")) -> list:
    """`script` gets an .npz path as argv[1] and saves arrays with np.savez(path, *arrays); returns
    one list of those arrays, in order, per thread count."""
    import numpy as np
    results = []
    for threads in counts:
        path = tmp_path / f"t{threads}.npz"
        env = dict(os.environ, RCONV_NUM_THREADS=threads)
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env, timeout=120)
        with np.load(path) as f:
            results.append([f[key] for key in sorted(f.files, key=lambda s: int(s.split("_")[1]))])
    return results

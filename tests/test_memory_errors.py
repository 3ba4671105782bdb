"""Outputs and scratch buffers too large to allocate raise MemoryError naming the op and the shape.

They used to abort the process (``memory allocation of 40000000000 bytes failed``, exit 134). Each case
runs in a subprocess whose address space is capped (``RLIMIT_AS``: what the process already maps plus
1 GiB), so every case fails the allocation on any machine and a regression cannot take the machine
down; the subprocess then checks that the library still computes correctly.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import resource, sys
import numpy as np
import rconv
from rconv import layers, ops

def f32(*shape):
    return np.zeros(shape, np.float32)

T = np.array([[1, 0, 0, 0, 1, 0, 0, 0]], np.float32)
ops.conv2d(np.ones((4, 32, 32, 8), np.float32), np.ones((3, 3, 8, 16), np.float32))  # start the thread pool
mapped = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    CASE
except BaseException as e:
    print("RAISED", type(e).__name__, e)
else:
    print("RETURNED")
# The process is still fine: the pool, the allocator and the kernels work.
y = ops.conv2d(np.ones((2, 5, 5, 2), np.float32), np.ones((3, 3, 2, 3), np.float32))
assert y.shape == (2, 3, 3, 3) and np.all(y == 18.0), y
print("STILL-OK")
"""

# (case id, statement, op named in the message, shape named in the message)
CASES = [
    ("dense", "ops.dense(f32(20000, 1), f32(1, 100000))", "dense", "[20000, 100000]"),
    ("conv2d", "ops.conv2d(f32(1, 100, 100, 1), f32(1, 1, 1, 1_000_000))", "conv2d", "[1, 100, 100, 1000000]"),
    ("conv2d_im2col_scratch", "ops.conv2d(f32(1, 1000, 1000, 1), f32(1000, 1000, 1, 1), padding='same')",
     "conv2d", "im2col scratch"),
    ("conv2d_relu_max_pool", "ops.conv2d_relu_max_pool(f32(100, 100, 100, 1), f32(1, 1, 1, 40_000), winners=True)",
     "conv2d_relu_max_pool", "[100, 50, 50, 40000]"),
    ("affine_transform", "ops.affine_transform(f32(1, 4, 4, 1), T, output_shape=(100000, 100000))",
     "affine_transform", "[1, 100000, 100000, 1]"),
    ("affine_transform_backward",
     "ops.affine_transform_backward(f32(1, 4, 4, 1), T, image_shape=(100000, 100000))",
     "affine_transform_backward", "[1, 100000, 100000, 1]"),
    ("model_predict",
     "rconv.Sequential([layers.Input((100, 100, 1)), layers.Conv2D(1_000_000, 1)])"
     ".predict(f32(1, 100, 100, 1), verbose=0)",
     "conv2d", "[1, 100, 100, 1000000]"),
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("statement, op, shape", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_huge_allocation_is_a_memory_error(statement, op, shape):
    script = textwrap.dedent(PRELUDE).replace("CASE", statement)
    env = {**os.environ, "RCONV_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-2000:]}"
    lines = proc.stdout.splitlines()
    raised = next((line for line in lines if line.startswith(("RAISED", "RETURNED"))), "")
    assert raised.startswith("RAISED MemoryError"), proc.stdout + proc.stderr[-2000:]
    assert f"{op}:" in raised and shape in raised, raised
    assert "STILL-OK" in lines, proc.stdout + proc.stderr[-2000:]

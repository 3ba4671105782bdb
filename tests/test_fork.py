"""Forked processes get working kernel threads.

rayon's global pool does not survive ``fork``: its threads exist only in the parent, so a child's first
parallel kernel used to wait forever (``m.predict`` in the parent, then a ``multiprocessing`` fork pool
calling ``m.predict``; with RCONV_NUM_THREADS set the pool starts at import, so any fork deadlocked).
Each scenario runs in a subprocess with a timeout, so a deadlock fails the test instead of hanging CI.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

MODEL = """
import multiprocessing as mp
import os
import numpy as np
import rconv
from rconv import _rconv, layers

model = rconv.Sequential([
    layers.Input((12, 12, 3)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Flatten(), layers.Dense(5, activation="softmax"),
])
x = np.random.default_rng(0).standard_normal((64, 12, 12, 3)).astype(np.float32)

def predict(_):
    return model.predict(x, verbose=0), _rconv.num_threads()

expected, threads = predict(None)  # the parent's pool is running before the fork
"""

POOL = MODEL + """
with mp.get_context("fork").Pool(2) as pool:
    results = pool.map(predict, range(4))
for y, child_threads in results:
    np.testing.assert_array_equal(y, expected)
    assert child_threads == threads, (child_threads, threads)
print("OK", threads)
"""

NESTED = MODEL + """
def grandchild():
    pid = os.fork()
    if pid == 0:
        y, _ = predict(None)
        os._exit(0 if np.array_equal(y, expected) else 3)
    return os.waitpid(pid, 0)[1]

pid = os.fork()
if pid == 0:
    y, _ = predict(None)
    status = grandchild()
    y2, _ = predict(None)  # the child's own pool still works after forking again
    os._exit(0 if status == 0 and np.array_equal(y, expected) and np.array_equal(y2, expected) else 4)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
np.testing.assert_array_equal(predict(None)[0], expected)  # and the parent's pool too
print("OK", threads)
"""

AUGMENT = """
import multiprocessing as mp
import numpy as np
from rconv.preprocessing.image import ImageDataGenerator

images = np.random.default_rng(0).uniform(0, 1, (16, 20, 20, 3)).astype(np.float32)
gen = ImageDataGenerator(rotation_range=30, zoom_range=0.2, width_shift_range=0.1, horizontal_flip=True)

def first_batch(_):
    return next(iter(gen.flow(images, batch_size=16, shuffle=False, seed=1)))

expected = first_batch(None)  # the affine kernels ran in the parent before the fork
with mp.get_context("fork").Pool(2) as pool:
    for batch in pool.map(first_batch, range(3)):
        np.testing.assert_array_equal(batch, expected)
print("OK")
"""


def run(script: str, threads: str | None) -> str:
    env = dict(os.environ)
    env.pop("RCONV_NUM_THREADS", None)
    if threads is not None:
        env["RCONV_NUM_THREADS"] = threads
    try:
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                              timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("deadlock: the forked process did not finish within 120 s")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.parametrize("threads", [None, "2"], ids=["default-pool", "RCONV_NUM_THREADS=2"])
def test_predict_in_a_fork_pool_after_predict_in_the_parent(threads):
    out = run(POOL, threads)
    assert "OK" in out
    if threads is not None:
        assert "OK 2" in out  # the child's pool has the configured size


@pytest.mark.parametrize("threads", [None, "2"], ids=["default-pool", "RCONV_NUM_THREADS=2"])
def test_fork_of_a_fork(threads):
    assert "OK" in run(NESTED, threads)


@pytest.mark.parametrize("threads", [None, "2"], ids=["default-pool", "RCONV_NUM_THREADS=2"])
def test_image_augmentation_in_fork_workers(threads):
    assert "OK" in run(AUGMENT, threads)

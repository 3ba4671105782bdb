"""The kernels flush subnormal floats to zero (as TensorFlow's CPU threads do) on every kernel thread, and
leave the calling thread's own mode alone; RCONV_FLUSH_DENORMALS=0 keeps IEEE subnormals."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from rconv import _rconv

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="MXCSR is x86's")

TINY = np.float32(1e-39)  # subnormal: below float32's smallest normal, 1.18e-38


def _product(rows: int) -> np.ndarray:
    """A Dense forward whose every product is TINY · 1 (subnormal operand, subnormal result)."""
    x = np.full((rows, 64), TINY, np.float32)
    return _rconv.dense(x, np.eye(64, 32, dtype=np.float32), None)


@pytest.mark.parametrize("rows", [1, 64])  # calling thread alone / the pool's threads
def test_subnormals_are_flushed_in_kernels(rows):
    assert TINY != 0 and np.all(_product(rows) == 0)


def test_calling_thread_keeps_ieee_subnormals():
    _product(64)
    assert np.float32(1e-30) * np.float32(1e-9) != 0  # NumPy on this thread still makes subnormals


def test_flushing_can_be_switched_off():
    code = ("import numpy as np; from rconv import _rconv; x = np.full((64, 64), np.float32(1e-39), np.float32); "
            "y = _rconv.dense(x, np.eye(64, 32, dtype=np.float32), None); print(bool(np.all(y == np.float32(1e-39))))")
    env = dict(os.environ, RCONV_FLUSH_DENORMALS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"

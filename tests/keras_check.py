"""The one way tests reach real Keras: find a Python that has Keras + TensorFlow, and run
`keras_fixtures/check_in_keras.py` on a file rconv saved.

Tests marked `keras` call `keras_python()` (it skips when no such Python exists; set RCONV_KERAS_PYTHON) and
`check_in_keras(exe, model_file, inputs_npz, expected_npz, *options)`, which asserts that Keras loads the file and
predicts what rconv predicted (options are check_in_keras.py's: `--atol`, `--strict`, `--train TRAIN.npz`)."""
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "keras_fixtures"


@lru_cache(maxsize=None)
def _probe(exe):
    try:
        return subprocess.run([exe, "-c", "import keras, tensorflow"], capture_output=True).returncode == 0
    except OSError:  # RCONV_KERAS_PYTHON names no runnable file
        return False


def keras_python():
    """The interpreter to run Keras code with (RCONV_KERAS_PYTHON, else python3 on PATH); skips the test when it
    cannot import keras and tensorflow."""
    exe = os.environ.get("RCONV_KERAS_PYTHON") or shutil.which("python3")
    if not exe or not _probe(exe):
        pytest.skip(f"no python with keras + tensorflow (tried {exe!r}; set RCONV_KERAS_PYTHON)")
    return exe


def check_in_keras(exe, model_file, inputs, expected, *options, timeout=600):
    """Load `model_file` in real Keras and assert its predictions on `inputs` equal `expected` (npz paths)."""
    result = subprocess.run([exe, str(FIXTURES / "check_in_keras.py"), str(model_file), str(inputs), str(expected),
                             *map(str, options)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), (
        f"{model_file}: {result.stdout[-3000:]}{result.stderr[-3000:]}")

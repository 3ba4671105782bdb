"""Shared pytest setup for the rconv test suite."""
import os
from pathlib import Path

import pytest

# Datasets live outside the repo, in /work/shared/data (…/main/tests/conftest.py -> parents[2] == /work).
os.environ.setdefault("RCONV_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def fresh_session():
    """Every test starts with Keras's automatic layer names reset (`keras.backend.clear_session()`),
    as Keras's own TestCase.setUp does; test files no longer need their own copy of this fixture."""
    from rconv import backend
    backend.clear_session()


@pytest.fixture
def direct_convolution():
    """Run the test with Winograd convolution off (restored afterwards), for tests whose expectation is the
    direct convolution's exact float32 result (integer-valued inputs, ill-conditioned outputs)."""
    from rconv import config
    was = config.is_winograd_enabled()
    config.set_winograd_enabled(False)
    yield
    config.set_winograd_enabled(was)

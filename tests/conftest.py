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

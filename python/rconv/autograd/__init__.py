"""Automatic differentiation of eager computations: `GradientTape` (see `tape.py`) and the gradient rules of
the NumPy operations it records (`rules.py`)."""
from .tape import GradientTape, Tracked, record_call, record_value, recording, should_record

__all__ = ["GradientTape", "Tracked", "record_call", "record_value", "recording", "should_record"]

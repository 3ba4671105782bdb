"""Automatic differentiation of eager computations: `GradientTape` (see `tape.py`) and the gradient rules of
the NumPy operations it records (`rules.py`)."""
from .tape import (GradientTape, Tracked, connected, record_call, record_unary, record_value, recording,
                   should_record)

__all__ = ["GradientTape", "Tracked", "connected", "record_call", "record_unary", "record_value", "recording",
           "should_record"]

"""`Lambda`: wraps a Python function as a layer (refused when loading unless `safe_mode=False`)."""
from __future__ import annotations

__all__: list[str] = []

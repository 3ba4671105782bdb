"""Resampling: nearest and bilinear up-sampling and resizing (NHWC)."""
from __future__ import annotations

__all__: list[str] = []

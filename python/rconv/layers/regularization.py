"""Noise layers: `SpatialDropout2D`, `GaussianNoise`."""
from __future__ import annotations

__all__: list[str] = []

"""Image preprocessing layers: `Resizing`, `CenterCrop`, `RandomCrop`, `RandomBrightness`."""
from __future__ import annotations

__all__: list[str] = []

"""Shape layers: `UpSampling2D`, `ZeroPadding2D`, `Cropping2D`, `Reshape`, `Permute`, `RepeatVector`."""
from __future__ import annotations

__all__: list[str] = []

"""`Conv2DTranspose` (NHWC, kernel (kh, kw, filters, cin)) with TF's padding rules."""
from __future__ import annotations

__all__: list[str] = []

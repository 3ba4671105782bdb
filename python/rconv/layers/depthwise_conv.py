"""`DepthwiseConv2D` and `SeparableConv2D` (NHWC, Keras kernel layouts) on the Rust depthwise kernels."""
from __future__ import annotations

__all__: list[str] = []

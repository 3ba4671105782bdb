"""Activation layers with parameters: `LeakyReLU`, `PReLU`, `ELU`."""
from __future__ import annotations

__all__: list[str] = []

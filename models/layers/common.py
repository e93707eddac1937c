"""Shared building blocks for the registered networks."""

from __future__ import annotations


def scaled(channels: int, width: float) -> int:
    """Channel count after a width multiplier (at least one channel)."""
    return max(1, round(channels * width))

"""Test vectors are files under tests/vectors (style guide, convention 16)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["VECTORS", "load"]

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> bytes:
    """Return the bytes of ``tests/vectors/<name>``."""
    return (VECTORS / name).read_bytes()

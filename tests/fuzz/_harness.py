"""Shared driver for the Hypothesis-based fuzz targets."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings, strategies as st

from mediaserver.errors import MalformedPacket

__all__ = ["feed", "run"]


def feed(parse: Callable[[bytes], object], data: bytes) -> None:
    """Feed ``data`` whole, then every prefix (byte by byte, as a truncated datagram).

    The invariant (style guide, convention 17): accepted, or rejected with MalformedPacket.
    """
    for end in (len(data), *range(len(data))):
        with contextlib.suppress(MalformedPacket):
            parse(data[:end])


def run(
    target: Callable[[bytes], None],
    seeds: st.SearchStrategy[bytes],
    examples: int,
) -> None:
    """Run ``target`` on ``examples`` inputs drawn from random bytes and mutated seeds."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.binary(max_size=256) | seeds)
    def fuzz(data: bytes) -> None:
        target(data)

    fuzz()


def examples_from_argv(default: int = 10_000) -> int:
    """Return the example count given on the command line."""
    return int(sys.argv[1]) if len(sys.argv) > 1 else default

"""Fuzz target for compound RTCP parsing."""

from __future__ import annotations

from hypothesis import strategies as st

from mediaserver.errors import MalformedPacket
from mediaserver.rtp.rtcp import parse_compound, serialize_compound
from tests.fuzz._harness import examples_from_argv, feed, run
from tests.helpers.vectors import VECTORS

__all__ = ["SEEDS", "target"]


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((VECTORS / "rtcp").glob("*.bin"))]


def _mutate(seed: bytes, position: int, value: int) -> bytes:
    position %= len(seed)
    return seed[:position] + bytes((value,)) + seed[position + 1 :]


SEEDS = st.builds(_mutate, st.sampled_from(_seeds()), st.integers(0, 1 << 16), st.integers(0, 255))


def target(data: bytes) -> None:
    """parse_compound accepts or raises MalformedPacket; accepted input re-parses."""
    feed(parse_compound, data)
    try:
        packets = parse_compound(data)
    except MalformedPacket:
        return
    assert parse_compound(serialize_compound(packets)) == packets


if __name__ == "__main__":
    run(target, SEEDS, examples_from_argv())

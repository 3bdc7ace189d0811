"""Fuzz target for RTP parsing and the fast header peeks."""

from __future__ import annotations

from hypothesis import strategies as st

from mediaserver.errors import MalformedPacket
from mediaserver.rtp.demux import DatagramKind, classify_datagram
from mediaserver.rtp.packet import RtpPacket, peek_extension, peek_header, peek_payload_offset
from tests.fuzz._harness import examples_from_argv, feed, run
from tests.helpers.vectors import VECTORS

__all__ = ["SEEDS", "target"]


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((VECTORS / "rtp").glob("*.bin"))]


def _mutate(seed: bytes, position: int, value: int) -> bytes:
    position %= len(seed)
    return seed[:position] + bytes((value,)) + seed[position + 1 :]


SEEDS = st.builds(_mutate, st.sampled_from(_seeds()), st.integers(0, 1 << 16), st.integers(0, 255))


def _parse(data: bytes) -> None:
    RtpPacket.parse(data)
    if classify_datagram(data) is DatagramKind.RTP:
        peek_header(data)
        peek_payload_offset(data)
        peek_extension(data, 1)


def target(data: bytes) -> None:
    """RtpPacket.parse and the peeks accept or raise MalformedPacket."""
    feed(_parse, data)
    try:
        packet = RtpPacket.parse(data)
    except MalformedPacket:
        return
    # What parses re-serializes, and that parses to the same packet.
    assert RtpPacket.parse(packet.serialize()) == packet


if __name__ == "__main__":
    run(target, SEEDS, examples_from_argv())

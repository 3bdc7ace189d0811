"""Fuzz target for STUN parsing and the ICE-lite agent's input path."""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st

from mediaserver.errors import MalformedPacket
from mediaserver.transport.ice import IceLiteAgent
from mediaserver.transport.stun import StunMessage, verify_fingerprint, verify_integrity
from tests.fuzz._harness import examples_from_argv, feed, run
from tests.helpers.vectors import VECTORS

__all__ = ["SEEDS", "target"]


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted((VECTORS / "stun").glob("*.bin"))]


def _mutate(seed: bytes, position: int, value: int) -> bytes:
    position %= len(seed)
    return seed[:position] + bytes((value,)) + seed[position + 1 :]


SEEDS = st.builds(_mutate, st.sampled_from(_seeds()), st.integers(0, 1 << 16), st.integers(0, 255))


def _parse(data: bytes) -> None:
    verify_fingerprint(data)
    verify_integrity(data, b"VOkJxbRl1RmTxUk/WvJxBt")
    message = StunMessage.parse(data)
    for accessor in (message.username, message.xor_mapped_address, message.error_code):
        with contextlib.suppress(MalformedPacket):
            accessor()


def target(data: bytes) -> None:
    """The parser raises only MalformedPacket and the agent never raises at all."""
    feed(_parse, data)
    agent = IceLiteAgent()
    agent.register_peer("evtj", "VOkJxbRl1RmTxUk/WvJxBt", "h6vY", now=0.0)
    agent.receive_stun(data, ("192.0.2.1", 3478), 1.0)
    agent.datagrams_to_send()


if __name__ == "__main__":
    run(target, SEEDS, examples_from_argv())

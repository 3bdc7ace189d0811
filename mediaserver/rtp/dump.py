"""RTP packet dumps: the test vector format of captured streams, and the opt-in uplink dump.

Format (ours; no RFC): a sequence of records, each a 16-bit big-endian length followed by
that many bytes of one unprotected RTP packet (RFC 3550 §5.1), in arrival order. Captured
Chromium streams are committed in it under ``tests/vectors/rtp/svc`` (see its README).

The server writes such dumps only when the environment variable
:data:`DUMP_ENV` names a directory (a debugging aid, off by default): then every uplink
camera packet, after SRTP and before any forwarding decision, is appended to
``<dir>/uplink-<ssrc>.rtp``. When the variable is unset nothing of this module runs per
packet (the media engine does not wrap its receive path at all).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final

from mediaserver.errors import MalformedPacket

__all__ = ["DUMP_ENV", "UplinkDump", "dump_record", "read_dump"]

DUMP_ENV: Final = "CARILLON_DUMP_UPLINK_RTP"
"""Environment variable: a directory to dump uplink camera RTP to (unset: no dump)."""


def dump_record(packet: bytes) -> bytes:
    """One record of the dump format.

    Raises:
        MalformedPacket: the packet is longer than 65535 bytes.
    """
    if len(packet) > 0xFFFF:
        raise MalformedPacket(f"a {len(packet)}-byte packet does not fit a dump record")
    return len(packet).to_bytes(2, "big") + packet


def read_dump(data: bytes) -> Iterator[bytes]:
    """The packets of a dump, in order.

    Raises:
        MalformedPacket: a record is truncated (nothing after it is returned).
    """
    offset = 0
    end = len(data)
    while offset < end:
        if offset + 2 > end:
            raise MalformedPacket(f"dump record header truncated at byte {offset}")
        size = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + size > end:
            raise MalformedPacket(f"dump record of {size} bytes truncated at byte {offset}")
        yield data[offset : offset + size]
        offset += size


class UplinkDump:
    """Appends uplink packets to one file per SSRC in ``directory`` (debugging only)."""

    def __init__(self, directory: str) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[int, BinaryIO] = {}

    @classmethod
    def from_environment(cls) -> UplinkDump | None:
        """A dump into the directory :data:`DUMP_ENV` names, or None when it is unset."""
        directory = os.environ.get(DUMP_ENV)
        return cls(directory) if directory else None

    def write(self, packet: bytes, ssrc: int) -> None:
        file = self._files.get(ssrc)
        if file is None:
            file = self._files[ssrc] = (self._directory / f"uplink-{ssrc}.rtp").open("ab")
        file.write(dump_record(packet))
        file.flush()

    def wrap(self, forward: Callable[..., None]) -> Callable[..., None]:
        """``forward(publisher, packet, ssrc, seq, now)`` (the engine's per-packet video
        entry) that dumps each packet first."""

        def dumping(publisher: object, packet: bytes, ssrc: int, seq: int, now: float) -> None:
            self.write(packet, ssrc)
            forward(publisher, packet, ssrc, seq, now)

        return dumping

"""First-byte demultiplexing of the shared UDP port (RFC 7983 section 7, RFC 5761 section 4).

STUN, DTLS, RTP and RTCP all arrive on one UDP port. RFC 7983 section 7 tells them apart
by the first byte::

                 +----------------+
                 |        [0..3] -+--> forward to STUN
                 |                |
                 |      [16..19] -+--> forward to ZRTP
                 |                |
     packet -->  |      [20..63] -+--> forward to DTLS
                 |                |
                 |      [64..79] -+--> forward to TURN Channel
                 |                |
                 |    [128..191] -+--> forward to RTP/RTCP
                 +----------------+

We run neither ZRTP nor TURN, so those ranges, and every other value, are dropped.
RTP and RTCP are then told apart by the second byte (RFC 5761 section 4): RTCP packet
types 192-223 fall where the RTP marker bit is set and the payload type is 64-95, which
RTP must therefore not use.

:func:`classify_datagram` also drops datagrams too short to be of their kind (20 bytes
for a STUN header, 13 for a DTLS record header, 12 for an RTP header, 8 for the smallest
RTCP packet), so that the ``peek_*`` functions of :mod:`mediaserver.rtp.packet` can read
the fixed header without bounds checks.
"""

from __future__ import annotations

import enum

__all__ = ["DatagramKind", "classify_datagram", "is_rtcp"]


class DatagramKind(enum.IntEnum):
    """What a datagram on the shared port carries."""

    DROP = 0
    """Not something we handle: drop it (and count it)."""
    STUN = 1
    """A STUN message (RFC 5389): ICE connectivity checks."""
    DTLS = 2
    """A DTLS record (RFC 6347): the DTLS-SRTP handshake."""
    RTP = 3
    """An SRTP packet."""
    RTCP = 4
    """An SRTCP packet."""


_STUN_MIN = 20
_DTLS_MIN = 13
_RTP_MIN = 12
_RTCP_MIN = 8

# RFC 7983 section 7, as a table indexed by the first byte; RTP here means "RTP or RTCP".
_BY_FIRST_BYTE: tuple[DatagramKind, ...] = tuple(
    DatagramKind.STUN
    if b <= 3
    else DatagramKind.DTLS
    if 20 <= b <= 63
    else DatagramKind.RTP
    if 128 <= b <= 191
    else DatagramKind.DROP
    for b in range(256)
)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """Return True when an RTP-range datagram is RTCP (RFC 5761 section 4).

    ``data`` must be at least 2 bytes long.
    """
    return 192 <= data[1] <= 223


def classify_datagram(data: bytes | bytearray | memoryview) -> DatagramKind:
    """Classify a datagram received on the shared UDP port (RFC 7983 section 7)."""
    n = len(data)
    if n < _RTCP_MIN:
        return DatagramKind.DROP
    kind = _BY_FIRST_BYTE[data[0]]
    if kind is DatagramKind.RTP:
        if 192 <= data[1] <= 223:
            return DatagramKind.RTCP
        return kind if n >= _RTP_MIN else DatagramKind.DROP
    if kind is DatagramKind.STUN:
        return kind if n >= _STUN_MIN else DatagramKind.DROP
    if kind is DatagramKind.DTLS:
        return kind if n >= _DTLS_MIN else DatagramKind.DROP
    return kind

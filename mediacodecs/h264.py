"""H.264 RTP payloads (RFC 6184): NAL unit types, key frames, fragment starts.

Rules of this file:

* Only packetization-mode 1 payloads are read (single NAL units, STAP-A and FU-A,
  RFC 6184 §5.6-§5.8); that is what browsers send. STAP-B, MTAPs and FU-B (mode 2)
  are reported by type and never count as key frames.
* Parsers raise only :class:`~mediaserver.errors.MalformedPacket`.
* A packet is a key frame packet when it carries an IDR slice start (type 5) or a
  sequence parameter set (type 7): browsers send SPS and PPS in the STAP-A that precedes
  the IDR slices, and a decoder can start from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.errors import MalformedPacket

__all__ = [
    "NAL_FU_A",
    "NAL_IDR",
    "NAL_PPS",
    "NAL_SPS",
    "NAL_STAP_A",
    "H264Payload",
    "is_keyframe",
    "peek_frame",
]

NAL_IDR = 5
"""Coded slice of an IDR picture (H.264 Table 7-1)."""
NAL_SPS = 7
"""Sequence parameter set."""
NAL_PPS = 8
"""Picture parameter set."""
NAL_STAP_A = 24
"""Single-time aggregation packet (RFC 6184 §5.7.1)."""
NAL_FU_A = 28
"""Fragmentation unit (RFC 6184 §5.8)."""


def _stap_a_types(payload: bytes | bytearray | memoryview) -> list[int]:
    types: list[int] = []
    i = 1
    n = len(payload)
    while i < n:
        if i + 2 > n:
            raise MalformedPacket("H.264 STAP-A is truncated in a NAL unit size")
        size = (payload[i] << 8) | payload[i + 1]
        i += 2
        if size == 0 or i + size > n:
            raise MalformedPacket(f"H.264 STAP-A NAL unit of {size} bytes overruns the packet")
        types.append(payload[i] & 0x1F)
        i += size
    if not types:
        raise MalformedPacket("H.264 STAP-A holds no NAL unit")
    return types


def peek_frame(payload: bytes | bytearray | memoryview) -> tuple[bool, bool]:
    """Return ``(keyframe, starts_nal_unit)`` for one RTP payload.

    ``starts_nal_unit`` is False only for FU-A fragments after the first.

    Raises:
        MalformedPacket: the payload is empty or its aggregation/fragment is truncated.
    """
    if not payload:
        raise MalformedPacket("H.264 payload is empty")
    nal_type = payload[0] & 0x1F
    if nal_type == NAL_FU_A:
        if len(payload) < 2:
            raise MalformedPacket("H.264 FU-A has no FU header")
        fu = payload[1]
        start = bool(fu & 0x80)
        return start and (fu & 0x1F) in (NAL_IDR, NAL_SPS), start
    if nal_type == NAL_STAP_A:
        for t in _stap_a_types(payload):
            if t in (NAL_IDR, NAL_SPS):
                return True, True
        return False, True
    return nal_type in (NAL_IDR, NAL_SPS), True


def is_keyframe(payload: bytes | bytearray | memoryview) -> bool:
    """Return True if ``payload`` carries an IDR slice start or an SPS.

    Raises:
        MalformedPacket: as :func:`peek_frame`.
    """
    return peek_frame(payload)[0]


@dataclass(frozen=True, slots=True)
class H264Payload:
    """What an H.264 RTP payload carries (RFC 6184 §5.2).

    Attributes:
        packet_type: the type in the payload's first NAL header (1-23 a single NAL unit,
            24 STAP-A, 28 FU-A, ...).
        nal_types: the NAL unit types carried: one for a single NAL unit or a fragment
            (the fragmented unit's type), one per unit for STAP-A.
        nri: NAL reference idc of the first header.
        fragment_start: FU-A S bit (False when not a fragment).
        fragment_end: FU-A E bit (False when not a fragment).
    """

    packet_type: int
    nal_types: tuple[int, ...]
    nri: int = 0
    fragment_start: bool = False
    fragment_end: bool = False

    @property
    def has_idr(self) -> bool:
        """An IDR slice (start) is in the packet."""
        if self.packet_type == NAL_FU_A and not self.fragment_start:
            return False
        return NAL_IDR in self.nal_types

    @property
    def has_sps(self) -> bool:
        """A sequence parameter set is in the packet."""
        return NAL_SPS in self.nal_types

    @property
    def has_pps(self) -> bool:
        """A picture parameter set is in the packet."""
        return NAL_PPS in self.nal_types

    @property
    def keyframe(self) -> bool:
        """The packet starts a key frame (an IDR slice start or an SPS)."""
        if self.packet_type == NAL_FU_A:
            return self.fragment_start and self.nal_types[0] in (NAL_IDR, NAL_SPS)
        return self.has_idr or self.has_sps

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> H264Payload:
        """Parse one RTP payload.

        Raises:
            MalformedPacket: as :func:`peek_frame`.
        """
        if not payload:
            raise MalformedPacket("H.264 payload is empty")
        header = payload[0]
        nal_type = header & 0x1F
        nri = (header >> 5) & 0x03
        if nal_type == NAL_FU_A:
            if len(payload) < 2:
                raise MalformedPacket("H.264 FU-A has no FU header")
            fu = payload[1]
            return cls(nal_type, (fu & 0x1F,), nri, bool(fu & 0x80), bool(fu & 0x40))
        if nal_type == NAL_STAP_A:
            return cls(nal_type, tuple(_stap_a_types(payload)), nri)
        return cls(nal_type, (nal_type,), nri)

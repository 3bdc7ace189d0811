"""Key frame detection per payload format, where subscriber switches happen."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.keyframes import starts_keyframe
from mediaserver.rtp.packet import RtpPacket

DD_ID = 7


def _rtp(payload: bytes, extensions: dict[int, bytes] | None = None) -> bytes:
    return RtpPacket(
        payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=payload,
        extension_profile=0xBEDE if extensions else None, extensions=extensions or {},
    ).serialize()  # fmt: skip


# A dependency descriptor with the template structure flag (byte 3, top bit) and without.
_DD_KEY = bytes([0x80, 0x00, 0x01, 0x80]) + bytes(8)
_DD_DELTA = bytes([0x80, 0x00, 0x02])

CASES = [
    # VP8 (RFC 7741 §4.2): S=1 PID=0, then P=0 in the payload header.
    ("vp8", _rtp(b"\x10\x00\x9d\x01\x2a"), True),
    ("vp8", _rtp(b"\x10\x01\x9d\x01\x2a"), False),
    ("vp8", _rtp(b"\x00\x00\x9d\x01\x2a"), False),
    # VP9 (RFC 9628 §4.2): B=1 and P=0.
    ("vp9", _rtp(b"\x08\x00"), True),
    ("vp9", _rtp(b"\x48\x00"), False),
    ("vp9", _rtp(b"\x00\x00"), False),
    # H.264 (RFC 6184): IDR, SPS, FU-A start of an IDR, STAP-A holding an SPS.
    ("h264", _rtp(b"\x65\x88"), True),
    ("h264", _rtp(b"\x67\x42"), True),
    ("h264", _rtp(b"\x7c\x85\x00"), True),
    ("h264", _rtp(b"\x7c\x05\x00"), False),
    ("h264", _rtp(b"\x78\x00\x02\x67\x42\x00\x02\x68\xce"), True),
    ("h264", _rtp(b"\x41\x9a"), False),
    # AV1: the descriptor's template structure, else the aggregation header's N bit.
    ("av1", _rtp(b"\x10\x00", {DD_ID: _DD_KEY}), True),
    ("av1", _rtp(b"\x18\x00", {DD_ID: _DD_DELTA}), False),
    ("av1", _rtp(b"\x18\x00"), True),
    ("av1", _rtp(b"\x10\x00"), False),
    # Malformed payloads are not key frames.
    ("vp8", _rtp(b""), False),
    ("h264", _rtp(b"\x7c"), False),
    ("vp9", _rtp(b"\x80"), False),
]


@pytest.mark.parametrize(("payload_format", "packet", "expected"), CASES)
def test_key_frames_are_found_per_codec(payload_format: str, packet: bytes, expected: bool) -> None:
    assert starts_keyframe(payload_format, packet, DD_ID) is expected


def test_an_unknown_format_is_not_gated() -> None:
    assert starts_keyframe("opaque", _rtp(b"\x00")) is True


@given(st.sampled_from(["vp8", "vp9", "h264", "av1"]), st.binary(max_size=40))
def test_any_bytes_give_an_answer_without_raising(payload_format: str, data: bytes) -> None:
    assert starts_keyframe(payload_format, data, DD_ID) in (True, False)

"""Values of the RTP header extensions that WebRTC browsers negotiate.

Each extension is named by a URI in SDP (``a=extmap:<id> <uri>``, RFC 8285 section 5);
the id maps to the element in :attr:`mediaserver.rtp.packet.RtpPacket.extensions` or
:func:`mediaserver.rtp.packet.peek_extension`. This module only converts element data to
values and back; it does not know which id a URI was given.

Parsers raise only :class:`MalformedPacket`; builders raise :class:`LocalProtocolError`
for values that do not fit.
"""

from __future__ import annotations

from mediaserver.errors import LocalProtocolError, MalformedPacket

__all__ = [
    "ABS_SEND_TIME_URI",
    "AUDIO_LEVEL_URI",
    "DEPENDENCY_DESCRIPTOR_URI",
    "REPAIRED_RID_URI",
    "SDES_MID_URI",
    "SDES_RID_URI",
    "TRANSPORT_CC_URI",
    "VIDEO_LAYERS_ALLOCATION_URI",
    "abs_send_time_from_seconds",
    "abs_send_time_to_seconds",
    "parse_abs_send_time",
    "parse_audio_level",
    "parse_sdes_value",
    "parse_transport_sequence_number",
    "serialize_abs_send_time",
    "serialize_audio_level",
    "serialize_sdes_value",
    "serialize_transport_sequence_number",
]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
"""Client-to-mixer audio level (RFC 6464)."""

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
"""Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2)."""

SDES_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
"""Media identification (RFC 8843 section 15.2)."""

SDES_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
"""RTP stream identifier (RFC 8852 section 4.3)."""

REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
"""Repaired RTP stream identifier, carried by RTX packets (RFC 8852 section 4.4)."""

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
"""Absolute send time, 24-bit 6.18 fixed-point seconds (webrtc.org experiment)."""

DEPENDENCY_DESCRIPTOR_URI = (
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
)
"""The AV1 RTP specification's dependency descriptor (SVC layers)."""

VIDEO_LAYERS_ALLOCATION_URI = (
    "http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00"
)
"""Which simulcast/SVC layers the sender currently sends (webrtc.org experiment)."""


def parse_audio_level(data: bytes) -> tuple[bool, int]:
    """Return ``(voice_activity, level)`` from an RFC 6464 element.

    The level is in -dBov, 0 (loudest) to 127 (silence) (RFC 6464 section 3). The element
    is one byte; the two-byte header form may pad it, so longer data is accepted.

    Raises:
        MalformedPacket: the element is empty.
    """
    if not data:
        raise MalformedPacket("audio level extension is empty")
    byte = data[0]
    return byte >= 0x80, byte & 0x7F


def serialize_audio_level(voice_activity: bool, level: int) -> bytes:
    """Build the one-byte RFC 6464 element.

    Raises:
        LocalProtocolError: ``level`` is not in 0-127.
    """
    if not 0 <= level <= 127:
        raise LocalProtocolError(f"audio level {level} is not in 0-127")
    return bytes(((0x80 if voice_activity else 0) | level,))


def parse_transport_sequence_number(data: bytes) -> int:
    """Return the 16-bit transport-wide sequence number (draft-holmer-...-01 section 2).

    Raises:
        MalformedPacket: the element is shorter than 2 bytes.
    """
    if len(data) < 2:
        raise MalformedPacket(f"transport-wide sequence number is {len(data)} bytes, expected 2")
    return (data[0] << 8) | data[1]


def serialize_transport_sequence_number(sequence_number: int) -> bytes:
    """Build the 2-byte transport-wide sequence number element.

    Raises:
        LocalProtocolError: the value is not in 0-65535.
    """
    if not 0 <= sequence_number <= 0xFFFF:
        raise LocalProtocolError(f"transport-wide sequence number {sequence_number} is not 16-bit")
    return sequence_number.to_bytes(2, "big")


def parse_sdes_value(data: bytes) -> str:
    """Return a MID or RID value (RFC 8843 section 15.2, RFC 8852 section 4.3).

    Both are SDES items carried as header extensions; their values are ASCII tokens.

    Raises:
        MalformedPacket: the value is empty or not ASCII.
    """
    if not data:
        raise MalformedPacket("SDES header extension value is empty")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedPacket("SDES header extension value is not ASCII") from None


def serialize_sdes_value(value: str) -> bytes:
    """Build a MID or RID element.

    Raises:
        LocalProtocolError: the value is empty, longer than 255 bytes, or not ASCII.
    """
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"SDES value {value!r} is not ASCII") from None
    if not 1 <= len(data) <= 255:
        raise LocalProtocolError(f"SDES value is {len(data)} bytes, expected 1-255")
    return data


def parse_abs_send_time(data: bytes) -> int:
    """Return the 24-bit abs-send-time value (6.18 fixed-point seconds, wraps every 64 s).

    Raises:
        MalformedPacket: the element is shorter than 3 bytes.
    """
    if len(data) < 3:
        raise MalformedPacket(f"abs-send-time is {len(data)} bytes, expected 3")
    return (data[0] << 16) | (data[1] << 8) | data[2]


def serialize_abs_send_time(value: int) -> bytes:
    """Build the 3-byte abs-send-time element.

    Raises:
        LocalProtocolError: the value is not 24-bit.
    """
    if not 0 <= value <= 0xFFFFFF:
        raise LocalProtocolError(f"abs-send-time {value} is not 24-bit")
    return value.to_bytes(3, "big")


def abs_send_time_from_seconds(seconds: float) -> int:
    """Convert a time in seconds to the 24-bit 6.18 fixed-point value (mod 64 s)."""
    return int(seconds * (1 << 18)) & 0xFFFFFF


def abs_send_time_to_seconds(value: int) -> float:
    """Convert a 24-bit 6.18 fixed-point value to seconds in ``[0, 64)``."""
    return value / (1 << 18)

"""Tests for mediaserver.rtp.extensions."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import LocalProtocolError, MalformedPacket
from mediaserver.rtp.extensions import (
    abs_send_time_from_seconds,
    abs_send_time_to_seconds,
    parse_abs_send_time,
    parse_audio_level,
    parse_sdes_value,
    parse_transport_sequence_number,
    serialize_abs_send_time,
    serialize_audio_level,
    serialize_sdes_value,
    serialize_transport_sequence_number,
)
from mediaserver.rtp.packet import RtpPacket
from tests.helpers.vectors import load


def test_vector_extensions_decode() -> None:
    """The one-byte vector carries mid "0", abs-send-time and transport seq 42."""
    extensions = RtpPacket.parse(load("rtp/rtp_onebyte_ext.bin")).extensions
    assert parse_sdes_value(extensions[4]) == "0"
    assert parse_abs_send_time(extensions[2]) == 0x123456
    assert parse_transport_sequence_number(extensions[3]) == 42


@given(st.booleans(), st.integers(0, 127))
def test_audio_level_round_trip(voice: bool, level: int) -> None:
    """RFC 6464: V bit and 7-bit level."""
    assert parse_audio_level(serialize_audio_level(voice, level)) == (voice, level)


def test_audio_level_bits() -> None:
    """The V bit is the top bit; padding from the two-byte form is ignored."""
    assert serialize_audio_level(True, 30) == b"\x9e"
    assert parse_audio_level(b"\x7f\x00\x00") == (False, 127)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_audio_level(b""), "audio level extension is empty"),
        (
            lambda: parse_transport_sequence_number(b"\x01"),
            "transport-wide sequence number is 1 bytes, expected 2",
        ),
        (lambda: parse_sdes_value(b""), "SDES header extension value is empty"),
        (lambda: parse_sdes_value(b"\xff"), "SDES header extension value is not ASCII"),
        (lambda: parse_abs_send_time(b"\x00\x01"), "abs-send-time is 2 bytes, expected 3"),
    ],
)
def test_parse_errors(call: object, message: str) -> None:
    """Parsers raise MalformedPacket with exact messages."""
    assert callable(call)
    with pytest.raises(MalformedPacket) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: serialize_audio_level(False, 128), "audio level 128 is not in 0-127"),
        (
            lambda: serialize_transport_sequence_number(65536),
            "transport-wide sequence number 65536 is not 16-bit",
        ),
        (lambda: serialize_sdes_value("é"), "SDES value 'é' is not ASCII"),
        (lambda: serialize_sdes_value(""), "SDES value is 0 bytes, expected 1-255"),
        (lambda: serialize_abs_send_time(1 << 24), "abs-send-time 16777216 is not 24-bit"),
    ],
)
def test_serialize_errors(call: object, message: str) -> None:
    """Builders raise LocalProtocolError with exact messages."""
    assert callable(call)
    with pytest.raises(LocalProtocolError) as info:
        call()
    assert str(info.value) == message


@given(st.integers(0, 0xFFFF))
def test_transport_sequence_round_trip(value: int) -> None:
    """Two bytes, big-endian."""
    assert parse_transport_sequence_number(serialize_transport_sequence_number(value)) == value


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=16))
def test_sdes_round_trip(value: str) -> None:
    """MID/RID values are ASCII tokens."""
    assert parse_sdes_value(serialize_sdes_value(value)) == value


def test_abs_send_time_fixed_point() -> None:
    """6.18 fixed point, wrapping every 64 seconds."""
    assert abs_send_time_from_seconds(1.5) == 3 << 17
    assert abs_send_time_from_seconds(64.0) == 0
    assert abs_send_time_to_seconds(3 << 17) == 1.5
    assert parse_abs_send_time(serialize_abs_send_time(0xABCDEF)) == 0xABCDEF

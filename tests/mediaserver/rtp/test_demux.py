"""Tests for mediaserver.rtp.demux: RFC 7983 section 7 and RFC 5761 section 4."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.rtp.demux import DatagramKind, classify_datagram, is_rtcp
from tests.helpers.vectors import load


def _datagram(first: int, second: int = 0x60, size: int = 40) -> bytes:
    return bytes((first, second)) + bytes(size - 2)


@pytest.mark.parametrize(
    ("first", "kind"),
    [
        (0, DatagramKind.STUN),
        (1, DatagramKind.STUN),
        (3, DatagramKind.STUN),
        (4, DatagramKind.DROP),
        (16, DatagramKind.DROP),  # ZRTP
        (19, DatagramKind.DROP),
        (20, DatagramKind.DTLS),
        (22, DatagramKind.DTLS),
        (63, DatagramKind.DTLS),
        (64, DatagramKind.DROP),  # TURN channel
        (79, DatagramKind.DROP),
        (127, DatagramKind.DROP),
        (128, DatagramKind.RTP),
        (0x90, DatagramKind.RTP),
        (191, DatagramKind.RTP),
        (192, DatagramKind.DROP),
        (255, DatagramKind.DROP),
    ],
)
def test_first_byte_ranges(first: int, kind: DatagramKind) -> None:
    """Each RFC 7983 range boundary classifies as the RFC says."""
    assert classify_datagram(_datagram(first)) is kind


@pytest.mark.parametrize(
    ("second", "kind"),
    [
        (0x00, DatagramKind.RTP),
        (0x6F, DatagramKind.RTP),
        (0x7F, DatagramKind.RTP),
        (0xBF, DatagramKind.RTP),  # marker + PT 63
        (0xC0, DatagramKind.RTCP),  # 192, PT 64 with marker: FIR (RFC 2032)
        (0xC8, DatagramKind.RTCP),  # SR
        (0xCD, DatagramKind.RTCP),  # RTPFB
        (0xDF, DatagramKind.RTCP),  # 223
        (0xE0, DatagramKind.RTP),  # marker + PT 96
        (0xFF, DatagramKind.RTP),
    ],
)
def test_rtp_or_rtcp_by_second_byte(second: int, kind: DatagramKind) -> None:
    """RFC 5761 section 4: 192-223 in the PT byte (marker included) are RTCP."""
    data = _datagram(0x80, second)
    assert classify_datagram(data) is kind
    assert is_rtcp(data) is (kind is DatagramKind.RTCP)


def test_too_short_for_their_kind_are_dropped() -> None:
    """Minimum sizes: STUN 20, DTLS 13, RTP 12, RTCP 8."""
    assert classify_datagram(b"") is DatagramKind.DROP
    assert classify_datagram(_datagram(0x80, 0xC9, 7)) is DatagramKind.DROP
    assert classify_datagram(_datagram(0x80, 0xC9, 8)) is DatagramKind.RTCP
    assert classify_datagram(_datagram(0x80, 0x60, 11)) is DatagramKind.DROP
    assert classify_datagram(_datagram(0x80, 0x60, 12)) is DatagramKind.RTP
    assert classify_datagram(_datagram(0x00, 0x01, 19)) is DatagramKind.DROP
    assert classify_datagram(_datagram(0x00, 0x01, 20)) is DatagramKind.STUN
    assert classify_datagram(_datagram(22, 0xFE, 12)) is DatagramKind.DROP
    assert classify_datagram(_datagram(22, 0xFE, 13)) is DatagramKind.DTLS
    assert classify_datagram(_datagram(100, 0, 8)) is DatagramKind.DROP


def test_vectors_classify() -> None:
    """Real vectors of each kind land where they should."""
    assert classify_datagram(load("stun/rfc5769_request.bin")) is DatagramKind.STUN
    assert classify_datagram(load("rtp/rtp_onebyte_ext.bin")) is DatagramKind.RTP
    assert classify_datagram(load("rtcp/rtcp_sr_sdes.bin")) is DatagramKind.RTCP
    assert classify_datagram(load("rtcp/rtcp_feedback.bin")) is DatagramKind.RTCP


@given(st.binary(max_size=64))
def test_classify_never_raises(data: bytes) -> None:
    """Any datagram gets a kind; bytearray and memoryview agree with bytes."""
    kind = classify_datagram(data)
    assert classify_datagram(bytearray(data)) is kind
    assert classify_datagram(memoryview(data)) is kind

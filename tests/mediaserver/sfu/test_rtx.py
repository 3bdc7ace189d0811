"""RTX wrapping and unwrapping (RFC 4588 §4) on bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import MalformedPacket
from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu import rtx

_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFFFFFF)
_pt = st.integers(0, 127)


@st.composite
def _packets(draw: st.DrawFn) -> RtpPacket:
    padding = draw(st.integers(0, 8))
    extensions = draw(st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=4)))
    return RtpPacket(
        payload_type=draw(_pt), sequence_number=draw(_u16), timestamp=draw(_u32),
        ssrc=draw(_u32), marker=draw(st.booleans()),
        csrcs=tuple(draw(st.lists(_u32, max_size=3))),
        extension_profile=0xBEDE if extensions else None, extensions=extensions,
        payload=draw(st.binary(min_size=1, max_size=200)),
        padding=b"\x00" * (padding - 1) + bytes([padding]) if padding else b"",
    )  # fmt: skip


@given(_packets(), _pt, _u32, _u16)
def test_unwrap_restores_what_wrap_carried(
    original: RtpPacket, rtx_pt: int, rtx_ssrc: int, rtx_seq: int
) -> None:
    data = original.serialize()
    wrapped = rtx.wrap(data, rtx_pt, rtx_ssrc, rtx_seq)
    carrier = RtpPacket.parse(wrapped)
    assert carrier.payload_type == rtx_pt and carrier.ssrc == rtx_ssrc
    assert carrier.sequence_number == rtx_seq
    assert carrier.timestamp == original.timestamp and carrier.marker == original.marker
    assert carrier.payload[:2] == original.sequence_number.to_bytes(2, "big")
    assert rtx.original_sequence_number(wrapped) == original.sequence_number
    restored = rtx.unwrap(wrapped, original.payload_type, original.ssrc)
    assert restored is not None
    back = RtpPacket.parse(restored)
    assert back.payload_type == original.payload_type
    assert back.sequence_number == original.sequence_number
    assert back.timestamp == original.timestamp and back.ssrc == original.ssrc
    assert back.marker == original.marker and back.csrcs == original.csrcs
    assert back.extensions == original.extensions
    assert back.payload == original.payload and back.padding == b""


def test_a_padding_only_probe_carries_nothing() -> None:
    osn_only = RtpPacket(payload_type=97, sequence_number=3, ssrc=9, payload=b"\x00\x05")
    assert rtx.unwrap(osn_only.serialize(), 96, 1) is None
    padded = RtpPacket(payload_type=97, sequence_number=4, ssrc=9, padding=b"\x00" * 9 + b"\x0a")
    assert rtx.unwrap(padded.serialize(), 96, 1) is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80" * 11, bytes(12), RtpPacket(payload=b"\x01").serialize()],
    ids=["empty", "short header", "version 0", "one-byte payload"],
)
def test_what_is_not_an_rtx_packet_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        rtx.unwrap(data, 96, 1)


@given(st.binary(max_size=64), _pt, _u32)
def test_unwrap_of_any_bytes_raises_only_malformed_packet(data: bytes, pt: int, ssrc: int) -> None:
    with contextlib.suppress(MalformedPacket):
        rtx.unwrap(data, pt, ssrc)

"""Tests for mediacodecs.h264: RFC 6184 payloads from hand-built vectors."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediacodecs.h264 import H264Payload, is_keyframe, peek_frame
from mediaserver.errors import MalformedPacket
from tests.helpers.vectors import load


def test_stap_a_with_sps_pps_idr_is_a_keyframe() -> None:
    data = load("rtp/h264_stap_a_sps_pps_idr.bin")
    p = H264Payload.parse(data)
    assert p.packet_type == 24 and p.nal_types == (7, 8, 5) and p.nri == 3
    assert p.has_sps and p.has_pps and p.has_idr and p.keyframe
    assert peek_frame(data) == (True, True)


def test_fu_a_start_of_idr_is_a_keyframe_and_the_end_is_not() -> None:
    start = H264Payload.parse(load("rtp/h264_fu_a_idr_start.bin"))
    assert start.fragment_start and not start.fragment_end and start.keyframe
    assert is_keyframe(load("rtp/h264_fu_a_idr_start.bin"))
    end = H264Payload.parse(load("rtp/h264_fu_a_idr_end.bin"))
    assert end.fragment_end and not end.fragment_start and not end.keyframe and not end.has_idr
    assert peek_frame(load("rtp/h264_fu_a_idr_end.bin")) == (False, False)


def test_single_non_idr_slice() -> None:
    data = load("rtp/h264_single_non_idr.bin")
    p = H264Payload.parse(data)
    assert p.nal_types == (1,) and not p.keyframe and not p.has_pps
    assert peek_frame(data) == (False, True)


def test_stap_a_overrun_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="overruns"):
        H264Payload.parse(load("rtp/h264_invalid_stap_a_overrun.bin"))
    with pytest.raises(MalformedPacket):
        is_keyframe(load("rtp/h264_invalid_stap_a_overrun.bin"))


@pytest.mark.parametrize("data", [b"", b"\x7c", b"\x78"])
def test_truncated_payloads_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        H264Payload.parse(data)
    with pytest.raises(MalformedPacket):
        peek_frame(data)


@given(st.binary(max_size=16))
def test_garbage_parses_or_raises_malformed_packet(data: bytes) -> None:
    try:
        p = H264Payload.parse(data)
    except MalformedPacket:
        return
    assert peek_frame(data)[0] == p.keyframe

"""Tests for mediaserver.sfu.view: one view per incoming packet, per payload format."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument, MalformedPacket
from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.view import PacketViewParser, PayloadFormat
from tests.helpers.vectors import load


def rtp(payload: bytes, extensions: dict[int, bytes] | None = None) -> bytes:
    return RtpPacket(payload_type=96, sequence_number=5, timestamp=9, ssrc=3, marker=True,
                     extensions=extensions or {}, payload=payload).serialize()  # fmt: skip


def test_each_format_fills_the_layer_facts() -> None:
    v = PacketViewParser("vp8").parse(rtp(load("rtp/vp8_delta_tid2_sync.bin")))
    assert (v.temporal_id, v.switch_point, v.keyframe, v.start_of_frame) == (2, True, False, True)
    assert "S0T2" in repr(v)
    v = PacketViewParser("vp9").parse(rtp(load("rtp/vp9_flexible_s1t2.bin")))
    assert (v.spatial_id, v.temporal_id, v.end_of_frame) == (1, 2, True)
    v = PacketViewParser("h264").parse(rtp(load("rtp/h264_stap_a_sps_pps_idr.bin")))
    assert v.keyframe and v.sequence_number == 5
    v = PacketViewParser("opaque").parse(rtp(b"\x01"))
    assert (v.payload_type, v.marker, v.timestamp, v.ssrc) == (96, True, 9, 3)


def test_av1_reads_the_dependency_descriptor() -> None:
    parser = PacketViewParser("av1", dependency_descriptor_id=12)
    assert not parser.parse(rtp(b"\x00")).keyframe
    v = parser.parse(rtp(b"\x00", {12: load("rtp/av1_dd_keyframe_l1t3.bin")}))
    assert v.keyframe and v.start_of_frame
    v = parser.parse(rtp(b"\x00", {12: bytes([0xC3, 0, 2])}))
    assert (v.temporal_id, v.end_of_frame) == (2, True)
    with pytest.raises(InvalidArgument):
        PacketViewParser("av1")


def test_bad_payloads_raise_malformed_packet() -> None:
    with pytest.raises(MalformedPacket):
        PacketViewParser("vp8").parse(rtp(load("rtp/vp8_invalid_truncated_picture_id.bin")))


@pytest.mark.parametrize("fmt", ["vp9", "av1"])
def test_padding_only_packets_of_svc_formats_are_in_no_layer(fmt: PayloadFormat) -> None:
    # RFC 3550 §5.1: P set, 255 bytes of padding after a one-byte-extension header.
    packet = bytes([0xB0, 98, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1, 0xBE, 0xDE, 0, 1, 0x40, 0x31, 0, 0])
    packet += bytes(254) + bytes([255])
    view = PacketViewParser(fmt, dependency_descriptor_id=12).parse(packet)
    assert (view.spatial_id, view.temporal_id) == (7, 7)
    assert not view.start_of_frame and not view.keyframe
    # One payload byte more: a media packet again.
    media = packet[:20] + b"\x8c" + packet[20:]
    assert PacketViewParser("vp9").parse(media).spatial_id == 0

"""Tests for mediaserver.sfu.twcc: egress numbering and feedback matching."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.rtcp import RtcpTransportCc
from mediaserver.sfu.twcc import TransportSequencer, stamp


def test_numbers_wrap_and_feedback_maps_back_to_send_times() -> None:
    t = TransportSequencer(16, initial_sequence_number=65534)
    seqs = [t.next(1.0 + i * 0.01, 1000 + i) for i in range(4)]
    assert seqs == [65534, 65535, 0, 1] and t.sent == 4
    fb = RtcpTransportCc.build(1, 2, 65534, reference_time=10, feedback_packet_count=0,
                               deltas=[4, None, 40, 8])  # fmt: skip
    results = t.receive_feedback(RtcpTransportCc.parse(fb.serialize()))
    assert [r.sequence_number for r in results] == [65534, 65535, 0, 1]
    assert [r.size for r in results] == [1000, 1001, 1002, 1003]
    assert results[1].arrival_time is None
    assert results[0].arrival_time == pytest.approx(0.640 + 0.001)
    assert results[2].arrival_time == pytest.approx(0.641 + 0.010)
    assert results[3].send_time == pytest.approx(1.03)


def test_feedback_for_unknown_numbers_is_skipped() -> None:
    t = TransportSequencer(16)
    t.next(0.0, 100)
    fb = RtcpTransportCc.build(1, 2, 5, 0, 0, [1, 1])
    assert t.receive_feedback(fb) == []
    with pytest.raises(InvalidArgument):
        TransportSequencer(10)


def test_a_send_time_is_corrected_when_a_paced_packet_leaves_later() -> None:
    t = TransportSequencer(16, initial_sequence_number=65535)
    first, second = t.next(1.0, 500), t.next(1.0, 500)
    assert (first, second) == (65535, 0)
    t.sent_at(second, 1.25)  # across the 16-bit wrap
    t.sent_at(first, 1.5)
    t.sent_at(7, 9.0)  # never handed out: ignored
    fb = RtcpTransportCc.build(1, 2, 65535, reference_time=10, feedback_packet_count=0,
                               deltas=[4, 4])  # fmt: skip
    results = t.receive_feedback(fb)
    assert [r.send_time for r in results] == [1.5, 1.25]


def test_stamp_rewrites_the_transport_wide_number() -> None:
    data = RtpPacket(payload_type=96, extensions={3: b"\x00\x07"}, payload=b"p").serialize()
    stamped = stamp(data, 3, 0x1234)
    assert RtpPacket.parse(stamped).extensions == {3: b"\x12\x34"}
    assert stamp(data, 4, 1) is data

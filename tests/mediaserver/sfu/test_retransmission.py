"""Tests for mediaserver.sfu.retransmission: NACK answers and RTX under 10% loss."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.rtcp import RtcpNack
from mediaserver.sfu.egress import EgressQueue, Subscription, fan_out
from mediaserver.sfu.forwarder import Forwarder
from mediaserver.sfu.layers import Vp8TemporalSelector
from mediaserver.sfu.nack import NackGenerator
from mediaserver.sfu.retransmission import RetransmissionBuffer, RtxParameters
from tests.mediaserver.sfu.builders import START_POINTS, VideoSource


def _run_lossy_link(start: int, rtx: RtxParameters | None) -> tuple[set[int], set[int], int]:
    """Forward 600 packets over a link losing every 10th; repair them with NACKs."""
    history = RetransmissionBuffer(1024, rtx=rtx)
    queue: EgressQueue[bytes] = EgressQueue(64)
    fwd = Forwarder(Vp8TemporalSelector(), ssrc=0x5555, initial_sequence_number=start,
                    initial_timestamp=0)  # fmt: skip
    subs = (Subscription(fwd, queue, history=history),)
    receiver = NackGenerator(sender_ssrc=9, media_ssrc=0x5555, delay=0.0)
    received: set[int] = set()
    sent: set[int] = set()
    src = VideoSource(40000, packets=3)
    now = 0.0
    count = 0
    for frame in range(200):
        now += 1 / 30
        for view in src.frame_views(keyframe=frame == 0):
            fan_out(subs, view, 1, now)
        for packet in queue.packets_to_send():
            seq = RtpPacket.parse(packet).sequence_number
            sent.add(seq)
            count += 1
            if count % 10 == 0:
                continue  # The deterministic loss pattern: 10%.
            received.add(seq)
            receiver.receive(seq, now)
        nack = receiver.nacks_to_send(now)
        if nack is not None:
            nack = RtcpNack.parse(nack.serialize())
            for answer in history.receive_nack(nack.lost, now):
                p = RtpPacket.parse(answer)
                if rtx is not None:
                    assert (p.ssrc, p.payload_type) == (rtx.ssrc, rtx.payload_type)
                    seq = int.from_bytes(p.payload[:2], "big")  # RFC 4588 OSN.
                    original = history.get(seq)
                    assert original is not None
                    assert p.payload[2:] == RtpPacket.parse(original).payload
                else:
                    seq = p.sequence_number
                received.add(seq)
                receiver.receive(seq, now)
    return sent, received, history.stats.resent


@pytest.mark.parametrize("start", START_POINTS)
def test_every_lost_packet_is_repaired_with_rtx(start: int) -> None:
    sent, received, resent = _run_lossy_link(start, RtxParameters(0x6666, 97, 100))
    # The 600th packet is lost too, and nothing after it reveals the loss: a tail loss
    # is beyond what NACK can repair.
    assert len(sent) == 600 and sent - received == {(start + 599) & 0xFFFF}
    assert resent == 59


def test_every_lost_packet_is_repaired_without_rtx() -> None:
    sent, received, resent = _run_lossy_link(65535, None)
    assert sent - received == {598} and resent == 59


def test_rtx_packet_layout_follows_rfc_4588() -> None:
    rtx = RtxParameters(ssrc=77, payload_type=97, initial_sequence_number=65535)
    history = RetransmissionBuffer(16, rtx=rtx)
    data = RtpPacket(payload_type=96, sequence_number=9, timestamp=1234, ssrc=5, marker=True,
                     extensions={3: b"\x00\x01"}, payload=b"abc").serialize()  # fmt: skip
    history.store(data[:12], data, 1.0)
    (first,) = history.receive_nack([9], 1.1)
    p = RtpPacket.parse(first)
    assert (p.ssrc, p.payload_type, p.sequence_number, p.timestamp, p.marker) == (
        77, 97, 65535, 1234, True,
    )  # fmt: skip
    assert p.payload == b"\x00\x09abc" and p.extensions == {3: b"\x00\x01"}
    assert history.receive_nack([9], 1.12) == []  # Resent 20 ms ago: throttled.
    (second,) = history.receive_nack([9], 1.2)
    assert RtpPacket.parse(second).sequence_number == 0  # The RTX sequence wraps.
    assert history.stats.throttled == 1


def test_unknown_or_too_old_packets_are_not_resent() -> None:
    history = RetransmissionBuffer(16, max_age=1.0)
    data = RtpPacket(payload_type=96, sequence_number=3, ssrc=5, payload=b"x").serialize()
    history.store(data[:12], data, 0.0)
    assert history.get(3) == data and history.get(19) is None and history.get(4) is None
    assert history.receive_nack([4, 19], 0.5) == []
    assert history.receive_nack([3], 2.0) == []
    assert history.stats.missing == 3 and history.stats.requested == 3
    assert history.rtx is None


def test_capacity_must_be_a_power_of_two() -> None:
    with pytest.raises(InvalidArgument):
        RetransmissionBuffer(1000)

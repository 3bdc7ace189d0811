"""Tests for mediaserver.sfu.egress: drop-oldest queues and fan-out."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket, peek_extension_offset
from mediaserver.sfu.egress import EgressQueue, Subscription, SubscriptionSet, fan_out
from mediaserver.sfu.forwarder import Forwarder
from mediaserver.sfu.layers import SimulcastSelector
from mediaserver.sfu.retransmission import RetransmissionBuffer
from mediaserver.sfu.twcc import TransportSequencer
from mediaserver.sfu.view import PacketViewParser


def test_a_full_queue_drops_its_oldest_item_and_counts_it() -> None:
    q: EgressQueue[int] = EgressQueue(3)
    for i in range(5):
        q.put(i)
    assert len(q) == 3 and q.dropped == 2 and q.enqueued == 5 and q.maxlen == 3
    assert q.get() == 2
    assert q.packets_to_send() == [3, 4]
    assert q.get() is None and len(q) == 0
    with pytest.raises(InvalidArgument):
        EgressQueue(0)


def packet(seq: int, keyframe: bool) -> bytes:
    payload = bytes([0x90, 0x20, 0x00, 0x00 if keyframe else 0x01]) + b"v" * 10
    return RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 10, ssrc=42,
                     extensions={3: b"\x99\x99"}, payload=payload).serialize()  # fmt: skip


def test_fan_out_rewrites_numbers_per_subscriber_and_reports_keyframe_needs() -> None:
    parser = PacketViewParser("vp8")
    transport = TransportSequencer(16, initial_sequence_number=500)
    subs: SubscriptionSet[str] = SubscriptionSet()
    queue_a: EgressQueue[bytes] = EgressQueue(8)
    queue_b: EgressQueue[bytes] = EgressQueue(8)
    history = RetransmissionBuffer(16)
    fwd_a = Forwarder(SimulcastSelector([1]), ssrc=100, initial_sequence_number=7,
                      initial_timestamp=0)  # fmt: skip
    subs.add("a", Subscription(fwd_a, queue_a, history=history, transport=transport))
    fwd_b = Forwarder(SimulcastSelector([1, 2]), ssrc=200, initial_sequence_number=0,
                      initial_timestamp=0)  # fmt: skip
    subs.add("b", Subscription(fwd_b, queue_b))
    assert len(subs) == 2 and list(subs) == ["a", "b"]
    offset = peek_extension_offset(packet(0, keyframe=False), 3)
    assert offset is not None
    # Nobody can start on a delta frame: both ask for key frames (b wants stream 2).
    needs = fan_out(subs.snapshot, parser.parse(packet(0, False)), 1, 0.0, offset[0])
    assert needs == [1]
    assert fan_out(subs.snapshot, parser.parse(packet(0, False)), 2, 0.0, offset[0]) == [2]
    data = packet(1, keyframe=True)
    assert fan_out(subs.snapshot, parser.parse(data), 1, 0.0, offset[0]) is None
    (out,) = queue_a.packets_to_send()
    p = RtpPacket.parse(out)
    assert (p.ssrc, p.sequence_number, p.extensions[3]) == (100, 7, b"\x01\xf4")
    assert history.get(7) is not None and queue_b.packets_to_send() == []
    assert fan_out(subs.snapshot, parser.parse(packet(2, False)), 1, 0.0) is None
    (out,) = queue_a.packets_to_send()
    assert RtpPacket.parse(out).extensions[3] == b"\x99\x99"  # No offset given: kept.
    snapshot = subs.snapshot
    assert subs.remove("b") is not None and subs.remove("b") is None
    assert len(snapshot) == 2 and len(subs.snapshot) == 1 and subs.get("a") is not None


def test_fan_out_without_transport_keeps_the_publishers_number() -> None:
    parser = PacketViewParser("vp8")
    queue: EgressQueue[bytes] = EgressQueue(8)
    fwd = Forwarder(SimulcastSelector([1]), ssrc=1, initial_sequence_number=0,
                    initial_timestamp=0)  # fmt: skip
    data = packet(1, keyframe=True)
    offset = peek_extension_offset(data, 3)
    assert offset is not None
    assert fan_out((Subscription(fwd, queue),), parser.parse(data), 1, 0.0, offset[0]) is None
    assert RtpPacket.parse(queue.packets_to_send()[0]).extensions[3] == b"\x99\x99"

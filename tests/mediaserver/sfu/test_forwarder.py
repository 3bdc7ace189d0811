"""Tests for mediaserver.sfu.forwarder: decisions across switches, wrap and pauses."""

from __future__ import annotations

import itertools

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.seqnum import uint16_add, uint16_diff, uint32_diff
from mediaserver.sfu.forwarder import (
    DROP_DECISION,
    ForwardDecision,
    Forwarder,
    KeyframeRequestThrottle,
    apply,
    render,
)
from mediaserver.sfu.layers import SimulcastSelector, Vp8TemporalSelector
from tests.mediaserver.sfu.builders import START_POINTS, VideoSource


@pytest.mark.parametrize("start", START_POINTS)
def test_simulcast_switches_keep_seq_and_ts_continuous_across_the_wrap(start: int) -> None:
    low = VideoSource(start, ts=0xFFFFF000, ssrc=11)
    high = VideoSource(uint16_add(start, 30000), ts=777, ssrc=12)
    selector = SimulcastSelector([1, 2])
    selector.set_target(0)
    fwd = Forwarder(selector, ssrc=0xABC, payload_type=100,
                    initial_sequence_number=start, initial_timestamp=0xFFFFFFF0)  # fmt: skip
    now = 10.0
    sent: list[ForwardDecision] = []
    needs: list[int] = []
    for frame in range(300):
        now += 1 / 30
        if frame == 100:
            selector.set_target(1)
        if frame == 200:
            selector.set_target(0)
        keyframes = {1: (0, 260), 2: (0, 150)}
        for source, stream in ((low, 1), (high, 2)):
            for view in source.frame_views(keyframe=frame in keyframes[stream]):
                d = fwd.decide(view, stream, now)
                if d.keyframe_needed:
                    needs.append(d.keyframe_stream_id)
                if d.forward:
                    sent.append(d)
    assert sent[0].sequence_number == start and sent[0].timestamp == 0xFFFFFFF0
    switches = [i for i, d in enumerate(sent) if d.switched]
    assert len(switches) == 3  # the start, up at frame 150, down at frame 260
    for prev, cur in itertools.pairwise(sent):
        assert uint16_diff(cur.sequence_number, prev.sequence_number) == 1
        assert 0 <= uint32_diff(cur.timestamp, prev.timestamp) <= 3003
        assert cur.ssrc == 0xABC and cur.payload_type == 100
    assert set(needs) == {2, 1}


def test_temporal_filtering_leaves_no_gaps_in_what_is_sent() -> None:
    src = VideoSource(65000, packets=3)
    fwd = Forwarder(Vp8TemporalSelector(temporal=1), ssrc=5, initial_sequence_number=65530,
                    initial_timestamp=0)  # fmt: skip
    sent = []
    for frame in range(40):
        for view in src.frame_views(keyframe=frame == 0):
            d = fwd.decide(view, 1, frame / 30)
            if d.forward:
                sent.append(d.sequence_number)
    assert len(sent) == 20 * 3  # TID 2 is every other frame: 20 of 40 frames filtered.
    assert all(uint16_diff(b, a) == 1 for a, b in itertools.pairwise(sent))


def test_pause_drops_and_resume_waits_for_a_keyframe() -> None:
    src = VideoSource(1)
    fwd = Forwarder(Vp8TemporalSelector(), ssrc=5, initial_sequence_number=0,
                    initial_timestamp=0)  # fmt: skip
    assert all(fwd.decide(v, 1, 0.0).forward for v in src.frame_views(keyframe=True))
    fwd.pause()
    assert fwd.paused
    assert fwd.decide(src.frame_views()[0], 1, 0.1) is DROP_DECISION
    fwd.resume()
    d = fwd.decide(src.frame_views()[0], 1, 0.2)
    assert not d.forward and d.keyframe_needed and d.keyframe_stream_id == 1
    d = fwd.decide(src.frame_views(keyframe=True)[0], 1, 0.3)
    assert d.forward and d.switched and d.sequence_number == 2


def test_apply_and_render_rewrite_the_header_only() -> None:
    data = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3,
                     extensions={3: b"\x00\x07"}, payload=b"hello").serialize()  # fmt: skip
    d = ForwardDecision(True, 0xFFFF, 0xFFFFFFFF, 0x01020304, 100, True)
    buf = bytearray(data)
    apply(d, buf)
    assert bytes(buf) == render(d, data) == Forwarder.render(d, data)
    p = RtpPacket.parse(bytes(buf))
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker) == (
        100, 0xFFFF, 0xFFFFFFFF, 0x01020304, True,
    )  # fmt: skip
    assert p.payload == b"hello" and p.extensions == {3: b"\x00\x07"}


def test_keyframe_requests_are_throttled_per_stream() -> None:
    t = KeyframeRequestThrottle(0.5)
    assert t.request(1, 10.0)
    assert not t.request(1, 10.4)
    assert t.request(2, 10.4)
    assert t.request(1, 10.5)
    t.forget(1)
    assert t.request(1, 10.6)
    with pytest.raises(InvalidArgument):
        KeyframeRequestThrottle(-1)


def test_forwarder_validates_its_ssrc_and_exposes_its_parts() -> None:
    with pytest.raises(InvalidArgument):
        Forwarder(Vp8TemporalSelector(), ssrc=1 << 32)
    fwd = Forwarder(Vp8TemporalSelector(), ssrc=9)
    assert fwd.ssrc == 9 and fwd.munger.forwarded == 0
    assert isinstance(fwd.selector, Vp8TemporalSelector)

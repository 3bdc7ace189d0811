"""Tests for mediaserver.sfu.layers: key frame gating, temporal filtering, SVC."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.layers import (
    DROP,
    FILTERED,
    FORWARD,
    KEYFRAME_NEEDED,
    SET_MARKER,
    SWITCH,
    Av1DdSelector,
    NullSelector,
    SimulcastSelector,
    Vp8TemporalSelector,
    Vp9SvcSelector,
)
from mediaserver.sfu.view import PacketView
from tests.mediaserver.sfu.builders import VideoSource, vp8_view


def svc_view(sid: int, tid: int, *, keyframe: bool = False, start: bool = True,
             end: bool = True, switch: bool = False) -> PacketView:  # fmt: skip
    return PacketView(b"", 98, False, 0, 0, 1, keyframe, start, end, sid, tid, switch)


def test_simulcast_waits_for_a_keyframe_of_the_target_and_asks_for_one() -> None:
    s = SimulcastSelector([10, 20, 30])
    assert s.current is None and s.target_stream == 30
    assert s.select(vp8_view(1, 0), 30) == DROP | KEYFRAME_NEEDED
    assert s.select(vp8_view(1, 0, keyframe=True), 10) == DROP  # Not the target.
    assert s.select(vp8_view(2, 0, keyframe=True), 30) == FORWARD | SWITCH
    assert s.current == (2, 7) and s.current_stream == 30
    assert s.select(vp8_view(3, 0), 30) == FORWARD
    assert s.keyframe_stream(30) == 30


def test_simulcast_keeps_the_old_stream_until_the_new_one_has_a_keyframe() -> None:
    s = SimulcastSelector([10, 20])
    s.select(vp8_view(1, 0, keyframe=True), 20)
    s.set_target(0)
    assert s.target_stream == 10
    assert s.select(vp8_view(2, 0), 20) == FORWARD | KEYFRAME_NEEDED
    assert s.keyframe_stream(20) == 10
    assert s.select(vp8_view(5, 0), 10) == DROP | KEYFRAME_NEEDED
    assert s.select(vp8_view(6, 0, keyframe=True), 10) == FORWARD | SWITCH
    assert s.select(vp8_view(3, 0), 20) == DROP
    s.set_target_stream(20)
    with pytest.raises(InvalidArgument):
        s.set_target_stream(99)


def test_simulcast_streams_can_change_and_must_not_be_empty() -> None:
    s = SimulcastSelector([1, 2, 3])
    s.set_target(1)
    s.set_streams([4, 5])
    assert s.stream_ids == (4, 5) and s.target_stream == 5
    with pytest.raises(InvalidArgument):
        s.set_streams([])
    with pytest.raises(InvalidArgument):
        SimulcastSelector([])
    s.select(vp8_view(1, 0, keyframe=True), 5)
    s.reset()
    assert s.current is None


def test_temporal_selector_drops_upper_layers_and_switches_up_at_sync_points() -> None:
    sel = Vp8TemporalSelector(temporal=0)
    src = VideoSource(65530)
    verdicts = [sel.select(v, 1) for v in src.frame_views(keyframe=True)]
    assert verdicts == [FORWARD | SWITCH, FORWARD]
    for _ in range(7):
        frame = src.frame_views()
        tid = frame[0].temporal_id
        expected = FORWARD if tid == 0 else FILTERED
        assert [sel.select(v, 1) for v in frame] == [expected, expected]
    sel.set_target(0, 2)
    # Frame 8 is TID 0; frame 9 is TID 2 with Y: the switch up happens there.
    assert sel.select(src.frame_views()[0], 1) == FORWARD
    assert [sel.select(v, 1) for v in src.frame_views()] == [FORWARD, FORWARD]
    assert sel.current == (0, 2)
    sel.set_target(0, 1)
    frame = src.frame_views()  # TID 1: still forwarded after the switch down.
    assert [sel.select(v, 1) for v in frame] == [FORWARD, FORWARD]
    assert [sel.select(v, 1) for v in src.frame_views()] == [FILTERED, FILTERED]  # TID 2


def test_temporal_selector_does_not_switch_up_without_a_sync_point() -> None:
    sel = Vp8TemporalSelector(temporal=0)
    sel.select(vp8_view(1, 0, keyframe=True), 1)
    sel.set_target(0, 2)
    assert sel.select(vp8_view(2, 3000, tid=2, sync=False), 1) == FILTERED
    assert sel.select(vp8_view(3, 6000, tid=1, sync=True), 1) == FORWARD
    assert sel.select(vp8_view(4, 9000, tid=2, sync=False), 1) == FILTERED
    assert sel.select(vp8_view(5, 9000, tid=0, keyframe=True), 1) == FORWARD
    assert sel.select(vp8_view(6, 9000, tid=2, sync=False), 1) == FORWARD


def test_temporal_selector_needs_a_keyframe_for_a_new_stream() -> None:
    sel = Vp8TemporalSelector()
    assert sel.current is None
    assert sel.select(vp8_view(1, 0), 1) == DROP | KEYFRAME_NEEDED
    assert sel.keyframe_stream(1) == 1
    assert sel.select(vp8_view(1, 0, keyframe=True), 1) == FORWARD | SWITCH
    sel.reset()
    assert sel.select(vp8_view(2, 0), 1) == DROP | KEYFRAME_NEEDED


def test_simulcast_with_temporal_filtering() -> None:
    s = SimulcastSelector([1], temporal=True)
    s.set_target(0, 0)
    assert s.select(vp8_view(1, 0, keyframe=True), 1) == FORWARD | SWITCH
    assert s.select(vp8_view(2, 0, tid=2, sync=True), 1) == FILTERED
    assert s.current == (0, 0)


def test_svc_selector_drops_upper_spatial_layers_and_moves_the_marker() -> None:
    s = Vp9SvcSelector(spatial=1, temporal=2)
    assert s.select(svc_view(0, 0), 7) == DROP | KEYFRAME_NEEDED
    assert s.select(svc_view(0, 0, keyframe=True, end=True), 7) == FORWARD | SWITCH
    assert s.select(svc_view(1, 0, start=True, end=True), 7) == FORWARD | SET_MARKER
    assert s.select(svc_view(2, 0, start=True, end=True), 7) == FILTERED
    assert s.current == (1, 2)
    s.set_target(2, 2)
    assert s.select(svc_view(0, 1), 7) & KEYFRAME_NEEDED
    assert s.select(svc_view(2, 1), 7) == FILTERED | KEYFRAME_NEEDED
    s.set_target(0, 0)
    assert s.select(svc_view(0, 2, start=True), 7) == FILTERED  # Down at the next picture.
    assert s.select(svc_view(1, 0, start=True), 7) == FILTERED
    assert s.current == (0, 0)
    s.set_target(0, 2)
    assert s.select(svc_view(0, 1, switch=True), 7) == FORWARD | SET_MARKER
    assert s.keyframe_stream(7) == 7
    s.reset()
    assert s.current is None


def test_av1_selector_follows_the_same_rules() -> None:
    s = Av1DdSelector(spatial=0, temporal=0)
    assert s.select(svc_view(0, 0, keyframe=True, end=False), 3) == FORWARD | SWITCH
    assert s.select(svc_view(0, 1, start=False), 3) == FILTERED


def test_null_selector_forwards_everything_and_resyncs_on_a_new_stream() -> None:
    s = NullSelector()
    assert s.current is None
    assert s.select(vp8_view(1, 0), 5) == FORWARD | SWITCH
    assert s.select(vp8_view(2, 0), 5) == FORWARD
    assert s.select(vp8_view(3, 0), 6) == FORWARD | SWITCH
    s.set_target(0)
    assert s.current == (0, 0) and s.keyframe_stream(6) == 6
    s.reset()
    assert s.current is None

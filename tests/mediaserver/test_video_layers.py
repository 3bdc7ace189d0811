"""Layer dropping on the server's m-lines, on generated VP8 and VP9 packet sequences.

The packets go through the objects the media engine uses per packet: the
:class:`~mediaserver.video.VideoRouter`'s :class:`~mediaserver.video.OutStream` with a layer
target (``set_layer_target`` → ``engage_layers`` → ``forward_layers``), the publisher
stream's :class:`~mediaserver.sfu.view.PacketViewParser`, and the m-line's retransmission
history. Checked: sequence numbers without gaps across dropped layers, switches and
wrap-around; timestamps kept; layers going up only at switching points or key frames; the
marker bit on the last packet of the highest spatial layer forwarded.
"""

from __future__ import annotations

import pytest

from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.layers import MAX_LAYER
from mediaserver.sfu.view import PacketView, PacketViewParser
from mediaserver.video import OutStream, VideoRouter
from tests.mediaserver.sfu.builders import START_POINTS, VideoSource, vp8_view

STREAM = 7
OTHER = 8


def _router(last_seq: int) -> tuple[VideoRouter, OutStream, list[int]]:
    requests: list[int] = []
    router = VideoRouter(lambda publisher, stream_id, now: requests.append(stream_id))
    publisher, viewer = object(), object()
    router.publish(publisher, [STREAM, OTHER], now=0.0)
    router.subscribe(viewer, {"2": (0xABC, 100, STREAM)}, now=0.0)
    (out,) = router.outs(STREAM)
    router.switch(out)
    out.last_seq, out.last_ts = last_seq, 0xFFFFF000
    requests.clear()
    return router, out, requests


def _send(router: VideoRouter, out: OutStream, views: list[PacketView], fmt: str, now: float,
          stream_id: int = STREAM) -> list[RtpPacket]:  # fmt: skip
    sent: list[RtpPacket] = []
    for view in views:
        if out.layers is None:
            router.engage_layers(out, fmt, now)
        data = out.forward_layers(view, stream_id, now)
        if data is not None:
            sent.append(RtpPacket.parse(data))
    return sent


def _contiguous(packets: list[RtpPacket], after: int) -> None:
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(after + 1 + i) & 0xFFFF for i in range(len(seqs))], seqs


@pytest.mark.parametrize("start", START_POINTS)
def test_vp8_temporal_layers_are_dropped_without_gaps(start: int) -> None:
    router, out, _ = _router(last_seq=(start - 1) & 0xFFFF)
    router.set_layer_target(out.subscriber, "2", 0, 0)
    source = VideoSource(seq=40000, ts=90000)  # L1T3, two packets per frame.
    views = source.frame_views(keyframe=True)
    for _ in range(11):
        views += source.frame_views()
    sent = _send(router, out, views, "vp8", now=1.0)
    # The TL0 frames only: the key frame and frames 4 and 8, two packets each.
    tids = [PacketViewParser("vp8").parse(p.serialize()).temporal_id for p in sent]
    assert set(tids) == {0} and len(sent) == 2 * 3
    _contiguous(sent, (start - 1) & 0xFFFF)
    assert all(p.ssrc == 0xABC and p.payload_type == 100 for p in sent)
    assert len({p.timestamp for p in sent}) == 3, "one timestamp per frame"
    assert (sent[2].timestamp - sent[0].timestamp) & 0xFFFFFFFF == 4 * 3000, "spacing kept"
    # Up to every layer: only at a frame that is a switching point (Y=1 in this source).
    router.set_layer_target(out.subscriber, "2", 0, MAX_LAYER)
    more = _send(router, out, source.frame_views(), "vp8", now=1.1)
    assert more and more[0].sequence_number == (sent[-1].sequence_number + 1) & 0xFFFF
    # NACKs are answered with what was sent.
    assert out.history.receive_nack([sent[3].sequence_number], now=1.2) == [sent[3].serialize()]


def test_vp8_does_not_go_up_without_a_switching_point() -> None:
    router, out, _ = _router(last_seq=100)
    router.set_layer_target(out.subscriber, "2", 0, 0)
    source = VideoSource(seq=5, ts=0, packets=1)
    base = _send(router, out, source.frame_views(keyframe=True), "vp8", now=0.0)
    router.set_layer_target(out.subscriber, "2", 0, 2)
    # A TL2 frame without Y: it stays dropped.
    dropped = _send(router, out, [vp8_view(6, 3000, tid=2, sync=False, marker=True)], "vp8", 0.1)
    assert dropped == []
    later = _send(router, out, [vp8_view(7, 6000, tid=1, sync=True, marker=True)], "vp8", 0.2)
    assert [p.sequence_number for p in later] == [base[-1].sequence_number + 1]


def test_a_source_switch_keeps_numbering_with_layers_engaged() -> None:
    router, out, _ = _router(last_seq=65530)
    router.set_layer_target(out.subscriber, "2", 0, 0)
    first = VideoSource(seq=1000, ts=0, ssrc=1)
    a = _send(router, out, first.frame_views(keyframe=True) + first.frame_views(), "vp8", 0.0)
    router.select(out.subscriber, "2", OTHER, now=0.5)
    router.switch(out)
    assert out.layers is None, "re-engaged for the new stream"
    second = VideoSource(seq=20, ts=777, ssrc=2)
    b = _send(router, out, second.frame_views(keyframe=True), "vp8", 0.5, stream_id=OTHER)
    _contiguous(a + b, 65530)
    assert b[0].timestamp != a[-1].timestamp


def _vp9(seq: int, ts: int, sid: int, tid: int, *, key: bool = False, start: bool = True,
         end: bool = True, switch: bool = True, marker: bool = False) -> PacketView:  # fmt: skip
    first = (0 if key else 0x40) | 0x20 | (0x08 if start else 0) | (0x04 if end else 0)
    layer = tid << 5 | (0x10 if switch else 0) | sid << 1
    data = RtpPacket(
        payload_type=98, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=9, marker=marker,
        payload=bytes([first, layer, 0]) + b"\x00" * 10,
    ).serialize()  # fmt: skip
    return PacketViewParser("vp9").parse(data)


def _l2t2_picture(seq: int, ts: int, tid: int, key: bool = False) -> list[PacketView]:
    """One picture: spatial layer 0 then 1, one packet each, marker on the last."""
    return [
        _vp9(seq, ts, 0, tid, key=key),
        _vp9(seq + 1, ts, 1, tid, key=False, marker=True),
    ]


@pytest.mark.parametrize("start", START_POINTS)
def test_vp9_svc_drops_the_upper_spatial_layer_and_moves_the_marker(start: int) -> None:
    router, out, requests = _router(last_seq=(start - 1) & 0xFFFF)
    router.set_layer_target(out.subscriber, "2", 0, MAX_LAYER)
    views = _l2t2_picture(300, 0, 1)  # a delta picture first: engaging waits for a key frame
    assert _send(router, out, views, "vp9", now=0.0) == []
    assert requests == [STREAM], "a key frame was asked for"
    views = _l2t2_picture(302, 3000, 0, key=True)
    for i in range(1, 6):
        views += _l2t2_picture(302 + 2 * i, 3000 * (i + 1), i % 2)
    sent = _send(router, out, views, "vp9", now=0.1)
    assert len(sent) == 6, "spatial layer 0 of each picture"
    _contiguous(sent, (start - 1) & 0xFFFF)
    assert all(p.marker for p in sent), "each forwarded picture ends with the marker"
    # Temporal cap as well: only TID 0 pictures.
    router.set_layer_target(out.subscriber, "2", 0, 0)
    views = []
    for i in range(6, 10):
        views += _l2t2_picture(302 + 2 * i, 3000 * (i + 1), i % 2)
    capped = _send(router, out, views, "vp9", now=0.2)
    assert len(capped) == 2
    _contiguous(sent + capped, (start - 1) & 0xFFFF)

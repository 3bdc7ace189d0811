"""The single-layer forwarding tables: renumbering, extensions, keyframes, NACKs."""

from __future__ import annotations

from hypothesis import given, strategies as st

from mediaserver.rtp.packet import RtpPacket
from mediaserver.video import OutStream, VideoRouter


def _packet(seq: int, ts: int, ssrc: int, *, ext: bool = False, payload: bytes = b"vp8") -> bytes:
    extensions = {4: b"1", 3: b"\x00\x01"} if ext else {}
    return RtpPacket(
        payload_type=96, sequence_number=seq, timestamp=ts, ssrc=ssrc, marker=False,
        extension_profile=0xBEDE if ext else None, extensions=extensions, payload=payload,
    ).serialize()  # fmt: skip


TWCC_BLOCK = bytes([0xBE, 0xDE, 0x00, 0x01, 0x51, 0x12, 0x34, 0x00])
"""A one-byte-header extension block holding transport-wide sequence number 0x1234 (id 5)."""


@given(
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=3),
    extensions=st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=4), max_size=3),
    marker=st.booleans(),
    payload=st.binary(max_size=40),
    padding=st.sampled_from([b"", b"\x01", b"\x00\x00\x03"]),
    stamp=st.booleans(),
)
def test_copies_keep_csrcs_marker_payload_and_padding_and_carry_only_our_extension(
    csrcs: list[int],
    extensions: dict[int, bytes],
    marker: bool,
    payload: bytes,
    padding: bytes,
    stamp: bool,
) -> None:
    source = RtpPacket(
        payload_type=96, sequence_number=7, timestamp=9, ssrc=1, marker=marker,
        csrcs=tuple(csrcs), extension_profile=0xBEDE if extensions else None,
        extensions=extensions, payload=payload, padding=padding,
    )  # fmt: skip
    out = OutStream(subscriber=object(), mid="2", ssrc=0xAAAA, payload_type=100)
    copy = RtpPacket.parse(out.rewrite(source.serialize(), TWCC_BLOCK if stamp else b""))
    assert (copy.csrcs, copy.marker, copy.payload, copy.padding) == (
        source.csrcs,
        marker,
        payload,
        padding,
    )
    assert (copy.ssrc, copy.payload_type) == (0xAAAA, 100)
    assert copy.extensions == ({5: b"\x12\x34"} if stamp else {})
    assert out.frame_ended is marker


def test_an_m_line_keeps_its_ssrc_and_numbers_on_across_a_source_switch() -> None:
    out = OutStream(subscriber=object(), mid="2", ssrc=0xAAAA, payload_type=100)
    out.last_seq, out.last_ts = 65534, 0xFFFFFF00
    first = [RtpPacket.parse(out.rewrite(_packet(s, 9000, 1, ext=True))) for s in (500, 501)]
    assert [p.sequence_number for p in first] == [65535, 0]  # wraps
    assert all(p.ssrc == 0xAAAA and p.payload_type == 100 and not p.extensions for p in first)
    switched = RtpPacket.parse(out.rewrite(_packet(7, 123, 2)))
    assert switched.sequence_number == 1
    assert switched.timestamp == (first[-1].timestamp + 3000) & 0xFFFFFFFF


def test_nacks_are_answered_from_what_was_sent() -> None:
    out = OutStream(subscriber=object(), mid="2", ssrc=9, payload_type=96)
    sent = [out.forward(_packet(100 + i, 3000 * i, 1), now=10.0) for i in range(5)]
    seqs = [RtpPacket.parse(p).sequence_number for p in sent]
    resent = out.history.receive_nack([seqs[1], seqs[3]], now=10.1)
    assert resent == [sent[1], sent[3]]
    assert out.history.receive_nack([seqs[1]], now=12.0) == [], "too old to resend"


def test_subscriptions_request_keyframes_and_pauses_stop_forwarding() -> None:
    requests: list[object] = []
    router = VideoRouter(lambda publisher, stream_id, now: requests.append(publisher))
    publisher, viewer = object(), object()
    router.publish(publisher, [7], now=0.0)
    router.subscribe(viewer, {"2": (111, 96, 7)}, now=1.0)
    assert requests == [publisher]
    (out,) = router.outs(7)
    assert out.pending_stream_id == 7 and out.stream_id == 0, "it waits for a keyframe"
    router.switch(out)
    assert out.ssrc == 111 and router.out_for_ssrc(viewer, 111) is out
    router.keyframe(7, now=1.1)
    assert len(requests) == 1, "throttled"
    router.pause(viewer, {7}, True, now=2.0)
    assert router.outs(7) == ()
    router.pause(viewer, {7}, False, now=2.1)
    assert len(router.outs(7)) == 1 and len(requests) == 2
    assert out.pending_stream_id == 7, "a resumed stream restarts at a keyframe"
    router.switch(out)
    router.select(viewer, "2", 0, now=3.0)
    assert router.outs(7) == ()
    router.unsubscribe(viewer)
    router.unpublish(publisher)
    assert router.publishers == {}


def test_a_layer_switch_waits_for_the_new_layer_s_keyframe() -> None:
    requests: list[int] = []
    router = VideoRouter(lambda publisher, stream_id, now: requests.append(stream_id))
    publisher, viewer = object(), object()
    router.publish(publisher, [1, 2, 3], now=0.0)  # low, mid, hi
    router.subscribe(viewer, {"2": (50, 96, 1)}, now=0.0)
    (out,) = router.outs(1)
    router.switch(out)
    router.select(viewer, "2", 3, now=1.0)
    assert requests == [1, 3], "a keyframe of the new layer is asked for at once"
    assert router.outs(1) == (out,) and router.outs(3) == (out,), "both until it switches"
    assert out.stream_id == 1 and out.pending_stream_id == 3
    router.switch(out)
    assert router.outs(1) == () and router.outs(3) == (out,)


def test_a_codec_change_restarts_the_m_lines_at_a_keyframe() -> None:
    requests: list[int] = []
    router = VideoRouter(lambda publisher, stream_id, now: requests.append(stream_id))
    publisher, viewer, other = object(), object(), object()
    router.publish(publisher, [4], now=0.0)
    router.subscribe(viewer, {"2": (50, 96, 4)}, now=0.0)
    router.subscribe(other, {"2": (60, 96, 0)}, now=0.0)
    (out,) = router.outs(4)
    router.switch(out)
    requests.clear()
    router.restart([4], now=5.0)
    assert (out.stream_id, out.pending_stream_id) == (0, 4), "waits for the next key frame"
    assert requests == [4] and router.outs(4) == (out,)
    idle = router.out_for_ssrc(other, 60)
    assert idle is not None and idle.stream_id == 0, "m-lines of other streams are untouched"


def test_a_restart_keeps_a_pending_layer_switch() -> None:
    router = VideoRouter(lambda publisher, stream_id, now: None)
    publisher, viewer = object(), object()
    router.publish(publisher, [4, 5], now=0.0)
    router.subscribe(viewer, {"2": (50, 96, 4)}, now=0.0)
    (out,) = router.outs(4)
    router.switch(out)
    router.select(viewer, "2", 5, now=1.0)
    router.restart([4, 5], now=2.0)
    assert (out.stream_id, out.pending_stream_id) == (0, 5)
    assert router.outs(4) == () and router.outs(5) == (out,)


def test_vp8_picture_numbers_continue_across_a_layer_switch() -> None:
    """Each simulcast layer numbers its pictures on its own; on the subscriber's m-line
    the picture id and TL0PICIDX go on by one at the switch (mediaserver.sfu.picture_ids),
    so the browser's frame reference finder never sees them jump back."""
    from mediacodecs.vp8 import Vp8Descriptor

    def vp8(pid: int, tl0: int, *, keyframe: bool) -> bytes:
        descriptor = Vp8Descriptor(
            start_of_partition=True, picture_id=pid, long_picture_id=True, tl0_pic_idx=tl0,
            temporal_id=0, layer_sync=True,
        ).serialize()  # fmt: skip
        return descriptor + (b"\x00" if keyframe else b"\x01") + b"frame"

    out = OutStream(subscriber=object(), mid="2", ssrc=0xAAAA, payload_type=100)
    out.use_payload_format("vp8")
    sent = [
        out.forward(
            _packet(10 + i, 3000 * i, 1, payload=vp8(700 + i, 40 + i, keyframe=i == 0)), 1.0
        )
        for i in range(3)
    ]
    switched = out.forward(_packet(900, 5, 2, ext=True, payload=vp8(12, 200, keyframe=True)), 1.1)
    after = out.forward(_packet(901, 3005, 2, payload=vp8(13, 201, keyframe=False)), 1.2)
    ids = [
        (d.picture_id, d.tl0_pic_idx)
        for d in (Vp8Descriptor.parse(RtpPacket.parse(p).payload) for p in [*sent, switched, after])
    ]
    assert ids == [(700, 40), (701, 41), (702, 42), (703, 43), (704, 44)]

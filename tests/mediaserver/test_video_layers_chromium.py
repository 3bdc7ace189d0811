"""Layer dropping on real Chromium SVC streams, checked by decoding what is forwarded.

The vector (tests/vectors/rtp/svc, see its README) is a camera that Chromium sent to the
server as VP9 ``L3T3``: three spatial layers (320x180, 640x360, 1280x720), three temporal
layers, flexible mode (RFC 9628 §4.2). For every layer target it goes through what the
media engine runs per packet for a subscriber m-line (the publisher stream's
:class:`~mediaserver.sfu.view.PacketViewParser`, then an :class:`~mediaserver.video.OutStream`
with a target from :meth:`~mediaserver.video.VideoRouter.set_layer_target`). The forwarded
packets are depacketized and decoded with libvpx (PyAV) and checked: no decoder error, one
picture per forwarded temporal layer picture, every picture at the target's resolution,
sequence numbers without gaps, the marker on each picture's last packet, and every
picture's references (P_DIFF) naming a picture that was forwarded. The vector also holds
Chromium's padding-only probe packets on the media SSRC, as captured: none is forwarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from mediacodecs.vp9 import Vp9Descriptor
from mediaserver.rtp.dump import read_dump
from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.view import PacketViewParser
from mediaserver.video import VideoRouter

VECTOR = Path(__file__).parents[1] / "vectors" / "rtp" / "svc" / "chromium_vp9_l3t3.rtp"
SIZES = [(320, 180), (640, 360), (1280, 720)]
STREAM = 7


def _packets() -> list[bytes]:
    return list(read_dump(VECTOR.read_bytes()))


def _forward(packets: list[bytes], spatial: int, temporal: int) -> list[RtpPacket]:
    router = VideoRouter(lambda publisher, stream_id, now: None)
    publisher, viewer = object(), object()
    router.publish(publisher, [STREAM], now=0.0)
    router.subscribe(viewer, {"2": (0xABC, 98, STREAM)}, now=0.0)
    (out,) = router.outs(STREAM)
    router.switch(out)
    out.use_payload_format("vp9")
    router.set_layer_target(viewer, "2", spatial, temporal)
    parser = PacketViewParser("vp9")
    sent: list[RtpPacket] = []
    for i, data in enumerate(packets):
        view = parser.parse(data)
        if out.layers is None:
            router.engage_layers(out, "vp9", i / 1000)
        copy = out.forward_layers(view, STREAM, i / 1000)
        if copy is not None:
            sent.append(RtpPacket.parse(copy))
    return sent


def _pictures(packets: list[RtpPacket]) -> Iterator[list[RtpPacket]]:
    """The media packets grouped by picture (RTP timestamp), in order; padding-only
    packets (Chromium's probes on the media SSRC) left out."""
    picture: list[RtpPacket] = []
    for packet in packets:
        if not packet.payload:
            continue
        if picture and packet.timestamp != picture[0].timestamp:
            yield picture
            picture = []
        picture.append(packet)
    if picture:
        yield picture


def _decode(packets: list[RtpPacket]) -> list[tuple[int, int]]:
    """Decoded picture sizes: each picture's layer frames, descriptors removed, in one
    buffer (libvpx decodes the frames of a buffer in turn and shows the last)."""
    decoder = av.CodecContext.create("libvpx-vp9", "r")
    sizes: list[tuple[int, int]] = []
    for picture in _pictures(packets):
        data = b"".join(p.payload[Vp9Descriptor.parse(p.payload).size :] for p in picture)
        for frame in decoder.decode(av.Packet(data)):
            sizes.append((frame.width, frame.height))
    return sizes


def _source_pictures(packets: list[bytes], temporal: int) -> int:
    parser = PacketViewParser("vp9")
    media = [p for p in packets if RtpPacket.parse(p).payload]
    return len({v.timestamp for v in map(parser.parse, media) if v.temporal_id <= temporal})


def test_the_vector_is_a_chromium_l3t3_stream() -> None:
    packets = _packets()
    parser = PacketViewParser("vp9")
    views = [parser.parse(p) for p in packets if RtpPacket.parse(p).payload]
    assert views[0].keyframe
    assert {(v.spatial_id, v.temporal_id) for v in views} == {
        (s, t) for s in range(3) for t in range(3)
    }
    assert _decode([RtpPacket.parse(p) for p in packets]) == [SIZES[2]] * _source_pictures(
        packets, 2
    )


@pytest.mark.parametrize("temporal", [0, 1, 2])
@pytest.mark.parametrize("spatial", [0, 1, 2])
def test_each_layer_target_decodes_at_its_size_and_frame_rate(spatial: int, temporal: int) -> None:
    packets = _packets()
    sent = _forward(packets, spatial, temporal)

    # Decodable, at the target's size, one picture per forwarded temporal-layer picture.
    assert _decode(sent) == [SIZES[spatial]] * _source_pictures(packets, temporal)
    # Chromium's padding-only probes are not the subscriber's to carry.
    assert all(p.payload for p in sent)
    # Gapless sequence numbers; the marker ends each picture.
    first = sent[0].sequence_number
    assert [p.sequence_number for p in sent] == [(first + i) & 0xFFFF for i in range(len(sent))]
    for picture in _pictures(sent):
        assert [p.marker for p in picture] == [False] * (len(picture) - 1) + [True]
    # Flexible mode: each picture's references (picture id - P_DIFF) were forwarded, in
    # the same spatial layer, so the receiver's reference finder never waits.
    forwarded: set[tuple[int, int]] = set()
    for packet in sent:
        if not packet.payload:
            continue
        descriptor = Vp9Descriptor.parse(packet.payload)
        assert descriptor.flexible and descriptor.picture_id is not None
        for diff in descriptor.p_diffs:
            reference = ((descriptor.picture_id - diff) & 0x7FFF, descriptor.spatial_id)
            assert reference in forwarded, (descriptor.picture_id, diff)
        forwarded.add((descriptor.picture_id, descriptor.spatial_id))


def test_a_forwarding_m_line_drops_layers_from_the_next_picture_without_a_key_frame() -> None:
    """The allocator lowers an m-line that forwards the whole stream: its numbering goes on
    seamlessly and the next picture is the low layer, no key frame asked for."""
    packets = _packets()
    requests: list[int] = []
    router = VideoRouter(lambda publisher, stream_id, now: requests.append(stream_id))
    publisher, viewer = object(), object()
    router.publish(publisher, [STREAM], now=0.0)
    router.subscribe(viewer, {"2": (0xABC, 98, STREAM)}, now=0.0)
    (out,) = router.outs(STREAM)
    router.switch(out)
    out.use_payload_format("vp9")
    requests.clear()
    parser = PacketViewParser("vp9")
    half = len(packets) // 2
    sent = [RtpPacket.parse(out.forward(p, 0.0)) for p in packets[:half]]
    router.set_layer_target(viewer, "2", 0, 2)
    for data in packets[half:]:
        view = parser.parse(data)
        if out.layers is None:
            router.engage_layers(out, "vp9", 1.0, view)
        copy = out.forward_layers(view, STREAM, 1.0)
        if copy is not None:
            sent.append(RtpPacket.parse(copy))

    assert requests == []
    first = sent[0].sequence_number
    assert [p.sequence_number for p in sent] == [(first + i) & 0xFFFF for i in range(len(sent))]
    sizes = _decode(sent)
    assert sizes[0] == SIZES[2] and sizes[-1] == SIZES[0]
    switch = sizes.index(SIZES[0])
    assert set(sizes[:switch]) == {SIZES[2]} and set(sizes[switch:]) == {SIZES[0]}
    assert len(sizes) == _source_pictures(packets, 2)
    # The timestamps of the packets of a picture stay together across the engagement.
    for picture in _pictures(sent):
        assert len({p.timestamp for p in picture}) == 1

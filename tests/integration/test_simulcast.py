"""Simulcast through the SFU: a camera in two VP8 layers reaches two subscribers, and one
of them switches layers without renegotiation and without a decoder error.

The publisher (bench/simulcast.py) sends real libvpx VP8 at 160x120 ("low") and 320x240
("hi") with RIDs, like Chromium with simulcast on; the subscribers are aiortc peers that
decode what they receive (chime-signaling-protocol.md §4.2, §4.3, §4.5).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bench.peer import ChimePeer
from bench.simulcast import SimulcastPublisher
from bench.twccpeer import TwccSubscriber
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR
LOW, HI = (160, 120), (320, 240)


async def _frames_at(peer: ChimePeer, mid: str, size: tuple[int, int], count: int) -> None:
    """Wait until ``count`` more frames of ``size`` were decoded on ``mid``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T

    def decoded() -> int:
        sizes = peer.video_sizes.get(mid, [])
        if not sizes or sizes[-1][0] != size:
            return 0
        return peer.video_frames_received[mid] - sizes[-1][1]

    while decoded() < count:
        assert loop.time() < deadline, f"no {size} frames on mid {mid}: {peer.video_sizes}"
        await asyncio.sleep(0.05)


async def test_a_subscriber_switches_simulcast_layers(chime: Any, server: ServerProcess) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="sim"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer-1", "viewer-2")
    ]
    camera = SimulcastPublisher(DtlsCertificate.generate())
    publisher = SignalingClient(meeting, people[0])
    viewers = [(SignalingClient(meeting, p), ChimePeer(None, receive_videos=1)) for p in people[1:]]
    try:
        for client in (publisher, *(c for c, _ in viewers)):
            await client.connect(T)
            await client.join(T)
        ack, (low, hi) = await camera.publish(publisher)
        assert "a=simulcast:recv low;hi" in ack.sdp_answer, "the answer mirrors the RIDs"

        for client, peer in viewers:
            await client.wait_for(lambda c: len(c.index_sources) == 2, T, "both layers")
            groups = {s.group_id for s in client.index_sources}
            assert len(groups) == 1, "the two layers are one source"
            answer = await client.subscribe(await peer.create_offer(), receive_stream_ids=[0, low])
            await peer.set_answer(answer.sdp_answer)
        for _, peer in viewers:
            await _frames_at(peer, "2", LOW, 10)

        # Viewer 1 switches to the high layer on the same m-line, without renegotiation.
        client, peer = viewers[0]
        await client.update_remote_video("2", hi)
        await _frames_at(peer, "2", HI, 10)
        # ... and back down.
        await client.update_remote_video("2", low)
        await _frames_at(peer, "2", LOW, 10)
        # Viewer 2 kept the low layer throughout.
        other = viewers[1][1]
        assert [size for size, _ in other.video_sizes["2"]] == [LOW]
        # A switch waits for a keyframe of the new layer, which the server asked for.
        assert camera.layers[1].keyframes >= 2
        # BITRATES (§4.4, every 4 s) lists both layers as sending.
        await client.wait_for(
            lambda c: (
                c.bitrates is not None
                and {b.source_stream_id for b in c.bitrates.bitrates} >= {low, hi}
            ),
            T,
            "BITRATES with both layers",
        )
        assert client.bitrates is not None
        assert all(b.avg_bitrate_bps > 0 for b in client.bitrates.bitrates)
    finally:
        camera.close()
        await publisher.close()
        for client, peer in viewers:
            await client.close()
            await peer.close()


async def _until(done: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not done():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.05)


def _steps(values: list[int], bits: int) -> set[int]:
    """The differences between successive distinct values, modulo ``2**bits``."""
    distinct = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    return {(b - a) % (1 << bits) for a, b in itertools.pairwise(distinct)}


async def test_picture_numbers_run_on_across_switches_and_a_stopped_layer_leaves_bitrates(
    chime: Any, server: ServerProcess
) -> None:
    """Each layer numbers its VP8 pictures from its own random start (like libwebrtc); the
    subscriber's m-line shows one picture id and TL0PICIDX sequence, +1 per picture, across
    two layer switches (a jump back freezes Chromium's decoder: mediaserver.sfu.picture_ids).
    When the camera turns its high layer off, BITRATES and INDEX stop listing it (§4.4,
    §3.2), until it sends again."""
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="pid"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    camera = SimulcastPublisher(DtlsCertificate.generate())
    publisher, viewer = SignalingClient(meeting, people[0]), SignalingClient(meeting, people[1])
    peer = TwccSubscriber(DtlsCertificate.generate(), receive_videos=1)
    try:
        for client in (publisher, viewer):
            await client.connect(T)
            await client.join(T)
        _, (low, hi) = await camera.publish(publisher)
        await viewer.wait_for(lambda c: len(c.index_sources) == 2, T, "both layers")
        await peer.start()
        answer = await viewer.subscribe(peer.offer(), receive_stream_ids=[0, low])
        await peer.connect(answer.sdp_answer)

        def pictures_of(size: tuple[int, int], count: int) -> Callable[[], bool]:
            start = len(peer.pictures)
            return lambda: bool(
                peer.keyframe_sizes
                and peer.keyframe_sizes[-1] == size
                and len(peer.pictures) - start >= count
            )

        await _until(pictures_of(LOW, 10), f"LOW pictures: {peer.keyframe_sizes}")
        await viewer.update_remote_video("2", hi)
        await _until(pictures_of(HI, 10), f"HI pictures: {peer.keyframe_sizes}")
        await viewer.update_remote_video("2", low)
        await _until(pictures_of(LOW, 10), f"LOW again: {peer.keyframe_sizes}")
        assert [size for i, size in enumerate(peer.keyframe_sizes)
                if i == 0 or size != peer.keyframe_sizes[i - 1]] == [LOW, HI, LOW]  # fmt: skip
        # Loopback may lose a picture (a step of 2); a jump to the other layer's numbers
        # would show as a step of thousands (the layers start 2**15 apart on average).
        picture_ids = [pid for pid, _ in peer.pictures]
        tl0s = [tl0 for _, tl0 in peer.pictures]
        assert max(_steps(picture_ids, 15)) <= 2, _steps(picture_ids, 15)
        assert max(_steps(tl0s, 8)) <= 2, _steps(tl0s, 8)

        await viewer.wait_for(
            lambda c: (
                c.bitrates is not None
                and {b.source_stream_id for b in c.bitrates.bitrates} == {low, hi}
            ),
            T,
            "BITRATES with both layers",
        )
        camera.layers[1].active = False
        await viewer.wait_for(
            lambda c: (
                c.bitrates is not None
                and {b.source_stream_id for b in c.bitrates.bitrates} == {low}
            ),
            T,
            "BITRATES without the stopped layer",
        )
        # INDEX leaves the layer out too (§3.2: a layer disabled), so a client choosing
        # its own layers moves off it; it comes back when the layer sends again.
        await viewer.wait_for(
            lambda c: {s.stream_id for s in c.index_sources} == {low}, T, "INDEX without it"
        )
        camera.layers[1].active = True
        await viewer.wait_for(
            lambda c: {s.stream_id for s in c.index_sources} == {low, hi}, T, "INDEX with it"
        )
    finally:
        camera.close()
        peer.close()
        await publisher.close()
        await viewer.close()

"""Video through the SFU: a Python client's camera reaches two subscribers, who decode it.

The publisher is an aiortc peer sending VP8 from a synthetic camera on mid 1 (SUBSCRIBE
duplex DUPLEX with a video send stream, chime-signaling-protocol.md §3.3, §4.2); each
subscriber renegotiates with ``receive_stream_ids`` naming the published stream on its
``recvonly`` m-line (§4.3) and must decode advancing frames.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import av
import pytest
from aiortc.mediastreams import VideoStreamTrack

from bench.peer import ChimePeer
from signaling.client import SignalingClient
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR


class Attendee:
    def __init__(self, meeting: dict[str, Any], attendee: dict[str, Any], peer: ChimePeer):
        self.client = SignalingClient(meeting, attendee)
        self.peer = peer

    async def join(self) -> None:
        await self.client.connect()
        await self.client.join()

    async def close(self) -> None:
        await self.client.close()
        await self.peer.close()


def _attendee(chime: Any, meeting: dict[str, Any], user: str, peer: ChimePeer) -> Attendee:
    attendee = chime.create_attendee(MeetingId=meeting["Meeting"]["MeetingId"], ExternalUserId=user)
    return Attendee(meeting, attendee, peer)


async def test_a_camera_reaches_two_subscribers(chime: Any, server: ServerProcess) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="video"
    )
    publisher = _attendee(chime, meeting, "camera", ChimePeer(440.0, video=VideoStreamTrack()))
    viewers = [
        _attendee(chime, meeting, f"viewer-{i}", ChimePeer(None, receive_videos=1))
        for i in range(2)
    ]
    everyone = [publisher, *viewers]
    try:
        await asyncio.gather(*(a.join() for a in everyone))
        camera = StreamDescriptor(
            stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
            media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
            attendee_id=publisher.client.attendee_id,
        )  # fmt: skip
        ack = await publisher.client.subscribe(
            await publisher.peer.create_offer(),
            video_send_streams=[camera],
            duplex=StreamServiceType.DUPLEX,
        )
        await publisher.peer.set_answer(ack.sdp_answer)
        assert len(ack.allocations) == 1 and ack.allocations[0].stream_id
        stream_id = ack.allocations[0].stream_id
        for viewer in viewers:
            await viewer.client.wait_for(
                lambda c: any(s.stream_id == stream_id for s in c.index_sources), T, "the INDEX"
            )
            (source,) = viewer.client.index_sources
            assert source.attendee_id == publisher.client.attendee_id
            assert source.external_user_id == "camera"
            assert source.media_type == MediaType.VIDEO
            offer = await viewer.peer.create_offer()
            ack = await viewer.client.subscribe(offer, receive_stream_ids=[0, stream_id])
            (track,) = ack.tracks
            assert track.stream_id == stream_id and track.track_label == "v_2"
            assert "a=msid:v_2 " in ack.sdp_answer
            await viewer.peer.set_answer(ack.sdp_answer)
        for viewer in viewers:
            await viewer.peer.wait_ice_connected(T)

            async def frames(peer: ChimePeer = viewer.peer) -> int:
                return sum(peer.video_frames_received.values())

            deadline = asyncio.get_running_loop().time() + T
            while await frames() < 10:
                assert asyncio.get_running_loop().time() < deadline, "no decoded video frames"
                await asyncio.sleep(0.1)
            first = await frames()
            await asyncio.sleep(1.0)
            assert await frames() > first, "the frames advance"
    finally:
        await asyncio.gather(*(a.close() for a in everyone), return_exceptions=True)


class SizedCamera(VideoStreamTrack):
    """aiortc's synthetic camera at a chosen size, so a viewer can tell sources apart."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.pts, frame.time_base = pts, time_base
        return frame


async def test_two_meetings_publishing_at_once_never_cross(
    chime: Any, server: ServerProcess
) -> None:
    """Stream ids are unique server-wide, so the media engine's video routes (keyed by
    stream id) never hand one meeting's camera to another meeting's viewer."""
    sizes = {"a": (320, 240), "b": (160, 96)}
    pairs: dict[str, tuple[Attendee, Attendee]] = {}
    for name, (width, height) in sizes.items():
        meeting = chime.create_meeting(
            ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1",
            ExternalMeetingId=f"isolation-{name}",
        )  # fmt: skip
        pairs[name] = (
            _attendee(chime, meeting, "camera", ChimePeer(None, video=SizedCamera(width, height))),
            _attendee(chime, meeting, "viewer", ChimePeer(None, receive_videos=1)),
        )
    everyone = [a for pair in pairs.values() for a in pair]
    try:
        await asyncio.gather(*(a.join() for a in everyone))
        published: dict[str, int] = {}
        for name, (publisher, _) in pairs.items():
            camera = StreamDescriptor(
                stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
                media_type=MediaType.VIDEO, max_bitrate_kbps=600, framerate=15,
                attendee_id=publisher.client.attendee_id,
            )  # fmt: skip
            ack = await publisher.client.subscribe(
                await publisher.peer.create_offer(),
                video_send_streams=[camera],
                duplex=StreamServiceType.DUPLEX,
            )
            await publisher.peer.set_answer(ack.sdp_answer)
            allocated = ack.allocations[0].stream_id
            assert allocated
            published[name] = allocated
        assert published["a"] != published["b"]
        for name, (_, viewer) in pairs.items():
            stream_id = published[name]

            def indexed(client: SignalingClient, wanted: int = stream_id) -> bool:
                return any(x.stream_id == wanted for x in client.index_sources)

            await viewer.client.wait_for(indexed, T, "the INDEX")
            ack = await viewer.client.subscribe(
                await viewer.peer.create_offer(), receive_stream_ids=[0, stream_id]
            )
            await viewer.peer.set_answer(ack.sdp_answer)
        for name, (_, viewer) in pairs.items():
            await viewer.peer.wait_ice_connected(T)
            deadline = asyncio.get_running_loop().time() + T
            while sum(viewer.peer.video_frames_received.values()) < 10:
                assert asyncio.get_running_loop().time() < deadline, f"{name}: no video"
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        for name, (_, viewer) in pairs.items():
            decoded = {size for sizes in viewer.peer.video_sizes.values() for size, _ in sizes}
            assert decoded == {sizes[name]}, (name, decoded)
    finally:
        await asyncio.gather(*(a.close() for a in everyone), return_exceptions=True)

"""The meeting's maximum resolutions through the real server (meetings-digest.md §4.5).

A camera declaring more than ``Video.MaxResolution`` is refused with Chime's reason (status
206, "switch to view only"); one within it is allocated. A content share above
``Content.MaxResolution`` is not refused: it is scaled down, and INDEX announces the scaled
dimensions.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bench.litepeer import LitePeer
from mediaserver.gateway.resolution import RESOLUTION_REFUSAL
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient
from signaling.messages import FrameType, MediaType, StreamDescriptor
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR


def _video(attendee_id: str, width: int, height: int) -> StreamDescriptor:
    return StreamDescriptor(
        stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
        media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
        attendee_id=attendee_id, width=width, height=height,
    )  # fmt: skip


async def test_cameras_above_the_maximum_are_refused_and_content_is_scaled(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="res"
    )  # Defaults: Video.MaxResolution HD, Content.MaxResolution FHD.
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    certificate = DtlsCertificate.generate()
    peers: list[LitePeer] = []

    async def offer() -> str:
        peer = LitePeer(certificate)
        peers.append(peer)
        await peer.start()
        return peer.offer()

    camera = SignalingClient(meeting, people[0])
    viewer = SignalingClient(meeting, people[1])
    share = SignalingClient(meeting, people[0], content_share=True)
    clients = [camera, viewer, share]
    try:
        for client in clients:
            await client.connect(T)
            await client.join(T)
        fhd = await camera.subscribe(
            await offer(), video_send_streams=[_video(camera.attendee_id, 1920, 1080)]
        )
        assert fhd.allocations == ()
        refusal = camera.error_statuses[-1]
        assert refusal.frame_type == FrameType.SUBSCRIBE_ACK and refusal.status == 206
        assert refusal.description == RESOLUTION_REFUSAL
        hd = await camera.subscribe(
            await offer(), video_send_streams=[_video(camera.attendee_id, 1280, 720)]
        )
        assert len(hd.allocations) == 1 and hd.allocations[0].stream_id

        uhd = await share.subscribe(
            await offer(), video_send_streams=[_video(share.attendee_id, 3840, 2160)]
        )
        assert len(uhd.allocations) == 1, "content above the maximum is not refused"
        content_id = uhd.allocations[0].stream_id
        await viewer.wait_for(
            lambda c: any(s.stream_id == content_id for s in c.index_sources), T, "INDEX"
        )
        sizes = {s.stream_id: (s.width, s.height) for s in viewer.index_sources}
        assert sizes[content_id] == (1920, 1080), "announced scaled to Content.MaxResolution"
        assert sizes[hd.allocations[0].stream_id] == (1280, 720)
    finally:
        for client in clients:
            await client.close()
        for peer in peers:
            peer.close()

"""Video codecs through the SFU: an H.264 camera reaches a subscriber that decodes it, and
INDEX carries the meeting's codec intersection (chime-signaling-protocol.md §3.3, §4.2).

The publisher is an aiortc peer whose camera offers only H.264 (aiortc encodes H.264
through PyAV/libx264); the subscriber offers aiortc's default VP8 and H.264, so its
downlink m-line is answered with the publisher's H.264 format.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import VideoStreamTrack

from bench.peer import ChimePeer
from signaling.client import SignalingClient
from signaling.messages import (
    MediaType,
    StreamDescriptor,
    StreamServiceType,
    VideoCodecCapability,
)
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR


def _h264_only(peer: ChimePeer) -> None:
    codecs = RTCRtpSender.getCapabilities("video").codecs
    peer.video_transceiver.setCodecPreferences(
        [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    )


async def test_an_h264_camera_reaches_a_subscriber(chime: Any, server: ServerProcess) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="h264"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "viewer")
    ]
    publisher = SignalingClient(meeting, people[0])
    viewer = SignalingClient(meeting, people[1])
    camera = ChimePeer(440.0, video=VideoStreamTrack())
    _h264_only(camera)
    peer = ChimePeer(None, receive_videos=1)
    try:
        for client in (publisher, viewer):
            await client.connect(T)
            await client.join(T)
        # The viewer's offer (VP8 and H.264) is known once it subscribed.
        answer = await viewer.subscribe(await peer.create_offer(), receive_stream_ids=[0, 0])
        await peer.set_answer(answer.sdp_answer)
        await viewer.wait_for(
            lambda c: c.index is not None and len(c.index.supported_receive_codec_intersection) > 2,
            T,
            "an INDEX with the viewer's own codecs",
        )
        assert viewer.index is not None
        assert viewer.index.supported_receive_codec_intersection[:2] == (
            VideoCodecCapability.VP8,
            VideoCodecCapability.H264_CONSTRAINED_BASELINE_PROFILE,
        )
        descriptor = StreamDescriptor(
            stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
            media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
            attendee_id=publisher.attendee_id,
        )  # fmt: skip
        offer = await camera.create_offer()
        assert "VP8" not in offer
        ack = await publisher.subscribe(
            offer, video_send_streams=[descriptor], duplex=StreamServiceType.DUPLEX
        )
        section = re.search(r"a=mid:1\r\n(?:(?!m=).*\r\n)*", ack.sdp_answer)
        assert section is not None
        first = re.search(r"a=rtpmap:\d+ (\S+)/90000", section.group(0))
        assert first is not None and first.group(1) == "H264"
        await camera.set_answer(ack.sdp_answer)
        stream_id = ack.allocations[0].stream_id
        assert stream_id

        # INDEX: the codecs both members decode (the publisher's m-line has H.264 only),
        # the server's preference first.
        await viewer.wait_for(
            lambda c: any(s.stream_id == stream_id for s in c.index_sources), T, "INDEX"
        )
        assert viewer.index is not None
        assert viewer.index.supported_receive_codec_intersection == (
            VideoCodecCapability.H264_CONSTRAINED_BASELINE_PROFILE,
            VideoCodecCapability.H264_BASELINE_PROFILE,
        )

        answer = await viewer.subscribe(
            await peer.create_offer(), receive_stream_ids=[0, stream_id]
        )
        downlink = re.search(r"a=mid:2\r\n(?:(?!m=).*\r\n)*", answer.sdp_answer)
        assert downlink is not None
        codecs = re.findall(r"a=rtpmap:\d+ (\S+)/90000", downlink.group(0))
        assert codecs[0] == "H264", codecs
        assert "packetization-mode=1" in downlink.group(0)
        await peer.set_answer(answer.sdp_answer)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * T
        while peer.video_frames_received.get("2", 0) < 10:
            assert loop.time() < deadline, "no decoded H.264 frames"
            await asyncio.sleep(0.1)
        before = peer.video_frames_received["2"]
        while peer.video_frames_received["2"] < before + 10:
            assert loop.time() < deadline, "the decoded frames stopped advancing"
            await asyncio.sleep(0.1)
        sizes = [size for size, _ in peer.video_sizes["2"]]
        assert sizes and sizes[0][0] > 0
    finally:
        await publisher.close()
        await viewer.close()
        await camera.close()
        await peer.close()

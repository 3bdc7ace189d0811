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


def _h264_everywhere(peer: ChimePeer) -> None:
    """Make every video m-line of ``peer`` offer H.264 only (a receiver without VP8)."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    h264 = [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
    for transceiver in (peer.video_transceiver, *peer.receive_transceivers):
        transceiver.setCodecPreferences(h264)


async def _frames(peer: ChimePeer, count: int, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    before = peer.video_frames_received.get("2", 0)
    while peer.video_frames_received.get("2", 0) < before + count:
        assert loop.time() < deadline, f"decoded frames stopped: {peer.video_sizes}"
        await asyncio.sleep(0.1)


async def test_the_meeting_moves_to_a_codec_a_newcomer_can_decode(
    chime: Any, server: ServerProcess
) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="move"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "vp8-viewer", "h264-viewer")
    ]
    publisher = SignalingClient(meeting, people[0])
    first = SignalingClient(meeting, people[1])
    newcomer = SignalingClient(meeting, people[2])
    cameras = [ChimePeer(440.0, video=VideoStreamTrack())]
    first_peer = ChimePeer(None, receive_videos=1)
    newcomer_peer = ChimePeer(None, receive_videos=1)
    _h264_everywhere(newcomer_peer)
    descriptor = StreamDescriptor(
        stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
        media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
        attendee_id=people[0]["Attendee"]["AttendeeId"],
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    try:
        for client in (publisher, first):
            await client.connect(T)
            await client.join(T)
        # 1. Everyone decodes VP8: the camera is answered VP8 first and sends it.
        ack = await publisher.subscribe(
            await cameras[0].create_offer(), video_send_streams=[descriptor]
        )
        assert re.search(r"a=mid:1\r\n(?:(?!m=).*\r\n)*?a=rtpmap:\d+ VP8/", ack.sdp_answer)
        await cameras[0].set_answer(ack.sdp_answer)
        stream_id = ack.allocations[0].stream_id
        assert stream_id
        await first.wait_for(lambda c: bool(c.index_sources), T, "INDEX")
        answer = await first.subscribe(
            await first_peer.create_offer(), receive_stream_ids=[0, stream_id]
        )
        await first_peer.set_answer(answer.sdp_answer)
        await _frames(first_peer, 10, loop.time() + 2 * T)

        # 2. A member that decodes only H.264 joins: the intersection changes for everyone.
        await newcomer.connect(T)
        await newcomer.join(T)
        answer = await newcomer.subscribe(
            await newcomer_peer.create_offer(), receive_stream_ids=[0, stream_id]
        )
        await newcomer_peer.set_answer(answer.sdp_answer)
        h264_only = (
            VideoCodecCapability.H264_CONSTRAINED_BASELINE_PROFILE,
            VideoCodecCapability.H264_BASELINE_PROFILE,
        )
        await publisher.wait_for(
            lambda c: (
                c.index is not None and c.index.supported_receive_codec_intersection == h264_only
            ),
            T,
            "the new intersection",
        )
        # 3. The camera renegotiates as the client does (its codec is no longer allowed):
        # its answer now puts H.264 first, and both viewers decode H.264 frames.
        await cameras[0].close()
        cameras.append(ChimePeer(440.0, video=VideoStreamTrack()))
        ack = await publisher.subscribe(
            await cameras[1].create_offer(), video_send_streams=[descriptor]
        )
        assert re.search(r"a=mid:1\r\n(?:(?!m=).*\r\n)*?a=rtpmap:\d+ H264/", ack.sdp_answer)
        assert ack.allocations[0].stream_id == stream_id
        await cameras[1].set_answer(ack.sdp_answer)
        deadline = loop.time() + 3 * T
        await _frames(newcomer_peer, 10, deadline)
        await _frames(first_peer, 10, deadline)
    finally:
        for client in (publisher, first, newcomer):
            await client.close()
        for peer in (*cameras, first_peer, newcomer_peer):
            await peer.close()

"""Video under 10 % packet loss on the uplink and on one downlink: NACK and RTX repair it.

The publisher (aiortc, VP8) loses every tenth video packet it sends; the server NACKs the
gaps and the publisher answers with RTX (RFC 4588), which the server unwraps into the
stream. One of two subscribers also loses every tenth video packet the server sends it; it
NACKs them and the server answers on the m-line's RTX SSRC. Loss is injected at the
clients, the server runs unchanged. Each subscriber records the sequence numbers it got
(originals, and the OSN of each RTX packet): with repair working the stream has next to no
holes, where 10 % of it would be missing without it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest
from aiortc.mediastreams import VideoStreamTrack

from bench.peer import ChimePeer
from signaling.client import SignalingClient
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess

pytestmark = pytest.mark.timeout(120)

T = 15.0 * TIMEOUT_FACTOR
EVERY = 10
"""One video packet in ``EVERY`` is lost (10 %)."""
WINDOW = 300
"""Sequence numbers checked for holes."""


def _fid(answer: str, mid: str) -> tuple[int, int]:
    """(media SSRC, RTX SSRC) of ``a=ssrc-group:FID`` in the m-section of ``mid``."""
    section = re.search(rf"a=mid:{mid}\r\n(?:(?!m=).*\r\n)*", answer)
    assert section is not None
    group = re.search(r"a=ssrc-group:FID (\d+) (\d+)", section.group(0))
    assert group is not None, f"no RTX on mid {mid}: {section.group(0)}"
    return int(group.group(1)), int(group.group(2))


class DownlinkRecord:
    """Wraps a receiver's packet handler: drops 1 in ``drop_every`` original packets before
    aiortc sees them and records every sequence number that got through."""

    def __init__(self, peer: ChimePeer, media_ssrc: int, rtx_ssrc: int, drop_every: int) -> None:
        self.media_ssrc = media_ssrc
        self.rtx_ssrc = rtx_ssrc
        self.received: list[int] = []
        self.rtx = 0
        self.dropped = 0
        self._count = 0
        receiver = peer.receive_transceivers[0].receiver
        original = receiver._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            if packet.ssrc == self.media_ssrc:
                self._count += 1
                if drop_every and self._count % drop_every == 0:
                    self.dropped += 1
                    return
                self.received.append(packet.sequence_number)
            elif packet.ssrc == self.rtx_ssrc and len(packet.payload) >= 2:
                self.rtx += 1
                self.received.append(int.from_bytes(packet.payload[:2], "big"))
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle  # type: ignore[method-assign]

    def holes(self, start: int, count: int) -> int:
        """Sequence numbers in ``[start, start + count)`` (mod 2**16) never received."""
        got = {(seq - start) & 0xFFFF for seq in self.received}
        return sum(1 for i in range(count) if i not in got)

    @property
    def first(self) -> int:
        return self.received[0]


def _lossy_uplink(peer: ChimePeer, video_pt: int) -> list[int]:
    """Drop one original video packet in ``EVERY`` the publisher sends (after its history
    kept it, so it can answer the NACK). Returns a one-item list counting the drops."""
    sender = peer.video_transceiver.sender
    transport = sender.transport
    send = transport._send_rtp
    counter = [0, 0]

    async def send_rtp(data: bytes) -> None:
        if data[1] & 0x7F == video_pt:
            counter[0] += 1
            if counter[0] % EVERY == 0:
                counter[1] += 1
                return
        await send(data)

    transport._send_rtp = send_rtp  # type: ignore[method-assign]
    return counter


async def test_nack_and_rtx_repair_ten_percent_loss(chime: Any, server: ServerProcess) -> None:
    meeting = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="loss"
    )
    meeting_id = meeting["Meeting"]["MeetingId"]
    people = [
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId=name)
        for name in ("camera", "lossy", "clean")
    ]
    publisher = SignalingClient(meeting, people[0])
    camera = ChimePeer(440.0, video=VideoStreamTrack())
    viewers = [(SignalingClient(meeting, p), ChimePeer(None, receive_videos=1)) for p in people[1:]]
    records: list[DownlinkRecord] = []
    try:
        for client in (publisher, *(c for c, _ in viewers)):
            await client.connect(T)
            await client.join(T)
        descriptor = StreamDescriptor(
            stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
            media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
            attendee_id=publisher.attendee_id,
        )  # fmt: skip
        ack = await publisher.subscribe(
            await camera.create_offer(),
            video_send_streams=[descriptor],
            duplex=StreamServiceType.DUPLEX,
        )
        camera_section = re.search(r"a=mid:1\r\n(?:(?!m=).*\r\n)*", ack.sdp_answer)
        assert camera_section is not None
        assert re.search(r"a=fmtp:\d+ apt=\d+", camera_section.group(0)), "camera RTX accepted"
        pt_match = re.search(r"a=rtpmap:(\d+) VP8/90000", camera_section.group(0))
        assert pt_match is not None
        await camera.set_answer(ack.sdp_answer)
        uplink = _lossy_uplink(camera, int(pt_match.group(1)))
        stream_id = ack.allocations[0].stream_id
        assert stream_id
        for i, (client, peer) in enumerate(viewers):
            await client.wait_for(
                lambda c: any(s.stream_id == stream_id for s in c.index_sources), T, "INDEX"
            )
            answer = await client.subscribe(
                await peer.create_offer(), receive_stream_ids=[0, stream_id]
            )
            media_ssrc, rtx_ssrc = _fid(answer.sdp_answer, "2")
            records.append(DownlinkRecord(peer, media_ssrc, rtx_ssrc, EVERY if i == 0 else 0))
            await peer.set_answer(answer.sdp_answer)

        lossy, clean = records
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4 * T
        while len(lossy.received) < WINDOW + 100 or len(clean.received) < WINDOW + 100:
            assert loop.time() < deadline, (len(lossy.received), len(clean.received))
            await asyncio.sleep(0.1)
        # Repairs of the last packets may still be under way: look at the older ones.
        assert uplink[1] >= WINDOW // EVERY // 2, "the uplink lost packets"
        assert lossy.dropped >= WINDOW // EVERY, "the downlink lost packets"
        assert lossy.rtx > 0, "the server answered the lossy subscriber's NACKs with RTX"
        for record in records:
            holes = record.holes(record.first, WINDOW)
            assert holes <= WINDOW // 50, f"{holes} of {WINDOW} packets never arrived"
        # Both keep decoding.
        for _, peer in viewers:
            before = peer.video_frames_received.get("2", 0)
            while peer.video_frames_received.get("2", 0) < before + 10:
                assert loop.time() < deadline, "the decoded frames stopped advancing"
                await asyncio.sleep(0.1)
    finally:
        await publisher.close()
        await camera.close()
        for client, peer in viewers:
            await client.close()
            await peer.close()

"""Light peers for SVC tests: a camera that replays a captured SVC stream, and a subscriber
that keeps the VP9 it receives.

:class:`SvcReplayPublisher` publishes one camera stream offering VP9 (RFC 9628) and sends
the packets of a recorded stream (tests/vectors/rtp/svc, mediaserver/rtp/dump.py) in a
loop, paced by their RTP timestamps: its own SSRC and payload type, sequence numbers and
timestamps continued across loops, the recording's header extensions replaced by the MID
(RFC 8843 §15), payload and padding unchanged. Each loop starts at the recording's key
frame; it does not answer PLI (it has no encoder).

:class:`Vp9Subscriber` is the light transport-cc-less subscriber (bench/twccpeer.py,
``transport_cc=False``: it reports its downlink with REMB) offering VP9 on its receive
m-lines and keeping every decrypted video packet for the test to depacketize and decode.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

from bench.litepeer import LitePeer
from bench.twccpeer import TwccSubscriber
from mediaserver.rtp.packet import peek_header
from mediaserver.video import prepare
from signaling.client import SignalingClient, SubscribeAck
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType

__all__ = ["SvcReplayPublisher", "Vp9Subscriber"]

MID_EXT = 4
VP9_PT = 98
_HEADER = struct.Struct("!BBHII")
_CLOCK = 90000


def _mid_block(mid: bytes) -> bytes:
    """RFC 8285 §4.2 one-byte header extension block with only the MID."""
    body = bytes([(MID_EXT << 4) | (len(mid) - 1)]) + mid
    body += bytes(-len(body) % 4)
    return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body


@dataclass
class SvcReplayPublisher(LitePeer):
    """A light peer whose camera replays ``recording`` (RTP packets, first a key frame)."""

    recording: list[bytes] = field(default_factory=list)
    loops: int = 0
    """Times the recording was sent through."""
    packets_sent: int = 0

    def offer(self) -> str:
        offer = super().offer()
        start = offer.index("m=video")
        end = offer.index("a=mid:1\r\n", start)
        tail = offer[end:]
        camera_end = tail.find("m=", 1)
        camera = (
            "m=video 9 UDP/TLS/RTP/SAVPF 98\r\n"
            + offer[start:end].split("\r\n", 1)[1]
            + "a=mid:1\r\n"
            f"a=extmap:{MID_EXT} urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
            "a=sendrecv\r\n"
            "a=msid:bot camera0\r\n"
            f"a=rtpmap:{VP9_PT} VP9/90000\r\n"
            f"a=rtcp-fb:{VP9_PT} nack\r\n"
            f"a=rtcp-fb:{VP9_PT} nack pli\r\n"
            f"a=rtcp-fb:{VP9_PT} goog-remb\r\n"
            f"a=fmtp:{VP9_PT} profile-id=0\r\n"
            f"a=ssrc:{self._video_ssrc} cname:bot\r\n"
        )
        rest = tail[camera_end:] if camera_end > 0 else ""
        return offer[:start] + camera + rest

    def __post_init__(self) -> None:
        super().__post_init__()
        self._video_ssrc = (self._ssrc + 1) & 0xFFFFFFFF or 1

    async def publish(self, client: SignalingClient) -> tuple[SubscribeAck, int]:
        """Start this peer as ``client``'s camera, connect it and start the replay.

        Returns the SUBSCRIBE_ACK and the camera's stream id.
        """
        await self.start()
        ack = await client.subscribe(
            self.offer(),
            video_send_streams=[
                StreamDescriptor(
                    stream_id=0,
                    group_id=0,
                    track_label="camera",
                    media_type=MediaType.VIDEO,
                    max_bitrate_kbps=1500,
                    framerate=15,
                    attendee_id=client.attendee_id,
                )
            ],
            duplex=StreamServiceType.DUPLEX,
        )
        (stream_id,) = [a.stream_id or 0 for a in ack.allocations if a.stream_id]
        await self.connect(ack.sdp_answer)
        self._tasks.append(asyncio.create_task(self._replay()))
        return ack, stream_id

    async def _replay(self) -> None:
        loop = asyncio.get_running_loop()
        recording = self.recording
        first_ts = peek_header(recording[0])[3]
        span = (peek_header(recording[-1])[3] - first_ts) & 0xFFFFFFFF
        period = span + _CLOCK // 15  # one frame after the last picture
        block = _mid_block(b"1")
        seq = 1000
        started = loop.time()
        while True:
            for packet in recording:
                offset = (peek_header(packet)[3] - first_ts) & 0xFFFFFFFF
                due = started + (self.loops * period + offset) / _CLOCK
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._srtp is None or self._transport is None or self._remote is None:
                    continue
                parts = prepare(packet)
                ts = (1_000_000 + self.loops * period + offset) & 0xFFFFFFFF
                first = 0x90 | (packet[0] & 0x20)
                head = _HEADER.pack(first, parts.marker | VP9_PT, seq, ts, self._video_ssrc)
                seq = (seq + 1) & 0xFFFF
                data = self._srtp.protect_rtp(head + block + parts.payload)
                self._transport.sendto(data, self._remote.address)
                self.packets_sent += 1
            self.loops += 1


@dataclass
class Vp9Subscriber(TwccSubscriber):
    """A light REMB subscriber offering VP9 that keeps every video packet it receives."""

    transport_cc: bool = False
    received: list[bytes] = field(default_factory=list)
    """The decrypted video packets, in arrival order."""

    def offer(self) -> str:
        sections = super().offer().split("m=video")
        for i in range(2, len(sections)):
            sections[i] = sections[i].replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP9/90000")
        return "m=video".join(sections)

    def _receive_video(self, packet: bytes, now: float) -> None:
        """Keep the packet (no VP8 parsing, no gap counting: the test reads them all)."""
        self.video_packets += 1
        ssrc = peek_header(packet)[4]
        self._highest.setdefault(ssrc, 0)  # the SSRCs a REMB names
        self.received.append(packet)

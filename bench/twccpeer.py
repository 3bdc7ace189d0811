"""A light subscriber that speaks transport-wide congestion control, like a browser.

:class:`TwccSubscriber` extends the light peer (:mod:`bench.litepeer`) with ``recvonly``
video m-lines that offer the transport-wide sequence number extension and ``transport-cc``
feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01). It decrypts the video it
receives, notes each packet's transport-wide number and arrival time, reads the picture
size of every VP8 keyframe (RFC 6386 §9.1), and every 100 ms sends transport-cc feedback.
``report_loss`` makes the feedback report that fraction of packets as lost, which is how a
test presents a constrained downlink to the server without shaping the network; with
``transport_cc=False`` it offers neither and reports its downlink with :meth:`send_remb`
instead (draft-alvestrand-rmcat-remb-03), as a REMB-only receiver does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from bench.litepeer import LitePeer
from mediacodecs import vp8
from mediaserver.errors import MalformedPacket
from mediaserver.rtp.extensions import TRANSPORT_CC_URI
from mediaserver.rtp.packet import peek_extension, peek_header, peek_payload_offset
from mediaserver.rtp.rtcp import RtcpRemb
from mediaserver.sfu.twcc_feedback import TransportFeedbackGenerator

__all__ = ["TWCC_EXT", "TwccSubscriber"]

TWCC_EXT = 5
"""The extension id this peer offers for the transport-wide sequence number."""
FEEDBACK_INTERVAL = 0.1


@dataclass
class TwccSubscriber(LitePeer):
    """A light peer receiving video on ``receive_videos`` m-lines, with transport-cc.

    Attributes:
        report_loss: fraction of the packets the feedback reports lost (0: the truth).
        video_packets: video RTP packets received.
        stamped: of those, the ones carrying a transport-wide sequence number.
        padding: padding-only packets received (the server's bandwidth probes).
        keyframe_sizes: (width, height) of each VP8 keyframe received, in order.
        pictures: (picture id, TL0PICIDX) of each VP8 picture received, in order (RFC 7741
            §4.2; -1 when absent).
        feedback_sent: transport-cc feedback packets sent.
        sequence_gaps: RTP sequence numbers skipped on the video SSRCs (a late packet
            fills its gap back): the packets that never arrived.
        transport_cc: offer transport-cc and send its feedback (False: neither).
    """

    report_loss: float = 0.0
    transport_cc: bool = True
    sequence_gaps: int = 0
    video_packets: int = 0
    stamped: int = 0
    padding: int = 0
    keyframe_sizes: list[tuple[int, int]] = field(default_factory=list)
    pictures: list[tuple[int, int]] = field(default_factory=list)
    feedback_sent: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._feedback = TransportFeedbackGenerator()
        self._reported = 0
        self._feedback_ssrc = secrets.randbits(32) or 1
        self._highest: dict[int, int] = {}

    def offer(self) -> str:
        if not self.transport_cc:
            return super().offer()
        extension = f"a=extmap:{TWCC_EXT} {TRANSPORT_CC_URI}\r\n"
        feedback = "a=rtcp-fb:96 transport-cc\r\n"
        sections = super().offer().split("m=video")
        for i in range(2, len(sections)):
            sections[i] = sections[i].replace("a=recvonly\r\n", "a=recvonly\r\n" + extension)
            sections[i] = sections[i].replace(
                "a=rtcp-fb:96 nack pli\r\n", "a=rtcp-fb:96 nack pli\r\n" + feedback
            )
        return "m=video".join(sections)

    async def connect(self, answer: str, timeout: float = 15.0) -> None:
        await super().connect(answer, timeout)
        if self.transport_cc:
            self._tasks.append(asyncio.create_task(self._feedback_loop()))

    def send_remb(self, bitrate: int) -> bool:
        """Report a downlink of ``bitrate`` bits/s with an RTCP REMB for the video SSRCs
        received so far (draft-alvestrand-rmcat-remb-03 §2.2); False before DTLS is up."""
        if self._srtp is None or self._transport is None or self._remote is None:
            return False
        remb = RtcpRemb.from_bitrate(self._feedback_ssrc, bitrate, sorted(self._highest))
        self._transport.sendto(self._srtp.protect_rtcp(remb.serialize()), self._remote.address)
        return True

    def datagram_received(self, data: bytes, addr: object) -> None:
        remote = self._remote
        if (
            len(data) > 12
            and 128 <= data[0] <= 191
            and not 192 <= data[1] <= 223
            and self._srtp is not None
            and remote is not None
            and data[1] & 0x7F != remote.audio_payload_type
        ):
            try:
                self._receive_video(self._srtp.unprotect_rtp(data), time.monotonic())
            except (ValueError, MalformedPacket):
                self.srtp_errors += 1
            return
        super().datagram_received(data, addr)

    def _receive_video(self, packet: bytes, now: float) -> None:
        self.video_packets += 1
        _, _, seq, _, ssrc = peek_header(packet)
        highest = self._highest.get(ssrc)
        if highest is None:
            self._highest[ssrc] = seq
        else:
            step = (seq - highest) & 0xFFFF
            if 0 < step < 0x8000:
                self.sequence_gaps += step - 1
                self._highest[ssrc] = seq
            elif step:
                self.sequence_gaps -= 1  # late: it fills a gap counted before
        if packet[0] & 0x20 and len(packet) - packet[-1] <= peek_payload_offset(packet):
            self.padding += 1  # RFC 3550 §5.1: nothing but padding
        else:
            payload = packet[peek_payload_offset(packet) :]
            keyframe, start, _, _, picture_id, tl0 = vp8.peek_layer(payload)
            if start:
                self.pictures.append((picture_id, tl0))
            if keyframe:
                header = payload[vp8.descriptor_size(payload) :]
                if header[3:6] == b"\x9d\x01\x2a":  # RFC 6386 §9.1 start code
                    width = int.from_bytes(header[6:8], "little") & 0x3FFF
                    height = int.from_bytes(header[8:10], "little") & 0x3FFF
                    self.keyframe_sizes.append((width, height))
        element = peek_extension(packet, TWCC_EXT)
        if element is not None and len(element) >= 2:
            self.stamped += 1
            # report_loss: every so many packets are left out, so feedback reports them lost.
            self._reported += 1
            loss = self.report_loss
            if not loss or (self._reported * loss) % 1 >= loss:
                self._feedback.receive(int.from_bytes(element[:2], "big"), now)

    async def _feedback_loop(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            self._send_feedback()

    def _send_feedback(self) -> None:
        """transport-cc feedback for what arrived since the last one (draft §3.1)."""
        if self._srtp is None or self._transport is None or self._remote is None:
            return
        for feedback in self._feedback.feedback(self._feedback_ssrc, 0):
            self.feedback_sent += 1
            data = self._srtp.protect_rtcp(feedback.serialize())
            self._transport.sendto(data, self._remote.address)

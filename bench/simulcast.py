"""A simulcast camera for tests and benchmarks: real VP8 in two layers, sent like Chromium.

:class:`SimulcastPublisher` extends the light peer (:mod:`bench.litepeer`) with a camera
m-line offering ``a=rid:low send``/``a=rid:hi send`` and ``a=simulcast:send low;hi``
(RFC 8853), the MID and RID header extensions (RFC 8843, RFC 8852), and VP8 encoded with
libvpx through PyAV at two resolutions, packetised per RFC 7741 (one payload descriptor
byte, S bit on a frame's first packet, marker on its last). A PLI for a layer's SSRC makes
that layer's next frame a keyframe (RFC 4585 §6.3.1). With ``transport_cc`` the camera
m-line also offers the transport-wide sequence number and ``transport-cc`` feedback
(draft-holmer-rmcat-transport-wide-cc-extensions-01), numbers every packet, may leave some
numbers unsent on purpose (``skip_transport_every``) and keeps the feedback it gets.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from bench.litepeer import LitePeer
from mediaserver.errors import MalformedPacket
from mediaserver.rtp.extensions import TRANSPORT_CC_URI
from mediaserver.rtp.rtcp import RtcpPli, RtcpRemb, RtcpTransportCc, parse_compound
from signaling.client import SignalingClient, SubscribeAck
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType

__all__ = ["LAYERS", "SimulcastPublisher", "VideoLayer"]

MID_EXT = 4
RID_EXT = 10
TWCC_EXT = 3
VP8_PT = 96
MAX_PAYLOAD = 1000


@dataclass
class VideoLayer:
    """One simulcast encoding."""

    rid: str
    width: int
    height: int
    bitrate: int
    ssrc: int = field(default_factory=lambda: secrets.randbits(32) or 1)
    seq: int = field(default_factory=lambda: secrets.randbelow(0x10000))
    keyframe_requested: bool = True
    frames: int = 0
    keyframes: int = 0
    encoder: VideoCodecContext | None = None
    active: bool = True
    """False turns the layer off, as Chromium does with ``setParameters`` (§4.3)."""
    picture_id: int = field(default_factory=lambda: secrets.randbelow(0x8000))
    """The 15-bit VP8 picture id, random per layer like libwebrtc's (RFC 7741 §4.2)."""
    tl0_pic_idx: int = field(default_factory=lambda: secrets.randbelow(0x100))


LAYERS = (("low", 160, 120, 150_000), ("hi", 320, 240, 500_000))


def _extensions(mid: bytes, rid: bytes, transport_seq: int | None = None) -> bytes:
    """RFC 8285 one-byte header extension block with MID, RID and the transport-wide
    sequence number when given."""
    body = bytes([(MID_EXT << 4) | (len(mid) - 1)]) + mid
    body += bytes([(RID_EXT << 4) | (len(rid) - 1)]) + rid
    if transport_seq is not None:
        body += bytes([(TWCC_EXT << 4) | 1]) + transport_seq.to_bytes(2, "big")
    body += bytes(-len(body) % 4)
    return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body


@dataclass
class SimulcastPublisher(LitePeer):
    """A light peer whose camera sends two VP8 simulcast layers at ``fps``.

    With ``noise`` the pictures are random noise, so each layer's encoder spends its whole
    bitrate (flat pictures cost far less): for tests that need layers of known cost.
    """

    fps: int = 15
    noise: bool = False
    rembs: list[int] = field(default_factory=list)
    """Bitrates of the RTCP REMBs the server sent (this camera does not obey them)."""
    transport_cc: bool = False
    """Offer and send transport-wide sequence numbers; keep the server's feedback."""
    skip_transport_every: int = 0
    """With ``transport_cc``: every so many packets, one is not sent (its number lost)."""
    transport_sent: list[int] = field(default_factory=list)
    """Transport-wide numbers of the packets sent."""
    transport_skipped: list[int] = field(default_factory=list)
    """Transport-wide numbers left unsent on purpose."""
    transport_feedback: list[RtcpTransportCc] = field(default_factory=list)
    """The transport-cc feedback the server sent."""
    layers: list[VideoLayer] = field(
        default_factory=lambda: [VideoLayer(rid, w, h, b) for rid, w, h, b in LAYERS]
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        # Start near the wrap so that a short test crosses it.
        self._transport_seq = 0xFFFF - 100

    def offer(self) -> str:
        audio_and_camera = super().offer()
        twcc = f"a=extmap:{TWCC_EXT} {TRANSPORT_CC_URI}\r\n" if self.transport_cc else ""
        camera = audio_and_camera.replace(
            "a=mid:1\r\na=inactive\r\n",
            "a=mid:1\r\n"
            f"a=extmap:{MID_EXT} urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
            f"a=extmap:{RID_EXT} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
            f"{twcc}"
            "a=sendrecv\r\n"
            "a=msid:bot camera0\r\n",
        )
        if self.transport_cc:
            camera = camera.replace(
                "a=rtcp-fb:96 goog-remb\r\n",
                "a=rtcp-fb:96 goog-remb\r\na=rtcp-fb:96 transport-cc\r\n",
            )
        rids = "".join(f"a=rid:{layer.rid} send\r\n" for layer in self.layers)
        simulcast = "a=simulcast:send " + ";".join(layer.rid for layer in self.layers) + "\r\n"
        return camera + rids + simulcast

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) > 1 and 128 <= data[0] <= 191 and 192 <= data[1] <= 223:
            self._receive_rtcp(data)
            return
        super().datagram_received(data, addr)

    def _receive_rtcp(self, data: bytes) -> None:
        if self._srtp is None:
            return
        try:
            packets = parse_compound(self._srtp.unprotect_rtcp(data))
        except (MalformedPacket, ValueError):
            return
        for packet in packets:
            if isinstance(packet, RtcpRemb):
                self.rembs.append(packet.bitrate)
            if isinstance(packet, RtcpTransportCc):
                self.transport_feedback.append(packet)
            if isinstance(packet, RtcpPli):
                for layer in self.layers:
                    if layer.ssrc == packet.media_ssrc:
                        layer.keyframe_requested = True

    async def publish(self, client: SignalingClient) -> tuple[SubscribeAck, list[int]]:
        """Start this peer as ``client``'s simulcast camera, one SUBSCRIBE descriptor per
        layer (chime-signaling-protocol.md §4.2), connect it and start sending.

        Returns the SUBSCRIBE_ACK and the stream ids allocated to the layers, lowest
        first.

        Raises:
            RuntimeError: the server did not allocate a distinct stream id per layer.
        """
        await self.start()
        ack = await client.subscribe(
            self.offer(),
            video_send_streams=[
                StreamDescriptor(
                    stream_id=0,
                    group_id=0,
                    track_label=layer.rid,
                    media_type=MediaType.VIDEO,
                    max_bitrate_kbps=layer.bitrate // 1000,
                    framerate=self.fps,
                    attendee_id=client.attendee_id,
                )
                for layer in self.layers
            ],
            duplex=StreamServiceType.DUPLEX,
        )
        stream_ids = [a.stream_id or 0 for a in ack.allocations]
        if len(set(stream_ids) - {0}) != len(self.layers):
            raise RuntimeError(f"the server allocated {stream_ids} to {len(self.layers)} layers")
        await self.connect(ack.sdp_answer)
        await self.start_video()
        return ack, stream_ids

    async def start_video(self) -> None:
        """Start sending both layers (call after :meth:`connect`)."""
        for layer in self.layers:
            encoder = av.CodecContext.create("libvpx", "w")
            encoder.width, encoder.height = layer.width, layer.height
            encoder.pix_fmt = "yuv420p"
            encoder.bit_rate = layer.bitrate
            encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
            layer.encoder = encoder
        self._tasks.append(asyncio.create_task(self._send_video()))

    async def _send_video(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        frame_index = 0
        while True:
            next_at += 1 / self.fps
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self._srtp is None or self._transport is None or self._remote is None:
                continue
            timestamp = (frame_index * 90000 // self.fps) & 0xFFFFFFFF
            # Encoding runs in a thread (libvpx releases the GIL), so that the event loop
            # of the test or bench it shares stays responsive.
            encoded = await asyncio.to_thread(self._encode_all, frame_index)
            for layer, frames in zip(self.layers, encoded, strict=True):
                for data, keyframe in frames:
                    if layer.active:
                        self._send_frame(layer, data, keyframe, timestamp)
            frame_index += 1

    def _encode_all(self, index: int) -> list[list[tuple[bytes, bool]]]:
        return [self._encode(layer, index) for layer in self.layers]

    def _encode(self, layer: VideoLayer, index: int) -> list[tuple[bytes, bool]]:
        assert layer.encoder is not None
        if self.noise:
            image = np.random.default_rng(index).integers(
                0, 256, (layer.height, layer.width, 3), dtype=np.uint8
            )
        else:
            image = np.full((layer.height, layer.width, 3), (index * 7) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        requested, layer.keyframe_requested = layer.keyframe_requested, False
        if requested:
            frame.pict_type = PictureType.I
        return [(bytes(packet), bool(packet.is_keyframe)) for packet in layer.encoder.encode(frame)]

    def _send_frame(self, layer: VideoLayer, data: bytes, keyframe: bool, timestamp: int) -> None:
        assert self._srtp is not None
        assert self._transport is not None and self._remote is not None
        layer.frames += 1
        layer.keyframes += int(keyframe)
        layer.picture_id = (layer.picture_id + 1) & 0x7FFF
        layer.tl0_pic_idx = (layer.tl0_pic_idx + 1) & 0xFF  # No temporal layers: all TL0.
        # RFC 7741 §4.2: X, then I, L and T: a 15-bit picture id, TL0PICIDX, and TID 0
        # with Y (one temporal layer, every frame on the base layer), as libwebrtc marks
        # simulcast VP8.
        fields = bytes([0xE0, 0x80 | layer.picture_id >> 8, layer.picture_id & 0xFF])
        fields += bytes([layer.tl0_pic_idx, 0x20])
        chunks = [data[i : i + MAX_PAYLOAD] for i in range(0, len(data), MAX_PAYLOAD)]
        for i, chunk in enumerate(chunks):
            marker = 0x80 if i == len(chunks) - 1 else 0
            header = bytes([0x90, marker | VP8_PT]) + layer.seq.to_bytes(2, "big")
            header += timestamp.to_bytes(4, "big") + layer.ssrc.to_bytes(4, "big")
            layer.seq = (layer.seq + 1) & 0xFFFF
            descriptor = (b"\x90" if i == 0 else b"\x80") + fields  # S on the first, PID 0
            transport_seq = None
            if self.transport_cc:
                transport_seq = self._transport_seq
                self._transport_seq = (transport_seq + 1) & 0xFFFF
                every = self.skip_transport_every
                sent = len(self.transport_sent) + len(self.transport_skipped)
                if every and sent % every == every - 1:
                    self.transport_skipped.append(transport_seq)
                    continue
                self.transport_sent.append(transport_seq)
            extensions = _extensions(b"1", layer.rid.encode(), transport_seq)
            rtp = header + extensions + descriptor + chunk
            self._transport.sendto(self._srtp.protect_rtp(rtp), self._remote.address)

"""A lightweight WebRTC peer for load tests, built on Carillon's own sans-I/O cores.

It is a real client on the wire: it offers an SDP shaped like the browser's (BUNDLE, audio
mid 0 sendrecv with Opus, camera mid 1 inactive), runs ICE as the controlling agent with
USE-CANDIDATE (RFC 8445 §7.2.5.2), DTLS as the client (RFC 5763: the offerer says actpass,
the answer says passive), keys SRTP from it, keeps ICE consent fresh (RFC 7675), and may
send a looped pre-encoded Opus frame every 20 ms. To stay cheap it only counts the audio it
receives unless asked to decrypt it. aiortc (bench/peer.py) is the full-featured client;
this one exists so that hundreds of attendees fit on one bot core.

Tests that must control every packet use it too: :meth:`LitePeer.send_frame` sends one
Opus frame (with an RFC 6464 level when given), :meth:`LitePeer.skip_frame` loses one on
purpose, :class:`OpusTalker` encodes a synthetic source in real time with libopus, and
``record_audio`` keeps every downlink packet for decoding afterwards.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import string
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.media import FrameSource
from mediacodecs.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder
from mediaserver.rtp.extensions import serialize_audio_level
from mediaserver.rtp.packet import RtpPacket, peek_header, peek_payload_offset
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint
from mediaserver.transport.dtls import DtlsSession, HandshakeCompleted, HandshakeFailed
from mediaserver.transport.srtp import SrtpContext
from mediaserver.transport.stun import (
    BINDING,
    StunClass,
    StunMessage,
    ice_controlling_attribute,
    priority_attribute,
    use_candidate_attribute,
    username_attribute,
)

__all__ = [
    "LitePeer",
    "LitePeerTimings",
    "OpusTalker",
    "ReceivedAudio",
    "decode_received",
    "rfc6464_level",
]

_HEADER = struct.Struct("!BBHII")
_ICE_CHARS = string.ascii_letters + string.digits
_CONSENT_INTERVAL = 5.0


@dataclass
class LitePeerTimings:
    """Monotonic timestamps of the connection's milestones (None until reached)."""

    ice_connected: float | None = None
    dtls_connected: float | None = None
    first_audio: float | None = None


@dataclass
class _Remote:
    ufrag: str
    pwd: str
    fingerprints: list[Fingerprint]
    address: tuple[str, int]
    audio_payload_type: int = 111
    audio_level_id: int | None = None
    """The RFC 6464 extension id the answer kept, or None."""
    opus_fmtp: str = ""


def _parse_answer(sdp: str) -> _Remote:
    def attr(name: str) -> str:
        match = re.search(rf"^a={name}:(.+?)\r?$", sdp, re.MULTILINE)
        if match is None:
            raise ValueError(f"the answer has no a={name}")
        return match.group(1).strip()

    candidate = re.search(
        r"^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", sdp, re.MULTILINE | re.IGNORECASE
    )
    if candidate is None:
        raise ValueError("the answer has no host candidate")
    fingerprints = [
        Fingerprint.parse(m.group(1).strip())
        for m in re.finditer(r"^a=fingerprint:(.+?)\r?$", sdp, re.MULTILINE)
    ]
    pt = re.search(r"^a=rtpmap:(\d+) opus/48000", sdp, re.MULTILINE | re.IGNORECASE)
    level = re.search(
        r"^a=extmap:(\d+)\S* urn:ietf:params:rtp-hdrext:ssrc-audio-level", sdp, re.MULTILINE
    )
    payload_type = int(pt.group(1)) if pt else 111
    fmtp = re.search(rf"^a=fmtp:{payload_type} (.+?)\r?$", sdp, re.MULTILINE)
    return _Remote(
        ufrag=attr("ice-ufrag"),
        pwd=attr("ice-pwd"),
        fingerprints=fingerprints,
        address=(candidate.group(1), int(candidate.group(2))),
        audio_payload_type=payload_type,
        audio_level_id=int(level.group(1)) if level else None,
        opus_fmtp=fmtp.group(1).strip() if fmtp else "",
    )


@dataclass(frozen=True, slots=True)
class ReceivedAudio:
    """One downlink audio RTP packet, decrypted (``LitePeer(record_audio=True)``)."""

    arrival: float
    sequence_number: int
    timestamp: int
    payload: bytes


def decode_received(
    packets: Sequence[ReceivedAudio], channels: int = 1
) -> list[tuple[float, npt.NDArray[np.int16]]]:
    """Decode recorded packets in sequence order: one 20 ms frame per sequence number.

    A missing sequence number is concealed by the decoder (PLC), as a client would.
    Returns (arrival time of the packet, or of the next one for a concealed frame, frame),
    each frame ``(960,)`` for mono or ``(960, 2)`` for stereo.
    """
    decoder = OpusDecoder(channels)
    frames: list[tuple[float, npt.NDArray[np.int16]]] = []
    previous: int | None = None
    for packet in packets:
        if previous is not None:
            gap = (packet.sequence_number - previous - 1) & 0xFFFF
            if gap > 0x8000:
                continue  # late duplicate or reordered: already concealed
            for _ in range(min(gap, 50)):
                frames.append((packet.arrival, decoder.conceal(FRAME_SAMPLES)))
        frames.append((packet.arrival, decoder.decode(packet.payload)))
        previous = packet.sequence_number
    return frames


def rfc6464_level(pcm: npt.NDArray[np.int16]) -> int:
    """The RFC 6464 level of a frame: its RMS in -dBov, 0 (loudest) to 127 (silence)."""
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64)))) / 32768.0
    if rms <= 0.0:
        return 127
    return min(127, max(0, round(-20.0 * float(np.log10(rms)))))


@dataclass
class LitePeer(asyncio.DatagramProtocol):
    """One bot's media connection. Create, ``await start()``, ``offer()``, ``await connect()``."""

    certificate: DtlsCertificate
    decrypt: bool = False
    send_audio: bytes | None = None
    """An Opus frame to send every 20 ms once connected (None: send nothing)."""
    receive_videos: int = 0
    """``recvonly`` video m-lines (mids 2, 3, …) to offer, for remote videos (§3.3)."""
    stereo: bool = False
    """Offer Opus with ``stereo=1;sprop-stereo=1``, as amazon-chime-sdk-js does for a stereo
    AudioProfile (chime-signaling-protocol.md §3.3; RFC 7587 §6.1)."""
    record_audio: bool = False
    """Decrypt downlink audio and keep every packet in :attr:`received_audio`."""
    received_audio: list[ReceivedAudio] = field(default_factory=list)
    timings: LitePeerTimings = field(default_factory=LitePeerTimings)
    audio_packets: int = 0
    audio_bytes: int = 0
    srtp_errors: int = 0
    ufrag: str = field(
        default_factory=lambda: "".join(secrets.choice(_ICE_CHARS) for _ in range(8))
    )
    pwd: str = field(default_factory=lambda: "".join(secrets.choice(_ICE_CHARS) for _ in range(24)))

    def __post_init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._local_port = 0
        self._remote: _Remote | None = None
        self._dtls: DtlsSession | None = None
        self._srtp: SrtpContext | None = None
        self._ice_done = asyncio.Event()
        self.first_audio_received = asyncio.Event()
        self._dtls_done = asyncio.Event()
        self._failure: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ssrc = secrets.randbits(32) or 1
        self._seq = secrets.randbelow(0x10000)
        self._ts = secrets.randbelow(0x100000000)
        self._tiebreaker = secrets.randbits(64)

    # -- asyncio ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not data:
            return
        first = data[0]
        now = time.monotonic()
        if 128 <= first <= 191:
            if 192 <= data[1] <= 223:
                return  # RTCP
            if (self.decrypt or self.record_audio) and self._srtp is not None:
                try:
                    data = self._srtp.unprotect_rtp(data)
                except ValueError:
                    self.srtp_errors += 1
                    return
                if self.record_audio:
                    _, _, seq, timestamp, _ = peek_header(data)
                    payload = data[peek_payload_offset(data) :]
                    self.received_audio.append(ReceivedAudio(now, seq, timestamp, payload))
            self.audio_packets += 1
            self.audio_bytes += len(data)
            if self.timings.first_audio is None:
                self.timings.first_audio = now
                self.first_audio_received.set()
        elif first <= 3:
            try:
                message = StunMessage.parse(data)
            except ValueError:
                return
            if message.message_class is StunClass.SUCCESS and not self._ice_done.is_set():
                self.timings.ice_connected = now
                self._ice_done.set()
        elif 20 <= first <= 63 and self._dtls is not None:
            self._dtls.receive_datagram(data, now)
            self._flush_dtls(now)

    # -- API ------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        assert self._transport is not None
        self._local_port = self._transport.get_extra_info("sockname")[1]
        self._host = host

    def offer(self) -> str:
        """A browser-shaped offer: max-bundle, audio sendrecv, camera inactive, no trickle."""
        fp = str(self.certificate.fingerprint)
        common = [
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{self.ufrag}",
            f"a=ice-pwd:{self.pwd}",
            f"a=fingerprint:{fp}",
            "a=setup:actpass",
            "a=rtcp-mux",
        ]
        lines = [
            "v=0",
            f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1",
            "a=msid-semantic: WMS bot",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            *common,
            f"a=candidate:1 1 udp 2122260223 {self._host} {self._local_port} typ host",
            "a=end-of-candidates",
            "a=mid:0",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=sendrecv",
            "a=msid:bot audio0",
            "a=rtpmap:111 opus/48000/2",
            "a=rtcp-fb:111 transport-cc",
            "a=fmtp:111 minptime=10;useinbandfec=1"
            + (";stereo=1;sprop-stereo=1" if self.stereo else ""),
            f"a=ssrc:{self._ssrc} cname:bot",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            *common,
            "a=mid:1",
            "a=inactive",
            "a=rtpmap:96 VP8/90000",
            "a=rtcp-fb:96 nack",
            "a=rtcp-fb:96 nack pli",
            "a=rtcp-fb:96 goog-remb",
        ]
        for mid in range(2, 2 + self.receive_videos):
            lines += [
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                *common,
                f"a=mid:{mid}",
                "a=recvonly",
                "a=rtpmap:96 VP8/90000",
                "a=rtcp-fb:96 nack",
                "a=rtcp-fb:96 nack pli",
            ]
        if self.receive_videos:
            mids = " ".join(str(m) for m in range(2 + self.receive_videos))
            lines[4] = f"a=group:BUNDLE {mids}"
        return "\r\n".join(lines) + "\r\n"

    def _check(self, nominate: bool) -> bytes:
        assert self._remote is not None
        attributes = [
            username_attribute(f"{self._remote.ufrag}:{self.ufrag}"),
            priority_attribute(1853824767),
            ice_controlling_attribute(self._tiebreaker),
        ]
        if nominate:
            attributes.append(use_candidate_attribute())
        message = StunMessage(
            BINDING, StunClass.REQUEST, secrets.token_bytes(12), tuple(attributes)
        )
        return message.serialize(integrity_key=self._remote.pwd.encode(), fingerprint=True)

    async def connect(self, answer: str, timeout: float = 15.0) -> None:
        """Run ICE then DTLS against the answer's host candidate."""
        self._remote = _parse_answer(answer)
        remote = self._remote
        assert self._transport is not None
        deadline = time.monotonic() + timeout
        while not self._ice_done.is_set():
            self._transport.sendto(self._check(nominate=True), remote.address)
            try:
                await asyncio.wait_for(self._ice_done.wait(), 0.2)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError("ICE did not connect") from None
        now = time.monotonic()
        self._dtls = DtlsSession(self.certificate, remote.fingerprints, role="client")
        self._dtls.start(now)
        self._flush_dtls(now)
        while not self._dtls_done.is_set():
            try:
                await asyncio.wait_for(self._dtls_done.wait(), 0.05)
            except TimeoutError:
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError("DTLS did not connect") from None
                timer = self._dtls.get_timer()
                if timer is not None and now >= timer:
                    self._dtls.handle_timer(now)
                    self._flush_dtls(now)
        if self._failure is not None:
            raise ConnectionError(self._failure)
        self._tasks.append(asyncio.create_task(self._consent()))
        if self.send_audio is not None:
            self._tasks.append(asyncio.create_task(self._send_audio(self.send_audio)))

    def _flush_dtls(self, now: float) -> None:
        assert self._dtls is not None and self._remote is not None
        for datagram in self._dtls.datagrams_to_send():
            if self._transport is not None:
                self._transport.sendto(datagram, self._remote.address)
        for event in self._dtls.events_received():
            if isinstance(event, HandshakeCompleted):
                self._srtp = SrtpContext(event.keys, role="client")
                self.timings.dtls_connected = now
                self._dtls_done.set()
            elif isinstance(event, HandshakeFailed):
                self._failure = event.reason
                self._dtls_done.set()

    async def _consent(self) -> None:
        while True:
            await asyncio.sleep(_CONSENT_INTERVAL)
            if self._transport is not None and self._remote is not None:
                self._transport.sendto(self._check(nominate=True), self._remote.address)

    @property
    def answer_opus_fmtp(self) -> str:
        """The Opus ``a=fmtp`` parameters of the server's answer (empty before connect)."""
        return self._remote.opus_fmtp if self._remote is not None else ""

    def send_frame(self, payload: bytes, audio_level: int | None = None) -> bool:
        """Send one 20 ms Opus frame now, with the RFC 6464 level when given and the answer
        kept the extension. Returns False (and sends nothing) before DTLS is up."""
        remote = self._remote
        if self._srtp is None or self._transport is None or remote is None:
            return False
        if audio_level is not None and remote.audio_level_id is not None:
            packet = RtpPacket(
                payload_type=remote.audio_payload_type,
                sequence_number=self._seq,
                timestamp=self._ts,
                ssrc=self._ssrc,
                extensions={
                    remote.audio_level_id: serialize_audio_level(audio_level < 127, audio_level)
                },
                payload=payload,
            ).serialize()
        else:  # the cheap path of the load bots
            packet = _HEADER.pack(0x80, remote.audio_payload_type, self._seq, self._ts, self._ssrc)
            packet += payload
        self.skip_frame()
        self._transport.sendto(self._srtp.protect_rtp(packet), remote.address)
        return True

    def skip_frame(self) -> None:
        """Use up one frame's sequence number and timestamp without sending: a lost packet."""
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + FRAME_SAMPLES) & 0xFFFFFFFF

    async def _send_audio(self, frame: bytes) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.send_frame(frame)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()


class OpusTalker:
    """Speaks through a :class:`LitePeer`: encodes a synthetic source with libopus in real
    time, one 20 ms frame every 20 ms, each with its RFC 6464 level, like a browser's
    microphone track.

    Args:
        peer: a connected peer.
        sources: one :class:`~bench.media.FrameSource` per channel (two for stereo).
        bitrate: of the encoder.
        loss: the fraction of frames dropped before sending (uplink loss), drawn from a
            ``random.Random(seed)`` so a run is repeatable.
        seed: of the loss draw.

    Attributes:
        sent, dropped: frame counts.
    """

    def __init__(
        self,
        peer: LitePeer,
        sources: Sequence[FrameSource],
        *,
        bitrate: int = 32000,
        loss: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.peer = peer
        self.sources = list(sources)
        self.encoder = OpusEncoder(len(self.sources), bitrate)
        self.loss = loss
        self.sent = 0
        self.dropped = 0
        self._random = random.Random(seed)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def next_packet(self) -> tuple[bytes, int]:
        """Encode the next frame of the sources; returns (Opus payload, RFC 6464 level)."""
        channels = [source.next_frame(FRAME_SAMPLES) for source in self.sources]
        pcm = channels[0] if len(channels) == 1 else np.stack(channels, axis=1)
        return self.encoder.encode(np.ascontiguousarray(pcm)), rfc6464_level(pcm)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            payload, level = self.next_packet()
            if self.loss and self._random.random() < self.loss:
                self.peer.skip_frame()
                self.dropped += 1
            elif self.peer.send_frame(payload, level):
                self.sent += 1

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

"""A lightweight WebRTC peer for load tests, built on Carillon's own sans-I/O cores.

It is a real client on the wire: it offers an SDP shaped like the browser's (BUNDLE, audio
mid 0 sendrecv with Opus, camera mid 1 inactive), runs ICE as the controlling agent with
USE-CANDIDATE (RFC 8445 §7.2.5.2), DTLS as the client (RFC 5763: the offerer says actpass,
the answer says passive), keys SRTP from it, keeps ICE consent fresh (RFC 7675), and may
send a looped pre-encoded Opus frame every 20 ms. To stay cheap it only counts the audio it
receives unless asked to decrypt it. aiortc (bench/peer.py) is the full-featured client;
this one exists so that hundreds of attendees fit on one bot core.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from dataclasses import dataclass, field

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

__all__ = ["LitePeer", "LitePeerTimings"]

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
    return _Remote(
        ufrag=attr("ice-ufrag"),
        pwd=attr("ice-pwd"),
        fingerprints=fingerprints,
        address=(candidate.group(1), int(candidate.group(2))),
        audio_payload_type=int(pt.group(1)) if pt else 111,
    )


@dataclass
class LitePeer(asyncio.DatagramProtocol):
    """One bot's media connection. Create, ``await start()``, ``offer()``, ``await connect()``."""

    certificate: DtlsCertificate
    decrypt: bool = False
    send_audio: bytes | None = None
    """An Opus frame to send every 20 ms once connected (None: send nothing)."""
    receive_videos: int = 0
    """``recvonly`` video m-lines (mids 2, 3, …) to offer, for remote videos (§3.3)."""
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
            if self.decrypt and self._srtp is not None:
                try:
                    data = self._srtp.unprotect_rtp(data)
                except ValueError:
                    self.srtp_errors += 1
                    return
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
            "a=fmtp:111 minptime=10;useinbandfec=1",
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

    async def _send_audio(self, frame: bytes) -> None:
        assert self._remote is not None
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        pt = self._remote.audio_payload_type
        while True:
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self._srtp is None or self._transport is None:
                continue
            header = bytes([0x80, pt]) + self._seq.to_bytes(2, "big")
            header += self._ts.to_bytes(4, "big") + self._ssrc.to_bytes(4, "big")
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + 960) & 0xFFFFFFFF
            self._transport.sendto(self._srtp.protect_rtp(header + frame), self._remote.address)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()

"""The media engine: peers on the shared UDP port and the 20 ms audio clock.

It implements the gateway's :class:`~mediaserver.gateway.server.MediaBackend`: a
SUBSCRIBE's offer creates (or, on renegotiation, keeps) the member's
:class:`~mediaserver.transport.peer.PeerTransport` and yields the SDP answer. Every 20 ms
the audio clock sends each connected peer one Opus frame on mid 0 (silence until the mixer
takes over; chime-signaling-protocol.md §6.3), and runs the transport's timers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from mediaserver.audio.egress import AudioSender, silence_frame
from mediaserver.clock import Clock
from mediaserver.config import ServerConfig
from mediaserver.errors import InvalidArgument, MalformedMessage, UnsupportedError
from mediaserver.gateway.room import Member
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint
from mediaserver.transport.ice import IceLiteAgent
from mediaserver.transport.peer import PeerTransport
from mediaserver.transport.sdp import (
    AnswerParams,
    SessionOffer,
    VideoCodec,
    VideoSendAssignment,
    parse_offer,
    plan_answer,
    render_answer,
    video_slots,
)
from mediaserver.transport.udp import UdpMediaTransport
from signaling.events import SubscribeReceived

__all__ = ["TICK", "MediaServer"]

logger = logging.getLogger(__name__)

TICK = 0.020
"""The audio clock: one Opus frame per attendee every 20 ms."""


class _Downlink:
    """Per-member media state kept beside its peer."""

    __slots__ = ("answers", "audio", "muted", "peer", "session_id", "video_ssrcs")

    def __init__(self, peer: PeerTransport, audio: AudioSender) -> None:
        self.peer = peer
        self.audio = audio
        self.muted = False
        self.video_ssrcs: dict[str, int] = {}
        """A fixed SSRC per downlink video m-line, for as long as the m-line lives (§3.3)."""
        self.session_id = secrets.randbits(62)
        self.answers = 0


class MediaServer:
    """Owns the UDP transport, the peers and the audio clock."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.certificate = DtlsCertificate.generate()
        self.agent = IceLiteAgent(software="carillon")
        self.transport = UdpMediaTransport(clock, self.agent)
        self.transport.on_rtp = self._on_rtp
        self._downlinks: dict[Member, _Downlink] = {}
        self._silence = silence_frame()
        self._ticker: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self.ticks = 0
        self.late_ticks = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(
            lambda: self.transport, local_addr=(self.config.host, self.config.udp_port)
        )
        self._next_tick = loop.time() + TICK
        self._ticker = loop.call_at(self._next_tick, self._tick)
        logger.info("media on udp %s:%d", self.config.host, self.config.udp_port)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for member in list(self._downlinks):
            self.close(member)
        if self.transport.transport is not None:
            self.transport.transport.close()

    # -- the audio clock --------------------------------------------------------------------

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.clock.monotonic()
        self.ticks += 1
        self.transport.handle_timers(now)
        payload = self._silence
        sendto = self.transport.sendto
        for downlink in self._downlinks.values():
            peer = downlink.peer
            srtp = peer.srtp
            address = peer.address
            if srtp is None or address is None:
                continue
            packet = srtp.protect_rtp(downlink.audio.packet(payload))
            peer.stats.rtp_out += 1
            peer.stats.bytes_out += len(packet)
            sendto(packet, address)
        # Schedule on an absolute grid so the stream keeps 50 packets/s without drift;
        # after a stall, skip missed ticks rather than bursting.
        self._next_tick += TICK
        current = loop.time()
        if self._next_tick < current:
            self.late_ticks += 1
            self._next_tick = current + TICK
        self._ticker = loop.call_at(self._next_tick, self._tick)

    # -- packets ----------------------------------------------------------------------------

    def _on_rtp(self, peer: PeerTransport, packet: bytes, now: float) -> None:
        """Uplink RTP after SRTP: counted on the peer (the mixer will consume it)."""

    # -- MediaBackend -------------------------------------------------------------------------

    def subscribe(self, member: Member, event: SubscribeReceived, now: float) -> str:
        """Answer a SUBSCRIBE's offer (chime-signaling-protocol.md §3.3).

        A first offer, or one with new ICE credentials (an ICE restart or a reconnect),
        creates a new peer; a renegotiation on the same credentials keeps it.

        Raises:
            MalformedMessage: the offer does not parse.
            UnsupportedError: the offer asks for something the server cannot do.
        """
        if not event.sdp_offer:
            raise MalformedMessage("the SUBSCRIBE carries no plain-text sdp_offer")
        offer = parse_offer(event.sdp_offer)
        ufrag, pwd, fingerprints = _remote_ice(offer)
        downlink = self._downlinks.get(member)
        if downlink is None or downlink.peer.remote_ufrag != ufrag:
            downlink = self._new_downlink(member, ufrag, pwd, fingerprints, now)
        video_send = {}
        for slot in video_slots(offer):
            if slot.is_downlink:
                ssrc = downlink.video_ssrcs.get(slot.mid)
                if ssrc is None:
                    ssrc = downlink.video_ssrcs[slot.mid] = secrets.randbits(32) or 1
                video_send[slot.mid] = VideoSendAssignment(ssrc=ssrc, codec=VideoCodec.VP8)
        downlink.answers += 1
        plan = plan_answer(
            offer,
            AnswerParams(
                ice_ufrag=downlink.peer.local_ufrag,
                ice_pwd=downlink.peer.local_pwd,
                fingerprint=str(self.certificate.fingerprint),
                host=self.config.advertised_host,
                port=self.config.udp_port,
                audio_ssrc=downlink.audio.ssrc,
                cname="carillon",
                video_send=video_send,
                session_id=downlink.session_id,
                session_version=downlink.answers,
            ),
        )
        if plan.audio_payload_type is not None:
            downlink.audio.payload_type = plan.audio_payload_type
        return render_answer(plan)

    def _new_downlink(
        self,
        member: Member,
        ufrag: str,
        pwd: str,
        fingerprints: list[Fingerprint],
        now: float,
    ) -> _Downlink:
        old = self._downlinks.pop(member, None)
        if old is not None:
            self.transport.remove_peer(old.peer)
        meeting = member.app_data.get("meeting")
        meeting_id = getattr(meeting, "meeting_id", "?")
        try:
            peer = PeerTransport(
                key=f"meeting {meeting_id} attendee {member.attendee_id}",
                certificate=self.certificate,
                remote_ufrag=ufrag,
                remote_pwd=pwd,
                remote_fingerprints=fingerprints,
                now=now,
            )
        except InvalidArgument as exc:
            raise UnsupportedError(str(exc)) from None
        self.transport.add_peer(peer, now)
        downlink = _Downlink(peer, AudioSender(111, secrets.randbits(32) or 1))
        downlink.muted = member.muted
        self._downlinks[member] = downlink
        member.app_data["peer"] = peer
        return downlink

    def last_activity(self, member: Member) -> float | None:
        downlink = self._downlinks.get(member)
        return downlink.peer.last_rx if downlink is not None else None

    def set_muted(self, member: Member, muted: bool) -> None:
        downlink = self._downlinks.get(member)
        if downlink is not None:
            downlink.muted = muted

    def close(self, member: Member) -> None:
        downlink = self._downlinks.pop(member, None)
        if downlink is not None:
            self.transport.remove_peer(downlink.peer)

    def peer_stats(self) -> list[dict[str, Any]]:
        return [
            {"peer": d.peer.key, "rtp_in": d.peer.stats.rtp_in, "rtp_out": d.peer.stats.rtp_out}
            for d in self._downlinks.values()
        ]


def _remote_ice(offer: SessionOffer) -> tuple[str, str, list[Fingerprint]]:
    """The client's ICE credentials and DTLS fingerprints (session or media level)."""
    ufrag, pwd = offer.ice_ufrag, offer.ice_pwd
    sdp_fingerprints = list(offer.fingerprints)
    for section in offer.media:
        if section.rejected:
            continue
        ufrag = ufrag or section.ice_ufrag
        pwd = pwd or section.ice_pwd
        if not sdp_fingerprints:
            sdp_fingerprints = list(section.fingerprints)
    if not ufrag or not pwd:
        raise MalformedMessage("the offer has no ICE credentials")
    fingerprints = [Fingerprint.parse(f"{f.algorithm} {f.value}") for f in sdp_fingerprints]
    if not fingerprints:
        raise MalformedMessage("the offer has no DTLS fingerprint")
    return ufrag, pwd, fingerprints

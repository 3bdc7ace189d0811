"""The media engine: peers on the shared UDP port, the mixers and the 20 ms audio clock.

It implements the gateway's :class:`~mediaserver.gateway.server.MediaBackend`: a
SUBSCRIBE's offer creates (or, on renegotiation, keeps) the member's
:class:`~mediaserver.transport.peer.PeerTransport` and yields the SDP answer.

Audio: one :class:`~mediaserver.audio.mixer.MixMinusMixer` per meeting. Each uplink Opus
packet goes, after SRTP, straight into its source's jitter buffer (a few header peeks, no
decode). Every 20 ms the audio clock ticks every mixer and sends each connected attendee
one Opus frame on mid 0: the shared mix, or its own mix-minus while it speaks, in stereo
when its offer asked for stereo; silence included, never a gap
(chime-signaling-protocol.md §6.3). About five times a second the
mixers' levels go to the gateway for AUDIO_METADATA (§5.2).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mediacodecs import vp8
from mediaserver.audio.egress import AudioSender, send_mix
from mediaserver.audio.mixer import MixMinusMixer
from mediaserver.clock import Clock
from mediaserver.config import ServerConfig
from mediaserver.errors import (
    InvalidArgument,
    MalformedMessage,
    MalformedPacket,
    UnsupportedError,
)
from mediaserver.gateway.room import Member
from mediaserver.rtp.packet import peek_extension, peek_header, peek_payload_offset
from mediaserver.rtp.rtcp import RtcpFir, RtcpNack, RtcpPli, parse_compound
from mediaserver.sfu.nack import NackGenerator
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
from mediaserver.transport.udp import UdpMediaTransport, bind_socket
from mediaserver.video import VideoRouter
from signaling.events import SubscribeReceived
from signaling.messages import TrackMapping

__all__ = ["LEVEL_EVERY_TICKS", "TICK", "LevelsListener", "MediaServer", "SubscribeResult"]

logger = logging.getLogger(__name__)

TICK = 0.020
"""The audio clock: one Opus frame per attendee every 20 ms."""
SENDER_REPORT_EVERY_TICKS = 50
"""RTCP sender reports for the audio downlinks once a second (RFC 3550 §6.2)."""
LEVEL_EVERY_TICKS = 10
"""AUDIO_METADATA about five times a second (chime-signaling-protocol.md §5.2)."""

LevelsListener = Callable[[str, MixMinusMixer, float], None]
"""Called with (meeting id, its mixer, now) when audio levels are due."""


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """The SDP answer of a SUBSCRIBE and the SUBSCRIBE_ACK ``tracks`` (§3.3)."""

    answer: str
    tracks: tuple[TrackMapping, ...]


class _Downlink:
    """Per-member media state kept beside its peer."""

    __slots__ = (
        "answers",
        "audio",
        "audio_level_id",
        "audio_payload_type",
        "bitrate_sample",
        "camera_codec",
        "camera_payload_types",
        "camera_rids",
        "member",
        "mixer",
        "muted",
        "nacks",
        "peer",
        "rid_ext_id",
        "rid_streams",
        "session_id",
        "source_id",
        "ssrc_streams",
        "stream_bytes",
        "stream_ssrcs",
        "video_ssrcs",
    )

    def __init__(
        self,
        member: Member,
        peer: PeerTransport,
        audio: AudioSender,
        mixer: MixMinusMixer,
        source_id: str,
    ) -> None:
        self.member = member
        self.peer = peer
        self.audio = audio
        self.mixer = mixer
        self.source_id = source_id
        """The attendee id as the mixer knows it (``<id>#content`` for a content share)."""
        self.audio_payload_type = 111
        self.audio_level_id: int | None = None
        self.muted = False
        self.camera_payload_types: frozenset[int] = frozenset()
        """Payload types of the codecs accepted on the camera m-line (uplink video)."""
        self.camera_codec: VideoCodec | None = None
        self.camera_rids: tuple[str, ...] = ()
        """The simulcast RIDs of the camera m-line, in ``a=simulcast`` order (RFC 8853)."""
        self.rid_ext_id: int | None = None
        self.rid_streams: dict[str, int] = {}
        """RID (``""`` without simulcast) → the stream id allocated to that encoding."""
        self.ssrc_streams: dict[int, int] = {}
        """Publisher SSRC → stream id, learned from the RID header extension (RFC 8852)."""
        self.stream_ssrcs: dict[int, int] = {}
        self.nacks: dict[int, NackGenerator] = {}
        self.stream_bytes: dict[int, int] = {}
        """Bytes received per published stream, for BITRATES (§4.4)."""
        self.bitrate_sample: tuple[float, dict[int, int]] | None = None
        """Loss detection per uplink video SSRC, for NACKs to the publisher."""
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
        self.transport.on_rtcp = self._on_rtcp
        self.video = VideoRouter(self._request_keyframe)
        self.video_forwarded = 0
        self._downlinks: dict[Member, _Downlink] = {}
        self._mixers: dict[str, MixMinusMixer] = {}
        """One mixer per meeting id."""
        self._sources: dict[tuple[str, str], _Downlink] = {}
        """(meeting id, source id) → the downlink currently feeding and hearing that source."""
        self._listeners: dict[str, tuple[tuple[str, ...], list[_Downlink]]] = {}
        """Meeting id → (the mixer's receivers, their downlinks) for the audio clock."""
        self.on_audio_levels: LevelsListener | None = None
        self.on_tick_duration: Callable[[float], None] | None = None
        """Called with the CPU-bound duration of each audio tick (mixing and egress)."""
        self._ticker: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self.ticks = 0
        self.late_ticks = 0
        self.malformed_rtp = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = bind_socket(self.config.host, self.config.udp_port)
        await loop.create_datagram_endpoint(lambda: self.transport, sock=sock)
        self.transport.socket = sock
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
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        now = self.clock.monotonic()
        self.ticks += 1
        self.transport.handle_timers(now)
        self._send_nacks(now)
        sendto = self.transport.sendto
        report_levels = self.ticks % LEVEL_EVERY_TICKS == 0
        if self.ticks % SENDER_REPORT_EVERY_TICKS == 0:
            self._send_sender_reports()
        for meeting_id, mixer in list(self._mixers.items()):
            out = mixer.tick(now)
            send_mix(out, self._audio_listeners(meeting_id, mixer), sendto)
            if report_levels and self.on_audio_levels is not None:
                self.on_audio_levels(meeting_id, mixer, now)
        if self.on_tick_duration is not None:
            self.on_tick_duration(time.perf_counter() - started)
        # Schedule on an absolute grid so the stream keeps 50 packets/s without drift;
        # after a stall, skip missed ticks rather than bursting.
        self._next_tick += TICK
        current = loop.time()
        if self._next_tick < current:
            self.late_ticks += 1
            self._next_tick = current + TICK
        self._ticker = loop.call_at(self._next_tick, self._tick)

    def _audio_listeners(self, meeting_id: str, mixer: MixMinusMixer) -> list[_Downlink]:
        """The downlinks of ``mixer.receivers``, rebuilt only when that tuple changes (the
        mixer makes a new one on every membership or capability change)."""
        receivers = mixer.receivers
        cached = self._listeners.get(meeting_id)
        if cached is None or cached[0] is not receivers:
            sources = self._sources
            listeners = [
                downlink
                for source_id in receivers
                if (downlink := sources.get((meeting_id, source_id))) is not None
            ]
            cached = self._listeners[meeting_id] = (receivers, listeners)
        return cached[1]

    # -- packets ----------------------------------------------------------------------------

    def _on_rtp(self, peer: PeerTransport, packet: bytes, now: float) -> None:
        """Uplink RTP after SRTP: Opus goes to the meeting's mixer, on bytes only."""
        downlink = peer.owner
        if not isinstance(downlink, _Downlink) or len(packet) < 12:
            return
        payload_type = packet[1] & 0x7F
        if payload_type != downlink.audio_payload_type:
            if payload_type in downlink.camera_payload_types:
                _, _, seq, _, ssrc = peek_header(packet)
                self._forward_video(downlink, packet, ssrc, seq, now)
            return
        try:
            downlink.mixer.receive_rtp(downlink.source_id, packet, downlink.audio_level_id, now)
        except MalformedPacket:
            self.malformed_rtp += 1

    def _send_sender_reports(self) -> None:
        """An RTCP sender report for every audio downlink (RFC 3550 §6.4.1), once a second."""
        wall = self.clock.wall()
        for downlink in self._downlinks.values():
            peer = downlink.peer
            if peer.srtp is None or peer.address is None or not downlink.audio.packets_sent:
                continue
            report = downlink.audio.sender_report(wall).serialize()
            self.transport.sendto(peer.srtp.protect_rtcp(report), peer.address)

    def _forward_video(
        self, publisher: _Downlink, packet: bytes, ssrc: int, seq: int, now: float
    ) -> None:
        """Fan a camera packet out to the m-lines subscribed to its stream (style guide §8).

        An m-line waiting to switch to this stream switches at its first keyframe packet.
        """
        stream_id = publisher.ssrc_streams.get(ssrc)
        if stream_id is None:
            stream_id = self._identify(publisher, packet, ssrc)
            if not stream_id:
                return
        nacks = publisher.nacks.get(ssrc)
        if nacks is None:
            nacks = publisher.nacks[ssrc] = NackGenerator(
                sender_ssrc=publisher.audio.ssrc, media_ssrc=ssrc
            )
        nacks.receive(seq, now)
        publisher.stream_bytes[stream_id] = publisher.stream_bytes.get(stream_id, 0) + len(packet)
        outs = self.video.outs(stream_id)
        if not outs:
            return
        keyframe: bool | None = None
        sendto = self.transport.sendto
        for out in outs:
            if out.stream_id != stream_id:
                if keyframe is None:
                    keyframe = _starts_keyframe(publisher.camera_codec, packet)
                if not keyframe:
                    continue
                self.video.switch(out)
            subscriber = out.subscriber
            assert isinstance(subscriber, _Downlink)
            peer = subscriber.peer
            srtp = peer.srtp
            address = peer.address
            if srtp is None or address is None:
                continue
            data = srtp.protect_rtp(out.forward(packet, now))
            peer.stats.rtp_out += 1
            peer.stats.bytes_out += len(data)
            sendto(data, address)
            self.video_forwarded += 1

    def _identify(self, publisher: _Downlink, packet: bytes, ssrc: int) -> int:
        """The stream a new uplink SSRC carries: the only one, or by its RID (RFC 8852)."""
        streams = publisher.rid_streams
        stream_id = streams.get("", 0)
        if not stream_id and publisher.rid_ext_id is not None:
            try:
                rid = peek_extension(packet, publisher.rid_ext_id)
            except MalformedPacket:
                rid = None
            if rid:
                stream_id = streams.get(rid.decode("ascii", "replace"), 0)
        if stream_id:
            publisher.ssrc_streams[ssrc] = stream_id
            publisher.stream_ssrcs[stream_id] = ssrc
        return stream_id

    def _on_rtcp(self, peer: PeerTransport, packet: bytes, now: float) -> None:
        """Subscriber feedback: PLI and FIR for a forwarded stream go to its publisher."""
        downlink = peer.owner
        if not isinstance(downlink, _Downlink):
            return
        try:
            packets = parse_compound(packet)
        except MalformedPacket:
            self.malformed_rtp += 1
            return
        for rtcp in packets:
            if isinstance(rtcp, RtcpNack):
                self._answer_nack(downlink, rtcp, now)
                continue
            ssrcs: tuple[int, ...] = ()
            if isinstance(rtcp, RtcpPli):
                ssrcs = (rtcp.media_ssrc,)
            elif isinstance(rtcp, RtcpFir):
                ssrcs = tuple(ssrc for ssrc, _ in rtcp.entries)
            for ssrc in ssrcs:
                out = self.video.out_for_ssrc(downlink, ssrc)
                if out is not None and out.stream_id:
                    self.video.keyframe(out.stream_id, now)

    def _answer_nack(self, subscriber: _Downlink, nack: RtcpNack, now: float) -> None:
        """Resend what a subscriber lost on one of its video m-lines (RFC 4585 §6.2.1)."""
        out = self.video.out_for_ssrc(subscriber, nack.media_ssrc)
        peer = subscriber.peer
        srtp = peer.srtp
        if out is None or srtp is None or peer.address is None:
            return
        for packet in out.history.receive_nack(nack.lost, now):
            self.transport.sendto(srtp.protect_rtp(packet), peer.address)

    def _send_nacks(self, now: float) -> None:
        """Ask publishers to resend what was lost on their uplink (RFC 4585 §6.2.1)."""
        for downlink in self._downlinks.values():
            for nacks in downlink.nacks.values():
                deadline = nacks.get_timer()
                if deadline is None or now < deadline:
                    continue
                nack = nacks.nacks_to_send(now)
                peer = downlink.peer
                if nack is None or peer.srtp is None or peer.address is None:
                    continue
                self.transport.sendto(peer.srtp.protect_rtcp(nack.serialize()), peer.address)

    def _request_keyframe(self, publisher: object, stream_id: int, now: float) -> None:
        assert isinstance(publisher, _Downlink)
        peer = publisher.peer
        srtp = peer.srtp
        ssrc = publisher.stream_ssrcs.get(stream_id)
        if srtp is None or peer.address is None or ssrc is None:
            return
        pli = RtcpPli(sender_ssrc=publisher.audio.ssrc, media_ssrc=ssrc)
        self.transport.sendto(srtp.protect_rtcp(pli.serialize()), peer.address)

    # -- MediaBackend -------------------------------------------------------------------------

    def subscribe(self, member: Member, event: SubscribeReceived, now: float) -> SubscribeResult:
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
        wanted: dict[str, int] = {}
        for slot in video_slots(offer):
            if slot.is_downlink:
                ssrc = downlink.video_ssrcs.get(slot.mid)
                if ssrc is None:
                    ssrc = downlink.video_ssrcs[slot.mid] = secrets.randbits(32) or 1
                video_send[slot.mid] = VideoSendAssignment(ssrc=ssrc, codec=VideoCodec.VP8)
                # receive_stream_ids[k] belongs to the k-th video m-line (§3.3).
                ids = event.receive_stream_ids
                wanted[slot.mid] = ids[slot.index] if slot.index < len(ids) else 0
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
                mirror_simulcast=True,
            ),
        )
        if plan.audio_payload_type is not None:
            downlink.audio.payload_type = plan.audio_payload_type
            downlink.audio_payload_type = plan.audio_payload_type
        downlink.audio_level_id = plan.audio_level_id
        if self._sources.get((_meeting_id(member), downlink.source_id)) is downlink:
            # A stereo offer gets a stereo mix (RFC 7587 §6.1; spec §3.3 "Audio downlink").
            downlink.mixer.set_stereo(downlink.source_id, plan.audio_stereo_offered)
        camera = plan.camera
        downlink.camera_rids = camera.recv_rids if camera is not None else ()
        downlink.camera_codec = camera.video_codec if camera is not None else None
        downlink.rid_ext_id = plan.rid_id
        downlink.camera_payload_types = (
            frozenset(c.payload_type for c in camera.codecs if not c.is_rtx)
            if camera is not None and camera.direction != "inactive"
            else frozenset()
        )
        lines: dict[str, tuple[int, int, int]] = {}
        tracks: list[TrackMapping] = []
        for mid, stream_id in wanted.items():
            section = plan.section(mid)
            ssrc = downlink.video_ssrcs[mid]
            if section.payload_type is None:
                continue
            lines[mid] = (ssrc, section.payload_type, stream_id)
            if stream_id:
                tracks.append(TrackMapping(stream_id=stream_id, ssrc=ssrc, track_label=f"v_{mid}"))
        self.video.subscribe(downlink, lines, now)
        return SubscribeResult(render_answer(plan), tuple(tracks))

    def stream_bitrates(self, members: Sequence[Member], now: float) -> dict[int, int]:
        """Average bits/s per published stream of ``members`` since the previous call."""
        rates: dict[int, int] = {}
        for member in members:
            downlink = self._downlinks.get(member)
            if downlink is None:
                continue
            counts = dict(downlink.stream_bytes)
            previous = downlink.bitrate_sample
            downlink.bitrate_sample = (now, counts)
            if previous is None or now <= previous[0]:
                continue
            elapsed = now - previous[0]
            for stream_id, total in counts.items():
                if stream_id in downlink.rid_streams.values():
                    sent = total - previous[1].get(stream_id, 0)
                    if sent > 0:
                        rates[stream_id] = int(sent * 8 / elapsed)
        return rates

    def publish(self, member: Member, stream_ids: list[int], now: float) -> None:
        """The member's camera (or content share) got these stream ids (first: forwarded)."""
        downlink = self._downlinks.get(member)
        if downlink is None:
            return
        rids = downlink.camera_rids
        if rids and len(stream_ids) == len(rids):
            streams = dict(zip(rids, stream_ids, strict=True))
        else:
            streams = {"": stream_ids[0]} if stream_ids else {}
        if streams != downlink.rid_streams:
            downlink.rid_streams = streams
            downlink.ssrc_streams.clear()
            downlink.stream_ssrcs.clear()
        self.video.publish(downlink, list(streams.values()), now)

    def select(self, member: Member, mid: str, stream_id: int, now: float) -> None:
        downlink = self._downlinks.get(member)
        if downlink is not None:
            self.video.select(downlink, mid, stream_id, now)

    def pause(self, member: Member, stream_ids: set[int], paused: bool, now: float) -> None:
        downlink = self._downlinks.get(member)
        if downlink is not None:
            self.video.pause(downlink, stream_ids, paused, now)

    def _new_downlink(
        self,
        member: Member,
        ufrag: str,
        pwd: str,
        fingerprints: list[Fingerprint],
        now: float,
    ) -> _Downlink:
        self.close(member)
        meeting_id = _meeting_id(member)
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
        mixer = self._mixers.get(meeting_id)
        if mixer is None:
            mixer = self._mixers[meeting_id] = MixMinusMixer(
                max_speakers=self.config.max_speakers,
                bitrate=self.config.audio_bitrate,
                stereo_bitrate=self.config.audio_stereo_bitrate,
            )
        source_id = member.attendee_id
        previous = self._sources.pop((meeting_id, source_id), None)
        if previous is not None:
            # A newer connection of the same attendee takes the source over.
            mixer.remove_source(source_id)
        can_send, can_receive = _audio_capabilities(member)
        mixer.add_source(source_id, can_send=can_send, can_receive=can_receive, muted=member.muted)
        downlink = _Downlink(
            member, peer, AudioSender(111, secrets.randbits(32) or 1), mixer, source_id
        )
        downlink.muted = member.muted
        peer.owner = downlink
        self._downlinks[member] = downlink
        self._sources[(meeting_id, source_id)] = downlink
        member.app_data["peer"] = peer
        return downlink

    def last_activity(self, member: Member) -> float | None:
        downlink = self._downlinks.get(member)
        return downlink.peer.last_rx if downlink is not None else None

    def set_muted(self, member: Member, muted: bool) -> None:
        downlink = self._downlinks.get(member)
        if downlink is not None:
            downlink.muted = muted
            downlink.mixer.set_muted(downlink.source_id, muted)

    def update_capabilities(self, meeting_id: str, attendee_id: str, audio: str) -> None:
        """UpdateAttendeeCapabilities took effect: mix or stop mixing the attendee."""
        downlink = self._sources.get((meeting_id, attendee_id))
        if downlink is not None:
            can_send = audio in ("SendReceive", "Send")
            can_receive = audio in ("SendReceive", "Receive")
            downlink.mixer.set_capabilities(downlink.source_id, can_send, can_receive)

    def close(self, member: Member) -> None:
        downlink = self._downlinks.pop(member, None)
        if downlink is None:
            return
        self.transport.remove_peer(downlink.peer)
        self.video.unpublish(downlink)
        self.video.unsubscribe(downlink)
        meeting_id = _meeting_id(member)
        key = (meeting_id, downlink.source_id)
        if self._sources.get(key) is downlink:
            del self._sources[key]
            downlink.mixer.remove_source(downlink.source_id)
            if not downlink.mixer.receivers and not any(k[0] == meeting_id for k in self._sources):
                self._mixers.pop(meeting_id, None)
                self._listeners.pop(meeting_id, None)

    def peer_stats(self) -> list[dict[str, Any]]:
        return [
            {"peer": d.peer.key, "rtp_in": d.peer.stats.rtp_in, "rtp_out": d.peer.stats.rtp_out}
            for d in self._downlinks.values()
        ]


def _starts_keyframe(codec: VideoCodec | None, packet: bytes) -> bool:
    """Whether ``packet`` starts a keyframe (VP8, RFC 7741 §4.3); other codecs are not
    gated and switch at once."""
    if codec is not VideoCodec.VP8:
        return True
    try:
        return vp8.is_keyframe(packet[peek_payload_offset(packet) :])
    except MalformedPacket:
        return False


def _meeting_id(member: Member) -> str:
    meeting = member.app_data.get("meeting")
    return str(getattr(meeting, "meeting_id", "?"))


def _audio_capabilities(member: Member) -> tuple[bool, bool]:
    """(can send, can receive) audio, from the attendee's capabilities (meetings-digest §5)."""
    attendee = member.app_data.get("attendee")
    audio = getattr(getattr(attendee, "capabilities", None), "audio", "SendReceive")
    return audio in ("SendReceive", "Send"), audio in ("SendReceive", "Receive")


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

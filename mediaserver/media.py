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

Video: each uplink camera packet is split once and copied per subscribed m-line
(:meth:`MediaServer._fan_out` over an immutable snapshot of the m-lines). Each copy goes
through its subscriber's :class:`~mediaserver.sfu.pacer.Pacer`: it leaves at once when the
pacer has no backlog and budget for it (the fast path), else it waits in that subscriber's
bounded drop-oldest queue, so one slow subscriber never delays the others on the shared
socket. A subscriber is paced at 2.5x the capacity its feedback vouches for
(:attr:`~mediaserver.sfu.controller.DownlinkController.capacity`: the estimate with
server-side adaption, else its own REMB), not at all without one. One loop timer
(:meth:`MediaServer.drain`, armed only while a pacer holds packets) protects and sends
what the pacers release. NACK answers and probes go through the pacer too; audio and RTCP
bypass it (small and latency-critical).

Uplink congestion control: when a member's audio or camera m-line negotiated the
transport-wide sequence number with ``transport-cc`` feedback (browsers offer both), each
of its packets is noted on arrival (:mod:`mediaserver.sfu.twcc_feedback`, a ring write) and
every 60 ms (240 ms at low packet rates) the clock sends it transport-cc feedback
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1). Its send-side estimate grows on
it, and amazon-chime-sdk-js's simulcast uplink policy turns layers on from that estimate;
REMB to senders over their cap stays the ceiling.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

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
from mediaserver.keyframes import starts_keyframe
from mediaserver.rtp.dump import UplinkDump
from mediaserver.rtp.extensions import TRANSPORT_CC_URI
from mediaserver.rtp.packet import (
    peek_extension,
    peek_header,
    peek_sequence_number,
)
from mediaserver.rtp.rtcp import (
    RtcpFir,
    RtcpNack,
    RtcpPli,
    RtcpRemb,
    RtcpTransportCc,
    parse_compound,
)
from mediaserver.sfu import rtx
from mediaserver.sfu.controller import DownlinkController, LinePreference
from mediaserver.sfu.nack import NackGenerator
from mediaserver.sfu.pacer import Pacer, pacing_rate
from mediaserver.sfu.svc_rates import SvcLayerRates, layer_code, layer_of_code
from mediaserver.sfu.twcc import stamp
from mediaserver.sfu.twcc_feedback import TransportFeedbackGenerator
from mediaserver.sfu.uplink_cap import UplinkCap, cap_for_resolution
from mediaserver.sfu.view import PacketView, PacketViewParser, PayloadFormat
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint
from mediaserver.transport.ice import IceLiteAgent
from mediaserver.transport.peer import PeerTransport
from mediaserver.transport.sdp import (
    DEFAULT_CAMERA_CODECS,
    DEFAULT_VIDEO_FEEDBACK,
    DEPENDENCY_DESCRIPTOR_URI,
    AnswerParams,
    MediaSection,
    SectionAnswer,
    SessionOffer,
    VideoCodec,
    VideoSendAssignment,
    codec_intersection,
    parse_offer,
    plan_answer,
    receive_codecs,
    render_answer,
    video_slots,
)
from mediaserver.transport.udp import UdpMediaTransport, bind_socket
from mediaserver.video import OutStream, VideoRouter, prepare
from signaling.events import SubscribeReceived
from signaling.messages import TrackMapping, VideoSubscriptionConfiguration

__all__ = [
    "ADAPT_EVERY_TICKS",
    "FEEDBACK_EVERY_TICKS",
    "FEEDBACK_MAX_WAIT",
    "FEEDBACK_MIN_PACKETS",
    "LAYER_SILENCE",
    "LEVEL_EVERY_TICKS",
    "TICK",
    "LevelsListener",
    "MediaServer",
    "PauseListener",
    "SubscribeResult",
]

logger = logging.getLogger(__name__)

TICK = 0.020
"""The audio clock: one Opus frame per attendee every 20 ms."""
SENDER_REPORT_EVERY_TICKS = 50
"""RTCP sender reports for the audio downlinks once a second (RFC 3550 §6.2)."""
LEVEL_EVERY_TICKS = 10
"""AUDIO_METADATA about five times a second (chime-signaling-protocol.md §5.2)."""

FEEDBACK_EVERY_TICKS = 3
"""Transport-cc feedback to each sender every 60 ms (draft-holmer-rmcat-transport-wide-
cc-extensions-01 §3; libwebrtc's receivers send it every 50-250 ms, less often at low
rates) when at least :data:`FEEDBACK_MIN_PACKETS` numbers await it, else after
:data:`FEEDBACK_MAX_WAIT`."""
FEEDBACK_MIN_PACKETS = 10
FEEDBACK_MAX_WAIT = 0.24
"""An audio-only sender (50 packets/s) gets feedback about every 200 ms, not every 60."""
ADAPT_EVERY_TICKS = 25
"""Server-side adaption re-allocates every subscriber's layers twice a second (§4.5)."""
_PADDING_PACKET = 275
"""Bytes of one probe: RTP header, transport-wide number, 255 octets of padding."""
_RATE_SMOOTHING = 0.6
"""Weight of the previous layer bitrate in the per-publisher moving average."""
_REMB_FEEDBACK = tuple(f for f in DEFAULT_VIDEO_FEEDBACK if f != "transport-cc")
"""Downlink video feedback for clients that estimate their downlink themselves (REMB)."""
LAYER_SILENCE = 1.2
"""Seconds without a packet after which a simulcast layer counts as turned off (a camera
sends at least 15 frames/s; two measurements at 0.5 s, plus margin)."""
DRAIN_INTERVAL = 0.005
"""Seconds at least between two drains of the pacers (libwebrtc's pacer sends in bursts
at least 5 ms apart, ``kDefaultMinPacketLimit``; the burst allowance covers 40 ms)."""

LevelsListener = Callable[[str, MixMinusMixer, float], None]
"""Called with (meeting id, its mixer, now) when audio levels are due."""
PauseListener = Callable[[Member, list[int], bool], None]
"""Called with (subscriber, stream ids, paused) when server-side adaption pauses or resumes
the sources of those stream ids for that subscriber (S→C PAUSE/RESUME, §4.6)."""


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """The SDP answer of a SUBSCRIBE and the SUBSCRIBE_ACK ``tracks`` (§3.3)."""

    answer: str
    tracks: tuple[TrackMapping, ...]
    receive_codecs: frozenset[VideoCodec] = frozenset()
    """The video formats the offer can decode, for the meeting's codec intersection."""


class _Downlink:
    """Per-member media state kept beside its peer."""

    __slots__ = (
        "answers",
        "audio",
        "audio_level_id",
        "audio_payload_type",
        "bitrate_sample",
        "bwe",
        "camera_codec",
        "camera_payload_types",
        "camera_rids",
        "camera_rtx",
        "cap",
        "dd_ext_id",
        "layer_heard_at",
        "layer_rates",
        "layer_sample",
        "member",
        "mixer",
        "muted",
        "nacks",
        "pacer",
        "peer",
        "receive_codecs",
        "repaired_rid_ext_id",
        "rid_ext_id",
        "rid_streams",
        "rtx_media_ssrcs",
        "session_id",
        "source_id",
        "ssrc_streams",
        "stream_bytes",
        "stream_ssrcs",
        "svc_rates",
        "uplink_feedback",
        "uplink_feedback_at",
        "uplink_media_ssrc",
        "uplink_twcc_id",
        "video_formats",
        "video_rtx_ssrcs",
        "video_ssrcs",
        "view_parsers",
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
        self.camera_rtx: dict[int, int] = {}
        """RTX payload type → its ``apt`` on the camera m-line (RFC 4588 §8.6)."""
        self.rtx_media_ssrcs: dict[int, int] = {}
        """Publisher RTX SSRC → the SSRC it repairs (``a=ssrc-group:FID``, or learned)."""
        self.repaired_rid_ext_id: int | None = None
        self.dd_ext_id: int | None = None
        """The AV1 dependency descriptor extension id, for key frame detection."""
        self.receive_codecs: frozenset[VideoCodec] = frozenset()
        """The video formats the member's offer can decode (spec §4.2 intersection)."""
        self.video_formats: dict[str, dict[VideoCodec, tuple[int, int | None]]] = {}
        """Per downlink video m-line, the formats answered → (payload type, RTX type)."""
        self.view_parsers: dict[int, PacketViewParser] = {}
        """Uplink SSRC → the parser of its packets' layer facts (for layer dropping)."""
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
        self.svc_rates: dict[int, SvcLayerRates] = {}
        """VP9/AV1 stream id → bits/s per SVC layer (mediaserver.sfu.svc_rates)."""
        """Bytes received per published stream, for BITRATES (§4.4)."""
        self.bitrate_sample: tuple[float, dict[int, int]] | None = None
        """Loss detection per uplink video SSRC, for NACKs to the publisher."""
        self.video_ssrcs: dict[str, int] = {}
        """A fixed SSRC per downlink video m-line, for as long as the m-line lives (§3.3)."""
        self.video_rtx_ssrcs: dict[str, int] = {}
        """The RTX SSRC of each downlink video m-line (RFC 4588), offered when it has RTX."""
        self.session_id = secrets.randbits(62)
        self.answers = 0
        self.bwe: DownlinkController | None = None
        """Transport-wide numbering, feedback and (with adaption) layer choice (§4.5)."""
        self.layer_rates: dict[int, float] = {}
        """Published stream id → smoothed bits/s, for the allocation of subscribers."""
        self.layer_sample: tuple[float, dict[int, int]] | None = None
        self.layer_heard_at: dict[int, float] = {}
        """Published stream id → when its byte count last moved (measured twice a second)."""
        self.cap: UplinkCap | None = None
        """The sender's video bitrate cap (meetings-digest.md §4.5), once it publishes."""
        self.pacer = Pacer()
        """The connection's video egress: paced at its downlink estimate once it has one."""
        self.uplink_twcc_id: int | None = None
        """The transport-wide sequence number extension id on what the member sends, when
        its audio or camera m-line negotiated it with ``transport-cc`` feedback."""
        self.uplink_feedback: TransportFeedbackGenerator | None = None
        """Arrivals of the member's packets, for the transport-cc feedback it gets."""
        self.uplink_media_ssrc = 0
        """An SSRC the member sends (its offer's audio ``a=ssrc``), for the feedback's
        media source field (libwebrtc hands feedback to the stream owning that SSRC)."""
        self.uplink_feedback_at = 0.0
        """When the member last got transport-cc feedback."""


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
        self.video_repaired = 0
        """Publisher RTX packets unwrapped and forwarded as the packets they repair."""
        self.rtx_duplicates = 0
        """Publisher RTX packets for packets that had arrived (probes), not forwarded."""
        self._downlinks: dict[Member, _Downlink] = {}
        self._mixers: dict[str, MixMinusMixer] = {}
        """One mixer per meeting id."""
        self._sources: dict[tuple[str, str], _Downlink] = {}
        """(meeting id, source id) → the downlink currently feeding and hearing that source."""
        self._listeners: dict[str, tuple[tuple[str, ...], list[_Downlink]]] = {}
        """Meeting id → (the mixer's receivers, their downlinks) for the audio clock."""
        self.on_audio_levels: LevelsListener | None = None
        self.on_video_paused: PauseListener | None = None
        self._probing: set[_Downlink] = set()
        """Subscribers whose controller asked for probes (paced on the 20 ms clock)."""
        self.probe_packets = 0
        self.cap_dropped_packets = 0
        """Uplink video packets dropped because their sender was over its cap."""
        self._cap_dropped_frames = 0
        self.on_tick_duration: Callable[[float], None] | None = None
        """Called with the CPU-bound duration of each audio tick (mixing and egress)."""
        self._ticker: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pacing: set[_Downlink] = set()
        """Subscribers whose pacer holds packets; the drain timer is armed while any do."""
        self._drainer: asyncio.TimerHandle | None = None
        self._drain_at = 0.0
        self._closed_pacers = [0, 0, 0]
        """Pacer counters (dropped, expired, queued) of the connections closed so far."""
        self.ticks = 0
        self.late_ticks = 0
        self.malformed_rtp = 0
        dump = UplinkDump.from_environment()
        if dump is not None:  # Debugging only (mediaserver.rtp.dump); no cost when unset.
            self._forward_video = dump.wrap(self._forward_video)  # type: ignore[method-assign]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        sock = bind_socket(self.config.host, self.config.udp_port)
        await loop.create_datagram_endpoint(lambda: self.transport, sock=sock)
        self.transport.socket = sock
        self._next_tick = loop.time() + TICK
        self._ticker = loop.call_at(self._next_tick, self._tick)
        logger.info("media on udp %s:%d", self.config.host, self.config.udp_port)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._drainer is not None:
            self._drainer.cancel()
            self._drainer = None
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
        if self.ticks % FEEDBACK_EVERY_TICKS == 0:
            self._send_uplink_feedback(now)
        if self.ticks % ADAPT_EVERY_TICKS == 0:
            self._adapt_layers(now)
            self._send_cap_rembs(now)
        if self._probing:
            self._send_probes(now)
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
        """Uplink RTP after SRTP: Opus goes to the meeting's mixer, on bytes only.

        A packet with a transport-wide sequence number is first noted for the sender's
        transport-cc feedback (sent from the tick)."""
        downlink = peer.owner
        if not isinstance(downlink, _Downlink) or len(packet) < 12:
            return
        feedback = downlink.uplink_feedback
        if feedback is not None:
            feedback.receive_rtp(packet, downlink.uplink_twcc_id or 0, now)
        payload_type = packet[1] & 0x7F
        if payload_type != downlink.audio_payload_type:
            if payload_type in downlink.camera_payload_types:
                _, _, seq, _, ssrc = peek_header(packet)
                self._forward_video(downlink, packet, ssrc, seq, now)
            elif payload_type in downlink.camera_rtx:
                ssrc = int.from_bytes(packet[8:12], "big")
                self._repair_video(downlink, packet, payload_type, ssrc, now)
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

    def _send_uplink_feedback(self, now: float) -> None:
        """Transport-cc feedback to every member whose packets carry transport-wide
        numbers, for what arrived since the last one (draft-holmer-rmcat-transport-wide-
        cc-extensions-01 §3.1), so that its send-side estimate can grow."""
        sendto = self.transport.sendto
        for downlink in self._downlinks.values():
            generator = downlink.uplink_feedback
            peer = downlink.peer
            if generator is None or peer.srtp is None or peer.address is None:
                continue
            pending = generator.pending
            if not pending or (
                pending < FEEDBACK_MIN_PACKETS
                and now - downlink.uplink_feedback_at < FEEDBACK_MAX_WAIT
            ):
                continue
            downlink.uplink_feedback_at = now
            media_ssrc = downlink.uplink_media_ssrc or next(iter(downlink.stream_ssrcs.values()), 0)
            for feedback in generator.feedback(downlink.audio.ssrc, media_ssrc):
                sendto(peer.srtp.protect_rtcp(feedback.serialize()), peer.address)

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
        keyframe: bool | None = None
        cap = publisher.cap
        if cap is not None:
            if cap.needs_keyframe_check(stream_id):
                keyframe = _starts_keyframe(publisher, packet)
            admitted, ask = cap.admit(
                stream_id, int.from_bytes(packet[4:8], "big"), len(packet), now, keyframe
            )
            if ask:
                self.video.keyframe(stream_id, now)
            if not admitted:
                self.cap_dropped_packets += 1
                return
        # What is forwardable (BITRATES, layer costs): after the cap.
        publisher.stream_bytes[stream_id] = publisher.stream_bytes.get(stream_id, 0) + len(packet)
        view: PacketView | None = None
        codec = publisher.camera_codec
        if codec is _VP9 or codec is _AV1:
            # What each SVC layer costs (the allocator's options); the view is the one the
            # m-lines dropping layers read anyway.
            view = self._view(publisher, packet, ssrc)
            if view is not None:
                rates = publisher.svc_rates.get(stream_id)
                if rates is None:
                    rates = publisher.svc_rates[stream_id] = SvcLayerRates()
                rates.add(packet, view.spatial_id, view.temporal_id)
        outs = self.video.outs(stream_id)
        if outs:
            self._fan_out(publisher, packet, ssrc, stream_id, outs, keyframe, now, view)

    def _fan_out(
        self,
        publisher: _Downlink,
        packet: bytes,
        ssrc: int,
        stream_id: int,
        outs: tuple[OutStream, ...],
        keyframe: bool | None,
        now: float,
        view: PacketView | None = None,
    ) -> None:
        """One copy of ``packet`` per subscribed m-line: renumbered, paced, protected, sent.

        The packet is split once (:func:`~mediaserver.video.prepare`); each copy costs one
        header pack, one concatenation, the subscriber's :meth:`Pacer.offer
        <mediaserver.sfu.pacer.Pacer.offer>`, SRTP and ``sendto``. A copy the pacer holds
        leaves later from :meth:`drain`, so one slow subscriber never delays the others.
        ``outs`` is an immutable snapshot, so a subscription changing meanwhile never
        disturbs the loop (style guide §8).
        """
        prepared = prepare(packet)
        layered = publisher.camera_codec in _LAYERED_CODECS
        size = len(packet)
        sendto = self.transport.sendto
        forwarded = 0
        for out in outs:
            subscriber = out.subscriber
            assert isinstance(subscriber, _Downlink)
            if out.stream_id != stream_id:
                if keyframe is None:
                    keyframe = _starts_keyframe(publisher, packet)
                # Only at a key frame, and only in a format the m-line was answered with.
                formats = subscriber.video_formats.get(out.mid)
                if not keyframe or formats is None or publisher.camera_codec not in formats:
                    continue
                self.video.switch(out)
                self._use_format(subscriber, out, formats[publisher.camera_codec])
                out.use_payload_format(publisher.camera_codec.payload_format)
                logger.debug(
                    "%s: mid %s forwards stream %d (ssrc %d) from seq %d",
                    subscriber.peer.key,
                    out.mid,
                    stream_id,
                    ssrc,
                    peek_sequence_number(packet),
                )
            peer = subscriber.peer
            srtp = peer.srtp
            address = peer.address
            if srtp is None or address is None:
                continue
            bwe = subscriber.bwe
            if out.layer_target is None or not layered:
                if bwe is not None and bwe.stamping:
                    plain = out.forward_prepared(prepared, now, bwe.extension(now, size))
                else:
                    plain = out.forward_prepared(prepared, now)
            else:
                if view is None:
                    view = self._view(publisher, packet, ssrc)
                    if view is None:
                        break
                layered_copy = self._forward_layers(publisher, out, view, stream_id, now, bwe)
                if layered_copy is None:
                    continue
                plain = layered_copy
            # The subscriber's pacer says whether the copy leaves now (the fast path: its
            # queue is empty and its budget holds the copy) or waits for the drain timer.
            if subscriber.pacer.offer(plain, now):
                data = srtp.protect_rtp(plain)
                stats = peer.stats
                stats.rtp_out += 1
                stats.bytes_out += len(data)
                sendto(data, address)
            elif subscriber not in self._pacing:
                self._paced(subscriber, now)
            forwarded += 1
        self.video_forwarded += forwarded

    def _repair_video(
        self, publisher: _Downlink, packet: bytes, payload_type: int, rtx_ssrc: int, now: float
    ) -> None:
        """A publisher's RTX packet (answering our NACK, RFC 4588 §4) is unwrapped and
        forwarded as the packet it repairs, filling the gap; probes end here (padding-only,
        or a retransmission of a packet that arrived)."""
        media_ssrc = publisher.rtx_media_ssrcs.get(rtx_ssrc)
        if media_ssrc is None:
            media_ssrc = self._identify_rtx(publisher, packet, rtx_ssrc)
            if media_ssrc is None:
                return
        try:
            original = rtx.unwrap(packet, publisher.camera_rtx[payload_type], media_ssrc)
        except MalformedPacket:
            self.malformed_rtp += 1
            return
        if original is None:
            return
        seq = peek_sequence_number(original)
        nacks = publisher.nacks.get(media_ssrc)
        if nacks is not None and not nacks.fills_gap(seq):
            # Arrived already: a probe made of a retransmission (once the sender's estimate
            # grows on our transport-cc feedback), not a repair.
            self.rtx_duplicates += 1
            return
        self.video_repaired += 1
        self._forward_video(publisher, original, media_ssrc, seq, now)

    def _identify_rtx(self, publisher: _Downlink, packet: bytes, rtx_ssrc: int) -> int | None:
        """The SSRC an RTX stream repairs: by its repaired RID (RFC 8852 §4.4), or the only
        uplink video stream."""
        stream_id = 0
        if publisher.repaired_rid_ext_id is not None:
            try:
                rid = peek_extension(packet, publisher.repaired_rid_ext_id)
            except MalformedPacket:
                rid = None
            if rid:
                stream_id = publisher.rid_streams.get(rid.decode("ascii", "replace"), 0)
        if stream_id:
            media_ssrc = publisher.stream_ssrcs.get(stream_id)
        elif len(publisher.stream_ssrcs) == 1:
            (media_ssrc,) = publisher.stream_ssrcs.values()
        else:
            media_ssrc = None
        if media_ssrc is not None:
            publisher.rtx_media_ssrcs[rtx_ssrc] = media_ssrc
        return media_ssrc

    def _use_format(
        self, subscriber: _Downlink, out: OutStream, payload_types: tuple[int, int | None]
    ) -> None:
        """Send on ``out`` with this format's payload type (and its RTX payload type)."""
        payload_type, rtx_payload_type = payload_types
        if out.payload_type == payload_type:
            return
        out.payload_type = payload_type
        rtx_ssrc = subscriber.video_rtx_ssrcs.get(out.mid) if rtx_payload_type else None
        self.video.set_rtx(subscriber, out.mid, rtx_ssrc, rtx_payload_type)

    def _forward_layers(
        self,
        publisher: _Downlink,
        out: OutStream,
        view: PacketView,
        stream_id: int,
        now: float,
        bwe: DownlinkController | None,
    ) -> bytes | None:
        """The packet for an m-line with a layer target, or None when its layer is dropped
        (mediaserver.video_layers); only a kept packet takes a transport-wide number."""
        layers = out.layers
        if layers is None:
            assert publisher.camera_codec is not None
            fmt = publisher.camera_codec.payload_format
            layers = self.video.engage_layers(out, fmt, now, view)
        decided = out.decide_layers(view, stream_id, now)
        if layers.keyframe_wanted:
            self.video.keyframe(stream_id, now)
        if decided is None:
            return None
        if bwe is not None and bwe.stamping:
            return out.forward_decided(view, decided, now, bwe.extension(now, len(view.data)))
        return out.forward_decided(view, decided, now)

    def _view(self, publisher: _Downlink, packet: bytes, ssrc: int) -> PacketView | None:
        """The layer facts of an uplink packet, read once for every m-line dropping layers."""
        parser = publisher.view_parsers.get(ssrc)
        if parser is None:
            codec = publisher.camera_codec
            fmt = codec.payload_format if codec is not None else "opaque"
            if fmt == "av1" and publisher.dd_ext_id is None:
                fmt = "opaque"  # No dependency descriptor: no layers to read.
            parser = publisher.view_parsers[ssrc] = PacketViewParser(
                cast(PayloadFormat, fmt), dependency_descriptor_id=publisher.dd_ext_id
            )
        try:
            return parser.parse(packet)
        except MalformedPacket:
            self.malformed_rtp += 1
            return None

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
            if isinstance(rtcp, RtcpTransportCc):
                if downlink.bwe is not None:
                    downlink.bwe.receive_transport_cc(rtcp, now)
                    self._pace(downlink, downlink.bwe, now)
                continue
            if isinstance(rtcp, RtcpRemb):
                if downlink.bwe is not None:
                    downlink.bwe.receive_remb(rtcp.bitrate)
                    self._pace(downlink, downlink.bwe, now)
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
        bwe = subscriber.bwe
        for packet in out.history.receive_nack(nack.lost, now):
            if bwe is not None and bwe.stamping and bwe.ext_id is not None:
                # A resend is a new packet on the transport: a new transport-wide number.
                try:
                    packet = stamp(packet, bwe.ext_id, bwe.sequencer.next(now, len(packet)))
                except MalformedPacket:
                    continue
            self._send_paced(subscriber, packet, now)

    # -- pacing (mediaserver.sfu.pacer) ---------------------------------------------------

    def _pace(self, downlink: _Downlink, bwe: DownlinkController, now: float) -> None:
        """Follow the subscriber's downlink capacity with its pacing rate (new feedback)."""
        pacer = downlink.pacer
        rate = pacing_rate(bwe.capacity)
        if rate != pacer.rate:
            pacer.set_rate(rate)
            if pacer.backlog:
                self._paced(downlink, now)  # an earlier due time re-arms the timer

    def _send_paced(self, downlink: _Downlink, packet: bytes, now: float) -> bool:
        """Send an RTP packet to a subscriber through its pacer; True when it left now."""
        peer = downlink.peer
        srtp = peer.srtp
        address = peer.address
        if srtp is None or address is None:
            return False
        if not downlink.pacer.offer(packet, now):
            if downlink not in self._pacing:
                self._paced(downlink, now)
            return False
        data = srtp.protect_rtp(packet)
        stats = peer.stats
        stats.rtp_out += 1
        stats.bytes_out += len(data)
        self.transport.sendto(data, address)
        return True

    def _paced(self, downlink: _Downlink, now: float) -> None:
        """The subscriber's pacer holds packets: make sure the drain timer covers it."""
        self._pacing.add(downlink)
        due = downlink.pacer.next_due(now)
        if due is not None:
            self._arm_drain(due, now)

    def _arm_drain(self, due: float, now: float) -> None:
        """One timer for all pacers, at the earliest due time (not within
        :data:`DRAIN_INTERVAL` of now); a timer armed earlier already covers ``due``.
        Without a running loop (:meth:`start` not called, as in unit tests) the caller
        drains with :meth:`drain` itself."""
        due = max(due, now + DRAIN_INTERVAL)
        if self._drainer is not None:
            if self._drain_at <= due:
                return
            self._drainer.cancel()
            self._drainer = None
        loop = self._loop
        if loop is None:
            return
        self._drain_at = due
        self._drainer = loop.call_later(due - now, self._on_drain_timer)

    def _on_drain_timer(self) -> None:
        self._drainer = None
        self.drain(self.clock.monotonic())

    def drain(self, now: float) -> None:
        """Send what the pacers release at ``now`` (SRTP protect, ``sendto``) and re-arm the
        drain timer while any pacer still holds packets."""
        earliest: float | None = None
        for downlink in list(self._pacing):
            pacer = downlink.pacer
            packets = pacer.due(now)
            if packets:
                self._send_released(downlink, packets, now)
            due = pacer.next_due(now)
            if due is None:
                self._pacing.discard(downlink)
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            self._arm_drain(earliest, now)

    def _send_released(self, downlink: _Downlink, packets: list[bytes], now: float) -> None:
        peer = downlink.peer
        srtp = peer.srtp
        address = peer.address
        if srtp is None or address is None:
            downlink.pacer.expired += len(packets)  # never sent: counted, not lost silently
            return
        bwe = downlink.bwe
        late = bwe.sent_late if bwe is not None and bwe.stamping else None
        protect = srtp.protect_rtp
        sendto = self.transport.sendto
        stats = peer.stats
        for packet in packets:
            if late is not None:
                late(packet, now)
            data = protect(packet)
            stats.rtp_out += 1
            stats.bytes_out += len(data)
            sendto(data, address)

    def pacer_totals(self) -> tuple[int, int, int, int]:
        """The subscribers' pacers, live and closed: video packets (dropped from a full
        queue, dropped after waiting too long, that had to wait at all, waiting now)."""
        dropped, expired, queued = self._closed_pacers
        backlog = 0
        for downlink in self._downlinks.values():
            pacer = downlink.pacer
            dropped += pacer.dropped
            expired += pacer.expired
            queued += pacer.queued
            backlog += pacer.backlog
        return dropped, expired, queued, backlog

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
        logger.debug("%s: PLI for stream %d (ssrc %d)", peer.key, stream_id, ssrc)
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
        downlink.receive_codecs = receive_codecs(offer)
        preferred = self.meeting_codecs(_meeting_id(member))
        # The camera sends the meeting's codec when it can; other accepted codecs follow.
        camera_codecs = preferred + tuple(c for c in DEFAULT_CAMERA_CODECS if c not in preferred)
        video_send = {}
        wanted: dict[str, int] = {}
        for slot in video_slots(offer):
            if slot.is_downlink:
                ssrc = downlink.video_ssrcs.get(slot.mid)
                if ssrc is None:
                    ssrc = downlink.video_ssrcs[slot.mid] = secrets.randbits(32) or 1
                rtx_ssrc = downlink.video_rtx_ssrcs.get(slot.mid)
                if rtx_ssrc is None:
                    rtx_ssrc = downlink.video_rtx_ssrcs[slot.mid] = secrets.randbits(32) or 1
                # receive_stream_ids[k] belongs to the k-th video m-line (§3.3).
                ids = event.receive_stream_ids
                wanted[slot.mid] = ids[slot.index] if slot.index < len(ids) else 0
                codec = self._downlink_codec(
                    offer.section(slot.mid), wanted[slot.mid], camera_codecs
                )
                # Every other format too, so the m-line follows publishers that move to
                # another codec when the meeting's intersection changes (§4.2).
                alternatives = tuple(c for c in camera_codecs if c is not codec)
                video_send[slot.mid] = VideoSendAssignment(
                    ssrc=ssrc, codec=codec, rtx_ssrc=rtx_ssrc, alternatives=alternatives
                )
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
                camera_codecs=camera_codecs,
                downlink_video_feedback=_REMB_FEEDBACK if member.client_side_adaption else None,
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
        codec_before = downlink.camera_codec
        downlink.camera_codec = camera.video_codec if camera is not None else None
        if codec_before is not None and downlink.camera_codec is not codec_before:
            # The camera moved to another codec: its subscribers restart at a key frame,
            # in the payload type their m-line has for it.
            self.video.restart(self.video.streams_of(downlink), now)
        downlink.rid_ext_id = plan.rid_id
        downlink.repaired_rid_ext_id = plan.repaired_rid_id
        downlink.dd_ext_id = plan.extension_id(DEPENDENCY_DESCRIPTOR_URI)
        downlink.camera_payload_types = (
            frozenset(c.payload_type for c in camera.codecs if not c.is_rtx)
            if camera is not None and camera.direction != "inactive"
            else frozenset()
        )
        _negotiate_camera_rtx(downlink, camera)
        _negotiate_uplink_feedback(downlink, plan.audio, camera)
        bwe = self._downlink_control(downlink, member, plan.video_send)
        lines: dict[str, tuple[int, int, int]] = {}
        tracks: list[TrackMapping] = []
        for mid, stream_id in wanted.items():
            section = plan.section(mid)
            assignment = video_send[mid]
            downlink.video_formats[mid] = section.format_payload_types(
                (assignment.codec, *assignment.alternatives)
            )
            ssrc = downlink.video_ssrcs[mid]
            if section.payload_type is None:
                continue
            forwarded = stream_id
            if bwe is not None and bwe.adaptive:
                forwarded = self._keep_layer(downlink, mid, stream_id)
            lines[mid] = (ssrc, section.payload_type, forwarded)
            if stream_id:
                tracks.append(TrackMapping(stream_id=stream_id, ssrc=ssrc, track_label=f"v_{mid}"))
        if bwe is not None and bwe.adaptive:
            self._configure_lines(bwe, wanted, event.video_subscription_configuration)
        self.video.subscribe(downlink, lines, now)
        for mid in lines:
            section = plan.section(mid)
            rtx_pt = section.rtx_payload_type
            if section.rtx_ssrc is not None and rtx_pt is not None:
                self.video.set_rtx(downlink, mid, section.rtx_ssrc, rtx_pt)
            else:
                self.video.set_rtx(downlink, mid, None, None)
        return SubscribeResult(render_answer(plan), tuple(tracks), downlink.receive_codecs)

    def meeting_codecs(self, meeting_id: str) -> tuple[VideoCodec, ...]:
        """The formats every connected member of the meeting can decode, preferred first
        (spec §4.2 ``supported_receive_codec_intersection``)."""
        return codec_intersection(
            d.receive_codecs
            for d in self._downlinks.values()
            if d.receive_codecs and _meeting_id(d.member) == meeting_id
        )

    def _downlink_codec(
        self, section: MediaSection, stream_id: int, preferred: Sequence[VideoCodec]
    ) -> VideoCodec:
        """The format of a downlink m-line: the wanted stream's, when the m-line offers it,
        else the most preferred one it offers."""
        offered = [v for v in VideoCodec if any(v.matches(c) for c in section.codecs)]
        publisher = self.video.publishers.get(stream_id)
        if isinstance(publisher, _Downlink) and publisher.camera_codec in offered:
            return publisher.camera_codec
        return next((c for c in preferred if c in offered), VideoCodec.VP8)

    # -- downlink congestion control (chime-signaling-protocol.md §4.4-§4.6) ---------------

    def _downlink_control(
        self, downlink: _Downlink, member: Member, sections: Sequence[SectionAnswer]
    ) -> DownlinkController | None:
        """Create or update the subscriber's controller from the latest answer.

        Forwarded video is stamped with transport-wide sequence numbers when a downlink
        m-line negotiated both the extension and ``transport-cc`` feedback; REMB is read
        whenever the subscriber sends it.
        """
        ext_id = _transport_cc_id(sections)
        adaptive = member.server_side_adaption
        bwe = downlink.bwe
        if bwe is None:
            if not sections:
                return None
            bwe = downlink.bwe = DownlinkController(ext_id, adaptive=adaptive)
        else:
            bwe.set_extension(ext_id)
            bwe.adaptive = adaptive
        return bwe

    def _keep_layer(self, downlink: _Downlink, mid: str, stream_id: int) -> int:
        """With adaption, a renegotiation keeps the layer the server chose on ``mid`` when
        the client still asks for the same source."""
        out = self.video.lines_of(downlink).get(mid)
        if out is None or not stream_id:
            return stream_id
        current = out.pending_stream_id or out.stream_id
        publisher = self.video.publishers.get(stream_id)
        if current and publisher is not None and self.video.publishers.get(current) is publisher:
            return current
        return stream_id

    @staticmethod
    def _configure_lines(
        bwe: DownlinkController,
        wanted: dict[str, int],
        configs: Sequence[VideoSubscriptionConfiguration],
    ) -> None:
        by_mid = {c.mid: c for c in configs}
        for mid in [m for m in bwe.lines if not wanted.get(m)]:
            del bwe.lines[mid]
        for mid, stream_id in wanted.items():
            if not stream_id:
                continue
            line = bwe.lines.get(mid)
            if line is None:
                line = bwe.lines[mid] = LinePreference(stream_id)
            line.stream_id = stream_id
            config = by_mid.get(mid)
            if config is not None:
                _apply_config(line, config)

    def _adapt_layers(self, now: float) -> None:
        """Twice a second: measure the published layers, then re-allocate every adaptive
        subscriber's m-lines from its downlink estimate (§4.5, §4.6)."""
        for downlink in self._downlinks.values():
            if downlink.rid_streams:
                _measure_layers(downlink, now)
            for svc in downlink.svc_rates.values():
                svc.sample(now)
        for downlink in list(self._downlinks.values()):
            bwe = downlink.bwe
            if bwe is not None and bwe.adaptive and bwe.lines:
                self._adapt_subscriber(downlink, bwe, now)

    def _adapt_subscriber(self, downlink: _Downlink, bwe: DownlinkController, now: float) -> None:
        """Choose every m-line's layer from the estimate (§4.5): a simulcast stream of the
        subscribed source, or, for a source sending one SVC stream, its ``(spatial,
        temporal)`` layer target (the options named by
        :func:`~mediaserver.sfu.svc_rates.layer_code`, cumulative rates, lowest first)."""
        outs = self.video.lines_of(downlink)
        layers: dict[str, list[tuple[int, int]]] = {}
        current: dict[str, int] = {}
        forwarded: dict[str, int] = {}
        # mid → (the SVC stream, its top layer) for the m-lines choosing SVC layers.
        svc: dict[str, tuple[int, tuple[int, int]]] = {}
        for mid, line in bwe.lines.items():
            out = outs.get(mid)
            publisher = self.video.publishers.get(line.stream_id)
            if out is None or not isinstance(publisher, _Downlink):
                continue
            on = out.pending_stream_id or out.stream_id
            svc_options = _svc_options(publisher)
            if svc_options:
                stream_id, options = svc_options
                top = layer_of_code(options[-1][0])
                layers[mid] = options
                target = out.layer_target or top
                current[mid] = layer_code(*target) if on == stream_id else 0
                forwarded[mid] = on
                svc[mid] = (stream_id, top)
                continue
            rates = publisher.layer_rates
            options = [
                (stream_id, int(rates[stream_id]))
                for stream_id in publisher.rid_streams.values()
                if rates.get(stream_id, 0.0) > 0
            ]
            if options:
                layers[mid] = options
                current[mid] = forwarded[mid] = on
        paused: list[int] = []
        resumed: list[int] = []
        chosen = bwe.choose(layers, current, now)
        if logger.isEnabledFor(logging.DEBUG):
            estimator = bwe.estimator
            logger.debug(
                "%s: estimate %s usage %s loss %.3f probe %d (%d sent) feedback %d layers %s"
                " current %s chosen %s",
                downlink.peer.key, bwe.estimate, estimator.usage, estimator.loss_fraction,
                bwe.probe_rate, self.probe_packets, bwe.feedback_count, layers, current, chosen,
            )  # fmt: skip
        if bwe.probe_rate:
            self._probing.add(downlink)
        else:
            self._probing.discard(downlink)
        publishers = self.video.publishers
        for mid, stream_id in chosen.items():
            line = bwe.lines[mid]
            if mid in svc and stream_id:
                stream_id = self._target_svc_layer(downlink, mid, stream_id, svc[mid], outs)
            if line.server_paused and publishers.get(line.paused_stream_id) is not publishers.get(
                line.stream_id
            ):
                # The client moved a paused m-line to another source: the tile it shows
                # paused is not on this m-line any more (§4.6 group ids name sources).
                line.server_paused = False
                resumed.append(line.paused_stream_id)
            if not stream_id and not line.server_paused:
                line.server_paused = True
                line.paused_stream_id = line.stream_id
                paused.append(line.stream_id)
            elif stream_id and line.server_paused:
                line.server_paused = False
                resumed.append(line.paused_stream_id)
            if stream_id != forwarded[mid]:
                self.video.select(downlink, mid, stream_id, now)
        if self.on_video_paused is not None:
            if resumed:
                self.on_video_paused(downlink.member, resumed, False)
            if paused:
                self.on_video_paused(downlink.member, paused, True)

    def _target_svc_layer(
        self,
        downlink: _Downlink,
        mid: str,
        code: int,
        source: tuple[int, tuple[int, int]],
        outs: dict[str, OutStream],
    ) -> int:
        """Aim ``mid`` at the SVC layer :func:`~mediaserver.sfu.svc_rates.layer_code`
        ``code`` names; return the SVC stream. An m-line that forwards the whole stream
        keeps doing so (no layer dropping engaged) while its choice is the top layer."""
        stream_id, top = source
        layer = layer_of_code(code)
        out = outs[mid]
        if out.layer_target != layer and (out.layer_target is not None or layer != top):
            logger.debug("%s: mid %s SVC layer %s", downlink.peer.key, mid, layer)
            self.video.set_layer_target(downlink, mid, *layer)
        return stream_id

    def _send_probes(self, now: float) -> None:
        """Probe for the subscribers that asked (see :mod:`mediaserver.sfu.controller`):
        padding-only packets between frames on their m-lines, each with a transport-wide
        number, spread on the 20 ms clock and through the subscriber's pacer, never while
        media waits in it (libwebrtc pads only an empty pacer). (Duplicates of sent packets
        would not do: the receiver's SRTP replay check drops them before its feedback sees
        them.)"""
        for downlink in list(self._probing):
            bwe = downlink.bwe
            peer = downlink.peer
            srtp = peer.srtp
            # A paused m-line may carry padding too, so that a subscriber paused for lack of
            # bandwidth can show it has room again.
            outs = [o for o in self.video.lines_of(downlink).values() if o.packets]
            if bwe is None or not bwe.stamping or not bwe.probe_rate or not outs:
                self._probing.discard(downlink)
                continue
            if srtp is None or peer.address is None:
                continue
            if downlink.pacer.backlog:
                continue  # media waits already: padding would only add to the queue
            budget = bwe.probe_budget(TICK)
            misses = 0
            while budget > 0 and misses < len(outs):
                cursor = bwe.probe_cursor
                bwe.probe_cursor = cursor + 1
                out = outs[cursor % len(outs)]
                if not out.frame_ended:
                    misses += 1
                    continue
                extension = bwe.extension(now, _PADDING_PACKET)
                packet = out.padding(extension, _PADDING_PACKET - 20, now)
                budget -= len(packet)
                bwe.probe_credit -= len(packet)
                self.probe_packets += 1
                if not self._send_paced(downlink, packet, now):
                    break  # the pacer's budget is spent: probe again next tick

    def _video_cap(self, member: Member) -> int:
        """bits/s a sender may send: ``--max-video-kbps``, or Chime's limit (§4.5)."""
        if self.config.max_video_kbps:
            return self.config.max_video_kbps * 1000
        meeting = member.app_data.get("meeting")
        if member.attendee_id.endswith("#content"):
            resolution = getattr(meeting, "content_max_resolution", "FHD")
            return cap_for_resolution(str(resolution), content=True)
        return cap_for_resolution(str(getattr(meeting, "video_max_resolution", "HD")))

    def _send_cap_rembs(self, now: float) -> None:
        """REMB to senders over their cap (meetings-digest.md §4.5: REMB first, then
        frames are dropped; draft-alvestrand-rmcat-remb-03 §2)."""
        for downlink in self._downlinks.values():
            cap = downlink.cap
            peer = downlink.peer
            if cap is None or not cap.remb_due(now) or not downlink.stream_ssrcs:
                continue
            if peer.srtp is None or peer.address is None:
                continue
            ssrcs = sorted(downlink.stream_ssrcs.values())
            remb = RtcpRemb.from_bitrate(downlink.audio.ssrc, cap.cap, ssrcs)
            self.transport.sendto(peer.srtp.protect_rtcp(remb.serialize()), peer.address)

    @property
    def cap_dropped_frames(self) -> int:
        """Uplink video frames dropped because their sender was over its cap."""
        live = sum(d.cap.dropped_frames for d in self._downlinks.values() if d.cap is not None)
        return self._cap_dropped_frames + live

    def downlink_estimate(self, member: Member) -> int | None:
        """The member's downlink estimate in kbps (BITRATES, §4.4), or None if unknown.

        Only with server-side adaption: without it the server does not probe, so its
        estimate stays near what it happens to send, and a client-side policy that read it
        as available bandwidth would never move up."""
        downlink = self._downlinks.get(member)
        if downlink is None or downlink.bwe is None or not downlink.bwe.adaptive:
            return None
        estimate = downlink.bwe.estimate
        return None if estimate is None else estimate // 1000

    def sending_streams(self, members: Sequence[Member], now: float) -> frozenset[int]:
        """The streams of ``members`` heard within :data:`LAYER_SILENCE` seconds (measured
        twice a second): when this set changes, a simulcast sender turned a layer on or
        off, and subscribers choosing their own layers should hear of it (§4.4)."""
        found: set[int] = set()
        for member in members:
            downlink = self._downlinks.get(member)
            if downlink is not None:
                found.update(_heard_streams(downlink, now))
        return frozenset(found)

    def silent_layers(self, members: Sequence[Member], now: float) -> frozenset[int]:
        """Simulcast layers of ``members`` that sent and then went silent for
        :data:`LAYER_SILENCE` seconds: their sender turned them off (Chromium does when a
        third attendee joins, DefaultSimulcastUplinkPolicy). A source whose layers all went
        silent is left alone (its camera stalled; nothing was turned off)."""
        found: set[int] = set()
        for member in members:
            downlink = self._downlinks.get(member)
            if downlink is None or len(downlink.rid_streams) < 2:
                continue
            heard = _heard_streams(downlink, now)
            if heard:
                ever = downlink.layer_heard_at
                found.update(
                    s for s in downlink.rid_streams.values() if s in ever and s not in heard
                )
        return frozenset(found)

    def stream_bitrates(self, members: Sequence[Member], now: float) -> dict[int, int]:
        """Average bits/s per published stream of ``members`` since the previous call.

        A simulcast layer not heard for :data:`LAYER_SILENCE` seconds is left out even if
        it sent earlier in the period: the sender turned it off (DefaultSimulcastUplinkPolicy
        does when attendees join), and a stream missing from BITRATES is "not sending" to
        the client at once (chime-signaling-protocol.md §4.4).
        """
        rates: dict[int, int] = {}
        for member in members:
            downlink = self._downlinks.get(member)
            if downlink is None:
                continue
            silent = (
                set(downlink.rid_streams.values()) - _heard_streams(downlink, now)
                if len(downlink.rid_streams) > 1
                else set()
            )
            counts = dict(downlink.stream_bytes)
            previous = downlink.bitrate_sample
            downlink.bitrate_sample = (now, counts)
            if previous is None or now <= previous[0]:
                continue
            elapsed = now - previous[0]
            for stream_id, total in counts.items():
                if stream_id in downlink.rid_streams.values() and stream_id not in silent:
                    sent = total - previous[1].get(stream_id, 0)
                    if sent > 0:
                        rates[stream_id] = int(sent * 8 / elapsed)
        return rates

    def publish(self, member: Member, stream_ids: list[int], now: float) -> None:
        """The member's camera (or content share) got these stream ids (first: forwarded)."""
        downlink = self._downlinks.get(member)
        if downlink is None:
            return
        if stream_ids and downlink.cap is None:
            downlink.cap = UplinkCap(self._video_cap(member))
        rids = downlink.camera_rids
        if rids and len(stream_ids) == len(rids):
            streams = dict(zip(rids, stream_ids, strict=True))
        else:
            streams = {"": stream_ids[0]} if stream_ids else {}
        if downlink.cap is not None:
            # The lowest simulcast layer is never dropped: subscribers fall back to it.
            downlink.cap.protected = stream_ids[0] if len(streams) > 1 else None
        if streams != downlink.rid_streams:
            downlink.rid_streams = streams
            downlink.ssrc_streams.clear()
            downlink.stream_ssrcs.clear()
            downlink.svc_rates.clear()
        self.video.publish(downlink, list(streams.values()), now)

    def select(
        self,
        member: Member,
        mid: str,
        stream_id: int,
        now: float,
        config: VideoSubscriptionConfiguration | None = None,
    ) -> None:
        """REMOTE_VIDEO_UPDATE (§4.5). With server-side adaption ``stream_id`` names the
        source (its group); the server keeps its layer choice within that source and
        re-allocates at once with the new priority and target bitrate."""
        downlink = self._downlinks.get(member)
        if downlink is None:
            return
        logger.debug("%s: mid %s asks for stream %d", downlink.peer.key, mid, stream_id)
        bwe = downlink.bwe
        if bwe is None or not bwe.adaptive:
            self.video.select(downlink, mid, stream_id, now)
            return
        if not stream_id:
            bwe.lines.pop(mid, None)
            self.video.select(downlink, mid, 0, now)
            return
        line = bwe.lines.get(mid)
        if line is None:
            line = bwe.lines[mid] = LinePreference(stream_id)
        line.stream_id = stream_id
        if config is not None:
            _apply_config(line, config)
        forwarded = self._keep_layer(downlink, mid, stream_id)
        out = self.video.lines_of(downlink).get(mid)
        current = 0 if out is None else out.pending_stream_id or out.stream_id
        if out is not None and forwarded != current and not line.server_paused:
            self.video.select(downlink, mid, forwarded, now)
        self._adapt_subscriber(downlink, bwe, now)

    def pause(self, member: Member, stream_ids: set[int], paused: bool, now: float) -> None:
        downlink = self._downlinks.get(member)
        if downlink is None:
            return
        bwe = downlink.bwe
        if bwe is not None and bwe.adaptive:
            # The client names the stream it subscribed to; the server may forward another
            # layer of that source on the m-line.
            outs = self.video.lines_of(downlink)
            for mid, line in bwe.lines.items():
                out = outs.get(mid)
                if line.stream_id in stream_ids and out is not None:
                    line.client_paused = paused
                    current = out.pending_stream_id or out.stream_id
                    if current:
                        stream_ids = stream_ids | {current}
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
        self._probing.discard(downlink)
        self._pacing.discard(downlink)
        pacer = downlink.pacer
        pacer.clear()
        closed = self._closed_pacers
        closed[0] += pacer.dropped
        closed[1] += pacer.expired
        closed[2] += pacer.queued
        if downlink.cap is not None:
            self._cap_dropped_frames += downlink.cap.dropped_frames
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


def _apply_config(line: LinePreference, config: VideoSubscriptionConfiguration) -> None:
    if config.priority is not None:
        line.priority = config.priority
    if config.target_bitrate_kbps:
        line.target_bitrate = config.target_bitrate_kbps * 1000


def _measure_layers(publisher: _Downlink, now: float) -> None:
    """Update the publisher's smoothed bits/s per stream from its byte counters."""
    counts = dict(publisher.stream_bytes)
    previous = publisher.layer_sample
    publisher.layer_sample = (now, counts)
    if previous is None or now <= previous[0]:
        return
    elapsed = now - previous[0]
    rates = publisher.layer_rates
    heard = publisher.layer_heard_at
    for stream_id in publisher.rid_streams.values():
        rate = (counts.get(stream_id, 0) - previous[1].get(stream_id, 0)) * 8 / elapsed
        if rate:
            heard[stream_id] = now
        old = rates.get(stream_id)
        if not rate or old is None:
            rates[stream_id] = rate  # A layer that sent nothing is not on offer.
        else:
            rates[stream_id] = _RATE_SMOOTHING * old + (1 - _RATE_SMOOTHING) * rate


def _svc_options(publisher: _Downlink) -> tuple[int, list[tuple[int, int]]] | None:
    """A publisher sending one SVC stream: that stream and its layers as choices for
    :meth:`~mediaserver.sfu.controller.DownlinkController.choose` (``(layer code,
    cumulative bits/s)``, lowest first); None for simulcast or single-layer streams."""
    if len(publisher.rid_streams) != 1 or not publisher.svc_rates:
        return None
    (stream_id,) = publisher.rid_streams.values()
    rates = publisher.svc_rates.get(stream_id)
    options = rates.options() if rates is not None else []
    if not options:
        return None
    return stream_id, [(layer_code(s, t), bitrate) for s, t, bitrate in options]


def _heard_streams(publisher: _Downlink, now: float) -> set[int]:
    """The publisher's streams whose bytes moved within :data:`LAYER_SILENCE` seconds."""
    heard = publisher.layer_heard_at
    return {
        stream_id
        for stream_id in publisher.rid_streams.values()
        if now - heard.get(stream_id, -LAYER_SILENCE) < LAYER_SILENCE
    }


_VP9: Final = VideoCodec.VP9_PROFILE_0
_AV1: Final = VideoCodec.AV1_MAIN
"""The SVC formats, as globals: an identity test per packet (an enum attribute costs ~0.1 µs)."""
_LAYERED_CODECS = frozenset({VideoCodec.VP8, VideoCodec.VP9_PROFILE_0, VideoCodec.AV1_MAIN})
"""Formats whose layers an m-line can drop (mediaserver.video_layers)."""


def _starts_keyframe(publisher: _Downlink, packet: bytes) -> bool:
    """Whether ``packet`` starts a key frame of the publisher's codec, where a switch to
    its stream can happen (see :func:`mediaserver.keyframes.starts_keyframe`)."""
    codec = publisher.camera_codec
    if codec is None:
        return False
    return starts_keyframe(codec.payload_format, packet, publisher.dd_ext_id)


def _negotiate_camera_rtx(downlink: _Downlink, camera: SectionAnswer | None) -> None:
    """Accept the publisher's RTX (RFC 4588) for the camera codecs the answer kept."""
    if camera is None or not downlink.camera_payload_types:
        downlink.camera_rtx = {}
        downlink.rtx_media_ssrcs = {}
        return
    downlink.camera_rtx = {}
    for codec in camera.codecs:
        apt = codec.apt
        if codec.is_rtx and apt is not None and apt in downlink.camera_payload_types:
            downlink.camera_rtx[codec.payload_type] = apt
    # RFC 4588 §8.3 / RFC 5576 §4.2: "FID <media ssrc> <rtx ssrc>".
    downlink.rtx_media_ssrcs = {
        group.ssrcs[1]: group.ssrcs[0]
        for group in camera.offer.ssrc_groups
        if group.semantics == "FID" and len(group.ssrcs) == 2
    }


def _transport_cc_id(sections: Sequence[SectionAnswer | None]) -> int | None:
    """The transport-wide sequence number extension id of the first of ``sections`` that
    negotiated both it and ``transport-cc`` feedback (one-byte ids only), or None."""
    for section in sections:
        if section is None:
            continue
        found = next((i for i, u in section.extmaps.items() if u == TRANSPORT_CC_URI), None)
        feedback = section.codecs[0].rtcp_fb if section.codecs else ()
        if found is not None and found <= 14 and "transport-cc" in feedback:
            return found
    return None


def _negotiate_uplink_feedback(
    downlink: _Downlink, audio: SectionAnswer | None, camera: SectionAnswer | None
) -> None:
    """Send the member transport-cc feedback when the m-lines it sends on negotiated it.

    The generator survives renegotiation (the transport's numbering goes on)."""
    ext_id = _transport_cc_id((audio, camera))
    downlink.uplink_twcc_id = ext_id
    if ext_id is None:
        downlink.uplink_feedback = None
        return
    if downlink.uplink_feedback is None:
        downlink.uplink_feedback = TransportFeedbackGenerator()
    for section in (audio, camera):
        if section is not None and section.offer.ssrcs:
            downlink.uplink_media_ssrc = section.offer.ssrcs[0].ssrc
            break


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
    fingerprints = list(sdp_fingerprints)
    if not fingerprints:
        raise MalformedMessage("the offer has no DTLS fingerprint")
    return ufrag, pwd, fingerprints

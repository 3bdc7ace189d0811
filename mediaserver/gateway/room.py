"""Meeting-level signaling state: roster, mute, data messages, departures (sans I/O).

One :class:`MeetingRoom` per active meeting holds every signaling connection of that
meeting as a :class:`Member` and talks to clients only through each member's
:class:`~signaling.session.SignalingSession` send commands. The asyncio gateway flushes the
sessions after each call. Time is passed in: ``now`` is monotonic seconds, ``wall`` is the
wall clock (epoch seconds) used for ``ingest_time_ns``.

Rules of this file:

* Every (re)connection gets a fresh, higher ``audio_stream_id`` when its first SUBSCRIBE is
  accepted; the roster maps each attendee to its newest id (chime-signaling-protocol.md
  §5.1, §6.3). The full roster goes to a member right after its JOIN; deltas afterwards.
* A departure is announced once, as ``AUDIO_STREAM_ID_INFO{audio_stream_id}`` with
  ``dropped`` false for a LEAVE and true for a drop (§6.4). A reconnect before the drop
  deadline replaces the old connection without a presence flap.
* A member with neither signaling nor media for :data:`DROP_AFTER` seconds is dropped.
* Data messages (§5.4): checked by the session; here stamped with the sender's ids and
  ``ingest_time_ns``, fanned out to the others and never echoed, cached when they have a
  lifetime (at most :data:`CACHE_SIZE` messages, :data:`CACHE_MAX_LIFETIME` seconds), and
  throttled by a per-meeting token bucket; throttled messages return to their sender with
  ``ingest_time_ns = 0``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import count

from mediaserver.ratelimit import TokenBucket
from mediaserver.registry.models import CONTENT_SUFFIX
from mediaserver.transport.sdp import VideoCodec, codec_intersection
from signaling.messages import (
    AudioAttendeeState,
    AudioStatus,
    AudioStreamIdInfo,
    Bitrate,
    CloseCode,
    DataMessage,
    FrameType,
    MediaType,
    ServerSideNetworkAdaption,
    StreamAllocation,
    StreamDescriptor,
    VideoCodecCapability,
)
from signaling.session import SignalingSession, prepare_audio_metadata

__all__ = [
    "CACHE_MAX_LIFETIME",
    "CACHE_SIZE",
    "DATA_MESSAGE_BURST",
    "DATA_MESSAGE_RATE",
    "DROP_AFTER",
    "MeetingRoom",
    "Member",
    "VideoSource",
]

logger = logging.getLogger(__name__)

DROP_AFTER = 15.0
"""Seconds without signaling and without media after which an attendee is dropped."""
CACHE_SIZE = 1024
"""Data messages kept for late joiners (meetings-digest.md §3)."""
CACHE_MAX_LIFETIME = 300.0
"""Longest a data message is kept, in seconds (5 minutes)."""
DATA_MESSAGE_RATE = 100.0
"""Data messages per second per meeting (§5.4)."""
DATA_MESSAGE_BURST = 200


@dataclass(eq=False, slots=True)
class Member:
    """One signaling connection of an attendee (or of its ``#content`` share session)."""

    session: SignalingSession
    attendee_id: str
    """The id as the client knows it, ``<attendee>#content`` for a content share."""
    external_user_id: str
    connected_at: float
    last_activity: float
    """Monotonic time of the last signaling frame or media packet."""
    audio_session_id: int | None = None
    audio_stream_id: int | None = None
    muted: bool = False
    joined: bool = False
    left: bool = False
    """True after a LEAVE (a clean departure)."""
    closed: bool = False
    """True once the WebSocket is gone."""
    replaced: bool = False
    """True when a newer connection of the same attendee took over."""
    departed: bool = False
    """True once the departure was announced (or made moot by a replacement)."""
    receive_codecs: frozenset[VideoCodec] = frozenset()
    """The video formats the member's last offer can decode (empty before one)."""
    server_side_adaption: bool = False
    """JOIN_ACK turned server-side video quality adaption on (§3.2): the server picks this
    member's layers from its downlink estimate and may PAUSE/RESUME its video groups."""
    client_side_adaption: bool = False
    """The client adapts its own downlink: its JOIN listed server-side adaption modes (a
    VideoPriorityBasedPolicy) but JOIN_ACK granted none. It reads the browser's
    ``availableIncomingBitrate``, which only receive-side estimation (REMB) provides, so
    its downlink m-lines negotiate REMB without transport-cc (amazon-chime-sdk-js
    MonitorTask: TWCC goes with server-side adaption)."""
    app_data: dict[str, object] = field(default_factory=dict)

    @property
    def base_attendee_id(self) -> str:
        if self.attendee_id.endswith(CONTENT_SUFFIX):
            return self.attendee_id[: -len(CONTENT_SUFFIX)]
        return self.attendee_id

    def touch(self, now: float) -> None:
        self.last_activity = now


@dataclass(slots=True)
class VideoSource:
    """One published video stream (a camera or content share, one simulcast layer)."""

    stream_id: int
    group_id: int
    member: Member
    descriptor: StreamDescriptor


@dataclass(frozen=True, slots=True)
class _Cached:
    expires_at: float
    message: DataMessage


DepartureListener = Callable[["Member", bool], None]
"""Called with (member, dropped) when a member's departure is announced."""


class MeetingRoom:
    """Signaling state of one meeting."""

    def __init__(
        self,
        meeting_id: str,
        drop_after: float = DROP_AFTER,
        max_video_groups: int = 25,
        video_stream_ids: Iterator[int] | None = None,
    ) -> None:
        self.meeting_id = meeting_id
        self._video_stream_ids = video_stream_ids if video_stream_ids is not None else count(1)
        """Where video stream ids come from: the gateway shares one counter among its rooms,
        because the media engine routes video by stream id across meetings."""
        self.drop_after = drop_after
        self.max_video_groups = max_video_groups
        """Published video sources per meeting (Chime: 25 by default, up to 250)."""
        self.video_sources: dict[int, VideoSource] = {}
        self.level_reports = 0
        self.bitrates_sent_at = 0.0
        self.bitrates_streams: frozenset[int] = frozenset()
        """The streams sending when BITRATES was last sent (a change sends it early)."""
        self.silent_layers: frozenset[int] = frozenset()
        """Simulcast layers their sender turned off: left out of INDEX until they send."""
        """AUDIO_METADATA rounds sent (the own-strength frames go every fifth)."""
        self._next_group_id = 1
        """Seconds of silence before a drop (:data:`DROP_AFTER` unless configured)."""
        self.members: list[Member] = []
        self._next_audio_stream_id = 1
        self._cache: deque[_Cached] = deque()
        self._bucket = TokenBucket(DATA_MESSAGE_RATE, DATA_MESSAGE_BURST)
        self.on_departure: DepartureListener | None = None
        self.on_join: Callable[[Member], None] | None = None
        self.data_messages_throttled = 0
        self.data_messages_delivered = 0

    # -- queries ------------------------------------------------------------------------

    def live_members(self) -> Iterable[Member]:
        """Members whose socket is open and that have joined (and not left)."""
        return (m for m in self.members if m.joined and not m.closed and not m.left)

    def present(self) -> list[Member]:
        """The newest connection of every present attendee that has an audio stream id."""
        newest: dict[str, Member] = {}
        for member in self.members:
            if member.departed or member.audio_stream_id is None:
                continue
            current = newest.get(member.attendee_id)
            if current is None or member.audio_stream_id > (current.audio_stream_id or 0):
                newest[member.attendee_id] = member
        return list(newest.values())

    def _roster_entry(self, member: Member) -> AudioStreamIdInfo:
        assert member.audio_stream_id is not None
        return AudioStreamIdInfo(
            audio_stream_id=member.audio_stream_id,
            attendee_id=member.attendee_id,
            external_user_id=member.external_user_id,
            muted=member.muted,
        )

    def _broadcast_roster(self, entries: list[AudioStreamIdInfo]) -> None:
        for member in self.live_members():
            member.session.send_audio_stream_id_info(entries)

    # -- connection lifecycle -------------------------------------------------------------

    def add(self, member: Member) -> None:
        """A WebSocket of this meeting was accepted (before its JOIN)."""
        self.members.append(member)

    def join(
        self,
        member: Member,
        audio_session_id: int | None,
        now: float,
        wall: float,
        *,
        server_side_adaption: bool = False,
    ) -> None:
        """JOIN: replace an older connection of the same attendee, then send the initial state.

        The new connection gets JOIN_ACK, the full roster, the cached data messages and an
        INDEX (§8 steps 5; the INDEX must come after JOIN_ACK and completes the join).
        With ``server_side_adaption`` JOIN_ACK says BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
        explicitly (the field's absence means client-side adaption, §3.2 quirk).
        """
        member.audio_session_id = audio_session_id
        for other in self.members:
            if other is member or other.attendee_id != member.attendee_id or other.replaced:
                continue
            if other.departed and other.closed:
                continue
            other.replaced = True
            other.departed = True  # the new connection's stream id supersedes it (§6.3)
            if not other.closed:
                if (
                    audio_session_id is not None
                    and other.audio_session_id is not None
                    and other.audio_session_id != audio_session_id
                ):
                    # The same attendee joined from another device (§6.2, status 301).
                    other.session.end_session(
                        AudioStatus.JOINED_FROM_ANOTHER_DEVICE,
                        CloseCode.ATTENDEE_UNAVAILABLE,
                        now,
                    )
                else:
                    other.session.close(CloseCode.NORMAL)
        member.joined = True
        member.touch(now)
        session = member.session
        member.server_side_adaption = server_side_adaption
        if server_side_adaption:
            session.send_join_ack(
                default_server_side_network_adaption=(
                    ServerSideNetworkAdaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
                )
            )
        else:
            session.send_join_ack()
        roster = [self._roster_entry(m) for m in self.present()]
        if roster:
            session.send_audio_stream_id_info(roster)
        cached = self._unexpired(now)
        if cached:
            session.send_data_messages(cached)
        self._send_index(member)
        if self.on_join is not None:
            self.on_join(member)

    def subscribed(self, member: Member, audio_muted: bool | None, now: float) -> None:
        """A SUBSCRIBE of ``member`` was answered.

        On the first one of a connection, allocate its audio stream id and announce it to
        everyone, the member included (§3.4 recommendation).
        """
        member.touch(now)
        if audio_muted is not None:
            member.muted = audio_muted
        if member.audio_stream_id is not None:
            return
        member.audio_stream_id = self._next_audio_stream_id
        self._next_audio_stream_id += 1
        self._broadcast_roster([self._roster_entry(member)])
        # The participant count changed: everyone gets a complete INDEX (§3.2).
        self._send_index_to_all()

    def mute(self, member: Member, muted: bool, now: float) -> None:
        """AUDIO_CONTROL: record and broadcast the mute state (§5.3)."""
        member.touch(now)
        member.muted = muted
        if member.audio_stream_id is None:
            return
        entry = AudioStreamIdInfo(audio_stream_id=member.audio_stream_id, muted=muted)
        self._broadcast_roster([entry])

    def leave(self, member: Member, now: float) -> None:
        """LEAVE: a clean departure (the session already queued LEAVE_ACK)."""
        member.left = True
        self._depart(member, dropped=False)

    def closed(self, member: Member, now: float) -> None:
        """The WebSocket of ``member`` is gone.

        After a LEAVE this only forgets the member; otherwise the attendee is dropped once
        :data:`DROP_AFTER` seconds have passed since its last activity, unless it reconnects.
        """
        member.closed = True
        if member.departed or member.left:
            self._forget(member)

    def _depart(self, member: Member, dropped: bool) -> None:
        if member.departed:
            return
        member.departed = True
        if member.audio_stream_id is not None:
            entry = AudioStreamIdInfo(
                audio_stream_id=member.audio_stream_id, dropped=True if dropped else None
            )
            self._broadcast_roster([entry])
        if member.joined and self.on_departure is not None:
            self.on_departure(member, dropped)
        if member.closed:
            self._forget(member)
        self._remove_sources(member)
        self._send_index_to_all()

    def _forget(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)

    def _send_index_to_all(self) -> None:
        participants = max(1, len(self.present()))
        at_capacity = self.at_capacity
        codecs = self.codec_intersection()
        for other in self.live_members():
            self._send_index(other, participants, at_capacity, codecs)

    def codec_intersection(self) -> tuple[VideoCodec, ...]:
        """The video formats every member that offered can decode, preferred first (§4.2);
        empty while no member has offered."""
        offered = [m.receive_codecs for m in self.live_members() if m.receive_codecs]
        return codec_intersection(offered) if offered else ()

    def set_receive_codecs(self, member: Member, codecs: frozenset[VideoCodec]) -> None:
        """A SUBSCRIBE offer told what ``member`` decodes; a changed meeting intersection
        goes to everyone in a complete INDEX (``supported_receive_codec_intersection``)."""
        if codecs == member.receive_codecs:
            return
        before = self.codec_intersection()
        member.receive_codecs = codecs
        if member.joined and self.codec_intersection() != before:
            self._send_index_to_all()

    def set_silent_layers(self, silent: frozenset[int]) -> None:
        """The simulcast layers whose sender turned them off (the media plane heard them,
        then nothing). INDEX leaves them out, and a change goes out in a complete INDEX
        (§3.2: "a simulcast layer is enabled or disabled"): a client choosing its own
        layers moves off one that stopped, as it reads only INDEX for what exists. Members
        with server-side adaption keep every layer in their INDEX: the server picks their
        layers, and a layer vanishing from INDEX makes the SDK drop that m-line's
        subscription."""
        if silent == self.silent_layers:
            return
        self.silent_layers = silent
        participants = max(1, len(self.present()))
        at_capacity = self.at_capacity
        codecs = self.codec_intersection()
        for other in self.live_members():
            if not other.server_side_adaption:
                self._send_index(other, participants, at_capacity, codecs)

    def _send_index(
        self,
        member: Member,
        participants: int | None = None,
        at_capacity: bool | None = None,
        codecs: tuple[VideoCodec, ...] | None = None,
    ) -> None:
        """A complete INDEX for ``member`` (§3.2): every video source but its own."""
        silent = self.silent_layers if not member.server_side_adaption else frozenset()
        sources = [
            src.descriptor
            for src in self.video_sources.values()
            if src.member.attendee_id != member.attendee_id and src.stream_id not in silent
        ]
        if participants is None:
            participants = max(1, len(self.present()))
        if at_capacity is None:
            at_capacity = self.at_capacity
        if codecs is None:
            codecs = self.codec_intersection()
        member.session.send_index(
            sources,
            num_participants=participants,
            at_capacity=True if at_capacity else None,
            supported_receive_codec_intersection=[VideoCodecCapability(c.value) for c in codecs],
        )

    # -- video sources (§4.1, §4.2) --------------------------------------------------------

    @property
    def at_capacity(self) -> bool:
        groups = {src.group_id for src in self.video_sources.values()}
        return len(groups) >= self.max_video_groups

    def publish(
        self, member: Member, descriptors: Sequence[StreamDescriptor]
    ) -> list[StreamAllocation] | None:
        """A SUBSCRIBE's video send streams: allocate ids, or keep them when unchanged.

        Returns:
            One allocation per descriptor, in order; an empty list when the member stops
            sending video; None when the meeting's video source limit is reached (the
            client is then told to switch to view-only, §6.2 status 206).
        """
        current = [src for src in self.video_sources.values() if src.member is member]
        if not descriptors:
            if current:
                self._remove_sources(member)
                self._send_index_to_all()
            return []
        if len(current) == len(descriptors):
            changed = False
            allocations = []
            for src, given in zip(current, descriptors, strict=True):
                descriptor = self._source_descriptor(member, given, src.stream_id, src.group_id)
                changed = changed or descriptor != src.descriptor
                src.descriptor = descriptor
                allocations.append(StreamAllocation(given.track_label, src.stream_id, src.group_id))
            if changed:
                self._send_index_to_all()
            return allocations
        if not current and self.at_capacity:
            return None
        self._remove_sources(member)
        group_id = self._next_group_id
        self._next_group_id += 1
        allocations = []
        for given in descriptors:
            stream_id = next(self._video_stream_ids)
            descriptor = self._source_descriptor(member, given, stream_id, group_id)
            self.video_sources[stream_id] = VideoSource(stream_id, group_id, member, descriptor)
            allocations.append(StreamAllocation(given.track_label, stream_id, group_id))
        self._send_index_to_all()
        return allocations

    @staticmethod
    def _source_descriptor(
        member: Member, given: StreamDescriptor, stream_id: int, group_id: int
    ) -> StreamDescriptor:
        return StreamDescriptor(
            stream_id=stream_id,
            group_id=group_id,
            attendee_id=member.attendee_id,
            external_user_id=member.external_user_id,
            media_type=MediaType.VIDEO,
            track_label=given.track_label,
            max_bitrate_kbps=given.max_bitrate_kbps,
            avg_bitrate_bps=given.avg_bitrate_bps,
            framerate=given.framerate,
            width=given.width,
            height=given.height,
        )

    def sources_of(self, member: Member) -> list[int]:
        """The stream ids ``member`` publishes, in allocation order."""
        return [s.stream_id for s in self.video_sources.values() if s.member is member]

    def _remove_sources(self, member: Member) -> None:
        for stream_id in [s for s, src in self.video_sources.items() if src.member is member]:
            del self.video_sources[stream_id]

    # -- audio metadata -------------------------------------------------------------------

    def send_audio_metadata(
        self,
        levels: Iterable[tuple[str, int, int]],
        own_strength: Callable[[str], int | None],
        wall: float,
        *,
        with_own: bool = True,
    ) -> None:
        """AUDIO_METADATA to every member (chime-signaling-protocol.md §5.2).

        The frame of the audible sources is the same for everyone, so it is encoded once
        and queued on every session. With ``with_own``, a member that is not audible also
        gets a second, small frame with its own uplink signal strength (it drives the
        client's connection health); that frame carries no volume, so it leaves the
        volumes of the first unchanged.

        Args:
            levels: (attendee id, volume, signal strength) of every audible source; the
                client sets everyone not listed to volume 0.
            own_strength: the uplink signal strength of an attendee, or None.
            wall: wall-clock time for ``timestamp_ms``.
            with_own: also send each member its own signal strength.
        """
        by_attendee = {m.attendee_id: m for m in self.present()}
        states: list[AudioAttendeeState] = []
        listed: set[str] = set()
        for attendee_id, volume, strength in levels:
            member = by_attendee.get(attendee_id)
            if member is None or member.audio_stream_id is None:
                continue
            listed.add(attendee_id)
            states.append(
                AudioAttendeeState(
                    audio_stream_id=member.audio_stream_id,
                    volume=volume,
                    signal_strength=strength,
                )
            )
        wall_ms = round(wall * 1000)
        shared = prepare_audio_metadata(states, wall_ms) if states else None
        for member in self.live_members():
            if member.audio_stream_id is None:
                continue
            if shared is not None:
                member.session.send_prepared(FrameType.AUDIO_METADATA, shared)
            if with_own and member.attendee_id not in listed:
                own_level = own_strength(member.attendee_id)
                if own_level is not None:
                    own = AudioAttendeeState(
                        audio_stream_id=member.audio_stream_id, signal_strength=own_level
                    )
                    member.session.send_audio_metadata([own])

    def send_bitrates(
        self,
        rates: dict[int, int],
        estimate: Callable[[Member], int | None] | None = None,
    ) -> None:
        """BITRATES to every member: the average bitrate of each sending stream (§4.4),
        and the member's downlink estimate in kbps when ``estimate`` knows it."""
        bitrates = [Bitrate(stream_id, bps) for stream_id, bps in sorted(rates.items())]
        for member in self.live_members():
            kbps = estimate(member) if estimate is not None else None
            member.session.send_bitrates(
                bitrates, server_available_outgoing_bitrate=kbps if kbps else None
            )

    def video_paused(self, member: Member, stream_ids: Sequence[int], paused: bool) -> None:
        """S→C PAUSE/RESUME (§4.6): server-side adaption stopped or restarted the sources
        of ``stream_ids`` for ``member``; the frame names their groups."""
        groups = sorted(
            {s.group_id for stream_id in stream_ids if (s := self.video_sources.get(stream_id))}
        )
        if not groups or member.closed:
            return
        if paused:
            member.session.send_pause(groups)
        else:
            member.session.send_resume(groups)

    # -- administrative ends --------------------------------------------------------------

    def remove_attendee(self, attendee_id: str, now: float) -> None:
        """DeleteAttendee: AUDIO_STATUS 411, then close 4403, for the attendee and its share."""
        for member in list(self.members):
            if member.base_attendee_id != attendee_id:
                continue
            if not member.closed:
                member.session.end_session(
                    AudioStatus.ATTENDEE_REMOVED, CloseCode.ATTENDEE_UNAVAILABLE, now
                )
            self._depart(member, dropped=False)

    def end(self, now: float) -> None:
        """The meeting ended: AUDIO_STATUS 410, then close 4410, for everyone."""
        for member in list(self.members):
            if not member.closed:
                member.session.end_session(AudioStatus.MEETING_ENDED, CloseCode.MEETING_ENDED, now)
            member.departed = True

    # -- data messages ----------------------------------------------------------------------

    def data_messages(
        self, member: Member, messages: Iterable[DataMessage], now: float, wall: float
    ) -> None:
        """Stamp, fan out, cache or throttle the messages ``member`` sent (§5.4)."""
        member.touch(now)
        delivered: list[DataMessage] = []
        throttled: list[DataMessage] = []
        ingest_ns = int(wall * 1e9) or 1
        for message in messages:
            if not self._bucket.try_acquire(now):
                throttled.append(replace(message, ingest_time_ns=0))
                continue
            stamped = replace(
                message,
                sender_attendee_id=member.attendee_id,
                sender_external_user_id=member.external_user_id,
                ingest_time_ns=ingest_ns,
            )
            delivered.append(stamped)
            lifetime = (message.lifetime_ms or 0) / 1000.0
            if lifetime > 0:
                self._cache.append(_Cached(now + min(lifetime, CACHE_MAX_LIFETIME), stamped))
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popleft()
        if throttled:
            self.data_messages_throttled += len(throttled)
            member.session.send_data_messages(throttled)
        if delivered:
            self.data_messages_delivered += len(delivered)
            for other in self.live_members():
                if other is not member:
                    other.session.send_data_messages(delivered)

    def _unexpired(self, now: float) -> list[DataMessage]:
        while self._cache and self._cache[0].expires_at <= now:
            self._cache.popleft()
        return [c.message for c in self._cache if c.expires_at > now]

    # -- timers -------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Drop members silent for :data:`DROP_AFTER` seconds and expire cached messages."""
        for member in list(self.members):
            if member.departed or member.left:
                continue
            if now - member.last_activity >= self.drop_after:
                if not member.closed:
                    member.session.close(CloseCode.IDLE_TIMEOUT)
                logger.info(
                    "meeting %s attendee %s dropped after %.0f s of silence",
                    self.meeting_id,
                    member.attendee_id,
                    now - member.last_activity,
                    extra={"meeting_id": self.meeting_id, "attendee_id": member.attendee_id},
                )
                self._depart(member, dropped=True)
        self._unexpired(now)

    @property
    def empty(self) -> bool:
        return not self.members

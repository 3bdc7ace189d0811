"""The signaling gateway: WebSocket connections at ``/control/{MeetingId}``.

A thin asyncio shell (style guide §3) around :class:`~signaling.session.SignalingSession`
(per connection) and :class:`~mediaserver.gateway.room.MeetingRoom` (per meeting). It is an
ASGI WebSocket handler served by uvicorn, whose WebSocket implementation is the
``websockets`` library's sans-I/O protocol.

Authentication follows chime-signaling-protocol.md §1.1: the join token is the second
``Sec-WebSocket-Protocol`` value, the answer selects ``_aws_wt_session``, and a connection
is rejected by accepting the upgrade and then closing it: 4410 for an unknown or ended
meeting, 4403 for a bad or deleted token (a failed handshake would make the client retry
for two minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from mediaserver.clock import Clock
from mediaserver.errors import (
    InvalidArgument,
    InvalidToken,
    MalformedMessage,
    MediaServerError,
    MeetingEnded,
    NotFound,
    UnsupportedError,
)
from mediaserver.gateway.resolution import (
    CONTENT_LIMITS,
    RESOLUTION_REFUSAL,
    VIDEO_LIMITS,
    exceeds,
    fit,
)
from mediaserver.gateway.room import DROP_AFTER, MeetingRoom, Member
from mediaserver.registry import (
    CONTENT_SUFFIX,
    AttendeeCapabilitiesUpdated,
    AttendeeDeleted,
    MeetingEnded as MeetingEndedEvent,
    MeetingRegistry,
    RegistryEvent,
)
from mediaserver.transport.sdp import VideoCodec
from mediaserver.types import AttendeeId
from signaling.events import (
    AudioMuteChanged,
    ConnectionClosed,
    DataMessagesReceived,
    Event,
    FrameRejected,
    JoinReceived,
    LeaveReceived,
    PauseReceived,
    RemoteVideoUpdateReceived,
    ResumeReceived,
    SubscribeReceived,
)
from signaling.messages import (
    CloseCode,
    MediaType,
    ServerSideNetworkAdaption,
    StreamDescriptor,
    StreamServiceType,
    TrackMapping,
    VideoSubscriptionConfiguration,
)
from signaling.session import SignalingSession

__all__ = ["SUBPROTOCOL", "GatewayObserver", "MediaBackend", "SignalingGateway"]

logger = logging.getLogger(__name__)

SUBPROTOCOL = "_aws_wt_session"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


BITRATES_INTERVAL = 4.0
"""The client expects BITRATES about every 4 s (chime-signaling-protocol.md §4.4)."""
MAX_CONTENT_SHARES = 2
"""Concurrent content shares per meeting (meetings-digest.md §3)."""


def _video_send_streams(event: SubscribeReceived) -> list[StreamDescriptor]:
    """The video descriptors of a SUBSCRIBE that sends video (duplex TX or DUPLEX, §3.3)."""
    if event.duplex not in (StreamServiceType.TX, StreamServiceType.DUPLEX):
        return []
    return [d for d in event.send_streams if d.media_type == MediaType.VIDEO]


def _content_scaled(member: Member, descriptors: list[StreamDescriptor]) -> list[StreamDescriptor]:
    """A content share above ``Content.MaxResolution`` is scaled down, not refused
    (mediaserver.gateway.resolution): its descriptors carry the scaled dimensions."""
    if not member.attendee_id.endswith(CONTENT_SUFFIX):
        return descriptors
    meeting = member.app_data.get("meeting")
    limit = CONTENT_LIMITS.get(getattr(meeting, "content_max_resolution", "FHD"))
    if limit is None:
        return descriptors
    scaled = []
    for d in descriptors:
        width, height = fit(d.width or 0, d.height or 0, limit)
        changed = (width, height) != (d.width or 0, d.height or 0)
        scaled.append(dataclasses.replace(d, width=width, height=height) if changed else d)
    return scaled


class SubscribeAnswer(Protocol):
    @property
    def answer(self) -> str: ...

    @property
    def tracks(self) -> Sequence[TrackMapping]: ...

    @property
    def receive_codecs(self) -> frozenset[VideoCodec]: ...


class MediaBackend(Protocol):
    """What the gateway needs from the media plane."""

    def publish(self, member: Member, stream_ids: list[int], now: float) -> None:
        """The member's video sources now have these stream ids (none: it stopped)."""
        ...

    def select(
        self,
        member: Member,
        mid: str,
        stream_id: int,
        now: float,
        config: VideoSubscriptionConfiguration | None = None,
    ) -> None:
        """REMOTE_VIDEO_UPDATE: forward ``stream_id`` on the member's m-line ``mid``
        (with server-side adaption: a layer of its source, by ``config``'s priority)."""
        ...

    def pause(self, member: Member, stream_ids: set[int], paused: bool, now: float) -> None:
        """PAUSE/RESUME of remote streams by the member."""
        ...

    def subscribe(self, member: Member, event: SubscribeReceived, now: float) -> SubscribeAnswer:
        """Answer a SUBSCRIBE's offer (creating or updating the member's peer).

        Raises:
            MalformedMessage: the SDP offer cannot be used.
        """
        ...

    def last_activity(self, member: Member) -> float | None:
        """Monotonic time of the last media packet received from ``member``'s peer."""
        ...

    def sending_streams(self, members: Sequence[Member], now: float) -> frozenset[int]:
        """The video streams of these members that are sending now."""
        ...

    def silent_layers(self, members: Sequence[Member], now: float) -> frozenset[int]:
        """Simulcast layers of these members that sent, then stopped (turned off)."""
        ...

    def stream_bitrates(self, members: Sequence[Member], now: float) -> dict[int, int]:
        """Average bits/s of each video stream these members published since the last call."""
        ...

    def downlink_estimate(self, member: Member) -> int | None:
        """``member``'s downlink bandwidth estimate in kbps, or None when unknown (§4.4)."""
        ...

    def set_muted(self, member: Member, muted: bool) -> None: ...

    def update_capabilities(self, meeting_id: str, attendee_id: str, audio: str) -> None:
        """The attendee's audio capability changed (UpdateAttendeeCapabilities)."""
        ...

    def close(self, member: Member) -> None:
        """Tear down the member's peer, if any."""
        ...


class GatewayObserver(Protocol):
    """Told about attendees' signaling lifecycle (meeting events, metrics).

    Implementations must not raise: they run inside signaling handling.
    """

    def member_joined(self, member: Member) -> None:
        """``member`` completed its JOIN (``MeetingRoom.on_join``)."""
        ...

    def member_departed(self, member: Member, dropped: bool) -> None:
        """``member`` left or was dropped (``MeetingRoom.on_departure``)."""
        ...

    def member_subscribed(self, member: Member, event: SubscribeReceived) -> None:
        """A SUBSCRIBE of ``member`` was answered successfully."""
        ...


class _Level(Protocol):
    @property
    def source_id(self) -> str: ...

    @property
    def volume(self) -> int: ...

    @property
    def signal_strength(self) -> int: ...


class AudioLevels(Protocol):
    """What :meth:`SignalingGateway.audio_levels` reads from a meeting's mixer."""

    def audio_levels(self, now: float) -> Sequence[_Level]: ...

    def signal_strength(self, source_id: str, now: float) -> int: ...


class _Connection:
    """The asyncio side of one signaling WebSocket."""

    def __init__(self, gateway: SignalingGateway, send: Send, log: logging.LoggerAdapter[Any]):
        self.gateway = gateway
        self._send = send
        self.log = log
        self.outbox: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.close_code: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.member: Member | None = None
        self.room: MeetingRoom | None = None

    def flush(self) -> None:
        """Move the session's frames to the outbox and note a requested close."""
        member = self.member
        if member is None:
            return
        frames = member.session.frames_to_send()
        if frames:
            self.outbox.extend(frames)
            self.wakeup.set()
        code = member.session.close_code()
        if code is not None and self.close_code is None:
            self.close_code = code
            self.wakeup.set()
        self.arm_timer()

    def arm_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.member is None:
            return
        deadline = self.member.session.get_timer()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self.gateway.clock.monotonic())
        self.timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.member is None:
            return
        self.member.session.handle_timer(self.gateway.clock.monotonic())
        self.gateway.process(self)

    async def writer(self) -> None:
        """Send queued frames in order; close the socket when the session asks to."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.outbox:
                await self._send({"type": "websocket.send", "bytes": self.outbox.popleft()})
            if self.close_code is not None:
                await self._send({"type": "websocket.close", "code": self.close_code})
                return


class SignalingGateway:
    """Accepts signaling connections and runs the meetings' rooms."""

    def __init__(
        self,
        registry: MeetingRegistry,
        clock: Clock,
        media: MediaBackend | None = None,
        *,
        observer: GatewayObserver | None = None,
        drop_after: float = DROP_AFTER,
        server_side_adaption: bool = False,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.media = media
        self.observer = observer
        self.drop_after = drop_after
        self.server_side_adaption = server_side_adaption
        self._video_stream_ids = itertools.count(1)
        """Video stream ids are unique server-wide, not only per meeting: the media engine's
        video routes are keyed by them (chime-signaling-protocol.md §4.2 allows any uint32)."""
        """Grant BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION to JOINs that ask for it (§3.2)."""
        self.rooms: dict[str, MeetingRoom] = {}
        self._connections: dict[Member, _Connection] = {}
        self.stats = {"connections": 0, "rejected": 0, "malformed_frames": 0}
        registry.add_listener(self._on_registry_event)
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="gateway-ticker")

    async def stop(self) -> None:
        """Close every signaling connection with 4500 so clients reconnect (§6.1), then stop."""
        for connection in list(self._connections.values()):
            if connection.member is not None:
                connection.member.session.close(CloseCode.INTERNAL_ERROR)
                connection.flush()
        for _ in range(50):
            if not self._connections:
                break
            await asyncio.sleep(0.01)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.tick(self.clock.monotonic())

    def tick(self, now: float) -> None:
        """Once a second: fold media activity into liveness and run the rooms' timers."""
        for room in list(self.rooms.values()):
            if self.media is not None:
                for member in room.members:
                    seen = self.media.last_activity(member)
                    if seen is not None and seen > member.last_activity:
                        member.last_activity = seen
            room.handle_timer(now)
            if self.media is not None:
                room.set_silent_layers(self.media.silent_layers(room.members, now))
                self._maybe_send_bitrates(room, self.media, now)
            self._flush_room(room)
            if room.empty:
                self.rooms.pop(room.meeting_id, None)

    @staticmethod
    def _maybe_send_bitrates(room: MeetingRoom, media: MediaBackend, now: float) -> None:
        """BITRATES every :data:`BITRATES_INTERVAL` seconds, and at once when a stream
        started or stopped sending (a simulcast sender turning a layer on or off), so that
        clients choosing their own layers move off a stopped one within a second (§4.4)."""
        sending = media.sending_streams(room.members, now)
        if now - room.bitrates_sent_at < BITRATES_INTERVAL and sending == room.bitrates_streams:
            return
        room.bitrates_sent_at = now
        room.bitrates_streams = sending
        rates = media.stream_bitrates(room.members, now)
        logger.debug(
            "meeting %s: BITRATES %s (sending %s)", room.meeting_id, rates, sorted(sending)
        )
        if rates:
            room.send_bitrates(rates, media.downlink_estimate)

    # -- audio levels -------------------------------------------------------------------

    def audio_levels(self, meeting_id: str, mixer: AudioLevels, now: float) -> None:
        """The media engine's levels are due: AUDIO_METADATA to the meeting's members."""
        room = self.rooms.get(meeting_id)
        if room is None:
            return
        levels = [(lv.source_id, lv.volume, lv.signal_strength) for lv in mixer.audio_levels(now)]

        def own_strength(attendee_id: str) -> int | None:
            try:
                return mixer.signal_strength(attendee_id, now)
            except NotFound:
                return None

        # Own signal strengths once a second; the volumes five times a second.
        room.level_reports += 1
        room.send_audio_metadata(
            levels, own_strength, self.clock.wall(), with_own=room.level_reports % 5 == 1
        )
        self._flush_room(room)

    def video_paused(self, member: Member, stream_ids: list[int], paused: bool) -> None:
        """Server-side adaption paused or resumed sources for ``member``: S→C PAUSE/RESUME."""
        meeting = member.app_data.get("meeting")
        room = self.rooms.get(str(getattr(meeting, "meeting_id", "")))
        if room is None:
            return
        room.video_paused(member, stream_ids, paused)
        connection = self._connections.get(member)
        if connection is not None:
            connection.flush()

    # -- registry events --------------------------------------------------------------

    def _on_registry_event(self, event: RegistryEvent) -> None:
        room = self.rooms.get(event.meeting.meeting_id)
        if room is None:
            return
        now = self.clock.monotonic()
        if isinstance(event, AttendeeDeleted):
            room.remove_attendee(event.attendee.attendee_id, now)
        elif isinstance(event, AttendeeCapabilitiesUpdated):
            if self.media is not None:
                self.media.update_capabilities(
                    room.meeting_id, event.attendee.attendee_id, event.attendee.capabilities.audio
                )
        elif isinstance(event, MeetingEndedEvent):
            room.end(now)
        self._flush_room(room)

    def _flush_room(self, room: MeetingRoom) -> None:
        for member in room.members:
            connection = self._connections.get(member)
            if connection is not None:
                connection.flush()

    # -- the ASGI WebSocket handler -------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path: str = scope["path"]
        parts = [p for p in path.split("/") if p]
        if len(parts) != 2 or parts[0] != "control":
            self.stats["rejected"] += 1
            await send({"type": "websocket.close", "code": 1008})
            return
        meeting_id = parts[1]
        offered: list[str] = list(scope.get("subprotocols") or [])
        selected = SUBPROTOCOL if SUBPROTOCOL in offered else None
        token = offered[1] if len(offered) >= 2 else ""
        try:
            if selected is None or not token:
                raise InvalidToken("no join token in Sec-WebSocket-Protocol")
            grant = self.registry.authorize_join(meeting_id, token)
        except (MeetingEnded, InvalidToken) as exc:
            self.stats["rejected"] += 1
            logger.info(
                "signaling rejected for meeting %s: %s",
                meeting_id,
                exc,
                extra={"meeting_id": meeting_id},
            )
            await send({"type": "websocket.accept", "subprotocol": selected})
            await send({"type": "websocket.close", "code": exc.ws_close_code})
            return
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        self.stats["connections"] += 1
        meeting = grant.meeting
        log = logging.LoggerAdapter(
            logger, {"meeting_id": meeting.meeting_id, "attendee_id": grant.attendee_id}
        )
        now = self.clock.monotonic()
        session = SignalingSession(now=now, wall_clock=self.clock.wall, idle_timeout=None)
        member = Member(
            session=session,
            attendee_id=grant.attendee_id,
            external_user_id=grant.attendee.external_user_id,
            connected_at=now,
            last_activity=now,
        )
        member.app_data["meeting"] = meeting
        member.app_data["attendee"] = grant.attendee
        room = self.rooms.get(meeting.meeting_id)
        if room is None:
            room = self.rooms[meeting.meeting_id] = MeetingRoom(
                meeting.meeting_id,
                drop_after=self.drop_after,
                video_stream_ids=self._video_stream_ids,
            )
            if self.observer is not None:
                room.on_join = self.observer.member_joined
                room.on_departure = self.observer.member_departed
        room.add(member)
        connection = _Connection(self, send, log)
        connection.member = member
        connection.room = room
        self._connections[member] = connection
        self.registry.attendee_connected(meeting, AttendeeId(grant.attendee.attendee_id))
        log.info("signaling connected")
        writer = asyncio.create_task(connection.writer())
        code: int | None = None
        try:
            while True:
                reader = asyncio.ensure_future(receive())
                done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
                if reader not in done:
                    reader.cancel()
                    break  # the writer closed the socket
                message = reader.result()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    code = message.get("code")
                    break
                if kind != "websocket.receive":
                    continue
                data = message.get("bytes")
                if data is None:
                    data = message.get("text", "")
                session.receive_frame(data, self.clock.monotonic())
                self.process(connection)
        finally:
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if connection.timer is not None:
                connection.timer.cancel()
            session.receive_close(code)
            self.process(connection)
            del self._connections[member]
            now = self.clock.monotonic()
            room.closed(member, now)
            if self.media is not None:
                self.media.close(member)
            self.registry.attendee_disconnected(
                meeting, AttendeeId(grant.attendee.attendee_id), self.clock.wall()
            )
            self._flush_room(room)
            log.info("signaling closed (code %s)", code)

    # -- events ---------------------------------------------------------------------------

    def process(self, connection: _Connection) -> None:
        """Handle the session's events, then flush every session of the room."""
        member = connection.member
        room = connection.room
        if member is None or room is None:
            return
        for event in member.session.events_received():
            try:
                self._handle(connection, member, room, event)
            except MediaServerError as exc:
                connection.log.warning("%s failed: %s", type(event).__name__, exc)
            except Exception:
                connection.log.exception("%s failed", type(event).__name__)
                member.session.close(CloseCode.INTERNAL_ERROR)
        self._flush_room(room)
        connection.flush()

    def _handle(
        self, connection: _Connection, member: Member, room: MeetingRoom, event: Event
    ) -> None:
        now = self.clock.monotonic()
        if isinstance(event, JoinReceived):
            adaption = (
                self.server_side_adaption
                and event.server_side_network_adaption
                is ServerSideNetworkAdaption.BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION
            )
            room.join(
                member,
                event.audio_session_id,
                now,
                self.clock.wall(),
                server_side_adaption=adaption,
            )
            member.client_side_adaption = not adaption and bool(
                event.supported_server_side_network_adaptions
            )
        elif isinstance(event, SubscribeReceived):
            self._subscribe(connection, member, room, event, now)
        elif isinstance(event, AudioMuteChanged):
            room.mute(member, event.muted, now)
            if self.media is not None:
                self.media.set_muted(member, event.muted)
        elif isinstance(event, DataMessagesReceived):
            member.touch(now)
            if event.messages:
                room.data_messages(member, event.messages, now, self.clock.wall())
        elif isinstance(event, LeaveReceived):
            room.leave(member, now)
            if self.media is not None:
                self.media.close(member)
        elif isinstance(event, RemoteVideoUpdateReceived):
            member.touch(now)
            if self.media is not None:
                for config in event.added_or_updated:
                    self.media.select(member, config.mid, config.stream_id or 0, now, config)
                for mid in event.removed_mids:
                    self.media.select(member, mid, 0, now)
        elif isinstance(event, (PauseReceived, ResumeReceived)):
            member.touch(now)
            if self.media is not None:
                paused = isinstance(event, PauseReceived)
                self.media.pause(member, set(event.stream_ids), paused, now)
        elif isinstance(event, FrameRejected):
            self.stats["malformed_frames"] += 1
            connection.log.info("frame rejected: %s", event.reason)
        elif isinstance(event, ConnectionClosed):
            pass
        else:
            member.touch(now)

    def _video_refusal(
        self, member: Member, room: MeetingRoom, descriptors: Sequence[StreamDescriptor]
    ) -> str | None:
        """Why ``member`` may not publish video, or None (meetings-digest §5, §4.7)."""
        if not descriptors:
            return None
        meeting = member.app_data.get("meeting")
        attendee = member.app_data.get("attendee")
        content = member.attendee_id.endswith(CONTENT_SUFFIX)
        capabilities = getattr(attendee, "capabilities", None)
        allowed = getattr(capabilities, "content" if content else "video", "SendReceive")
        if allowed not in ("SendReceive", "Send"):
            return "the attendee's capabilities do not allow sending this video"
        resolution = getattr(
            meeting, "content_max_resolution" if content else "video_max_resolution", "HD"
        )
        if resolution == "None":
            return "the meeting's features do not allow this video"
        limit = VIDEO_LIMITS.get(resolution)
        if (
            not content
            and limit is not None
            and any(exceeds(d.width or 0, d.height or 0, limit) for d in descriptors)
        ):
            return RESOLUTION_REFUSAL
        if content and not room.sources_of(member):
            shares = {
                s.member.attendee_id
                for s in room.video_sources.values()
                if s.member.attendee_id.endswith(CONTENT_SUFFIX)
            }
            if len(shares) >= MAX_CONTENT_SHARES:
                return "the meeting already has 2 content shares"
        return None

    def _subscribe(
        self,
        connection: _Connection,
        member: Member,
        room: MeetingRoom,
        event: SubscribeReceived,
        now: float,
    ) -> None:
        member.touch(now)
        if self.media is None:
            member.session.send_subscribe_ack(
                duplex=event.duplex, error_status=503, error_description="no media server"
            )
            return
        try:
            result = self.media.subscribe(member, event, now)
        except (MalformedMessage, UnsupportedError, InvalidArgument) as exc:
            connection.log.info("SUBSCRIBE refused: %s", exc)
            member.session.send_subscribe_ack(
                duplex=event.duplex, error_status=400, error_description=str(exc)[:200]
            )
            return
        room.set_receive_codecs(member, result.receive_codecs)
        descriptors = _content_scaled(member, _video_send_streams(event))
        refusal = self._video_refusal(member, room, descriptors)
        allocations = None if refusal else room.publish(member, descriptors)
        if allocations is None:
            # No (more) video from this client: "switch to view only" (§6.2, status 206).
            room.publish(member, [])
            self.media.publish(member, [], now)
            member.session.send_subscribe_ack(
                sdp_answer=result.answer,
                duplex=event.duplex,
                tracks=result.tracks,
                error_status=206,
                error_description=refusal or "the meeting's video source limit is reached",
            )
        else:
            self.media.publish(member, room.sources_of(member), now)
            member.session.send_subscribe_ack(
                sdp_answer=result.answer,
                duplex=event.duplex,
                tracks=result.tracks,
                allocations=allocations,
            )
        room.subscribed(member, event.audio_muted, now)
        if self.observer is not None:
            self.observer.member_subscribed(member, event)

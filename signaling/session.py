"""``SignalingSession``: the server side of one Chime signaling WebSocket, sans I/O.

The shell (the gateway's per-connection task) owns the socket and the clocks. It:

1. feeds every WebSocket message to :meth:`SignalingSession.receive_frame`;
2. pops :meth:`SignalingSession.events_received` and dispatches them to meeting logic, which
   answers through the ``send_*`` commands;
3. after every call, sends :meth:`SignalingSession.frames_to_send` as binary messages, then,
   if :meth:`SignalingSession.close_code` is not ``None``, closes the socket with that code;
4. arms one timer at :meth:`SignalingSession.get_timer` and calls
   :meth:`SignalingSession.handle_timer` when it fires;
5. calls :meth:`SignalingSession.receive_close` once the socket is closed.

Only per-connection protocol rules live here (``chime-signaling-protocol.md`` sections 2, 3,
5 and 6): JOIN first, PING → PONG, LEAVE → LEAVE_ACK, data-message checks, malformed-frame
handling, closing. Roster, fan-out, data-message caching, throttling and video allocation are
the gateway's. What each state allows is in :mod:`signaling.states`.

Two time bases (``mediaserver.clock``): ``now`` arguments are monotonic seconds and drive the
deadlines; ``wall_clock`` (a callable returning epoch seconds, e.g. ``Clock.wall``) stamps
``timestamp_ms`` on every outgoing frame, which the client reads as server time in PONGs
(section 2.1). The session never reads a clock by itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from mediaserver.errors import LocalProtocolError, MalformedMessage
from signaling import signaling_pb2 as pb
from signaling.codec import decode_frame, encode_frame, new_frame
from signaling.events import (
    AudioMuteChanged,
    ClientMetricsReceived,
    CloseInitiated,
    ConnectionClosed,
    DataMessagesReceived,
    Event,
    FrameRejected,
    JoinReceived,
    LeaveReceived,
    MeetingSessionTimingReceived,
    PauseReceived,
    RemoteVideoUpdateReceived,
    ResumeReceived,
    SubscribeReceived,
)
from signaling.messages import (
    AudioAttendeeState,
    AudioStreamIdInfo,
    Bitrate,
    ClientDetails,
    CloseCode,
    DataMessage,
    FrameType,
    MediaType,
    NotificationLevel,
    RejectedDataMessage,
    ServerSideNetworkAdaption,
    StreamAllocation,
    StreamDescriptor,
    StreamMetrics,
    StreamServiceType,
    TrackMapping,
    TurnCredentials,
    VideoCodecCapability,
    VideoSubscriptionConfiguration,
    metrics_from_pb,
)
from signaling.states import (
    TRANSITIONS,
    VIOLATION_POLICY,
    Disposition,
    SendDisposition,
    SessionState,
    Violation,
    receive_rule,
    send_disposition,
)

__all__ = [
    "DATA_MESSAGE_MAX_BYTES",
    "DATA_MESSAGE_TOPIC",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_LEAVE_LINGER",
    "SignalingSession",
    "WallClock",
    "prepare_audio_metadata",
    "validate_data_message",
]

WallClock = Callable[[], float]
"""Returns seconds since the Unix epoch (``mediaserver.clock.Clock.wall``)."""

DATA_MESSAGE_TOPIC = re.compile(r"[a-zA-Z0-9_-]{1,36}")
"""Allowed client topics, matched in full: ``^[a-zA-Z0-9_-]{1,36}$`` (section 5.4)."""

DATA_MESSAGE_MAX_BYTES = 2048
"""Largest ``data`` of one client data message (section 5.4)."""

_INT32_LIMIT = 2**31

DEFAULT_IDLE_TIMEOUT = 60.0
"""Seconds without any frame after which the session closes. The client pings every 10 s
from the moment the socket opens (section 5.6), and reconnects by itself after 4 missed
pongs, so 60 s of silence means it is gone."""

DEFAULT_LEAVE_LINGER = 5.0
"""Seconds the session waits, after LEAVE_ACK, for the client to close the socket (it gives
itself 2 s, section 6.4) before closing with 1000 itself."""


def validate_data_message(message: DataMessage) -> str | None:
    """Check a client data message against section 5.4.

    Args:
        message: the message as received.

    Returns:
        ``None`` if it is acceptable, else the reason, a sentence.
    """
    if DATA_MESSAGE_TOPIC.fullmatch(message.topic) is None:
        return f"topic {message.topic!r} does not match ^[a-zA-Z0-9_-]{{1,36}}$"
    if len(message.data) > DATA_MESSAGE_MAX_BYTES:
        return f"data is {len(message.data)} bytes (max {DATA_MESSAGE_MAX_BYTES})"
    lifetime = message.lifetime_ms or 0
    if lifetime >= _INT32_LIMIT:
        # uint32 on the wire; the JS client checks lifetime_ms >= 0, and a negative number
        # that slipped through arrives as a value of 2^31 or more.
        return f"lifetime_ms {lifetime} is negative as a signed 32-bit value"
    return None


class SignalingSession:
    """Server side of one signaling connection (sans I/O).

    Args:
        now: monotonic seconds when the socket was accepted.
        wall_clock: epoch seconds, for ``timestamp_ms`` of outgoing frames.
        idle_timeout: close with 4408 after this many seconds without a frame; ``None``
            disables it.
        leave_linger: after LEAVE_ACK, close with 1000 if the client has not closed within
            this many seconds; ``None`` disables it.
        auto_leave_ack: queue LEAVE_ACK as soon as LEAVE arrives (the default). If false,
            the gateway calls :meth:`send_leave_ack` itself.

    Attributes:
        malformed_frames: frames that did not decode, or failed a content check.
        rejected_frames: well-formed frames not allowed in the state they arrived in.
        ignored_frames: frames dropped silently (after LEAVE, while closing, unsupported).
        dropped_sends: send commands that were no-ops because the client left or is gone.
    """

    def __init__(
        self,
        *,
        now: float,
        wall_clock: WallClock,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        leave_linger: float | None = DEFAULT_LEAVE_LINGER,
        auto_leave_ack: bool = True,
    ) -> None:
        self._wall_clock = wall_clock
        self._idle_timeout = idle_timeout
        self._leave_linger = leave_linger
        self._auto_leave_ack = auto_leave_ack

        self._state = SessionState.AWAITING_JOIN
        self._events: list[Event] = []
        self._frames: list[bytes] = []
        self._close_code: int | None = None
        self._close_at: float | None = None
        self._pending_close_code: int | None = None
        self._last_received = now
        self._left_at: float | None = None

        self._join_ack_sent = False
        self._index_sent = False
        self._pending_subscribes = 0
        self._leave_ack_pending = False

        self.malformed_frames = 0
        self.rejected_frames = 0
        self.ignored_frames = 0
        self.dropped_sends = 0

    # Introspection.

    @property
    def state(self) -> SessionState:
        """The current :class:`~signaling.states.SessionState`."""
        return self._state

    @property
    def joined(self) -> bool:
        """True once JOIN was received and until LEAVE or closing."""
        return self._state is SessionState.JOINED

    def close_code(self) -> int | None:
        """The WebSocket close code to close with now, or ``None`` to keep the socket open.

        When it is not ``None``, send :meth:`frames_to_send` first, then close.
        """
        return self._close_code

    # Input.

    def receive_frame(self, data: bytes | str, now: float) -> None:
        """Feed one WebSocket message (a ``str`` for a text message, which is rejected).

        Never raises for bad input: malformed frames are counted and handled per
        :data:`~signaling.states.VIOLATION_POLICY`.

        After calling this, call :meth:`events_received`, :meth:`frames_to_send` and
        :meth:`close_code`, and re-arm the timer from :meth:`get_timer`.
        """
        if self._state is SessionState.CLOSED:
            self.ignored_frames += 1
            return
        self._last_received = now
        try:
            frame = decode_frame(data)
        except MalformedMessage as exc:
            self.malformed_frames += 1
            self._violation(str(exc), None, now)
            return
        frame_type = FrameType(frame.type)
        rule = receive_rule(self._state, frame_type)
        if rule.disposition is Disposition.IGNORE:
            self.ignored_frames += 1
            return
        if rule.disposition is Disposition.REJECT:
            self.rejected_frames += 1
            reason = f"{frame_type.name} frame not allowed in state {self._state.name}"
            self._violation(reason, frame_type, now)
            return
        try:
            events = _HANDLERS[frame_type](self, frame)
        except MalformedMessage as exc:  # content checks beyond the codec's
            self.malformed_frames += 1
            self._violation(str(exc), frame_type, now)
            return
        if rule.next_state is not None:
            self._set_state(rule.next_state)
        self._events.extend(events)
        if frame_type is FrameType.LEAVE:
            self._left_at = now
            self._leave_ack_pending = True
            if self._auto_leave_ack:
                self.send_leave_ack()

    def receive_close(self, code: int | None = None) -> None:
        """Tell the session that the WebSocket is closed (by either side).

        Emits :class:`~signaling.events.ConnectionClosed` once; queued frames are discarded.

        Args:
            code: the close code, if known (1005/1000 after a client leave, 1006 if lost).
        """
        if self._state is SessionState.CLOSED:
            return
        after_leave = self._left_at is not None
        self._set_state(SessionState.CLOSED)
        self._frames.clear()
        self._close_at = None
        self._events.append(ConnectionClosed(code=code, after_leave=after_leave))

    # Output.

    def events_received(self) -> list[Event]:
        """Pop the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def frames_to_send(self) -> list[bytes]:
        """Pop the encoded frames to send, in order, each as one binary WebSocket message."""
        frames, self._frames = self._frames, []
        return frames

    # Timers.

    def get_timer(self) -> float | None:
        """The monotonic time at which :meth:`handle_timer` must be called, or ``None``."""
        if self._close_code is not None or self._state is SessionState.CLOSED:
            return None
        deadlines: list[float] = []
        if self._close_at is not None:
            deadlines.append(self._close_at)
        if self._idle_timeout is not None:
            deadlines.append(self._last_received + self._idle_timeout)
        if self._left_at is not None and self._leave_linger is not None:
            deadlines.append(self._left_at + self._leave_linger)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Run the deadlines that are due at ``now``.

        After calling this, check :meth:`close_code` and flush :meth:`frames_to_send`.
        """
        if self._close_code is not None or self._state is SessionState.CLOSED:
            return
        if self._close_at is not None and now >= self._close_at:
            assert self._pending_close_code is not None
            self._close_code = self._pending_close_code
            self._close_at = None
            return
        if self._idle_timeout is not None and now >= self._last_received + self._idle_timeout:
            self._initiate_close(
                CloseCode.IDLE_TIMEOUT, f"no frame received for {self._idle_timeout:g} s"
            )
            return
        if (
            self._left_at is not None
            and self._leave_linger is not None
            and now >= self._left_at + self._leave_linger
        ):
            self._initiate_close(CloseCode.NORMAL, "client did not close after LEAVE_ACK")

    # Closing commands.

    def close(self, code: int) -> None:
        """Ask the shell to close the socket now with ``code``, after flushing.

        Remember that after the join only 1006 and 45xx make the client act (section 6.1):
        use :meth:`end_session` to end a meeting or remove an attendee.
        """
        if self._state is SessionState.CLOSED or self._close_code is not None:
            return
        self._set_state(SessionState.CLOSING)
        self._close_code = code
        self._close_at = None

    def end_session(self, status: int, code: int, now: float, delay: float = 0.1) -> None:
        """Send AUDIO_STATUS ``status``, then close with ``code`` after ``delay`` seconds.

        The recommended way to end a session (section 6.2): 410 + 4410 for a meeting that
        ended, 411 + 4403 for a removed attendee. Before the join, AUDIO_STATUS is not sent
        (the client would not act on it) and the socket closes at once.

        After calling this, flush :meth:`frames_to_send` and re-arm the timer.
        """
        if self._state is SessionState.CLOSED or self._close_code is not None:
            return
        if self._state is not SessionState.JOINED:
            self.close(code)
            return
        self.send_audio_status(status)
        self._set_state(SessionState.CLOSING)
        self._pending_close_code = code
        self._close_at = now + delay

    # Send commands (section 2.2, direction S→C).

    def send_join_ack(
        self,
        *,
        turn_credentials: TurnCredentials | None = None,
        video_subscription_limit: int | None = None,
        wants_compressed_sdp: bool | None = None,
        default_server_side_network_adaption: ServerSideNetworkAdaption | None = None,
    ) -> None:
        """Queue JOIN_ACK (section 3.2). Optional, once, and before the first INDEX.

        The defaults give ``JOIN_ACK{}``: no TURN (host candidates only), no SDP compression,
        no adaption override, which is the v1 recommendation.

        Raises:
            LocalProtocolError: before JOIN, after an INDEX, or a second time.
        """
        frame = self._frame(FrameType.JOIN_ACK)
        if frame is None:
            return
        if self._join_ack_sent:
            raise LocalProtocolError("JOIN_ACK was already sent")
        if self._index_sent:
            raise LocalProtocolError("JOIN_ACK must come before the first INDEX (section 2.2)")
        ack = frame.joinack
        ack.SetInParent()
        if turn_credentials is not None:
            ack.turn_credentials.CopyFrom(turn_credentials.to_pb())
        if video_subscription_limit is not None:
            ack.video_subscription_limit = video_subscription_limit
        if wants_compressed_sdp is not None:
            ack.wants_compressed_sdp = wants_compressed_sdp
        if default_server_side_network_adaption is not None:
            ack.default_server_side_network_adaption = pb.SdkServerSideNetworkAdaption.ValueType(
                default_server_side_network_adaption
            )
        self._join_ack_sent = True
        self._queue(frame)

    def send_index(
        self,
        sources: Sequence[StreamDescriptor] = (),
        *,
        num_participants: int | None = None,
        at_capacity: bool | None = None,
        paused_at_source_ids: Iterable[int] = (),
        supported_receive_codec_intersection: Iterable[VideoCodecCapability] = (),
    ) -> None:
        """Queue a complete INDEX of remote video sources (section 3.2).

        A source whose ``media_type`` is ``None`` is sent as VIDEO: the field is mandatory for
        the client, which reads an absent one as AUDIO and ignores the source.

        Raises:
            LocalProtocolError: before JOIN.
        """
        frame = self._frame(FrameType.INDEX)
        if frame is None:
            return
        index = frame.index
        index.SetInParent()
        for source in sources:
            entry = source.to_pb()
            if not entry.HasField("media_type"):
                entry.media_type = pb.SdkStreamMediaType.ValueType(MediaType.VIDEO)
            index.sources.append(entry)
        if num_participants is not None:
            index.num_participants = num_participants
        if at_capacity is not None:
            index.at_capacity = at_capacity
        index.paused_at_source_ids.extend(paused_at_source_ids)
        index.supported_receive_codec_intersection.extend(
            pb.SdkVideoCodecCapability.ValueType(c) for c in supported_receive_codec_intersection
        )
        self._index_sent = True
        self._queue(frame)

    def send_subscribe_ack(
        self,
        *,
        sdp_answer: str | None = None,
        duplex: StreamServiceType | None = None,
        tracks: Iterable[TrackMapping] = (),
        allocations: Iterable[StreamAllocation] = (),
        compressed_sdp_answer: bytes | None = None,
        error_status: int | None = None,
        error_description: str | None = None,
    ) -> None:
        """Queue SUBSCRIBE_ACK answering the oldest unanswered SUBSCRIBE (section 3.3).

        Args:
            sdp_answer: the SDP answer (plain text; Carillon never enables compression).
            duplex: echo of the SUBSCRIBE's duplex; the client does not read it.
            tracks: one mapping per receive m-line, ``track_label "v_<mid>"``.
            allocations: one per video send descriptor, in order.
            compressed_sdp_answer: raw DEFLATE answer, only if compression was enabled.
            error_status: ``error.status`` to attach, e.g. 206 "switch to view only"
                (section 6.2).
            error_description: ``error.description`` to attach.

        Raises:
            LocalProtocolError: no SUBSCRIBE is waiting for an answer.
        """
        frame = self._frame(FrameType.SUBSCRIBE_ACK)
        if frame is None:
            return
        if self._pending_subscribes == 0:
            raise LocalProtocolError("SUBSCRIBE_ACK without a pending SUBSCRIBE")
        ack = frame.suback
        ack.SetInParent()
        if duplex is not None:
            ack.duplex = pb.SdkStreamServiceType.ValueType(duplex)
        if sdp_answer is not None:
            ack.sdp_answer = sdp_answer
        if compressed_sdp_answer is not None:
            ack.compressed_sdp_answer = compressed_sdp_answer
        ack.tracks.extend(t.to_pb() for t in tracks)
        ack.allocations.extend(a.to_pb() for a in allocations)
        _set_error(frame, error_status, error_description)
        self._pending_subscribes -= 1
        self._queue(frame)

    def send_audio_stream_id_info(self, streams: Iterable[AudioStreamIdInfo]) -> None:
        """Queue AUDIO_STREAM_ID_INFO: roster, presence, mute and departures (section 5.1).

        Send the full roster as one frame after each JOIN; deltas afterwards.
        """
        frame = self._frame(FrameType.AUDIO_STREAM_ID_INFO)
        if frame is None:
            return
        info = frame.audio_stream_id_info
        info.SetInParent()
        info.streams.extend(s.to_pb() for s in streams)
        self._queue(frame)

    def send_audio_metadata(self, attendee_states: Iterable[AudioAttendeeState]) -> None:
        """Queue AUDIO_METADATA: volume and signal strength per stream (section 5.2)."""
        frame = self._frame(FrameType.AUDIO_METADATA)
        if frame is None:
            return
        meta = frame.audio_metadata
        meta.SetInParent()
        meta.attendee_states.extend(s.to_pb() for s in attendee_states)
        self._queue(frame)

    def send_prepared(self, frame_type: FrameType, data: bytes) -> None:
        """Queue a frame already encoded with :func:`prepare_frame`, under this session's rules.

        For fan-out: a frame identical for every member of a meeting (AUDIO_METADATA to a
        thousand attendees five times a second) is encoded once and queued on each session.
        """
        disposition = send_disposition(self._state, frame_type)
        if disposition is SendDisposition.DROP:
            self.dropped_sends += 1
            return
        if disposition is SendDisposition.ERROR:
            raise LocalProtocolError(f"cannot send {frame_type.name} in state {self._state.name}")
        self._frames.append(data)

    def send_audio_status(self, status: int) -> None:
        """Queue AUDIO_STATUS (section 6.2); see :class:`~signaling.messages.AudioStatus`."""
        frame = self._frame(FrameType.AUDIO_STATUS)
        if frame is None:
            return
        frame.audio_status.audio_status = status
        self._queue(frame)

    def send_data_messages(self, messages: Iterable[DataMessage]) -> None:
        """Queue one DATA_MESSAGE frame carrying ``messages`` (section 5.4).

        The gateway stamps ``sender_attendee_id``, ``sender_external_user_id`` and a non-zero
        ``ingest_time_ns`` (0 only to return a throttled message to its sender). Topics are
        not checked here, so the server may use ``aws:chime:transcription`` (section 5.5).
        """
        frame = self._frame(FrameType.DATA_MESSAGE)
        if frame is None:
            return
        payload = frame.data_message
        payload.SetInParent()
        payload.messages.extend(m.to_pb() for m in messages)
        self._queue(frame)

    def send_bitrates(
        self,
        bitrates: Iterable[Bitrate],
        *,
        server_available_outgoing_bitrate: int | None = None,
    ) -> None:
        """Queue BITRATES (section 4.4): every sending stream, about every 4 s.

        Args:
            bitrates: average bitrate per source stream.
            server_available_outgoing_bitrate: downlink estimate in kbps, if known.
        """
        frame = self._frame(FrameType.BITRATES)
        if frame is None:
            return
        payload = frame.bitrates
        payload.SetInParent()
        payload.bitrates.extend(b.to_pb() for b in bitrates)
        if server_available_outgoing_bitrate is not None:
            payload.server_available_outgoing_bitrate = server_available_outgoing_bitrate
        self._queue(frame)

    def send_pause(self, group_ids: Iterable[int]) -> None:
        """Queue S→C PAUSE of video groups (section 4.6; server-side adaption only)."""
        self._send_pause_resume(FrameType.PAUSE, group_ids)

    def send_resume(self, group_ids: Iterable[int]) -> None:
        """Queue S→C RESUME of video groups (section 4.6; server-side adaption only)."""
        self._send_pause_resume(FrameType.RESUME, group_ids)

    def send_notification(self, level: NotificationLevel, message: str) -> None:
        """Queue NOTIFICATION; the client only logs it (section 6.2)."""
        frame = self._frame(FrameType.NOTIFICATION)
        if frame is None:
            return
        frame.notification.level = pb.SdkNotificationFrame.NotificationLevel.ValueType(level)
        frame.notification.message = message
        self._queue(frame)

    def send_leave_ack(self) -> None:
        """Queue LEAVE_ACK (section 6.4). Only needed with ``auto_leave_ack=False``.

        Raises:
            LocalProtocolError: no LEAVE is waiting for its acknowledgement.
        """
        frame = self._frame(FrameType.LEAVE_ACK)
        if frame is None:
            return
        if not self._leave_ack_pending:
            raise LocalProtocolError("LEAVE_ACK without a pending LEAVE")
        frame.leave_ack.SetInParent()
        self._leave_ack_pending = False
        self._queue(frame)

    # Internals.

    def _send_pause_resume(self, frame_type: FrameType, group_ids: Iterable[int]) -> None:
        frame = self._frame(frame_type)
        if frame is None:
            return
        frame.pause.SetInParent()
        frame.pause.group_ids.extend(group_ids)
        self._queue(frame)

    def _frame(self, frame_type: FrameType) -> pb.SdkSignalFrame | None:
        """Start an outgoing frame, or return ``None`` if the state drops it.

        Raises:
            LocalProtocolError: the state does not allow this frame type.
        """
        disposition = send_disposition(self._state, frame_type)
        if disposition is SendDisposition.DROP:
            self.dropped_sends += 1
            return None
        if disposition is SendDisposition.ERROR:
            raise LocalProtocolError(f"cannot send {frame_type.name} in state {self._state.name}")
        return new_frame(frame_type, round(self._wall_clock() * 1000))

    def _queue(self, frame: pb.SdkSignalFrame) -> None:
        self._frames.append(encode_frame(frame))

    def _set_state(self, state: SessionState) -> None:
        if state is self._state:
            return
        if state not in TRANSITIONS[self._state]:  # pragma: no cover - a bug in this module
            raise AssertionError(f"illegal transition {self._state.name} -> {state.name}")
        self._state = state

    def _violation(self, reason: str, frame_type: FrameType | None, now: float) -> None:
        policy = VIOLATION_POLICY[self._state]
        if policy is Violation.IGNORE:
            return
        self._events.append(FrameRejected(reason=reason, frame_type=frame_type))
        if policy is Violation.CLOSE:
            self._initiate_close(CloseCode.BAD_REQUEST, reason)

    def _initiate_close(self, code: int, reason: str) -> None:
        self.close(code)
        self._events.append(CloseInitiated(code=code, reason=reason))

    # Frame handlers: each returns the events for one well-formed client frame, or raises
    # MalformedMessage for content the codec cannot check.

    def _handle_join(self, frame: pb.SdkSignalFrame) -> list[Event]:
        join = frame.join
        return [
            JoinReceived(
                audio_session_id=join.audio_session_id
                if join.HasField("audio_session_id")
                else None,
                protocol_version=join.protocol_version,
                flags=join.flags,
                max_num_of_videos=(
                    join.max_num_of_videos if join.HasField("max_num_of_videos") else None
                ),
                client_details=ClientDetails.from_pb(join.client_details),
                wants_compressed_sdp=join.wants_compressed_sdp,
                server_side_network_adaption=(
                    ServerSideNetworkAdaption(join.server_side_network_adaption)
                    if join.HasField("server_side_network_adaption")
                    else None
                ),
                supported_server_side_network_adaptions=tuple(
                    ServerSideNetworkAdaption(v)
                    for v in join.supported_server_side_network_adaptions
                ),
                wants_all_temporal_layers_in_index=join.wants_all_temporal_layers_in_index,
                disable_periodic_keyframe_request_on_content_sender=(
                    join.disable_periodic_keyframe_request_on_content_sender
                ),
            )
        ]

    def _handle_subscribe(self, frame: pb.SdkSignalFrame) -> list[Event]:
        sub = frame.sub
        event = SubscribeReceived(
            duplex=StreamServiceType(sub.duplex),
            sdp_offer=sub.sdp_offer if sub.HasField("sdp_offer") else None,
            compressed_sdp_offer=(
                sub.compressed_sdp_offer if sub.HasField("compressed_sdp_offer") else None
            ),
            send_streams=tuple(StreamDescriptor.from_pb(s) for s in sub.send_streams),
            receive_stream_ids=tuple(sub.receive_stream_ids),
            audio_host=sub.audio_host if sub.HasField("audio_host") else None,
            audio_checkin=sub.audio_checkin,
            audio_muted=sub.audio_muted if sub.HasField("audio_muted") else None,
            video_subscription_configuration=tuple(
                VideoSubscriptionConfiguration.from_pb(c)
                for c in sub.video_subscription_configuration
            ),
        )
        self._pending_subscribes += 1
        return [event]

    def _handle_leave(self, frame: pb.SdkSignalFrame) -> list[Event]:
        return [LeaveReceived()]

    def _handle_audio_control(self, frame: pb.SdkSignalFrame) -> list[Event]:
        if not frame.audio_control.HasField("muted"):
            raise MalformedMessage("AUDIO_CONTROL frame without audio_control.muted")
        return [AudioMuteChanged(muted=frame.audio_control.muted)]

    def _handle_data_message(self, frame: pb.SdkSignalFrame) -> list[Event]:
        accepted: list[DataMessage] = []
        rejected: list[RejectedDataMessage] = []
        for payload in frame.data_message.messages:
            received = DataMessage.from_pb(payload)
            # Only topic, data and lifetime come from the client; the sender fields and the
            # ingest time are the server's to set (section 5.4).
            message = DataMessage(
                topic=received.topic, data=received.data, lifetime_ms=received.lifetime_ms or 0
            )
            reason = validate_data_message(message)
            if reason is None:
                accepted.append(message)
            else:
                rejected.append(
                    RejectedDataMessage(topic=message.topic, size=len(message.data), reason=reason)
                )
        if not accepted and not rejected:
            return []
        return [DataMessagesReceived(messages=tuple(accepted), rejected=tuple(rejected))]

    def _handle_pause(self, frame: pb.SdkSignalFrame) -> list[Event]:
        return [
            PauseReceived(
                stream_ids=tuple(frame.pause.stream_ids), group_ids=tuple(frame.pause.group_ids)
            )
        ]

    def _handle_resume(self, frame: pb.SdkSignalFrame) -> list[Event]:
        return [
            ResumeReceived(
                stream_ids=tuple(frame.pause.stream_ids), group_ids=tuple(frame.pause.group_ids)
            )
        ]

    def _handle_remote_video_update(self, frame: pb.SdkSignalFrame) -> list[Event]:
        update = frame.remote_video_update
        return [
            RemoteVideoUpdateReceived(
                added_or_updated=tuple(
                    VideoSubscriptionConfiguration.from_pb(c)
                    for c in update.added_or_updated_video_subscriptions
                ),
                removed_mids=tuple(update.removed_video_subscription_mids),
            )
        ]

    def _handle_ping_pong(self, frame: pb.SdkSignalFrame) -> list[Event]:
        ping = frame.ping_pong
        if ping.type == pb.PING:
            # Section 5.6: answer with the same ping_id and our own timestamp_ms, which the
            # client uses as server time (section 2.1).
            reply = self._frame(FrameType.PING_PONG)
            if reply is not None:
                reply.ping_pong.type = pb.PONG
                reply.ping_pong.ping_id = ping.ping_id
                self._queue(reply)
        # A PONG answers a server PING; this session sends none, so there is nothing to match.
        return []

    def _handle_client_metric(self, frame: pb.SdkSignalFrame) -> list[Event]:
        metric = frame.client_metric
        return [
            ClientMetricsReceived(
                global_metrics=metrics_from_pb(metric.global_metrics),
                stream_metrics=tuple(StreamMetrics.from_pb(s) for s in metric.stream_metric_frames),
            )
        ]

    def _handle_meeting_session_timing(self, frame: pb.SdkSignalFrame) -> list[Event]:
        timing = frame.meeting_session_timing
        timings: dict[str, tuple[dict[str, int | bool], ...]] = {}
        for fd, values in timing.ListFields():
            timings[fd.name] = tuple(_scalar_fields(v) for v in values)
        return [MeetingSessionTimingReceived(timings=timings)]


def prepare_audio_metadata(attendee_states: Iterable[AudioAttendeeState], wall_ms: int) -> bytes:
    """An encoded AUDIO_METADATA frame for :meth:`SignalingSession.send_prepared` (§5.2)."""
    frame = new_frame(FrameType.AUDIO_METADATA, wall_ms)
    meta = frame.audio_metadata
    meta.SetInParent()
    meta.attendee_states.extend(s.to_pb() for s in attendee_states)
    return encode_frame(frame)


def _scalar_fields(msg: Any) -> dict[str, int | bool]:
    """The scalar fields present in ``msg`` (timing entries hold only int64 and bool)."""
    return {
        fd.name: value for fd, value in msg.ListFields() if fd.type != FieldDescriptor.TYPE_MESSAGE
    }


def _set_error(frame: pb.SdkSignalFrame, status: int | None, description: str | None) -> None:
    """Attach ``error`` to a frame if a status or description is given (section 6.2)."""
    if status is not None:
        frame.error.status = status
    if description is not None:
        frame.error.description = description


_Handler = Callable[[SignalingSession, pb.SdkSignalFrame], list[Event]]

_HANDLERS: dict[FrameType, _Handler] = {
    FrameType.JOIN: SignalingSession._handle_join,
    FrameType.SUBSCRIBE: SignalingSession._handle_subscribe,
    FrameType.LEAVE: SignalingSession._handle_leave,
    FrameType.AUDIO_CONTROL: SignalingSession._handle_audio_control,
    FrameType.DATA_MESSAGE: SignalingSession._handle_data_message,
    FrameType.PAUSE: SignalingSession._handle_pause,
    FrameType.RESUME: SignalingSession._handle_resume,
    FrameType.REMOTE_VIDEO_UPDATE: SignalingSession._handle_remote_video_update,
    FrameType.PING_PONG: SignalingSession._handle_ping_pong,
    FrameType.CLIENT_METRIC: SignalingSession._handle_client_metric,
    FrameType.MEETING_SESSION_TIMING: SignalingSession._handle_meeting_session_timing,
}
"""Frame type → handler, for every type some state marks HANDLE (checked by a test)."""

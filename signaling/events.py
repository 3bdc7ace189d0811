"""Events popped from the signaling sessions with ``events_received()``.

Every event is a past-tense, frozen, slotted dataclass deriving from :class:`Event`; consumers
dispatch with ``match``. Payload fields are plain Python values or dataclasses from
:mod:`signaling.messages`, never protobuf objects. Optional wire fields keep proto2 presence:
``None`` means "absent on the wire".

The first group is what :class:`~signaling.session.SignalingSession` (the server side) emits
for client frames; the second is what
:class:`~signaling.client_session.ClientSignalingSession` emits for server frames. A few
(data messages, pause/resume, rejected frames) serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from signaling.messages import (
    AudioAttendeeState,
    AudioStreamIdInfo,
    Bitrate,
    ClientDetails,
    DataMessage,
    FrameType,
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
)

__all__ = [
    "AudioMetadataReceived",
    "AudioMuteChanged",
    "AudioStatusReceived",
    "AudioStreamIdInfoReceived",
    "BitratesReceived",
    "ClientMetricsReceived",
    "CloseInitiated",
    "ConnectionClosed",
    "DataMessagesReceived",
    "ErrorStatusReceived",
    "Event",
    "FrameRejected",
    "IndexReceived",
    "JoinAckReceived",
    "JoinReceived",
    "LeaveAckReceived",
    "LeaveReceived",
    "MeetingSessionTimingReceived",
    "NotificationReceived",
    "PauseReceived",
    "PongReceived",
    "RemoteVideoUpdateReceived",
    "ResumeReceived",
    "SubscribeAckReceived",
    "SubscribeReceived",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all signaling events."""


# Server side: frames from the client (section 2.2, direction C→S).


@dataclass(frozen=True, slots=True)
class JoinReceived(Event):
    """The client sent JOIN (section 3.2). Reply with JOIN_ACK (optional), then INDEX."""

    audio_session_id: int | None
    """Random per signaling client, reused across reconnects of the same tab: a different
    value for a known attendee means another device (send AUDIO_STATUS 301 to the old one)."""
    protocol_version: int
    """2 for the JS client (the schema default)."""
    flags: int
    """OR of :class:`~signaling.messages.JoinFlags`; the JS client sends 2."""
    max_num_of_videos: int | None
    client_details: ClientDetails
    wants_compressed_sdp: bool
    server_side_network_adaption: ServerSideNetworkAdaption | None
    supported_server_side_network_adaptions: tuple[ServerSideNetworkAdaption, ...]
    wants_all_temporal_layers_in_index: bool
    disable_periodic_keyframe_request_on_content_sender: bool


@dataclass(frozen=True, slots=True)
class SubscribeReceived(Event):
    """The client sent SUBSCRIBE: the initial offer or a renegotiation (section 3.3).

    Reply with :meth:`~signaling.session.SignalingSession.send_subscribe_ack`.
    """

    duplex: StreamServiceType
    """RX, or DUPLEX when the local camera is on (RX when absent, the schema default)."""
    sdp_offer: str | None
    """The browser's complete offer, candidates included (no trickle ICE)."""
    compressed_sdp_offer: bytes | None
    """Raw-DEFLATE offer, only if JOIN_ACK enabled compression (Carillon does not)."""
    send_streams: tuple[StreamDescriptor, ...]
    """Entry 0 is the audio descriptor; video descriptors follow when duplex is DUPLEX."""
    receive_stream_ids: tuple[int, ...]
    """One per video m-line in m-line order; 0 means "nothing on this m-line"."""
    audio_host: str | None
    audio_checkin: bool
    audio_muted: bool | None
    """The client's current local mute state."""
    video_subscription_configuration: tuple[VideoSubscriptionConfiguration, ...]


@dataclass(frozen=True, slots=True)
class LeaveReceived(Event):
    """The client sent LEAVE (section 6.4); LEAVE_ACK has been queued unless disabled."""


@dataclass(frozen=True, slots=True)
class AudioMuteChanged(Event):
    """The client sent AUDIO_CONTROL (section 5.3); broadcast it as AUDIO_STREAM_ID_INFO."""

    muted: bool


@dataclass(frozen=True, slots=True)
class DataMessagesReceived(Event):
    """A DATA_MESSAGE frame arrived (section 5.4).

    On the server, ``messages`` holds the messages that passed the checks, stripped of any
    sender fields the client wrote, and ``rejected`` the others. On the client, ``messages``
    is what the server fanned out and ``rejected`` is empty.
    """

    messages: tuple[DataMessage, ...]
    rejected: tuple[RejectedDataMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class PauseReceived(Event):
    """PAUSE (section 4.6): C→S ``stream_ids`` to stop forwarding; S→C ``group_ids``."""

    stream_ids: tuple[int, ...]
    group_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ResumeReceived(Event):
    """RESUME (section 4.6): C→S ``stream_ids`` to forward again (PLI them); S→C ``group_ids``."""

    stream_ids: tuple[int, ...]
    group_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RemoteVideoUpdateReceived(Event):
    """REMOTE_VIDEO_UPDATE (section 4.5): change what is forwarded on m-lines without SDP."""

    added_or_updated: tuple[VideoSubscriptionConfiguration, ...]
    removed_mids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClientMetricsReceived(Event):
    """CLIENT_METRIC, about once per second (section 2.2). The server may ignore it."""

    global_metrics: Mapping[int, float]
    """``SdkMetric.Type`` value → value."""
    stream_metrics: tuple[StreamMetrics, ...]


@dataclass(frozen=True, slots=True)
class MeetingSessionTimingReceived(Event):
    """MEETING_SESSION_TIMING join-latency telemetry (section 2.2). The server may ignore it."""

    timings: Mapping[str, tuple[Mapping[str, int | bool], ...]]
    """Repeated field name (``signaling``, ``remote_audio``, …) → the entries, each a mapping
    of the fields present on the wire."""


@dataclass(frozen=True, slots=True)
class FrameRejected(Event):
    """A frame was malformed or not allowed in the current state; it was dropped.

    Before the join completes the session also closes (see :class:`CloseInitiated`).
    """

    reason: str
    """The exact error message, for logs."""
    frame_type: FrameType | None
    """The frame type, when the frame decoded far enough to have one."""


@dataclass(frozen=True, slots=True)
class CloseInitiated(Event):
    """The session decided by itself to close the socket (protocol error or timeout).

    Flush ``frames_to_send()`` and close with ``code``; ``close_code()`` returns it too.
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The WebSocket is closed (``receive_close()`` was called)."""

    code: int | None
    """The close code, if the shell knows it."""
    after_leave: bool
    """True if the client sent LEAVE first: a clean leave, no reconnect grace needed
    (section 6.4)."""


# Client side: frames from the server (section 2.2, direction S→C).


@dataclass(frozen=True, slots=True)
class JoinAckReceived(Event):
    """JOIN_ACK (section 3.2)."""

    turn_credentials: TurnCredentials | None
    video_subscription_limit: int | None
    wants_compressed_sdp: bool | None
    default_server_side_network_adaption: ServerSideNetworkAdaption | None


@dataclass(frozen=True, slots=True)
class IndexReceived(Event):
    """INDEX: the full list of remote video sources (section 3.2)."""

    sources: tuple[StreamDescriptor, ...]
    at_capacity: bool | None
    paused_at_source_ids: tuple[int, ...]
    num_participants: int | None
    supported_receive_codec_intersection: tuple[VideoCodecCapability, ...]


@dataclass(frozen=True, slots=True)
class SubscribeAckReceived(Event):
    """SUBSCRIBE_ACK (section 3.3)."""

    duplex: StreamServiceType | None
    sdp_answer: str | None
    compressed_sdp_answer: bytes | None
    tracks: tuple[TrackMapping, ...]
    allocations: tuple[StreamAllocation, ...]


@dataclass(frozen=True, slots=True)
class AudioStreamIdInfoReceived(Event):
    """AUDIO_STREAM_ID_INFO: roster, presence and mute (section 5.1)."""

    streams: tuple[AudioStreamIdInfo, ...]


@dataclass(frozen=True, slots=True)
class AudioMetadataReceived(Event):
    """AUDIO_METADATA: volumes and signal strengths (section 5.2)."""

    attendee_states: tuple[AudioAttendeeState, ...]


@dataclass(frozen=True, slots=True)
class AudioStatusReceived(Event):
    """AUDIO_STATUS (section 6.2)."""

    status: int | None


@dataclass(frozen=True, slots=True)
class BitratesReceived(Event):
    """BITRATES (section 4.4)."""

    bitrates: tuple[Bitrate, ...]
    server_available_outgoing_bitrate: int | None
    """In kbps."""


@dataclass(frozen=True, slots=True)
class PongReceived(Event):
    """A PONG answering one of our pings (section 5.6)."""

    ping_id: int
    timestamp_ms: int
    """The sender's clock, epoch ms; the JS client uses it as server time."""


@dataclass(frozen=True, slots=True)
class LeaveAckReceived(Event):
    """LEAVE_ACK (section 6.4)."""


@dataclass(frozen=True, slots=True)
class NotificationReceived(Event):
    """NOTIFICATION (section 6.2); only logged by the JS client."""

    level: NotificationLevel
    message: str | None


@dataclass(frozen=True, slots=True)
class ErrorStatusReceived(Event):
    """A frame carried ``error.status`` (section 6.2). Emitted before the frame's own event."""

    frame_type: FrameType
    status: int | None
    description: str | None

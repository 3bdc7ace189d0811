"""The Chime SDK signaling protocol, sans I/O (see ../shared/spec/chime-signaling-protocol.md).

* :mod:`signaling.codec`: one binary WebSocket message ↔ one ``SdkSignalFrame``
  (``0x05`` + proto2, schema in ``signaling/proto/signaling.proto``).
* :mod:`signaling.session`: :class:`SignalingSession`, the server side of one connection.
* :mod:`signaling.client_session`: :class:`ClientSignalingSession`, the client side, for tests
  and bots.
* :mod:`signaling.messages` / :mod:`signaling.events`: the plain Python shapes of payloads
  and the events the sessions emit.
* :mod:`signaling.states`: the table of what each session state allows.

Errors come from the one exception tree in :mod:`mediaserver.errors`; the ones this package
raises are re-exported here.
"""

from mediaserver.errors import LocalProtocolError, MalformedMessage
from signaling.client_session import ClientSignalingSession
from signaling.codec import (
    FRAME_TYPE_RTC,
    MAX_FRAME_SIZE,
    decode_frame,
    encode_frame,
    new_frame,
)
from signaling.events import (
    AudioMetadataReceived,
    AudioMuteChanged,
    AudioStatusReceived,
    AudioStreamIdInfoReceived,
    BitratesReceived,
    ClientMetricsReceived,
    CloseInitiated,
    ConnectionClosed,
    DataMessagesReceived,
    ErrorStatusReceived,
    Event,
    FrameRejected,
    IndexReceived,
    JoinAckReceived,
    JoinReceived,
    LeaveAckReceived,
    LeaveReceived,
    MeetingSessionTimingReceived,
    NotificationReceived,
    PauseReceived,
    PongReceived,
    RemoteVideoUpdateReceived,
    ResumeReceived,
    SubscribeAckReceived,
    SubscribeReceived,
)
from signaling.messages import (
    AudioAttendeeState,
    AudioStatus,
    AudioStreamIdInfo,
    Bitrate,
    ClientDetails,
    CloseCode,
    DataMessage,
    FrameType,
    JoinFlags,
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
    VideoQualityAdaptationPreference,
    VideoSubscriptionConfiguration,
)
from signaling.session import SignalingSession, WallClock, validate_data_message
from signaling.states import SessionState

__all__ = [
    "FRAME_TYPE_RTC",
    "MAX_FRAME_SIZE",
    "AudioAttendeeState",
    "AudioMetadataReceived",
    "AudioMuteChanged",
    "AudioStatus",
    "AudioStatusReceived",
    "AudioStreamIdInfo",
    "AudioStreamIdInfoReceived",
    "Bitrate",
    "BitratesReceived",
    "ClientDetails",
    "ClientMetricsReceived",
    "ClientSignalingSession",
    "CloseCode",
    "CloseInitiated",
    "ConnectionClosed",
    "DataMessage",
    "DataMessagesReceived",
    "ErrorStatusReceived",
    "Event",
    "FrameRejected",
    "FrameType",
    "IndexReceived",
    "JoinAckReceived",
    "JoinFlags",
    "JoinReceived",
    "LeaveAckReceived",
    "LeaveReceived",
    "LocalProtocolError",
    "MalformedMessage",
    "MediaType",
    "MeetingSessionTimingReceived",
    "NotificationLevel",
    "NotificationReceived",
    "PauseReceived",
    "PongReceived",
    "RejectedDataMessage",
    "RemoteVideoUpdateReceived",
    "ResumeReceived",
    "ServerSideNetworkAdaption",
    "SessionState",
    "SignalingSession",
    "StreamAllocation",
    "StreamDescriptor",
    "StreamMetrics",
    "StreamServiceType",
    "SubscribeAckReceived",
    "SubscribeReceived",
    "TrackMapping",
    "TurnCredentials",
    "VideoCodecCapability",
    "VideoQualityAdaptationPreference",
    "VideoSubscriptionConfiguration",
    "WallClock",
    "decode_frame",
    "encode_frame",
    "new_frame",
    "validate_data_message",
]

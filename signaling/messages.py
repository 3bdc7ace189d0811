"""Plain Python shapes of the signaling payloads (``chime-signaling-protocol.md`` section 2.3).

The gateway never sees a protobuf object: events and commands of
:class:`signaling.session.SignalingSession` use the enums and slotted dataclasses defined
here. Each dataclass mirrors one protobuf sub-message and converts with ``from_pb()`` and
``to_pb()``.

proto2 presence is kept (section 0, item 3): an optional scalar that is absent on the wire is
``None`` here, and ``to_pb()`` writes only fields that are not ``None``. This matters for
``AudioStreamIdInfo.muted`` (present-and-false means "unmuted", absent means "no mute
change") and ``StreamDescriptor.media_type`` (absent decodes as AUDIO on the client).

String fields that were not valid UTF-8 on the wire make ``from_pb()`` raise
:class:`~mediaserver.errors.MalformedMessage`; the codec checks this up front, so a frame that
:func:`signaling.codec.decode_frame` accepted always converts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mediaserver.errors import MalformedMessage
from signaling import signaling_pb2 as pb

__all__ = [
    "AudioAttendeeState",
    "AudioStatus",
    "AudioStreamIdInfo",
    "Bitrate",
    "ClientDetails",
    "CloseCode",
    "DataMessage",
    "FrameType",
    "JoinFlags",
    "MediaType",
    "NotificationLevel",
    "RejectedDataMessage",
    "ServerSideNetworkAdaption",
    "StreamAllocation",
    "StreamDescriptor",
    "StreamMetrics",
    "StreamServiceType",
    "TrackMapping",
    "TurnCredentials",
    "VideoCodecCapability",
    "VideoQualityAdaptationPreference",
    "VideoSubscriptionConfiguration",
    "metrics_from_pb",
]


# Enums. Values are wire facts from section 2.3; a test checks them against the schema.


class FrameType(enum.IntEnum):
    """``SdkSignalFrame.Type``: which payload field a frame carries (section 2.2)."""

    JOIN = 1
    JOIN_ACK = 2
    SUBSCRIBE = 3
    SUBSCRIBE_ACK = 4
    INDEX = 5
    PAUSE = 7
    RESUME = 8
    LEAVE = 9
    LEAVE_ACK = 10
    BITRATES = 13
    AUDIO_CONTROL = 16
    AUDIO_METADATA = 17
    AUDIO_STREAM_ID_INFO = 18
    PING_PONG = 19
    AUDIO_STATUS = 20
    CLIENT_METRIC = 21
    DATA_MESSAGE = 22
    REMOTE_VIDEO_UPDATE = 24
    PRIMARY_MEETING_JOIN = 25
    PRIMARY_MEETING_JOIN_ACK = 26
    PRIMARY_MEETING_LEAVE = 27
    NOTIFICATION = 34
    MEETING_SESSION_TIMING = 43


class JoinFlags(enum.IntFlag):
    """``SdkJoinFlags``, OR-ed into ``SdkJoinFrame.flags``. The JS client sends 2 (section 3.2)."""

    HAS_STREAM_UPDATE = 2
    COMPLETE_VIDEO_SOURCES_LIST = 16
    EXCLUDE_SELF_CONTENT_IN_INDEX = 32


class ServerSideNetworkAdaption(enum.IntEnum):
    """``SdkServerSideNetworkAdaption`` (section 3.2, JOIN_ACK quirk)."""

    DEFAULT = 1
    NONE = 2
    BANDWIDTH_PROBING = 3
    BANDWIDTH_PROBING_AND_VIDEO_QUALITY_ADAPTION = 4


class StreamServiceType(enum.IntEnum):
    """``SdkStreamServiceType``: the ``duplex`` of SUBSCRIBE (section 3.3)."""

    RX = 1
    TX = 2
    DUPLEX = 3


class MediaType(enum.IntEnum):
    """``SdkStreamMediaType``."""

    AUDIO = 1
    VIDEO = 2


class VideoQualityAdaptationPreference(enum.IntEnum):
    """``SdkVideoQualityAdaptationPreference`` (section 4.5)."""

    BALANCED = 1
    MAINTAIN_FRAMERATE = 2
    MAINTAIN_RESOLUTION = 3


class VideoCodecCapability(enum.IntEnum):
    """``SdkVideoCodecCapability``: ``INDEX.supported_receive_codec_intersection`` (section 4.2)."""

    VP8 = 1
    H264_BASELINE_PROFILE = 2
    H264_CONSTRAINED_BASELINE_PROFILE = 3
    H264_MAIN_PROFILE = 4
    H264_HIGH_PROFILE = 5
    H264_CONSTRAINED_HIGH_PROFILE = 6
    VP9_PROFILE_0 = 8
    AV1_MAIN_PROFILE = 11


class NotificationLevel(enum.IntEnum):
    """``SdkNotificationFrame.NotificationLevel``; the client only logs it (section 6.2)."""

    INFO = 1
    WARNING = 2
    ERROR = 3


class AudioStatus(enum.IntEnum):
    """``AUDIO_STATUS.audio_status`` values with a meaning on the client (section 6.2).

    Any other integer may be sent too: other 2xx is OK, other non-2xx is AudioDisconnected.
    """

    OK = 200
    JOINED_FROM_ANOTHER_DEVICE = 301
    DISCONNECT_AUDIO = 302
    AUTHENTICATION_REJECTED = 403
    CALL_AT_CAPACITY = 409
    MEETING_ENDED = 410
    ATTENDEE_REMOVED = 411
    INTERNAL_SERVER_ERROR = 500
    SERVICE_UNAVAILABLE = 503


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (section 6.1).

    Before the first INDEX: 4410 is terminal MeetingEnded, 45xx makes the client retry and
    any other code is terminal SignalingBadRequest. After the join only 1006 and 45xx have an
    effect, so a session is ended with AUDIO_STATUS first (section 6.2).
    """

    NORMAL = 1000
    """Orderly close after LEAVE / LEAVE_ACK (section 6.4)."""
    BAD_REQUEST = 4400
    """The client broke the protocol before its JOIN completed (SignalingBadRequest)."""
    ATTENDEE_UNAVAILABLE = 4403
    """Bad or deleted join token, or attendee removed (Chime's "attendee unavailable")."""
    IDLE_TIMEOUT = 4408
    """No frame (not even a PING) arrived for too long (Carillon's choice of 4xxx code)."""
    MEETING_ENDED = 4410
    """The meeting does not exist or has ended."""
    INTERNAL_ERROR = 4500
    """Server failure; the client reconnects with back-off."""


# Conversion helpers.

_E = TypeVar("_E", bound=enum.IntEnum)


def _opt(msg: Any, name: str) -> Any:
    """Return ``msg.<name>`` if present on the wire, else ``None`` (proto2 presence)."""
    return getattr(msg, name) if msg.HasField(name) else None


def _opt_str(msg: Any, name: str) -> str | None:
    """Like :func:`_opt` for a string field; invalid UTF-8 is a malformed message."""
    if not msg.HasField(name):
        return None
    value = getattr(msg, name)
    if not isinstance(value, str):
        raise MalformedMessage(f"field {name} is not valid UTF-8")
    return value


def _strs(values: Any, name: str) -> tuple[str, ...]:
    """Convert a repeated string field, rejecting invalid UTF-8."""
    out = tuple(values)
    for value in out:
        if not isinstance(value, str):
            raise MalformedMessage(f"field {name} is not valid UTF-8")
    return out


def _opt_enum(msg: Any, name: str, enum_type: type[_E]) -> _E | None:
    """Return an optional enum field as ``enum_type``, or ``None`` if absent.

    proto2 enums are closed, so a value that is on the wire but unknown to the schema lands
    in the unknown fields and reads as absent here.
    """
    return enum_type(getattr(msg, name)) if msg.HasField(name) else None


def _fill(msg: Any, **fields: Any) -> None:
    """Set every field whose value is not ``None``."""
    for name, value in fields.items():
        if value is not None:
            setattr(msg, name, value)


# Payload dataclasses.


@dataclass(frozen=True, slots=True)
class ClientDetails:
    """``SdkClientDetails`` sent in JOIN (section 3.2). Every field is optional."""

    app_name: str | None = None
    app_version: str | None = None
    device_model: str | None = None
    device_make: str | None = None
    platform_name: str | None = None
    platform_version: str | None = None
    client_source: str | None = None
    """``"amazon-chime-sdk-js"`` for the browser library."""
    chime_sdk_version: str | None = None
    client_utc_offset: str | None = None
    os_name: str | None = None
    os_version: str | None = None

    _FIELDS = (
        "app_name",
        "app_version",
        "device_model",
        "device_make",
        "platform_name",
        "platform_version",
        "client_source",
        "chime_sdk_version",
        "client_utc_offset",
        "os_name",
        "os_version",
    )

    @classmethod
    def from_pb(cls, msg: pb.SdkClientDetails) -> ClientDetails:
        """Convert from the protobuf message."""
        return cls(**{name: _opt_str(msg, name) for name in cls._FIELDS})

    def to_pb(self) -> pb.SdkClientDetails:
        """Convert to the protobuf message."""
        msg = pb.SdkClientDetails()
        _fill(msg, **{name: getattr(self, name) for name in self._FIELDS})
        return msg


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """``SdkTurnCredentials`` in JOIN_ACK. Non-empty ``uris`` force relay-only ICE (section 3.2)."""

    username: str | None = None
    password: str | None = None
    ttl: int | None = None
    uris: tuple[str, ...] = ()

    @classmethod
    def from_pb(cls, msg: pb.SdkTurnCredentials) -> TurnCredentials:
        """Convert from the protobuf message."""
        return cls(
            username=_opt_str(msg, "username"),
            password=_opt_str(msg, "password"),
            ttl=_opt(msg, "ttl"),
            uris=_strs(msg.uris, "uris"),
        )

    def to_pb(self) -> pb.SdkTurnCredentials:
        """Convert to the protobuf message."""
        msg = pb.SdkTurnCredentials()
        _fill(msg, username=self.username, password=self.password, ttl=self.ttl)
        msg.uris.extend(self.uris)
        return msg


@dataclass(frozen=True, slots=True)
class StreamDescriptor:
    """``SdkStreamDescriptor``: a send stream in SUBSCRIBE or a video source in INDEX.

    In an INDEX, ``media_type`` must be VIDEO on the wire (section 3.2);
    :meth:`signaling.session.SignalingSession.send_index` fills it in when it is ``None``.
    """

    stream_id: int | None = None
    group_id: int | None = None
    attendee_id: str | None = None
    external_user_id: str | None = None
    media_type: MediaType | None = None
    track_label: str | None = None
    max_bitrate_kbps: int | None = None
    avg_bitrate_bps: int | None = None
    framerate: int | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkStreamDescriptor) -> StreamDescriptor:
        """Convert from the protobuf message."""
        return cls(
            stream_id=_opt(msg, "stream_id"),
            group_id=_opt(msg, "group_id"),
            attendee_id=_opt_str(msg, "attendee_id"),
            external_user_id=_opt_str(msg, "external_user_id"),
            media_type=_opt_enum(msg, "media_type", MediaType),
            track_label=_opt_str(msg, "track_label"),
            max_bitrate_kbps=_opt(msg, "max_bitrate_kbps"),
            avg_bitrate_bps=_opt(msg, "avg_bitrate_bps"),
            framerate=_opt(msg, "framerate"),
            width=_opt(msg, "width"),
            height=_opt(msg, "height"),
        )

    def to_pb(self) -> pb.SdkStreamDescriptor:
        """Convert to the protobuf message."""
        msg = pb.SdkStreamDescriptor()
        _fill(
            msg,
            stream_id=self.stream_id,
            group_id=self.group_id,
            attendee_id=self.attendee_id,
            external_user_id=self.external_user_id,
            media_type=None if self.media_type is None else int(self.media_type),
            track_label=self.track_label,
            max_bitrate_kbps=self.max_bitrate_kbps,
            avg_bitrate_bps=self.avg_bitrate_bps,
            framerate=self.framerate,
            width=self.width,
            height=self.height,
        )
        return msg


@dataclass(frozen=True, slots=True)
class StreamAllocation:
    """``SdkStreamAllocation`` in SUBSCRIBE_ACK: ids given to a video send stream (section 3.3)."""

    track_label: str | None = None
    stream_id: int | None = None
    group_id: int | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkStreamAllocation) -> StreamAllocation:
        """Convert from the protobuf message."""
        return cls(
            track_label=_opt_str(msg, "track_label"),
            stream_id=_opt(msg, "stream_id"),
            group_id=_opt(msg, "group_id"),
        )

    def to_pb(self) -> pb.SdkStreamAllocation:
        """Convert to the protobuf message."""
        msg = pb.SdkStreamAllocation()
        _fill(msg, track_label=self.track_label, stream_id=self.stream_id, group_id=self.group_id)
        return msg


@dataclass(frozen=True, slots=True)
class TrackMapping:
    """``SdkTrackMapping`` in SUBSCRIBE_ACK: ``track_label "v_<mid>"`` → ``stream_id``.

    One per receive m-line (section 3.3).
    """

    stream_id: int | None = None
    ssrc: int | None = None
    track_label: str | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkTrackMapping) -> TrackMapping:
        """Convert from the protobuf message."""
        return cls(
            stream_id=_opt(msg, "stream_id"),
            ssrc=_opt(msg, "ssrc"),
            track_label=_opt_str(msg, "track_label"),
        )

    def to_pb(self) -> pb.SdkTrackMapping:
        """Convert to the protobuf message."""
        msg = pb.SdkTrackMapping()
        _fill(msg, stream_id=self.stream_id, ssrc=self.ssrc, track_label=self.track_label)
        return msg


@dataclass(frozen=True, slots=True)
class Bitrate:
    """``SdkBitrate`` in BITRATES: the average bitrate of one source stream (section 4.4)."""

    source_stream_id: int
    avg_bitrate_bps: int

    @classmethod
    def from_pb(cls, msg: pb.SdkBitrate) -> Bitrate:
        """Convert from the protobuf message (absent fields read as 0)."""
        return cls(source_stream_id=msg.source_stream_id, avg_bitrate_bps=msg.avg_bitrate_bps)

    def to_pb(self) -> pb.SdkBitrate:
        """Convert to the protobuf message."""
        return pb.SdkBitrate(
            source_stream_id=self.source_stream_id, avg_bitrate_bps=self.avg_bitrate_bps
        )


@dataclass(frozen=True, slots=True)
class AudioAttendeeState:
    """``SdkAudioAttendeeState`` in AUDIO_METADATA (section 5.2).

    ``volume`` is a level in negative dB (14 or less is full scale, 42 or more is silence);
    ``signal_strength`` is 0, 1 or 2. ``muted`` is not read by the client.
    """

    audio_stream_id: int
    volume: int | None = None
    signal_strength: int | None = None
    muted: bool | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkAudioAttendeeState) -> AudioAttendeeState:
        """Convert from the protobuf message."""
        return cls(
            audio_stream_id=msg.audio_stream_id,
            volume=_opt(msg, "volume"),
            signal_strength=_opt(msg, "signal_strength"),
            muted=_opt(msg, "muted"),
        )

    def to_pb(self) -> pb.SdkAudioAttendeeState:
        """Convert to the protobuf message."""
        msg = pb.SdkAudioAttendeeState(audio_stream_id=self.audio_stream_id)
        _fill(msg, volume=self.volume, signal_strength=self.signal_strength, muted=self.muted)
        return msg


@dataclass(frozen=True, slots=True)
class AudioStreamIdInfo:
    """``SdkAudioStreamIdInfo``: one roster entry of AUDIO_STREAM_ID_INFO (section 5.1).

    How the client reads it: ``attendee_id`` set → present; ``muted`` set (true *or* false)
    → mute update; neither set → that ``audio_stream_id`` left, ``dropped`` telling whether it
    dropped (true) or left cleanly (false).
    """

    audio_stream_id: int
    attendee_id: str | None = None
    external_user_id: str | None = None
    muted: bool | None = None
    dropped: bool | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkAudioStreamIdInfo) -> AudioStreamIdInfo:
        """Convert from the protobuf message."""
        return cls(
            audio_stream_id=msg.audio_stream_id,
            attendee_id=_opt_str(msg, "attendee_id"),
            external_user_id=_opt_str(msg, "external_user_id"),
            muted=_opt(msg, "muted"),
            dropped=_opt(msg, "dropped"),
        )

    def to_pb(self) -> pb.SdkAudioStreamIdInfo:
        """Convert to the protobuf message."""
        msg = pb.SdkAudioStreamIdInfo(audio_stream_id=self.audio_stream_id)
        _fill(
            msg,
            attendee_id=self.attendee_id,
            external_user_id=self.external_user_id,
            muted=self.muted,
            dropped=self.dropped,
        )
        return msg


@dataclass(frozen=True, slots=True)
class DataMessage:
    """``SdkDataMessagePayload``: one real-time data message (section 5.4).

    From a client only ``topic``, ``data`` and ``lifetime_ms`` are kept: the session drops
    any sender fields a client wrote. To clients the server sets the sender ids and a
    non-zero ``ingest_time_ns`` (epoch ns); ``ingest_time_ns == 0`` tells the sender that the
    message was throttled.
    """

    topic: str
    data: bytes
    lifetime_ms: int | None = None
    sender_attendee_id: str | None = None
    sender_external_user_id: str | None = None
    ingest_time_ns: int | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkDataMessagePayload) -> DataMessage:
        """Convert from the protobuf message (an absent topic reads as ``""``)."""
        return cls(
            topic=_opt_str(msg, "topic") or "",
            data=msg.data,
            lifetime_ms=_opt(msg, "lifetime_ms"),
            sender_attendee_id=_opt_str(msg, "sender_attendee_id"),
            sender_external_user_id=_opt_str(msg, "sender_external_user_id"),
            ingest_time_ns=_opt(msg, "ingest_time_ns"),
        )

    def to_pb(self) -> pb.SdkDataMessagePayload:
        """Convert to the protobuf message."""
        msg = pb.SdkDataMessagePayload(topic=self.topic, data=self.data)
        _fill(
            msg,
            lifetime_ms=self.lifetime_ms,
            sender_attendee_id=self.sender_attendee_id,
            sender_external_user_id=self.sender_external_user_id,
            ingest_time_ns=self.ingest_time_ns,
        )
        return msg


@dataclass(frozen=True, slots=True)
class RejectedDataMessage:
    """A client data message that failed the checks of section 5.4; it is not delivered."""

    topic: str
    """The topic as received (``""`` when absent)."""
    size: int
    """Length of ``data`` in bytes."""
    reason: str
    """Why it was rejected, a sentence for logs."""


@dataclass(frozen=True, slots=True)
class VideoSubscriptionConfiguration:
    """``SdkVideoSubscriptionConfiguration``: one subscribed mid (section 4.5).

    Carried by SUBSCRIBE (field 9) and REMOTE_VIDEO_UPDATE.
    """

    mid: str
    attendee_id: str | None = None
    stream_id: int | None = None
    group_id: int | None = None
    priority: int | None = None
    target_bitrate_kbps: int | None = None
    quality_adaptation_preference: VideoQualityAdaptationPreference | None = None

    @classmethod
    def from_pb(cls, msg: pb.SdkVideoSubscriptionConfiguration) -> VideoSubscriptionConfiguration:
        """Convert from the protobuf message."""
        return cls(
            mid=_opt_str(msg, "mid") or "",
            attendee_id=_opt_str(msg, "attendee_id"),
            stream_id=_opt(msg, "stream_id"),
            group_id=_opt(msg, "group_id"),
            priority=_opt(msg, "priority"),
            target_bitrate_kbps=_opt(msg, "target_bitrate_kbps"),
            quality_adaptation_preference=_opt_enum(
                msg, "quality_adaptation_preference", VideoQualityAdaptationPreference
            ),
        )

    def to_pb(self) -> pb.SdkVideoSubscriptionConfiguration:
        """Convert to the protobuf message."""
        pref = self.quality_adaptation_preference
        msg = pb.SdkVideoSubscriptionConfiguration(mid=self.mid)
        _fill(
            msg,
            attendee_id=self.attendee_id,
            stream_id=self.stream_id,
            group_id=self.group_id,
            priority=self.priority,
            target_bitrate_kbps=self.target_bitrate_kbps,
            quality_adaptation_preference=None if pref is None else int(pref),
        )
        return msg


@dataclass(frozen=True, slots=True)
class StreamMetrics:
    """``SdkStreamMetricFrame``: the client metrics of one stream in CLIENT_METRIC."""

    stream_id: int | None = None
    group_id: int | None = None
    media_type: MediaType | None = None
    metrics: Mapping[int, float] = field(default_factory=dict)
    """``SdkMetric.Type`` value → value. Metrics with an unknown or absent type are skipped."""
    dimensions: Mapping[int, str | bool | int] = field(default_factory=dict)
    """``SdkStreamDimension.Type`` value → the value that is set (string, bool or uint)."""

    @classmethod
    def from_pb(cls, msg: pb.SdkStreamMetricFrame) -> StreamMetrics:
        """Convert from the protobuf message."""
        dimensions: dict[int, str | bool | int] = {}
        for dim in msg.dimensions:
            if not dim.HasField("type"):
                continue
            value = dim.value
            for name in ("string_value", "bool_value", "uint_value"):
                if value.HasField(name):
                    item = getattr(value, name)
                    if name == "string_value" and not isinstance(item, str):
                        raise MalformedMessage("field string_value is not valid UTF-8")
                    dimensions[dim.type] = item
                    break
        return cls(
            stream_id=_opt(msg, "stream_id"),
            group_id=_opt(msg, "group_id"),
            media_type=_opt_enum(msg, "media_type", MediaType),
            metrics=metrics_from_pb(msg.metrics),
            dimensions=dimensions,
        )


def metrics_from_pb(metrics: Any) -> dict[int, float]:
    """Convert repeated ``SdkMetric`` to ``{type: value}``, skipping entries without a type."""
    return {m.type: m.value for m in metrics if m.HasField("type")}

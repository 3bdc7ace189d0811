"""Frame codec: one binary WebSocket message ↔ one ``SdkSignalFrame``.

Framing (``chime-signaling-protocol.md`` section 2.1): byte 0 is the frame type ``0x05``
(``FRAME_TYPE_RTC``), bytes 1 onward are the protobuf-encoded ``SdkSignalFrame``. One frame
per WebSocket message, no length prefix, no batching.

:func:`decode_frame` is the single place where peer bytes enter the signaling package. It
raises only :class:`~mediaserver.errors.MalformedMessage`, for:

* an empty message, or a text message (the protocol is binary only);
* a message longer than :data:`MAX_FRAME_SIZE`;
* a first byte other than ``0x05``;
* bytes that do not parse as ``SdkSignalFrame``, or string fields that are not UTF-8;
* a frame ``type`` that the schema does not know (proto2 enums are closed, so the value lands
  in the unknown fields instead of the ``type`` field);
* missing required fields (``timestamp_ms``, ``type``, ``ping_pong.type``,
  ``ping_pong.ping_id``, ``mid`` of a video subscription configuration);
* a ``type`` whose payload field is absent although that payload carries the frame's
  content (:data:`REQUIRED_PAYLOADS`).

Decisions where the spec leaves room:

* **The legacy type byte 0x02 is rejected.** The JS client *accepts* 0x02 on receive but
  only ever *sends* 0x05 (section 2.1), and no document says what 0x02 frames contain. A
  server that accepted it would be guessing.
* **256 KiB maximum.** The largest legitimate client frame is a SUBSCRIBE carrying a full
  SDP offer: about 3-4 KiB for audio and camera plus about 1.5-2 KiB per receive video m-line,
  so some 60 KiB at the client's limit of 25 subscribed videos (section 4.3), with the
  candidates. Data messages are at most 2 KiB each (section 5.4); CLIENT_METRIC frames are a
  few KiB. 256 KiB leaves four times headroom over the worst SDP yet bounds the memory and
  parse time an attacker can cost us per message.
* **Empty payloads are optional** for LEAVE, LEAVE_ACK, PRIMARY_MEETING_JOIN_ACK and
  PRIMARY_MEETING_LEAVE, whose payload messages have no fields. Every other frame type
  requires its payload field, because its handler reads it (section 2.1: "each handler
  checks ``type`` and then reads the matching field"). The JS client always sets it.
* **Unknown enum values inside payloads are tolerated**: they read as absent, as proto2
  intends. Only the frame ``type`` is checked, because it decides how the frame is read.
* **Unknown fields are tolerated** (forward compatibility with newer clients).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import EncodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from mediaserver.errors import LocalProtocolError, MalformedMessage
from signaling import signaling_pb2 as pb
from signaling.messages import FrameType

__all__ = [
    "FRAME_TYPE_LEGACY",
    "FRAME_TYPE_RTC",
    "MAX_FRAME_SIZE",
    "PAYLOAD_FIELDS",
    "REQUIRED_PAYLOADS",
    "decode_frame",
    "encode_frame",
    "new_frame",
]

FRAME_TYPE_RTC = 0x05
"""Byte 0 of every frame (section 2.1)."""

FRAME_TYPE_LEGACY = 0x02
"""A type byte the JS client tolerates on receive; :func:`decode_frame` rejects it."""

MAX_FRAME_SIZE = 256 * 1024
"""Largest accepted WebSocket message, type byte included (see the module docstring)."""

PAYLOAD_FIELDS: dict[FrameType, str] = {
    FrameType.JOIN: "join",
    FrameType.JOIN_ACK: "joinack",
    FrameType.SUBSCRIBE: "sub",
    FrameType.SUBSCRIBE_ACK: "suback",
    FrameType.INDEX: "index",
    FrameType.PAUSE: "pause",
    FrameType.RESUME: "pause",
    FrameType.LEAVE: "leave",
    FrameType.LEAVE_ACK: "leave_ack",
    FrameType.BITRATES: "bitrates",
    FrameType.AUDIO_CONTROL: "audio_control",
    FrameType.AUDIO_METADATA: "audio_metadata",
    FrameType.AUDIO_STREAM_ID_INFO: "audio_stream_id_info",
    FrameType.PING_PONG: "ping_pong",
    FrameType.AUDIO_STATUS: "audio_status",
    FrameType.CLIENT_METRIC: "client_metric",
    FrameType.DATA_MESSAGE: "data_message",
    FrameType.REMOTE_VIDEO_UPDATE: "remote_video_update",
    FrameType.PRIMARY_MEETING_JOIN: "primary_meeting_join",
    FrameType.PRIMARY_MEETING_JOIN_ACK: "primary_meeting_join_ack",
    FrameType.PRIMARY_MEETING_LEAVE: "primary_meeting_leave",
    FrameType.NOTIFICATION: "notification",
    FrameType.MEETING_SESSION_TIMING: "meeting_session_timing",
}
"""Frame type → name of its payload field in ``SdkSignalFrame`` (section 2.2)."""

_EMPTY_PAYLOADS = frozenset(
    {
        FrameType.LEAVE,
        FrameType.LEAVE_ACK,
        FrameType.PRIMARY_MEETING_JOIN_ACK,
        FrameType.PRIMARY_MEETING_LEAVE,
    }
)

REQUIRED_PAYLOADS: dict[FrameType, str] = {
    t: name for t, name in PAYLOAD_FIELDS.items() if t not in _EMPTY_PAYLOADS
}
"""Frame types whose payload field must be present for the frame to be accepted."""

_TYPE_FIELD_NUMBER = pb.SdkSignalFrame.TYPE_FIELD_NUMBER


def new_frame(frame_type: FrameType, timestamp_ms: int) -> pb.SdkSignalFrame:
    """Return a frame with its two required fields set.

    Args:
        frame_type: the frame type.
        timestamp_ms: epoch milliseconds; the server must set it on every frame (section 2.1).
    """
    return pb.SdkSignalFrame(
        timestamp_ms=timestamp_ms, type=pb.SdkSignalFrame.Type.ValueType(frame_type)
    )


def encode_frame(frame: pb.SdkSignalFrame) -> bytes:
    """Serialize ``frame`` into one binary WebSocket message: ``0x05`` + protobuf.

    Args:
        frame: a frame with ``timestamp_ms`` and ``type`` set (use :func:`new_frame`).

    Returns:
        The message bytes.

    Raises:
        LocalProtocolError: a required field is missing (this is a bug on our side).
    """
    if not frame.IsInitialized():
        missing = ", ".join(_missing_fields(frame))
        raise LocalProtocolError(f"cannot encode frame: missing required fields: {missing}")
    try:
        body = frame.SerializeToString()
    except EncodeError as exc:  # pragma: no cover - IsInitialized() is checked above
        raise LocalProtocolError(f"cannot encode frame: {exc}") from exc
    return bytes((FRAME_TYPE_RTC,)) + body


def decode_frame(data: bytes | str) -> pb.SdkSignalFrame:
    """Parse one WebSocket message into a frame, or reject it.

    Args:
        data: the message as the WebSocket library delivered it (``str`` for a text frame).

    Returns:
        The frame. Its ``type`` is a known :class:`~signaling.messages.FrameType` and the
        payload field that type needs is present.

    Raises:
        MalformedMessage: for every reason listed in the module docstring, and nothing else.
    """
    if isinstance(data, str):
        raise MalformedMessage("text frame; signaling frames are binary")
    if not data:
        raise MalformedMessage("empty frame")
    if len(data) > MAX_FRAME_SIZE:
        raise MalformedMessage(f"frame too large: {len(data)} bytes (max {MAX_FRAME_SIZE})")
    if data[0] != FRAME_TYPE_RTC:
        raise MalformedMessage(f"unexpected frame type byte 0x{data[0]:02x} (expected 0x05)")
    frame = pb.SdkSignalFrame()
    try:
        frame.ParseFromString(data[1:])
    except Exception as exc:  # DecodeError, or anything the runtime raises on hostile input
        raise MalformedMessage("frame does not parse as SdkSignalFrame") from exc
    if not frame.HasField("type"):
        # proto2 closed enum: an unknown value is kept as an unknown varint field 2.
        unknown_fields = UnknownFieldSet(frame)
        for i in range(len(unknown_fields)):
            unknown = unknown_fields[i]
            if unknown.field_number == _TYPE_FIELD_NUMBER and isinstance(unknown.data, int):
                raise MalformedMessage(f"unknown frame type {unknown.data}")
    if not frame.IsInitialized():
        missing = ", ".join(_missing_fields(frame))
        raise MalformedMessage(f"missing required fields: {missing}")
    frame_type = FrameType(frame.type)
    payload = REQUIRED_PAYLOADS.get(frame_type)
    if payload is not None and not _has_field(frame, payload):
        raise MalformedMessage(f"{frame_type.name} frame without its {payload} field")
    _check_strings(frame)
    return frame


def _missing_fields(msg: Any) -> list[str]:
    """Paths of the missing required fields (the runtime method is not in the stubs)."""
    errors: list[str] = msg.FindInitializationErrors()
    return errors


def _has_field(msg: Any, name: str) -> bool:
    """``msg.HasField(name)`` for a field name only known at run time."""
    present: bool = msg.HasField(name)
    return present


def _check_strings(msg: Any, path: str = "") -> None:
    """Reject string fields that are not UTF-8.

    proto2 does not validate UTF-8 when parsing; the runtime then hands back ``bytes`` for such
    a field, which would break every consumer typed ``str``.
    """
    for fd, value in msg.ListFields():
        if fd.type == FieldDescriptor.TYPE_STRING:
            values = value if fd.is_repeated else (value,)
            if not all(isinstance(v, str) for v in values):
                raise MalformedMessage(f"field {path}{fd.name} is not valid UTF-8")
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if fd.is_repeated else (value,):
                _check_strings(item, f"{path}{fd.name}.")

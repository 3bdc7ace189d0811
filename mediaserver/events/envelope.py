"""The EventBridge envelope of a meeting event (meetings-digest.md §6.2), sans I/O.

Every event, whatever the target (webhook, SQS, SNS, the events log), is the same JSON
object, shaped like the examples of the developer guide [L1904-1922]::

    {"version": "0", "id": "<uuid>", "source": "aws.chime", "account": "<12 digits>",
     "region": "<media region>", "detail-type": "Chime Meeting State Change",
     "time": "2026-01-02T03:04:05Z", "resources": [],
     "detail": {"version": "0", "eventType": "chime:AttendeeJoined",
                "timestamp": <epoch ms>, "meetingId": ..., "attendeeId": ...,
                "externalUserId": ..., "networkType": "Voip",
                "externalMeetingId": ..., "mediaRegion": ...}}

The guide shows ``id`` only in some examples; EventBridge always sets it, so Carillon
always does (a fresh UUID per event, also usable to deduplicate retried deliveries).
``timestamp`` is epoch milliseconds. The detail keys follow the order of the examples.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DETAIL_TYPE",
    "NETWORK_TYPE",
    "SOURCE",
    "AttendeeInfo",
    "MeetingEvent",
    "MeetingInfo",
    "build_event",
    "format_time",
]

SOURCE = "aws.chime"
DETAIL_TYPE = "Chime Meeting State Change"
NETWORK_TYPE = "Voip"
"""The only ``networkType`` the guide shows; every Carillon connection is VoIP (WebRTC)."""
VERSION = "0"


@dataclass(frozen=True, slots=True)
class MeetingInfo:
    """What an event needs to know about its meeting."""

    meeting_id: str
    external_meeting_id: str
    media_region: str
    account_id: str = "000000000000"
    sqs_queue_arn: str | None = None
    """``NotificationsConfiguration.SqsQueueArn`` of CreateMeeting, if any."""
    sns_topic_arn: str | None = None
    """``NotificationsConfiguration.SnsTopicArn`` of CreateMeeting, if any."""


@dataclass(frozen=True, slots=True)
class AttendeeInfo:
    """The attendee an event is about (``attendee_id`` ends in ``#content`` for a share)."""

    attendee_id: str
    external_user_id: str


@dataclass(frozen=True, slots=True)
class MeetingEvent:
    """One event: its envelope and the meeting it belongs to (for routing)."""

    envelope: dict[str, Any]
    meeting: MeetingInfo

    @property
    def event_id(self) -> str:
        return str(self.envelope["id"])

    @property
    def event_type(self) -> str:
        """The ``detail.eventType``, e.g. ``chime:AttendeeJoined``."""
        return str(self.envelope["detail"]["eventType"])

    @property
    def name(self) -> str:
        """The event type without its ``chime:`` prefix, e.g. ``AttendeeJoined``."""
        return self.event_type.removeprefix("chime:")

    @property
    def attendee_id(self) -> str | None:
        value = self.envelope["detail"].get("attendeeId")
        return None if value is None else str(value)

    def body(self) -> bytes:
        """The JSON text delivered to every target (compact, UTF-8)."""
        return json.dumps(self.envelope, separators=(",", ":"), ensure_ascii=False).encode()


def format_time(wall: float) -> str:
    """Epoch seconds as the envelope's ``time``: ``yyyy-mm-ddThh:mm:ssZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def build_event(
    name: str,
    meeting: MeetingInfo,
    *,
    wall: float,
    event_id: str,
    attendee: AttendeeInfo | None = None,
    network_type: str | None = None,
    extra: dict[str, Any] | None = None,
) -> MeetingEvent:
    """Build one event envelope.

    Args:
        name: the event name without ``chime:`` (``MeetingStarted``, ``AttendeeLeft``...).
        meeting: the meeting.
        wall: epoch seconds of the event (``time`` and ``detail.timestamp``).
        event_id: the envelope ``id`` (a UUID).
        attendee: adds ``attendeeId`` and ``externalUserId``.
        network_type: adds ``networkType`` (join, leave and drop events).
        extra: more detail fields, added after the base ones (``success``,
            ``attendeeCapabilities``, ``transcriptionRegion``...).
    """
    detail: dict[str, Any] = {
        "version": VERSION,
        "eventType": f"chime:{name}",
        "timestamp": int(wall * 1000),
        "meetingId": meeting.meeting_id,
    }
    if attendee is not None:
        detail["attendeeId"] = attendee.attendee_id
        detail["externalUserId"] = attendee.external_user_id
    if network_type is not None:
        detail["networkType"] = network_type
    detail["externalMeetingId"] = meeting.external_meeting_id
    detail["mediaRegion"] = meeting.media_region
    if extra:
        detail.update(extra)
    envelope: dict[str, Any] = {
        "version": VERSION,
        "id": event_id,
        "source": SOURCE,
        "account": meeting.account_id,
        "region": meeting.media_region,
        "detail-type": DETAIL_TYPE,
        "time": format_time(wall),
        "resources": [],
        "detail": detail,
    }
    return MeetingEvent(envelope, meeting)

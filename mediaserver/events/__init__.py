"""Meeting events (meetings-digest.md §6): the catalogue, the envelope and their delivery.

* :mod:`~mediaserver.events.envelope`: the EventBridge-shaped JSON of one event (pure).
* :mod:`~mediaserver.events.catalogue`: the event types and the tracker that derives them
  from registry and signaling happenings (pure).
* :mod:`~mediaserver.events.queue`: bounded per-meeting ordered queues and backoff (pure).
* :mod:`~mediaserver.events.sink`, :mod:`~mediaserver.events.webhook`,
  :mod:`~mediaserver.events.aws`: delivery shells (aiohttp webhooks, boto3 SQS/SNS).
* :mod:`~mediaserver.events.log`: the rotated ``events.jsonl``.
* :mod:`~mediaserver.events.bus`: the hub the server wires in.
"""

from mediaserver.events.bus import EventBus, meeting_info, sends_video
from mediaserver.events.catalogue import EventType, MeetingEventTracker
from mediaserver.events.envelope import AttendeeInfo, MeetingEvent, MeetingInfo, build_event
from mediaserver.events.webhook import SIGNATURE_HEADER, sign, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "AttendeeInfo",
    "EventBus",
    "EventType",
    "MeetingEvent",
    "MeetingEventTracker",
    "MeetingInfo",
    "build_event",
    "meeting_info",
    "sends_video",
    "sign",
    "verify_signature",
]

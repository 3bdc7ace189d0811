"""Meeting registry: meetings, attendees, join tokens and lifecycle, sans I/O."""

from mediaserver.registry.events import (
    AttendeeCapabilitiesUpdated,
    AttendeeCreated,
    AttendeeDeleted,
    MeetingCreated,
    MeetingEnded,
    RegistryEvent,
)
from mediaserver.registry.models import CONTENT_SUFFIX, Attendee, Capabilities, Meeting
from mediaserver.registry.registry import JoinGrant, Limits, MeetingRegistry, derive_account_id
from mediaserver.registry.store import MeetingStore, SqliteStore

__all__ = [
    "CONTENT_SUFFIX",
    "Attendee",
    "AttendeeCapabilitiesUpdated",
    "AttendeeCreated",
    "AttendeeDeleted",
    "Capabilities",
    "JoinGrant",
    "Limits",
    "Meeting",
    "MeetingCreated",
    "MeetingEnded",
    "MeetingRegistry",
    "MeetingStore",
    "RegistryEvent",
    "SqliteStore",
    "derive_account_id",
]

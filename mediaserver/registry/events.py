"""Domain events the registry emits to its listeners (past tense, style guide §10)."""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.registry.models import Attendee, Meeting

__all__ = [
    "AttendeeCapabilitiesUpdated",
    "AttendeeCreated",
    "AttendeeDeleted",
    "MeetingCreated",
    "MeetingEnded",
    "RegistryEvent",
]


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """Base of registry events."""

    meeting: Meeting


@dataclass(frozen=True, slots=True)
class MeetingCreated(RegistryEvent):
    """A meeting was created."""


@dataclass(frozen=True, slots=True)
class MeetingEnded(RegistryEvent):
    """A meeting ended.

    ``reason`` is ``"deleted"`` (DeleteMeeting), ``"expired"`` (24 hours), ``"idle"``
    (5 minutes without a connected attendee) or ``"primary-ended"`` (a replica whose
    primary ended).
    """

    reason: str


@dataclass(frozen=True, slots=True)
class AttendeeCreated(RegistryEvent):
    """An attendee was added to a meeting."""

    attendee: Attendee


@dataclass(frozen=True, slots=True)
class AttendeeDeleted(RegistryEvent):
    """An attendee was deleted; its join token no longer works."""

    attendee: Attendee


@dataclass(frozen=True, slots=True)
class AttendeeCapabilitiesUpdated(RegistryEvent):
    """An attendee's capabilities changed."""

    attendee: Attendee

"""Identifier types shared across packages (style guide, convention 12)."""

from __future__ import annotations

from typing import NewType

__all__ = ["AttendeeId", "MeetingId"]

MeetingId = NewType("MeetingId", str)
"""A meeting's GUID, lower-case, as returned by CreateMeeting."""

AttendeeId = NewType("AttendeeId", str)
"""An attendee's GUID (a content-share attendee adds the ``#content`` suffix)."""

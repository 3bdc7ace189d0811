"""The meeting-event catalogue and the tracker that turns happenings into events (sans I/O).

Catalogue: meetings-digest.md §6.3. The tracker is fed by the shell
(:mod:`mediaserver.events.bus`) with registry events (create, delete, capabilities) and
gateway happenings (join, departure, SUBSCRIBE video state), and produces
:class:`~mediaserver.events.envelope.MeetingEvent` values, read with
:meth:`MeetingEventTracker.events_received`.

Rules of this file:

* Presence is tracked per attendee id (``<id>#content`` is its own attendee, §6.3
  "tracked as a separate attendee") and per connection: a happening of a connection that
  is not the attendee's current one is ignored.
* ``AttendeeJoined`` fires when an attendee that is not present joins. A reconnect that
  replaces the attendee's current connection fires nothing (the attendee never left),
  unless it comes from another device (a different JOIN ``audio_session_id``): then
  ``AttendeeAuthorized`` fires [L2019-2046] and the video state restarts.
* Every departure fires exactly one of ``AttendeeLeft`` and ``AttendeeDropped`` (never
  both, [L2089], [L2140]); a reconnect after a drop is a fresh ``AttendeeJoined``.
  DeleteAttendee and the end of the meeting depart the present attendee (``Left``) before
  ``AttendeeDeleted`` / ``MeetingEnded``, so every ``Joined`` has its departure.
* Video: ``AttendeeVideoStarted``/``Stopped`` (``AttendeeContentVideo*`` for a share) fire
  when the connection's sending-video state changes, and ``Stopped`` fires before the
  departure of an attendee that was sending video.
* ``MeetingStarted`` fires at CreateMeeting (the guide does not say whether a meeting
  "starts" at creation or first join; creation is what the SQS/SNS configuration sees).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mediaserver.events.envelope import (
    NETWORK_TYPE,
    AttendeeInfo,
    MeetingEvent,
    MeetingInfo,
    build_event,
)

__all__ = ["CONTENT_SUFFIX", "EventType", "MeetingEventTracker"]

CONTENT_SUFFIX = "#content"


class EventType(enum.StrEnum):
    """Every ``detail.eventType`` Carillon emits, without the ``chime:`` prefix."""

    MEETING_STARTED = "MeetingStarted"
    MEETING_ENDED = "MeetingEnded"
    ATTENDEE_ADDED = "AttendeeAdded"
    ATTENDEE_DELETED = "AttendeeDeleted"
    ATTENDEE_AUTHORIZED = "AttendeeAuthorized"
    ATTENDEE_JOINED = "AttendeeJoined"
    ATTENDEE_LEFT = "AttendeeLeft"
    ATTENDEE_DROPPED = "AttendeeDropped"
    ATTENDEE_VIDEO_STARTED = "AttendeeVideoStarted"
    ATTENDEE_VIDEO_STOPPED = "AttendeeVideoStopped"
    ATTENDEE_CONTENT_JOINED = "AttendeeContentJoined"
    ATTENDEE_CONTENT_LEFT = "AttendeeContentLeft"
    ATTENDEE_CONTENT_DROPPED = "AttendeeContentDropped"
    ATTENDEE_CONTENT_VIDEO_STARTED = "AttendeeContentVideoStarted"
    ATTENDEE_CONTENT_VIDEO_STOPPED = "AttendeeContentVideoStopped"
    ATTENDEE_CAPABILITIES_UPDATED = "AttendeeCapabilitiesUpdated"
    TRANSCRIPTION_STARTED = "TranscriptionStarted"
    TRANSCRIPTION_STOPPED = "TranscriptionStopped"
    TRANSCRIPTION_INTERRUPTED = "TranscriptionInterrupted"
    TRANSCRIPTION_RESUMED = "TranscriptionResumed"
    TRANSCRIPTION_FAILED = "TranscriptionFailed"


_NETWORK_EVENTS = frozenset(
    {
        EventType.ATTENDEE_JOINED,
        EventType.ATTENDEE_LEFT,
        EventType.ATTENDEE_DROPPED,
        EventType.ATTENDEE_CONTENT_JOINED,
        EventType.ATTENDEE_CONTENT_LEFT,
        EventType.ATTENDEE_CONTENT_DROPPED,
    }
)
"""Events whose detail carries ``networkType`` (§6.3)."""


@dataclass(slots=True)
class _Presence:
    external_user_id: str
    connection: object
    """Identity of the current connection (the gateway's member object)."""
    audio_session_id: int | None
    video: bool = False


@dataclass(slots=True)
class _MeetingState:
    info: MeetingInfo
    present: dict[str, _Presence] = field(default_factory=dict)


def _new_id() -> str:
    return str(uuid.uuid4())


class MeetingEventTracker:
    """Turns meeting happenings into catalogue events.

    Every input method takes ``wall`` (epoch seconds). After calling one, call
    :meth:`events_received` to collect the events it produced, in order.

    Args:
        new_id: makes envelope ids (UUID4 by default; tests pass a counter).
    """

    def __init__(self, new_id: Callable[[], str] = _new_id) -> None:
        self._new_id = new_id
        self._meetings: dict[str, _MeetingState] = {}
        self._events: list[MeetingEvent] = []
        self.audio_drops = 0
        """``AttendeeDropped`` events so far (CloudWatch ``AttendeeAudioDrops``)."""
        self.content_drops = 0
        """``AttendeeContentDropped`` events so far (``AttendeeContentDrops``)."""

    # -- output ---------------------------------------------------------------------------

    def events_received(self) -> list[MeetingEvent]:
        """The events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def present_count(self, content: bool = False) -> int:
        """Attendees (or content shares) present now, over all meetings."""
        return sum(
            1
            for state in self._meetings.values()
            for attendee_id in state.present
            if attendee_id.endswith(CONTENT_SUFFIX) == content
        )

    def _emit(
        self,
        name: EventType,
        meeting: MeetingInfo,
        wall: float,
        attendee: AttendeeInfo | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._events.append(
            build_event(
                name.value,
                meeting,
                wall=wall,
                event_id=self._new_id(),
                attendee=attendee,
                network_type=NETWORK_TYPE if name in _NETWORK_EVENTS else None,
                extra=extra,
            )
        )

    def _state(self, meeting: MeetingInfo) -> _MeetingState:
        state = self._meetings.get(meeting.meeting_id)
        if state is None:
            # A meeting created before a restart: it was started then.
            state = self._meetings[meeting.meeting_id] = _MeetingState(meeting)
        return state

    # -- control plane ----------------------------------------------------------------------

    def meeting_created(self, meeting: MeetingInfo, wall: float) -> None:
        """CreateMeeting (or CreateMeetingWithAttendees): ``MeetingStarted``."""
        self._meetings[meeting.meeting_id] = _MeetingState(meeting)
        self._emit(EventType.MEETING_STARTED, meeting, wall)

    def meeting_ended(self, meeting: MeetingInfo, wall: float) -> None:
        """DeleteMeeting or auto-end: departures of everyone present, then ``MeetingEnded``."""
        state = self._meetings.pop(meeting.meeting_id, None)
        if state is not None:
            for attendee_id in list(state.present):
                self._depart(state, attendee_id, dropped=False, wall=wall)
        self._emit(EventType.MEETING_ENDED, meeting, wall)

    def attendee_added(self, meeting: MeetingInfo, attendee: AttendeeInfo, wall: float) -> None:
        """CreateAttendee, BatchCreateAttendee or CreateMeetingWithAttendees."""
        self._emit(EventType.ATTENDEE_ADDED, meeting, wall, attendee)

    def attendee_deleted(self, meeting: MeetingInfo, attendee: AttendeeInfo, wall: float) -> None:
        """DeleteAttendee: the attendee and its content share depart, then ``AttendeeDeleted``."""
        state = self._meetings.get(meeting.meeting_id)
        if state is not None:
            for attendee_id in (attendee.attendee_id, attendee.attendee_id + CONTENT_SUFFIX):
                if attendee_id in state.present:
                    self._depart(state, attendee_id, dropped=False, wall=wall)
        self._emit(EventType.ATTENDEE_DELETED, meeting, wall, attendee)

    def capabilities_updated(
        self,
        meeting: MeetingInfo,
        attendee: AttendeeInfo,
        capabilities: dict[str, str],
        wall: float,
        success: bool = True,
    ) -> None:
        """UpdateAttendeeCapabilities or the batch variant [L2307-2345].

        Args:
            capabilities: ``{"audio": ..., "video": ..., "content": ...}``.
        """
        extra = {"success": "1" if success else "0", "attendeeCapabilities": dict(capabilities)}
        self._emit(EventType.ATTENDEE_CAPABILITIES_UPDATED, meeting, wall, attendee, extra)

    def transcription(
        self,
        meeting: MeetingInfo,
        name: EventType,
        wall: float,
        *,
        region: str,
        configuration: str,
        message: str | None = None,
    ) -> None:
        """A transcription lifecycle event (digest §2.6); for the transcription subsystem.

        Args:
            name: one of the ``TRANSCRIPTION_*`` members.
            region: ``transcriptionRegion``.
            configuration: ``transcriptionConfiguration`` (a JSON string).
            message: ``message``, on Interrupted and Failed.
        """
        if not name.value.startswith("Transcription"):
            raise ValueError(f"{name} is not a transcription event")
        extra: dict[str, Any] = {
            "transcriptionRegion": region,
            "transcriptionConfiguration": configuration,
        }
        if message is not None:
            extra["message"] = message
        self._emit(name, meeting, wall, extra=extra)

    # -- signaling ----------------------------------------------------------------------------

    def joined(
        self,
        meeting: MeetingInfo,
        attendee: AttendeeInfo,
        *,
        connection: object,
        audio_session_id: int | None,
        wall: float,
    ) -> None:
        """A connection of ``attendee`` completed its JOIN.

        Args:
            connection: identifies the connection (its departure must name the same one).
            audio_session_id: the JOIN's ``audio_session_id``; a different one while the
                attendee is present means another device (``AttendeeAuthorized``).
        """
        state = self._state(meeting)
        content = attendee.attendee_id.endswith(CONTENT_SUFFIX)
        current = state.present.get(attendee.attendee_id)
        if current is None:
            state.present[attendee.attendee_id] = _Presence(
                attendee.external_user_id, connection, audio_session_id
            )
            name = EventType.ATTENDEE_CONTENT_JOINED if content else EventType.ATTENDEE_JOINED
            self._emit(name, meeting, wall, attendee)
            return
        other_device = (
            audio_session_id is not None
            and current.audio_session_id is not None
            and audio_session_id != current.audio_session_id
        )
        current.connection = connection
        current.audio_session_id = audio_session_id
        if other_device and not content:
            if current.video:
                current.video = False
                self._emit(EventType.ATTENDEE_VIDEO_STOPPED, meeting, wall, attendee)
            self._emit(EventType.ATTENDEE_AUTHORIZED, meeting, wall, attendee)

    def departed(
        self,
        meeting: MeetingInfo,
        attendee_id: str,
        *,
        connection: object,
        dropped: bool,
        wall: float,
    ) -> None:
        """A connection left (LEAVE, DeleteAttendee) or was dropped (silence, lost socket)."""
        state = self._meetings.get(meeting.meeting_id)
        if state is None:
            return
        current = state.present.get(attendee_id)
        if current is None or current.connection is not connection:
            return
        self._depart(state, attendee_id, dropped=dropped, wall=wall)

    def video_changed(
        self,
        meeting: MeetingInfo,
        attendee_id: str,
        *,
        connection: object,
        sending: bool,
        wall: float,
    ) -> None:
        """A SUBSCRIBE of the connection says whether it now sends video."""
        state = self._meetings.get(meeting.meeting_id)
        current = state.present.get(attendee_id) if state is not None else None
        if current is None or current.connection is not connection or current.video == sending:
            return
        current.video = sending
        content = attendee_id.endswith(CONTENT_SUFFIX)
        if sending:
            name = (
                EventType.ATTENDEE_CONTENT_VIDEO_STARTED
                if content
                else EventType.ATTENDEE_VIDEO_STARTED
            )
        else:
            name = (
                EventType.ATTENDEE_CONTENT_VIDEO_STOPPED
                if content
                else EventType.ATTENDEE_VIDEO_STOPPED
            )
        self._emit(name, state.info if state else meeting, wall, self._who(attendee_id, current))

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _who(attendee_id: str, presence: _Presence) -> AttendeeInfo:
        return AttendeeInfo(attendee_id, presence.external_user_id)

    def _depart(
        self, state: _MeetingState, attendee_id: str, *, dropped: bool, wall: float
    ) -> None:
        presence = state.present.pop(attendee_id)
        who = self._who(attendee_id, presence)
        content = attendee_id.endswith(CONTENT_SUFFIX)
        if presence.video:
            name = (
                EventType.ATTENDEE_CONTENT_VIDEO_STOPPED
                if content
                else EventType.ATTENDEE_VIDEO_STOPPED
            )
            self._emit(name, state.info, wall, who)
        if content:
            if dropped:
                self.content_drops += 1
            name = (
                EventType.ATTENDEE_CONTENT_DROPPED if dropped else EventType.ATTENDEE_CONTENT_LEFT
            )
        else:
            if dropped:
                self.audio_drops += 1
            name = EventType.ATTENDEE_DROPPED if dropped else EventType.ATTENDEE_LEFT
        self._emit(name, state.info, wall, who)

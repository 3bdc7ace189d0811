"""Map a request line to one of the 16 ChimeSDKMeetings operations (pure).

Dispatch is on (method, path template, literal ``operation=`` query), as
``../shared/spec/control-plane-api.md`` section 2 lists them. The literal segment
``attendees/capabilities`` wins over ``attendees/{AttendeeId}``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Route", "UnknownOperation", "match"]


@dataclass(frozen=True, slots=True)
class Route:
    """The operation a request names, with its URI labels."""

    operation: str
    meeting_id: str | None = None
    attendee_id: str | None = None


class UnknownOperation(LookupError):
    """No operation has this method, path and ``operation`` query."""


# (method, path shape, operation query) -> operation name. Path shapes use "M" for the
# {MeetingId} label and "A" for {AttendeeId}.
_TABLE: dict[tuple[str, tuple[str, ...], str | None], str] = {
    ("POST", ("meetings",), None): "CreateMeeting",
    ("POST", ("meetings",), "create-attendees"): "CreateMeetingWithAttendees",
    ("GET", ("meetings", "M"), None): "GetMeeting",
    ("DELETE", ("meetings", "M"), None): "DeleteMeeting",
    ("POST", ("meetings", "M", "attendees"), None): "CreateAttendee",
    ("POST", ("meetings", "M", "attendees"), "batch-create"): "BatchCreateAttendee",
    ("GET", ("meetings", "M", "attendees"), None): "ListAttendees",
    ("GET", ("meetings", "M", "attendees", "A"), None): "GetAttendee",
    ("DELETE", ("meetings", "M", "attendees", "A"), None): "DeleteAttendee",
    ("PUT", ("meetings", "M", "attendees", "A", "capabilities"), None): (
        "UpdateAttendeeCapabilities"
    ),
    ("PUT", ("meetings", "M", "attendees", "capabilities"), "batch-update-except"): (
        "BatchUpdateAttendeeCapabilitiesExcept"
    ),
    ("POST", ("meetings", "M", "transcription"), "start"): "StartMeetingTranscription",
    ("POST", ("meetings", "M", "transcription"), "stop"): "StopMeetingTranscription",
    ("GET", ("tags",), None): "ListTagsForResource",
    ("POST", ("tags",), "tag-resource"): "TagResource",
    ("POST", ("tags",), "untag-resource"): "UntagResource",
}

_LITERALS = {"meetings", "attendees", "capabilities", "transcription", "tags"}


def match(method: str, path: str, operation: str | None) -> Route:
    """Find the operation of a request.

    Args:
        method: the HTTP method.
        path: the decoded request path, without the query.
        operation: the value of the ``operation`` query parameter, if any.

    Raises:
        UnknownOperation: no operation matches.
    """
    segments = tuple(s for s in path.split("/") if s)
    labels: list[str] = []
    shape: list[str] = []
    for index, segment in enumerate(segments):
        if index == 1 and segments[0] == "meetings":
            shape.append("M")
            labels.append(segment)
        elif (
            index == 3
            and segments[2] == "attendees"
            and not (segment == "capabilities" and len(segments) == 4)
        ):
            shape.append("A")
            labels.append(segment)
        elif segment in _LITERALS:
            shape.append(segment)
        else:
            raise UnknownOperation(path)
    name = _TABLE.get((method, tuple(shape), operation))
    if name is None:
        raise UnknownOperation(path)
    return Route(
        name,
        meeting_id=labels[0] if labels else None,
        attendee_id=labels[1] if len(labels) > 1 else None,
    )

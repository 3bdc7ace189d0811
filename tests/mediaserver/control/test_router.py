"""Request lines map onto the 16 operations, and nothing else does."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.control.router import UnknownOperation, match

M = "0a1b2c3d-0000-4000-8000-000000000001"
A = "0a1b2c3d-0000-4000-8000-000000000002"

CASES = [
    ("POST", "/meetings", None, "CreateMeeting"),
    ("POST", "/meetings", "create-attendees", "CreateMeetingWithAttendees"),
    ("GET", f"/meetings/{M}", None, "GetMeeting"),
    ("DELETE", f"/meetings/{M}", None, "DeleteMeeting"),
    ("POST", f"/meetings/{M}/attendees", None, "CreateAttendee"),
    ("POST", f"/meetings/{M}/attendees", "batch-create", "BatchCreateAttendee"),
    ("GET", f"/meetings/{M}/attendees", None, "ListAttendees"),
    ("GET", f"/meetings/{M}/attendees/{A}", None, "GetAttendee"),
    ("DELETE", f"/meetings/{M}/attendees/{A}", None, "DeleteAttendee"),
    ("PUT", f"/meetings/{M}/attendees/{A}/capabilities", None, "UpdateAttendeeCapabilities"),
    (
        "PUT",
        f"/meetings/{M}/attendees/capabilities",
        "batch-update-except",
        "BatchUpdateAttendeeCapabilitiesExcept",
    ),
    ("POST", f"/meetings/{M}/transcription", "start", "StartMeetingTranscription"),
    ("POST", f"/meetings/{M}/transcription", "stop", "StopMeetingTranscription"),
    ("GET", "/tags", None, "ListTagsForResource"),
    ("POST", "/tags", "tag-resource", "TagResource"),
    ("POST", "/tags", "untag-resource", "UntagResource"),
]


@pytest.mark.parametrize(("method", "path", "operation", "name"), CASES)
def test_every_operation_routes(method: str, path: str, operation: str | None, name: str) -> None:
    route = match(method, path, operation)
    assert route.operation == name
    if "/meetings/" in path:
        assert route.meeting_id == M
    if f"/attendees/{A}" in path:
        assert route.attendee_id == A


def test_sixteen_operations() -> None:
    assert len({c[3] for c in CASES}) == 16


def test_the_capabilities_literal_wins_over_an_attendee_id() -> None:
    route = match("PUT", f"/meetings/{M}/attendees/capabilities", "batch-update-except")
    assert route.attendee_id is None


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    path=st.text(alphabet="/abcdeimnostg-0123456789%:", max_size=80),
    operation=st.none() | st.text(max_size=20),
)
def test_arbitrary_request_lines_route_or_raise_unknown_operation(
    method: str, path: str, operation: str | None
) -> None:
    try:
        route = match(method, path, operation)
    except UnknownOperation:
        return
    assert route.operation in {c[3] for c in CASES}

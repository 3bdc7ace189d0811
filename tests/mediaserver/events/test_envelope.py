"""The envelope matches the developer guide's examples field for field [L1904-2506]."""

from __future__ import annotations

import json

from mediaserver.events.envelope import AttendeeInfo, MeetingInfo, build_event, format_time

MEETING = MeetingInfo(
    meeting_id="87654321-4321-4321-1234-111122223333",
    external_meeting_id="mymeeting",
    media_region="us-east-1",
    account_id="111122223333",
)
WALL = 1_790_000_000.123


def test_meeting_started_has_the_base_fields_only() -> None:
    event = build_event("MeetingStarted", MEETING, wall=WALL, event_id="id-1")
    assert event.envelope == {
        "version": "0",
        "id": "id-1",
        "source": "aws.chime",
        "account": "111122223333",
        "region": "us-east-1",
        "detail-type": "Chime Meeting State Change",
        "time": "2026-09-21T14:13:20Z",
        "resources": [],
        "detail": {
            "version": "0",
            "eventType": "chime:MeetingStarted",
            "timestamp": 1_790_000_000_123,
            "meetingId": "87654321-4321-4321-1234-111122223333",
            "externalMeetingId": "mymeeting",
            "mediaRegion": "us-east-1",
        },
    }
    assert event.name == "MeetingStarted"
    assert event.event_type == "chime:MeetingStarted"
    assert event.attendee_id is None


def test_attendee_events_put_the_fields_in_the_guides_order() -> None:
    event = build_event(
        "AttendeeJoined",
        MEETING,
        wall=WALL,
        event_id="id-2",
        attendee=AttendeeInfo("att-1", "user-1"),
        network_type="Voip",
    )
    assert list(event.envelope["detail"]) == [
        "version",
        "eventType",
        "timestamp",
        "meetingId",
        "attendeeId",
        "externalUserId",
        "networkType",
        "externalMeetingId",
        "mediaRegion",
    ]
    assert event.attendee_id == "att-1"


def test_extra_fields_follow_the_base_ones() -> None:
    event = build_event(
        "AttendeeCapabilitiesUpdated",
        MEETING,
        wall=WALL,
        event_id="id-3",
        attendee=AttendeeInfo("att-1", "user-1"),
        extra={"success": "1", "attendeeCapabilities": {"audio": "SendReceive"}},
    )
    detail = event.envelope["detail"]
    assert detail["success"] == "1"
    assert detail["attendeeCapabilities"] == {"audio": "SendReceive"}
    assert "networkType" not in detail


def test_the_body_is_compact_utf8_json_of_the_envelope() -> None:
    meeting = MeetingInfo("m", "réunion", "eu-west-1")
    event = build_event("MeetingEnded", meeting, wall=WALL, event_id="x")
    assert b"r\xc3\xa9union" in event.body()
    assert b": " not in event.body()
    assert json.loads(event.body()) == event.envelope


def test_time_is_utc_with_a_z() -> None:
    assert format_time(0) == "1970-01-01T00:00:00Z"

"""The tracker's rules (mediaserver/events/catalogue.py), driven directly, no event loop."""

from __future__ import annotations

import itertools

import pytest

from mediaserver.events.catalogue import EventType, MeetingEventTracker
from mediaserver.events.envelope import AttendeeInfo, MeetingInfo

MEETING = MeetingInfo("m-1", "ext-1", "us-east-1", "111122223333")
ALICE = AttendeeInfo("a-1", "alice")
ALICE_SHARE = AttendeeInfo("a-1#content", "alice")
BOB = AttendeeInfo("b-1", "bob")


class Connection:
    """Stands for the gateway's Member: only its identity matters."""


@pytest.fixture
def tracker() -> MeetingEventTracker:
    counter = itertools.count(1)
    return MeetingEventTracker(new_id=lambda: f"id-{next(counter)}")


def drain(tracker: MeetingEventTracker) -> list[tuple[str, str | None]]:
    return [(e.name, e.attendee_id) for e in tracker.events_received()]


def join(
    tracker: MeetingEventTracker, who: AttendeeInfo, session: int = 7, wall: float = 10.0
) -> Connection:
    connection = Connection()
    tracker.joined(MEETING, who, connection=connection, audio_session_id=session, wall=wall)
    return connection


def test_the_reference_timeline_of_the_guide(tracker: MeetingEventTracker) -> None:
    """Added, Joined, Dropped, Joined again, Left [L2092-2101]."""
    tracker.meeting_created(MEETING, 1.0)
    tracker.attendee_added(MEETING, ALICE, 1.0)
    first = join(tracker, ALICE)
    tracker.departed(MEETING, "a-1", connection=first, dropped=True, wall=20.0)
    second = join(tracker, ALICE, wall=30.0)
    tracker.departed(MEETING, "a-1", connection=second, dropped=False, wall=40.0)
    assert drain(tracker) == [
        ("MeetingStarted", None),
        ("AttendeeAdded", "a-1"),
        ("AttendeeJoined", "a-1"),
        ("AttendeeDropped", "a-1"),
        ("AttendeeJoined", "a-1"),
        ("AttendeeLeft", "a-1"),
    ]
    assert tracker.audio_drops == 1 and tracker.content_drops == 0


def test_join_leave_and_drop_carry_network_type_and_the_others_do_not(
    tracker: MeetingEventTracker,
) -> None:
    tracker.attendee_added(MEETING, ALICE, 1.0)
    connection = join(tracker, ALICE)
    tracker.departed(MEETING, "a-1", connection=connection, dropped=False, wall=2.0)
    added, joined, left = tracker.events_received()
    assert "networkType" not in added.envelope["detail"]
    assert joined.envelope["detail"]["networkType"] == "Voip"
    assert left.envelope["detail"]["networkType"] == "Voip"
    assert joined.envelope["detail"]["externalUserId"] == "alice"
    assert joined.envelope["id"] == "id-2"


def test_a_departure_is_reported_once_never_as_both_left_and_dropped(
    tracker: MeetingEventTracker,
) -> None:
    connection = join(tracker, ALICE)
    tracker.departed(MEETING, "a-1", connection=connection, dropped=False, wall=2.0)
    tracker.departed(MEETING, "a-1", connection=connection, dropped=True, wall=3.0)
    assert drain(tracker) == [("AttendeeJoined", "a-1"), ("AttendeeLeft", "a-1")]


def test_a_reconnect_from_the_same_session_is_silent_and_the_old_socket_is_ignored(
    tracker: MeetingEventTracker,
) -> None:
    old = join(tracker, ALICE, session=7)
    new = join(tracker, ALICE, session=7)
    tracker.departed(MEETING, "a-1", connection=old, dropped=True, wall=5.0)
    assert drain(tracker) == [("AttendeeJoined", "a-1")]
    tracker.departed(MEETING, "a-1", connection=new, dropped=False, wall=6.0)
    assert drain(tracker) == [("AttendeeLeft", "a-1")]


def test_the_same_token_from_another_device_is_authorized_not_joined(
    tracker: MeetingEventTracker,
) -> None:
    desktop = join(tracker, ALICE, session=7)
    tracker.video_changed(MEETING, "a-1", connection=desktop, sending=True, wall=2.0)
    join(tracker, ALICE, session=8)
    assert drain(tracker) == [
        ("AttendeeJoined", "a-1"),
        ("AttendeeVideoStarted", "a-1"),
        ("AttendeeVideoStopped", "a-1"),
        ("AttendeeAuthorized", "a-1"),
    ]


def test_video_started_and_stopped_follow_the_subscribe_state(
    tracker: MeetingEventTracker,
) -> None:
    connection = join(tracker, ALICE)
    for sending in (False, True, True, False, True):
        tracker.video_changed(MEETING, "a-1", connection=connection, sending=sending, wall=2.0)
    tracker.departed(MEETING, "a-1", connection=connection, dropped=False, wall=3.0)
    assert drain(tracker) == [
        ("AttendeeJoined", "a-1"),
        ("AttendeeVideoStarted", "a-1"),
        ("AttendeeVideoStopped", "a-1"),
        ("AttendeeVideoStarted", "a-1"),
        ("AttendeeVideoStopped", "a-1"),
        ("AttendeeLeft", "a-1"),
    ]


def test_video_of_a_connection_that_is_not_current_is_ignored(
    tracker: MeetingEventTracker,
) -> None:
    join(tracker, ALICE)
    tracker.video_changed(MEETING, "a-1", connection=Connection(), sending=True, wall=2.0)
    tracker.video_changed(MEETING, "nobody", connection=Connection(), sending=True, wall=2.0)
    assert drain(tracker) == [("AttendeeJoined", "a-1")]


def test_the_content_share_is_its_own_attendee_with_content_events(
    tracker: MeetingEventTracker,
) -> None:
    join(tracker, ALICE)
    share = join(tracker, ALICE_SHARE, session=9)
    tracker.video_changed(MEETING, "a-1#content", connection=share, sending=True, wall=2.0)
    tracker.video_changed(MEETING, "a-1#content", connection=share, sending=False, wall=3.0)
    tracker.video_changed(MEETING, "a-1#content", connection=share, sending=True, wall=4.0)
    tracker.departed(MEETING, "a-1#content", connection=share, dropped=True, wall=5.0)
    again = join(tracker, ALICE_SHARE, session=9)
    tracker.departed(MEETING, "a-1#content", connection=again, dropped=False, wall=6.0)
    assert drain(tracker) == [
        ("AttendeeJoined", "a-1"),
        ("AttendeeContentJoined", "a-1#content"),
        ("AttendeeContentVideoStarted", "a-1#content"),
        ("AttendeeContentVideoStopped", "a-1#content"),
        ("AttendeeContentVideoStarted", "a-1#content"),
        ("AttendeeContentVideoStopped", "a-1#content"),
        ("AttendeeContentDropped", "a-1#content"),
        ("AttendeeContentJoined", "a-1#content"),
        ("AttendeeContentLeft", "a-1#content"),
    ]
    assert tracker.content_drops == 1 and tracker.audio_drops == 0
    assert tracker.present_count() == 1 and tracker.present_count(content=True) == 0


def test_content_events_carry_network_type_on_join_leave_and_drop_only(
    tracker: MeetingEventTracker,
) -> None:
    share = join(tracker, ALICE_SHARE)
    tracker.video_changed(MEETING, "a-1#content", connection=share, sending=True, wall=2.0)
    joined, video = tracker.events_received()
    assert joined.envelope["detail"]["networkType"] == "Voip"
    assert "networkType" not in video.envelope["detail"]


def test_delete_attendee_departs_the_attendee_and_its_share_before_deleted(
    tracker: MeetingEventTracker,
) -> None:
    main = join(tracker, ALICE)
    share = join(tracker, ALICE_SHARE)
    tracker.video_changed(MEETING, "a-1", connection=main, sending=True, wall=2.0)
    drain(tracker)
    tracker.attendee_deleted(MEETING, ALICE, 3.0)
    # The gateway's own departure report comes afterwards and is ignored.
    tracker.departed(MEETING, "a-1", connection=main, dropped=False, wall=3.0)
    tracker.departed(MEETING, "a-1#content", connection=share, dropped=False, wall=3.0)
    assert drain(tracker) == [
        ("AttendeeVideoStopped", "a-1"),
        ("AttendeeLeft", "a-1"),
        ("AttendeeContentLeft", "a-1#content"),
        ("AttendeeDeleted", "a-1"),
    ]


def test_the_end_of_a_meeting_departs_everyone_then_ends(tracker: MeetingEventTracker) -> None:
    tracker.meeting_created(MEETING, 1.0)
    join(tracker, ALICE)
    join(tracker, BOB)
    drain(tracker)
    tracker.meeting_ended(MEETING, 9.0)
    assert drain(tracker) == [
        ("AttendeeLeft", "a-1"),
        ("AttendeeLeft", "b-1"),
        ("MeetingEnded", None),
    ]
    assert tracker.present_count() == 0
    # A meeting the tracker never saw (created before a restart) still ends.
    tracker.meeting_ended(MeetingInfo("m-2", "e", "us-east-1"), 9.0)
    assert drain(tracker) == [("MeetingEnded", None)]


def test_capabilities_updated_has_success_and_the_capabilities(
    tracker: MeetingEventTracker,
) -> None:
    caps = {"audio": "SendReceive", "video": "None", "content": "Receive"}
    tracker.capabilities_updated(MEETING, ALICE, caps, 5.0)
    (event,) = tracker.events_received()
    detail = event.envelope["detail"]
    assert detail["eventType"] == "chime:AttendeeCapabilitiesUpdated"
    assert detail["success"] == "1"
    assert detail["attendeeCapabilities"] == caps
    assert detail["attendeeId"] == "a-1" and detail["externalUserId"] == "alice"
    tracker.capabilities_updated(MEETING, ALICE, caps, 5.0, success=False)
    assert tracker.events_received()[0].envelope["detail"]["success"] == "0"


def test_transcription_events_are_a_hook_with_their_extra_fields(
    tracker: MeetingEventTracker,
) -> None:
    tracker.transcription(
        MEETING, EventType.TRANSCRIPTION_STARTED, 1.0, region="us-east-1", configuration="{}"
    )
    tracker.transcription(
        MEETING,
        EventType.TRANSCRIPTION_FAILED,
        2.0,
        region="us-east-1",
        configuration="{}",
        message="engine down",
    )
    started, failed = tracker.events_received()
    assert started.envelope["detail"]["transcriptionRegion"] == "us-east-1"
    assert "message" not in started.envelope["detail"]
    assert failed.envelope["detail"]["message"] == "engine down"
    with pytest.raises(ValueError):
        tracker.transcription(MEETING, EventType.ATTENDEE_JOINED, 1.0, region="r", configuration="")


def test_every_catalogue_entry_of_the_digest_has_an_event_type() -> None:
    names = {t.value for t in EventType}
    assert {
        "MeetingStarted", "MeetingEnded", "AttendeeAdded", "AttendeeDeleted",
        "AttendeeAuthorized", "AttendeeJoined", "AttendeeLeft", "AttendeeDropped",
        "AttendeeVideoStarted", "AttendeeVideoStopped", "AttendeeContentJoined",
        "AttendeeContentLeft", "AttendeeContentDropped", "AttendeeContentVideoStarted",
        "AttendeeContentVideoStopped", "AttendeeCapabilitiesUpdated", "TranscriptionStarted",
        "TranscriptionStopped", "TranscriptionInterrupted", "TranscriptionResumed",
        "TranscriptionFailed",
    } == names  # fmt: skip

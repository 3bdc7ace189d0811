"""The registry's rules, driven directly with a fake clock (no sleeping)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from mediaserver.errors import InvalidArgument, InvalidToken, LimitExceeded, MeetingEnded, NotFound
from mediaserver.registry import (
    AttendeeDeleted,
    Limits,
    MeetingEnded as MeetingEndedEvent,
    MeetingRegistry,
    RegistryEvent,
    SqliteStore,
)
from mediaserver.types import AttendeeId
from tests.helpers.clock import FakeClock


def _params(**extra: Any) -> dict[str, Any]:
    return {
        "ClientRequestToken": "tok",
        "MediaRegion": "us-east-1",
        "ExternalMeetingId": "m1",
        **extra,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "db.sqlite3")


@pytest.fixture
def registry(store: SqliteStore, clock: FakeClock) -> MeetingRegistry:
    return MeetingRegistry(store, now=clock.wall(), limits=Limits(max_active_meetings=5))


def _events(registry: MeetingRegistry) -> list[RegistryEvent]:
    seen: list[RegistryEvent] = []
    registry.add_listener(seen.append)
    return seen


def test_a_meeting_nobody_joins_ends_after_five_minutes(
    registry: MeetingRegistry, clock: FakeClock
) -> None:
    events = _events(registry)
    meeting = registry.create_meeting(_params(), clock.wall())
    assert registry.get_timer() == pytest.approx(clock.wall() + 300)
    clock.advance(299)
    registry.handle_timer(clock.wall())
    assert registry.get_meeting(meeting.meeting_id) is meeting
    clock.advance(1)
    registry.handle_timer(clock.wall())
    with pytest.raises(NotFound):
        registry.get_meeting(meeting.meeting_id)
    ended = [e for e in events if isinstance(e, MeetingEndedEvent)]
    assert [(e.meeting.meeting_id, e.reason) for e in ended] == [(meeting.meeting_id, "idle")]


def test_the_idle_timer_counts_from_the_last_departure(
    registry: MeetingRegistry, clock: FakeClock
) -> None:
    meeting = registry.create_meeting(_params(), clock.wall())
    alice = registry.create_attendee(meeting, "alice", None)
    registry.attendee_connected(meeting, alice.attendee_id)
    clock.advance(3600)
    registry.handle_timer(clock.wall())
    assert registry.get_meeting(meeting.meeting_id)
    registry.attendee_disconnected(meeting, alice.attendee_id, clock.wall())
    clock.advance(299)
    registry.handle_timer(clock.wall())
    assert registry.get_meeting(meeting.meeting_id)
    clock.advance(1)
    registry.handle_timer(clock.wall())
    with pytest.raises(NotFound):
        registry.get_meeting(meeting.meeting_id)


def test_a_meeting_ends_after_24_hours_even_when_busy(
    registry: MeetingRegistry, clock: FakeClock
) -> None:
    events = _events(registry)
    meeting = registry.create_meeting(_params(), clock.wall())
    bob = registry.create_attendee(meeting, "bob", None)
    registry.attendee_connected(meeting, bob.attendee_id)
    assert registry.get_timer() == pytest.approx(clock.wall() + 24 * 3600)
    clock.advance(24 * 3600 - 1)
    registry.handle_timer(clock.wall())
    assert registry.get_meeting(meeting.meeting_id)
    clock.advance(1)
    registry.handle_timer(clock.wall())
    with pytest.raises(NotFound):
        registry.get_meeting(meeting.meeting_id)
    assert [e.reason for e in events if isinstance(e, MeetingEndedEvent)] == ["expired"]


def test_replicas_end_with_their_primary_and_never_idle(
    registry: MeetingRegistry, clock: FakeClock
) -> None:
    primary = registry.create_meeting(_params(), clock.wall())
    registry.attendee_connected(primary, AttendeeId("x"))
    replica = registry.create_meeting(_params(PrimaryMeetingId=primary.meeting_id), clock.wall())
    clock.advance(3600)
    registry.handle_timer(clock.wall())
    assert registry.get_meeting(replica.meeting_id)
    with pytest.raises(InvalidArgument, match="is a replica"):
        registry.create_meeting(_params(PrimaryMeetingId=replica.meeting_id), clock.wall())
    registry.delete_meeting(primary.meeting_id, clock.wall())
    with pytest.raises(NotFound):
        registry.get_meeting(replica.meeting_id)


def test_replica_quota(store: SqliteStore, clock: FakeClock) -> None:
    registry = MeetingRegistry(store, now=clock.wall(), limits=Limits(max_replicas_per_primary=1))
    primary = registry.create_meeting(_params(), clock.wall())
    registry.create_meeting(_params(PrimaryMeetingId=primary.meeting_id), clock.wall())
    with pytest.raises(LimitExceeded):
        registry.create_meeting(_params(PrimaryMeetingId=primary.meeting_id), clock.wall())


def test_join_authorization(registry: MeetingRegistry, clock: FakeClock) -> None:
    events = _events(registry)
    meeting = registry.create_meeting(_params(), clock.wall())
    alice = registry.create_attendee(meeting, "alice", None)
    grant = registry.authorize_join(meeting.meeting_id, alice.join_token)
    assert grant.attendee is alice and not grant.content
    content = registry.authorize_join(meeting.meeting_id.upper(), alice.join_token + "#content")
    assert content.content and content.attendee_id == alice.attendee_id + "#content"
    with pytest.raises(InvalidToken):
        registry.authorize_join(meeting.meeting_id, "forged")
    registry.delete_attendee(meeting, alice.attendee_id)
    assert any(isinstance(e, AttendeeDeleted) for e in events)
    with pytest.raises(InvalidToken):
        registry.authorize_join(meeting.meeting_id, alice.join_token)
    registry.delete_meeting(meeting.meeting_id, clock.wall())
    with pytest.raises(MeetingEnded):
        registry.authorize_join(meeting.meeting_id, alice.join_token)


def test_state_survives_reload(store: SqliteStore, clock: FakeClock, tmp_path: Path) -> None:
    registry = MeetingRegistry(store, now=clock.wall())
    meeting = registry.create_meeting(_params(Tags=[{"Key": "a", "Value": "b"}]), clock.wall())
    created = registry.create_attendees(meeting, [("u1", None), ("u2", None)])
    registry.remember("k", {"Meeting": {"MeetingId": meeting.meeting_id}}, clock.wall())
    store.close()
    reloaded = MeetingRegistry(SqliteStore(tmp_path / "db.sqlite3"), now=clock.wall())
    again = reloaded.get_meeting(meeting.meeting_id)
    assert again.to_record() == meeting.to_record()
    assert [a.to_wire() for a in again.attendees.values()] == [
        a.to_wire() for a in created if not isinstance(a, Exception)
    ]
    assert reloaded.remembered("k", clock.wall()) == {"Meeting": {"MeetingId": meeting.meeting_id}}
    assert reloaded.remembered("k", clock.wall() + 2 * 24 * 3600) is None


def test_batch_deduplicates_external_user_ids(registry: MeetingRegistry, clock: FakeClock) -> None:
    meeting = registry.create_meeting(_params(), clock.wall())
    results = registry.create_attendees(meeting, [("dup", None), ("dup", None), ("other", None)])
    assert results[0] is results[1]
    assert len(meeting.attendees) == 2


def test_active_meeting_quota(registry: MeetingRegistry, clock: FakeClock) -> None:
    for _ in range(5):
        registry.create_meeting(_params(), clock.wall())
    with pytest.raises(LimitExceeded):
        registry.create_meeting(_params(), clock.wall())


def test_lifecycle_log_records_carry_meeting_and_attendee_ids(
    registry: MeetingRegistry, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mediaserver.registry.registry")
    meeting = registry.create_meeting(_params(), clock.wall())
    alice = registry.create_attendee(meeting, "alice", None)
    registry.delete_attendee(meeting, alice.attendee_id)
    registry.delete_meeting(meeting.meeting_id, clock.wall())
    ids = [
        (getattr(r, "meeting_id", None), getattr(r, "attendee_id", None)) for r in caplog.records
    ]
    assert ids == [
        (meeting.meeting_id, None),
        (meeting.meeting_id, alice.attendee_id),
        (meeting.meeting_id, None),
    ]


def test_attendee_cap_follows_the_server_limit_and_max_count(
    store: SqliteStore, clock: FakeClock
) -> None:
    """--max-attendees-per-meeting raises the cap for meetings without MaxCount; a meeting's
    own MaxCount still lowers it; the 251st attendee is refused at the default of 250."""
    default = MeetingRegistry(store, now=clock.wall())
    meeting = default.create_meeting(_params(), clock.wall())
    created = default.create_attendees(meeting, [(f"u{i:03d}", None) for i in range(251)])
    assert sum(not isinstance(a, Exception) for a in created) == 250
    assert isinstance(created[-1], LimitExceeded)

    raised = MeetingRegistry(store, now=clock.wall(), limits=Limits(max_attendees_per_meeting=300))
    big = raised.create_meeting(_params(ClientRequestToken="big"), clock.wall())
    created = raised.create_attendees(big, [(f"u{i:03d}", None) for i in range(301)])
    assert len(big.attendees) == 300
    assert isinstance(created[-1], LimitExceeded)
    small = raised.create_meeting(
        _params(ClientRequestToken="small", MeetingFeatures={"Attendee": {"MaxCount": 2}}),
        clock.wall(),
    )
    created = raised.create_attendees(small, [("a", None), ("b", None), ("c", None)])
    assert len(small.attendees) == 2 and isinstance(created[-1], LimitExceeded)

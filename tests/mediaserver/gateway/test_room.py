"""The meeting room's rules, driven with in-memory signaling pairs and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.gateway.room import CACHE_SIZE, DROP_AFTER, MeetingRoom, Member
from mediaserver.transport.sdp import VideoCodec as V
from signaling import ClientSignalingSession, SignalingSession
from signaling.events import (
    AudioStatusReceived,
    AudioStreamIdInfoReceived,
    DataMessagesReceived,
    Event,
    IndexReceived,
    JoinAckReceived,
    JoinReceived,
)
from signaling.messages import AudioStreamIdInfo, DataMessage, VideoCodecCapability as C
from tests.helpers.clock import FakeClock


@dataclass
class Peer:
    member: Member
    client: ClientSignalingSession
    events: list[Event]

    def deliver(self) -> list[Event]:
        for frame in self.member.session.frames_to_send():
            self.client.receive_frame(frame)
        self.events.extend(self.client.events_received())
        return self.events

    def roster(self) -> list[AudioStreamIdInfo]:
        self.deliver()
        return [
            s for e in self.events if isinstance(e, AudioStreamIdInfoReceived) for s in e.streams
        ]

    def data(self) -> list[DataMessage]:
        self.deliver()
        return [m for e in self.events if isinstance(e, DataMessagesReceived) for m in e.messages]


class Room:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.room = MeetingRoom("meeting-1")
        self.departures: list[tuple[str, bool]] = []
        self.room.on_departure = lambda m, dropped: self.departures.append((m.attendee_id, dropped))

    def connect(self, attendee_id: str, external: str, audio_session_id: int = 1) -> Peer:
        now = self.clock.monotonic()
        session = SignalingSession(now=now, wall_clock=self.clock.wall, idle_timeout=None)
        member = Member(session, attendee_id, external, connected_at=now, last_activity=now)
        self.room.add(member)
        client = ClientSignalingSession(wall_clock=self.clock.wall)
        client.send_join(audio_session_id=audio_session_id)
        for frame in client.frames_to_send():
            session.receive_frame(frame, now)
        (join,) = session.events_received()
        assert isinstance(join, JoinReceived)
        self.room.join(member, join.audio_session_id, now, self.clock.wall())
        return Peer(member, client, [])

    def subscribe(self, peer: Peer, muted: bool = False) -> None:
        self.room.subscribed(peer.member, muted, self.clock.monotonic())


def test_join_gets_join_ack_then_roster_then_index() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    room.subscribe(alice)
    bob = room.connect("b-1", "bob")
    kinds = [type(e) for e in bob.deliver()]
    assert kinds == [JoinAckReceived, AudioStreamIdInfoReceived, IndexReceived]
    (entry,) = bob.roster()
    assert (entry.attendee_id, entry.external_user_id, entry.muted) == ("a-1", "alice", False)


def test_first_subscribe_announces_the_attendee_to_everyone_including_itself() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    room.subscribe(alice)
    bob = room.connect("b-1", "bob")
    room.subscribe(bob)
    assert [(s.attendee_id, s.audio_stream_id) for s in alice.roster()] == [("a-1", 1), ("b-1", 2)]
    assert [s.attendee_id for s in bob.roster()] == ["a-1", "b-1"]


def test_mute_is_broadcast_with_an_explicit_false() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    bob = room.connect("b-1", "bob")
    room.subscribe(alice)
    room.subscribe(bob)
    room.room.mute(alice.member, True, room.clock.monotonic())
    room.room.mute(alice.member, False, room.clock.monotonic())
    updates = [s for s in bob.roster() if s.attendee_id is None]
    assert [(s.audio_stream_id, s.muted) for s in updates] == [(1, True), (1, False)]


def test_data_messages_fan_out_stamped_and_never_echo() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    bob = room.connect("b-1", "bob")
    room.room.data_messages(
        alice.member, [DataMessage("chat", b"hello")], room.clock.monotonic(), 1_800_000_000.5
    )
    (received,) = bob.data()
    assert received.sender_attendee_id == "a-1"
    assert received.sender_external_user_id == "alice"
    assert received.ingest_time_ns == 1_800_000_000_500_000_000
    assert alice.data() == []


def test_messages_with_a_lifetime_are_replayed_to_late_joiners_until_they_expire() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    now = room.clock.monotonic()
    room.room.data_messages(
        alice.member,
        [DataMessage("keep", b"1", lifetime_ms=10_000), DataMessage("drop", b"2")],
        now,
        room.clock.wall(),
    )
    late = room.connect("c-1", "carol")
    assert [m.topic for m in late.data()] == ["keep"]
    room.clock.advance(10)
    later = room.connect("d-1", "dave")
    assert later.data() == []


def test_the_cache_keeps_at_most_1024_messages() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    for i in range(CACHE_SIZE + 10):
        room.clock.advance(0.02)  # stay under the throttle
        room.room.data_messages(
            alice.member,
            [DataMessage("t", str(i).encode(), lifetime_ms=300_000)],
            room.clock.monotonic(),
            room.clock.wall(),
        )
    late = room.connect("z-1", "zed")
    data = late.data()
    assert len(data) == CACHE_SIZE
    assert data[0].data == b"10"


def test_throttled_messages_return_to_the_sender_with_zero_ingest_time() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    bob = room.connect("b-1", "bob")
    burst = [DataMessage("t", b"x")] * 250
    room.room.data_messages(alice.member, burst, room.clock.monotonic(), room.clock.wall())
    assert len(bob.data()) == 200
    returned = alice.data()
    assert len(returned) == 50
    assert all(m.ingest_time_ns == 0 for m in returned)


def test_leave_announces_a_clean_departure() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    bob = room.connect("b-1", "bob")
    room.subscribe(alice)
    room.subscribe(bob)
    room.room.leave(alice.member, room.clock.monotonic())
    departure = bob.roster()[-1]
    assert departure.audio_stream_id == 1 and departure.attendee_id is None
    assert departure.dropped is None and departure.muted is None
    assert room.departures == [("a-1", False)]


def test_silence_for_fifteen_seconds_is_a_drop_but_a_reconnect_is_not() -> None:
    room = Room()
    alice = room.connect("a-1", "alice", audio_session_id=7)
    bob = room.connect("b-1", "bob")
    room.subscribe(alice)
    room.subscribe(bob)
    room.room.closed(alice.member, room.clock.monotonic())  # socket lost, no LEAVE
    room.clock.advance(5)
    bob.member.touch(room.clock.monotonic())
    again = room.connect("a-1", "alice", audio_session_id=7)
    room.subscribe(again)
    room.clock.advance(DROP_AFTER)
    bob.member.touch(room.clock.monotonic())
    again.member.touch(room.clock.monotonic())
    room.room.handle_timer(room.clock.monotonic())
    assert room.departures == []
    assert [s.attendee_id for s in again.roster() if s.attendee_id] == ["b-1", "a-1"]
    room.clock.advance(DROP_AFTER)
    bob.member.touch(room.clock.monotonic())
    room.room.handle_timer(room.clock.monotonic())
    assert room.departures == [("a-1", True)]
    assert bob.roster()[-1].dropped is True


def test_joining_from_another_device_ends_the_old_session_with_301() -> None:
    room = Room()
    first = room.connect("a-1", "alice", audio_session_id=1)
    room.connect("a-1", "alice", audio_session_id=2)
    statuses = [e.status for e in first.deliver() if isinstance(e, AudioStatusReceived)]
    assert statuses == [301]
    room.clock.advance(0.2)
    first.member.session.handle_timer(room.clock.monotonic())
    assert first.member.session.close_code() == 4403


def test_delete_attendee_and_meeting_end_send_their_statuses() -> None:
    room = Room()
    alice = room.connect("a-1", "alice")
    share = room.connect("a-1#content", "alice")
    bob = room.connect("b-1", "bob")
    room.room.remove_attendee("a-1", room.clock.monotonic())
    for peer in (alice, share):
        assert [e.status for e in peer.deliver() if isinstance(e, AudioStatusReceived)] == [411]
    room.room.end(room.clock.monotonic())
    assert [e.status for e in bob.deliver() if isinstance(e, AudioStatusReceived)] == [410]
    room.clock.advance(0.2)
    bob.member.session.handle_timer(room.clock.monotonic())
    assert bob.member.session.close_code() == 4410


def test_index_carries_the_codecs_every_member_decodes() -> None:
    def intersections(peer: Peer) -> list[tuple[C, ...]]:
        return [
            e.supported_receive_codec_intersection
            for e in peer.deliver()
            if isinstance(e, IndexReceived)
        ]

    room = Room()
    alice = room.connect("a-1", "alice")
    bob = room.connect("b-1", "bob")
    assert intersections(alice)[-1] == (), "no offer yet: no restriction"
    room.room.set_receive_codecs(
        alice.member, frozenset({V.VP8, V.H264_CONSTRAINED_BASELINE, V.VP9_PROFILE_0})
    )
    assert intersections(bob)[-1] == (C.VP8, C.H264_CONSTRAINED_BASELINE_PROFILE, C.VP9_PROFILE_0)
    room.room.set_receive_codecs(bob.member, frozenset({V.H264_CONSTRAINED_BASELINE, V.AV1_MAIN}))
    assert intersections(alice)[-1] == (C.H264_CONSTRAINED_BASELINE_PROFILE,)
    count = len(intersections(alice))
    room.room.set_receive_codecs(bob.member, frozenset({V.H264_CONSTRAINED_BASELINE}))
    assert len(intersections(alice)) == count, "an unchanged intersection sends no INDEX"
    room.room.leave(bob.member, room.clock.monotonic())
    assert intersections(alice)[-1] == (
        C.VP8,
        C.H264_CONSTRAINED_BASELINE_PROFILE,
        C.VP9_PROFILE_0,
    ), "the intersection follows departures"

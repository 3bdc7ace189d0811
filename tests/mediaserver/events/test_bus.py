"""The event bus between the registry, the gateway hooks and the targets (no sockets)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mediaserver.config import ServerConfig, add_arguments, config_from_args
from mediaserver.events import EventBus, MeetingEvent, sends_video
from mediaserver.events.aws import AwsPublisher
from mediaserver.events.catalogue import EventType
from mediaserver.events.log import EventLog
from mediaserver.events.webhook import WebhookSink
from mediaserver.gateway.room import Member
from mediaserver.registry import MeetingRegistry, SqliteStore
from signaling.events import SubscribeReceived
from signaling.messages import MediaType, StreamDescriptor, StreamServiceType
from signaling.session import SignalingSession
from tests.helpers.clock import FakeClock

AUDIO = StreamDescriptor(stream_id=1, group_id=1, media_type=MediaType.AUDIO)
VIDEO = StreamDescriptor(stream_id=2, group_id=1, media_type=MediaType.VIDEO)


def subscribe(duplex: StreamServiceType, *streams: StreamDescriptor) -> SubscribeReceived:
    return SubscribeReceived(
        duplex=duplex,
        sdp_offer="v=0",
        compressed_sdp_offer=None,
        send_streams=tuple(streams),
        receive_stream_ids=(),
        audio_host=None,
        audio_checkin=False,
        audio_muted=None,
        video_subscription_configuration=(),
    )


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.registry = MeetingRegistry(SqliteStore(tmp_path / "db"), now=self.clock.wall())
        self.log = EventLog(tmp_path / "events.jsonl", max_bytes=1 << 20, keep=2)
        self.bus = EventBus(self.clock, log=self.log)
        self.events: list[MeetingEvent] = []
        self.bus.listeners.append(self.events.append)
        self.registry.add_listener(self.bus.on_registry_event)
        self.meeting = self.registry.create_meeting(
            {
                "MediaRegion": "us-east-1",
                "ExternalMeetingId": "ext",
                "NotificationsConfiguration": {
                    "SqsQueueArn": "arn:aws:sqs:us-east-1:123456789012:q"
                },
            },
            self.clock.wall(),
        )

    def member(self, external_user_id: str, content: bool = False) -> Member:
        attendee = self.registry.create_attendee(self.meeting, external_user_id, None)
        now = self.clock.monotonic()
        member = Member(
            SignalingSession(now=now, wall_clock=self.clock.wall, idle_timeout=None),
            attendee.attendee_id + ("#content" if content else ""),
            external_user_id,
            connected_at=now,
            last_activity=now,
            audio_session_id=5,
        )
        member.app_data["meeting"] = self.meeting
        return member

    def names(self) -> list[str]:
        return [e.name for e in self.events]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_registry_events_become_meeting_events(world: World) -> None:
    attendee = world.registry.create_attendee(world.meeting, "u1", None)
    world.registry.update_capabilities(
        world.meeting,
        attendee.attendee_id,
        {"Audio": "SendReceive", "Video": "None", "Content": "None"},
    )
    world.registry.delete_attendee(world.meeting, attendee.attendee_id)
    world.registry.delete_meeting(world.meeting.meeting_id, world.clock.wall())
    assert world.names() == [
        "MeetingStarted",
        "AttendeeAdded",
        "AttendeeCapabilitiesUpdated",
        "AttendeeDeleted",
        "MeetingEnded",
    ]
    first = world.events[0]
    assert first.meeting.sqs_queue_arn == "arn:aws:sqs:us-east-1:123456789012:q"
    assert first.envelope["detail"]["timestamp"] == int(world.clock.wall() * 1000)
    assert world.events[2].envelope["detail"]["attendeeCapabilities"] == {
        "audio": "SendReceive",
        "video": "None",
        "content": "None",
    }
    assert world.bus.emitted["AttendeeAdded"] == 1


def test_an_idle_meeting_that_auto_ends_sends_meeting_ended(world: World) -> None:
    member = world.member("idle")
    world.bus.member_joined(member)
    world.clock.advance(301)
    world.registry.handle_timer(world.clock.wall())
    assert world.names()[-2:] == ["AttendeeLeft", "MeetingEnded"]
    assert world.bus.tracker.present_count() == 0


def test_gateway_hooks_give_join_video_and_departure_events(world: World) -> None:
    member = world.member("u1")
    world.bus.member_joined(member)
    world.bus.member_subscribed(member, subscribe(StreamServiceType.RX, AUDIO))
    world.bus.member_subscribed(member, subscribe(StreamServiceType.DUPLEX, AUDIO, VIDEO))
    world.bus.member_subscribed(member, subscribe(StreamServiceType.RX, AUDIO))
    world.bus.member_departed(member, dropped=True)
    assert world.names()[2:] == [
        "AttendeeJoined",
        "AttendeeVideoStarted",
        "AttendeeVideoStopped",
        "AttendeeDropped",
    ]
    assert world.bus.tracker.audio_drops == 1
    joined = world.events[2].envelope["detail"]
    assert joined["attendeeId"] == member.attendee_id
    assert joined["externalUserId"] == "u1"


def test_a_content_share_subscribing_with_video_starts_content_video(world: World) -> None:
    share = world.member("u2", content=True)
    world.bus.member_joined(share)
    world.bus.member_subscribed(share, subscribe(StreamServiceType.TX, VIDEO))
    world.bus.member_departed(share, dropped=False)
    assert world.names()[2:] == [
        "AttendeeContentJoined",
        "AttendeeContentVideoStarted",
        "AttendeeContentVideoStopped",
        "AttendeeContentLeft",
    ]


def test_sends_video_reads_duplex_and_the_send_streams() -> None:
    assert not sends_video(subscribe(StreamServiceType.RX, AUDIO, VIDEO))
    assert not sends_video(subscribe(StreamServiceType.DUPLEX, AUDIO))
    assert sends_video(subscribe(StreamServiceType.DUPLEX, AUDIO, VIDEO))
    assert sends_video(subscribe(StreamServiceType.TX, StreamDescriptor(stream_id=3)))


def test_a_member_without_a_meeting_is_ignored(world: World) -> None:
    member = world.member("u3")
    member.app_data.clear()
    world.bus.member_joined(member)
    world.bus.member_departed(member, dropped=False)
    assert world.names() == ["MeetingStarted", "AttendeeAdded"]


def test_failing_listeners_never_reach_the_caller(world: World) -> None:
    def broken(event: MeetingEvent) -> None:
        raise RuntimeError("listener bug")

    world.bus.listeners.insert(0, broken)
    world.registry.create_attendee(world.meeting, "u4", None)  # does not raise
    assert world.names()[-1] == "AttendeeAdded"


def test_every_event_is_written_to_the_events_log(world: World, tmp_path: Path) -> None:
    world.member("u5")
    world.bus.transcription_changed(
        world.meeting, EventType.TRANSCRIPTION_STARTED, region="us-east-1", configuration="{}"
    )
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.event_id for e in world.events]
    assert world.names()[-1] == "TranscriptionStarted"


async def test_from_config_builds_the_configured_targets(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--webhook-url", "http://127.0.0.1:9/a,http://127.0.0.1:9/b",
            "--webhook-url", "https://example.invalid/c",
            "--events-aws-endpoint-url", "http://127.0.0.1:9",
            "--data-dir", str(tmp_path),
        ]
    )  # fmt: skip
    config = config_from_args(args, environ={"CARILLON_DROP_AFTER": "2.5"})
    assert config.webhook_urls == (
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
        "https://example.invalid/c",
    )
    assert config.drop_after == 2.5
    bus = EventBus.from_config(config, FakeClock())
    assert [type(s) for s in bus.sinks] == [WebhookSink] * 3 + [AwsPublisher] * 2
    assert [s.target for s in bus.sinks[3:]] == ["sqs", "sns"]
    assert bus.log is not None and bus.log.path == tmp_path / "events.jsonl"
    await bus.stop(0.1)


def test_config_reads_urls_from_the_environment_and_checks_them() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {"CARILLON_WEBHOOK_URLS": "http://a/1, http://b/2", "CARILLON_EVENTS_LOG_MAX_BYTES": "0"}
    config = config_from_args(parser.parse_args([]), environ=env)
    assert config.webhook_urls == ("http://a/1", "http://b/2")
    assert EventBus.from_config(config, FakeClock()).log is None
    with pytest.raises(SystemExit):
        config_from_args(parser.parse_args(["--webhook-url", "ftp://x"]), environ={})
    assert ServerConfig().webhook_urls == ()
    assert "--drop-after" not in parser.format_help()

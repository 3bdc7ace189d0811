"""``/metrics``: names, labels and values, parsed with prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mediaserver.config import ServerConfig
from mediaserver.events import EventBus
from mediaserver.events.envelope import AttendeeInfo, MeetingInfo
from mediaserver.gateway import SignalingGateway
from mediaserver.gateway.room import Member
from mediaserver.media import MediaServer
from mediaserver.metrics import ApiCallStats, ApiMetricsMiddleware, Metrics, operation_of
from mediaserver.registry import MeetingRegistry, SqliteStore
from mediaserver.sfu.pacer import Pacer
from mediaserver.transport.peer import PeerTransport
from signaling.events import SubscribeReceived
from signaling.messages import StreamServiceType
from signaling.session import SignalingSession
from tests.helpers.clock import FakeClock
from tests.helpers.vectors import load

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CHIME_SERVICE_METRICS = [
    "AttendeeAuthorizationSuccess",
    "AttendeeAuthorizationError",
    "AttendeeAudioDrops",
    "AttendeeContentDrops",
    "MeetingSQSNotificationErrors",
    "MeetingSNSNotificationErrors",
]


def parse(text: bytes) -> tuple[Samples, dict[str, str]]:
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text.decode()):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.registry = MeetingRegistry(SqliteStore(tmp_path / "db"), now=self.clock.wall())
        self.media = MediaServer(ServerConfig(), self.clock)
        self.events = EventBus(self.clock)
        self.registry.add_listener(self.events.on_registry_event)
        self.gateway = SignalingGateway(self.registry, self.clock, self.media, observer=self.events)
        self.metrics = Metrics(
            registry=self.registry, gateway=self.gateway, media=self.media, events=self.events
        )

    def peer(self) -> PeerTransport:
        certificate = self.media.certificate
        peer = PeerTransport(
            "meeting m attendee a", certificate, "ufrag", "pwd", [certificate.fingerprint], 0.0
        )
        self.media.transport.peers[peer.local_ufrag] = peer
        return peer

    def scrape(self) -> Samples:
        return parse(self.metrics.render())[0]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_every_chime_metric_is_exposed_as_a_counter(world: World) -> None:
    samples, types = parse(world.metrics.render())
    for name in CHIME_SERVICE_METRICS:
        assert types[name] == "counter"
        assert value(samples, name + "_total") == 0
    for name in ("CallCount", "ErrorCount", "ThrottleCount"):
        assert types[name] == "counter"
    assert types["carillon_active_meetings"] == "gauge"
    assert types["carillon_mixer_tick_seconds"] == "histogram"


def test_meeting_and_attendee_figures_follow_the_registry_and_the_events(world: World) -> None:
    meeting = world.registry.create_meeting(
        {"MediaRegion": "us-east-1", "ExternalMeetingId": "e"}, world.clock.wall()
    )
    info = MeetingInfo(meeting.meeting_id, "e", "us-east-1")
    tracker = world.events.tracker
    connection, share = object(), object()
    tracker.joined(info, AttendeeInfo("a", "x"), connection=connection, audio_session_id=1,
                   wall=1.0)  # fmt: skip
    tracker.joined(info, AttendeeInfo("a#content", "x"), connection=share, audio_session_id=1,
                   wall=1.0)  # fmt: skip
    tracker.departed(info, "a#content", connection=share, dropped=True, wall=2.0)
    world.events._flush()
    world.gateway.stats["connections"] += 3
    world.gateway.stats["rejected"] += 1
    samples = world.scrape()
    assert value(samples, "carillon_active_meetings") == 1
    assert value(samples, "carillon_active_attendees", kind="attendee") == 1
    assert value(samples, "carillon_active_attendees", kind="content") == 0
    assert value(samples, "AttendeeContentDrops_total") == 1
    assert value(samples, "AttendeeAudioDrops_total") == 0
    assert value(samples, "AttendeeAuthorizationSuccess_total") == 3
    assert value(samples, "AttendeeAuthorizationError_total") == 1
    assert value(samples, "carillon_events_total", type="MeetingStarted") == 1
    assert value(samples, "carillon_events_total", type="AttendeeContentDropped") == 1


def test_peer_counters_stay_monotonic_when_peers_go_away(world: World) -> None:
    peer = world.peer()
    peer.stats.rtp_in, peer.stats.bytes_in, peer.stats.srtp_errors = 10, 1000, 2
    peer.stats.rtp_out, peer.stats.bytes_out = 7, 700
    samples = world.scrape()
    assert value(samples, "carillon_media_packets_total", direction="in", kind="rtp") == 10
    assert value(samples, "carillon_media_packets_total", direction="out", kind="rtp") == 7
    assert value(samples, "carillon_media_bytes_total", direction="in") == 1000
    assert value(samples, "carillon_transport_errors_total", kind="srtp_unprotect") == 2
    assert value(samples, "carillon_dropped_packets_total", reason="srtp_error") == 2
    # The peer counts a few more packets, then is removed before the next scrape.
    peer.stats.rtp_in = 12
    del world.media.transport.peers[peer.local_ufrag]
    other = world.peer()
    other.stats.rtp_in = 5
    samples = world.scrape()
    assert value(samples, "carillon_media_packets_total", direction="in", kind="rtp") == 17
    samples = world.scrape()
    assert value(samples, "carillon_media_packets_total", direction="in", kind="rtp") == 17


def test_transport_counters_are_read_at_scrape_time(world: World) -> None:
    stats = world.media.transport.stats
    stats.stun_in, stats.dtls_in, stats.rtp_in, stats.garbage = 4, 3, 2, 1
    stats.datagrams_out, stats.unknown_address = 9, 5
    world.media.agent.stats.bad_integrity = 6
    world.media.ticks = 50
    samples = world.scrape()
    assert value(samples, "carillon_udp_datagrams_total", direction="in", kind="stun") == 4
    assert value(samples, "carillon_udp_datagrams_total", direction="in", kind="dtls") == 3
    assert value(samples, "carillon_udp_datagrams_total", direction="in", kind="srtp") == 2
    assert value(samples, "carillon_udp_datagrams_total", direction="out", kind="all") == 9
    assert value(samples, "carillon_dropped_packets_total", reason="unknown_address") == 5
    assert value(samples, "carillon_dropped_packets_total", reason="not_rtp_stun_dtls") == 1
    assert value(samples, "carillon_transport_errors_total", kind="stun_bad_integrity") == 6
    assert value(samples, "carillon_audio_ticks_total") == 50


def test_hooks_for_the_mixer_and_the_sfu(world: World) -> None:
    world.metrics.mixer_tick_seconds.observe(0.003)
    world.metrics.count_forwarded("video", 5)
    world.metrics.count_dropped("egress_queue_full", 2)
    samples = world.scrape()
    assert value(samples, "carillon_mixer_tick_seconds_count") == 1
    assert value(samples, "carillon_mixer_tick_seconds_bucket", le="0.005") == 1
    assert value(samples, "carillon_mixer_tick_seconds_bucket", le="0.002") == 0
    assert value(samples, "carillon_forwarded_packets_total", kind="video") == 5
    assert value(samples, "carillon_dropped_packets_total", reason="egress_queue_full") == 2


def test_pacer_drops_and_waits_are_counted_and_outlive_the_subscriber(world: World) -> None:
    media = world.media
    now = world.clock.monotonic()
    session = SignalingSession(now=now, wall_clock=world.clock.wall, idle_timeout=None)
    member = Member(session, "a-1", "alice", connected_at=now, last_activity=now)
    event = SubscribeReceived(
        duplex=StreamServiceType.DUPLEX, sdp_offer=load("sdp/aiortc_offer.sdp").decode(),
        compressed_sdp_offer=None, send_streams=(), receive_stream_ids=(0, 0),
        audio_host=None, audio_checkin=False, audio_muted=False,
        video_subscription_configuration=(),
    )  # fmt: skip
    media.subscribe(member, event, now)
    peer = member.app_data["peer"]
    assert isinstance(peer, PeerTransport)
    owner: Any = peer.owner
    pacer = owner.pacer
    assert isinstance(pacer, Pacer)
    pacer.set_rate(100_000)  # a bucket of two 1500-byte packets, a queue of 256
    sent = sum(pacer.offer(bytes(1500), now) for _ in range(300))
    assert sent == 2
    samples = world.scrape()
    assert value(samples, "carillon_dropped_packets_total", reason="egress_queue_full") == 42
    assert value(samples, "carillon_dropped_packets_total", reason="egress_stale") == 0
    assert value(samples, "carillon_paced_packets_total") == 298
    assert value(samples, "carillon_pacer_backlog_packets") == 256
    # The subscriber leaves: what waited is dropped and counted, nothing goes backwards.
    media.close(member)
    samples = world.scrape()
    assert value(samples, "carillon_dropped_packets_total", reason="egress_queue_full") == 42
    assert value(samples, "carillon_dropped_packets_total", reason="egress_stale") == 256
    assert value(samples, "carillon_paced_packets_total") == 298
    assert value(samples, "carillon_pacer_backlog_packets") == 0


def test_no_label_carries_a_meeting_or_attendee_id(world: World) -> None:
    meeting = world.registry.create_meeting(
        {"MediaRegion": "us-east-1", "ExternalMeetingId": "e"}, world.clock.wall()
    )
    attendee = world.registry.create_attendee(meeting, "someone", None)
    world.peer()
    for (_, labels), _v in world.scrape().items():
        for _, label_value in labels:
            assert meeting.meeting_id not in label_value
            assert attendee.attendee_id not in label_value


async def test_the_handler_serves_the_text_format(world: World) -> None:
    status, headers, body = await world.metrics.handle({}, b"")
    assert status == 200
    assert dict(headers)[b"content-type"].startswith(b"text/plain; version=0.0.4")
    assert b"AttendeeAuthorizationSuccess_total" in body


Scope = MutableMapping[str, Any]


def app_answering(status: int) -> Callable[[Scope, Any, Any], Awaitable[None]]:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def http(method: str, path: str, query: bytes = b"") -> Scope:
    return {"type": "http", "method": method, "path": path, "query_string": query}


async def test_api_calls_errors_and_throttles_are_counted_per_operation() -> None:
    stats = ApiCallStats()
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request"}

    for status, scope in (
        (201, http("POST", "/meetings")),
        (404, http("GET", "/meetings/abc")),
        (429, http("POST", "/meetings/abc/attendees", b"operation=batch-create")),
        (200, http("GET", "/health")),
        (404, http("GET", "/wat")),
    ):
        await ApiMetricsMiddleware(app_answering(status), stats)(scope, receive, send)
    await ApiMetricsMiddleware(app_answering(200), stats)({"type": "websocket"}, receive, send)
    assert stats.calls == {
        "CreateMeeting": 1,
        "GetMeeting": 1,
        "BatchCreateAttendee": 1,
        "Unknown": 1,
    }
    assert stats.errors == {"GetMeeting": 1, "Unknown": 1}
    assert stats.throttles == {"BatchCreateAttendee": 1}
    assert len(sent) == 12  # every message passed through unchanged


def test_operation_names_come_from_the_router() -> None:
    assert operation_of(http("DELETE", "/meetings/m/attendees/a")) == "DeleteAttendee"
    assert operation_of(http("POST", "/tags", b"operation=tag-resource")) == "TagResource"
    assert operation_of(http("GET", "/metrics")) is None


def test_api_counts_appear_with_an_operation_label_only() -> None:
    metrics = Metrics()
    metrics.api.record("CreateMeeting", 201)
    metrics.api.record("CreateMeeting", 400)
    metrics.api.record("CreateMeeting", 429)
    samples, _ = parse(metrics.render())
    assert value(samples, "CallCount_total", operation="CreateMeeting") == 3
    assert value(samples, "ErrorCount_total", operation="CreateMeeting") == 1
    assert value(samples, "ThrottleCount_total", operation="CreateMeeting") == 1

"""``GET /metrics``: Prometheus text exposition of the Chime service metrics and our own.

Names (meetings-digest.md §10). Counters show with prometheus-client's ``_total`` sample
suffix, e.g. the family ``AttendeeAuthorizationSuccess`` is scraped as
``AttendeeAuthorizationSuccess_total``.

* Chime service metrics (``AWS/ChimeSDK``), unprefixed: ``AttendeeAuthorizationSuccess``,
  ``AttendeeAuthorizationError``, ``AttendeeAudioDrops``, ``AttendeeContentDrops``,
  ``MeetingSQSNotificationErrors``, ``MeetingSNSNotificationErrors``.
* Chime API usage metrics (``AWS/Usage``): ``CallCount``, ``ErrorCount``,
  ``ThrottleCount``, labelled ``operation`` (the API name: the ``Resource`` dimension; the
  other dimensions are constants). ``ErrorCount`` counts answers >= 400 other than 429,
  which ``ThrottleCount`` counts; requests naming no operation are ``operation="Unknown"``.
* Carillon's own figures, ``carillon_*`` (see :class:`MetricsCollector`).

Almost everything is read at scrape time from counters the server keeps anyway
(``TransportStats``, ``PeerStats``, ICE and DTLS counters, gateway, registry, event
sinks): nothing is added per packet. Labels are bounded: no meeting or attendee ids.
Subsystems still being built report through the hooks of :class:`Metrics`
(``mixer_tick_seconds``, :meth:`Metrics.count_forwarded`, :meth:`Metrics.count_dropped`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from mediaserver.control.api import parse_query
from mediaserver.control.router import UnknownOperation, match

if TYPE_CHECKING:
    from mediaserver.events.bus import EventBus
    from mediaserver.gateway.server import SignalingGateway
    from mediaserver.media import MediaServer
    from mediaserver.registry import MeetingRegistry
    from mediaserver.transport.peer import PeerTransport

__all__ = ["ApiCallStats", "ApiMetricsMiddleware", "Metrics", "MetricsCollector"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which ``generate_latest`` writes and every Prometheus reads."""
UNKNOWN_OPERATION = "Unknown"
NOT_COUNTED_PATHS = frozenset({"/health", "/metrics"})


# -- API usage ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ApiCallStats:
    """CallCount / ErrorCount / ThrottleCount per operation."""

    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    throttles: Counter[str] = field(default_factory=Counter)

    def record(self, operation: str, status: int) -> None:
        self.calls[operation] += 1
        if status == 429:
            self.throttles[operation] += 1
        elif status >= 400:
            self.errors[operation] += 1


def operation_of(scope: Scope) -> str | None:
    """The API operation an HTTP request names; None for paths that are not the API."""
    path: str = scope.get("path", "")
    if path in NOT_COUNTED_PATHS:
        return None
    raw_query = scope.get("query_string", b"").decode("latin-1")
    operation = next((v for k, v in parse_query(raw_query) if k == "operation"), None)
    try:
        return match(scope.get("method", "GET"), path, operation).operation
    except UnknownOperation:
        return UNKNOWN_OPERATION


class ApiMetricsMiddleware:
    """Wraps the control-plane ASGI app and records each API request's operation and status."""

    def __init__(self, app: Asgi, stats: ApiCallStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = operation_of(scope) if scope["type"] == "http" else None
        if operation is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.stats.record(operation, status)


# -- media peers ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _PeerTotals:
    rtp_in: int = 0
    rtcp_in: int = 0
    rtp_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    srtp_errors: int = 0
    before_dtls: int = 0
    dtls_handshake_failures: int = 0
    dtls_malformed: int = 0
    dtls_dropped: int = 0
    dtls_application_data: int = 0

    def add_peer(self, peer: PeerTransport) -> None:
        s = peer.stats
        c = peer.dtls.counters
        self.rtp_in += s.rtp_in
        self.rtcp_in += s.rtcp_in
        self.rtp_out += s.rtp_out
        self.bytes_in += s.bytes_in
        self.bytes_out += s.bytes_out
        self.srtp_errors += s.srtp_errors
        self.before_dtls += s.unknown_before_dtls
        self.dtls_handshake_failures += c.handshake_failures
        self.dtls_malformed += c.malformed_datagrams
        self.dtls_dropped += c.dropped_datagrams
        self.dtls_application_data += c.application_data_dropped

    def plus(self, other: _PeerTotals) -> _PeerTotals:
        result = _PeerTotals()
        for f in fields(_PeerTotals):
            setattr(result, f.name, getattr(self, f.name) + getattr(other, f.name))
        return result


class _PeerLedger:
    """Keeps peer counters monotonic although peers come and go.

    Peers seen at a scrape are remembered; when one is gone at a later scrape its final
    counters (the object is still referenced here) move into ``retired``. A peer created
    and removed between two scrapes is not seen.
    """

    def __init__(self) -> None:
        self.retired = _PeerTotals()
        self._seen: dict[int, PeerTransport] = {}

    def totals(self, peers: Iterable[PeerTransport]) -> _PeerTotals:
        current = {id(p): p for p in peers}
        for key, peer in self._seen.items():
            if key not in current or current[key] is not peer:
                self.retired.add_peer(peer)
        self._seen = current
        live = _PeerTotals()
        for peer in current.values():
            live.add_peer(peer)
        return self.retired.plus(live)


# -- the collector ---------------------------------------------------------------------------------


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(
    name: str, doc: str, label: str, values: Iterable[tuple[str, float]], gauge: bool = False
) -> Metric:
    family: CounterMetricFamily | GaugeMetricFamily
    if gauge:
        family = GaugeMetricFamily(name, doc, labels=[label])
    else:
        family = CounterMetricFamily(name, doc, labels=[label])
    for label_value, value in values:
        family.add_metric([label_value], value)
    return family


class MetricsCollector(Collector):
    """Reads the server's counters at scrape time."""

    def __init__(
        self,
        *,
        registry: MeetingRegistry | None = None,
        gateway: SignalingGateway | None = None,
        media: MediaServer | None = None,
        events: EventBus | None = None,
        api: ApiCallStats | None = None,
        hooks: _HookCounters | None = None,
    ) -> None:
        self.registry = registry
        self.gateway = gateway
        self.media = media
        self.events = events
        self.api = api or ApiCallStats()
        self.hooks = hooks or _HookCounters()
        self._peers = _PeerLedger()

    def collect(self) -> Iterable[Metric]:
        yield from self._chime()
        yield from self._api()
        yield from self._meetings()
        yield from self._media()
        yield from self._events()

    def _chime(self) -> Iterable[Metric]:
        gateway_stats = self.gateway.stats if self.gateway is not None else {}
        tracker = self.events.tracker if self.events is not None else None
        yield _counter(
            "AttendeeAuthorizationSuccess",
            "Signaling connections whose join token was accepted.",
            gateway_stats.get("connections", 0),
        )
        yield _counter(
            "AttendeeAuthorizationError",
            "Signaling connections refused (bad or deleted token, ended meeting, bad path).",
            gateway_stats.get("rejected", 0),
        )
        yield _counter(
            "AttendeeAudioDrops",
            "Attendees dropped (AttendeeDropped events).",
            tracker.audio_drops if tracker is not None else 0,
        )
        yield _counter(
            "AttendeeContentDrops",
            "Content shares dropped (AttendeeContentDropped events).",
            tracker.content_drops if tracker is not None else 0,
        )
        for target, name in (("sqs", "MeetingSQSNotificationErrors"),
                             ("sns", "MeetingSNSNotificationErrors")):  # fmt: skip
            failures = self.events.sink_stats(target)[1] if self.events is not None else 0
            yield _counter(name, f"Failed {target.upper()} event deliveries (attempts).", failures)

    def _api(self) -> Iterable[Metric]:
        stats = self.api
        for name, doc, values in (
            ("CallCount", "Control-plane API calls, by operation.", stats.calls),
            ("ErrorCount", "Control-plane API errors (not 429), by operation.", stats.errors),
            ("ThrottleCount", "Control-plane API calls throttled (429), by operation.",
             stats.throttles),
        ):  # fmt: skip
            yield _labelled(name, doc, "operation", sorted(values.items()))

    def _meetings(self) -> Iterable[Metric]:
        if self.registry is not None:
            yield GaugeMetricFamily(
                "carillon_active_meetings",
                "Meetings that exist (created and not ended).",
                value=sum(1 for _ in self.registry.meetings),
            )
        if self.events is not None:
            tracker = self.events.tracker
            yield _labelled(
                "carillon_active_attendees",
                "Attendees joined now (kind attendee, or content for content shares).",
                "kind",
                [("attendee", tracker.present_count()), ("content", tracker.present_count(True))],
                gauge=True,
            )
        if self.gateway is not None:
            gateway = self.gateway
            yield GaugeMetricFamily(
                "carillon_signaling_connections",
                "Signaling WebSocket connections held by the rooms.",
                value=sum(len(room.members) for room in gateway.rooms.values()),
            )
            yield _counter(
                "carillon_signaling_malformed_frames",
                "Signaling frames rejected as malformed.",
                gateway.stats.get("malformed_frames", 0),
            )

    def _media(self) -> Iterable[Metric]:
        hooks = self.hooks
        dropped: Counter[str] = Counter(hooks.dropped)
        media = self.media
        if media is not None:
            transport = media.transport
            ts = transport.stats
            ice = media.agent.stats
            peers = self._peers.totals(transport.peers.values())
            datagrams = CounterMetricFamily(
                "carillon_udp_datagrams",
                "Datagrams on the media port, by direction and kind (RFC 7983 demux).",
                labels=["direction", "kind"],
            )
            for kind, value in (("stun", ts.stun_in), ("dtls", ts.dtls_in),
                                ("srtp", ts.rtp_in), ("other", ts.garbage)):  # fmt: skip
                datagrams.add_metric(["in", kind], value)
            datagrams.add_metric(["out", "all"], ts.datagrams_out)
            yield datagrams
            packets = CounterMetricFamily(
                "carillon_media_packets",
                "Decrypted RTP/RTCP packets in and RTP packets out, by direction and kind.",
                labels=["direction", "kind"],
            )
            packets.add_metric(["in", "rtp"], peers.rtp_in)
            packets.add_metric(["in", "rtcp"], peers.rtcp_in)
            packets.add_metric(["out", "rtp"], peers.rtp_out)
            yield packets
            yield _labelled(
                "carillon_media_bytes",
                "SRTP/SRTCP bytes received and sent, by direction.",
                "direction",
                [("in", peers.bytes_in), ("out", peers.bytes_out)],
            )
            yield _labelled(
                "carillon_transport_errors",
                "Transport errors and bad input, by kind.",
                "kind",
                [
                    ("srtp_unprotect", peers.srtp_errors),
                    ("dtls_handshake_failure", peers.dtls_handshake_failures),
                    ("dtls_malformed", peers.dtls_malformed),
                    ("stun_garbage", ice.garbage),
                    ("stun_bad_request", ice.bad_request),
                    ("stun_unknown_username", ice.unknown_username),
                    ("stun_bad_integrity", ice.bad_integrity),
                    ("stun_unknown_attribute", ice.unknown_attribute),
                    ("stun_role_conflict", ice.role_conflict),
                ],
            )
            yield _counter("carillon_ice_checks", "ICE connectivity checks answered.", ice.checks)
            yield _counter(
                "carillon_ice_consent_expired", "Peers whose ICE consent expired.", ice.expired
            )
            dropped["not_rtp_stun_dtls"] += ts.garbage
            dropped["unknown_address"] += ts.unknown_address
            dropped["before_dtls"] += peers.before_dtls
            dropped["srtp_error"] += peers.srtp_errors
            dropped["dtls_not_running"] += peers.dtls_dropped
            dropped["dtls_application_data"] += peers.dtls_application_data
            dropped["over_bitrate_cap"] += media.cap_dropped_packets
            paced_full, paced_stale, paced, backlog = media.pacer_totals()
            dropped["egress_queue_full"] += paced_full
            dropped["egress_stale"] += paced_stale
            yield _counter(
                "carillon_paced_packets",
                "Video packets that waited in a subscriber's pacer instead of leaving at once.",
                paced,
            )
            yield GaugeMetricFamily(
                "carillon_pacer_backlog_packets",
                "Video packets waiting in the subscribers' pacers.",
                value=backlog,
            )
            yield _counter(
                "carillon_video_frames_dropped_over_cap",
                "Uplink video frames dropped because the sender exceeded its bitrate cap.",
                media.cap_dropped_frames,
            )
            yield _counter(
                "carillon_bwe_probe_packets",
                "Padding packets sent to probe subscribers' downlinks.",
                media.probe_packets,
            )
            yield _counter("carillon_audio_ticks", "Audio clock ticks (20 ms).", media.ticks)
            yield _counter(
                "carillon_audio_late_ticks", "Audio clock ticks that ran late.", media.late_ticks
            )
        yield _labelled(
            "carillon_dropped_packets",
            "Packets dropped, by reason.",
            "reason",
            sorted(dropped.items()),
        )
        yield _labelled(
            "carillon_forwarded_packets",
            "Media packets forwarded to subscribers, by kind.",
            "kind",
            sorted(hooks.forwarded.items()),
        )

    def _events(self) -> Iterable[Metric]:
        events = self.events
        if events is None:
            return
        yield _labelled(
            "carillon_events",
            "Meeting events produced, by type (without the chime: prefix).",
            "type",
            sorted(events.emitted.items()),
        )
        targets = sorted({s.target for s in events.sinks})
        stats = {t: events.sink_stats(t) for t in targets}
        for index, (name, doc) in enumerate(
            (
                ("carillon_event_deliveries", "Events delivered, by target."),
                ("carillon_event_delivery_failures", "Failed delivery attempts, by target."),
                ("carillon_events_undelivered", "Events given up after retries, by target."),
                ("carillon_events_dropped", "Events dropped from a full queue, by target."),
            )
        ):
            yield _labelled(name, doc, "target", [(t, stats[t][index]) for t in targets])
        yield _labelled(
            "carillon_event_queue_depth",
            "Events waiting for delivery, by target.",
            "target",
            [(t, stats[t][4]) for t in targets],
            gauge=True,
        )
        if events.log is not None:
            yield _counter(
                "carillon_events_log_errors", "Failed writes to events.jsonl.", events.log.errors
            )


@dataclass(slots=True)
class _HookCounters:
    forwarded: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


# -- the endpoint ---------------------------------------------------------------------------------


class Metrics:
    """The metrics registry of one server and its ``GET /metrics`` handler.

    Hooks for subsystems being built (call them with bounded label values):

    * ``mixer_tick_seconds.observe(seconds)``: duration of one mixer tick.
    * :meth:`count_forwarded`: packets forwarded by the SFU, by kind (``audio``, ``video``).
    * :meth:`count_dropped`: packets dropped, by reason (``egress_queue_full``...).
    """

    def __init__(
        self,
        *,
        registry: MeetingRegistry | None = None,
        gateway: SignalingGateway | None = None,
        media: MediaServer | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.api = ApiCallStats()
        self._hooks = _HookCounters()
        self.registry = CollectorRegistry()
        self.collector = MetricsCollector(
            registry=registry,
            gateway=gateway,
            media=media,
            events=events,
            api=self.api,
            hooks=self._hooks,
        )
        self.registry.register(self.collector)
        self.mixer_tick_seconds = Histogram(
            "carillon_mixer_tick_seconds",
            "Duration of one audio mixer tick.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=self.registry,
        )

    def count_forwarded(self, kind: str, packets: int = 1) -> None:
        self._hooks.forwarded[kind] += packets

    def count_dropped(self, reason: str, packets: int = 1) -> None:
        self._hooks.dropped[reason] += packets

    def middleware(self, app: Asgi) -> ApiMetricsMiddleware:
        """Wrap the control-plane ASGI app to count API calls."""
        return ApiMetricsMiddleware(app, self.api)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(self.registry)

    async def handle(
        self, scope: Scope, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``GET /metrics`` (a ``ControlApi`` extra route; unauthenticated, like ``/health``)."""
        return 200, [(b"content-type", CONTENT_TYPE.encode())], self.render()

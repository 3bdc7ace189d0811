"""Meeting events end to end: a scripted meeting against ``carillon serve``.

A webhook receiver on loopback records every POST; ``moto_server`` plays SQS; ``/metrics``
is scraped before and after. The server runs with ``CARILLON_DROP_AFTER=1`` so a killed
client is dropped within about two seconds instead of fifteen.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.litepeer import LitePeer
from mediaserver.events import SIGNATURE_HEADER, verify_signature
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient, SignalingClosedError
from signaling.messages import MediaType, StreamDescriptor
from tests.helpers.moto import MOTO_CREDENTIALS, MotoServer, running_moto
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess, running_server

pytestmark = pytest.mark.timeout(60)

T = 10.0 * TIMEOUT_FACTOR
SECRET = "webhook-test-secret"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """A webhook receiver: answers 503 to the first ``fail_first`` requests, then 200."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail_first: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, meeting_id: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.event["detail"]["meetingId"] == meeting_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests += 1
                fail = state.requests <= state.fail_first
                if not fail:
                    state.deliveries.append(Delivery(dict(self.headers), body, time.time()))
            self.send_response(503 if fail else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/chime"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(scope="module")
def events_server(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver, moto: MotoServer
) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("carillon-events") / "data"
    args = [
        "--api-rate", "10000", "--api-burst", "10000",
        "--webhook-url", receiver.url,
        "--events-retry-base", "0.05",
        "--events-aws-endpoint-url", moto.endpoint,
        "--log-json",
    ]  # fmt: skip
    env = {**MOTO_CREDENTIALS, "CARILLON_WEBHOOK_SECRET": SECRET, "CARILLON_DROP_AFTER": "1"}
    with running_server(data_dir, args, env) as server:
        yield server


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def names(deliveries: list[Delivery]) -> list[tuple[str, str | None]]:
    return [
        (d.event["detail"]["eventType"], d.event["detail"].get("attendeeId")) for d in deliveries
    ]


async def test_a_scripted_meeting_produces_the_exact_event_sequence(
    events_server: ServerProcess, receiver: Receiver, moto: MotoServer
) -> None:
    chime = events_server.client()
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(
        QueueName="carillon-events.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    before = scrape(events_server)
    # The first webhook attempt fails: it is retried, and order is kept.
    with receiver.lock:
        receiver.fail_first = receiver.requests + 1

    meeting = await asyncio.to_thread(
        chime.create_meeting,
        ClientRequestToken=str(uuid.uuid4()),
        MediaRegion="eu-west-1",
        ExternalMeetingId="events-scenario",
        NotificationsConfiguration={"SqsQueueArn": queue_arn},
    )
    meeting_id = meeting["Meeting"]["MeetingId"]

    def got() -> list[Delivery]:
        return receiver.events(meeting_id)

    a = await asyncio.to_thread(
        chime.create_attendee, MeetingId=meeting_id, ExternalUserId="user-a"
    )
    b = await asyncio.to_thread(
        chime.create_attendee, MeetingId=meeting_id, ExternalUserId="user-b"
    )
    a_id, b_id = a["Attendee"]["AttendeeId"], b["Attendee"]["AttendeeId"]
    clients: list[SignalingClient] = []

    async def join(attendee: dict[str, Any], **options: Any) -> SignalingClient:
        client = SignalingClient(meeting, attendee, **options)
        clients.append(client)
        await client.connect(T)
        await client.join(T)
        return client

    async def wait_count(n: int, what: str) -> None:
        await eventually(lambda: len(got()) >= n, what)

    certificate = DtlsCertificate.generate()
    peers: list[LitePeer] = []

    async def offer() -> str:
        peer = LitePeer(certificate)
        peers.append(peer)
        await peer.start()
        return peer.offer()

    def camera(attendee_id: str) -> StreamDescriptor:
        return StreamDescriptor(
            stream_id=2, group_id=2, track_label="AmazonChimeExpressVideo",
            media_type=MediaType.VIDEO, max_bitrate_kbps=1400, framerate=15,
            attendee_id=attendee_id,
        )  # fmt: skip

    try:
        client_a = await join(a)
        await wait_count(4, "A joined")
        client_b = await join(b)
        await wait_count(5, "B joined")
        # A turns its camera on, then off (SUBSCRIBE with, then without, a video stream).
        await client_a.subscribe(await offer(), video_send_streams=[camera(a_id)])
        await wait_count(6, "A's video started")
        await client_a.subscribe(await offer())
        await wait_count(7, "A's video stopped")
        # A shares content: the <id>#content session joins, sends video, then leaves.
        share = await join(a, content_share=True)
        await wait_count(8, "A's content share joined")
        await share.subscribe(await offer(), video_send_streams=[camera(a_id + "#content")])
        await wait_count(9, "A's content video started")
        await share.leave(T)
        await wait_count(11, "A's content share left")
        await client_a.leave(T)
        await wait_count(12, "A left")
        await client_b.close()  # killed: no LEAVE; dropped after CARILLON_DROP_AFTER
        await wait_count(13, "B dropped")
        b_again = await join(b)
        await wait_count(14, "B joined again")
        # The same join token from another device (another audio session) moves the session.
        await join(b, audio_session_id=b_again.audio_session_id + 1)
        await wait_count(15, "B authorized")
        await asyncio.to_thread(
            chime.update_attendee_capabilities,
            MeetingId=meeting_id,
            AttendeeId=a_id,
            Capabilities={"Audio": "SendReceive", "Video": "Receive", "Content": "Receive"},
        )
        await asyncio.to_thread(chime.delete_attendee, MeetingId=meeting_id, AttendeeId=a_id)
        await wait_count(17, "capabilities and deletion")
        await asyncio.to_thread(chime.delete_meeting, MeetingId=meeting_id)
        await wait_count(19, "the end of the meeting")
        late = SignalingClient(meeting, b)
        clients.append(late)
        await late.connect(T)
        with pytest.raises(SignalingClosedError):
            await late.join(T)
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for peer in peers:
            peer.close()

    deliveries = got()
    assert names(deliveries) == [
        ("chime:MeetingStarted", None),
        ("chime:AttendeeAdded", a_id),
        ("chime:AttendeeAdded", b_id),
        ("chime:AttendeeJoined", a_id),
        ("chime:AttendeeJoined", b_id),
        ("chime:AttendeeVideoStarted", a_id),
        ("chime:AttendeeVideoStopped", a_id),
        ("chime:AttendeeContentJoined", a_id + "#content"),
        ("chime:AttendeeContentVideoStarted", a_id + "#content"),
        ("chime:AttendeeContentVideoStopped", a_id + "#content"),
        ("chime:AttendeeContentLeft", a_id + "#content"),
        ("chime:AttendeeLeft", a_id),
        ("chime:AttendeeDropped", b_id),
        ("chime:AttendeeJoined", b_id),
        ("chime:AttendeeAuthorized", b_id),
        ("chime:AttendeeCapabilitiesUpdated", a_id),
        ("chime:AttendeeDeleted", a_id),
        ("chime:AttendeeLeft", b_id),
        ("chime:MeetingEnded", None),
    ]

    # Every request is signed over "<t>.<body>" and names its event.
    for d in deliveries:
        assert verify_signature(SECRET, d.headers[SIGNATURE_HEADER], d.body, time.time())
        assert not verify_signature("wrong", d.headers[SIGNATURE_HEADER], d.body, time.time())
        assert d.headers["X-Carillon-Event-Id"] == d.event["id"]
        assert d.headers["X-Carillon-Event-Type"] == d.event["detail"]["eventType"]
        assert d.headers["Content-Type"] == "application/json"
    assert deliveries[0].headers["X-Carillon-Delivery-Attempt"] == "2"  # the 503 was retried

    # The envelope of the guide's examples, field for field.
    joined = deliveries[3].event
    assert set(joined) == {"version", "id", "source", "account", "region", "detail-type",
                           "time", "resources", "detail"}  # fmt: skip
    assert joined["version"] == "0"
    assert joined["source"] == "aws.chime"
    assert joined["detail-type"] == "Chime Meeting State Change"
    assert joined["region"] == "eu-west-1"
    assert joined["resources"] == []
    assert len(joined["account"]) == 12 and joined["account"].isdigit()
    assert time.strptime(joined["time"], "%Y-%m-%dT%H:%M:%SZ")
    detail = joined["detail"]
    assert list(detail) == [
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
    assert detail["networkType"] == "Voip"
    assert detail["externalUserId"] == "user-a"
    assert detail["externalMeetingId"] == "events-scenario"
    assert detail["mediaRegion"] == "eu-west-1"
    assert abs(detail["timestamp"] / 1000 - deliveries[3].received_at) < 30
    caps = deliveries[15].event["detail"]
    assert caps["success"] == "1"
    assert caps["attendeeCapabilities"] == {
        "audio": "SendReceive",
        "video": "Receive",
        "content": "Receive",
    }
    assert "networkType" not in deliveries[1].event["detail"]

    # The same events, in the same order, reached the meeting's SQS queue.
    ids = [d.event["id"] for d in deliveries]
    from_sqs: list[dict[str, Any]] = []
    deadline = time.monotonic() + T
    while len(from_sqs) < len(ids) and time.monotonic() < deadline:
        answer = await asyncio.to_thread(
            sqs.receive_message, QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        for message in answer.get("Messages", []):
            from_sqs.append(json.loads(message["Body"]))
            await asyncio.to_thread(
                sqs.delete_message, QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        if not answer.get("Messages"):
            await asyncio.sleep(0.05)
    assert [e["id"] for e in from_sqs] == ids
    assert from_sqs == [d.event for d in deliveries]

    # The events log has them too, as JSON lines.
    lines = (events_server.data_dir / "events.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [e["id"] for e in logged if e["detail"]["meetingId"] == meeting_id] == ids

    # /metrics counted the same scenario.
    after = scrape(events_server)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("AttendeeAuthorizationSuccess_total") == 5  # A, B, A#content, B twice
    assert delta("AttendeeAuthorizationError_total") == 1
    assert delta("AttendeeAudioDrops_total") == 1
    assert delta("AttendeeContentDrops_total") == 0
    assert delta("MeetingSQSNotificationErrors_total") == 0
    assert delta("CallCount_total", operation="CreateMeeting") == 1
    assert delta("CallCount_total", operation="CreateAttendee") == 2
    assert delta("CallCount_total", operation="UpdateAttendeeCapabilities") == 1
    assert delta("CallCount_total", operation="DeleteAttendee") == 1
    assert delta("CallCount_total", operation="DeleteMeeting") == 1
    assert delta("ErrorCount_total", operation="DeleteMeeting") == 0
    assert delta("carillon_events_total", type="AttendeeJoined") == 3
    assert delta("carillon_events_total", type="AttendeeLeft") == 2
    assert delta("carillon_events_total", type="AttendeeDropped") == 1
    assert delta("carillon_events_total", type="AttendeeAuthorized") == 1
    assert delta("carillon_events_total", type="AttendeeVideoStarted") == 1
    assert delta("carillon_events_total", type="AttendeeContentJoined") == 1
    assert delta("carillon_events_total", type="AttendeeContentVideoStopped") == 1
    assert delta("carillon_event_deliveries_total", target="webhook") == 19
    assert delta("carillon_event_delivery_failures_total", target="webhook") == 1
    assert delta("carillon_event_deliveries_total", target="sqs") == 19
    assert metric(after, "carillon_active_meetings") == metric(before, "carillon_active_meetings")
    assert metric(after, "carillon_active_attendees", kind="attendee") == 0


async def test_api_errors_and_unknown_operations_are_counted(events_server: ServerProcess) -> None:
    chime = events_server.client()
    before = scrape(events_server)
    with pytest.raises(chime.exceptions.NotFoundException):
        await asyncio.to_thread(chime.get_meeting, MeetingId=str(uuid.uuid4()))
    with pytest.raises(urllib.error.HTTPError):
        await asyncio.to_thread(
            urllib.request.urlopen, events_server.endpoint + "/nothing-here", timeout=5
        )
    after = scrape(events_server)
    assert (
        metric(after, "CallCount_total", operation="GetMeeting")
        - metric(before, "CallCount_total", operation="GetMeeting")
        == 1
    )
    assert (
        metric(after, "ErrorCount_total", operation="GetMeeting")
        - metric(before, "ErrorCount_total", operation="GetMeeting")
        == 1
    )
    assert (
        metric(after, "CallCount_total", operation="Unknown")
        - metric(before, "CallCount_total", operation="Unknown")
        == 1
    )
    assert ("carillon_mixer_tick_seconds_count", ()) in after
    assert metric(after, "carillon_audio_ticks_total") > 0

"""Webhook delivery against a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from mediaserver.clock import SystemClock
from mediaserver.events.envelope import MeetingEvent, MeetingInfo, build_event
from mediaserver.events.queue import Backoff
from mediaserver.events.webhook import SIGNATURE_HEADER, WebhookSink, sign, verify_signature
from tests.helpers.server import free_port

pytestmark = pytest.mark.timeout(30)

FAST = Backoff(base=0.01, max_delay=0.05, max_attempts=3)
_ids = itertools.count()


def event(meeting_id: str = "m-1", name: str = "AttendeeJoined") -> MeetingEvent:
    return build_event(
        name, MeetingInfo(meeting_id, "ext", "us-east-1"), wall=1.0, event_id=f"e{next(_ids)}"
    )


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    """Statuses to answer, in order; 200 once exhausted."""
    gate: asyncio.Event | None = None
    """When set, requests wait for it before answering."""

    def ids(self) -> list[str]:
        return [json.loads(body)["id"] for _, body in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if state.gate is not None:
            await state.gate.wait()
        status = state.statuses.pop(0) if state.statuses else 200
        if status == 200:
            state.received.append((dict(request.headers), body))
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


def sink(url: str, capacity: int = 100, secret: str = "s3cret") -> WebhookSink:
    return WebhookSink(
        url, secret=secret, clock=SystemClock(), timeout=5.0, capacity=capacity, backoff=FAST
    )


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_events_of_a_meeting_arrive_in_order_despite_a_retry(receiver: Receiver) -> None:
    receiver.statuses = [200, 500, 503]  # the second event needs three attempts
    target = sink(receiver.url)
    events = [event() for _ in range(5)]
    for e in events:
        target.publish(e)
    await eventually(lambda: len(receiver.received) == 5)
    assert receiver.ids() == [e.event_id for e in events]
    assert target.stats.delivered == 5 and target.stats.failures == 2
    attempts = [h["X-Carillon-Delivery-Attempt"] for h, _ in receiver.received]
    assert attempts == ["1", "3", "1", "1", "1"]
    headers, body = receiver.received[0]
    assert body == events[0].body()
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Carillon-Event-Id"] == events[0].event_id
    assert headers["X-Carillon-Event-Type"] == "chime:AttendeeJoined"
    assert verify_signature("s3cret", headers[SIGNATURE_HEADER], body, time.time())
    await target.drain(1.0)


async def test_a_meeting_stuck_on_retries_does_not_hold_up_another(receiver: Receiver) -> None:
    receiver.statuses = [500]
    target = sink(receiver.url)
    slow, fast = event("slow"), event("fast")
    target.publish(slow)
    await eventually(lambda: not receiver.statuses)  # the first attempt failed
    target.publish(fast)
    await eventually(lambda: len(receiver.received) == 2)
    assert set(receiver.ids()) == {slow.event_id, fast.event_id}
    await target.drain(1.0)


async def test_a_client_error_is_given_up_at_once(receiver: Receiver) -> None:
    receiver.statuses = [400]
    target = sink(receiver.url)
    bad, good = event(), event()
    target.publish(bad)
    target.publish(good)
    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.ids() == [good.event_id]
    assert (target.stats.failures, target.stats.undelivered) == (1, 1)
    await target.drain(1.0)


async def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    target = sink(f"http://127.0.0.1:{free_port()}/nobody")
    target.publish(event())
    await eventually(lambda: target.stats.undelivered == 1)
    assert target.stats.failures == FAST.max_attempts
    assert target.pending == 0
    await target.drain(1.0)


async def test_a_full_queue_drops_the_oldest_waiting_event(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()
    target = sink(receiver.url, capacity=2)
    events = [event() for _ in range(4)]
    for e in events:
        target.publish(e)  # never blocks although the receiver does not answer
    assert target.stats.dropped == 2
    receiver.gate.set()
    await eventually(lambda: len(receiver.received) == 2)
    # The first was in flight; of the three that waited, the newest survived.
    assert receiver.ids() == [events[0].event_id, events[3].event_id]
    await target.drain(1.0)


async def test_unsigned_when_no_secret(receiver: Receiver) -> None:
    target = sink(receiver.url, secret="")
    target.publish(event())
    await eventually(lambda: len(receiver.received) == 1)
    assert SIGNATURE_HEADER not in receiver.received[0][0]
    await target.drain(1.0)


async def test_drain_gives_up_after_its_timeout(receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # never set
    target = sink(receiver.url)
    target.publish(event())
    started = time.monotonic()
    await target.drain(0.1)
    assert time.monotonic() - started < 2.0
    target.publish(event())  # after the drain: ignored
    assert target.pending <= 1
    receiver.gate.set()  # let the receiver's handler finish before it is torn down


def test_the_signature_is_hmac_sha256_of_t_dot_body() -> None:
    body = b'{"id":"x"}'
    expected = hmac.new(b"key", b'1700000000.{"id":"x"}', hashlib.sha256).hexdigest()
    assert sign("key", body, 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_verification_checks_key_body_age_and_format() -> None:
    body = b"{}"
    header = sign("key", body, 1000)
    assert verify_signature("key", header, body, now=1100)
    assert not verify_signature("key", header, body, now=1400)  # older than 300 s
    assert not verify_signature("other", header, body, now=1000)
    assert not verify_signature("key", header, b"{ }", now=1000)
    assert not verify_signature("key", "v1=abc", body, now=1000)
    rotated = f"{header},v1={'0' * 64}"
    assert verify_signature("key", rotated, body, now=1000)

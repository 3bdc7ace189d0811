"""SQS and SNS publishing against ``moto_server`` on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mediaserver.events.aws import AwsPublisher, Service, parse_arn
from mediaserver.events.envelope import MeetingEvent, MeetingInfo, build_event
from mediaserver.events.queue import Backoff
from tests.helpers.moto import MOTO_CREDENTIALS, MotoServer, running_moto

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with running_moto(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadPoolExecutor]:
    for key, value in MOTO_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def publisher(service: Service, moto: MotoServer, executor: ThreadPoolExecutor) -> AwsPublisher:
    return AwsPublisher(
        service,
        endpoint_url=moto.endpoint,
        region="",
        executor=executor,
        capacity=100,
        backoff=Backoff(base=0.01, max_delay=0.02, max_attempts=2),
    )


def queue(moto: MotoServer, name: str, **attributes: str) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return str(url), str(arn)


def events(n: int, **targets: str) -> list[MeetingEvent]:
    meeting = MeetingInfo("m-aws", "ext", "us-east-1", **targets)
    return [
        build_event("AttendeeAdded", meeting, wall=float(i), event_id=f"aws-{i}-{time.time()}")
        for i in range(n)
    ]


def receive_all(moto: MotoServer, url: str, n: int, timeout: float = 10.0) -> list[Any]:
    sqs = moto.client("sqs")
    bodies: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < n and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for message in answer.get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_events_go_to_the_meetings_fifo_queue_in_order(
    moto: MotoServer, executor: ThreadPoolExecutor
) -> None:
    url, arn = queue(moto, "meeting-events.fifo", FifoQueue="true")
    sqs = publisher("sqs", moto, executor)
    sent = events(4, sqs_queue_arn=arn)
    for event in sent:
        sqs.publish(event)
    await until(lambda: sqs.stats.delivered == 4)
    got = await asyncio.to_thread(receive_all, moto, url, 4)
    assert [e["id"] for e in got] == [e.event_id for e in sent]
    assert got[0] == sent[0].envelope
    await sqs.drain(1.0)


async def test_events_go_to_the_meetings_sns_topic(
    moto: MotoServer, executor: ThreadPoolExecutor
) -> None:
    sns_client = moto.client("sns")
    topic = sns_client.create_topic(Name="meeting-events")["TopicArn"]
    url, arn = queue(moto, "topic-subscriber")
    sns_client.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    sns = publisher("sns", moto, executor)
    sent = events(2, sns_topic_arn=topic)
    for event in sent:
        sns.publish(event)
    await until(lambda: sns.stats.delivered == 2)
    got = await asyncio.to_thread(receive_all, moto, url, 2)
    assert sorted(e["id"] for e in got) == sorted(e.event_id for e in sent)
    await sns.drain(1.0)


async def test_meetings_without_a_target_are_skipped_and_failures_counted(
    moto: MotoServer, executor: ThreadPoolExecutor
) -> None:
    sqs = publisher("sqs", moto, executor)
    sqs.publish(events(1)[0])  # no SqsQueueArn: not this target's business
    assert sqs.pending == 0
    missing = "arn:aws:sqs:us-east-1:123456789012:no-such-queue"
    sqs.publish(events(1, sqs_queue_arn=missing)[0])
    await until(lambda: sqs.stats.undelivered == 1)
    assert sqs.stats.failures == 2 and sqs.stats.delivered == 0
    sqs.publish(events(1, sqs_queue_arn="arn:broken")[0])
    await until(lambda: sqs.stats.undelivered == 2)
    assert sqs.stats.failures == 3  # a malformed ARN is not retried
    await sqs.drain(1.0)


def test_parse_arn() -> None:
    assert parse_arn("arn:aws:sqs:eu-west-1:123456789012:q.fifo") == (
        "sqs",
        "eu-west-1",
        "123456789012",
        "q.fifo",
    )
    with pytest.raises(ValueError):
        parse_arn("arn:aws:sqs::123:q")

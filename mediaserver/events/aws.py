"""SQS and SNS delivery of meeting events, for meetings whose CreateMeeting named a target.

``NotificationsConfiguration.SqsQueueArn`` / ``SnsTopicArn`` (meetings-digest.md §6.1)
receive the same JSON as the webhooks: SQS ``SendMessage`` with the event as
``MessageBody``, SNS ``Publish`` with it as ``Message``. For a FIFO queue or topic
(``.fifo``), ``MessageGroupId`` is the meeting id and ``MessageDeduplicationId`` the event
id. Credentials and region come from boto3's usual chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, instance roles...); the region defaults to the
one in the ARN; ``endpoint_url`` points at an SQS/SNS-compatible server.

boto3 is blocking, so every call runs in a small thread pool: the event loop never waits
on AWS. Failed attempts are counted as CloudWatch's ``MeetingSQSNotificationErrors`` /
``MeetingSNSNotificationErrors``.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from mediaserver.events.envelope import MeetingEvent
from mediaserver.events.queue import Backoff
from mediaserver.events.sink import PermanentDeliveryError, QueuedSink

__all__ = ["AwsPublisher", "parse_arn"]

Service = Literal["sqs", "sns"]


def parse_arn(arn: str) -> tuple[str, str, str, str]:
    """Split ``arn:<partition>:<service>:<region>:<account>:<name>``.

    Returns:
        (service, region, account, name).

    Raises:
        ValueError: not an ARN of that shape.
    """
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not all(parts[2:]):
        raise ValueError(f"not a queue or topic ARN: {arn!r}")
    return parts[2], parts[3], parts[4], parts[5]


class AwsPublisher(QueuedSink):
    """Publishes events to the SQS queue or SNS topic of their meeting.

    Args:
        service: ``sqs`` or ``sns``.
        endpoint_url: an SQS/SNS-compatible endpoint; empty for AWS itself.
        region: overrides the region of the ARN; empty to use it.
        executor: runs the blocking boto3 calls (shared by both publishers).
    """

    def __init__(
        self,
        service: Service,
        *,
        endpoint_url: str,
        region: str,
        executor: ThreadPoolExecutor,
        capacity: int,
        backoff: Backoff,
    ) -> None:
        super().__init__(service, capacity=capacity, backoff=backoff)
        self.service: Service = service
        self.endpoint_url = endpoint_url or None
        self.region = region
        self.executor = executor
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}

    def _arn(self, event: MeetingEvent) -> str | None:
        meeting = event.meeting
        return meeting.sqs_queue_arn if self.service == "sqs" else meeting.sns_topic_arn

    def accepts(self, event: MeetingEvent) -> bool:
        return self._arn(event) is not None

    async def deliver(self, event: MeetingEvent, attempt: int) -> None:
        arn = self._arn(event)
        assert arn is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._send, arn, event)

    # -- in the executor ------------------------------------------------------------------------

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                if self._session is None:
                    import boto3  # only servers that publish to AWS need it

                    self._session = boto3.session.Session()
                from botocore.config import Config

                # Our queue retries with backoff; botocore gets one quick retry of its own.
                config = Config(
                    connect_timeout=5,
                    read_timeout=10,
                    retries={"total_max_attempts": 2, "mode": "standard"},
                )
                client = self._session.client(
                    self.service, region_name=region, endpoint_url=self.endpoint_url, config=config
                )
                self._clients[region] = client
            return client

    def _send(self, arn: str, event: MeetingEvent) -> None:
        try:
            _, arn_region, account, name = parse_arn(arn)
        except ValueError as exc:
            raise PermanentDeliveryError(str(exc)) from None
        client = self._client(self.region or arn_region)
        body = event.body().decode()
        fifo = name.endswith(".fifo")
        extra: dict[str, str] = {}
        if fifo:
            extra = {
                "MessageGroupId": event.meeting.meeting_id,
                "MessageDeduplicationId": event.event_id,
            }
        if self.service == "sqs":
            url = self._queue_urls.get(arn)
            if url is None:
                answer = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
                url = self._queue_urls[arn] = str(answer["QueueUrl"])
            client.send_message(QueueUrl=url, MessageBody=body, **extra)
        else:
            client.publish(TopicArn=arn, Message=body, **extra)

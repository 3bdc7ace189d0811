"""The event bus: the asyncio-side hub between the server and the event targets.

It listens to the registry (create/delete meeting, attendees, capabilities) and observes
the signaling gateway (join, departure, SUBSCRIBE), feeds the sans-I/O
:class:`~mediaserver.events.catalogue.MeetingEventTracker`, and hands every resulting
event to the events log and the delivery targets, whose ``publish`` never blocks. A
failure anywhere here is logged and never reaches signaling or media (style guide §5,
listener exceptions are caught).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mediaserver.clock import Clock
from mediaserver.events.aws import AwsPublisher
from mediaserver.events.catalogue import EventType, MeetingEventTracker
from mediaserver.events.envelope import AttendeeInfo, MeetingEvent, MeetingInfo
from mediaserver.events.log import EventLog
from mediaserver.events.queue import Backoff
from mediaserver.events.sink import QueuedSink
from mediaserver.events.webhook import WebhookSink
from mediaserver.registry import (
    AttendeeCapabilitiesUpdated,
    AttendeeCreated,
    AttendeeDeleted,
    Meeting,
    MeetingCreated,
    MeetingEnded,
    RegistryEvent,
)
from signaling.events import SubscribeReceived
from signaling.messages import MediaType, StreamServiceType

if TYPE_CHECKING:
    from mediaserver.config import ServerConfig
    from mediaserver.gateway.room import Member

__all__ = ["EventBus", "meeting_info", "sends_video"]

logger = logging.getLogger(__name__)


def meeting_info(meeting: Meeting) -> MeetingInfo:
    """The event view of a registry meeting."""
    notifications = meeting.notifications or {}
    return MeetingInfo(
        meeting_id=meeting.meeting_id,
        external_meeting_id=meeting.external_meeting_id,
        media_region=meeting.media_region,
        account_id=meeting.account_id,
        sqs_queue_arn=notifications.get("SqsQueueArn") or None,
        sns_topic_arn=notifications.get("SnsTopicArn") or None,
    )


def sends_video(event: SubscribeReceived) -> bool:
    """Whether a SUBSCRIBE says the client sends video (camera, or the shared screen).

    The JS client sends ``duplex`` TX or DUPLEX with video descriptors after the audio one
    while it sends video, RX otherwise (chime-signaling-protocol.md §3.3).
    """
    if event.duplex not in (StreamServiceType.TX, StreamServiceType.DUPLEX):
        return False
    return any(s.media_type != MediaType.AUDIO for s in event.send_streams)


class EventBus:
    """Produces meeting events and fans them out.

    Args:
        clock: wall time of the events.
        sinks: delivery targets (webhooks, SQS, SNS).
        log: the events log, if enabled.
        tracker: the sans-I/O core (a fresh one by default).
    """

    def __init__(
        self,
        clock: Clock,
        sinks: Sequence[QueuedSink] = (),
        log: EventLog | None = None,
        tracker: MeetingEventTracker | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.clock = clock
        self.sinks = list(sinks)
        self.log = log
        self.tracker = tracker or MeetingEventTracker()
        self.emitted: Counter[str] = Counter()
        """Events produced, by name (``AttendeeJoined``...)."""
        self.listeners: list[Callable[[MeetingEvent], None]] = []
        """Called with every event (tests, future in-process consumers)."""
        self._executor = executor

    @classmethod
    def from_config(cls, config: ServerConfig, clock: Clock) -> EventBus:
        """Build the log and the targets ``config`` asks for."""
        backoff = Backoff(
            base=config.events_retry_base,
            max_delay=60.0,
            max_attempts=config.events_max_attempts,
        )
        sinks: list[QueuedSink] = [
            WebhookSink(
                url,
                secret=config.webhook_secret,
                clock=clock,
                timeout=config.webhook_timeout,
                capacity=config.events_queue_size,
                backoff=backoff,
            )
            for url in config.webhook_urls
        ]
        executor: ThreadPoolExecutor | None = None
        if config.events_aws or config.events_aws_endpoint_url:
            executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="events-aws")
            for service in ("sqs", "sns"):
                sinks.append(
                    AwsPublisher(
                        service,
                        endpoint_url=config.events_aws_endpoint_url,
                        region=config.events_aws_region,
                        executor=executor,
                        capacity=config.events_queue_size,
                        backoff=backoff,
                    )
                )
        log = None
        if config.events_log_max_bytes > 0:
            log = EventLog(
                config.data_dir / "events.jsonl",
                max_bytes=config.events_log_max_bytes,
                keep=config.events_log_keep,
            )
        return cls(clock, sinks, log, executor=executor)

    def sink_stats(self, target: str) -> tuple[int, int, int, int, int]:
        """(delivered, failures, undelivered, dropped, pending) summed over ``target``."""
        totals = [0, 0, 0, 0, 0]
        for sink in self.sinks:
            if sink.target == target:
                s = sink.stats
                for i, value in enumerate(
                    (s.delivered, s.failures, s.undelivered, s.dropped, sink.pending)
                ):
                    totals[i] += value
        return totals[0], totals[1], totals[2], totals[3], totals[4]

    # -- lifecycle -------------------------------------------------------------------------

    async def stop(self, timeout: float = 5.0) -> None:
        """Give pending deliveries up to ``timeout`` seconds, then close everything."""
        if self.sinks:
            await asyncio.gather(*(s.drain(timeout) for s in self.sinks), return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.log is not None:
            self.log.close()

    # -- inputs: the registry --------------------------------------------------------------

    def on_registry_event(self, event: RegistryEvent) -> None:
        """Registry listener (``MeetingRegistry.add_listener``)."""
        try:
            self._registry_event(event)
        except Exception:
            logger.exception("event bus failed on %s", type(event).__name__)
        self._flush()

    def _registry_event(self, event: RegistryEvent) -> None:
        meeting = meeting_info(event.meeting)
        wall = self.clock.wall()
        tracker = self.tracker
        if isinstance(event, MeetingCreated):
            tracker.meeting_created(meeting, wall)
        elif isinstance(event, MeetingEnded):
            tracker.meeting_ended(meeting, wall)
        elif isinstance(event, AttendeeCreated):
            attendee = event.attendee
            tracker.attendee_added(
                meeting, AttendeeInfo(attendee.attendee_id, attendee.external_user_id), wall
            )
        elif isinstance(event, AttendeeDeleted):
            attendee = event.attendee
            tracker.attendee_deleted(
                meeting, AttendeeInfo(attendee.attendee_id, attendee.external_user_id), wall
            )
        elif isinstance(event, AttendeeCapabilitiesUpdated):
            attendee = event.attendee
            caps = attendee.capabilities
            tracker.capabilities_updated(
                meeting,
                AttendeeInfo(attendee.attendee_id, attendee.external_user_id),
                {"audio": caps.audio, "video": caps.video, "content": caps.content},
                wall,
            )

    # -- inputs: the signaling gateway (GatewayObserver) -----------------------------------

    def member_joined(self, member: Member) -> None:
        """A connection completed its JOIN (``MeetingRoom.on_join``)."""
        try:
            meeting = self._meeting_of(member)
            if meeting is not None:
                self.tracker.joined(
                    meeting,
                    AttendeeInfo(member.attendee_id, member.external_user_id),
                    connection=member,
                    audio_session_id=member.audio_session_id,
                    wall=self.clock.wall(),
                )
        except Exception:
            logger.exception("event bus failed on a join")
        self._flush()

    def member_departed(self, member: Member, dropped: bool) -> None:
        """A joined connection left or was dropped (``MeetingRoom.on_departure``)."""
        try:
            meeting = self._meeting_of(member)
            if meeting is not None:
                self.tracker.departed(
                    meeting,
                    member.attendee_id,
                    connection=member,
                    dropped=dropped,
                    wall=self.clock.wall(),
                )
        except Exception:
            logger.exception("event bus failed on a departure")
        self._flush()

    def member_subscribed(self, member: Member, event: SubscribeReceived) -> None:
        """A SUBSCRIBE of ``member`` was answered: video may have started or stopped."""
        try:
            meeting = self._meeting_of(member)
            if meeting is not None:
                self.tracker.video_changed(
                    meeting,
                    member.attendee_id,
                    connection=member,
                    sending=sends_video(event),
                    wall=self.clock.wall(),
                )
        except Exception:
            logger.exception("event bus failed on a SUBSCRIBE")
        self._flush()

    # -- inputs: transcription (a hook for the transcription subsystem) --------------------

    def transcription_changed(
        self,
        meeting: Meeting,
        name: EventType,
        *,
        region: str,
        configuration: str,
        message: str | None = None,
    ) -> None:
        """Emit a ``chime:Transcription*`` event (digest §2.6)."""
        try:
            self.tracker.transcription(
                meeting_info(meeting),
                name,
                self.clock.wall(),
                region=region,
                configuration=configuration,
                message=message,
            )
        except Exception:
            logger.exception("event bus failed on a transcription event")
        self._flush()

    # -- output ----------------------------------------------------------------------------

    @staticmethod
    def _meeting_of(member: Member) -> MeetingInfo | None:
        meeting: Any = member.app_data.get("meeting")
        return meeting_info(meeting) if isinstance(meeting, Meeting) else None

    def _flush(self) -> None:
        for event in self.tracker.events_received():
            self.emitted[event.name] += 1
            extra: dict[str, str] = {"meeting_id": event.meeting.meeting_id}
            if event.attendee_id is not None:
                extra["attendee_id"] = event.attendee_id
            logger.info("event %s", event.event_type, extra=extra)
            if self.log is not None:
                self.log.write(event.body())
            for sink in self.sinks:
                try:
                    sink.publish(event)
                except Exception:
                    logger.exception("%s publish failed", sink.target, extra=extra)
            for listener in tuple(self.listeners):
                try:
                    listener(event)
                except Exception:
                    logger.exception("event listener failed", extra=extra)

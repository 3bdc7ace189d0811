"""The asyncio shell shared by the delivery targets: queue, order, retry, count.

A :class:`QueuedSink` takes events with :meth:`QueuedSink.publish`, which never blocks and
never raises, keeps them in a :class:`~mediaserver.events.queue.DeliveryQueue` keyed by
meeting, and runs one task per meeting with pending events. That task awaits
:meth:`QueuedSink.deliver` for the meeting's oldest event, retrying with exponential
backoff, so a meeting's events reach the target in order while meetings proceed in
parallel. Nothing here runs on the media or signaling path other than ``publish``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from dataclasses import dataclass

from mediaserver.events.envelope import MeetingEvent
from mediaserver.events.queue import Backoff, DeliveryQueue

__all__ = ["DeliveryStats", "PermanentDeliveryError", "QueuedSink"]

logger = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """A failure that retrying cannot fix (e.g. HTTP 400); the event is given up at once."""


@dataclass(slots=True)
class DeliveryStats:
    """Counters of one target (read by ``/metrics``)."""

    delivered: int = 0
    """Events the target accepted."""
    failures: int = 0
    """Failed attempts (each retry that fails counts)."""
    undelivered: int = 0
    """Events given up after their last attempt."""
    dropped: int = 0
    """Events dropped unsent because the queue was full (oldest first)."""


class QueuedSink(abc.ABC):
    """A delivery target with a bounded queue, per-meeting order and retries.

    Args:
        target: the metrics label (``webhook``, ``sqs``, ``sns``).
        capacity: events queued at most; the oldest is dropped beyond it.
        backoff: the retry policy.
    """

    def __init__(self, target: str, *, capacity: int, backoff: Backoff) -> None:
        self.target = target
        self.backoff = backoff
        self.queue: DeliveryQueue[MeetingEvent] = DeliveryQueue(capacity)
        self.stats = DeliveryStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def accepts(self, event: MeetingEvent) -> bool:
        """Whether this target wants ``event`` (all of them by default)."""
        return True

    @abc.abstractmethod
    async def deliver(self, event: MeetingEvent, attempt: int) -> None:
        """Send one event; raise on failure (:class:`PermanentDeliveryError` to not retry)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release
        """Release the target's resources (after the queue drained or was abandoned)."""

    # -- the queue ----------------------------------------------------------------------------

    def publish(self, event: MeetingEvent) -> None:
        """Queue ``event`` for delivery. Never blocks; must run on the event loop."""
        if self._closing or not self.accepts(event):
            return
        dropped = self.queue.push(event.meeting.meeting_id, event)
        if dropped is not None:
            self.stats.dropped += 1
            logger.warning(
                "%s queue full: dropped %s %s",
                self.target,
                dropped.event_type,
                dropped.event_id,
                extra={"meeting_id": dropped.meeting.meeting_id},
            )
        for key in self.queue.keys_ready():
            first = self.queue.start(key)
            task = asyncio.create_task(self._run(key, first), name=f"{self.target}-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self.queue)

    async def _run(self, key: str, first: MeetingEvent) -> None:
        event: MeetingEvent | None = first
        while event is not None:
            await self._deliver_with_retries(event)
            event = self.queue.done(key)

    async def _deliver_with_retries(self, event: MeetingEvent) -> None:
        failures = 0
        while True:
            try:
                await self.deliver(event, failures + 1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self.stats.failures += 1
                final = (
                    isinstance(exc, PermanentDeliveryError)
                    or failures >= self.backoff.max_attempts
                    or self._closing
                )
                logger.warning(
                    "%s delivery of %s %s failed (attempt %d%s): %s",
                    self.target,
                    event.event_type,
                    event.event_id,
                    failures,
                    ", giving up" if final else "",
                    exc or type(exc).__name__,
                    extra={"meeting_id": event.meeting.meeting_id},
                )
                if final:
                    self.stats.undelivered += 1
                    return
                await asyncio.sleep(self.backoff.delay(failures))
            else:
                self.stats.delivered += 1
                return

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the queue to empty, then stop every task.

        Failures during the drain are not retried. Events still queued afterwards are lost
        (they remain in the events log).
        """
        self._closing = True
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.aclose()

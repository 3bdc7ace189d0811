"""A bounded, per-key ordered delivery queue with retry backoff (sans I/O).

Each delivery target (one webhook URL, the SQS publisher, the SNS publisher) owns one
:class:`DeliveryQueue`. Items are kept in order per key (the meeting id): the head of a
key's queue must be delivered, or given up after ``max_attempts``, before the next item of
that key is tried. Keys are independent, so one slow meeting does not hold up the others.

Rules of this file:

* The queue holds at most ``capacity`` items over all keys. Pushing into a full queue drops
  the globally oldest item (never the one being delivered) and counts it in ``dropped``.
* Backoff after the n-th failed attempt is ``min(base * 2**(n-1), max_delay)`` seconds.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Backoff", "DeliveryQueue"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between delivery attempts."""

    base: float = 0.5
    max_delay: float = 60.0
    max_attempts: int = 8
    """Attempts per item (the first one included) before it is given up."""

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (``failures >= 1``)."""
        return float(min(self.base * 2 ** (failures - 1), self.max_delay))


class DeliveryQueue(Generic[T]):
    """Per-key FIFO queues sharing one capacity.

    Args:
        capacity: items held at most, over all keys.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self._queues: dict[str, deque[tuple[int, T]]] = {}
        self._busy: set[str] = set()
        self._seq = itertools.count()
        self._size = 0
        self.dropped = 0
        """Items dropped because the queue was full."""

    def __len__(self) -> int:
        return self._size

    def push(self, key: str, item: T) -> T | None:
        """Append ``item`` to ``key``'s queue; returns the item dropped to make room, if any."""
        dropped: T | None = None
        if self._size >= self.capacity:
            dropped = self._drop_oldest()
        self._queues.setdefault(key, deque()).append((next(self._seq), item))
        self._size += 1
        return dropped

    def _drop_oldest(self) -> T | None:
        oldest_key: str | None = None
        oldest_seq = -1
        for key, queue in self._queues.items():
            # The head of a busy key is being delivered: its next item is the candidate.
            index = 1 if key in self._busy else 0
            if len(queue) > index and (oldest_key is None or queue[index][0] < oldest_seq):
                oldest_key, oldest_seq = key, queue[index][0]
        if oldest_key is None:
            return None  # every held item is in flight; let the queue grow by one
        queue = self._queues[oldest_key]
        index = 1 if oldest_key in self._busy else 0
        _, item = queue[index]
        del queue[index]
        self._size -= 1
        self.dropped += 1
        return item

    def keys_ready(self) -> list[str]:
        """Keys with items and no delivery in flight; mark them busy with :meth:`start`."""
        return [k for k, q in self._queues.items() if q and k not in self._busy]

    def start(self, key: str) -> T:
        """Mark ``key`` busy and return its head item (it stays queued until :meth:`done`)."""
        self._busy.add(key)
        return self._queues[key][0][1]

    def done(self, key: str) -> T | None:
        """The head of ``key`` was delivered or given up: remove it.

        Returns:
            The next item of ``key`` (still busy) or None (the key is idle and forgotten).
        """
        queue = self._queues[key]
        queue.popleft()
        self._size -= 1
        if queue:
            return queue[0][1]
        del self._queues[key]
        self._busy.discard(key)
        return None

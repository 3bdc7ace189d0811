"""Per-subscriber bounded queues and the fan-out of one packet to many subscribers.

Rules of this file:

* No awaits and no sends here (style guide, conventions 7 and 8). :func:`fan_out` runs
  the forwarders, renders the outgoing plaintext and puts it on each subscriber's
  :class:`EgressQueue`; the I/O shell drains the queues (``packets_to_send()``), protects
  with the subscriber's SRTP context and sends.
* A queue is bounded and drops its OLDEST packet when full, counting it: a slow
  subscriber loses old video, never blocks the loop, never delays the others.
* Fan-out iterates an immutable tuple (:class:`SubscriptionSet` keeps a dict plus a
  tuple copy rebuilt on add/remove, livekit's ``DownTrackSpreader`` idea), so subscriber
  churn during a callback cannot break iteration.
* Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01)
  are assigned per subscriber *connection* when the packet is rendered: the publisher's
  value is overwritten at the offset the caller found. A packet dropped
  from a full queue keeps its number and will be reported lost by the subscriber, which
  is a fair congestion signal (our egress could not keep up).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.forwarder import Forwarder
from mediaserver.sfu.retransmission import RetransmissionBuffer
from mediaserver.sfu.twcc import TransportSequencer
from mediaserver.sfu.view import PacketView

__all__ = ["EgressQueue", "Subscription", "SubscriptionSet", "fan_out"]

T = TypeVar("T")
K = TypeVar("K")

_pack_header = struct.Struct("!BBHII").pack
_pack_u16 = struct.Struct("!H").pack
_join = b"".join


class EgressQueue(Generic[T]):
    """A bounded FIFO that drops its oldest item on overflow.

    Args:
        maxlen: capacity in items.

    Raises:
        InvalidArgument: ``maxlen`` is not positive.
    """

    __slots__ = ("_maxlen", "_queue", "dropped", "enqueued")

    def __init__(self, maxlen: int = 1024) -> None:
        if maxlen <= 0:
            raise InvalidArgument(f"queue capacity must be positive, not {maxlen}")
        self._maxlen = maxlen
        self._queue: deque[T] = deque(maxlen=maxlen)
        self.enqueued = 0
        """Items put so far."""
        self.dropped = 0
        """Items evicted because the queue was full."""

    @property
    def maxlen(self) -> int:
        """The capacity."""
        return self._maxlen

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, item: T) -> None:
        """Append ``item``; if the queue is full, the oldest item is dropped and counted."""
        queue = self._queue
        if len(queue) == self._maxlen:
            self.dropped += 1
        queue.append(item)
        self.enqueued += 1

    def get(self) -> T | None:
        """Remove and return the oldest item, or None when empty."""
        return self._queue.popleft() if self._queue else None

    def peek(self) -> T | None:
        """The oldest item without removing it, or None when empty."""
        return self._queue[0] if self._queue else None

    def packets_to_send(self) -> list[T]:
        """Remove and return every queued item, oldest first."""
        queue = self._queue
        items = list(queue)
        queue.clear()
        return items


class Subscription:
    """One (subscriber, outgoing m-line) on the packet path of one publisher.

    Args:
        forwarder: the m-line's forwarder.
        queue: the subscriber connection's egress queue (shared by its m-lines).
        history: the m-line's retransmission buffer, if NACK was negotiated.
        transport: the connection's transport-wide sequencer, if transport-cc was
            negotiated.
    """

    __slots__ = ("decide", "forwarder", "history", "queue", "transport")

    def __init__(
        self,
        forwarder: Forwarder,
        queue: EgressQueue[bytes],
        *,
        history: RetransmissionBuffer | None = None,
        transport: TransportSequencer | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.decide = forwarder.decide
        self.queue = queue
        self.history = history
        self.transport = transport


class SubscriptionSet(Generic[K]):
    """Subscriptions keyed by id, with an immutable tuple snapshot for iteration."""

    __slots__ = ("_by_key", "snapshot")

    def __init__(self) -> None:
        self._by_key: dict[K, Subscription] = {}
        self.snapshot: tuple[Subscription, ...] = ()
        """The current subscriptions; a new tuple after every change."""

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[K]:
        return iter(self._by_key)

    def add(self, key: K, subscription: Subscription) -> None:
        """Add or replace the subscription ``key``."""
        self._by_key[key] = subscription
        self.snapshot = tuple(self._by_key.values())

    def remove(self, key: K) -> Subscription | None:
        """Remove ``key`` and return its subscription, or None if absent."""
        removed = self._by_key.pop(key, None)
        if removed is not None:
            self.snapshot = tuple(self._by_key.values())
        return removed

    def get(self, key: K) -> Subscription | None:
        """Return the subscription ``key``, or None."""
        return self._by_key.get(key)


def fan_out(
    subscriptions: tuple[Subscription, ...],
    view: PacketView,
    source_stream_id: int,
    now: float,
    twcc_offset: int = -1,
) -> list[int] | None:
    """Offer one packet to every subscription and queue what they forward.

    Args:
        subscriptions: the snapshot to iterate (:attr:`SubscriptionSet.snapshot`).
        view: the packet.
        source_stream_id: the publisher stream it belongs to.
        now: monotonic seconds.
        twcc_offset: offset of the transport-wide sequence number in the packet
            (from :func:`mediaserver.rtp.packet.peek_extension_offset`), or -1.

    Returns:
        The stream ids that need a key frame (pass them through
        :class:`~mediaserver.sfu.forwarder.KeyframeRequestThrottle`), or None.

    After calling this, drain the queues (``packets_to_send()``) and send.
    """
    data = view.data
    first = data[0]
    size = len(data)
    if twcc_offset < 0:
        body = data[12:]
    else:
        # Cut once per incoming packet; each subscriber only joins its own header and
        # transport-wide number around these (one copy of the payload per subscriber).
        between = data[12:twcc_offset]
        tail = data[twcc_offset + 2 :]
    keyframes: list[int] | None = None
    for sub in subscriptions:
        decision = sub.decide(view, source_stream_id, now)
        if decision[0]:
            _, seq, ts, ssrc, pt, marker, _, _, _ = decision
            header = _pack_header(first, (0x80 | pt) if marker else pt, seq, ts, ssrc)
            transport = sub.transport
            if twcc_offset < 0:
                out = header + body
            elif transport is not None:
                number = _pack_u16(transport.next(now, size))
                out = _join((header, between, number, tail))
            else:
                out = header + data[12:]
            history = sub.history
            if history is not None:
                history.store(header, data, now)
            sub.queue.put(out)
        if decision[6]:
            if keyframes is None:
                keyframes = []
            keyframes.append(decision[7])
    return keyframes

"""Per-subscriber pacing: a token bucket in front of a bounded drop-oldest queue (sans-I/O).

The server has one UDP socket and one kernel send buffer for everybody, so a queue per
subscriber only means something if each queue drains at that subscriber's own rate. A
:class:`Pacer` is that rate: libwebrtc and SFUs pace per connection, so that a key frame
leaves as a smooth stream rather than a burst, and a subscriber is never pushed more than
its path takes (libwebrtc's ``modules/pacing`` design notes, "Paced Sending").

Rules of this file:

* Time is passed in; nothing here reads a clock, sends or awaits (style guide §7, §8).
  The I/O shell (``mediaserver.media``) protects with SRTP and sends what this returns,
  and arms one loop timer for all pacers from :meth:`Pacer.next_due`.
* The bucket holds bytes: it refills at :attr:`Pacer.rate` / 8 bytes per second up to the
  burst allowance, :data:`BURST_SECONDS` of the rate (libwebrtc's
  ``PacingController::kDefaultBurstInterval`` is 40 ms), clamped to
  [:data:`MIN_BURST_BYTES`, :data:`MAX_BURST_BYTES`] (libwebrtc caps a burst at 63 kB,
  ``kMaxBurstSize``). A packet leaves when the bucket holds its size, so over any
  interval T the bytes released never exceed ``rate x T + burst``; a packet larger than
  the whole burst leaves when the bucket is full and puts it into debt.
* :meth:`Pacer.offer` is the per-copy fast path: with nothing queued and the bucket
  holding the packet's size it returns True (send it now) after a few float operations
  and no allocation. Otherwise the packet waits in an
  :class:`~mediaserver.sfu.egress.EgressQueue`, in order (a later packet never overtakes
  a queued one: transport-wide sequence numbers and SRTP indexes stay in send order).
* The queue is bounded twice: at most ``max_packets`` packets (the oldest is dropped and
  counted on overflow), and a packet that waited longer than ``max_wait`` seconds is
  dropped and counted when it reaches the head: late video is useless to a real-time
  decoder, and what follows it (a newer frame, or the key frame the subscriber's PLI
  asks for) is worth more. Every offered packet is accounted for:
  ``offered = sent at once + released by due() + dropped + expired + backlog``.
* A dropped packet was numbered (sequence number, transport-wide number) and stays in
  its m-line's retransmission history (``OutStream.history``), so the subscriber's NACK
  can still repair it; its transport-wide number is reported lost, which is a fair
  congestion signal (our egress could not keep up).
* Rate policy (:func:`pacing_rate`): :data:`PACE_FACTOR` x the subscriber's downlink
  capacity (libwebrtc paces at 2.5 x its target rate by default,
  ``GoogCcNetworkController`` ``pacing_factor``), at least :data:`PACE_FLOOR`. The
  capacity is :attr:`~mediaserver.sfu.controller.DownlinkController.capacity`: the
  transport-cc/REMB estimate when server-side adaption probes the link, else only the
  subscriber's own REMB. A subscriber without one is not paced, as before pacing
  existed: nothing tells the server what its path takes.
"""

from __future__ import annotations

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.egress import EgressQueue

__all__ = [
    "BURST_SECONDS",
    "MAX_BURST_BYTES",
    "MAX_PACKETS",
    "MAX_WAIT",
    "MIN_BURST_BYTES",
    "PACE_FACTOR",
    "PACE_FLOOR",
    "Pacer",
    "pacing_rate",
]

PACE_FACTOR = 2.5
"""Pacing rate / downlink estimate (libwebrtc's default ``pacing_factor``)."""
PACE_FLOOR = 100_000
"""bits/s: the slowest a paced subscriber is fed, whatever its estimate says."""
BURST_SECONDS = 0.040
"""The burst allowance in seconds of the pacing rate (libwebrtc ``kDefaultBurstInterval``)."""
MIN_BURST_BYTES = 3_000
"""The smallest burst: two full-size packets, so that one packet never waits for itself."""
MAX_BURST_BYTES = 63_000
"""The largest burst (libwebrtc ``PacingController::kMaxBurstSize``)."""
MAX_PACKETS = 256
"""Queue bound in packets (about 300 kB of 1200-byte video)."""
MAX_WAIT = 0.3
"""Queue bound in time: a packet that waited longer is dropped, seconds."""


def pacing_rate(estimate: int | None) -> int:
    """The pacing rate in bits/s for a downlink capacity in bits/s; 0 (not paced) for None."""
    if estimate is None:
        return 0
    return max(PACE_FLOOR, int(PACE_FACTOR * estimate))


class Pacer:
    """One subscriber connection's pacing (shared by its m-lines).

    Args:
        rate: bits/s; 0 means not paced (every offer is sent at once).
        max_packets: queue bound in packets.
        max_wait: queue bound in seconds of waiting.

    Raises:
        InvalidArgument: a negative rate, a bound that is not positive.
    """

    __slots__ = ("_burst", "_byte_rate", "_last", "_queue", "_tokens", "backlog", "expired",
                 "max_wait", "rate")  # fmt: skip

    def __init__(
        self, rate: int = 0, *, max_packets: int = MAX_PACKETS, max_wait: float = MAX_WAIT
    ) -> None:
        if not max_wait > 0:
            raise InvalidArgument(f"the queue's time bound must be positive, not {max_wait}")
        self._queue: EgressQueue[tuple[bytes, float]] = EgressQueue(max_packets)
        self.max_wait = max_wait
        self.backlog = 0
        """Packets waiting now (a plain attribute: :meth:`offer` reads it per packet)."""
        self.expired = 0
        """Packets dropped because they waited longer than :attr:`max_wait`."""
        self.rate = 0
        """The pacing rate, bits/s; 0: not paced."""
        self._byte_rate = 0.0
        self._burst = float(MIN_BURST_BYTES)
        self._tokens = self._burst
        self._last = 0.0
        self.set_rate(rate)

    # -- counters -----------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Packets dropped from a full queue (the oldest went)."""
        return self._queue.dropped

    @property
    def queued(self) -> int:
        """Packets that had to wait (sent later, dropped, or waiting now)."""
        return self._queue.enqueued

    @property
    def max_packets(self) -> int:
        """The queue bound in packets."""
        return self._queue.maxlen

    @property
    def burst(self) -> int:
        """The burst allowance in bytes."""
        return int(self._burst)

    # -- rate ---------------------------------------------------------------------------

    def set_rate(self, rate: int) -> None:
        """Pace at ``rate`` bits/s from now on (0: stop pacing; what waits is due at once).

        Raises:
            InvalidArgument: ``rate`` is negative.
        """
        if rate < 0:
            raise InvalidArgument(f"a pacing rate cannot be negative, not {rate}")
        if not rate:
            self.rate = 0
            self._byte_rate = 0.0
            return
        byte_rate = rate / 8
        burst = min(MAX_BURST_BYTES, max(MIN_BURST_BYTES, byte_rate * BURST_SECONDS))
        if not self.rate:
            self._tokens = burst  # pacing starts with a full bucket
        self.rate = rate
        self._byte_rate = byte_rate
        self._burst = burst
        if self._tokens > burst:
            self._tokens = burst

    def _refill(self, now: float) -> float:
        tokens = self._tokens + (now - self._last) * self._byte_rate
        self._last = now
        if tokens > self._burst:
            tokens = self._burst
        self._tokens = tokens
        return tokens

    # -- packets ------------------------------------------------------------------------

    def offer(self, packet: bytes, now: float) -> bool:
        """Whether to send ``packet`` now (True); if not, it waits in the queue.

        Call :meth:`next_due` after a False to know when to drain.
        """
        if not self.backlog:
            byte_rate = self._byte_rate
            if not byte_rate:
                return True
            tokens = self._tokens + (now - self._last) * byte_rate
            self._last = now
            burst = self._burst
            if tokens > burst:
                tokens = burst
            size = len(packet)
            if tokens >= size or tokens >= burst:
                self._tokens = tokens - size
                return True
            self._tokens = tokens
        queue = self._queue
        queue.put((packet, now))
        self.backlog = len(queue)
        return False

    def due(self, now: float) -> list[bytes]:
        """Remove and return the packets to send now, oldest first; drop (and count) those
        that waited longer than :attr:`max_wait`."""
        if not self.backlog:
            return []
        queue = self._queue
        out: list[bytes] = []
        stale = now - self.max_wait
        if not self._byte_rate:
            while (item := queue.get()) is not None:
                if item[1] < stale:
                    self.expired += 1
                else:
                    out.append(item[0])
            self.backlog = 0
            return out
        tokens = self._refill(now)
        burst = self._burst
        while (item := queue.peek()) is not None:
            packet, queued_at = item
            if queued_at < stale:
                queue.get()
                self.expired += 1
                continue
            size = len(packet)
            if tokens < size and tokens < burst:
                break
            queue.get()
            tokens -= size
            out.append(packet)
        self._tokens = tokens
        self.backlog = len(queue)
        return out

    def next_due(self, now: float) -> float | None:
        """When the head of the queue may leave (``now`` or later), or None when empty."""
        item = self._queue.peek()
        if item is None:
            return None
        byte_rate = self._byte_rate
        if not byte_rate:
            return now
        tokens = self._tokens + (now - self._last) * byte_rate
        needed = min(float(len(item[0])), self._burst) - tokens
        return now if needed <= 0 else now + needed / byte_rate

    def clear(self) -> int:
        """Drop everything waiting (the connection went away), counted as expired; returns
        how many packets that was."""
        count = len(self._queue.packets_to_send())
        self.expired += count
        self.backlog = 0
        return count

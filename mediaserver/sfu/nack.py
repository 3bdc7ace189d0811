"""NACK generation toward a publisher for packets lost on its uplink (RFC 4585 §6.2.1).

Rules of this file:

* One :class:`NackGenerator` per publisher stream (SSRC). :meth:`NackGenerator.receive`
  is called for every packet that arrives (the hot path: one unwrap and one compare when
  nothing is missing); a jump forward records the sequence numbers in between as
  missing. The idea is pion's ``ReceiveLog``; the structure here is a dict of missing
  extended sequence numbers, which is empty almost all the time.
* Timers are pulled (style guide, convention 2): :meth:`get_timer` gives the next
  deadline, :meth:`nacks_to_send` returns the NACK to send at ``now``, if any.
* A missing packet is first NACKed after ``delay`` (reordering tolerance), then again
  with exponential backoff from ``retry_interval``, at most ``max_retries`` times and
  for at most ``max_age`` seconds; then it is given up and counted.
* A jump larger than ``max_gap`` is not a loss burst but a restart (or a bogus packet):
  the log resets instead of NACKing thousands of packets.
"""

from __future__ import annotations

from dataclasses import dataclass

from mediaserver.rtp.rtcp import RtcpNack
from mediaserver.rtp.seqnum import Unwrapper

__all__ = ["NackGenerator", "NackStats"]


@dataclass(slots=True)
class NackStats:
    """Counters of one generator."""

    missing: int = 0
    """Sequence numbers found missing."""
    recovered: int = 0
    """Missing packets that arrived later (retransmitted or reordered)."""
    nacked: int = 0
    """Sequence numbers put in NACKs (each retry counts)."""
    given_up: int = 0
    """Missing packets abandoned after ``max_retries`` or ``max_age``."""
    resets: int = 0
    """Jumps larger than ``max_gap``."""


class NackGenerator:
    """Finds uplink losses of one publisher stream and schedules NACKs (sans-I/O).

    Args:
        sender_ssrc: our SSRC in the NACK's "SSRC of packet sender".
        media_ssrc: the publisher stream's SSRC.
        delay: seconds to wait before the first NACK (reordering tolerance).
        retry_interval: seconds before the second NACK; doubles after each retry.
        max_retries: NACKs per missing packet before giving up.
        max_age: seconds after which a missing packet is given up.
        max_gap: a forward jump beyond this many packets resets the log.
    """

    __slots__ = (
        "_delay",
        "_highest",
        "_max_age",
        "_max_gap",
        "_max_retries",
        "_missing",
        "_retry_interval",
        "_unwrapper",
        "media_ssrc",
        "sender_ssrc",
        "stats",
    )

    def __init__(
        self,
        *,
        sender_ssrc: int,
        media_ssrc: int,
        delay: float = 0.005,
        retry_interval: float = 0.03,
        max_retries: int = 8,
        max_age: float = 1.0,
        max_gap: int = 500,
    ) -> None:
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = media_ssrc
        self._delay = delay
        self._retry_interval = retry_interval
        self._max_retries = max_retries
        self._max_age = max_age
        self._max_gap = max_gap
        self._unwrapper = Unwrapper(16)
        self._highest: int | None = None
        # Extended sequence number -> [first seen missing, retries so far, next due].
        self._missing: dict[int, list[float]] = {}
        self.stats = NackStats()

    @property
    def missing(self) -> list[int]:
        """The sequence numbers currently missing, oldest first."""
        return [ext & 0xFFFF for ext in sorted(self._missing)]

    def receive(self, sequence_number: int, now: float) -> None:
        """Record that a packet with ``sequence_number`` arrived at ``now``."""
        ext = self._unwrapper.unwrap(sequence_number)
        highest = self._highest
        if highest is None:
            self._highest = ext
            return
        if ext == highest + 1:
            self._highest = ext
            return
        if ext > highest:
            if ext - highest > self._max_gap:
                self.stats.resets += 1
                self._missing.clear()
                self._highest = ext
                return
            due = now + self._delay
            missing = self._missing
            for lost in range(highest + 1, ext):
                missing[lost] = [now, 0.0, due]
            self.stats.missing += ext - highest - 1
            self._highest = ext
            return
        if self._missing.pop(ext, None) is not None:
            self.stats.recovered += 1

    def fills_gap(self, sequence_number: int) -> bool:
        """Whether a retransmission of ``sequence_number`` (RFC 4588) brings something new:
        a packet still missing or newer than any seen. False for one that arrived already
        or was given up: senders also send such retransmissions as bandwidth probes
        (libwebrtc's payload padding), and a subscriber's SRTP replay check would drop the
        copy."""
        highest = self._highest
        if highest is None:
            return True
        ext = self._unwrapper.unwrap(sequence_number)
        return ext > highest or ext in self._missing

    def get_timer(self) -> float | None:
        """The time at which :meth:`nacks_to_send` will have something, or None."""
        if not self._missing:
            return None
        return min(entry[2] for entry in self._missing.values())

    def nacks_to_send(self, now: float) -> RtcpNack | None:
        """Return the NACK to send at ``now`` (all due sequence numbers), or None.

        Sequence numbers past ``max_retries`` or ``max_age`` are given up instead.
        """
        if not self._missing:
            return None
        due: list[int] = []
        stats = self.stats
        expired = []
        for ext, entry in self._missing.items():
            if entry[2] > now:
                continue
            if entry[1] >= self._max_retries or now - entry[0] > self._max_age:
                expired.append(ext)
                continue
            retries = entry[1]
            entry[1] = retries + 1
            entry[2] = now + self._retry_interval * (2.0**retries)
            due.append(ext)
        for ext in expired:
            del self._missing[ext]
        stats.given_up += len(expired)
        if not due:
            return None
        due.sort()
        stats.nacked += len(due)
        return RtcpNack.from_lost(self.sender_ssrc, self.media_ssrc, (e & 0xFFFF for e in due))

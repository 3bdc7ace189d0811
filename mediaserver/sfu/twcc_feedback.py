"""Transport-cc feedback about what a sender sent us: the receiver side of transport-cc.

A browser with send-side bandwidth estimation (GoogCC) grows its send rate only on
transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-
extensions-01): the receiver reports, for every transport-wide sequence number, whether
the packet arrived and when. The server is that receiver for each publisher's uplink;
:mod:`mediaserver.sfu.twcc` is the other direction (our egress, the subscriber's feedback).

Rules of this file:

* :meth:`TransportFeedbackGenerator.receive` is on the per-packet path: it takes the
  16-bit number and the arrival time, unwraps the number and writes two ring slots (no
  object per packet, O(1)). :meth:`TransportFeedbackGenerator.receive_rtp` first finds
  the number in a plain RTP packet's RFC 8285 block (a few byte reads).
* :meth:`TransportFeedbackGenerator.feedback` runs on a timer (the server's tick, every
  few tens of milliseconds) and reports every number from the first one not yet reported
  to the newest one received (§3.1): received packets with their receive deltas, the rest
  as not received. Numbers wrap at 2**16 (extended internally, RFC 3550 A.1).
* Reference time: the first received packet's arrival in multiples of 64 ms (24 bits,
  wrapping); each receive delta is the arrival minus the previous received packet's in
  multiples of 250 µs (§3.1.5), rounded; deltas accumulate the rounded values, so the
  error of each reconstructed arrival stays under 125 µs. A delta in 0..255 is "small"
  (one byte), any other one "large" (two bytes, signed: a reordered packet has a negative
  one). A delta that does not fit 16 bits (more than 8.19 s) starts a new feedback packet.
* A feedback packet is also cut before it would exceed :data:`MAX_FEEDBACK_BYTES`, so that
  it fits a datagram after SRTCP; the next one continues at the next number.
* Duplicates (a number already recorded) are ignored. A reordered packet older than the
  first unreported number (so already reported lost) moves the report window back to it,
  by at most ``max_rewind`` numbers, so the next feedback reports it received (and
  repeats what followed it), as libwebrtc's receiver does. Older ones are counted in
  :attr:`TransportFeedbackGenerator.late` and dropped.
* The ring keeps ``capacity`` numbers: a jump forward by more than that reports only the
  last ``capacity`` numbers.
"""

from __future__ import annotations

from itertools import compress
from math import floor
from operator import sub

from mediaserver.errors import InvalidArgument, MalformedPacket
from mediaserver.rtp.packet import peek_extension_offset
from mediaserver.rtp.rtcp import (
    TWCC_RECEIVED_LARGE_DELTA,
    TWCC_RECEIVED_SMALL_DELTA,
    RtcpTransportCc,
)
from mediaserver.rtp.seqnum import uint16_diff

__all__ = ["MAX_FEEDBACK_BYTES", "TransportFeedbackGenerator"]

MAX_FEEDBACK_BYTES = 1100
"""Upper bound on one serialized feedback packet (RTCP header included)."""
_FIXED_BYTES = 20
"""RTCP header (4), packet sender and media source SSRCs (8), base, count, reference (8)."""
_REFERENCE_UNIT = 0.064
"""Reference time unit, seconds (§3.1: multiples of 64 ms)."""
_DELTA_UNIT = 0.00025
"""Receive delta unit, seconds (§3.1.5: multiples of 250 µs)."""
_DELTAS_PER_SECOND = 1 / _DELTA_UNIT
_RUN_MIN = 14
"""Not-received runs at least this long are coded as run length chunks (§3.1.3)."""
_RUN_MAX = 0x1FFF
"""The longest run one run length chunk holds (13 bits)."""


class TransportFeedbackGenerator:
    """Records transport-wide numbers as they arrive and builds feedback (sans-I/O).

    Args:
        capacity: numbers remembered, a power of two from 16 to 32768.
        max_rewind: how far back (in numbers) a late packet may move the report window;
            by default 256, or half the capacity when that is smaller.

    Raises:
        InvalidArgument: ``capacity`` is not a power of two in range, or ``max_rewind``
            is negative or not below ``capacity``.

    Attributes:
        received: packets recorded (duplicates and late ones excluded).
        duplicates: packets whose number was already recorded.
        late: packets too old to report (before the report window could move back).
        feedback_count: feedback packets built so far (its low 8 bits go on the wire).
    """

    __slots__ = (
        "_ext",
        "_highest",
        "_mask",
        "_max_rewind",
        "_start",
        "_times",
        "duplicates",
        "feedback_count",
        "late",
        "received",
    )

    def __init__(self, capacity: int = 4096, *, max_rewind: int | None = None) -> None:
        if not 16 <= capacity <= 0x8000 or capacity & (capacity - 1):
            raise InvalidArgument(f"capacity must be a power of two in 16..32768, not {capacity}")
        if max_rewind is None:
            max_rewind = min(256, capacity // 2)
        if not 0 <= max_rewind < capacity:
            raise InvalidArgument(f"max_rewind must be in 0..{capacity - 1}, not {max_rewind}")
        self._mask = capacity - 1
        self._max_rewind = max_rewind
        self._ext: list[int | None] = [None] * capacity
        """Per slot, the extended number recorded there (None: never)."""
        self._times = [0.0] * capacity
        self._start: int | None = None
        """The first extended number not yet reported."""
        self._highest = 0
        """The newest extended number received (RFC 3550 A.1: extended numbers are
        placed relative to it, so a reordered one from before a wrap stays below it)."""
        self.received = 0
        self.duplicates = 0
        self.late = 0
        self.feedback_count = 0

    @property
    def pending(self) -> int:
        """Numbers the next :meth:`feedback` would report (received or lost)."""
        start = self._start
        return 0 if start is None else max(0, self._highest - start + 1)

    def receive(self, sequence_number: int, arrival_time: float) -> None:
        """Record transport-wide number ``sequence_number`` (16 bits) arriving at
        ``arrival_time`` (seconds, any monotonic clock)."""
        start = self._start
        if start is None:
            ext = self._start = self._highest = sequence_number
        else:
            highest = self._highest
            ext = highest + uint16_diff(sequence_number, highest)
            if ext > highest:
                self._highest = ext
        i = ext & self._mask
        if self._ext[i] == ext:
            self.duplicates += 1
            return
        if start is not None and ext < start:
            # Reported lost already: report it again, received, unless too old.
            if start - ext > self._max_rewind or self._highest - ext > self._mask:
                self.late += 1
                return
            self._start = ext
        self._ext[i] = ext
        self._times[i] = arrival_time
        self.received += 1

    def receive_rtp(self, packet: bytes, ext_id: int, arrival_time: float) -> None:
        """Record ``packet`` (RTP after SRTP) if it carries element ``ext_id`` with a
        transport-wide number (RFC 8285; draft §2); otherwise, or when its extension
        block is malformed, do nothing."""
        if not packet[0] & 0x10:
            return
        try:
            found = peek_extension_offset(packet, ext_id)
        except MalformedPacket:
            return
        if found is not None and found[1] >= 2:
            at = found[0]
            self.receive((packet[at] << 8) | packet[at + 1], arrival_time)

    def feedback(self, sender_ssrc: int, media_ssrc: int) -> list[RtcpTransportCc]:
        """Feedback for every number from the first unreported one to the newest received.

        Returns an empty list when nothing arrived since the previous call; several
        packets when one would be too big or a delta does not fit 16 bits.
        """
        start = self._start
        highest = self._highest
        if start is None or start > highest:
            return []
        start = max(start, highest - self._mask)
        self._start = highest + 1
        one = self._feedback_in_one(sender_ssrc, media_ssrc, start, highest)
        if one is not None:
            return [one]
        return self._feedback_split(sender_ssrc, media_ssrc, start, highest)

    def _feedback_in_one(
        self, sender_ssrc: int, media_ssrc: int, start: int, highest: int
    ) -> RtcpTransportCc | None:
        """The usual case, in list operations: everything fits one packet (else None)."""
        ring_ext = self._ext
        times = self._times
        mask = self._mask
        numbers = range(start, highest + 1)
        present = [ring_ext[e & mask] == e for e in numbers]
        arrivals = [times[e & mask] for e in compress(numbers, present)]
        reference = int(arrivals[0] // _REFERENCE_UNIT)
        origin = reference * _REFERENCE_UNIT
        # Each arrival on the 250 µs grid from the reference time; the deltas are the
        # steps between them, so rounding errors do not add up (§3.1.5).
        ticks = list(map(floor, [(a - origin) * _DELTAS_PER_SECOND + 0.5 for a in arrivals]))
        deltas = [ticks[0], *map(sub, ticks[1:], ticks)]
        low, high = min(deltas), max(deltas)
        if low < -0x8000 or high > 0x7FFF:
            return None
        if low >= 0 and high <= 0xFF:
            large = 0
            statuses = list(map(int, present))  # True: TWCC_RECEIVED_SMALL_DELTA
        else:
            kinds = [
                TWCC_RECEIVED_SMALL_DELTA if 0 <= d <= 0xFF else TWCC_RECEIVED_LARGE_DELTA
                for d in deltas
            ]
            large = kinds.count(TWCC_RECEIVED_LARGE_DELTA)
            received = iter(kinds)
            statuses = [next(received) if p else 0 for p in present]
        size = _FIXED_BYTES + len(deltas) + large + 2 * (-(-len(present) // 7) + 1)
        if size > MAX_FEEDBACK_BYTES:
            return None
        count = self.feedback_count
        self.feedback_count = count + 1
        return RtcpTransportCc.from_statuses(
            sender_ssrc, media_ssrc, start & 0xFFFF, reference & 0xFFFFFF, count & 0xFF,
            statuses, deltas,
        )  # fmt: skip

    def _feedback_split(
        self, sender_ssrc: int, media_ssrc: int, start: int, highest: int
    ) -> list[RtcpTransportCc]:
        """The general case, number by number: cut where a delta does not fit 16 bits or
        the packet would grow past :data:`MAX_FEEDBACK_BYTES`."""
        ring_ext = self._ext
        times = self._times
        mask = self._mask
        packets: list[RtcpTransportCc] = []
        base = start
        deltas: list[int | None] = []
        reference = 0
        previous = 0.0
        have_reference = False
        delta_bytes = 0
        loose = 0  # statuses coded in vector chunks (at most 7 per 2-byte chunk)
        runs = 0  # run length chunks for long not-received runs
        lost_run = 0
        for ext in range(start, highest + 1):
            i = ext & mask
            if ring_ext[i] != ext:
                deltas.append(None)
                lost_run += 1
                continue
            arrival = times[i]
            if lost_run:
                if lost_run >= _RUN_MIN:
                    runs += -(-lost_run // _RUN_MAX) + 1
                else:
                    loose += lost_run
                lost_run = 0
            if have_reference:
                delta = round((arrival - previous) / _DELTA_UNIT)
                cost = 1 if 0 <= delta <= 0xFF else 2
                chunk_bytes = 2 * (-(-(loose + 1) // 7) + runs + 2)
                if (
                    not -0x8000 <= delta <= 0x7FFF
                    or _FIXED_BYTES + delta_bytes + cost + chunk_bytes > MAX_FEEDBACK_BYTES
                ):
                    packets.append(self._build(sender_ssrc, media_ssrc, base, reference, deltas))
                    base, deltas = ext, []
                    have_reference = False
                    delta_bytes = loose = runs = 0
            if not have_reference:
                # §3.1: the reference time, then the first delta from it (0..63.75 ms).
                reference = int(arrival // _REFERENCE_UNIT)
                previous = reference * _REFERENCE_UNIT
                have_reference = True
                delta = round((arrival - previous) / _DELTA_UNIT)
                cost = 1 if 0 <= delta <= 0xFF else 2
            previous += delta * _DELTA_UNIT
            deltas.append(delta)
            delta_bytes += cost
            loose += 1
        packets.append(self._build(sender_ssrc, media_ssrc, base, reference, deltas))
        return packets

    def _build(
        self,
        sender_ssrc: int,
        media_ssrc: int,
        base: int,
        reference: int,
        deltas: list[int | None],
    ) -> RtcpTransportCc:
        count = self.feedback_count
        self.feedback_count = count + 1
        return RtcpTransportCc.build(
            sender_ssrc, media_ssrc, base & 0xFFFF, reference & 0xFFFFFF, count & 0xFF, deltas
        )

"""Sequence numbers and timestamps of one outgoing RTP stream across source switches.

Rules of this file:

* A :class:`SeqMunger` owns the offsets of ONE outgoing stream (one subscriber m-line).
  The subscriber sees one SSRC whose sequence numbers go up by one per forwarded packet
  and whose timestamps keep running, whatever the SFU does upstream: simulcast switches,
  temporal or spatial layers filtered out, a publisher that re-published.
* Output sequence numbers are ``(extended input + offset) mod 2**16``. The offset changes
  only in two places: :meth:`SeqMunger.switch` (a new source: the next packet continues
  right after the last one sent) and :meth:`SeqMunger.drop` (a packet the selector
  filtered: the packets after it move down by one, so filtering leaves no gap). Gaps that
  remain are real losses, which the subscriber may NACK.
* Out-of-order input is placed with the offset that was in force at its position, so a
  late packet fills the hole left for it. A late packet from before the last switch, or
  older than the remembered drop history, is refused (``None``): it would collide with
  numbers already sent.
* Timestamps: ``input + ts_offset mod 2**32``. On a switch the new source's first packet
  gets ``last timestamp sent + elapsed wall time x clock rate`` (at least 1), so playout
  timing survives the switch (livekit ``rtpmunger.go`` and mediasoup ``SeqManager`` do the
  same with different details).
* Wrap-around distances go through :func:`mediaserver.rtp.seqnum.uint16_diff`; the only
  shortcut is an equality test for the common case (the packet right after the newest),
  and the masks below only reduce already-extended values.
"""

from __future__ import annotations

from collections import deque

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.seqnum import uint16_diff

__all__ = ["SeqMunger"]

_DROP_HISTORY = 256
"""Offset changes remembered for placing out-of-order packets (one per dropped packet)."""


class SeqMunger:
    """Rewrites sequence numbers and timestamps of one outgoing stream (sans-I/O).

    Args:
        clock_rate: the RTP clock rate of the outgoing stream (90000 for video).
        initial_sequence_number: the first sequence number to send.
        initial_timestamp: the first timestamp to send.

    Raises:
        InvalidArgument: ``clock_rate`` is not positive.
    """

    __slots__ = (
        "_clock_rate",
        "_drops",
        "_last_ext",
        "_last_in",
        "_last_out_seq",
        "_last_out_time",
        "_last_out_ts",
        "_pending_switch",
        "_seq_offset",
        "_start_ext",
        "_ts_offset",
        "forwarded",
    )

    def __init__(
        self, clock_rate: int, *, initial_sequence_number: int = 0, initial_timestamp: int = 0
    ) -> None:
        if clock_rate <= 0:
            raise InvalidArgument(f"clock rate must be positive, not {clock_rate}")
        self._clock_rate = clock_rate
        self._seq_offset = 0
        # 16-bit input sequence number of the newest packet of the current source.
        self._last_in = 0
        self._ts_offset = 0
        # Extended input sequence number of the newest packet of the current source.
        self._last_ext = -1
        # Extended input sequence number of the first packet of the current source.
        self._start_ext = 0
        self._last_out_seq = (initial_sequence_number - 1) & 0xFFFF
        self._last_out_ts = (initial_timestamp - 1) & 0xFFFFFFFF
        self._last_out_time: float | None = None
        self._pending_switch = True
        # (extended input seq of a dropped packet, seq offset after it), oldest first.
        self._drops: deque[tuple[int, int]] = deque(maxlen=_DROP_HISTORY)
        self.forwarded = 0
        """Packets given an output number so far."""

    @property
    def last_sequence_number(self) -> int:
        """The highest sequence number handed out (initial - 1 before the first)."""
        return self._last_out_seq

    @property
    def last_timestamp(self) -> int:
        """The timestamp of the newest packet handed out."""
        return self._last_out_ts

    def switch(self) -> None:
        """Start a new source: the next :meth:`input` continues after the last output.

        Call it when the forwarder switches to another simulcast stream or publisher,
        before feeding the first packet of the new source.
        """
        self._pending_switch = True

    def input(self, sequence_number: int, timestamp: int, now: float) -> tuple[int, int] | None:
        """Map one forwarded input packet to ``(sequence_number, timestamp)`` to send.

        Returns None when the packet cannot be placed (older than the current source's
        first packet, or than the remembered history); the caller drops it.
        """
        if self._pending_switch:
            self._pending_switch = False
            ext = sequence_number
            self._last_in = sequence_number
            self._start_ext = ext
            self._last_ext = ext
            self._drops.clear()
            self._seq_offset = self._last_out_seq + 1 - ext
            last = self._last_out_time
            step = 1 if last is None else max(1, round((now - last) * self._clock_rate))
            self._ts_offset = self._last_out_ts + step - timestamp
            out_seq = (ext + self._seq_offset) & 0xFFFF
            out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
            self._last_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
            self.forwarded += 1
            return out_seq, out_ts
        if sequence_number == (self._last_in + 1) & 0xFFFF:
            ext = self._last_ext + 1
        else:
            ext = self._last_ext + uint16_diff(sequence_number, self._last_in)
        if ext > self._last_ext:
            self._last_ext = ext
            self._last_in = sequence_number
            out_seq = (ext + self._seq_offset) & 0xFFFF
            out_ts = (timestamp + self._ts_offset) & 0xFFFFFFFF
            self._last_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
            self.forwarded += 1
            return out_seq, out_ts
        return self._input_late(ext, timestamp)

    def _input_late(self, ext: int, timestamp: int) -> tuple[int, int] | None:
        if ext < self._start_ext:
            return None
        offset = self._seq_offset
        drops = self._drops
        # Undo the drops that happened after this packet's position, newest first.
        for dropped, _after in reversed(drops):
            if dropped == ext:
                return None  # The selector dropped this one already: it has no slot.
            if dropped < ext:
                break
            offset += 1
        else:
            if len(drops) == drops.maxlen:
                return None  # The history no longer reaches back this far.
        self.forwarded += 1
        return (ext + offset) & 0xFFFF, (timestamp + self._ts_offset) & 0xFFFFFFFF

    def drop(self, sequence_number: int) -> None:
        """Tell the munger that the input packet ``sequence_number`` is not forwarded.

        Later packets move down by one so that the drop leaves no gap. A packet already
        overtaken by newer ones cannot be hidden any more: its number stays a gap.
        """
        if self._pending_switch:
            return
        ext = self._last_ext + uint16_diff(sequence_number, self._last_in)
        if ext > self._last_ext:
            # Numbers between the newest forwarded packet and this one stay reserved for
            # packets that may still arrive; only this packet's own slot goes away.
            self._last_ext = ext
            self._last_in = sequence_number
            self._seq_offset -= 1
            self._drops.append((ext, self._seq_offset))

"""An adaptive jitter buffer for one inbound Opus stream (sans I/O).

Rules of this file:

* Packets go in with :meth:`JitterBuffer.push` whenever they arrive; frames come out with
  :meth:`JitterBuffer.pop`, called once per 20 ms mixer tick. Time is an argument.
* Sequence numbers are extended to a monotonic count with the RFC 3550 appendix A.1 rule
  (the same arithmetic as :class:`mediaserver.rtp.seqnum.Unwrapper`, inlined here because
  ``push`` runs for every uplink packet of every attendee; the tests check both agree).
* ``pop`` returns the payload to decode, :data:`LOST` when a frame must be concealed (PLC,
  or FEC from :meth:`JitterBuffer.peek`), or None when the stream is idle (nothing buffered
  yet, or the sender went quiet): the mixer then treats the source as silent.

Decisions:

* **Target delay** follows the RFC 3550 §A.8 interarrival jitter ``J``:
  ``target = frame + 3 J + boost``, clamped to [``min_delay``, ``max_delay``] (20-200 ms)
  and rounded up to whole frames. ``boost`` grows by one frame for every late packet and
  decays by one frame per second without one, so a jitter spike that ``J`` underestimates
  still moves the delay.
* **Growing** the delay needs no time-stretching: when the buffer is empty at a tick, the
  missing frame is concealed and the read position is *held*, so the stream plays one
  frame later from then on. If the held packet then arrives it plays; if only its
  successor arrives, the held frame counts as the concealment of the lost one and playout
  continues with the successor. Holding is also what keeps a DTX gap (the sender pauses,
  sequence numbers stay contiguous) from turning the next packet into a late one.
* **Shrinking**: when the buffer holds more than the target for 25 ticks in a row (0.5 s),
  one frame is dropped. More than ``max_delay`` plus two frames buffered (after a network
  stall delivered a burst) is trimmed at once to the target.
* **Late** packets (older than the read position) and duplicates are dropped and counted.
  A jump of more than ``resync_frames`` either way, or a new SSRC, restarts the buffer.
* **Idle**: after ``max_conceal`` consecutive concealed frames with nothing buffered,
  ``pop`` returns None until packets arrive again (Opus PLC fades out by itself; 5 frames
  is 100 ms).
* A buffer nobody pops (an attendee the mixer does not decode) stays bounded: ``push``
  trims the oldest packets beyond ``max_delay`` plus two frames, and
  :meth:`JitterBuffer.trim_to_target` aligns it when the mixer starts decoding it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

from mediaserver.errors import InvalidArgument

__all__ = ["LOST", "JitterBuffer", "JitterStats", "Lost"]


class Lost(enum.Enum):
    """The type of :data:`LOST`."""

    LOST = "lost"

    def __repr__(self) -> str:
        return "LOST"


LOST: Final = Lost.LOST
"""Returned by :meth:`JitterBuffer.pop` when this tick's frame is missing: conceal it."""

_SHRINK_AFTER: Final = 25
_BOOST_DECAY_S: Final = 1.0
_LOSS_ALPHA: Final = 0.02
"""Weight of one packet in the loss-fraction average (about the last 50 packets, 1 s)."""


@dataclass(slots=True)
class JitterStats:
    """Counters of one :class:`JitterBuffer` (monotonic)."""

    received: int = 0
    """Packets pushed, including late ones and duplicates."""
    played: int = 0
    """Payloads returned by ``pop``."""
    concealed: int = 0
    """:data:`LOST` returned by ``pop``."""
    late: int = 0
    """Packets that arrived after their frame was played or concealed."""
    duplicates: int = 0
    dropped: int = 0
    """Buffered packets dropped to bound or shrink the delay."""
    shrinks: int = 0
    """Single-frame drops to shrink the delay."""
    resyncs: int = 0
    """Restarts on a sequence jump or a new SSRC."""
    idles: int = 0
    """Times playout stopped because the sender went quiet."""


class JitterBuffer:
    """Reorders one stream's packets and releases one frame per tick at an adaptive delay.

    Args:
        frame_ms: the packet duration (20 ms for every WebRTC Opus sender we know).
        clock_rate: the RTP clock rate (48000 for Opus).
        min_delay_ms: the lowest target delay (at least one frame).
        max_delay_ms: the highest target delay.
        max_conceal: concealed frames in a row, with nothing buffered, before going idle.
        resync_frames: a sequence jump larger than this restarts the buffer.

    Raises:
        InvalidArgument: the delays are not ``frame_ms <= min_delay_ms <= max_delay_ms``.
    """

    __slots__ = (
        "_boost",
        "_boost_at",
        "_buffer_since",
        "_capacity",
        "_clock_rate",
        "_conceal_run",
        "_excess_run",
        "_frame_ms",
        "_fresh",
        "_held",
        "_highest",
        "_jitter",
        "_last_seq",
        "_max_conceal",
        "_max_frames",
        "_min_frames",
        "_next",
        "_packets",
        "_playing",
        "_prev_arrival",
        "_prev_ts",
        "_resync",
        "_ssrc",
        "last_arrival",
        "loss",
        "stats",
    )

    def __init__(
        self,
        *,
        frame_ms: float = 20.0,
        clock_rate: int = 48000,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 200.0,
        max_conceal: int = 5,
        resync_frames: int = 100,
    ) -> None:
        if not 0 < frame_ms <= min_delay_ms <= max_delay_ms:
            raise InvalidArgument("jitter buffer needs 0 < frame_ms <= min_delay <= max_delay")
        self._frame_ms = frame_ms
        self._clock_rate = clock_rate
        self._min_frames = math.ceil(min_delay_ms / frame_ms - 1e-9)
        self._max_frames = math.ceil(max_delay_ms / frame_ms - 1e-9)
        self._capacity = self._max_frames + 2
        self._max_conceal = max_conceal
        self._resync = max(resync_frames, self._capacity + 1)
        self.stats = JitterStats()
        self.loss = 0.0
        """Recent fraction of packets missing from the sequence (about the last second)."""
        self.last_arrival: float | None = None
        """``now`` of the last packet pushed, or None."""
        self._ssrc: int | None = None
        self._packets: dict[int, bytes] = {}
        self._jitter = 0.0
        self._boost = 0
        self._boost_at = 0.0
        self._restart()

    def _restart(self) -> None:
        self._packets.clear()
        self._highest: int | None = None
        self._last_seq = 0
        self._next: int | None = None
        self._playing = False
        self._fresh = True
        self._buffer_since: float | None = None
        self._held = False
        self._conceal_run = 0
        self._excess_run = 0
        self._prev_arrival: float | None = None
        self._prev_ts = 0

    # -- observers -----------------------------------------------------------------------

    @property
    def jitter_ms(self) -> float:
        """The RFC 3550 §A.8 interarrival jitter estimate, in milliseconds."""
        return self._jitter * 1000.0 / self._clock_rate

    @property
    def target_frames(self) -> int:
        """The current target delay in frames."""
        frames = math.ceil(1.0 + 3.0 * self.jitter_ms / self._frame_ms - 1e-9) + self._boost
        return min(max(frames, self._min_frames), self._max_frames)

    @property
    def target_delay_ms(self) -> float:
        """The current target delay in milliseconds."""
        return self.target_frames * self._frame_ms

    @property
    def depth(self) -> int:
        """Frames between the read position and the newest packet, inclusive."""
        if self._next is None or self._highest is None:
            return 0
        return max(self._highest - self._next + 1, 0)

    @property
    def playing(self) -> bool:
        """True once playout started, until the stream goes idle or restarts."""
        return self._playing

    def __len__(self) -> int:
        return len(self._packets)

    # -- input ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every packet and the sequence state (keeps the jitter estimate)."""
        self._restart()

    def push(
        self, seq: int, timestamp: int, payload: bytes, now: float, ssrc: int | None = None
    ) -> None:
        """Store one packet.

        Args:
            seq: the 16-bit RTP sequence number.
            timestamp: the 32-bit RTP timestamp.
            payload: the Opus payload.
            now: arrival time in seconds.
            ssrc: the packet's SSRC; a change restarts the buffer.
        """
        stats = self.stats
        stats.received += 1
        if ssrc is not None and ssrc != self._ssrc:
            if self._ssrc is not None:
                stats.resyncs += 1
                self._restart()
            self._ssrc = ssrc
        self.last_arrival = now
        highest = self._highest
        if highest is None:
            ext = highest = self._highest = seq
            self._last_seq = seq
        else:
            delta = ((seq - self._last_seq + 0x8000) & 0xFFFF) - 0x8000
            ext = highest + delta
            nxt = self._next
            if nxt is not None and (ext >= nxt + self._resync or ext < nxt - self._resync):
                stats.resyncs += 1
                self._restart()
                ext = highest = self._highest = seq
                self._last_seq = seq
            elif delta > 0:
                self._highest = highest = ext
                self._last_seq = seq
                # Loss fraction: delta - 1 packets went missing, then this one arrived.
                if delta > 1:
                    self.loss = 1.0 - (1.0 - self.loss) * (1.0 - _LOSS_ALPHA) ** min(delta - 1, 50)
                self.loss *= 1.0 - _LOSS_ALPHA
        # RFC 3550 §A.8: J += (|D(i-1, i)| - J) / 16, in timestamp units.
        arrival = now * self._clock_rate
        prev_arrival = self._prev_arrival
        if prev_arrival is not None:
            dts = ((timestamp - self._prev_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = abs(arrival - prev_arrival - dts)
            if d < self._clock_rate:  # a jump of a second or more is a gap, not jitter
                self._jitter += (d - self._jitter) * 0.0625
        self._prev_arrival = arrival
        self._prev_ts = timestamp

        if not self._playing and self._buffer_since is None:
            self._buffer_since = now
        nxt = self._next
        if nxt is None:
            self._next = nxt = ext
        elif ext < nxt:
            if not self._fresh or highest - ext >= self._capacity:
                stats.late += 1
                if self._playing:
                    self._boost_late(now)
                return
            self._next = nxt = ext  # an earlier packet before the first playout
        packets = self._packets
        if ext in packets:
            stats.duplicates += 1
            return
        packets[ext] = payload
        if highest - nxt >= self._capacity:
            self._trim(highest - self.target_frames + 1)

    def _boost_late(self, now: float) -> None:
        if self._boost < self._max_frames:
            self._boost += 1
        self._boost_at = now

    def _trim(self, first: int) -> None:
        """Drop everything before extended sequence ``first`` and read from there."""
        nxt = self._next
        if nxt is None or first <= nxt:
            return
        packets = self._packets
        stats = self.stats
        if first - nxt > len(packets):
            for ext in [e for e in packets if e < first]:
                del packets[ext]
                stats.dropped += 1
        else:
            for ext in range(nxt, first):
                if packets.pop(ext, None) is not None:
                    stats.dropped += 1
        self._next = first
        self._held = False

    def trim_to_target(self) -> None:
        """Drop old packets so that at most the target delay is buffered.

        The mixer calls this when it starts decoding a source it did not decode before,
        so the source joins the mix at the target delay rather than with whatever backlog
        accumulated while nobody popped it.
        """
        if self._highest is not None and self._next is not None:
            self._trim(self._highest - self.target_frames + 1)

    # -- output --------------------------------------------------------------------------

    def peek(self) -> bytes | None:
        """The payload that the next :meth:`pop` would return, if buffered.

        After ``pop`` returned :data:`LOST`, this is the packet right after the lost one,
        whose in-band FEC can rebuild it (``OpusDecoder.decode_fec``).
        """
        if self._next is None:
            return None
        return self._packets.get(self._next)

    def pop(self, now: float) -> bytes | Lost | None:
        """Release this tick's frame: a payload, :data:`LOST`, or None when idle."""
        nxt = self._next
        if nxt is None:
            return None
        highest = self._highest
        assert highest is not None
        if self._boost and now - self._boost_at >= _BOOST_DECAY_S:
            self._boost -= 1
            self._boost_at = now
        packets = self._packets
        if not self._playing:
            if not packets:
                return None
            # Start once the target is buffered without gaps, or once the first packet
            # waited for the target delay (the gaps are then losses).
            target = self.target_frames
            run = 0
            while run < target and nxt + run in packets:
                run += 1
            since = self._buffer_since
            waited = since is not None and now - since >= (target - 1) * self._frame_ms / 1000
            if run < target and not waited:
                return None
            if nxt not in packets:
                self._next = nxt = min(packets)
            self._playing = True
            self._fresh = False
            self._buffer_since = None
        elif self._held and highest > nxt and nxt not in packets:
            # The frame concealed while holding stands for this lost packet.
            self._next = nxt = nxt + 1
        self._held = False
        stats = self.stats
        payload = packets.pop(nxt, None)
        if payload is not None:
            self._next = nxt + 1
            self._conceal_run = 0
            stats.played += 1
            if highest - nxt > self.target_frames:
                self._excess_run += 1
                if highest - nxt > self._capacity:
                    self._trim(highest - self.target_frames + 1)
                    self._excess_run = 0
                elif self._excess_run >= _SHRINK_AFTER:
                    self._trim(nxt + 2)
                    stats.shrinks += 1
                    self._excess_run = 0
            else:
                self._excess_run = 0
            return payload
        self._conceal_run += 1
        if highest > nxt:
            self._next = nxt + 1
        elif self._conceal_run > self._max_conceal:
            # The sender went quiet (DTX, mute, gone): stop concealing, keep the position
            # so that a packet older than what was played still counts as late.
            stats.idles += 1
            self._playing = False
            self._held = False
            self._conceal_run = 0
            return None
        else:
            self._held = True
        stats.concealed += 1
        return LOST

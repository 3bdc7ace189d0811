"""Audio levels: RFC 6464 values, smoothing, active-speaker selection, AUDIO_METADATA.

Rules of this file:

* Levels are in -dBov as RFC 6464 §3 carries them: 0 is the loudest, 127 is silence.
  "Louder" means a *smaller* number everywhere in this module.
* The selector keeps one row per source in numpy arrays indexed by a *slot* that the mixer
  assigns, so the per-packet cost is two array stores (:meth:`SpeakerSelector.report`)
  and the per-tick cost is a handful of vector operations over all sources, whatever the
  meeting size. Nothing here decodes audio.

Decisions:

* **Smoothing** is a peak meter per tick: instant attack, exponential release (0.2 of
  the distance per tick), so a talker is picked up at the first tick and a word gap does
  not drop them; the hysteresis below keeps a single loud packet from taking a seat. A
  source with no packet for ``stale_ticks`` ticks counts as silent (127): with DTX,
  silence is the absence of packets.
* **Hysteresis**: a source is *speaking* when its smoothed level is at or below
  ``threshold`` (default 50, that is -50 dBov, between speech and room noise). Free
  slots in the speaker set are filled at once by the loudest speaking sources. When the
  set is full, a challenger replaces the weakest speaker only after being louder than it
  by ``margin`` dB for ``switch_ticks`` consecutive ticks (100 ms by default). A speaker
  that stops speaking leaves after ``hold_ticks`` quiet ticks (300 ms). A source that is
  muted, removed or may not send leaves at once.
* **AUDIO_METADATA** (``chime-signaling-protocol.md`` §5.2): ``volume = round(-dBov)``,
  which is the smoothed RFC 6464 value itself; 14 or less is full scale on the client and
  42 or more is silent. ``signal_strength`` is 2 for a healthy uplink, 1 above 5 % loss,
  0 above 20 % loss or with no packet for 2 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from mediaserver.errors import InvalidArgument

__all__ = [
    "SILENT_LEVEL",
    "VOLUME_FULL_SCALE",
    "VOLUME_SILENT",
    "SpeakerChange",
    "SpeakerSelector",
    "signal_strength",
    "volume_from_level",
]

SILENT_LEVEL: Final = 127
"""RFC 6464 level of digital silence (-127 dBov)."""

VOLUME_FULL_SCALE: Final = 14
"""AUDIO_METADATA volume at or below which the client shows full scale."""

VOLUME_SILENT: Final = 42
"""AUDIO_METADATA volume at or above which the client shows silence."""

_RELEASE: Final = 0.2


def volume_from_level(level: float) -> int:
    """AUDIO_METADATA ``volume`` from a level in -dBov: ``round(-dBov)``, clipped to 0-127."""
    return min(max(round(level), 0), SILENT_LEVEL)


def signal_strength(loss: float, silent_for: float | None) -> int:
    """AUDIO_METADATA ``signal_strength`` (0, 1 or 2) of one attendee's uplink.

    Args:
        loss: recent fraction of uplink packets lost (``JitterBuffer.loss``).
        silent_for: seconds since the last uplink packet, or None if none ever came.
    """
    if silent_for is None or silent_for >= 2.0 or loss > 0.2:
        return 0
    if loss > 0.05:
        return 1
    return 2


@dataclass(frozen=True, slots=True)
class SpeakerChange:
    """What one :meth:`SpeakerSelector.select` call changed.

    Attributes:
        speakers: the slots in the speaker set after the tick, in the order they joined.
        entered: slots that joined this tick.
        left: slots that left this tick.
    """

    speakers: tuple[int, ...]
    entered: tuple[int, ...]
    left: tuple[int, ...]


class SpeakerSelector:
    """Smooths every source's level and keeps a top-N speaker set with hysteresis.

    Args:
        max_speakers: N, the size of the speaker set.
        threshold: the smoothed level (-dBov) at or below which a source is speaking.
        margin: dB a challenger must beat the weakest speaker by.
        switch_ticks: consecutive ticks a challenger must win before it replaces them.
        hold_ticks: quiet ticks before a speaker leaves the set.
        stale_ticks: ticks without a packet after which a source counts as silent.
        capacity: initial number of slots (grows as needed).

    Raises:
        InvalidArgument: a parameter is out of range.
    """

    __slots__ = (
        "_eligible",
        "_last",
        "_quiet",
        "_seen",
        "_speakers",
        "_streak",
        "_tick",
        "hold_ticks",
        "margin",
        "max_speakers",
        "smoothed",
        "stale_ticks",
        "switch_ticks",
        "threshold",
    )

    def __init__(
        self,
        max_speakers: int = 3,
        *,
        threshold: float = 50.0,
        margin: float = 6.0,
        switch_ticks: int = 5,
        hold_ticks: int = 15,
        stale_ticks: int = 3,
        capacity: int = 64,
    ) -> None:
        if max_speakers < 1:
            raise InvalidArgument("max_speakers must be at least 1")
        if switch_ticks < 1 or hold_ticks < 1 or stale_ticks < 1:
            raise InvalidArgument("switch_ticks, hold_ticks and stale_ticks must be positive")
        self.max_speakers = max_speakers
        self.threshold = threshold
        self.margin = margin
        self.switch_ticks = switch_ticks
        self.hold_ticks = hold_ticks
        self.stale_ticks = stale_ticks
        self._tick = 0
        self._speakers: list[int] = []
        self._quiet: dict[int, int] = {}
        capacity = max(capacity, 1)
        self._last: npt.NDArray[np.float32] = np.full(capacity, SILENT_LEVEL, np.float32)
        self._seen: npt.NDArray[np.int64] = np.full(capacity, -(1 << 40), np.int64)
        self.smoothed: npt.NDArray[np.float32] = np.full(capacity, SILENT_LEVEL, np.float32)
        """Smoothed level per slot, in -dBov (read-only for callers)."""
        self._eligible: npt.NDArray[np.bool_] = np.zeros(capacity, np.bool_)
        self._streak: npt.NDArray[np.int32] = np.zeros(capacity, np.int32)

    @property
    def capacity(self) -> int:
        return int(self._last.shape[0])

    @property
    def speakers(self) -> tuple[int, ...]:
        """The current speaker set (slots)."""
        return tuple(self._speakers)

    def ensure_capacity(self, slots: int) -> None:
        """Grow the arrays so that slots ``0 .. slots - 1`` exist."""
        old = self.capacity
        if slots <= old:
            return
        new = max(slots, 2 * old)

        def grow(a: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
            b = np.empty(new, a.dtype)
            b[:old] = a
            b[old:] = fill
            return b

        self._last = grow(self._last, SILENT_LEVEL)  # type: ignore[assignment]
        self._seen = grow(self._seen, -(1 << 40))  # type: ignore[assignment]
        self.smoothed = grow(self.smoothed, SILENT_LEVEL)  # type: ignore[assignment]
        self._eligible = grow(self._eligible, False)  # type: ignore[assignment]
        self._streak = grow(self._streak, 0)  # type: ignore[assignment]

    def reset_slot(self, slot: int) -> None:
        """Make ``slot`` a fresh, silent, ineligible source (on add or remove)."""
        self.ensure_capacity(slot + 1)
        self._last[slot] = SILENT_LEVEL
        self._seen[slot] = -(1 << 40)
        self.smoothed[slot] = SILENT_LEVEL
        self._eligible[slot] = False
        self._streak[slot] = 0

    def set_eligible(self, slot: int, eligible: bool) -> None:
        """Whether ``slot`` may be mixed (present, unmuted, allowed to send)."""
        self._eligible[slot] = eligible

    def report(self, slot: int, level: int) -> None:
        """Record the RFC 6464 level (-dBov) of a packet from ``slot``: call per packet."""
        self._last[slot] = level
        self._seen[slot] = self._tick

    def select(self) -> SpeakerChange:
        """Advance one tick: smooth every level, then update the speaker set."""
        self._tick += 1
        tick = self._tick
        fresh = (tick - self._seen) <= self.stale_ticks
        x = np.where(fresh, self._last, np.float32(SILENT_LEVEL))
        sm = self.smoothed
        sm += np.float32(_RELEASE) * (x - sm)
        np.minimum(sm, x, out=sm)
        eligible = self._eligible
        speaking = eligible & (sm <= self.threshold)

        speakers = self._speakers
        left: list[int] = []
        quiet = self._quiet
        for slot in list(speakers):
            if not eligible[slot]:
                left.append(slot)
            elif speaking[slot]:
                quiet[slot] = 0
            else:
                quiet[slot] = quiet.get(slot, 0) + 1
                if quiet[slot] >= self.hold_ticks:
                    left.append(slot)
        for slot in left:
            speakers.remove(slot)
            quiet.pop(slot, None)

        entered: list[int] = []
        candidates = speaking
        if speakers:
            candidates = speaking.copy()
            candidates[speakers] = False
        free = self.max_speakers - len(speakers)
        if free > 0:
            found = np.flatnonzero(candidates)
            if found.size:
                order = found[np.argsort(sm[found], kind="stable")][:free]
                for slot in order.tolist():
                    speakers.append(slot)
                    quiet[slot] = 0
                    entered.append(slot)
            self._streak[:] = 0
        else:
            weakest = max(speakers, key=lambda s: (float(sm[s]), s))
            beats = candidates & (sm < sm[weakest] - self.margin)
            streak = self._streak
            streak += 1
            streak *= beats
            ready = np.flatnonzero(streak >= self.switch_ticks)
            if ready.size:
                best = int(ready[np.argmin(sm[ready])])
                speakers[speakers.index(weakest)] = best
                quiet.pop(weakest, None)
                quiet[best] = 0
                streak[best] = 0
                left.append(weakest)
                entered.append(best)
        return SpeakerChange(tuple(speakers), tuple(entered), tuple(left))

    def drop(self, slot: int) -> bool:
        """Remove ``slot`` from the speaker set at once; True if it was a speaker."""
        if slot in self._speakers:
            self._speakers.remove(slot)
            self._quiet.pop(slot, None)
            return True
        return False

    def audible(self) -> tuple[Sequence[int], Sequence[int]]:
        """Slots whose volume is below :data:`VOLUME_SILENT`, with their volumes.

        Only eligible sources are listed: a muted attendee shows as 0 on the client.
        """
        mask = self._eligible & (self.smoothed < VOLUME_SILENT - 0.5)
        slots = np.flatnonzero(mask)
        volumes = np.rint(self.smoothed[slots]).astype(np.int64)
        np.clip(volumes, 0, SILENT_LEVEL, out=volumes)
        return slots.tolist(), volumes.tolist()

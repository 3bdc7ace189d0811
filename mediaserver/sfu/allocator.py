"""Split a subscriber's downlink estimate across its video streams, by priority.

Rules of this file:

* Pure functions over frozen dataclasses. :func:`allocate` runs when the estimate or
  the subscriptions change (a few times per second), never per packet.
* Priority follows the Chime SDK's ``VideoPriorityBasedPolicy`` convention: a *lower*
  number is more important (spec §4.5 ``priority``). Equal priorities keep input order.
* Two passes: first every stream, most important first, gets its lowest layer while
  the budget allows (a visible tile beats a sharp one); then, again in priority order,
  each stream is raised to the best layer the remaining budget pays for. A stream that
  gets no layer is paused (spec §4.6, server-side ``group_ids``).
* Layer rates come from what publishers actually send (:class:`BitrateMeter`, which also
  feeds the BITRATES frame of spec §4.4), falling back to the advertised maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mediaserver.errors import InvalidArgument

__all__ = ["Allocation", "BitrateMeter", "LayerOption", "StreamDemand", "allocate"]


@dataclass(frozen=True, slots=True)
class LayerOption:
    """One selectable layer of a source and what it costs.

    Attributes:
        spatial: the spatial layer or simulcast index (0 = lowest).
        temporal: the temporal layer.
        bitrate: bits/s it needs.
    """

    spatial: int
    temporal: int
    bitrate: int


@dataclass(frozen=True, slots=True)
class StreamDemand:
    """One subscribed source (an m-line) and its selectable layers.

    Attributes:
        key: the caller's id for the subscription (for example the m-line's mid).
        priority: lower is more important.
        layers: the options, cheapest first.
        max_bitrate: the subscriber's ``target_bitrate_kbps`` cap in bits/s, or None.
    """

    key: str
    priority: int
    layers: tuple[LayerOption, ...]
    max_bitrate: int | None = None

    def __post_init__(self) -> None:
        rates = [layer.bitrate for layer in self.layers]
        if rates != sorted(rates):
            raise InvalidArgument(f"layers of {self.key!r} must be ordered cheapest first")


@dataclass(frozen=True, slots=True)
class Allocation:
    """The layer given to one subscription.

    Attributes:
        key: the subscription.
        layer: the chosen layer, or None (paused: not enough bandwidth).
    """

    key: str
    layer: LayerOption | None

    @property
    def bitrate(self) -> int:
        """Bits/s allocated."""
        return self.layer.bitrate if self.layer is not None else 0


def allocate(estimate: int, demands: Sequence[StreamDemand]) -> tuple[Allocation, ...]:
    """Allocate ``estimate`` bits/s across ``demands``; results are in input order."""
    order = sorted(range(len(demands)), key=lambda i: demands[i].priority)
    chosen: list[int] = [-1] * len(demands)
    budget = estimate

    def usable(demand: StreamDemand) -> tuple[LayerOption, ...]:
        cap = demand.max_bitrate
        if cap is None:
            return demand.layers
        return tuple(layer for layer in demand.layers if layer.bitrate <= cap) or demand.layers[:1]

    options = [usable(d) for d in demands]
    for i in order:
        if options[i] and options[i][0].bitrate <= budget:
            chosen[i] = 0
            budget -= options[i][0].bitrate
    for i in order:
        if chosen[i] < 0:
            continue
        layers = options[i]
        budget += layers[chosen[i]].bitrate
        best = chosen[i]
        for j in range(len(layers) - 1, chosen[i], -1):
            if layers[j].bitrate <= budget:
                best = j
                break
        chosen[i] = best
        budget -= layers[best].bitrate
    return tuple(
        Allocation(d.key, options[k][chosen[k]] if chosen[k] >= 0 else None)
        for k, d in enumerate(demands)
    )


class BitrateMeter:
    """Average bitrate per publisher stream over a sliding window (sans-I/O).

    Args:
        window: averaging window in seconds.
    """

    __slots__ = ("_buckets", "_window")

    def __init__(self, window: float = 2.0) -> None:
        if window <= 0:
            raise InvalidArgument(f"window must be positive, not {window}")
        self._window = window
        # stream id -> {whole second: bytes}; at most window+1 buckets per stream.
        self._buckets: dict[int, dict[int, int]] = {}

    def add(self, stream_id: int, size: int, now: float) -> None:
        """Count ``size`` bytes received on ``stream_id`` at ``now``."""
        buckets = self._buckets.get(stream_id)
        if buckets is None:
            buckets = self._buckets[stream_id] = {}
        second = int(now * 4)  # Quarter-second buckets.
        buckets[second] = buckets.get(second, 0) + size

    def bitrates(self, now: float) -> dict[int, int]:
        """Return ``{stream_id: avg bits/s}`` of the streams that sent in the window.

        Streams silent for the whole window are left out (BITRATES lists only streams
        that are sending, spec §4.4) and forgotten.
        """
        oldest = int((now - self._window) * 4)
        rates: dict[int, int] = {}
        for stream_id in list(self._buckets):
            buckets = self._buckets[stream_id]
            for key in [k for k in buckets if k < oldest]:
                del buckets[key]
            if not buckets:
                del self._buckets[stream_id]
                continue
            rates[stream_id] = int(sum(buckets.values()) * 8 / self._window)
        return rates

    def forget(self, stream_id: int) -> None:
        """Drop a stream that ended."""
        self._buckets.pop(stream_id, None)

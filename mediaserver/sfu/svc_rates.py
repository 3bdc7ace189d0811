"""Bits/s per spatial and temporal layer of one SVC stream (VP9 SVC, AV1), for the allocator.

Rules of this file:

* Sans-I/O; time is passed in. One :class:`SvcLayerRates` per publisher SVC stream.
* Per packet only :meth:`SvcLayerRates.add` runs: one list slot incremented by the packet's
  size, the layer read from the :class:`~mediaserver.sfu.view.PacketView` the forwarding
  path builds anyway. No object per packet.
* Padding-only packets (RFC 3550 §5.1: P set, nothing but padding; libwebrtc probes its
  uplink with them on the media SSRC) belong to no layer and are not counted: they carry
  no picture, and forwarding a layer does not oblige the server to forward them.
* :meth:`SvcLayerRates.sample` (twice a second) turns the byte counts into smoothed
  bits/s; :meth:`SvcLayerRates.options` gives the cumulative cost of forwarding up to each
  ``(spatial, temporal)`` layer (every layer at or below both), lowest first in
  spatial-then-temporal order: the order the allocator ranks them by
  (:meth:`mediaserver.sfu.controller.DownlinkController.choose`).
"""

from __future__ import annotations

from typing import Final

from mediaserver.rtp.packet import peek_payload_offset

__all__ = ["LAYER_CODES", "SvcLayerRates", "layer_code", "layer_of_code"]

_BITS: Final = 3
"""Layer ids are 3 bits (VP9 SID/TID, RFC 9628 §4.2; AV1 allows at most 4 and 8)."""
_SLOTS: Final = 1 << (2 * _BITS)
_SMOOTHING: Final = 0.6
"""Weight of the previous rate in the smoothed rate (as for simulcast streams)."""
LAYER_CODES: Final = range(1, _SLOTS + 1)
"""The values :func:`layer_code` returns."""


def layer_code(spatial: int, temporal: int) -> int:
    """A positive number naming ``(spatial, temporal)``, for choosers that pick ids (0 is
    "none")."""
    return 1 + ((spatial << _BITS) | temporal)


def layer_of_code(code: int) -> tuple[int, int]:
    """The ``(spatial, temporal)`` layer of a :func:`layer_code`."""
    index = code - 1
    return index >> _BITS, index & ((1 << _BITS) - 1)


class SvcLayerRates:
    """Measures one SVC stream's layers (sans-I/O)."""

    __slots__ = ("_bytes", "_last", "_rates", "_sampled_at")

    def __init__(self) -> None:
        self._bytes = [0] * _SLOTS
        """Bytes per layer slot (``spatial << 3 | temporal``) since the last sample."""
        self._rates: list[float] = [0.0] * _SLOTS
        self._sampled_at: float | None = None
        self._last: list[bool] = [False] * _SLOTS

    def add(self, data: bytes, spatial: int, temporal: int) -> None:
        """Count one packet of layer ``(spatial, temporal)`` (from its PacketView)."""
        if data[0] & 0x20 and len(data) - data[-1] <= peek_payload_offset(data):
            return  # Padding only.
        self._bytes[((spatial & 7) << _BITS) | (temporal & 7)] += len(data)

    def sample(self, now: float) -> None:
        """Turn the bytes counted since the previous sample into smoothed bits/s. A layer
        that sent nothing in the period is not on offer until it sends again."""
        previous = self._sampled_at
        self._sampled_at = now
        counts = self._bytes
        self._bytes = [0] * _SLOTS
        if previous is None or now <= previous:
            return
        elapsed = now - previous
        rates = self._rates
        for slot, count in enumerate(counts):
            rate = count * 8 / elapsed
            if not count or not rates[slot]:
                rates[slot] = rate
            else:
                rates[slot] = _SMOOTHING * rates[slot] + (1 - _SMOOTHING) * rate

    def options(self) -> list[tuple[int, int, int]]:
        """``(spatial, temporal, bits/s)`` for every layer up to the highest spatial and
        temporal layer heard, the bits/s counting every layer a decoder of it needs,
        lowest first (spatial, then temporal). Empty before two samples or when the
        stream has one layer only (nothing to choose)."""
        rates = self._rates
        heard = [slot for slot in range(_SLOTS) if rates[slot] > 0]
        if not heard:
            return []
        top_spatial = max(slot >> _BITS for slot in heard)
        top_temporal = max(slot & 7 for slot in heard)
        if not top_spatial and not top_temporal:
            return []
        found: list[tuple[int, int, int]] = []
        for spatial in range(top_spatial + 1):
            for temporal in range(top_temporal + 1):
                total = 0.0
                for s in range(spatial + 1):
                    base = s << _BITS
                    for t in range(temporal + 1):
                        total += rates[base | t]
                found.append((spatial, temporal, int(total)))
        return found

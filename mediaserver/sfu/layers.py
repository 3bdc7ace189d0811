"""Layer selection: which packets of a publisher reach one subscriber.

Rules of this file:

* A selector sees every packet of the publisher streams its subscriber may receive and
  answers with a verdict: an ``int`` of the flags below (no object per packet). The
  :class:`~mediaserver.sfu.forwarder.Forwarder` turns verdicts into decisions and
  drives the :class:`~mediaserver.sfu.munger.SeqMunger`.
* Layers only change where the decoder can follow:

  - another simulcast stream (or spatial layer without inter-layer prediction) only at
    one of its key frames, and a key frame is requested when the switch is wanted;
  - a higher temporal layer only at a switching point (VP8 ``Y``, VP9 ``U``) that starts
    a frame;
  - a lower layer at the start of the next frame (picture, for spatial layers).

* ``FILTERED`` marks a packet of the *current* source that is left out on purpose: the
  munger closes its sequence number gap. A plain ``DROP`` is a packet of another source.
* Targets are ``(spatial, temporal)`` for every selector; for simulcast the spatial
  index picks a stream from low to high. Setting a target never switches by itself; the
  packets do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.view import PacketView

__all__ = [
    "DROP",
    "FILTERED",
    "FORWARD",
    "KEYFRAME_NEEDED",
    "MAX_LAYER",
    "SET_MARKER",
    "SWITCH",
    "Av1DdSelector",
    "LayerSelector",
    "NullSelector",
    "SimulcastSelector",
    "TemporalFilter",
    "Vp8TemporalSelector",
    "Vp9SvcSelector",
]

DROP: Final = 0
"""Do not forward (a packet of another source, or nothing is forwarded yet)."""
FORWARD: Final = 1
"""Forward the packet."""
SWITCH: Final = 2
"""With FORWARD: the packet is the first of a new source; re-sync the munger first."""
KEYFRAME_NEEDED: Final = 4
"""A key frame of the wanted source is needed (ask the publisher, throttled)."""
SET_MARKER: Final = 8
"""With FORWARD: set the marker bit (the last packet of the highest forwarded layer)."""
FILTERED: Final = 16
"""A packet of the current source left out on purpose (the munger closes its gap)."""

MAX_LAYER: Final = 7
"""A target that means "every layer there is"."""


class LayerSelector(Protocol):
    """Decides, packet by packet, which packets one subscriber receives."""

    def select(self, view: PacketView, source_stream_id: int) -> int:
        """Return the verdict flags for one packet of stream ``source_stream_id``."""
        ...

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        """Aim at layer ``(spatial, temporal)``; switches happen at the packets that allow it."""
        ...

    def reset(self) -> None:
        """Forget the current layer (a new subscriber, a resume): wait for a key frame."""
        ...

    @property
    def current(self) -> tuple[int, int] | None:
        """The ``(spatial, temporal)`` layer being forwarded, or None before the first."""
        ...

    def keyframe_stream(self, source_stream_id: int) -> int:
        """The stream to ask for a key frame when a verdict has KEYFRAME_NEEDED."""
        ...


class TemporalFilter:
    """Keeps temporal layers up to a target, switching up only at switching points.

    Used by :class:`Vp8TemporalSelector` and inside :class:`SimulcastSelector`.
    """

    __slots__ = ("current", "target")

    def __init__(self, target: int = MAX_LAYER) -> None:
        self.target = target
        self.current = target

    def filter(self, view: PacketView) -> int:
        """Return FORWARD or FILTERED for one packet of the current source."""
        tid = view.temporal_id
        if view.start_of_frame:
            current = self.current
            target = self.target
            if view.keyframe or target < current:
                self.current = target
            elif current < tid <= target and view.switch_point:
                self.current = tid
        return FORWARD if tid <= self.current else FILTERED


class NullSelector:
    """Forwards everything (audio, or video without layers and without key frame gating).

    A change of source stream (the publisher re-published) re-syncs the munger.
    """

    __slots__ = ("_stream",)

    def __init__(self) -> None:
        self._stream = -1

    def select(self, view: PacketView, source_stream_id: int) -> int:
        if source_stream_id == self._stream:
            return FORWARD
        self._stream = source_stream_id
        return FORWARD | SWITCH

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        pass

    def reset(self) -> None:
        self._stream = -1

    @property
    def current(self) -> tuple[int, int] | None:
        return None if self._stream < 0 else (0, 0)

    def keyframe_stream(self, source_stream_id: int) -> int:
        return source_stream_id


class SimulcastSelector:
    """Picks one of a publisher's simulcast streams, switching at its key frames.

    A single-stream video publisher is a simulcast publisher with one stream: the
    selector then only gates the start on a key frame.

    Args:
        stream_ids: the publisher's stream ids, lowest quality first (``low``, ``mid``,
            ``hi``).
        temporal: also filter temporal layers inside the chosen stream (VP8 with TIDs).

    Raises:
        InvalidArgument: ``stream_ids`` is empty.
    """

    __slots__ = ("_current", "_streams", "_target", "_temporal")

    def __init__(self, stream_ids: Sequence[int], *, temporal: bool = False) -> None:
        if not stream_ids:
            raise InvalidArgument("a simulcast selector needs at least one stream")
        self._streams = tuple(stream_ids)
        self._current = -1
        self._target = self._streams[-1]
        self._temporal = TemporalFilter() if temporal else None

    @property
    def stream_ids(self) -> tuple[int, ...]:
        """The selectable streams, lowest first."""
        return self._streams

    @property
    def current_stream(self) -> int | None:
        """The stream being forwarded, or None."""
        return None if self._current < 0 else self._current

    @property
    def target_stream(self) -> int:
        """The stream wanted."""
        return self._target

    @property
    def current(self) -> tuple[int, int] | None:
        if self._current < 0:
            return None
        temporal = self._temporal.current if self._temporal is not None else MAX_LAYER
        return self._streams.index(self._current), temporal

    def set_streams(self, stream_ids: Sequence[int]) -> None:
        """Replace the selectable streams (the publisher changed its encodings).

        Raises:
            InvalidArgument: ``stream_ids`` is empty.
        """
        if not stream_ids:
            raise InvalidArgument("a simulcast selector needs at least one stream")
        index = self._streams.index(self._target) if self._target in self._streams else -1
        self._streams = tuple(stream_ids)
        self._target = self._streams[min(max(index, 0), len(self._streams) - 1)]

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        streams = self._streams
        self._target = streams[min(max(spatial, 0), len(streams) - 1)]
        if self._temporal is not None:
            self._temporal.target = temporal

    def set_target_stream(self, stream_id: int) -> None:
        """Aim at ``stream_id`` directly (REMOTE_VIDEO_UPDATE names a stream id).

        Raises:
            InvalidArgument: the stream is not one of :attr:`stream_ids`.
        """
        if stream_id not in self._streams:
            raise InvalidArgument(f"stream {stream_id} is not one of {self._streams}")
        self._target = stream_id

    def reset(self) -> None:
        self._current = -1

    def keyframe_stream(self, source_stream_id: int) -> int:
        return self._target

    def select(self, view: PacketView, source_stream_id: int) -> int:
        current = self._current
        if source_stream_id == current:
            temporal = self._temporal
            if temporal is None:
                return FORWARD if self._target == current else FORWARD | KEYFRAME_NEEDED
            verdict = temporal.filter(view)
            return verdict if self._target == current else verdict | KEYFRAME_NEEDED
        if source_stream_id != self._target:
            return DROP
        if not view.keyframe:
            return DROP | KEYFRAME_NEEDED
        # RFC-free rule of every SFU: simulcast streams are independent encodings, so
        # a switch is only possible where the new stream starts a key frame.
        self._current = source_stream_id
        temporal = self._temporal
        if temporal is not None:
            temporal.current = temporal.target
        return FORWARD | SWITCH


class Vp8TemporalSelector:
    """Filters VP8 temporal layers of one stream (RFC 7741 TID and Y).

    Waits for a key frame before forwarding anything; a stream change re-syncs.
    """

    __slots__ = ("_filter", "_stream")

    def __init__(self, temporal: int = MAX_LAYER) -> None:
        self._filter = TemporalFilter(temporal)
        self._stream = -1

    @property
    def current(self) -> tuple[int, int] | None:
        return None if self._stream < 0 else (0, self._filter.current)

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        self._filter.target = temporal

    def reset(self) -> None:
        self._stream = -1

    def keyframe_stream(self, source_stream_id: int) -> int:
        return source_stream_id

    def select(self, view: PacketView, source_stream_id: int) -> int:
        if source_stream_id == self._stream:
            return self._filter.filter(view)
        if not view.keyframe:
            return DROP | KEYFRAME_NEEDED
        self._stream = source_stream_id
        self._filter.current = self._filter.target
        return FORWARD | SWITCH


class Vp9SvcSelector:
    """Filters spatial and temporal layers of one SVC stream (VP9, RFC 9628).

    Spatial layers go up only at a key frame (K-SVC and full SVC alike: the simple,
    always-safe rule), down at the next picture. Temporal layers go up at a ``U``
    switching point, down at the next picture. The marker bit is set on the last packet
    of the highest spatial layer forwarded (RFC 9628 section 4.1: the marker ends a
    picture, so it must follow what the subscriber receives).
    """

    __slots__ = ("_current_sid", "_current_tid", "_stream", "_target_sid", "_target_tid")

    def __init__(self, spatial: int = MAX_LAYER, temporal: int = MAX_LAYER) -> None:
        self._target_sid = spatial
        self._target_tid = temporal
        self._current_sid = spatial
        self._current_tid = temporal
        self._stream = -1

    @property
    def current(self) -> tuple[int, int] | None:
        return None if self._stream < 0 else (self._current_sid, self._current_tid)

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        self._target_sid = spatial
        self._target_tid = temporal

    def reset(self) -> None:
        self._stream = -1

    def adopt(self, source_stream_id: int) -> None:
        """The m-line already forwards every layer of ``source_stream_id``: go on from
        there without waiting for a key frame (layers go down at the next picture; up to
        spatial layers beyond the target only at a key frame, as always)."""
        self._stream = source_stream_id
        self._current_sid = self._current_tid = MAX_LAYER

    def keyframe_stream(self, source_stream_id: int) -> int:
        return source_stream_id

    def select(self, view: PacketView, source_stream_id: int) -> int:
        extra = 0
        if source_stream_id != self._stream:
            if not view.keyframe:
                return DROP | KEYFRAME_NEEDED
            self._stream = source_stream_id
            self._current_sid = self._target_sid
            self._current_tid = self._target_tid
            extra = SWITCH
        sid = view.spatial_id
        tid = view.temporal_id
        if view.start_of_frame and sid == 0:
            # A new picture: the place where layers may change.
            if view.keyframe:
                self._current_sid = self._target_sid
                self._current_tid = self._target_tid
            else:
                if self._target_sid < self._current_sid:
                    self._current_sid = self._target_sid
                if self._target_tid < self._current_tid:
                    self._current_tid = self._target_tid
                elif self._current_tid < tid <= self._target_tid and view.switch_point:
                    self._current_tid = tid
        if self._target_sid > self._current_sid:
            extra |= KEYFRAME_NEEDED
        if sid > self._current_sid or tid > self._current_tid:
            return FILTERED | extra
        if view.end_of_frame and sid == self._current_sid:
            return FORWARD | SET_MARKER | extra
        return FORWARD | extra


class Av1DdSelector(Vp9SvcSelector):
    """Filters AV1 layers named by the dependency descriptor (best effort).

    Same rules as :class:`Vp9SvcSelector`, with layers taken from the descriptor's
    template structure. The descriptor has no ``U`` bit, so temporal layers go up only
    at key frames (the view marks key frames as the only switching points); decode
    target indications and chains are not consulted yet.
    """

    __slots__ = ()

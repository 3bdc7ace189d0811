"""Temporal and spatial layer dropping on one subscriber m-line (the server's SFU path).

An m-line whose layer target was set (:meth:`mediaserver.video.VideoRouter.set_layer_target`,
called by the bandwidth allocator or by tests) forwards only the layers up to that target:

* VP8 with temporal layers (RFC 7741 TID/Y): a :class:`~mediaserver.sfu.layers.TemporalFilter`;
  the forwarded layer goes down at the next frame and up only at a switching point (Y=1).
* VP9 SVC (RFC 9628) and AV1 (dependency descriptor): a
  :class:`~mediaserver.sfu.layers.Vp9SvcSelector` / :class:`~mediaserver.sfu.layers.Av1DdSelector`;
  spatial layers go up at a key frame only, and the marker bit moves to the last packet of
  the highest spatial layer forwarded. Engaging one waits for a key frame (one is requested).
* H.264 has no layers here; simulcast layers are chosen by the stream the m-line forwards
  (:meth:`~mediaserver.video.VideoRouter.select`), not by this module.

Sequence numbers stay contiguous across dropped packets: a
:class:`~mediaserver.sfu.munger.SeqMunger` takes over the m-line's numbering from where it
was, closes the gap of every packet left out, and re-syncs when the m-line changes source.
The packet's layer facts are read once per incoming packet (a
:class:`~mediaserver.sfu.view.PacketView`) and shared by every m-line that drops layers.
"""

from __future__ import annotations

from typing import Final

from mediaserver.sfu.layers import (
    FILTERED,
    FORWARD,
    KEYFRAME_NEEDED,
    MAX_LAYER,
    SET_MARKER,
    SWITCH,
    Av1DdSelector,
    LayerSelector,
    TemporalFilter,
    Vp9SvcSelector,
)
from mediaserver.sfu.munger import SeqMunger
from mediaserver.sfu.view import PacketView

__all__ = ["LayerControl", "TemporalOnlySelector"]

_CLOCK_RATE: Final = 90000


class TemporalOnlySelector:
    """The temporal layers of one VP8 stream, without waiting for a key frame to start.

    The m-line is already forwarding the stream when layers get dropped, so unlike
    :class:`~mediaserver.sfu.layers.Vp8TemporalSelector` it starts at once: the first
    layer change happens at the next frame start.
    """

    __slots__ = ("_filter",)

    def __init__(self) -> None:
        self._filter = TemporalFilter(MAX_LAYER)

    def select(self, view: PacketView, source_stream_id: int) -> int:
        return self._filter.filter(view)

    def set_target(self, spatial: int, temporal: int = MAX_LAYER) -> None:
        self._filter.target = temporal

    def reset(self) -> None:
        pass

    @property
    def current(self) -> tuple[int, int] | None:
        return 0, self._filter.current

    def keyframe_stream(self, source_stream_id: int) -> int:
        return source_stream_id


class LayerControl:
    """Layer selection and gapless renumbering of one m-line (sans-I/O).

    Args:
        payload_format: ``vp8``, ``vp9`` or ``av1``.
        next_sequence_number: the m-line's next sequence number.
        next_timestamp: the timestamp for the m-line's next frame.
    """

    __slots__ = ("_source", "keyframe_wanted", "munger", "selector")

    def __init__(self, payload_format: str, next_sequence_number: int, next_timestamp: int) -> None:
        selector: LayerSelector
        if payload_format == "vp9":
            selector = Vp9SvcSelector()
        elif payload_format == "av1":
            selector = Av1DdSelector()
        else:
            selector = TemporalOnlySelector()
        self.selector = selector
        self.munger = SeqMunger(
            _CLOCK_RATE,
            initial_sequence_number=next_sequence_number & 0xFFFF,
            initial_timestamp=next_timestamp & 0xFFFFFFFF,
        )
        self._source = -1
        self.keyframe_wanted = False
        """Set when the last packet showed that a key frame is needed (send a PLI)."""

    def set_target(self, spatial: int, temporal: int) -> None:
        """Aim at layer ``(spatial, temporal)``; it takes effect where the decoder can follow."""
        self.selector.set_target(spatial, temporal)

    def adopt(self, stream_id: int, ssrc: int) -> None:
        """The m-line forwarded every layer of ``stream_id`` (SSRC ``ssrc``) until now and
        this control continues its numbering: no key frame is needed to drop layers."""
        selector = self.selector
        if isinstance(selector, Vp9SvcSelector):
            selector.adopt(stream_id)
        self._source = ssrc

    def decide(self, view: PacketView, stream_id: int, now: float) -> tuple[int, int, bool] | None:
        """``(sequence number, timestamp, marker)`` to send ``view`` with, or None to drop.

        A packet of a source other than the previous one (a switch) re-syncs the numbering.
        """
        verdict = self.selector.select(view, stream_id)
        self.keyframe_wanted = bool(verdict & KEYFRAME_NEEDED)
        munger = self.munger
        if not verdict & FORWARD:
            if verdict & FILTERED:
                munger.drop(view.sequence_number)
            return None
        if verdict & SWITCH or view.ssrc != self._source:
            self._source = view.ssrc
            munger.switch()
        mapped = munger.input(view.sequence_number, view.timestamp, now)
        if mapped is None:
            return None
        return mapped[0], mapped[1], view.marker or bool(verdict & SET_MARKER)

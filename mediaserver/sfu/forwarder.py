"""The per-packet forwarding decision for one subscriber's outgoing m-line.

Rules of this file:

* Decide, don't act (style guide, convention 7): :meth:`Forwarder.decide` returns a
  :class:`ForwardDecision`; :func:`apply` / :func:`render` produce the bytes, and the
  egress sends them. Nothing here touches a socket, SRTP or the clock.
* The per-packet path allocates at most one small tuple: a decision is a
  :class:`typing.NamedTuple` built with ``tuple.__new__`` (measured 0.24 µs, against
  0.43 µs for the generated constructor and about 1 µs for a frozen dataclass), and
  drops return a shared constant.
* Key frame requests (PLI, RFC 4585 §6.3.1, or FIR, RFC 5104 §4.3.1) are throttled per
  *publisher stream*, not per subscriber: :class:`KeyframeRequestThrottle` lets at most
  one through per interval, whatever the number of subscribers waiting.
"""

from __future__ import annotations

import random
import struct
from typing import NamedTuple

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.layers import (
    FILTERED,
    FORWARD,
    KEYFRAME_NEEDED,
    SET_MARKER,
    SWITCH,
    LayerSelector,
)
from mediaserver.sfu.munger import SeqMunger
from mediaserver.sfu.view import PacketView

__all__ = [
    "DROP_DECISION",
    "ForwardDecision",
    "Forwarder",
    "KeyframeRequestThrottle",
    "apply",
    "render",
]


class ForwardDecision(NamedTuple):
    """What to do with one packet for one subscriber (immutable).

    Attributes:
        forward: send the packet; the other fields say how to rewrite it.
        sequence_number: the outgoing sequence number.
        timestamp: the outgoing timestamp.
        ssrc: the outgoing SSRC (the m-line's).
        payload_type: the outgoing payload type.
        marker: the outgoing marker bit.
        keyframe_needed: ask the publisher of ``keyframe_stream_id`` for a key frame
            (through :class:`KeyframeRequestThrottle`).
        keyframe_stream_id: the stream that needs a key frame, or -1.
        switched: this packet is the first of a new source.
    """

    forward: bool
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    payload_type: int = 0
    marker: bool = False
    keyframe_needed: bool = False
    keyframe_stream_id: int = -1
    switched: bool = False


DROP_DECISION = ForwardDecision(False)
"""The decision for a packet that is simply not forwarded."""

_new_decision = tuple.__new__
_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack
_B1_SEQ_TS_SSRC = struct.Struct("!BHII")
_pack_b1_into = _B1_SEQ_TS_SSRC.pack_into


def apply(decision: ForwardDecision, buf: bytearray) -> None:
    """Rewrite the RTP header of ``buf`` in place as ``decision`` says (one ``pack_into``).

    ``decision.forward`` must be True.
    """
    _, seq, ts, ssrc, pt, marker, _, _, _ = decision
    _pack_b1_into(buf, 1, (0x80 | pt) if marker else pt, seq, ts, ssrc)


def render(decision: ForwardDecision, data: bytes) -> bytes:
    """Return a rewritten copy of ``data`` as ``bytes`` (what SRTP protect takes).

    Cheaper than ``bytearray`` + :func:`apply` + ``bytes`` (0.33 against 0.59 µs for
    1200 bytes, measured on the benchmark VM) because it copies the payload once.
    """
    _, seq, ts, ssrc, pt, marker, _, _, _ = decision
    return _pack_header(data[0], (0x80 | pt) if marker else pt, seq, ts, ssrc) + data[12:]


class KeyframeRequestThrottle:
    """Lets at most one key frame request per publisher stream through per interval.

    Args:
        interval: minimum seconds between two requests for the same stream.
    """

    __slots__ = ("_interval", "_last")

    def __init__(self, interval: float = 0.5) -> None:
        if interval < 0:
            raise InvalidArgument(f"interval must not be negative, not {interval}")
        self._interval = interval
        self._last: dict[int, float] = {}

    def request(self, stream_id: int, now: float) -> bool:
        """Return True if a PLI/FIR for ``stream_id`` should be sent now (and note it)."""
        last = self._last.get(stream_id)
        if last is not None and now - last < self._interval:
            return False
        self._last[stream_id] = now
        return True

    def forget(self, stream_id: int) -> None:
        """Drop the state of a stream that ended."""
        self._last.pop(stream_id, None)


class Forwarder:
    """Decides the fate of every packet offered to one subscriber's m-line (sans-I/O).

    Args:
        selector: the layer selector (simulcast, temporal, SVC or null).
        ssrc: the m-line's SSRC, written into every forwarded packet.
        clock_rate: the RTP clock rate (90000 for video, 48000 for Opus).
        payload_type: the m-line's payload type, or None to keep the publisher's.
        initial_sequence_number: first sequence number sent; random when None
            (RFC 3550 §5.1: "The initial value of the sequence number SHOULD be random").
        initial_timestamp: first timestamp sent; random when None (same section).
    """

    __slots__ = ("_munger", "_paused", "_pt", "_select", "_selector", "_ssrc")

    def __init__(
        self,
        selector: LayerSelector,
        *,
        ssrc: int,
        clock_rate: int = 90000,
        payload_type: int | None = None,
        initial_sequence_number: int | None = None,
        initial_timestamp: int | None = None,
    ) -> None:
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise InvalidArgument(f"SSRC {ssrc} is not 32-bit")
        self._selector = selector
        self._select = selector.select
        self._ssrc = ssrc
        self._pt = -1 if payload_type is None else payload_type
        self._paused = False
        seq = random.getrandbits(16) if initial_sequence_number is None else initial_sequence_number
        ts = random.getrandbits(32) if initial_timestamp is None else initial_timestamp
        self._munger = SeqMunger(clock_rate, initial_sequence_number=seq, initial_timestamp=ts)

    @property
    def selector(self) -> LayerSelector:
        """The layer selector (set targets on it)."""
        return self._selector

    @property
    def munger(self) -> SeqMunger:
        """The sequence/timestamp munger of the outgoing stream."""
        return self._munger

    @property
    def ssrc(self) -> int:
        """The outgoing SSRC."""
        return self._ssrc

    @property
    def paused(self) -> bool:
        """True while forwarding is paused (PAUSE, spec §4.6)."""
        return self._paused

    def pause(self) -> None:
        """Stop forwarding (the subscriber paused the tile); the m-line stays."""
        self._paused = True

    def resume(self) -> None:
        """Resume forwarding from the next key frame (spec §4.6: "PLI on resume").

        The next decisions carry ``keyframe_needed`` until a key frame arrives.
        """
        if self._paused:
            self._paused = False
            self._selector.reset()

    def decide(self, view: PacketView, source_stream_id: int, now: float) -> ForwardDecision:
        """Decide what to do with one packet of ``source_stream_id`` for this subscriber.

        Args:
            view: the packet, read once by the publisher stream's parser.
            source_stream_id: the publisher stream the packet belongs to.
            now: monotonic seconds, for timestamp continuity across switches.
        """
        if self._paused:
            return DROP_DECISION
        verdict = self._select(view, source_stream_id)
        if verdict & FORWARD:
            munger = self._munger
            if verdict & SWITCH:
                munger.switch()
            mapped = munger.input(view.sequence_number, view.timestamp, now)
            if mapped is None:
                return DROP_DECISION
            pt = self._pt
            if verdict & KEYFRAME_NEEDED:
                want = self._selector.keyframe_stream(source_stream_id)
            else:
                want = -1
            return _new_decision(
                ForwardDecision,
                (
                    True,
                    mapped[0],
                    mapped[1],
                    self._ssrc,
                    view.payload_type if pt < 0 else pt,
                    view.marker or verdict & SET_MARKER != 0,
                    want >= 0,
                    want,
                    verdict & SWITCH != 0,
                ),
            )
        if verdict & FILTERED:
            self._munger.drop(view.sequence_number)
        if verdict & KEYFRAME_NEEDED:
            want = self._selector.keyframe_stream(source_stream_id)
            return _new_decision(
                ForwardDecision, (False, 0, 0, self._ssrc, 0, False, True, want, False)
            )
        return DROP_DECISION

    apply = staticmethod(apply)
    render = staticmethod(render)

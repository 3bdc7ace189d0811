"""Transport-wide sequence numbers on egress and the subscriber's feedback about them.

Rules of this file:

* One :class:`TransportSequencer` per subscriber *connection* (transport-cc numbers all
  RTP packets of a transport, draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
  :meth:`TransportSequencer.next` hands out the next number and remembers the send time
  and size in a ring (three list writes; no object per packet). A packet that waits in
  the subscriber's pacer gets its send time corrected when it leaves
  (:meth:`TransportSequencer.sent_at`): the delay-based estimator must not read pacing
  delay as network delay.
* :meth:`TransportSequencer.receive_feedback` turns a subscriber's
  :class:`~mediaserver.rtp.rtcp.RtcpTransportCc` into :class:`PacketResult` values
  (send time, arrival time or None when lost, size) for the bandwidth estimator.
  Arrival times are on the *receiver's* clock: only their differences mean anything
  (§3.1: reference time in multiples of 64 ms, deltas in multiples of 250 µs).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import peek_extension_offset
from mediaserver.rtp.rtcp import RtcpTransportCc
from mediaserver.rtp.seqnum import Unwrapper

__all__ = ["PacketResult", "TransportSequencer", "stamp"]

_pack_u16_into = struct.Struct("!H").pack_into


class PacketResult(NamedTuple):
    """The fate of one sent packet, from transport-cc feedback.

    Attributes:
        sequence_number: the transport-wide sequence number.
        send_time: our monotonic send time, seconds.
        arrival_time: the receiver's arrival time in seconds (its own clock), or None
            when the packet is reported lost.
        size: the packet size in bytes.
    """

    sequence_number: int
    send_time: float
    arrival_time: float | None
    size: int


def stamp(packet: bytes, ext_id: int, sequence_number: int) -> bytes:
    """Return ``packet`` with its transport-wide sequence number element rewritten.

    Returns ``packet`` unchanged when it has no element ``ext_id``.

    Raises:
        MalformedPacket: the extension block is truncated.
    """
    found = peek_extension_offset(packet, ext_id)
    if found is None or found[1] < 2:
        return packet
    buf = bytearray(packet)
    _pack_u16_into(buf, found[0], sequence_number & 0xFFFF)
    return bytes(buf)


class TransportSequencer:
    """Numbers egress packets and matches transport-cc feedback to them (sans-I/O).

    Args:
        capacity: send records kept, a power of two.
        initial_sequence_number: the first number handed out.

    Raises:
        InvalidArgument: ``capacity`` is not a power of two.
    """

    __slots__ = ("_ext", "_mask", "_next", "_sent", "_sizes", "_times", "_unwrapper")

    def __init__(self, capacity: int = 4096, *, initial_sequence_number: int = 0) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise InvalidArgument(f"capacity must be a power of two, not {capacity}")
        self._mask = capacity - 1
        # Extended numbers, so that feedback can be matched across the 16-bit wrap.
        self._next = initial_sequence_number & 0xFFFF
        self._ext = [-1] * capacity
        self._times = [0.0] * capacity
        self._sizes = [0] * capacity
        self._unwrapper = Unwrapper(16)
        self._unwrapper.unwrap(self._next)
        self._sent = 0

    @property
    def sent(self) -> int:
        """Numbers handed out so far."""
        return self._sent

    def next(self, now: float, size: int) -> int:
        """Return the transport-wide sequence number of a packet sent at ``now``."""
        ext = self._next
        self._next = ext + 1
        i = ext & self._mask
        self._ext[i] = ext
        self._times[i] = now
        self._sizes[i] = size
        self._sent += 1
        return ext & 0xFFFF

    def sent_at(self, sequence_number: int, now: float) -> None:
        """Correct the send time of a number handed out earlier: the packet left later
        than it was numbered (it waited in the subscriber's pacer). A number no longer
        remembered is ignored."""
        last = self._next - 1
        ext = last - ((last - sequence_number) & 0xFFFF)
        i = ext & self._mask
        if self._ext[i] == ext:
            self._times[i] = now

    def receive_feedback(self, feedback: RtcpTransportCc) -> list[PacketResult]:
        """Match ``feedback`` to the packets sent; unknown numbers are skipped."""
        results: list[PacketResult] = []
        arrival = feedback.reference_time * 0.064
        mask = self._mask
        unwrap = self._unwrapper.unwrap
        for seq, delta in feedback.packet_results():
            ext = unwrap(seq)
            i = ext & mask
            if self._ext[i] != ext:
                continue
            if delta is None:
                results.append(PacketResult(seq, self._times[i], None, self._sizes[i]))
                continue
            arrival += delta * 0.00025
            results.append(PacketResult(seq, self._times[i], arrival, self._sizes[i]))
        return results

"""Packets sent to a subscriber, kept to answer its NACKs (RFC 4585 §6.2.1, RFC 4588).

Rules of this file:

* One :class:`RetransmissionBuffer` per outgoing stream (subscriber m-line). It keeps a
  reference to the *incoming* datagram (shared by every subscriber of that publisher)
  and the 12-byte rewritten header, in a ring indexed by the outgoing sequence number:
  storing costs three list writes and no copy. Measured alternatives were worse: keeping
  each subscriber's rendered copy cost about 1 µs more per packet (16 x 1024 x 1.2 kB of
  live buffers thrash the caches), and keeping the decision tuples fed the cyclic GC
  hundreds of thousands of tracked objects (full collections of tens of ms: the p99).
  The packet is put together again only when a NACK asks for it.
* A NACK names outgoing sequence numbers (RFC 4585 §6.2.1: PID plus a bitmask of the
  16 following). Each one still in the ring, not older than ``max_age`` and not resent
  within ``min_interval`` is answered:

  - with RTX negotiated (RFC 4588 §4): a packet on the RTX SSRC and payload type, with
    its own sequence number, whose payload starts with the 2-byte original sequence
    number (OSN) followed by the original payload;
  - without RTX: the packet again, rendered as it was sent: the payload is byte for
    byte the same, which is what ``SrtpContext``'s ``allow_repeat_tx`` contract needs
    (SRTP encrypts only the payload; a restamped transport-wide sequence number in the
    header is authenticated but not encrypted, so no key stream is reused on new data).

* Answers are plaintext; the caller protects and sends them, and may restamp the
  transport-wide sequence number (:func:`mediaserver.sfu.twcc.stamp`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.rtx import wrap as wrap_rtx

__all__ = ["RetransmissionBuffer", "RetransmissionStats", "RtxParameters"]


@dataclass(frozen=True, slots=True)
class RtxParameters:
    """The RTX stream of an outgoing stream (RFC 4588, negotiated with ``apt=``).

    Attributes:
        ssrc: the RTX SSRC (``a=ssrc-group:FID`` second SSRC).
        payload_type: the RTX payload type.
        initial_sequence_number: first RTX sequence number (RFC 4588 §4: an RTX stream
            has its own sequence number space).
    """

    ssrc: int
    payload_type: int
    initial_sequence_number: int = 0


@dataclass(slots=True)
class RetransmissionStats:
    """Counters of one buffer."""

    requested: int = 0
    """Sequence numbers NACKed."""
    resent: int = 0
    """Packets answered."""
    missing: int = 0
    """NACKed packets no longer (or never) in the buffer, or too old."""
    throttled: int = 0
    """NACKed packets resent too recently to resend again."""


class RetransmissionBuffer:
    """A ring of sent packets answering NACKs, with optional RTX (sans-I/O).

    Args:
        capacity: packets kept, a power of two (512 is 2-5 s of one video stream).
        max_age: seconds after which a packet is not resent any more.
        min_interval: seconds before the same packet may be resent again (about an RTT).
        rtx: the RTX stream, or None to resend originals.

    Raises:
        InvalidArgument: ``capacity`` is not a power of two.
    """

    __slots__ = (
        "_headers",
        "_mask",
        "_max_age",
        "_min_interval",
        "_packets",
        "_resent",
        "_rtx",
        "_rtx_seq",
        "_times",
        "stats",
    )

    def __init__(
        self,
        capacity: int = 512,
        *,
        max_age: float = 1.0,
        min_interval: float = 0.05,
        rtx: RtxParameters | None = None,
    ) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise InvalidArgument(f"capacity must be a power of two, not {capacity}")
        self._mask = capacity - 1
        self._headers: list[bytes] = [b""] * capacity
        self._packets: list[bytes] = [b""] * capacity
        self._times = [0.0] * capacity
        # Outgoing seq -> time of its last resend; stale once the slot was reused.
        self._resent: dict[int, float] = {}
        self._max_age = max_age
        self._min_interval = min_interval
        self._rtx = rtx
        self._rtx_seq = rtx.initial_sequence_number & 0xFFFF if rtx is not None else 0
        self.stats = RetransmissionStats()

    @property
    def rtx(self) -> RtxParameters | None:
        """The RTX stream, if any."""
        return self._rtx

    def store(self, header: bytes, data: bytes, now: float) -> None:
        """Remember that ``header + data[12:]`` was sent at ``now``.

        Args:
            header: the 12-byte rewritten RTP header (it holds the outgoing sequence
                number, which indexes the ring).
            data: the incoming datagram (shared by every subscriber, not copied).
            now: the send time.
        """
        i = ((header[2] << 8) | header[3]) & self._mask
        self._headers[i] = header
        self._packets[i] = data
        self._times[i] = now

    def get(self, sequence_number: int) -> bytes | None:
        """Return the packet as it was sent with ``sequence_number``, or None."""
        i = sequence_number & self._mask
        header = self._headers[i]
        if len(header) < 12 or ((header[2] << 8) | header[3]) != sequence_number:
            return None
        return header + self._packets[i][12:]

    def receive_nack(self, lost: Iterable[int], now: float) -> list[bytes]:
        """Answer a NACK (``RtcpNack.lost``): return the packets to resend, in order.

        After calling this, protect and send the returned packets.
        """
        answers: list[bytes] = []
        stats = self.stats
        mask = self._mask
        resent = self._resent
        for seq in lost:
            stats.requested += 1
            packet = self.get(seq)
            sent_at = self._times[seq & mask]
            if packet is None or now - sent_at > self._max_age:
                stats.missing += 1
                continue
            last = resent.get(seq)
            if last is not None and last >= sent_at and now - last < self._min_interval:
                stats.throttled += 1
                continue
            resent[seq] = now
            stats.resent += 1
            answers.append(self._wrap(packet, seq) if self._rtx is not None else packet)
        if len(resent) > 4 * (mask + 1):
            horizon = now - self._max_age
            for key in [k for k, t in resent.items() if t < horizon]:
                del resent[key]
        return answers

    def _wrap(self, packet: bytes, seq: int) -> bytes:
        rtx = self._rtx
        assert rtx is not None
        rtx_seq = self._rtx_seq
        self._rtx_seq = (rtx_seq + 1) & 0xFFFF
        return wrap_rtx(packet, rtx.payload_type, rtx.ssrc, rtx_seq)

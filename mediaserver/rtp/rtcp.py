"""RTCP packets and compound RTCP (RFC 3550 section 6, RFC 4585, RFC 5104).

One frozen, slotted dataclass per packet type, each with ``serialize()``; a compound
datagram is parsed with :func:`parse_compound` and built with :func:`serialize_compound`.
Every class also has ``parse(data)`` for a datagram holding exactly that one packet.

Packet types:

* :class:`RtcpSenderReport` (SR, 200) and :class:`RtcpReceiverReport` (RR, 201) with
  :class:`ReportBlock` (RFC 3550 sections 6.4.1 and 6.4.2);
* :class:`RtcpSourceDescription` (SDES, 202) with :class:`SdesChunk` (section 6.5);
* :class:`RtcpBye` (BYE, 203, section 6.6);
* :class:`RtcpNack`: RTPFB FMT 1, generic NACK (RFC 4585 section 6.2.1);
* :class:`RtcpTransportCc`: RTPFB FMT 15, transport-wide congestion control feedback
  (draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1);
* :class:`RtcpPli`: PSFB FMT 1, picture loss indication (RFC 4585 section 6.3.1);
* :class:`RtcpFir`: PSFB FMT 4, full intra request (RFC 5104 section 4.3.1);
* :class:`RtcpRemb`: PSFB FMT 15 with the ``REMB`` identifier
  (draft-alvestrand-rmcat-remb-03 section 2.2);
* :class:`RtcpUnknown`: anything else (APP, XR, other feedback), kept as raw bytes.

Padding (the P bit, RFC 3550 section 6.4.1) is removed while parsing the packet types
above. Only :class:`RtcpTransportCc` writes padding back, because libwebrtc pads its
feedback that way; other decoded packets are always a multiple of 4 bytes.
:class:`RtcpUnknown` keeps its padding as received.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from mediaserver.errors import LocalProtocolError, MalformedPacket
from mediaserver.rtp.seqnum import uint16_add, uint16_diff

__all__ = [
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_RTPFB",
    "RTCP_SDES",
    "RTCP_SR",
    "RTCP_XR",
    "TWCC_NOT_RECEIVED",
    "TWCC_RECEIVED_LARGE_DELTA",
    "TWCC_RECEIVED_SMALL_DELTA",
    "ReportBlock",
    "RtcpBye",
    "RtcpFir",
    "RtcpNack",
    "RtcpPacket",
    "RtcpPli",
    "RtcpReceiverReport",
    "RtcpRemb",
    "RtcpSenderReport",
    "RtcpSourceDescription",
    "RtcpTransportCc",
    "RtcpUnknown",
    "SdesChunk",
    "parse_compound",
    "serialize_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206
RTCP_XR = 207

_FMT_NACK = 1
_FMT_TWCC = 15
_FMT_PLI = 1
_FMT_FIR = 4
_FMT_AFB = 15

TWCC_NOT_RECEIVED = 0
"""Packet status symbol "packet not received" (draft-holmer-...-01 section 3.1.1)."""
TWCC_RECEIVED_SMALL_DELTA = 1
"""Packet status symbol "packet received, small delta" (one-byte delta, 0-63.75 ms)."""
TWCC_RECEIVED_LARGE_DELTA = 2
"""Packet status symbol "packet received, large or negative delta" (two-byte delta)."""

_COMMON = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SR_INFO = struct.Struct("!IQIII")
_TWO_SSRC = struct.Struct("!II")
_TWCC_FIXED = struct.Struct("!IIHHI")

_T = TypeVar("_T", bound="_RtcpBase")


def _header(count: int, packet_type: int, body: bytes, padding: bool = False) -> bytes:
    if len(body) % 4:
        raise LocalProtocolError(f"RTCP body is {len(body)} bytes, not a multiple of 4")
    if not 0 <= count <= 31:
        raise LocalProtocolError(f"RTCP count {count} does not fit in 5 bits")
    words = len(body) // 4
    if words > 0xFFFF:
        raise LocalProtocolError(f"RTCP packet is too long: {len(body)} bytes")
    return _COMMON.pack(0x80 | (0x20 if padding else 0) | count, packet_type, words)


class _RtcpBase:
    """Shared ``parse()`` for the packet classes."""

    __slots__ = ()

    @classmethod
    def parse(cls: type[_T], data: bytes) -> _T:
        """Parse a datagram holding exactly one packet of this type.

        Raises:
            MalformedPacket: the datagram does not parse, holds several packets, or
                holds a packet of another type.
        """
        packets = parse_compound(data)
        if len(packets) != 1:
            raise MalformedPacket(f"expected one RTCP packet, found {len(packets)}")
        packet = packets[0]
        if not isinstance(packet, cls):
            raise MalformedPacket(f"expected an RTCP {cls.__name__}, found {type(packet).__name__}")
        return packet


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 section 6.4.1).

    Attributes:
        ssrc: the source this block reports on.
        fraction_lost: 8-bit fixed-point fraction lost since the previous report.
        packets_lost: cumulative number of packets lost, a signed 24-bit value.
        highest_sequence: extended highest sequence number received.
        jitter: interarrival jitter in timestamp units.
        lsr: middle 32 bits of the NTP timestamp of the last SR received.
        dlsr: delay since that SR, in units of 1/65536 seconds.
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    @classmethod
    def _unpack(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        """Return the 24 bytes of the block."""
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise LocalProtocolError(f"packets_lost {self.packets_lost} is not a signed 24-bit")
        if not 0 <= self.fraction_lost <= 0xFF:
            raise LocalProtocolError(f"fraction_lost {self.fraction_lost} is not 8-bit")
        try:
            return _REPORT_BLOCK.pack(
                self.ssrc,
                (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
                self.highest_sequence,
                self.jitter,
                self.lsr,
                self.dlsr,
            )
        except struct.error as exc:
            raise LocalProtocolError(f"report block field out of range: {exc}") from None


def _parse_reports(body: bytes, offset: int, count: int, name: str) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > len(body):
        raise MalformedPacket(f"RTCP {name} is too short for its {count} report blocks")
    return tuple(ReportBlock._unpack(body, offset + 24 * i) for i in range(count))


def _extension(body: bytes, offset: int, name: str) -> bytes:
    extension = body[offset:]
    if len(extension) % 4:
        raise MalformedPacket(
            f"RTCP {name} profile extension is {len(extension)} bytes, not a multiple of 4"
        )
    return extension


@dataclass(frozen=True, slots=True)
class RtcpSenderReport(_RtcpBase):
    """Sender report (RFC 3550 section 6.4.1).

    Attributes:
        ssrc: the sender.
        ntp_timestamp: 64-bit NTP wall clock time of this report.
        rtp_timestamp: the same instant in RTP timestamp units.
        packet_count: packets sent.
        octet_count: payload octets sent.
        reports: reception report blocks, at most 31.
        extension: profile-specific extension bytes after the blocks.
    """

    packet_type: ClassVar[int] = RTCP_SR

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> RtcpSenderReport:
        if len(body) < 24:
            raise MalformedPacket(f"RTCP SR body is {len(body)} bytes, shorter than 24")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        reports = _parse_reports(body, 24, count, "SR")
        extension = _extension(body, 24 + 24 * count, "SR")
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, extension)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        try:
            info = _SR_INFO.pack(
                self.ssrc,
                self.ntp_timestamp,
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            )
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP SR field out of range: {exc}") from None
        body = info + b"".join(r.serialize() for r in self.reports) + self.extension
        return _header(len(self.reports), RTCP_SR, body) + body


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport(_RtcpBase):
    """Receiver report (RFC 3550 section 6.4.2).

    Attributes:
        ssrc: the reporter.
        reports: reception report blocks, at most 31.
        extension: profile-specific extension bytes after the blocks.
    """

    packet_type: ClassVar[int] = RTCP_RR

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> RtcpReceiverReport:
        if len(body) < 4:
            raise MalformedPacket(f"RTCP RR body is {len(body)} bytes, shorter than 4")
        reports = _parse_reports(body, 4, count, "RR")
        extension = _extension(body, 4 + 24 * count, "RR")
        return cls(int.from_bytes(body[:4], "big"), reports, extension)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise LocalProtocolError(f"RTCP RR ssrc {self.ssrc} is not 32-bit")
        body = (
            self.ssrc.to_bytes(4, "big")
            + b"".join(r.serialize() for r in self.reports)
            + self.extension
        )
        return _header(len(self.reports), RTCP_RR, body) + body


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: a source and its items (RFC 3550 section 6.5).

    Attributes:
        ssrc: the source (SSRC or CSRC).
        items: ``(type, value)`` pairs, type 1 being CNAME (RFC 3550 section 6.5.1).
    """

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    def serialize(self) -> bytes:
        """Return the chunk, terminated by one to four null octets."""
        parts = [self.ssrc.to_bytes(4, "big")]
        for item_type, value in self.items:
            if not 1 <= item_type <= 255 or len(value) > 255:
                raise LocalProtocolError(f"SDES item {item_type} of {len(value)} bytes is invalid")
            parts.append(bytes((item_type, len(value))))
            parts.append(value)
        data = b"".join(parts)
        # RFC 3550 section 6.5: the item list is "terminated by one or more null octets"
        # and the chunk ends on a 32-bit boundary.
        return data + bytes(4 - len(data) % 4)


@dataclass(frozen=True, slots=True)
class RtcpSourceDescription(_RtcpBase):
    """Source description (RFC 3550 section 6.5).

    Attributes:
        chunks: at most 31 chunks.
    """

    packet_type: ClassVar[int] = RTCP_SDES

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> RtcpSourceDescription:
        chunks = []
        offset = 0
        n = len(body)
        for _ in range(count):
            if offset + 4 > n:
                raise MalformedPacket("RTCP SDES is too short for its chunks")
            ssrc = int.from_bytes(body[offset : offset + 4], "big")
            offset += 4
            items = []
            while True:
                if offset >= n:
                    raise MalformedPacket("RTCP SDES chunk has no terminating null octet")
                item_type = body[offset]
                if item_type == 0:
                    # Skip the null octet and the padding to the next 32-bit boundary.
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > n or offset + 2 + body[offset + 1] > n:
                    raise MalformedPacket(f"RTCP SDES item {item_type} overruns the packet")
                end = offset + 2 + body[offset + 1]
                items.append((item_type, body[offset + 2 : end]))
                offset = end
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        body = b"".join(chunk.serialize() for chunk in self.chunks)
        return _header(len(self.chunks), RTCP_SDES, body) + body


@dataclass(frozen=True, slots=True)
class RtcpBye(_RtcpBase):
    """Goodbye (RFC 3550 section 6.6).

    Attributes:
        ssrcs: the sources leaving, at most 31.
        reason: the optional reason for leaving, or None.
    """

    packet_type: ClassVar[int] = RTCP_BYE

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> RtcpBye:
        if 4 * count > len(body):
            raise MalformedPacket(f"RTCP BYE is too short for its {count} SSRCs")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        offset = 4 * count
        reason = None
        if offset < len(body):
            length = body[offset]
            if offset + 1 + length > len(body):
                raise MalformedPacket("RTCP BYE reason overruns the packet")
            reason = body[offset + 1 : offset + 1 + length]
        return cls(ssrcs, reason)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        try:
            body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP BYE ssrc out of range: {exc}") from None
        if self.reason is not None:
            if len(self.reason) > 255:
                raise LocalProtocolError(f"RTCP BYE reason is {len(self.reason)} bytes, max 255")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.ssrcs), RTCP_BYE, body) + body


@dataclass(frozen=True, slots=True)
class RtcpNack(_RtcpBase):
    """Generic NACK (RFC 4585 section 6.2.1).

    Attributes:
        sender_ssrc: SSRC of the packet sender.
        media_ssrc: SSRC of the media source the lost packets belong to.
        items: FCI entries as ``(pid, blp)``: a lost sequence number and a bitmask of
            losses among the following 16.
    """

    packet_type: ClassVar[int] = RTCP_RTPFB
    fmt: ClassVar[int] = _FMT_NACK

    sender_ssrc: int
    media_ssrc: int
    items: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_lost(cls, sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> RtcpNack:
        """Build a NACK for ``lost`` sequence numbers, given oldest first.

        Each FCI covers a sequence number and the 16 after it (RFC 4585 section 6.2.1).
        """
        items: list[tuple[int, int]] = []
        pid = -1
        blp = 0
        for seq in lost:
            if pid >= 0:
                distance = uint16_diff(seq, pid)
                if 1 <= distance <= 16:
                    blp |= 1 << (distance - 1)
                    continue
                items.append((pid, blp))
            pid = seq & 0xFFFF
            blp = 0
        if pid >= 0:
            items.append((pid, blp))
        return cls(sender_ssrc, media_ssrc, tuple(items))

    @property
    def lost(self) -> list[int]:
        """The lost sequence numbers, in FCI order."""
        result = []
        for pid, blp in self.items:
            result.append(pid)
            for bit in range(16):
                if blp & (1 << bit):
                    result.append(uint16_add(pid, bit + 1))
        return result

    @classmethod
    def _from_fci(cls, sender: int, media: int, fci: bytes) -> RtcpNack:
        if len(fci) % 4:
            raise MalformedPacket(f"RTCP NACK FCI is {len(fci)} bytes, not a multiple of 4")
        values = struct.unpack(f"!{len(fci) // 2}H", fci)
        items = tuple(zip(values[0::2], values[1::2], strict=True))
        return cls(sender, media, items)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        try:
            body = _TWO_SSRC.pack(self.sender_ssrc, self.media_ssrc) + b"".join(
                struct.pack("!HH", pid, blp) for pid, blp in self.items
            )
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP NACK field out of range: {exc}") from None
        return _header(_FMT_NACK, RTCP_RTPFB, body) + body


def _decode_chunks(chunks: Sequence[int], count: int) -> list[int]:
    """Expand packet status chunks into ``count`` symbols (draft-holmer-...-01 3.1.3/3.1.4)."""
    symbols: list[int] = []
    for chunk in chunks:
        if len(symbols) >= count:
            break
        if not chunk & 0x8000:
            # Run length chunk: T=0, S (2 bits), run length (13 bits).
            symbols.extend([(chunk >> 13) & 0x3] * (chunk & 0x1FFF))
        elif not chunk & 0x4000:
            # Status vector chunk with S=0: fourteen 1-bit symbols.
            symbols.extend((chunk >> shift) & 0x1 for shift in range(13, -1, -1))
        else:
            # Status vector chunk with S=1: seven 2-bit symbols.
            symbols.extend((chunk >> shift) & 0x3 for shift in range(12, -1, -2))
    return symbols[:count]


def _encode_chunks(symbols: Sequence[int]) -> tuple[int, ...]:
    """Encode status symbols into chunks: long runs as run length, the rest as vectors."""
    chunks: list[int] = []
    i = 0
    n = len(symbols)
    while i < n:
        symbol = symbols[i]
        j = i + 1
        while j < n and symbols[j] == symbol and j - i < 0x1FFF:
            j += 1
        run = j - i
        if run >= 14 or j == n:
            chunks.append((symbol << 13) | run)
            i = j
        elif all(s <= 1 for s in symbols[i : i + 14]):
            chunk = 0x8000
            for k, s in enumerate(symbols[i : i + 14]):
                chunk |= s << (13 - k)
            chunks.append(chunk)
            i += 14
        elif run >= 7:
            chunks.append((symbol << 13) | run)
            i = j
        else:
            chunk = 0xC000
            for k, s in enumerate(symbols[i : i + 7]):
                chunk |= s << (12 - 2 * k)
            chunks.append(chunk)
            i += 7
    return tuple(chunks)


@dataclass(frozen=True, slots=True)
class RtcpTransportCc(_RtcpBase):
    """Transport-wide congestion control feedback (draft-holmer-...-01 section 3.1).

    Build one with :meth:`build`; read the per-packet results with
    :meth:`packet_results`.

    Attributes:
        sender_ssrc: SSRC of the packet sender.
        media_ssrc: SSRC of the media source (browsers put the first media SSRC here).
        base_sequence: transport-wide sequence number of the first packet reported.
        packet_status_count: number of packets reported.
        reference_time: 24-bit reference time in multiples of 64 ms.
        feedback_packet_count: 8-bit counter of feedback packets sent.
        chunks: the raw 16-bit packet status chunks, kept so that a parsed packet
            re-serializes byte for byte.
        deltas: receive deltas in multiples of 250 microseconds, one per received packet.
    """

    packet_type: ClassVar[int] = RTCP_RTPFB
    fmt: ClassVar[int] = _FMT_TWCC

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    packet_status_count: int
    reference_time: int
    feedback_packet_count: int
    chunks: tuple[int, ...] = ()
    deltas: tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        sender_ssrc: int,
        media_ssrc: int,
        base_sequence: int,
        reference_time: int,
        feedback_packet_count: int,
        deltas: Sequence[int | None],
    ) -> RtcpTransportCc:
        """Build feedback for packets ``base_sequence``, ``base_sequence + 1``, ...

        Args:
            deltas: for each packet, its receive delta in multiples of 250 microseconds
                from the previous received packet (the first one from the reference
                time), or None if it was not received.

        Raises:
            LocalProtocolError: a delta does not fit a signed 16-bit value.
        """
        symbols = []
        received = []
        for delta in deltas:
            if delta is None:
                symbols.append(TWCC_NOT_RECEIVED)
            elif 0 <= delta <= 0xFF:
                symbols.append(TWCC_RECEIVED_SMALL_DELTA)
                received.append(delta)
            elif -0x8000 <= delta <= 0x7FFF:
                symbols.append(TWCC_RECEIVED_LARGE_DELTA)
                received.append(delta)
            else:
                raise LocalProtocolError(f"transport-cc delta {delta} does not fit 16 bits")
        return cls.from_statuses(
            sender_ssrc, media_ssrc, base_sequence, reference_time, feedback_packet_count,
            symbols, received,
        )  # fmt: skip

    @classmethod
    def from_statuses(
        cls,
        sender_ssrc: int,
        media_ssrc: int,
        base_sequence: int,
        reference_time: int,
        feedback_packet_count: int,
        statuses: Sequence[int],
        deltas: Sequence[int],
    ) -> RtcpTransportCc:
        """Build feedback from one status symbol (``TWCC_*``) per packet and the deltas
        of the received ones, already classified (:meth:`serialize` checks that they
        agree)."""
        return cls(
            sender_ssrc,
            media_ssrc,
            base_sequence,
            len(statuses),
            reference_time,
            feedback_packet_count,
            _encode_chunks(statuses),
            tuple(deltas),
        )

    def statuses(self) -> list[int]:
        """Return one status symbol per reported packet (``TWCC_*``)."""
        return _decode_chunks(self.chunks, self.packet_status_count)

    def packet_results(self) -> list[tuple[int, int | None]]:
        """Return ``(sequence_number, delta)`` per reported packet, delta None if lost."""
        results: list[tuple[int, int | None]] = []
        deltas = iter(self.deltas)
        seq = self.base_sequence
        for symbol in self.statuses():
            results.append((seq, next(deltas) if symbol else None))
            seq = (seq + 1) & 0xFFFF
        return results

    @classmethod
    def _from_fci(cls, sender: int, media: int, fci: bytes) -> RtcpTransportCc:
        if len(fci) < 8:
            raise MalformedPacket(f"RTCP transport-cc FCI is {len(fci)} bytes, shorter than 8")
        base, count, ref_and_count = struct.unpack_from("!HHI", fci)
        offset = 8
        n = len(fci)
        chunks = []
        covered = 0
        while covered < count:
            if offset + 2 > n:
                raise MalformedPacket("RTCP transport-cc packet status chunks are truncated")
            chunk = (fci[offset] << 8) | fci[offset + 1]
            offset += 2
            chunks.append(chunk)
            if chunk & 0x8000:
                covered += 7 if chunk & 0x4000 else 14
            else:
                covered += chunk & 0x1FFF
        symbols = _decode_chunks(chunks, count)
        deltas = []
        for symbol in symbols:
            if symbol == TWCC_RECEIVED_SMALL_DELTA:
                if offset + 1 > n:
                    raise MalformedPacket("RTCP transport-cc receive deltas are truncated")
                deltas.append(fci[offset])
                offset += 1
            elif symbol == TWCC_RECEIVED_LARGE_DELTA:
                if offset + 2 > n:
                    raise MalformedPacket("RTCP transport-cc receive deltas are truncated")
                deltas.append(int.from_bytes(fci[offset : offset + 2], "big", signed=True))
                offset += 2
            elif symbol == 3:
                raise MalformedPacket("RTCP transport-cc uses the reserved status symbol 3")
        return cls(
            sender,
            media,
            base,
            count,
            ref_and_count >> 8,
            ref_and_count & 0xFF,
            tuple(chunks),
            tuple(deltas),
        )

    def serialize(self) -> bytes:
        """Return the packet's bytes, zero-padded with the P bit set if needed."""
        if not 0 <= self.feedback_packet_count <= 0xFF or not 0 <= self.reference_time <= 0xFFFFFF:
            raise LocalProtocolError("transport-cc reference time or feedback count out of range")
        symbols = self.statuses()
        if len(symbols) < self.packet_status_count:
            raise LocalProtocolError(
                f"transport-cc chunks cover {len(symbols)} packets, not {self.packet_status_count}"
            )
        small = symbols.count(TWCC_RECEIVED_SMALL_DELTA)
        large = symbols.count(TWCC_RECEIVED_LARGE_DELTA)
        if symbols.count(3):
            raise LocalProtocolError("transport-cc uses the reserved status symbol 3")
        received = small + large
        if received != len(self.deltas):
            raise LocalProtocolError(
                f"transport-cc has {len(self.deltas)} deltas for {received} received packets"
            )
        try:
            parts = [
                _TWCC_FIXED.pack(
                    self.sender_ssrc,
                    self.media_ssrc,
                    self.base_sequence,
                    self.packet_status_count,
                    (self.reference_time << 8) | self.feedback_packet_count,
                ),
                struct.pack(f"!{len(self.chunks)}H", *self.chunks),
            ]
            if not large:
                parts.append(bytes(self.deltas))  # all one-byte deltas: the usual case
            else:
                deltas = iter(self.deltas)
                for symbol in symbols:
                    if symbol == TWCC_RECEIVED_SMALL_DELTA:
                        parts.append(struct.pack("!B", next(deltas)))
                    elif symbol == TWCC_RECEIVED_LARGE_DELTA:
                        parts.append(struct.pack("!h", next(deltas)))
        except ValueError as exc:  # bytes() of a value out of 0..255
            raise LocalProtocolError(f"transport-cc delta out of range: {exc}") from None
        except struct.error as exc:
            raise LocalProtocolError(f"transport-cc field out of range: {exc}") from None
        body = b"".join(parts)
        pad = -len(body) % 4
        if pad:
            # Like libwebrtc: zero bytes, the last one counting them, and the P bit.
            body += bytes(pad - 1) + bytes((pad,))
        return _header(_FMT_TWCC, RTCP_RTPFB, body, padding=bool(pad)) + body


@dataclass(frozen=True, slots=True)
class RtcpPli(_RtcpBase):
    """Picture loss indication (RFC 4585 section 6.3.1); it has no FCI.

    Attributes:
        sender_ssrc: SSRC of the packet sender.
        media_ssrc: SSRC of the video stream that needs a keyframe.
    """

    packet_type: ClassVar[int] = RTCP_PSFB
    fmt: ClassVar[int] = _FMT_PLI

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def _from_fci(cls, sender: int, media: int, fci: bytes) -> RtcpPli:
        if fci:
            raise MalformedPacket(f"RTCP PLI has {len(fci)} bytes of FCI, expected none")
        return cls(sender, media)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        try:
            body = _TWO_SSRC.pack(self.sender_ssrc, self.media_ssrc)
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP PLI ssrc out of range: {exc}") from None
        return _header(_FMT_PLI, RTCP_PSFB, body) + body


@dataclass(frozen=True, slots=True)
class RtcpFir(_RtcpBase):
    """Full intra request (RFC 5104 section 4.3.1).

    Attributes:
        sender_ssrc: SSRC of the packet sender.
        media_ssrc: unused, "SHALL be set to 0" (RFC 5104 section 4.3.1.2).
        entries: ``(ssrc, sequence_number)`` per requested stream; the 8-bit command
            sequence number increments with each new request (section 4.3.1.1).
    """

    packet_type: ClassVar[int] = RTCP_PSFB
    fmt: ClassVar[int] = _FMT_FIR

    sender_ssrc: int
    media_ssrc: int = 0
    entries: tuple[tuple[int, int], ...] = ()

    @classmethod
    def _from_fci(cls, sender: int, media: int, fci: bytes) -> RtcpFir:
        if len(fci) % 8:
            raise MalformedPacket(f"RTCP FIR FCI is {len(fci)} bytes, not a multiple of 8")
        entries = tuple(
            (int.from_bytes(fci[i : i + 4], "big"), fci[i + 4]) for i in range(0, len(fci), 8)
        )
        return cls(sender, media, entries)

    def serialize(self) -> bytes:
        """Return the packet's bytes (the 24 reserved bits of each entry are zero)."""
        try:
            body = _TWO_SSRC.pack(self.sender_ssrc, self.media_ssrc) + b"".join(
                struct.pack("!IB3x", ssrc, seq) for ssrc, seq in self.entries
            )
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP FIR field out of range: {exc}") from None
        return _header(_FMT_FIR, RTCP_PSFB, body) + body


@dataclass(frozen=True, slots=True)
class RtcpRemb(_RtcpBase):
    """Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb-03 section 2.2).

    The bitrate is ``mantissa << exponent`` bits per second; both are kept so that a
    parsed packet re-serializes byte for byte. Use :meth:`from_bitrate` to build one.

    Attributes:
        sender_ssrc: SSRC of the packet sender.
        media_ssrc: "always 0" per the draft.
        exponent: 6-bit exponent.
        mantissa: 18-bit mantissa.
        ssrcs: the media streams the estimate applies to.
    """

    packet_type: ClassVar[int] = RTCP_PSFB
    fmt: ClassVar[int] = _FMT_AFB

    sender_ssrc: int
    media_ssrc: int = 0
    exponent: int = 0
    mantissa: int = 0
    ssrcs: tuple[int, ...] = ()

    @classmethod
    def from_bitrate(
        cls, sender_ssrc: int, bitrate: int, ssrcs: Sequence[int], media_ssrc: int = 0
    ) -> RtcpRemb:
        """Build a REMB with the smallest exponent that fits ``bitrate`` (rounded down)."""
        if bitrate < 0:
            raise LocalProtocolError(f"REMB bitrate {bitrate} is negative")
        exponent = 0
        while bitrate >> exponent > 0x3FFFF:
            exponent += 1
        if exponent > 63:
            raise LocalProtocolError(f"REMB bitrate {bitrate} is too large")
        return cls(sender_ssrc, media_ssrc, exponent, bitrate >> exponent, tuple(ssrcs))

    @property
    def bitrate(self) -> int:
        """The estimate in bits per second."""
        return self.mantissa << self.exponent

    @classmethod
    def _from_fci(cls, sender: int, media: int, fci: bytes) -> RtcpRemb:
        if len(fci) < 8:
            raise MalformedPacket(f"RTCP REMB FCI is {len(fci)} bytes, shorter than 8")
        count = fci[4]
        if len(fci) < 8 + 4 * count:
            raise MalformedPacket(f"RTCP REMB is too short for its {count} SSRCs")
        word = int.from_bytes(fci[5:8], "big")
        ssrcs = struct.unpack_from(f"!{count}I", fci, 8)
        return cls(sender, media, word >> 18, word & 0x3FFFF, ssrcs)

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        if not 0 <= self.exponent <= 63 or not 0 <= self.mantissa <= 0x3FFFF:
            raise LocalProtocolError(
                f"REMB exponent {self.exponent} or mantissa {self.mantissa} out of range"
            )
        if len(self.ssrcs) > 255:
            raise LocalProtocolError(f"REMB lists {len(self.ssrcs)} SSRCs, at most 255")
        try:
            body = (
                _TWO_SSRC.pack(self.sender_ssrc, self.media_ssrc)
                + b"REMB"
                + bytes((len(self.ssrcs),))
                + ((self.exponent << 18) | self.mantissa).to_bytes(3, "big")
                + struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
            )
        except struct.error as exc:
            raise LocalProtocolError(f"RTCP REMB ssrc out of range: {exc}") from None
        return _header(_FMT_AFB, RTCP_PSFB, body) + body


@dataclass(frozen=True, slots=True)
class RtcpUnknown(_RtcpBase):
    """An RTCP packet of a type this module does not decode (APP, XR, other feedback).

    Attributes:
        packet_type: the packet type byte.
        count: the 5-bit count (or FMT) field.
        body: everything after the 4-byte common header, padding included, so that the
            packet re-serializes byte for byte.
        padding: the P bit.
    """

    packet_type: int
    count: int
    body: bytes
    padding: bool = False

    def serialize(self) -> bytes:
        """Return the packet's bytes."""
        if not 0 <= self.packet_type <= 255:
            raise LocalProtocolError(f"RTCP packet type {self.packet_type} is not 8-bit")
        return _header(self.count, self.packet_type, self.body, self.padding) + self.body


RtcpPacket = (
    RtcpSenderReport
    | RtcpReceiverReport
    | RtcpSourceDescription
    | RtcpBye
    | RtcpNack
    | RtcpTransportCc
    | RtcpPli
    | RtcpFir
    | RtcpRemb
    | RtcpUnknown
)
"""Any packet :func:`parse_compound` returns."""


def _parse_feedback(packet_type: int, fmt: int, body: bytes) -> RtcpPacket | None:
    # RFC 4585 section 6.1: common packet format for feedback messages.
    if len(body) < 8:
        raise MalformedPacket(f"RTCP feedback body is {len(body)} bytes, shorter than 8")
    sender, media = _TWO_SSRC.unpack_from(body)
    fci = body[8:]
    if packet_type == RTCP_RTPFB:
        if fmt == _FMT_NACK:
            return RtcpNack._from_fci(sender, media, fci)
        if fmt == _FMT_TWCC:
            return RtcpTransportCc._from_fci(sender, media, fci)
    elif fmt == _FMT_PLI:
        return RtcpPli._from_fci(sender, media, fci)
    elif fmt == _FMT_FIR:
        return RtcpFir._from_fci(sender, media, fci)
    elif fmt == _FMT_AFB and fci[:4] == b"REMB":
        return RtcpRemb._from_fci(sender, media, fci)
    return None


def parse_compound(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram (RFC 3550 section 6.1) into its packets.

    Raises:
        MalformedPacket: a packet header is invalid or a packet does not parse. The
            whole datagram is rejected, as RFC 3550 appendix A.2 does.
    """
    if type(data) is not bytes:
        data = bytes(data)
    packets: list[RtcpPacket] = []
    offset = 0
    n = len(data)
    if n == 0:
        raise MalformedPacket("RTCP datagram is empty")
    while offset < n:
        if offset + 4 > n:
            raise MalformedPacket(f"RTCP packet header at offset {offset} is truncated")
        first, packet_type, words = _COMMON.unpack_from(data, offset)
        if first >> 6 != 2:
            raise MalformedPacket(f"RTCP version is {first >> 6}, expected 2")
        end = offset + 4 + 4 * words
        if end > n:
            raise MalformedPacket(
                f"RTCP packet at offset {offset} says {4 + 4 * words} bytes, "
                f"only {n - offset} remain"
            )
        body = raw_body = data[offset + 4 : end]
        padded = bool(first & 0x20)
        if padded:
            # RFC 3550 section 6.4.1: the last octet of the padding is its count.
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise MalformedPacket(f"RTCP padding count {pad} is invalid")
            body = body[:-pad]
        count = first & 0x1F
        packet: RtcpPacket | None = None
        if packet_type == RTCP_SR:
            packet = RtcpSenderReport._from_body(count, body)
        elif packet_type == RTCP_RR:
            packet = RtcpReceiverReport._from_body(count, body)
        elif packet_type == RTCP_SDES:
            packet = RtcpSourceDescription._from_body(count, body)
        elif packet_type == RTCP_BYE:
            packet = RtcpBye._from_body(count, body)
        elif packet_type in (RTCP_RTPFB, RTCP_PSFB):
            packet = _parse_feedback(packet_type, count, body)
        if packet is None:
            packet = RtcpUnknown(packet_type, count, raw_body, padded)
        packets.append(packet)
        offset = end
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into one compound datagram.

    Raises:
        LocalProtocolError: a packet has a field out of range.
    """
    return b"".join(packet.serialize() for packet in packets)

"""RTX retransmission packets (RFC 4588 §4): wrapping and unwrapping on bytes.

Rules of this file:

* An RTX packet carries one original packet on its own stream: the RTX payload type and
  SSRC, the RTX stream's own sequence number, the original timestamp and marker, and a
  payload made of the 2-byte original sequence number (OSN) followed by the original
  payload (RFC 4588 §4).
* :func:`wrap` builds one from a plain packet (answering a subscriber's NACK);
  :func:`unwrap` restores the original packet from one (a publisher answering our NACK),
  so that it can be forwarded as if it had arrived in time.
* An RTX packet whose payload is only the OSN (or padding) carries no media: senders use
  such packets as bandwidth probes (RFC 4588 §4 allows padding-only RTX); :func:`unwrap`
  returns None for them.
* Header extensions and CSRCs are kept as they are; padding of the RTX packet is its own
  and is removed (RFC 3550 §5.1, the P bit and the last octet's count).
* Parsing raises only :class:`~mediaserver.errors.MalformedPacket`.
"""

from __future__ import annotations

import struct

from mediaserver.errors import MalformedPacket
from mediaserver.rtp.packet import peek_payload_offset

__all__ = ["original_sequence_number", "unwrap", "wrap"]

_PT_SEQ_TS_SSRC = struct.Struct("!BHII")


def _payload_offset(packet: bytes) -> int:
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise MalformedPacket("not an RTP version 2 packet")
    return peek_payload_offset(packet)


def wrap(packet: bytes, payload_type: int, ssrc: int, sequence_number: int) -> bytes:
    """The RTX packet carrying ``packet`` (RFC 4588 §4).

    Args:
        packet: the original RTP packet, as it was sent.
        payload_type: the RTX payload type (``apt`` names the original's).
        ssrc: the RTX SSRC (``a=ssrc-group:FID`` second SSRC).
        sequence_number: the RTX stream's next sequence number.

    Raises:
        MalformedPacket: ``packet`` is not an RTP packet.
    """
    offset = _payload_offset(packet)
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[-1]
        if end < offset:
            raise MalformedPacket("RTP padding longer than the payload")
    header = bytearray(packet[:offset])
    header[0] &= 0xDF  # the RTX packet has no padding of its own
    timestamp = int.from_bytes(packet[4:8], "big")
    _PT_SEQ_TS_SSRC.pack_into(
        header, 1, (packet[1] & 0x80) | payload_type, sequence_number & 0xFFFF, timestamp, ssrc
    )
    header += packet[2:4]
    header += packet[offset:end]
    return bytes(header)


def original_sequence_number(packet: bytes) -> int:
    """The OSN of an RTX packet: the first two payload octets.

    Raises:
        MalformedPacket: not an RTP packet, or a payload shorter than 2 octets.
    """
    offset = _payload_offset(packet)
    if len(packet) < offset + 2:
        raise MalformedPacket("an RTX payload starts with a 2-byte original sequence number")
    return (packet[offset] << 8) | packet[offset + 1]


def unwrap(packet: bytes, payload_type: int, ssrc: int) -> bytes | None:
    """The original packet an RTX packet carries, or None for a padding-only probe.

    Args:
        packet: the RTX packet.
        payload_type: the original payload type (the RTX format's ``apt``).
        ssrc: the original stream's SSRC.

    Raises:
        MalformedPacket: not an RTP packet, or no room for the OSN.
    """
    offset = _payload_offset(packet)
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[-1]
    if end < offset + 2:
        if end == offset and packet[0] & 0x20:
            return None  # padding only: a probe
        raise MalformedPacket("an RTX payload starts with a 2-byte original sequence number")
    if end == offset + 2:
        return None
    header = bytearray(packet[:offset])
    header[0] &= 0xDF
    timestamp = int.from_bytes(packet[4:8], "big")
    osn = (packet[offset] << 8) | packet[offset + 1]
    _PT_SEQ_TS_SSRC.pack_into(header, 1, (packet[1] & 0x80) | payload_type, osn, timestamp, ssrc)
    header += packet[offset + 2 : end]
    return bytes(header)

"""STUN messages (RFC 5389, updated by RFC 8489) with the attributes ICE uses.

A :class:`StunMessage` keeps its attributes as raw :class:`StunAttribute` values in wire
order, so a parsed message re-serializes byte for byte (including non-zero padding, as in
the RFC 5769 sample request). Typed values are read with accessors
(:meth:`StunMessage.username`, :meth:`StunMessage.xor_mapped_address`, ...) and built
with the ``*_attribute()`` functions.

MESSAGE-INTEGRITY and FINGERPRINT are computed by :meth:`StunMessage.serialize` when
asked for and checked on the received bytes by :func:`verify_integrity` and
:func:`verify_fingerprint`, because both cover the exact bytes on the wire.

Parsers raise only :class:`MalformedPacket`; builders raise :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from mediaserver.errors import LocalProtocolError, MalformedPacket

__all__ = [
    "ATTR_ERROR_CODE",
    "ATTR_FINGERPRINT",
    "ATTR_ICE_CONTROLLED",
    "ATTR_ICE_CONTROLLING",
    "ATTR_MAPPED_ADDRESS",
    "ATTR_MESSAGE_INTEGRITY",
    "ATTR_PRIORITY",
    "ATTR_SOFTWARE",
    "ATTR_UNKNOWN_ATTRIBUTES",
    "ATTR_USERNAME",
    "ATTR_USE_CANDIDATE",
    "ATTR_XOR_MAPPED_ADDRESS",
    "BINDING",
    "FINGERPRINT_XOR",
    "MAGIC_COOKIE",
    "STUN_HEADER_SIZE",
    "Address",
    "StunAttribute",
    "StunClass",
    "StunMessage",
    "error_code_attribute",
    "ice_controlled_attribute",
    "ice_controlling_attribute",
    "priority_attribute",
    "software_attribute",
    "unknown_attributes_attribute",
    "use_candidate_attribute",
    "username_attribute",
    "verify_fingerprint",
    "verify_integrity",
    "xor_mapped_address_attribute",
]

Address = tuple[str, int]
"""A transport address: host string (IPv4 or IPv6 literal) and port."""

STUN_HEADER_SIZE = 20
MAGIC_COOKIE = 0x2112A442
"""RFC 5389 section 6."""
FINGERPRINT_XOR = 0x5354554E
"""The CRC-32 of FINGERPRINT is XOR-ed with this value (RFC 5389 section 15.5)."""

BINDING = 0x001
"""The Binding method (RFC 5389 section 18.1)."""

# Attribute types: RFC 5389 section 18.2 and RFC 8445 section 16.1.
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_UNKNOWN_ATTRIBUTES = 0x000A
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PRIORITY = 0x0024
ATTR_USE_CANDIDATE = 0x0025
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028
ATTR_ICE_CONTROLLED = 0x8029
ATTR_ICE_CONTROLLING = 0x802A

_HEADER = struct.Struct("!HHI12s")
_ATTR_HEADER = struct.Struct("!HH")
_MAGIC_BYTES = MAGIC_COOKIE.to_bytes(4, "big")
_IPV4 = 0x01
_IPV6 = 0x02


class StunClass(enum.IntEnum):
    """The message class (RFC 5389 section 6)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11


def _encode_type(method: int, message_class: int) -> int:
    # RFC 5389 section 6, figure 3: M11..M7 C1 M6..M4 C0 M3..M0.
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def _decode_type(message_type: int) -> tuple[int, StunClass]:
    method = (
        (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    )
    message_class = ((message_type >> 4) & 0b01) | ((message_type >> 7) & 0b10)
    return method, StunClass(message_class)


@dataclass(frozen=True, slots=True)
class StunAttribute:
    """One attribute (RFC 5389 section 15).

    Attributes:
        type: the 16-bit attribute type; 0x0000-0x7FFF are comprehension-required.
        value: the value, without padding.
        padding: the padding bytes as received when they are not all zero; empty means
            zero padding. RFC 5389 section 15 lets padding "be any value".
    """

    type: int
    value: bytes
    padding: bytes = b""

    def serialize(self) -> bytes:
        """Return the attribute with its header and padding to a 4-byte boundary."""
        pad = -len(self.value) % 4
        padding = self.padding or bytes(pad)
        if len(padding) != pad:
            raise LocalProtocolError(
                f"STUN attribute {self.type:#06x} needs {pad} padding bytes, has {len(padding)}"
            )
        if not 0 <= self.type <= 0xFFFF or len(self.value) > 0xFFFF:
            raise LocalProtocolError(f"STUN attribute {self.type:#x} does not fit its header")
        return _ATTR_HEADER.pack(self.type, len(self.value)) + self.value + padding


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A STUN message (RFC 5389 section 6).

    Attributes:
        method: the 12-bit method, :data:`BINDING` for ICE.
        message_class: request, indication, success or error response.
        transaction_id: the 96-bit transaction id.
        attributes: the attributes in wire order, MESSAGE-INTEGRITY and FINGERPRINT
            included when parsed.
    """

    method: int
    message_class: StunClass
    transaction_id: bytes
    attributes: tuple[StunAttribute, ...] = ()

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> StunMessage:
        """Parse a STUN message.

        Raises:
            MalformedPacket: the bytes are not a STUN message (RFC 5389 section 6).
        """
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        if n < STUN_HEADER_SIZE:
            raise MalformedPacket(f"STUN message is {n} bytes, shorter than the 20-byte header")
        message_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
        if message_type & 0xC000:
            raise MalformedPacket(f"STUN message type {message_type:#06x} has a top bit set")
        if cookie != MAGIC_COOKIE:
            raise MalformedPacket(f"STUN magic cookie is {cookie:#010x}, expected 0x2112a442")
        if length % 4:
            raise MalformedPacket(f"STUN length {length} is not a multiple of 4")
        if length != n - STUN_HEADER_SIZE:
            raise MalformedPacket(
                f"STUN length {length} does not match the {n - STUN_HEADER_SIZE} bytes "
                "after the header"
            )
        attributes = []
        offset = STUN_HEADER_SIZE
        # The length is a multiple of 4 and so is every padded attribute, so an attribute
        # header always fits when offset < n.
        while offset < n:
            attr_type, attr_length = _ATTR_HEADER.unpack_from(data, offset)
            start = offset + 4
            end = start + attr_length
            padded_end = start + ((attr_length + 3) & ~3)
            if padded_end > n:
                raise MalformedPacket(
                    f"STUN attribute {attr_type:#06x} at offset {offset} overruns the message"
                )
            padding = data[end:padded_end]
            if not any(padding):
                padding = b""
            attributes.append(StunAttribute(attr_type, data[start:end], padding))
            offset = padded_end
        method, message_class = _decode_type(message_type)
        return cls(method, message_class, transaction_id, tuple(attributes))

    def serialize(self, *, integrity_key: bytes | None = None, fingerprint: bool = False) -> bytes:
        """Return the message's bytes.

        The attributes are written as they are. Then, if ``integrity_key`` is given, a
        MESSAGE-INTEGRITY attribute is appended (RFC 5389 section 15.4), and if
        ``fingerprint`` is True a FINGERPRINT attribute is appended last (section 15.5).

        Args:
            integrity_key: the HMAC-SHA1 key; for ICE, the UTF-8 bytes of the password
                of the agent that receives the request (RFC 8445 section 7.2.2).
            fingerprint: whether to append FINGERPRINT.

        Raises:
            LocalProtocolError: the transaction id is not 12 bytes, an attribute is
                invalid, or the attributes already hold the MESSAGE-INTEGRITY or
                FINGERPRINT this call is asked to add (a receiver reads the first one,
                RFC 5389 §15.4-15.5, so the new one would not be checked).
        """
        added = (ATTR_MESSAGE_INTEGRITY,) * (integrity_key is not None) + (
            ATTR_FINGERPRINT,
        ) * fingerprint
        if added and any(attribute.type in added for attribute in self.attributes):
            raise LocalProtocolError(
                "STUN message already has the MESSAGE-INTEGRITY/FINGERPRINT to be added"
            )
        if len(self.transaction_id) != 12:
            raise LocalProtocolError(
                f"STUN transaction id is {len(self.transaction_id)} bytes, expected 12"
            )
        if not 0 <= self.method <= 0xFFF:
            raise LocalProtocolError(f"STUN method {self.method:#x} is not 12-bit")
        message_type = _encode_type(self.method, self.message_class)
        body = b"".join(attribute.serialize() for attribute in self.attributes)
        total = len(body) + (24 if integrity_key is not None else 0) + (8 if fingerprint else 0)
        if total > 0xFFFF:
            raise LocalProtocolError(f"STUN message body is {total} bytes, too long")
        if integrity_key is not None:
            # RFC 5389 section 15.4: the length field covers MESSAGE-INTEGRITY itself.
            header = _HEADER.pack(message_type, len(body) + 24, MAGIC_COOKIE, self.transaction_id)
            mac = hmac.new(integrity_key, header + body, hashlib.sha1).digest()
            body += _ATTR_HEADER.pack(ATTR_MESSAGE_INTEGRITY, 20) + mac
        if fingerprint:
            # RFC 5389 section 15.5: the length field covers FINGERPRINT itself.
            header = _HEADER.pack(message_type, len(body) + 8, MAGIC_COOKIE, self.transaction_id)
            crc = zlib.crc32(header + body) ^ FINGERPRINT_XOR
            body += _ATTR_HEADER.pack(ATTR_FINGERPRINT, 4) + crc.to_bytes(4, "big")
        return _HEADER.pack(message_type, len(body), MAGIC_COOKIE, self.transaction_id) + body

    # Typed accessors. Each returns the first occurrence of the attribute.

    def get(self, attr_type: int) -> bytes | None:
        """Return the value of the first attribute of ``attr_type``, or None."""
        for attribute in self.attributes:
            if attribute.type == attr_type:
                return attribute.value
        return None

    def has(self, attr_type: int) -> bool:
        """Return True if the message has an attribute of ``attr_type``."""
        return any(attribute.type == attr_type for attribute in self.attributes)

    def username(self) -> str | None:
        """Return USERNAME (RFC 5389 section 15.3), or None.

        Raises:
            MalformedPacket: the value is not UTF-8.
        """
        value = self.get(ATTR_USERNAME)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("STUN USERNAME is not UTF-8") from None

    def xor_mapped_address(self) -> Address | None:
        """Return XOR-MAPPED-ADDRESS (RFC 5389 section 15.2), or None.

        Raises:
            MalformedPacket: the value has the wrong size or an unknown family.
        """
        value = self.get(ATTR_XOR_MAPPED_ADDRESS)
        if value is None:
            return None
        if len(value) < 4:
            raise MalformedPacket(f"STUN XOR-MAPPED-ADDRESS is {len(value)} bytes, too short")
        family = value[1]
        port = ((value[2] << 8) | value[3]) ^ (MAGIC_COOKIE >> 16)
        if family == _IPV4:
            if len(value) != 8:
                raise MalformedPacket(
                    f"STUN XOR-MAPPED-ADDRESS IPv4 value is {len(value)} bytes, expected 8"
                )
            packed = bytes(a ^ b for a, b in zip(value[4:8], _MAGIC_BYTES, strict=True))
            return str(ipaddress.IPv4Address(packed)), port
        if family == _IPV6:
            if len(value) != 20:
                raise MalformedPacket(
                    f"STUN XOR-MAPPED-ADDRESS IPv6 value is {len(value)} bytes, expected 20"
                )
            mask = _MAGIC_BYTES + self.transaction_id
            packed = bytes(a ^ b for a, b in zip(value[4:20], mask, strict=True))
            return str(ipaddress.IPv6Address(packed)), port
        raise MalformedPacket(f"STUN XOR-MAPPED-ADDRESS family {family:#04x} is unknown")

    def error_code(self) -> tuple[int, str] | None:
        """Return ERROR-CODE as ``(code, reason)`` (RFC 5389 section 15.6), or None.

        Raises:
            MalformedPacket: the value is too short, the code is out of range, or the
                reason is not UTF-8.
        """
        value = self.get(ATTR_ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise MalformedPacket(f"STUN ERROR-CODE is {len(value)} bytes, too short")
        error_class = value[2] & 0x07
        number = value[3]
        if not 3 <= error_class <= 6 or number > 99:
            raise MalformedPacket(f"STUN ERROR-CODE {error_class}/{number} is out of range")
        try:
            reason = value[4:].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("STUN ERROR-CODE reason is not UTF-8") from None
        return error_class * 100 + number, reason

    def priority(self) -> int | None:
        """Return PRIORITY (RFC 8445 section 16.1), or None.

        Raises:
            MalformedPacket: the value is not 4 bytes.
        """
        return self._uint(ATTR_PRIORITY, 4, "PRIORITY")

    def use_candidate(self) -> bool:
        """Return True if USE-CANDIDATE is present (RFC 8445 section 16.1)."""
        return self.has(ATTR_USE_CANDIDATE)

    def ice_controlling(self) -> int | None:
        """Return the ICE-CONTROLLING tiebreaker (RFC 8445 section 16.1), or None.

        Raises:
            MalformedPacket: the value is not 8 bytes.
        """
        return self._uint(ATTR_ICE_CONTROLLING, 8, "ICE-CONTROLLING")

    def ice_controlled(self) -> int | None:
        """Return the ICE-CONTROLLED tiebreaker (RFC 8445 section 16.1), or None.

        Raises:
            MalformedPacket: the value is not 8 bytes.
        """
        return self._uint(ATTR_ICE_CONTROLLED, 8, "ICE-CONTROLLED")

    def _uint(self, attr_type: int, size: int, name: str) -> int | None:
        value = self.get(attr_type)
        if value is None:
            return None
        if len(value) != size:
            raise MalformedPacket(f"STUN {name} is {len(value)} bytes, expected {size}")
        return int.from_bytes(value, "big")


# Attribute builders.


def username_attribute(username: str) -> StunAttribute:
    """Build USERNAME (RFC 5389 section 15.3: fewer than 513 bytes)."""
    value = username.encode("utf-8")
    if len(value) > 512:
        raise LocalProtocolError(f"STUN USERNAME is {len(value)} bytes, at most 512")
    return StunAttribute(ATTR_USERNAME, value)


def xor_mapped_address_attribute(address: Address, transaction_id: bytes) -> StunAttribute:
    """Build XOR-MAPPED-ADDRESS for ``address`` (RFC 5389 section 15.2).

    Raises:
        LocalProtocolError: the host is not an IP literal or the port is not 16-bit.
    """
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(f"{host!r} is not an IP address") from None
    if not 0 <= port <= 0xFFFF:
        raise LocalProtocolError(f"port {port} is not 16-bit")
    if len(transaction_id) != 12:
        raise LocalProtocolError(f"STUN transaction id is {len(transaction_id)} bytes, not 12")
    head = bytes((0, _IPV4 if ip.version == 4 else _IPV6)) + (port ^ (MAGIC_COOKIE >> 16)).to_bytes(
        2, "big"
    )
    mask = _MAGIC_BYTES + transaction_id
    xored = bytes(a ^ b for a, b in zip(ip.packed, mask, strict=False))
    return StunAttribute(ATTR_XOR_MAPPED_ADDRESS, head + xored)


def error_code_attribute(code: int, reason: str) -> StunAttribute:
    """Build ERROR-CODE (RFC 5389 section 15.6); ``code`` is 300-699.

    Raises:
        LocalProtocolError: the code is out of range.
    """
    if not 300 <= code <= 699:
        raise LocalProtocolError(f"STUN error code {code} is not in 300-699")
    return StunAttribute(
        ATTR_ERROR_CODE, bytes((0, 0, code // 100, code % 100)) + reason.encode("utf-8")
    )


def unknown_attributes_attribute(types: Iterable[int]) -> StunAttribute:
    """Build UNKNOWN-ATTRIBUTES (RFC 5389 section 15.9)."""
    return StunAttribute(ATTR_UNKNOWN_ATTRIBUTES, b"".join(t.to_bytes(2, "big") for t in types))


def software_attribute(software: str) -> StunAttribute:
    """Build SOFTWARE (RFC 5389 section 15.10)."""
    return StunAttribute(ATTR_SOFTWARE, software.encode("utf-8"))


def priority_attribute(priority: int) -> StunAttribute:
    """Build PRIORITY (RFC 8445 section 16.1)."""
    if not 0 <= priority <= 0xFFFFFFFF:
        raise LocalProtocolError(f"ICE priority {priority} is not 32-bit")
    return StunAttribute(ATTR_PRIORITY, priority.to_bytes(4, "big"))


def use_candidate_attribute() -> StunAttribute:
    """Build USE-CANDIDATE (RFC 8445 section 16.1)."""
    return StunAttribute(ATTR_USE_CANDIDATE, b"")


def ice_controlling_attribute(tiebreaker: int) -> StunAttribute:
    """Build ICE-CONTROLLING (RFC 8445 section 16.1)."""
    if not 0 <= tiebreaker <= 0xFFFFFFFFFFFFFFFF:
        raise LocalProtocolError(f"ICE tiebreaker {tiebreaker} is not 64-bit")
    return StunAttribute(ATTR_ICE_CONTROLLING, tiebreaker.to_bytes(8, "big"))


def ice_controlled_attribute(tiebreaker: int) -> StunAttribute:
    """Build ICE-CONTROLLED (RFC 8445 section 16.1)."""
    if not 0 <= tiebreaker <= 0xFFFFFFFFFFFFFFFF:
        raise LocalProtocolError(f"ICE tiebreaker {tiebreaker} is not 64-bit")
    return StunAttribute(ATTR_ICE_CONTROLLED, tiebreaker.to_bytes(8, "big"))


# Verification on the received bytes.


def _find_attribute(data: bytes, attr_type: int) -> int:
    """Return the offset of the first ``attr_type`` attribute header, or -1."""
    offset = STUN_HEADER_SIZE
    n = len(data)
    while offset + 4 <= n:
        found, length = _ATTR_HEADER.unpack_from(data, offset)
        if found == attr_type:
            return offset
        offset += 4 + ((length + 3) & ~3)
    return -1


def verify_integrity(data: bytes, key: bytes) -> bool:
    """Return True if ``data`` has a MESSAGE-INTEGRITY that matches ``key``.

    RFC 5389 section 15.4: the HMAC covers the message up to the attribute, with the
    header's length field set as if MESSAGE-INTEGRITY were the last attribute. So any
    FINGERPRINT after it is excluded. Returns False for anything that is not a
    well-formed STUN header or has no MESSAGE-INTEGRITY.
    """
    if len(data) < STUN_HEADER_SIZE or data[4:8] != _MAGIC_BYTES:
        return False
    offset = _find_attribute(data, ATTR_MESSAGE_INTEGRITY)
    if offset < 0 or offset + 24 > len(data) or data[offset + 2 : offset + 4] != b"\x00\x14":
        return False
    adjusted = (offset + 24 - STUN_HEADER_SIZE).to_bytes(2, "big")
    signed = data[:2] + adjusted + data[4:offset]
    expected = hmac.new(key, signed, hashlib.sha1).digest()
    return hmac.compare_digest(expected, data[offset + 4 : offset + 24])


def verify_fingerprint(data: bytes) -> bool:
    """Return True if the last attribute of ``data`` is a correct FINGERPRINT.

    RFC 5389 section 15.5: CRC-32 of the message up to the attribute, XOR 0x5354554e;
    "When present, the FINGERPRINT attribute MUST be the last attribute".
    """
    n = len(data)
    if n < STUN_HEADER_SIZE + 8 or data[n - 8 : n - 4] != b"\x80\x28\x00\x04":
        return False
    crc = zlib.crc32(data[: n - 8]) ^ FINGERPRINT_XOR
    return crc.to_bytes(4, "big") == data[n - 4 :]

"""Tests for mediaserver.transport.stun: RFC 5769 vectors, round trips, errors."""

from __future__ import annotations

import contextlib

import pytest
from aioice import stun as aioice_stun
from hypothesis import given, strategies as st

from mediaserver.errors import LocalProtocolError, MalformedPacket
from mediaserver.transport.stun import (
    ATTR_ERROR_CODE,
    ATTR_FINGERPRINT,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_PRIORITY,
    ATTR_SOFTWARE,
    ATTR_USERNAME,
    BINDING,
    StunAttribute,
    StunClass,
    StunMessage,
    error_code_attribute,
    ice_controlled_attribute,
    ice_controlling_attribute,
    priority_attribute,
    software_attribute,
    unknown_attributes_attribute,
    use_candidate_attribute,
    username_attribute,
    verify_fingerprint,
    verify_integrity,
    xor_mapped_address_attribute,
)
from tests.helpers.vectors import load

# RFC 5769 section 2: the short-term password of all three samples.
RFC5769_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
RFC5769_TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def test_rfc5769_sample_request() -> None:
    """RFC 5769 section 2.1: fields, integrity, fingerprint, byte-exact round trip."""
    data = load("stun/rfc5769_request.bin")
    message = StunMessage.parse(data)
    assert message.method == BINDING
    assert message.message_class is StunClass.REQUEST
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert message.get(ATTR_SOFTWARE) == b"STUN test client"
    assert message.priority() == 0x6E0001FF
    assert message.ice_controlled() == 0x932FF9B151263B36
    assert message.ice_controlling() is None
    assert message.use_candidate() is False
    assert message.username() == "evtj:h6vY"
    assert message.attributes[3] == StunAttribute(ATTR_USERNAME, b"evtj:h6vY", b"   ")
    assert verify_integrity(data, RFC5769_PASSWORD)
    assert not verify_integrity(data, b"wrong")
    assert verify_fingerprint(data)
    assert message.serialize() == data


def test_bytearray_input_parses_like_bytes() -> None:
    """StunMessage.parse accepts bytearray and memoryview."""
    data = load("stun/rfc5769_request.bin")
    assert StunMessage.parse(bytearray(data)) == StunMessage.parse(memoryview(data))
    assert StunMessage.parse(bytearray(data)).serialize() == data


def test_rfc5769_request_rebuilt_with_our_serializer() -> None:
    """Building the sample request from its values reproduces the RFC bytes."""
    data = load("stun/rfc5769_request.bin")
    message = StunMessage(
        BINDING,
        StunClass.REQUEST,
        RFC5769_TRANSACTION_ID,
        (
            software_attribute("STUN test client"),
            priority_attribute(0x6E0001FF),
            ice_controlled_attribute(0x932FF9B151263B36),
            StunAttribute(ATTR_USERNAME, b"evtj:h6vY", b"   "),
        ),
    )
    assert message.serialize(integrity_key=RFC5769_PASSWORD, fingerprint=True) == data


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("rfc5769_response_ipv4.bin", ("192.0.2.1", 32853)),
        ("rfc5769_response_ipv6.bin", ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_responses(name: str, address: tuple[str, int]) -> None:
    """RFC 5769 sections 2.2 and 2.3: XOR-MAPPED-ADDRESS decodes; rebuilding matches."""
    data = load(f"stun/{name}")
    message = StunMessage.parse(data)
    assert message.method == BINDING
    assert message.message_class is StunClass.SUCCESS
    assert message.transaction_id == RFC5769_TRANSACTION_ID
    assert message.xor_mapped_address() == address
    assert message.get(ATTR_SOFTWARE) == b"test vector"
    assert verify_integrity(data, RFC5769_PASSWORD)
    assert verify_fingerprint(data)
    assert message.serialize() == data
    rebuilt = StunMessage(
        BINDING,
        StunClass.SUCCESS,
        RFC5769_TRANSACTION_ID,
        (
            StunAttribute(ATTR_SOFTWARE, b"test vector", b" "),
            xor_mapped_address_attribute(address, RFC5769_TRANSACTION_ID),
        ),
    )
    assert rebuilt.serialize(integrity_key=RFC5769_PASSWORD, fingerprint=True) == data


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("stun_invalid_cookie.bin", "STUN magic cookie is 0x2112a443, expected 0x2112a442"),
        (
            "stun_invalid_length.bin",
            "STUN length 4 does not match the 0 bytes after the header",
        ),
        (
            "stun_invalid_attribute.bin",
            "STUN attribute 0x0006 at offset 20 overruns the message",
        ),
    ],
)
def test_invalid_vectors(name: str, message: str) -> None:
    """Each invalid vector raises MalformedPacket with an exact message."""
    with pytest.raises(MalformedPacket) as info:
        StunMessage.parse(load(f"stun/{name}"))
    assert str(info.value) == message


HEADER = "0001 0000 2112a442 000000000000000000000000"


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("0001 0000 2112a442", "STUN message is 8 bytes, shorter than the 20-byte header"),
        (
            "c001 0000 2112a442 000000000000000000000000",
            "STUN message type 0xc001 has a top bit set",
        ),
        (
            "0001 0002 2112a442 000000000000000000000000 0000",
            "STUN length 2 is not a multiple of 4",
        ),
    ],
)
def test_header_errors(hex_data: str, message: str) -> None:
    """Header validation (RFC 5389 section 6) has exact messages."""
    with pytest.raises(MalformedPacket) as info:
        StunMessage.parse(bytes.fromhex(hex_data))
    assert str(info.value) == message


def _with(*attributes: StunAttribute) -> StunMessage:
    return StunMessage(BINDING, StunClass.SUCCESS, bytes(12), attributes)


@pytest.mark.parametrize(
    ("message", "accessor", "error"),
    [
        (_with(StunAttribute(ATTR_USERNAME, b"\xff")), "username", "STUN USERNAME is not UTF-8"),
        (
            _with(StunAttribute(0x0020, b"\x00\x01")),
            "xor_mapped_address",
            "STUN XOR-MAPPED-ADDRESS is 2 bytes, too short",
        ),
        (
            _with(StunAttribute(0x0020, b"\x00\x01\x00\x00\x00")),
            "xor_mapped_address",
            "STUN XOR-MAPPED-ADDRESS IPv4 value is 5 bytes, expected 8",
        ),
        (
            _with(StunAttribute(0x0020, b"\x00\x02\x00\x00\x00")),
            "xor_mapped_address",
            "STUN XOR-MAPPED-ADDRESS IPv6 value is 5 bytes, expected 20",
        ),
        (
            _with(StunAttribute(0x0020, b"\x00\x03\x00\x00")),
            "xor_mapped_address",
            "STUN XOR-MAPPED-ADDRESS family 0x03 is unknown",
        ),
        (
            _with(StunAttribute(ATTR_ERROR_CODE, b"\x00\x00")),
            "error_code",
            "STUN ERROR-CODE is 2 bytes, too short",
        ),
        (
            _with(StunAttribute(ATTR_ERROR_CODE, b"\x00\x00\x02\x00")),
            "error_code",
            "STUN ERROR-CODE 2/0 is out of range",
        ),
        (
            _with(StunAttribute(ATTR_ERROR_CODE, b"\x00\x00\x04\x00\xff")),
            "error_code",
            "STUN ERROR-CODE reason is not UTF-8",
        ),
        (
            _with(StunAttribute(ATTR_PRIORITY, b"\x00")),
            "priority",
            "STUN PRIORITY is 1 bytes, expected 4",
        ),
    ],
)
def test_accessor_errors(message: StunMessage, accessor: str, error: str) -> None:
    """Typed accessors raise MalformedPacket with exact messages."""
    with pytest.raises(MalformedPacket) as info:
        getattr(message, accessor)()
    assert str(info.value) == error


def test_accessors_on_absent_attributes() -> None:
    """Absent attributes read as None (or False)."""
    message = _with()
    assert message.username() is None
    assert message.xor_mapped_address() is None
    assert message.error_code() is None
    assert message.priority() is None
    assert message.use_candidate() is False


def test_error_code_round_trip() -> None:
    """ERROR-CODE stores class and number separately (RFC 5389 section 15.6)."""
    message = _with(error_code_attribute(487, "Role Conflict"))
    assert message.error_code() == (487, "Role Conflict")
    assert message.get(ATTR_ERROR_CODE) == b"\x00\x00\x04\x57Role Conflict"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: username_attribute("x" * 513), "STUN USERNAME is 513 bytes, at most 512"),
        (lambda: error_code_attribute(200, ""), "STUN error code 200 is not in 300-699"),
        (
            lambda: xor_mapped_address_attribute(("example.org", 1), bytes(12)),
            "'example.org' is not an IP address",
        ),
        (
            lambda: xor_mapped_address_attribute(("1.2.3.4", 70000), bytes(12)),
            "port 70000 is not 16-bit",
        ),
        (
            lambda: xor_mapped_address_attribute(("1.2.3.4", 1), bytes(4)),
            "STUN transaction id is 4 bytes, not 12",
        ),
        (lambda: priority_attribute(-1), "ICE priority -1 is not 32-bit"),
        (lambda: ice_controlling_attribute(1 << 64), f"ICE tiebreaker {1 << 64} is not 64-bit"),
        (lambda: ice_controlled_attribute(-1), "ICE tiebreaker -1 is not 64-bit"),
        (
            lambda: StunMessage(BINDING, StunClass.REQUEST, bytes(11)).serialize(),
            "STUN transaction id is 11 bytes, expected 12",
        ),
        (
            lambda: StunMessage(0x1000, StunClass.REQUEST, bytes(12)).serialize(),
            "STUN method 0x1000 is not 12-bit",
        ),
        (
            lambda: StunAttribute(ATTR_USERNAME, b"a", b"  ").serialize(),
            "STUN attribute 0x0006 needs 3 padding bytes, has 2",
        ),
        (
            lambda: StunAttribute(0x10000, b"").serialize(),
            "STUN attribute 0x10000 does not fit its header",
        ),
        (
            lambda: _with(StunAttribute(0x8000, bytes(0xFFFC))).serialize(fingerprint=True),
            "STUN message body is 65544 bytes, too long",
        ),
    ],
)
def test_builder_errors(call: object, error: str) -> None:
    """Builders raise LocalProtocolError with exact messages."""
    assert callable(call)
    with pytest.raises(LocalProtocolError) as info:
        call()
    assert str(info.value) == error


def test_verify_functions_reject_garbage() -> None:
    """Verification returns False, never raises, on anything odd."""
    assert not verify_integrity(b"", b"k")
    assert not verify_integrity(bytes(40), b"k")
    assert not verify_fingerprint(bytes(10))
    request = load("stun/rfc5769_request.bin")
    without_mi = _with(software_attribute("x")).serialize(fingerprint=True)
    assert not verify_integrity(without_mi, b"k")
    tampered = bytearray(request)
    tampered[30] ^= 1
    assert not verify_integrity(bytes(tampered), RFC5769_PASSWORD)
    assert not verify_fingerprint(bytes(tampered))
    # A MESSAGE-INTEGRITY with the wrong length is no integrity at all.
    short_mi = _with(StunAttribute(ATTR_MESSAGE_INTEGRITY, bytes(16))).serialize()
    assert not verify_integrity(short_mi, b"k")


def test_message_classes_and_methods_encode_per_rfc5389_figure_3() -> None:
    """Type bits interleave class and method (RFC 5389 section 6)."""
    cases = {
        (BINDING, StunClass.REQUEST): 0x0001,
        (BINDING, StunClass.INDICATION): 0x0011,
        (BINDING, StunClass.SUCCESS): 0x0101,
        (BINDING, StunClass.ERROR): 0x0111,
        (0xFFF, StunClass.ERROR): 0x3FFF,
        (0x003, StunClass.REQUEST): 0x0003,
    }
    for (method, message_class), message_type in cases.items():
        data = StunMessage(method, message_class, bytes(12)).serialize()
        assert int.from_bytes(data[:2], "big") == message_type
        parsed = StunMessage.parse(data)
        assert (parsed.method, parsed.message_class) == (method, message_class)


def test_aioice_verifies_what_we_sign() -> None:
    """An independent implementation (aioice) accepts our integrity and fingerprint."""
    key = b"server-password-1234567"
    request = StunMessage(
        BINDING,
        StunClass.REQUEST,
        bytes(range(12)),
        (
            username_attribute("srv1:cli1"),
            priority_attribute(1853824767),
            ice_controlling_attribute(0x1122334455667788),
            use_candidate_attribute(),
        ),
    )
    data = request.serialize(integrity_key=key, fingerprint=True)
    parsed = aioice_stun.parse_message(data)
    assert parsed.check_message_integrity(key)
    assert parsed.attributes["USERNAME"] == "srv1:cli1"
    assert parsed.attributes["ICE-CONTROLLING"] == 0x1122334455667788
    assert "USE-CANDIDATE" in parsed.attributes


def test_we_verify_what_aioice_signs() -> None:
    """Our verification accepts an aioice-built request, and our parser re-serializes it."""
    key = b"server-password-1234567"
    message = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=bytes(range(12)),
        attributes={"USERNAME": "srv1:cli1", "PRIORITY": 1, "ICE-CONTROLLING": 5},
    )
    message.add_message_integrity(key)
    data = bytes(message)
    assert verify_integrity(data, key)
    assert verify_fingerprint(data)
    assert StunMessage.parse(data).serialize() == data
    assert StunMessage.parse(data).has(ATTR_FINGERPRINT)


@st.composite
def stun_messages(draw: st.DrawFn) -> StunMessage:
    attributes = []
    for _ in range(draw(st.integers(0, 5))):
        value = draw(st.binary(max_size=24))
        pad = -len(value) % 4
        padding = draw(st.just(b"") | st.binary(min_size=pad, max_size=pad).filter(any))
        attributes.append(StunAttribute(draw(st.integers(0, 0xFFFF)), value, padding))
    return StunMessage(
        draw(st.integers(0, 0xFFF)),
        draw(st.sampled_from(StunClass)),
        draw(st.binary(min_size=12, max_size=12)),
        tuple(attributes),
    )


@given(stun_messages())
def test_round_trip(message: StunMessage) -> None:
    """parse(serialize(x)) == x and re-serialization is byte-exact."""
    data = message.serialize()
    parsed = StunMessage.parse(data)
    assert parsed == message
    assert parsed.serialize() == data


@given(stun_messages(), st.binary(min_size=1, max_size=32))
def test_signed_round_trip(message: StunMessage, key: bytes) -> None:
    """Anything we sign verifies; aioice agrees on the fingerprint and integrity.

    A message that already carries either attribute is refused instead of signed."""
    if any(a.type in (ATTR_MESSAGE_INTEGRITY, ATTR_FINGERPRINT) for a in message.attributes):
        with pytest.raises(LocalProtocolError):
            message.serialize(integrity_key=key, fingerprint=True)
        return
    data = message.serialize(integrity_key=key, fingerprint=True)
    assert verify_integrity(data, key)
    assert verify_fingerprint(data)
    parsed = StunMessage.parse(data)
    assert parsed.serialize() == data


@given(st.binary(max_size=64))
def test_parse_raises_only_malformed_packet(data: bytes) -> None:
    """Arbitrary bytes parse or raise MalformedPacket; verification never raises."""
    verify_integrity(data, b"key")
    verify_fingerprint(data)
    try:
        message = StunMessage.parse(data)
    except MalformedPacket:
        return
    for accessor in (
        message.username,
        message.xor_mapped_address,
        message.error_code,
        message.priority,
        message.ice_controlled,
        message.ice_controlling,
    ):
        with contextlib.suppress(MalformedPacket):
            accessor()


@given(st.binary(max_size=40))
def test_parse_of_stun_headed_garbage(body: bytes) -> None:
    """Garbage behind a valid header reaches the attribute walker."""
    body = body + bytes(-len(body) % 4)
    data = bytes.fromhex("0001") + len(body).to_bytes(2, "big") + bytes.fromhex("2112a442")
    data += bytes(12) + body
    with contextlib.suppress(MalformedPacket):
        StunMessage.parse(data)


def test_unknown_attributes_attribute() -> None:
    """UNKNOWN-ATTRIBUTES lists 16-bit types (RFC 5389 section 15.9)."""
    assert unknown_attributes_attribute([0x0003, 0x0004]).value == bytes.fromhex("00030004")


def test_signing_refuses_a_message_that_already_has_integrity_or_fingerprint() -> None:
    for kind in (ATTR_MESSAGE_INTEGRITY, ATTR_FINGERPRINT):
        message = StunMessage(1, StunClass.REQUEST, bytes(12), (StunAttribute(kind, bytes(4)),))
        with pytest.raises(LocalProtocolError):
            message.serialize(integrity_key=b"key", fingerprint=True)
    # Without signing, such attributes are written as they are (a relay of a parsed message).
    message = StunMessage(
        1, StunClass.REQUEST, bytes(12), (StunAttribute(ATTR_FINGERPRINT, bytes(4)),)
    )
    assert StunMessage.parse(message.serialize()) == message

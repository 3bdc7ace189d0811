"""Tests for mediaserver.rtp.packet: vectors, round trips, errors, fast paths."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import LocalProtocolError, MalformedPacket
from mediaserver.rtp.packet import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    RtpPacket,
    peek_extension,
    peek_extension_offset,
    peek_header,
    peek_marker,
    peek_payload_offset,
    peek_payload_type,
    peek_sequence_number,
    peek_ssrc,
    peek_timestamp,
    rewrite_header,
    rewrite_marker,
    rewrite_payload_type,
    rewrite_sequence_number,
    rewrite_ssrc,
    rewrite_timestamp,
)
from tests.helpers.vectors import load


def test_one_byte_extension_vector_parses_field_by_field() -> None:
    """A Chrome-layout packet with mid, abs-send-time and transport-cc parses."""
    data = load("rtp/rtp_onebyte_ext.bin")
    packet = RtpPacket.parse(data)
    assert packet.payload_type == 96
    assert packet.sequence_number == 0x1A2B
    assert packet.timestamp == 123456
    assert packet.ssrc == 0x12345678
    assert packet.marker is False
    assert packet.csrcs == ()
    assert packet.extension_profile == ONE_BYTE_PROFILE
    assert packet.extensions == {4: b"0", 2: b"\x12\x34\x56", 3: b"\x00\x2a"}
    assert list(packet.extensions) == [4, 2, 3]
    assert packet.payload == bytes.fromhex("9080009d012a8002e001")
    assert packet.padding == b""
    assert packet.serialize() == data


def test_two_byte_extension_vector_with_csrcs_and_padding() -> None:
    """The two-byte form, CSRCs and padding all parse and re-serialize exactly."""
    data = load("rtp/rtp_twobyte_ext_csrc_padding.bin")
    packet = RtpPacket.parse(data)
    assert packet.marker is True
    assert packet.payload_type == 96
    assert packet.sequence_number == 5
    assert packet.timestamp == 1000
    assert packet.ssrc == 0xDEADBEEF
    assert packet.csrcs == (1, 2)
    assert packet.extension_profile == TWO_BYTE_PROFILE
    assert packet.extensions == {1: b"", 7: b"\xab\xcd"}
    assert packet.payload == b"\x01\x02\x03"
    assert packet.padding == b"\x00\x00\x03"
    assert packet.serialize() == data


def test_bytearray_and_memoryview_input_give_bytes_fields() -> None:
    """Non-bytes input is accepted and every field is plain bytes."""
    data = load("rtp/rtp_onebyte_ext.bin")
    for view in (bytearray(data), memoryview(data)):
        packet = RtpPacket.parse(view)
        assert packet == RtpPacket.parse(data)
        assert type(packet.payload) is bytes
        assert all(type(v) is bytes for v in packet.extensions.values())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rtp_invalid_short.bin", "RTP packet is 10 bytes, shorter than the 12-byte header"),
        ("rtp_invalid_version.bin", "RTP version is 1, expected 2"),
        ("rtp_invalid_csrc.bin", "RTP packet is too short for its 3 CSRCs"),
        ("rtp_invalid_extension_truncated.bin", "RTP header extension is truncated"),
        (
            "rtp_invalid_extension_element.bin",
            "RTP header extension element 1 overruns its block",
        ),
        (
            "rtp_invalid_padding.bin",
            "RTP padding count 5 is invalid with 3 bytes after the header",
        ),
    ],
)
def test_invalid_vectors_raise_exact_messages(name: str, message: str) -> None:
    """Each error path has a vector file and an exact message."""
    with pytest.raises(MalformedPacket) as info:
        RtpPacket.parse(load(f"rtp/{name}"))
    assert str(info.value) == message


def test_extension_header_truncated_before_its_length() -> None:
    """X set but fewer than 4 bytes for the extension header."""
    data = bytes.fromhex("900000010000000100000001bede")
    with pytest.raises(MalformedPacket, match=r"^RTP header extension is truncated$"):
        RtpPacket.parse(data)


def test_two_byte_element_overruns() -> None:
    """A two-byte element whose length runs past the block, or has no length byte."""
    header = bytes.fromhex("900000010000000100000001")
    with pytest.raises(MalformedPacket, match=r"^RTP header extension element 5 overruns"):
        RtpPacket.parse(header + bytes.fromhex("10000001 0503aabb"))
    with pytest.raises(MalformedPacket, match=r"^RTP header extension element 5 overruns"):
        RtpPacket.parse(header + bytes.fromhex("10000001 000000 05"))


def test_one_byte_id_15_stops_processing() -> None:
    """RFC 8285 section 4.2: id 15 ends the walk; later bytes are ignored."""
    data = bytes.fromhex("900000010000000100000001 bede0001 10aaf0ff")
    packet = RtpPacket.parse(data)
    assert packet.extensions == {1: b"\xaa"}
    assert peek_extension(data, 1) == b"\xaa"
    assert peek_extension(data, 2) is None


def test_other_profile_kept_raw() -> None:
    """A non-RFC 8285 profile keeps its body as extension_data."""
    data = bytes.fromhex("900000010000000100000001 abcd0001 01020304 ff")
    packet = RtpPacket.parse(data)
    assert packet.extension_profile == 0xABCD
    assert packet.extension_data == b"\x01\x02\x03\x04"
    assert packet.extensions == {}
    assert packet.serialize() == data
    assert peek_extension(data, 1) is None
    assert peek_payload_offset(data) == 20


def test_inter_element_padding_parses_and_compacts() -> None:
    """Padding between elements is skipped; serialization uses the compact layout."""
    data = bytes.fromhex("900000010000000100000001 bede0002 10aa0000 20bb0000")
    packet = RtpPacket.parse(data)
    assert packet.extensions == {1: b"\xaa", 2: b"\xbb"}
    assert packet.serialize() == bytes.fromhex("900000010000000100000001 bede0001 10aa20bb")
    assert peek_extension(data, 2) == b"\xbb"


def test_serialize_picks_the_form_when_profile_is_none() -> None:
    """One-byte form when every element fits, two-byte otherwise."""
    small = RtpPacket(extensions={1: b"a"}).serialize()
    assert small[12:14] == b"\xbe\xde"
    large = RtpPacket(extensions={1: b"a" * 17}).serialize()
    assert large[12:14] == b"\x10\x00"
    empty_value = RtpPacket(extensions={1: b""}).serialize()
    assert empty_value[12:14] == b"\x10\x00"
    high_id = RtpPacket(extensions={15: b"x"}).serialize()
    assert RtpPacket.parse(high_id).extensions == {15: b"x"}


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (RtpPacket(payload_type=128), "RTP payload type 128 is not in 0-127"),
        (RtpPacket(csrcs=tuple(range(16))), "RTP packet has 16 CSRCs, at most 15 fit"),
        (RtpPacket(padding=b"\x00\x01"), "RTP padding is 2 bytes but its count byte says 1"),
        (
            RtpPacket(extension_profile=ONE_BYTE_PROFILE, extensions={15: b"x"}),
            "RTP header extension 15 with 1 bytes does not fit the one-byte form",
        ),
        (
            RtpPacket(extension_profile=TWO_BYTE_PROFILE, extensions={256: b"x"}),
            "RTP header extension 256 with 1 bytes does not fit the two-byte form",
        ),
        (
            RtpPacket(extension_profile=ONE_BYTE_PROFILE, extension_data=b"abcd"),
            "RTP extension_data must be empty with an RFC 8285 profile",
        ),
        (
            RtpPacket(extension_profile=0xABCD, extensions={1: b"x"}),
            "RTP extensions need an RFC 8285 profile, not 0xabcd",
        ),
        (
            RtpPacket(extension_profile=0xABCD, extension_data=b"abc"),
            "RTP extension_data is 3 bytes, not a multiple of 4",
        ),
    ],
)
def test_serialize_errors(packet: RtpPacket, message: str) -> None:
    """Invalid field values raise LocalProtocolError with an exact message."""
    with pytest.raises(LocalProtocolError) as info:
        packet.serialize()
    assert str(info.value) == message


def test_serialize_out_of_range_header_field() -> None:
    """A header field that does not fit its width is a LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=r"^RTP header field out of range: "):
        RtpPacket(sequence_number=70000).serialize()


one_byte_elements = st.dictionaries(
    st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=14
)
two_byte_elements = st.dictionaries(st.integers(1, 255), st.binary(max_size=255), max_size=8)


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    kind = draw(st.sampled_from(["none", "one", "two", "raw"]))
    profile: int | None = None
    extensions: dict[int, bytes] = {}
    extension_data = b""
    if kind == "one":
        profile = ONE_BYTE_PROFILE
        extensions = draw(one_byte_elements)
    elif kind == "two":
        profile = TWO_BYTE_PROFILE | draw(st.integers(0, 15))
        extensions = draw(two_byte_elements)
    elif kind == "raw":
        profile = draw(st.integers(0, 0xFFFF).filter(lambda p: p & 0xFFF0 != 0x1000))
        if profile == ONE_BYTE_PROFILE:
            profile = 0
        words = draw(st.integers(0, 4))
        extension_data = draw(st.binary(min_size=4 * words, max_size=4 * words))
    pad = draw(st.integers(0, 8))
    padding = draw(st.binary(min_size=pad - 1, max_size=pad - 1)) + bytes((pad,)) if pad else b""
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        csrcs=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))),
        extension_profile=profile,
        extensions=extensions,
        extension_data=extension_data,
        payload=draw(st.binary(max_size=64)),
        padding=padding,
    )


@given(rtp_packets())
def test_round_trip(packet: RtpPacket) -> None:
    """parse(serialize(x)) == x, and re-serialization is byte-exact."""
    data = packet.serialize()
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parsed.serialize() == data


@given(rtp_packets())
def test_peeks_agree_with_the_dataclass(packet: RtpPacket) -> None:
    """Every fast path returns what the full parse returns."""
    data = packet.serialize()
    assert peek_header(data) == (
        packet.payload_type,
        packet.marker,
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
    )
    assert peek_payload_type(data) == packet.payload_type
    assert peek_marker(data) is packet.marker
    assert peek_sequence_number(data) == packet.sequence_number
    assert peek_timestamp(data) == packet.timestamp
    assert peek_ssrc(data) == packet.ssrc
    offset = peek_payload_offset(data)
    assert data[offset : len(data) - len(packet.padding)] == packet.payload
    for ext_id in range(1, 256):
        assert peek_extension(data, ext_id) == packet.extensions.get(ext_id)


@given(st.binary(max_size=80))
def test_parse_raises_only_malformed_packet(data: bytes) -> None:
    """Arbitrary bytes parse or raise MalformedPacket, nothing else."""
    with contextlib.suppress(MalformedPacket):
        RtpPacket.parse(data)


@given(st.binary(min_size=12, max_size=80))
def test_peek_extension_raises_only_malformed_packet(data: bytes) -> None:
    """Extension peeks on any 12+ byte input return or raise MalformedPacket."""
    try:
        peek_extension(data, 1)
        peek_payload_offset(data)
    except MalformedPacket:
        pass


def test_peek_truncated_blocks_raise() -> None:
    """Peeks detect truncated extension blocks."""
    header = bytes.fromhex("900000010000000100000001")
    for tail in ("bede", "bede0002 10aa0000"):
        data = header + bytes.fromhex(tail)
        with pytest.raises(MalformedPacket, match=r"^RTP header extension is truncated$"):
            peek_extension_offset(data, 1)
    with pytest.raises(MalformedPacket, match=r"^RTP header extension element 1 overruns"):
        peek_extension_offset(header + bytes.fromhex("bede0001 13aabbcc"), 1)
    with pytest.raises(MalformedPacket, match=r"^RTP header extension element 1 overruns"):
        peek_extension_offset(header + bytes.fromhex("10000001 0103aabb"), 1)
    with pytest.raises(MalformedPacket, match=r"^RTP header extension is truncated$"):
        peek_payload_offset(header + bytes.fromhex("bede"))
    with pytest.raises(MalformedPacket, match=r"^RTP header is longer than the packet$"):
        peek_payload_offset(bytes.fromhex("81000001000000010000000100"))
    assert peek_extension_offset(bytes.fromhex("800000010000000100000001"), 1) is None


def test_rewrites_patch_in_place() -> None:
    """The SFU rewrite helpers change only their fields."""
    data = load("rtp/rtp_onebyte_ext.bin")
    buf = bytearray(data)
    rewrite_header(buf, 0xFFFF, 0xFFFFFFFF, 0xCAFEBABE)
    rewrite_payload_type(buf, 111)
    rewrite_marker(buf, True)
    packet = RtpPacket.parse(bytes(buf))
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == (
        0xFFFF,
        0xFFFFFFFF,
        0xCAFEBABE,
    )
    assert packet.payload_type == 111
    assert packet.marker is True
    rewrite_marker(buf, False)
    rewrite_sequence_number(buf, 7)
    rewrite_timestamp(buf, 8)
    rewrite_ssrc(buf, 9)
    assert peek_header(buf) == (111, False, 7, 8, 9)
    assert buf[12:] == data[12:]


def test_transport_sequence_number_rewritten_in_place() -> None:
    """peek_extension_offset gives a position that pack_into can patch."""
    buf = bytearray(load("rtp/rtp_onebyte_ext.bin"))
    found = peek_extension_offset(buf, 3)
    assert found is not None
    offset, size = found
    assert size == 2
    struct.pack_into("!H", buf, offset, 4242)
    assert RtpPacket.parse(bytes(buf)).extensions[3] == (4242).to_bytes(2, "big")

"""Tests for mediaserver.rtp.rtcp: vectors, round trips, errors, transport-cc chunks."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import LocalProtocolError, MalformedPacket
from mediaserver.rtp.rtcp import (
    RTCP_APP,
    TWCC_NOT_RECEIVED,
    TWCC_RECEIVED_LARGE_DELTA,
    TWCC_RECEIVED_SMALL_DELTA,
    ReportBlock,
    RtcpBye,
    RtcpFir,
    RtcpNack,
    RtcpPacket,
    RtcpPli,
    RtcpReceiverReport,
    RtcpRemb,
    RtcpSenderReport,
    RtcpSourceDescription,
    RtcpTransportCc,
    RtcpUnknown,
    SdesChunk,
    parse_compound,
    serialize_compound,
)
from tests.helpers.vectors import load


def test_sr_sdes_vector() -> None:
    """SR with a report block (negative cumulative loss) and SDES CNAME."""
    data = load("rtcp/rtcp_sr_sdes.bin")
    packets = parse_compound(data)
    assert packets == [
        RtcpSenderReport(
            ssrc=0x12345678,
            ntp_timestamp=0xE52B3C4D5E6F7081,
            rtp_timestamp=123456,
            packet_count=100,
            octet_count=20000,
            reports=(
                ReportBlock(
                    ssrc=0x9ABCDEF0,
                    fraction_lost=16,
                    packets_lost=-2,
                    highest_sequence=0x10005,
                    jitter=32,
                    lsr=0x3C4D5E6F,
                    dlsr=65536,
                ),
            ),
        ),
        RtcpSourceDescription((SdesChunk(0x12345678, ((1, b"abcdEFGH12345678"),)),)),
    ]
    assert serialize_compound(packets) == data


def test_feedback_vector() -> None:
    """RR, NACK, PLI, FIR and REMB in one compound."""
    data = load("rtcp/rtcp_feedback.bin")
    rr, nack, pli, fir, remb = parse_compound(data)
    assert rr == RtcpReceiverReport(ssrc=1)
    assert isinstance(nack, RtcpNack)
    assert nack == RtcpNack(1, 0x12345678, ((100, 0b101),))
    assert nack.lost == [100, 101, 103]
    assert pli == RtcpPli(1, 0x12345678)
    assert fir == RtcpFir(1, 0, ((0x12345678, 3),))
    assert isinstance(remb, RtcpRemb)
    assert (remb.exponent, remb.mantissa, remb.ssrcs) == (2, 250000, (0x12345678,))
    assert remb.bitrate == 1_000_000
    assert remb == RtcpRemb.from_bitrate(1, 1_000_000, [0x12345678])
    assert serialize_compound([rr, nack, pli, fir, remb]) == data


def test_twcc_vector() -> None:
    """Transport-cc feedback with a two-bit status vector and a negative delta."""
    data = load("rtcp/rtcp_twcc.bin")
    packet = RtcpTransportCc.parse(data)
    assert packet.sender_ssrc == 1
    assert packet.media_ssrc == 0x12345678
    assert packet.base_sequence == 100
    assert packet.packet_status_count == 5
    assert packet.reference_time == 0x000102
    assert packet.feedback_packet_count == 7
    assert packet.chunks == (0xD490,)
    assert packet.deltas == (4, 8, -1, 16)
    assert packet.statuses() == [1, 1, 0, 2, 1]
    assert packet.packet_results() == [(100, 4), (101, 8), (102, None), (103, -1), (104, 16)]
    assert packet.serialize() == data
    rebuilt = RtcpTransportCc.build(1, 0x12345678, 100, 0x102, 7, [4, 8, None, -1, 16])
    assert rebuilt == packet
    assert rebuilt.serialize() == data


def test_bye_and_app_vector() -> None:
    """BYE with a reason; APP is kept raw."""
    data = load("rtcp/rtcp_bye_app.bin")
    bye, app = parse_compound(data)
    assert bye == RtcpBye((0x12345678,), b"done")
    assert app == RtcpUnknown(RTCP_APP, 0, bytes.fromhex("12345678") + b"test")
    assert serialize_compound([bye, app]) == data


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "rtcp_invalid_length.bin",
            "RTCP packet at offset 0 says 32 bytes, only 8 remain",
        ),
        ("rtcp_invalid_version.bin", "RTCP version is 1, expected 2"),
        ("rtcp_invalid_padding.bin", "RTCP padding count 0 is invalid"),
        (
            "rtcp_invalid_twcc_truncated.bin",
            "RTCP transport-cc packet status chunks are truncated",
        ),
        ("rtcp_invalid_nack.bin", "RTCP NACK FCI is 2 bytes, not a multiple of 4"),
    ],
)
def test_invalid_vectors(name: str, message: str) -> None:
    """Each invalid vector raises MalformedPacket with its exact message."""
    with pytest.raises(MalformedPacket) as info:
        parse_compound(load(f"rtcp/{name}"))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("", "RTCP datagram is empty"),
        ("80c9", "RTCP packet header at offset 0 is truncated"),
        ("80c8 0001 00000001", "RTCP SR body is 4 bytes, shorter than 24"),
        ("81c9 0001 00000001", "RTCP RR is too short for its 1 report blocks"),
        ("80c9 0000", "RTCP RR body is 0 bytes, shorter than 4"),
        (
            "a0c9 0002 00000001 00000003",
            "RTCP RR profile extension is 1 bytes, not a multiple of 4",
        ),
        (
            "a0c8 0007" + "00" * 24 + "00000003",
            "RTCP SR profile extension is 1 bytes, not a multiple of 4",
        ),
        ("81ca 0000", "RTCP SDES is too short for its chunks"),
        ("81ca 0002 00000001 01050000", "RTCP SDES item 1 overruns the packet"),
        ("81ca 0002 00000001 01016102", "RTCP SDES item 2 overruns the packet"),
        ("81ca 0001 00000001", "RTCP SDES chunk has no terminating null octet"),
        ("82cb 0001 00000001", "RTCP BYE is too short for its 2 SSRCs"),
        ("81cb 0002 00000001 05616263", "RTCP BYE reason overruns the packet"),
        ("81cd 0001 00000001", "RTCP feedback body is 4 bytes, shorter than 8"),
        ("81ce 0003 00000001 00000002 00000000", "RTCP PLI has 4 bytes of FCI, expected none"),
        ("84ce 0003 00000001 00000000 12345678", "RTCP FIR FCI is 4 bytes, not a multiple of 8"),
        (
            "8fcd 0003 00000001 00000002 00640001",
            "RTCP transport-cc FCI is 4 bytes, shorter than 8",
        ),
        (
            "afcd 0005 00000001 00000002 00640001 00000000 2001 0002",
            "RTCP transport-cc receive deltas are truncated",
        ),
        (
            "afcd 0005 00000001 00000002 00640001 00000000 4001 0001",
            "RTCP transport-cc receive deltas are truncated",
        ),
        (
            "8fcd 0005 00000001 00000002 00640001 00000000 6001 0000",
            "RTCP transport-cc uses the reserved status symbol 3",
        ),
        (
            "8fce 0004 00000001 00000000 52454d42 01000000",
            "RTCP REMB is too short for its 1 SSRCs",
        ),
        (
            "8fce 0003 00000001 00000000 52454d42",
            "RTCP REMB FCI is 4 bytes, shorter than 8",
        ),
    ],
)
def test_parse_errors(hex_data: str, message: str) -> None:
    """Every parse error path has an exact message."""
    with pytest.raises(MalformedPacket) as info:
        parse_compound(bytes.fromhex(hex_data))
    assert str(info.value) == message


def test_single_packet_parse_checks_count_and_type() -> None:
    """Class.parse() wants exactly one packet of that class."""
    with pytest.raises(MalformedPacket, match=r"^expected one RTCP packet, found 5$"):
        RtcpPli.parse(load("rtcp/rtcp_feedback.bin"))
    with pytest.raises(MalformedPacket, match=r"^expected an RTCP RtcpPli, found RtcpBye$"):
        RtcpPli.parse(RtcpBye((1,)).serialize())


def test_unknown_feedback_formats_are_kept_raw() -> None:
    """Unknown RTPFB/PSFB formats and non-REMB AFB stay RtcpUnknown and round-trip."""
    for hex_data in (
        "83cd 0002 00000001 00000002",  # RTPFB FMT 3 (TMMBR-like)
        "8fce 0003 00000001 00000000 41424344",  # AFB that is not REMB
        "80cf 0001 00000001",  # XR
    ):
        data = bytes.fromhex(hex_data)
        (packet,) = parse_compound(data)
        assert isinstance(packet, RtcpUnknown)
        assert packet.serialize() == data


def test_bytearray_input_parses_like_bytes() -> None:
    """parse_compound accepts bytearray and memoryview."""
    data = load("rtcp/rtcp_feedback.bin")
    assert parse_compound(bytearray(data)) == parse_compound(memoryview(data))
    assert parse_compound(bytearray(data)) == parse_compound(data)


def test_twcc_statuses_ignore_chunks_beyond_the_count() -> None:
    """Symbols past packet_status_count, even whole chunks, are ignored."""
    packet = RtcpTransportCc(1, 2, 0, 2, 0, 0, ((1 << 13) | 2, (1 << 13) | 5), (1, 2))
    assert packet.statuses() == [1, 1]


def test_unknown_packets_keep_their_padding() -> None:
    """A padded APP packet re-serializes byte for byte."""
    data = bytes.fromhex("a0cc 0002 00000001 00000004")
    (packet,) = parse_compound(data)
    assert packet == RtcpUnknown(RTCP_APP, 0, bytes.fromhex("00000001 00000004"), True)
    assert packet.serialize() == data


def test_padding_on_a_plain_packet_is_removed() -> None:
    """The P bit's padding is stripped from the body."""
    data = bytes.fromhex("a0c9 0002 00000001 00000004")
    assert parse_compound(data) == [RtcpReceiverReport(1)]


def test_nack_from_lost_packs_bitmasks_across_the_wrap() -> None:
    """from_lost groups 17 consecutive numbers per FCI, across 65535 -> 0."""
    lost = [65534, 65535, 0, 5, 15, 16, 40]
    nack = RtcpNack.from_lost(1, 2, lost)
    assert nack.items == ((65534, 0b1000011), (15, 1), (40, 0))
    assert nack.lost == [65534, 65535, 0, 5, 15, 16, 40]
    assert RtcpNack.from_lost(1, 2, []).items == ()


def test_twcc_build_chooses_chunk_kinds() -> None:
    """Long runs become run-length chunks; mixed 0/1 use one-bit vectors."""
    runs = RtcpTransportCc.build(1, 2, 65530, 0, 0, [None] * 20 + [1] * 3)
    assert runs.chunks == (20, (1 << 13) | 3)
    assert runs.statuses() == [TWCC_NOT_RECEIVED] * 20 + [TWCC_RECEIVED_SMALL_DELTA] * 3
    assert runs.packet_results()[-1] == (65530 + 22 - 65536, 1)
    one_bit = RtcpTransportCc.build(1, 2, 0, 0, 0, [1, None] * 7)
    assert one_bit.chunks == (0b1010101010101010,)
    mixed = RtcpTransportCc.build(1, 2, 0, 0, 0, [300] * 8 + [1])
    assert mixed.chunks == ((2 << 13) | 8, (1 << 13) | 1)
    assert mixed.statuses()[:8] == [TWCC_RECEIVED_LARGE_DELTA] * 8
    for packet in (runs, one_bit, mixed):
        assert RtcpTransportCc.parse(packet.serialize()) == packet


def test_twcc_build_rejects_huge_deltas() -> None:
    """A delta beyond a signed 16-bit value cannot be encoded."""
    message = r"^transport-cc delta 40000 does not fit 16 bits$"
    with pytest.raises(LocalProtocolError, match=message):
        RtcpTransportCc.build(1, 2, 0, 0, 0, [40000])


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (
            RtcpTransportCc(1, 2, 0, 5, 0, 0, (), ()),
            "transport-cc chunks cover 0 packets, not 5",
        ),
        (
            RtcpTransportCc(1, 2, 0, 1, 0, 0, ((1 << 13) | 1,), ()),
            "transport-cc has 0 deltas for 1 received packets",
        ),
        (
            RtcpTransportCc(1, 2, 0, 1, 0, 0, ((3 << 13) | 1,), (1,)),
            "transport-cc uses the reserved status symbol 3",
        ),
        (
            RtcpTransportCc(1, 2, 0, 0, 1 << 24, 0, (), ()),
            "transport-cc reference time or feedback count out of range",
        ),
        (ReportBlock(1, packets_lost=1 << 23), "packets_lost 8388608 is not a signed 24-bit"),
        (ReportBlock(1, fraction_lost=256), "fraction_lost 256 is not 8-bit"),
        (RtcpReceiverReport(-1), "RTCP RR ssrc -1 is not 32-bit"),
        (RtcpReceiverReport(1, extension=b"ab"), "RTCP body is 6 bytes, not a multiple of 4"),
        (
            RtcpReceiverReport(1, tuple(ReportBlock(i) for i in range(32))),
            "RTCP count 32 does not fit in 5 bits",
        ),
        (RtcpBye((1,), b"x" * 256), "RTCP BYE reason is 256 bytes, max 255"),
        (RtcpSourceDescription((SdesChunk(1, ((0, b""),)),)), "SDES item 0 of 0 bytes is invalid"),
        (RtcpRemb(1, exponent=64), "REMB exponent 64 or mantissa 0 out of range"),
        (RtcpRemb(1, ssrcs=tuple(range(256))), "REMB lists 256 SSRCs, at most 255"),
        (RtcpUnknown(256, 0, b""), "RTCP packet type 256 is not 8-bit"),
        (RtcpUnknown(204, 0, bytes(0x40000)), "RTCP packet is too long: 262144 bytes"),
    ],
)
def test_serialize_errors(packet: RtcpPacket | ReportBlock, message: str) -> None:
    """Invalid field values raise LocalProtocolError with exact messages."""
    with pytest.raises(LocalProtocolError) as info:
        packet.serialize()
    assert str(info.value) == message


@pytest.mark.parametrize(
    "packet",
    [
        RtcpSenderReport(1 << 32),
        ReportBlock(1 << 32),
        RtcpBye((1 << 32,)),
        RtcpNack(1, 2, ((1 << 16, 0),)),
        RtcpTransportCc(1 << 32, 2, 0, 0, 0, 0, (), ()),
        RtcpPli(1 << 32, 0),
        RtcpFir(1, 0, ((1, 256),)),
        RtcpRemb(1, ssrcs=(1 << 32,)),
    ],
)
def test_serialize_out_of_range_fields(packet: RtcpPacket | ReportBlock) -> None:
    """Struct range errors surface as LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=r"out of range"):
        packet.serialize()


def test_remb_from_bitrate_limits() -> None:
    """Negative and too-large bitrates are rejected; small ones use exponent 0."""
    assert RtcpRemb.from_bitrate(1, 1000, []).exponent == 0
    with pytest.raises(LocalProtocolError, match=r"^REMB bitrate -1 is negative$"):
        RtcpRemb.from_bitrate(1, -1, [])
    with pytest.raises(LocalProtocolError, match=r"is too large$"):
        RtcpRemb.from_bitrate(1, 1 << 90, [])


# Hypothesis strategies.

u32 = st.integers(0, 0xFFFFFFFF)
report_blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-0x800000, 0x7FFFFF),
    u32,
    u32,
    u32,
    u32,
)
words = st.integers(0, 3).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
sdes_items = st.lists(
    st.tuples(st.integers(1, 255), st.binary(max_size=20)).map(lambda t: (t[0], t[1])),
    max_size=4,
).map(tuple)

packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        RtcpSenderReport,
        u32,
        st.integers(0, (1 << 64) - 1),
        u32,
        u32,
        u32,
        st.lists(report_blocks, max_size=3).map(tuple),
        words,
    ),
    st.builds(RtcpReceiverReport, u32, st.lists(report_blocks, max_size=3).map(tuple), words),
    st.builds(
        RtcpSourceDescription,
        st.lists(st.builds(SdesChunk, u32, sdes_items), max_size=3).map(tuple),
    ),
    st.builds(
        RtcpBye,
        st.lists(u32, max_size=4).map(tuple),
        st.none() | st.binary(max_size=30),
    ),
    st.builds(
        RtcpNack,
        u32,
        u32,
        st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=4).map(tuple),
    ),
    st.builds(
        RtcpTransportCc.build,
        u32,
        u32,
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFF),
        st.integers(0, 255),
        st.lists(st.none() | st.integers(-0x8000, 0x7FFF) | st.integers(0, 255), max_size=60),
    ),
    st.builds(RtcpPli, u32, u32),
    st.builds(
        RtcpFir,
        u32,
        u32,
        st.lists(st.tuples(u32, st.integers(0, 255)), max_size=3).map(tuple),
    ),
    st.builds(
        RtcpRemb,
        u32,
        u32,
        st.integers(0, 63),
        st.integers(0, 0x3FFFF),
        st.lists(u32, max_size=4).map(tuple),
    ),
    st.builds(RtcpUnknown, st.sampled_from([204, 207, 210]), st.integers(0, 31), words),
)


@given(st.lists(packets, min_size=1, max_size=4))
def test_compound_round_trip(compound: list[RtcpPacket]) -> None:
    """parse(serialize(x)) == x, and re-serialization is byte-exact."""
    data = serialize_compound(compound)
    parsed = parse_compound(data)
    assert parsed == compound
    assert serialize_compound(parsed) == data


@given(st.binary(max_size=96))
def test_parse_raises_only_malformed_packet(data: bytes) -> None:
    """Arbitrary bytes parse or raise MalformedPacket, nothing else."""
    with contextlib.suppress(MalformedPacket):
        parse_compound(data)


@given(st.binary(max_size=64))
def test_parse_of_headered_garbage_raises_only_malformed_packet(body: bytes) -> None:
    """Garbage behind valid headers of each type reaches the per-type parsers."""
    body = body + bytes(-len(body) % 4)
    for first in (0x80, 0x81, 0x84, 0x8F, 0x9F, 0xA1):
        for packet_type in (200, 201, 202, 203, 205, 206):
            data = bytes((first, packet_type)) + (len(body) // 4).to_bytes(2, "big") + body
            with contextlib.suppress(MalformedPacket):
                parse_compound(data)

"""Tests for mediaserver.transport.srtp."""

from __future__ import annotations

import contextlib
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.errors import InvalidArgument, LocalProtocolError, MalformedPacket
from mediaserver.transport.srtp import (
    SRTP_AEAD_AES_128_GCM,
    SRTP_AES128_CM_SHA1_80,
    SRTP_PROFILES,
    SrtpAuthenticationFailed,
    SrtpContext,
    SrtpKeys,
    SrtpProfile,
    SrtpReplayed,
)

PROFILES = pytest.mark.parametrize("profile", SRTP_PROFILES, ids=lambda p: p.name)


def rtp_packet(seq: int, *, ssrc: int = 0x11223344, size: int = 1200) -> bytes:
    header = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 960, ssrc)
    return header + bytes((seq + i) & 0xFF for i in range(size - len(header)))


def rtcp_receiver_report(ssrc: int = 0x55667788) -> bytes:
    # RFC 3550 §6.4.2: a receiver report with no report blocks.
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def make_keys(profile: SrtpProfile) -> SrtpKeys:
    return SrtpKeys.from_keying_material(profile, os.urandom(2 * profile.master_length))


def make_pair(profile: SrtpProfile) -> tuple[SrtpContext, SrtpContext]:
    keys = make_keys(profile)
    return SrtpContext(keys, "client"), SrtpContext(keys, "server")


def test_keying_material_is_split_as_rfc_5764_section_4_2_says() -> None:
    material = bytes(range(60))
    keys = SrtpKeys.from_keying_material(SRTP_AES128_CM_SHA1_80, material)
    assert keys.client_key == material[0:16]
    assert keys.server_key == material[16:32]
    assert keys.client_salt == material[32:46]
    assert keys.server_salt == material[46:60]
    assert keys.write_master("client") == material[0:16] + material[32:46]
    assert keys.write_master("server") == material[16:32] + material[46:60]


def test_keying_material_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        SrtpKeys.from_keying_material(SRTP_AEAD_AES_128_GCM, bytes(60))


def test_keys_do_not_appear_in_repr() -> None:
    keys = SrtpKeys.from_keying_material(SRTP_AEAD_AES_128_GCM, b"\xab" * 56)
    assert "abab" not in repr(keys).lower()
    assert "\\xab" not in repr(keys)


@PROFILES
def test_rtp_round_trips_in_both_directions(profile: SrtpProfile) -> None:
    client, server = make_pair(profile)
    for seq in range(10):
        packet = rtp_packet(seq)
        protected = client.protect_rtp(packet)
        assert protected != packet
        assert server.unprotect_rtp(protected) == packet
        assert client.unprotect_rtp(server.protect_rtp(packet)) == packet
    assert server.counters.rtp_unprotected == 10
    assert client.counters.rtp_protected == 10


@PROFILES
def test_the_direct_rtp_path_gives_pylibsrtp_s_bytes(profile: SrtpProfile) -> None:
    # The per-packet calls skip pylibsrtp's wrapper; the same keys and packets through the
    # public API (the direct path switched off) must give identical bytes both ways.
    keys = make_keys(profile)
    client, server = SrtpContext(keys, "client"), SrtpContext(keys, "server")
    public_client, public_server = SrtpContext(keys, "client"), SrtpContext(keys, "server")
    public_client._protect = None
    public_server._unprotect = None
    assert client._protect is not None and server._unprotect is not None
    for seq in range(20):
        packet = rtp_packet(seq, size=100 + 50 * seq)
        protected = client.protect_rtp(packet)
        assert protected == public_client.protect_rtp(packet)
        assert server.unprotect_rtp(protected) == public_server.unprotect_rtp(protected) == packet
    # What libsrtp refuses still goes through pylibsrtp, for its error text.
    with pytest.raises(SrtpReplayed):
        server.unprotect_rtp(client.protect_rtp(rtp_packet(3)))
    with pytest.raises(MalformedPacket):
        server.unprotect_rtp(bytes(1501))
    with pytest.raises(LocalProtocolError):
        client.protect_rtp(rtp_packet(99, size=1400))


@PROFILES
def test_rtcp_round_trips_in_both_directions(profile: SrtpProfile) -> None:
    client, server = make_pair(profile)
    report = rtcp_receiver_report()
    assert server.unprotect_rtcp(client.protect_rtcp(report)) == report
    assert client.unprotect_rtcp(server.protect_rtcp(report)) == report
    assert server.counters.rtcp_unprotected == 1


@PROFILES
def test_our_own_packets_do_not_authenticate_as_the_peers(profile: SrtpProfile) -> None:
    client, _ = make_pair(profile)
    with pytest.raises(SrtpAuthenticationFailed):
        client.unprotect_rtp(client.protect_rtp(rtp_packet(1)))


@PROFILES
@pytest.mark.parametrize("position", [20, -1])
def test_a_flipped_bit_fails_authentication(profile: SrtpProfile, position: int) -> None:
    client, server = make_pair(profile)
    protected = bytearray(client.protect_rtp(rtp_packet(1)))
    protected[position] ^= 0x01
    with pytest.raises(SrtpAuthenticationFailed) as info:
        server.unprotect_rtp(bytes(protected))
    assert isinstance(info.value, MalformedPacket)
    assert server.counters.auth_failures == 1
    # The stream is not harmed: the next genuine packet goes through.
    assert server.unprotect_rtp(client.protect_rtp(rtp_packet(2))) == rtp_packet(2)


@PROFILES
def test_a_flipped_bit_in_srtcp_fails_authentication(profile: SrtpProfile) -> None:
    client, server = make_pair(profile)
    protected = bytearray(client.protect_rtcp(rtcp_receiver_report()))
    protected[9] ^= 0x80
    with pytest.raises(SrtpAuthenticationFailed):
        server.unprotect_rtcp(bytes(protected))
    assert server.counters.auth_failures == 1


@PROFILES
def test_a_replayed_packet_is_rejected(profile: SrtpProfile) -> None:
    client, server = make_pair(profile)
    protected = client.protect_rtp(rtp_packet(7))
    server.unprotect_rtp(protected)
    with pytest.raises(SrtpReplayed):
        server.unprotect_rtp(protected)
    assert server.counters.replays == 1


@PROFILES
def test_a_replayed_srtcp_packet_is_rejected(profile: SrtpProfile) -> None:
    client, server = make_pair(profile)
    protected = client.protect_rtcp(rtcp_receiver_report())
    server.unprotect_rtcp(protected)
    with pytest.raises(SrtpReplayed):
        server.unprotect_rtcp(protected)
    assert server.counters.replays == 1


def test_reordering_within_the_1024_packet_window_is_accepted() -> None:
    client, server = make_pair(SRTP_AEAD_AES_128_GCM)
    late = client.protect_rtp(rtp_packet(0))
    for seq in range(1, 1000):
        server.unprotect_rtp(client.protect_rtp(rtp_packet(seq, size=100)))
    assert server.unprotect_rtp(late) == rtp_packet(0)


def test_a_packet_older_than_the_window_is_rejected_as_a_replay() -> None:
    keys = make_keys(SRTP_AEAD_AES_128_GCM)
    client, server = SrtpContext(keys, "client"), SrtpContext(keys, "server", replay_window=64)
    late = client.protect_rtp(rtp_packet(0))
    for seq in range(1, 100):
        server.unprotect_rtp(client.protect_rtp(rtp_packet(seq, size=100)))
    with pytest.raises(SrtpReplayed):
        server.unprotect_rtp(late)


def test_protecting_the_same_packet_again_is_allowed_for_retransmission() -> None:
    client, _ = make_pair(SRTP_AES128_CM_SHA1_80)
    first = client.protect_rtp(rtp_packet(3))
    assert client.protect_rtp(rtp_packet(3)) == first


def test_protecting_the_same_sequence_number_twice_fails_without_repeat_tx() -> None:
    keys = make_keys(SRTP_AES128_CM_SHA1_80)
    client = SrtpContext(keys, "client", allow_repeat_tx=False)
    client.protect_rtp(rtp_packet(3))
    with pytest.raises(LocalProtocolError):
        client.protect_rtp(rtp_packet(3))
    assert client.counters.protect_failures == 1


@PROFILES
def test_protecting_a_packet_that_is_not_rtp_is_a_local_error(profile: SrtpProfile) -> None:
    client, _ = make_pair(profile)
    with pytest.raises(LocalProtocolError):
        client.protect_rtp(b"\x80\x60")
    with pytest.raises(LocalProtocolError):
        client.protect_rtp(rtp_packet(1, size=1400))
    with pytest.raises(LocalProtocolError):
        client.protect_rtcp(b"\x80")


@pytest.mark.parametrize("data", [b"", b"\x80", rtp_packet(1)[:12], bytes(1501)])
def test_truncated_or_oversized_packets_are_malformed(data: bytes) -> None:
    _, server = make_pair(SRTP_AES128_CM_SHA1_80)
    with pytest.raises(MalformedPacket):
        server.unprotect_rtp(data)
    with pytest.raises(MalformedPacket):
        server.unprotect_rtcp(data)


def test_the_replay_window_must_be_in_libsrtp_range() -> None:
    with pytest.raises(InvalidArgument):
        SrtpContext(make_keys(SRTP_AEAD_AES_128_GCM), "server", replay_window=32)


@PROFILES
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1600))
def test_unprotect_of_arbitrary_bytes_raises_only_malformed_packet(
    profile: SrtpProfile, data: bytes
) -> None:
    _, server = make_pair(profile)
    for unprotect in (server.unprotect_rtp, server.unprotect_rtcp):
        with contextlib.suppress(MalformedPacket):
            unprotect(data)
    counters = server.counters
    assert counters.auth_failures + counters.replays + counters.malformed == 2 - (
        counters.rtp_unprotected + counters.rtcp_unprotected
    )


@PROFILES
@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    index=st.integers(0, 1199),
    mask=st.integers(1, 255),
)
def test_any_altered_byte_of_a_genuine_packet_is_rejected(
    profile: SrtpProfile, seq: int, index: int, mask: int
) -> None:
    client, server = make_pair(profile)
    protected = bytearray(client.protect_rtp(rtp_packet(seq)))
    protected[index % len(protected)] ^= mask
    with pytest.raises(MalformedPacket):
        server.unprotect_rtp(bytes(protected))

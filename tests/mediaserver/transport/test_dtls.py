"""Tests for mediaserver.transport.dtls.

The server-role :class:`DtlsSession` is driven in memory against two client peers: the
same class in the client role (synchronous, with a fake ``now``), and aiortc's own
``RTCDtlsTransport`` (an independent driver of OpenSSL, over a fake ICE transport).
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from collections.abc import Sequence

import pytest
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
)
from hypothesis import HealthCheck, given, settings, strategies as st

from mediaserver.errors import InvalidArgument, InvalidState, MalformedPacket
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint
from mediaserver.transport.dtls import (
    DtlsClosed,
    DtlsEvent,
    DtlsSession,
    DtlsState,
    HandshakeCompleted,
    HandshakeFailed,
    is_dtls,
)
from mediaserver.transport.srtp import (
    SRTP_AEAD_AES_128_GCM,
    SRTP_AES128_CM_SHA1_80,
    SRTP_PROFILES,
    SrtpContext,
    SrtpProfile,
)

T0 = 1000.0


@pytest.fixture(scope="module")
def server_cert() -> DtlsCertificate:
    return DtlsCertificate.generate()


@pytest.fixture(scope="module")
def client_cert() -> DtlsCertificate:
    return DtlsCertificate.generate()


def make_pair(
    server_cert: DtlsCertificate,
    client_cert: DtlsCertificate,
    *,
    server_profiles: Sequence[SrtpProfile] = SRTP_PROFILES,
    client_profiles: Sequence[SrtpProfile] = SRTP_PROFILES,
    mtu: int = 1200,
) -> tuple[DtlsSession, DtlsSession]:
    client = DtlsSession(
        client_cert,
        [server_cert.fingerprint],
        role="client",
        srtp_profiles=client_profiles,
        mtu=mtu,
    )
    server = DtlsSession(
        server_cert, [client_cert.fingerprint], srtp_profiles=server_profiles, mtu=mtu
    )
    return client, server


def transfer(sender: DtlsSession, receiver: DtlsSession, now: float) -> int:
    """Deliver everything ``sender`` has to send; return the number of datagrams."""
    datagrams = sender.datagrams_to_send()
    for datagram in datagrams:
        receiver.receive_datagram(datagram, now)
    return len(datagrams)


def handshake(client: DtlsSession, server: DtlsSession, now: float = T0) -> None:
    if client.state is DtlsState.NEW:
        client.start(now)
    while transfer(client, server, now) + transfer(server, client, now):
        pass


def only_event(session: DtlsSession) -> DtlsEvent:
    events = session.events_received()
    assert len(events) == 1, events
    return events[0]


def rtp_packet(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 0xCAFE) + bytes(160)


def test_handshake_completes_and_both_ends_derive_the_same_srtp_keys(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    handshake(client, server)

    assert client.state is server.state is DtlsState.CONNECTED
    on_client, on_server = only_event(client), only_event(server)
    assert isinstance(on_client, HandshakeCompleted)
    assert isinstance(on_server, HandshakeCompleted)
    assert on_server.profile is SRTP_AEAD_AES_128_GCM
    assert on_client.keys == on_server.keys
    assert on_server.remote_fingerprint == client_cert.fingerprint
    assert on_client.remote_fingerprint == server_cert.fingerprint
    assert on_server.protocol_version == "DTLSv1.2"
    assert client.get_timer() is None and server.get_timer() is None

    client_srtp = SrtpContext(on_client.keys, client.role)
    server_srtp = SrtpContext(on_server.keys, server.role)
    assert server_srtp.unprotect_rtp(client_srtp.protect_rtp(rtp_packet(1))) == rtp_packet(1)
    assert client_srtp.unprotect_rtp(server_srtp.protect_rtp(rtp_packet(2))) == rtp_packet(2)


@pytest.mark.parametrize(
    ("client_profiles", "expected"),
    [
        ([SRTP_AES128_CM_SHA1_80], SRTP_AES128_CM_SHA1_80),
        ([SRTP_AEAD_AES_128_GCM], SRTP_AEAD_AES_128_GCM),
        ([SRTP_AES128_CM_SHA1_80, SRTP_AEAD_AES_128_GCM], SRTP_AEAD_AES_128_GCM),
    ],
)
def test_the_servers_preferred_common_profile_is_negotiated(
    server_cert: DtlsCertificate,
    client_cert: DtlsCertificate,
    client_profiles: list[SrtpProfile],
    expected: SrtpProfile,
) -> None:
    client, server = make_pair(server_cert, client_cert, client_profiles=client_profiles)
    handshake(client, server)
    event = only_event(server)
    assert isinstance(event, HandshakeCompleted)
    assert event.profile is expected
    assert len(event.keys.client_salt) == expected.salt_length


def test_without_a_common_srtp_profile_the_handshake_fails(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(
        server_cert,
        client_cert,
        server_profiles=[SRTP_AEAD_AES_128_GCM],
        client_profiles=[SRTP_AES128_CM_SHA1_80],
    )
    handshake(client, server)
    event = only_event(server)
    assert event == HandshakeFailed("no SRTP profile negotiated")
    assert server.state is DtlsState.FAILED
    assert server.counters.handshake_failures == 1
    assert client.state is not DtlsState.CONNECTED


def test_a_client_certificate_that_does_not_match_the_offer_fails_the_handshake(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client = DtlsSession(client_cert, [server_cert.fingerprint], role="client")
    server = DtlsSession(server_cert, [Fingerprint("sha-256", bytes(32))])
    handshake(client, server)

    event = only_event(server)
    assert event == HandshakeFailed("remote certificate does not match the SDP fingerprint")
    assert server.state is DtlsState.FAILED
    assert server.get_timer() is None
    # The server's alert reaches the client, which fails too instead of waiting.
    assert isinstance(only_event(client), HandshakeFailed)
    assert client.state is DtlsState.FAILED


def test_a_server_certificate_that_does_not_match_the_answer_fails_the_handshake(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client = DtlsSession(client_cert, [client_cert.fingerprint], role="client")
    server = DtlsSession(server_cert, [client_cert.fingerprint])
    handshake(client, server)
    assert only_event(client) == HandshakeFailed(
        "remote certificate does not match the SDP fingerprint"
    )
    assert isinstance(only_event(server), HandshakeFailed)


def test_the_strongest_offered_hash_function_decides(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    # RFC 8122 §5: a wrong sha-512 fingerprint is not excused by a right sha-256 one.
    wrong_sha512 = Fingerprint("sha-512", bytes(64))
    client = DtlsSession(client_cert, [server_cert.fingerprint], role="client")
    server = DtlsSession(server_cert, [client_cert.fingerprint, wrong_sha512])
    handshake(client, server)
    assert isinstance(only_event(server), HandshakeFailed)

    right_sha384 = Fingerprint.of(client_cert.certificate, "sha-384")
    client = DtlsSession(client_cert, [server_cert.fingerprint], role="client")
    server = DtlsSession(server_cert, [Fingerprint("sha-1", bytes(20)), right_sha384])
    handshake(client, server)
    assert isinstance(only_event(server), HandshakeCompleted)


def test_a_lost_server_flight_is_retransmitted_on_the_timer(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    client.start(T0)
    transfer(client, server, T0)
    lost = server.datagrams_to_send()
    assert lost
    assert server.get_timer() == T0 + 1.0

    server.handle_timer(T0 + 0.5)  # Too early: nothing happens.
    assert server.datagrams_to_send() == []

    server.handle_timer(T0 + 1.0)
    again = server.datagrams_to_send()
    assert again
    assert server.counters.retransmissions == 1
    assert server.get_timer() == T0 + 1.0 + 2.0  # RFC 6347 §4.2.4.1: the timer doubles.

    for datagram in again:
        client.receive_datagram(datagram, T0 + 1.0)
    handshake(client, server, T0 + 1.0)
    assert isinstance(only_event(client), HandshakeCompleted)
    assert isinstance(only_event(server), HandshakeCompleted)
    assert server.get_timer() is None


def test_a_lost_client_hello_is_retransmitted_on_the_timer(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    client.start(T0)
    assert client.datagrams_to_send()  # Lost.
    timer = client.get_timer()
    assert timer == T0 + 1.0
    client.handle_timer(timer)
    handshake(client, server, timer)
    assert client.state is server.state is DtlsState.CONNECTED


def test_a_lost_final_client_flight_is_recovered(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    client.start(T0)
    transfer(client, server, T0)
    transfer(server, client, T0)
    assert client.datagrams_to_send()  # The Certificate ... Finished flight is lost.
    for now in (T0 + 1.0, T0 + 3.0):
        client.handle_timer(now)
        server.handle_timer(now)
    handshake(client, server, T0 + 3.0)
    assert client.state is server.state is DtlsState.CONNECTED


def test_the_handshake_times_out_when_the_peer_goes_silent(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    client.start(T0)
    transfer(client, server, T0)
    now = T0
    while (timer := server.get_timer()) is not None:
        assert timer > now
        now = timer
        server.handle_timer(now)
        server.datagrams_to_send()
    assert now == T0 + 30.0
    assert only_event(server) == HandshakeFailed("DTLS handshake timed out")
    assert server.state is DtlsState.FAILED
    assert server.counters.retransmissions == 4  # At 1, 3, 7 and 15 s.


def test_small_mtus_split_flights_into_datagrams_of_whole_records(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert, mtu=300)
    sizes: list[int] = []

    def move(sender: DtlsSession, receiver: DtlsSession) -> int:
        datagrams = sender.datagrams_to_send()
        sizes.extend(len(d) for d in datagrams)
        for datagram in datagrams:
            receiver.receive_datagram(datagram, T0)
        return len(datagrams)

    client.start(T0)
    assert move(client, server) == 1  # ClientHello.
    assert move(server, client) > 1  # ServerHello ... ServerHelloDone is about 650 bytes.
    while move(client, server) + move(server, client):
        pass
    assert max(sizes) <= 300
    assert client.state is server.state is DtlsState.CONNECTED


def test_closing_sends_close_notify_to_the_peer(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    handshake(client, server)
    client.events_received()
    server.events_received()

    client.close()
    assert only_event(client) == DtlsClosed("closed locally")
    transfer(client, server, T0)
    assert only_event(server) == DtlsClosed("closed by peer")
    assert server.state is DtlsState.CLOSED
    client.close()  # Idempotent.
    assert client.events_received() == []

    server.receive_datagram(b"\x17\xfe\xfd" + bytes(20), T0)
    assert server.counters.dropped_datagrams == 1


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01", b"\x80" + bytes(40), b"\x16\xfe\xfd", b"\x40" + bytes(20), b"\xff"],
)
def test_datagrams_that_are_not_dtls_raise_malformed_packet(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate, data: bytes
) -> None:
    client, server = make_pair(server_cert, client_cert)
    with pytest.raises(MalformedPacket):
        server.receive_datagram(data, T0)
    assert server.counters.malformed_datagrams == 1
    assert server.counters.datagrams_received == 0
    assert server.datagrams_to_send() == []
    handshake(client, server)
    assert server.state is DtlsState.CONNECTED


def test_garbage_records_do_not_harm_an_established_session(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    handshake(client, server)
    for data in (
        b"\x17\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x10" + bytes(16),  # Bad MAC, epoch 1.
        b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05" + bytes(5),  # Old-epoch handshake junk.
        b"\x17\xfe\xfd" + bytes(8) + b"\xff\xff",  # Length beyond the datagram.
        b"\x19" + bytes(30),  # Unknown content type.
    ):
        server.receive_datagram(data, T0)
    assert server.state is DtlsState.CONNECTED
    assert [e for e in server.events_received() if not isinstance(e, HandshakeCompleted)] == []


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda b, rest: bytes([b]) + rest, st.integers(20, 63), st.binary(max_size=200)),
    )
)
def test_arbitrary_datagrams_raise_nothing_but_malformed_packet(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate, data: bytes
) -> None:
    fresh = DtlsSession(server_cert, [client_cert.fingerprint])
    client, connected = make_pair(server_cert, client_cert)
    handshake(client, connected)
    for session in (fresh, connected):
        try:
            session.receive_datagram(data, T0)
        except MalformedPacket:
            assert not is_dtls(data) or len(data) < 13
        for event in session.events_received():
            assert isinstance(event, HandshakeFailed | HandshakeCompleted | DtlsClosed)
        session.datagrams_to_send()
        session.handle_timer(T0 + 60)


def test_misuse_is_reported(server_cert: DtlsCertificate, client_cert: DtlsCertificate) -> None:
    with pytest.raises(InvalidArgument):
        DtlsSession(server_cert, [Fingerprint.parse("md5 01:02")])
    with pytest.raises(InvalidArgument):
        DtlsSession(server_cert, [client_cert.fingerprint], srtp_profiles=[])
    with pytest.raises(InvalidArgument):
        DtlsSession(server_cert, [client_cert.fingerprint], mtu=100)
    client, _ = make_pair(server_cert, client_cert)
    client.start(T0)
    with pytest.raises(InvalidState):
        client.start(T0)


def test_a_client_ignores_datagrams_before_it_starts(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, _ = make_pair(server_cert, client_cert)
    client.receive_datagram(b"\x16\xfe\xfd" + bytes(20), T0)
    assert client.counters.dropped_datagrams == 1
    assert client.state is DtlsState.NEW


# An independent client: aiortc's RTCDtlsTransport over a fake ICE transport.


class FakeIceTransport:
    """The two private methods RTCDtlsTransport uses, wired to our server session.

    Args:
        lose: indexes of the server's datagrams to drop on the way to the client.
    """

    role = "controlled"

    def __init__(
        self, server: DtlsSession, loop: asyncio.AbstractEventLoop, lose: frozenset[int]
    ) -> None:
        self.server = server
        self.loop = loop
        self.lose = lose
        self.sent = 0
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def _send(self, data: bytes) -> None:
        self.server.receive_datagram(data, self.loop.time())
        for datagram in self.server.datagrams_to_send():
            if self.sent not in self.lose:
                self.inbox.put_nowait(datagram)
            self.sent += 1

    async def _recv(self) -> bytes:
        return await self.inbox.get()


async def aiortc_client(
    server_cert: DtlsCertificate, lose: frozenset[int] = frozenset()
) -> tuple[RTCDtlsTransport, DtlsSession]:
    """Run a handshake between aiortc in the client role and our server."""
    aiortc_cert = RTCCertificate.generateCertificate()
    aiortc_fingerprints = [
        Fingerprint.parse(f"{f.algorithm} {f.value}") for f in aiortc_cert.getFingerprints()
    ]
    server = DtlsSession(server_cert, aiortc_fingerprints)
    ice = FakeIceTransport(server, asyncio.get_running_loop(), lose)
    client = RTCDtlsTransport(ice, [aiortc_cert])  # type: ignore[arg-type]
    client._set_role("client")
    answer = str(server_cert.fingerprint).split()
    await asyncio.wait_for(
        client.start(RTCDtlsParameters([RTCDtlsFingerprint(answer[0], answer[1])])), 10
    )
    return client, server


async def test_handshake_with_aiortc_as_the_client(server_cert: DtlsCertificate) -> None:
    client, server = await aiortc_client(server_cert)
    assert client.state == "connected"

    event = only_event(server)
    assert isinstance(event, HandshakeCompleted)
    assert event.profile is SRTP_AEAD_AES_128_GCM
    srtp = SrtpContext(event.keys, "server")
    # aiortc derived the same keys: each side decrypts what the other protected.
    assert srtp.unprotect_rtp(client._tx_srtp.protect(rtp_packet(5))) == rtp_packet(5)
    assert client._rx_srtp.unprotect(srtp.protect_rtp(rtp_packet(6))) == rtp_packet(6)

    # We run no data channel: application data is counted and dropped.
    await client._send_data(b"hello")
    assert server.counters.application_data_dropped == 1
    assert server.events_received() == []

    await client.stop()
    assert only_event(server) == DtlsClosed("closed by peer")


async def test_a_lost_final_server_flight_is_repeated_when_aiortc_retransmits(
    server_cert: DtlsCertificate,
) -> None:
    # Datagram 0 is ServerHello ... ServerHelloDone, datagram 1 ChangeCipherSpec and
    # Finished. Losing it leaves our server connected and the client waiting; after
    # about one second the client repeats its flight and the server answers it.
    client, server = await aiortc_client(server_cert, lose=frozenset({1}))
    assert client.state == "connected"
    assert isinstance(only_event(server), HandshakeCompleted)
    assert server.counters.datagrams_sent == 3
    await client.stop()


def test_a_dropped_session_is_freed_without_the_cycle_collector(
    server_cert: DtlsCertificate, client_cert: DtlsCertificate
) -> None:
    client, server = make_pair(server_cert, client_cert)
    handshake(client, server)
    ref = weakref.ref(server)
    del server
    assert ref() is None

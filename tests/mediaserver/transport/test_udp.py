"""The shared-port shell: bad input is dropped and counted, and never reaches another peer."""

from __future__ import annotations

from typing import Any

from mediaserver.transport.certificate import DtlsCertificate
from mediaserver.transport.ice import IceLiteAgent
from mediaserver.transport.peer import PeerTransport
from mediaserver.transport.stun import (
    BINDING,
    StunClass,
    StunMessage,
    priority_attribute,
    use_candidate_attribute,
    username_attribute,
)
from mediaserver.transport.udp import UdpMediaTransport
from tests.helpers.clock import FakeClock

ALICE = ("127.0.0.1", 50001)
MALLORY = ("127.0.0.1", 50666)


class RecordingTransport:
    """Stands in for the asyncio datagram transport: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, address: Any) -> None:
        self.sent.append((data, address))


def _setup() -> tuple[UdpMediaTransport, PeerTransport, RecordingTransport, FakeClock]:
    clock = FakeClock()
    udp = UdpMediaTransport(clock, IceLiteAgent())
    wire = RecordingTransport()
    udp.connection_made(wire)  # type: ignore[arg-type]
    cert = DtlsCertificate.generate()
    client_cert = DtlsCertificate.generate()
    peer = PeerTransport(
        "m/alice", cert, "cli1", "client-password-0123456789", [client_cert.fingerprint],
        clock.monotonic(),
    )  # fmt: skip
    udp.add_peer(peer, clock.monotonic())
    return udp, peer, wire, clock


def _check(peer: PeerTransport, password: str, nominate: bool = True) -> bytes:
    attributes = [username_attribute(f"{peer.local_ufrag}:cli1"), priority_attribute(1)]
    if nominate:
        attributes.append(use_candidate_attribute())
    message = StunMessage(BINDING, StunClass.REQUEST, b"0123456789ab", tuple(attributes))
    return message.serialize(integrity_key=password.encode(), fingerprint=True)


def test_a_valid_check_is_answered_and_selects_the_address() -> None:
    udp, peer, wire, _ = _setup()
    udp.datagram_received(_check(peer, peer.local_pwd), ALICE)
    assert len(wire.sent) == 1
    response = StunMessage.parse(wire.sent[0][0])
    assert response.message_class is StunClass.SUCCESS
    assert peer.address == ALICE


def test_bad_integrity_is_answered_401_and_selects_nothing() -> None:
    udp, peer, wire, _ = _setup()
    udp.datagram_received(_check(peer, "wrong-password"), MALLORY)
    response = StunMessage.parse(wire.sent[0][0])
    assert response.message_class is StunClass.ERROR
    assert response.error_code() is not None and response.error_code()[0] == 401  # type: ignore[index]
    assert peer.address is None
    assert udp.agent.stats.bad_integrity == 1


def test_garbage_dtls_and_rtp_from_unknown_addresses_are_counted_and_dropped() -> None:
    udp, peer, wire, _ = _setup()
    udp.datagram_received(_check(peer, peer.local_pwd), ALICE)
    wire.sent.clear()
    udp.datagram_received(b"\x16\xfe\xfd" + b"\x00" * 40, MALLORY)  # DTLS from a stranger
    udp.datagram_received(b"\x80\x6f" + b"\x00" * 30, MALLORY)  # RTP from a stranger
    udp.datagram_received(b"\xff\xff\xff", ALICE)  # no protocol starts with 255
    udp.datagram_received(b"", ALICE)
    assert wire.sent == []
    assert udp.stats.unknown_address == 2
    assert udp.stats.garbage == 2


def test_srtp_before_dtls_and_dtls_garbage_from_the_peer_are_dropped() -> None:
    udp, peer, wire, _ = _setup()
    udp.datagram_received(_check(peer, peer.local_pwd), ALICE)
    wire.sent.clear()
    udp.datagram_received(b"\x80\x6f" + b"\x01" * 40, ALICE)
    assert peer.stats.unknown_before_dtls == 1
    udp.datagram_received(b"\x17\xfe\xfd" + b"\x00" * 11 + b"garbage", ALICE)
    assert peer.srtp is None
    assert peer.dtls.counters is not None

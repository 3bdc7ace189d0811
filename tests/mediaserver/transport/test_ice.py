"""Tests for mediaserver.transport.ice: the ICE-lite agent, checked against aioice."""

from __future__ import annotations

import pytest
from aioice import stun as aioice_stun

from mediaserver.errors import InvalidArgument
from mediaserver.transport.ice import (
    IceLiteAgent,
    PeerAddressSelected,
    PeerExpired,
)
from mediaserver.transport.stun import (
    ATTR_SOFTWARE,
    ATTR_UNKNOWN_ATTRIBUTES,
    BINDING,
    Address,
    StunAttribute,
    StunClass,
    StunMessage,
    ice_controlled_attribute,
    ice_controlling_attribute,
    priority_attribute,
    use_candidate_attribute,
    username_attribute,
    verify_fingerprint,
    verify_integrity,
)

LOCAL_UFRAG = "srv1"
LOCAL_PWD = "server-password-0123456789"
REMOTE_UFRAG = "cli1"
BROWSER: Address = ("203.0.113.7", 50000)
OTHER: Address = ("198.51.100.9", 40000)
T0 = 1000.0


def browser_check(
    *,
    username: str = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}",
    password: str = LOCAL_PWD,
    nominate: bool = False,
    transaction_id: bytes = b"txn-00000001",
) -> bytes:
    """A Chrome-like Binding request, built by aioice as an independent peer."""
    attributes: dict[str, object] = {
        "USERNAME": username,
        "PRIORITY": 1853824767,
        "ICE-CONTROLLING": 0x0102030405060708,
    }
    if nominate:
        attributes["USE-CANDIDATE"] = None
    message = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
        transaction_id=transaction_id,
        attributes=attributes,
    )
    message.add_message_integrity(password.encode())
    return bytes(message)


def our_check(*attributes: StunAttribute, key: bytes | None = LOCAL_PWD.encode()) -> bytes:
    """A Binding request built with our own serializer."""
    return StunMessage(BINDING, StunClass.REQUEST, b"txn-00000002", attributes).serialize(
        integrity_key=key, fingerprint=True
    )


def make_agent() -> IceLiteAgent:
    agent = IceLiteAgent()
    agent.register_peer(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, now=T0)
    return agent


def single_response(agent: IceLiteAgent, to: Address) -> bytes:
    datagrams = agent.datagrams_to_send()
    assert len(datagrams) == 1
    data, address = datagrams[0]
    assert address == to
    assert verify_fingerprint(data)
    return data


def error_code(data: bytes) -> int:
    code = StunMessage.parse(data).error_code()
    assert code is not None
    return code[0]


def test_check_is_answered_with_an_authenticated_success_response() -> None:
    """The response carries XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and FINGERPRINT."""
    agent = make_agent()
    request = browser_check()
    agent.receive_stun(request, BROWSER, T0 + 1)
    data = single_response(agent, BROWSER)
    # Independent check with aioice.
    response = aioice_stun.parse_message(data)
    assert response.message_class == aioice_stun.Class.RESPONSE
    assert response.transaction_id == b"txn-00000001"
    assert response.check_message_integrity(LOCAL_PWD.encode())
    assert response.attributes["XOR-MAPPED-ADDRESS"] == BROWSER
    # And with our own parser.
    parsed = StunMessage.parse(data)
    assert parsed.message_class is StunClass.SUCCESS
    assert parsed.xor_mapped_address() == BROWSER
    assert verify_integrity(data, LOCAL_PWD.encode())
    assert agent.stats.checks == 1
    # A check without nomination teaches the address but selects nothing.
    assert agent.peer_for_address(BROWSER) == LOCAL_UFRAG
    assert agent.selected_address(LOCAL_UFRAG) is None
    assert agent.events_received() == []


def test_our_serializer_builds_a_check_the_agent_accepts() -> None:
    """A request from our own serializer is accepted too."""
    agent = make_agent()
    agent.receive_stun(
        our_check(
            username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"),
            priority_attribute(1),
            ice_controlling_attribute(7),
            use_candidate_attribute(),
        ),
        BROWSER,
        T0,
    )
    data = single_response(agent, BROWSER)
    assert StunMessage.parse(data).message_class is StunClass.SUCCESS
    assert agent.events_received() == [PeerAddressSelected(LOCAL_UFRAG, BROWSER)]


def test_nomination_selects_and_renomination_switches() -> None:
    """USE-CANDIDATE selects an address; a later one on another address switches."""
    agent = make_agent()
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0)
    assert agent.events_received() == [PeerAddressSelected(LOCAL_UFRAG, BROWSER)]
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0 + 1)
    assert agent.events_received() == []
    agent.receive_stun(browser_check(nominate=True), OTHER, T0 + 2)
    assert agent.events_received() == [PeerAddressSelected(LOCAL_UFRAG, OTHER)]
    assert agent.selected_address(LOCAL_UFRAG) == OTHER
    # Both validated addresses still route to the peer.
    assert agent.peer_for_address(BROWSER) == LOCAL_UFRAG
    assert agent.peer_for_address(OTHER) == LOCAL_UFRAG
    assert agent.peer_for_address(("192.0.2.1", 1)) is None
    assert len(agent.datagrams_to_send()) == 3


def test_ipv6_source_address_is_reflected() -> None:
    """XOR-MAPPED-ADDRESS works for IPv6 sources."""
    agent = make_agent()
    source: Address = ("2001:db8::1", 5000)
    agent.receive_stun(browser_check(), source, T0)
    assert StunMessage.parse(single_response(agent, source)).xor_mapped_address() == source


def test_many_peers_share_the_port() -> None:
    """Checks are routed by the ufrag before the colon."""
    agent = make_agent()
    agent.register_peer("srv2", "another-password-000000", "cli2", now=T0)
    assert len(agent) == 2
    agent.receive_stun(
        browser_check(username="srv2:cli2", password="another-password-000000", nominate=True),
        OTHER,
        T0,
    )
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0)
    assert agent.events_received() == [
        PeerAddressSelected("srv2", OTHER),
        PeerAddressSelected(LOCAL_UFRAG, BROWSER),
    ]
    assert agent.peer_for_address(OTHER) == "srv2"
    assert agent.peer_for_address(BROWSER) == LOCAL_UFRAG


def test_an_address_moving_to_another_peer_is_remapped() -> None:
    """If a 5-tuple authenticates for a second peer, it belongs to that peer now."""
    agent = make_agent()
    agent.register_peer("srv2", "another-password-000000", "cli2", now=T0)
    agent.receive_stun(browser_check(), BROWSER, T0)
    agent.receive_stun(
        browser_check(username="srv2:cli2", password="another-password-000000"), BROWSER, T0
    )
    assert agent.peer_for_address(BROWSER) == "srv2"
    agent.unregister_peer(LOCAL_UFRAG)
    assert agent.peer_for_address(BROWSER) == "srv2"


@pytest.mark.parametrize(
    ("request_data", "code", "counter"),
    [
        (browser_check(username="nobody:cli1"), 401, "unknown_username"),
        (browser_check(username=f"{LOCAL_UFRAG}:other"), 401, "unknown_username"),
        (browser_check(username=LOCAL_UFRAG), 401, "unknown_username"),
        (browser_check(password="wrong-password-00000000"), 401, "bad_integrity"),
        (our_check(StunAttribute(0x0006, b"\xff\xfe")), 401, "unknown_username"),
        (our_check(priority_attribute(1)), 400, "bad_request"),
        (
            our_check(username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"), key=None),
            400,
            "bad_request",
        ),
    ],
)
def test_unauthenticated_requests_get_errors_without_integrity(
    request_data: bytes, code: int, counter: str
) -> None:
    """RFC 5389 section 10.1.2: 400 without credentials, 401 for wrong ones."""
    agent = make_agent()
    agent.receive_stun(request_data, BROWSER, T0)
    data = single_response(agent, BROWSER)
    assert error_code(data) == code
    assert StunMessage.parse(data).message_class is StunClass.ERROR
    assert not verify_integrity(data, LOCAL_PWD.encode())
    assert getattr(agent.stats, counter) == 1
    assert agent.peer_for_address(BROWSER) is None
    assert agent.events_received() == []


def test_unknown_comprehension_required_attribute_gets_420() -> None:
    """RFC 5389 section 7.3.1: 420 lists the unknown attribute types."""
    agent = make_agent()
    agent.receive_stun(
        our_check(username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"), StunAttribute(0x0033, b"x")),
        BROWSER,
        T0,
    )
    data = single_response(agent, BROWSER)
    assert error_code(data) == 420
    assert StunMessage.parse(data).get(ATTR_UNKNOWN_ATTRIBUTES) == b"\x00\x33"
    assert verify_integrity(data, LOCAL_PWD.encode())
    assert agent.stats.unknown_attribute == 1


def test_ice_controlled_request_gets_role_conflict() -> None:
    """RFC 8445 section 7.3.1.1: the lite agent stays controlled and answers 487."""
    agent = make_agent()
    agent.receive_stun(
        our_check(
            username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"),
            ice_controlled_attribute(1),
            use_candidate_attribute(),
        ),
        BROWSER,
        T0,
    )
    data = single_response(agent, BROWSER)
    assert error_code(data) == 487
    assert verify_integrity(data, LOCAL_PWD.encode())
    assert agent.stats.role_conflict == 1
    assert agent.selected_address(LOCAL_UFRAG) is None


def test_malformed_ice_attribute_after_authentication_gets_400() -> None:
    """A PRIORITY of the wrong size is a bad request, answered with integrity."""
    agent = make_agent()
    agent.receive_stun(
        our_check(
            username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"),
            StunAttribute(0x0024, b"\x00\x01"),
        ),
        BROWSER,
        T0,
    )
    data = single_response(agent, BROWSER)
    assert error_code(data) == 400
    assert verify_integrity(data, LOCAL_PWD.encode())


def test_non_binding_request_gets_400() -> None:
    """Only Binding is served."""
    agent = make_agent()
    data = StunMessage(0x003, StunClass.REQUEST, bytes(12)).serialize(fingerprint=True)
    agent.receive_stun(data, BROWSER, T0)
    assert error_code(single_response(agent, BROWSER)) == 400


def test_garbage_and_bad_fingerprints_are_dropped_silently() -> None:
    """Non-STUN bytes and a wrong FINGERPRINT get no answer, only a counter."""
    agent = make_agent()
    agent.receive_stun(b"\x00\x01garbage", BROWSER, T0)
    tampered = bytearray(browser_check())
    tampered[-1] ^= 0xFF
    agent.receive_stun(bytes(tampered), BROWSER, T0)
    assert agent.datagrams_to_send() == []
    assert agent.stats.garbage == 2


def test_indications_and_responses_are_ignored() -> None:
    """Keepalive indications and stray responses get no answer."""
    agent = make_agent()
    for message_class in (StunClass.INDICATION, StunClass.SUCCESS, StunClass.ERROR):
        data = StunMessage(BINDING, message_class, bytes(12)).serialize(fingerprint=True)
        agent.receive_stun(data, BROWSER, T0)
    assert agent.datagrams_to_send() == []
    assert agent.stats.ignored == 3


def test_request_without_fingerprint_is_accepted() -> None:
    """FINGERPRINT is checked when present; its absence is tolerated."""
    agent = make_agent()
    data = StunMessage(
        BINDING,
        StunClass.REQUEST,
        bytes(12),
        (username_attribute(f"{LOCAL_UFRAG}:{REMOTE_UFRAG}"),),
    ).serialize(integrity_key=LOCAL_PWD.encode())
    agent.receive_stun(data, BROWSER, T0)
    assert StunMessage.parse(single_response(agent, BROWSER)).message_class is StunClass.SUCCESS


def test_software_attribute_is_added_when_configured() -> None:
    """SOFTWARE goes into every response."""
    agent = IceLiteAgent(software="carillon")
    agent.register_peer(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, now=T0)
    agent.receive_stun(browser_check(), BROWSER, T0)
    data = single_response(agent, BROWSER)
    assert StunMessage.parse(data).get(ATTR_SOFTWARE) == b"carillon"
    assert aioice_stun.parse_message(data).check_message_integrity(LOCAL_PWD.encode())


def test_consent_expires_after_30_seconds_without_checks() -> None:
    """RFC 7675: no valid check on the selected address for 30 s expires the peer."""
    agent = make_agent()
    assert agent.get_timer() == T0 + 30
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0 + 1)
    agent.events_received()
    # Consent checks every 5 s keep it alive; the timer may fire early and re-arm.
    for t in (6.0, 11.0, 16.0):
        agent.receive_stun(browser_check(), BROWSER, T0 + t)
    timer = agent.get_timer()
    assert timer == T0 + 30
    agent.handle_timer(timer)
    assert agent.events_received() == []
    assert agent.get_timer() == T0 + 46
    agent.handle_timer(T0 + 45.9)
    assert agent.events_received() == []
    assert len(agent.datagrams_to_send()) == 4
    agent.handle_timer(T0 + 46)
    assert agent.events_received() == [PeerExpired(LOCAL_UFRAG, BROWSER)]
    assert agent.stats.expired == 1
    assert agent.peer_for_address(BROWSER) is None
    assert agent.selected_address(LOCAL_UFRAG) is None
    assert agent.get_timer() is None
    assert len(agent) == 0
    # After expiry, checks are answered 401.
    agent.receive_stun(browser_check(), BROWSER, T0 + 47)
    assert error_code(single_response(agent, BROWSER)) == 401


def test_checks_on_other_addresses_do_not_refresh_selected_consent() -> None:
    """Only the selected pair's checks count once something is selected."""
    agent = make_agent()
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0)
    agent.receive_stun(browser_check(), OTHER, T0 + 20)
    agent.handle_timer(T0 + 30)
    assert agent.events_received()[-1] == PeerExpired(LOCAL_UFRAG, BROWSER)


def test_a_peer_that_never_connects_expires() -> None:
    """Registration starts the consent clock."""
    agent = IceLiteAgent(consent_timeout=10)
    agent.register_peer(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, now=T0)
    agent.handle_timer(T0 + 10)
    assert agent.events_received() == [PeerExpired(LOCAL_UFRAG, None)]


def test_unregister_forgets_the_peer_without_an_event() -> None:
    """unregister_peer is silent and idempotent; a stale timer entry is skipped."""
    agent = make_agent()
    agent.receive_stun(browser_check(nominate=True), BROWSER, T0)
    agent.events_received()
    agent.unregister_peer(LOCAL_UFRAG)
    agent.unregister_peer(LOCAL_UFRAG)
    assert agent.peer_for_address(BROWSER) is None
    timer = agent.get_timer()
    assert timer is not None
    agent.handle_timer(timer)
    assert agent.events_received() == []
    assert agent.get_timer() is None
    # The ufrag can be registered again.
    agent.register_peer(LOCAL_UFRAG, LOCAL_PWD, REMOTE_UFRAG, now=T0 + 100)
    assert len(agent) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a:b", "pwd", "c"), "local ufrag 'a:b' must be non-empty and contain no colon"),
        (("", "pwd", "c"), "local ufrag '' must be non-empty and contain no colon"),
        (("a", "pwd", "c:d"), "remote ufrag 'c:d' must be non-empty and contain no colon"),
        (("a", "", "c"), "local password must be non-empty"),
        ((LOCAL_UFRAG, "pwd", "c"), "local ufrag 'srv1' is already registered"),
    ],
)
def test_register_peer_validates(args: tuple[str, str, str], message: str) -> None:
    """Bad registrations raise InvalidArgument with exact messages."""
    agent = make_agent()
    with pytest.raises(InvalidArgument) as info:
        agent.register_peer(*args, now=T0)
    assert str(info.value) == message


def test_consent_timeout_must_be_positive() -> None:
    """A zero timeout is refused."""
    with pytest.raises(InvalidArgument, match=r"^consent_timeout must be positive, not 0$"):
        IceLiteAgent(consent_timeout=0)

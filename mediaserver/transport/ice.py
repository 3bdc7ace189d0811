"""A sans-I/O ICE-lite agent for one UDP port shared by many peers (RFC 8445 section 2.5).

Rules of this file:

* The server is always ICE-lite and always in the controlled role (RFC 8445 section
  6.1.1: "the full agent MUST take the controlling role"). It never sends checks; it
  only answers them (section 7.3) and learns peer-reflexive addresses from them.
* A peer is registered with its local ufrag, local password and remote ufrag. A check's
  USERNAME is ``<local ufrag>:<remote ufrag>`` (section 7.2.2), so the part before the
  colon finds the peer, and its MESSAGE-INTEGRITY is keyed with the local password.
* Every address that sends an authenticated check is mapped to its peer, so DTLS and
  SRTP from that 5-tuple reach the right peer even before nomination
  (:meth:`IceLiteAgent.peer_for_address`). The address in the latest check carrying
  USE-CANDIDATE is the selected one, where the server sends media.
* Consent freshness (RFC 7675 section 5.1): a peer whose selected address has not sent an
  authenticated check for ``consent_timeout`` seconds (30 by default, the RFC's value)
  expires and is removed. Before any nomination, any authenticated check counts, and
  registration itself starts the clock, so a peer that never connects expires too.
* Nothing here reads a clock or touches a socket: inputs carry ``now``; outputs are pulled
  with :meth:`IceLiteAgent.datagrams_to_send` and :meth:`IceLiteAgent.events_received`;
  the next deadline is :meth:`IceLiteAgent.get_timer`.

Addresses are ``(host, port)`` tuples; a shell receiving IPv6 4-tuples from asyncio passes
their first two items.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

from mediaserver.errors import InvalidArgument, MalformedPacket
from mediaserver.transport.stun import (
    ATTR_ERROR_CODE,
    ATTR_FINGERPRINT,
    ATTR_MAPPED_ADDRESS,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_PRIORITY,
    ATTR_UNKNOWN_ATTRIBUTES,
    ATTR_USE_CANDIDATE,
    ATTR_USERNAME,
    ATTR_XOR_MAPPED_ADDRESS,
    BINDING,
    Address,
    StunAttribute,
    StunClass,
    StunMessage,
    error_code_attribute,
    software_attribute,
    unknown_attributes_attribute,
    verify_fingerprint,
    verify_integrity,
    xor_mapped_address_attribute,
)

__all__ = [
    "DEFAULT_CONSENT_TIMEOUT",
    "IceEvent",
    "IceLiteAgent",
    "IceLiteStats",
    "PeerAddressSelected",
    "PeerExpired",
]

DEFAULT_CONSENT_TIMEOUT = 30.0
"""RFC 7675 section 5.1: consent expires 30 seconds after the last response."""

# Comprehension-required attributes we understand; any other type below 0x8000 in a
# request is answered with 420 (RFC 5389 section 7.3.1).
_KNOWN_REQUIRED = frozenset(
    {
        ATTR_MAPPED_ADDRESS,
        ATTR_USERNAME,
        ATTR_MESSAGE_INTEGRITY,
        ATTR_ERROR_CODE,
        ATTR_UNKNOWN_ATTRIBUTES,
        ATTR_XOR_MAPPED_ADDRESS,
        ATTR_PRIORITY,
        ATTR_USE_CANDIDATE,
    }
)

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    420: "Unknown Attribute",
    487: "Role Conflict",
}


@dataclass(frozen=True, slots=True)
class PeerAddressSelected:
    """A peer nominated an address (RFC 8445 section 7.3.1.5); send its media there.

    Attributes:
        peer: the peer's local ufrag, as registered.
        address: the selected remote address.
    """

    peer: str
    address: Address


@dataclass(frozen=True, slots=True)
class PeerExpired:
    """A peer's consent expired (RFC 7675 section 5.1); it has been unregistered.

    Attributes:
        peer: the peer's local ufrag, as registered.
        address: the address that was selected, or None if none was.
    """

    peer: str
    address: Address | None


IceEvent = PeerAddressSelected | PeerExpired
"""Any event :meth:`IceLiteAgent.events_received` returns."""


@dataclass(slots=True)
class IceLiteStats:
    """Counters for metrics; they only ever increase.

    Attributes:
        checks: authenticated Binding requests answered with success.
        garbage: datagrams that are not STUN or whose FINGERPRINT is wrong; dropped.
        ignored: indications and responses; dropped.
        bad_request: requests answered with 400.
        unknown_username: requests answered with 401 because no peer matches USERNAME.
        bad_integrity: requests answered with 401 because MESSAGE-INTEGRITY is wrong.
        unknown_attribute: requests answered with 420.
        role_conflict: requests answered with 487.
        expired: peers whose consent expired.
    """

    checks: int = 0
    garbage: int = 0
    ignored: int = 0
    bad_request: int = 0
    unknown_username: int = 0
    bad_integrity: int = 0
    unknown_attribute: int = 0
    role_conflict: int = 0
    expired: int = 0


class _Peer:
    __slots__ = ("addresses", "key", "last_consent", "remote_ufrag", "selected", "ufrag")

    def __init__(self, ufrag: str, key: bytes, remote_ufrag: str, now: float) -> None:
        self.ufrag = ufrag
        self.key = key
        self.remote_ufrag = remote_ufrag
        self.addresses: set[Address] = set()
        self.selected: Address | None = None
        self.last_consent = now


def _check_ufrag(name: str, value: str) -> None:
    # RFC 8839 section 5.4: ice-char is ALPHA / DIGIT / "+" / "/", so no colon.
    if not value or ":" in value:
        raise InvalidArgument(f"{name} {value!r} must be non-empty and contain no colon")


class IceLiteAgent:
    """Answers ICE connectivity checks for every peer on one UDP port.

    Args:
        consent_timeout: seconds without an authenticated check on the selected address
            after which a peer expires (RFC 7675 section 5.1).
        software: if given, a SOFTWARE attribute added to every response.
    """

    def __init__(
        self, *, consent_timeout: float = DEFAULT_CONSENT_TIMEOUT, software: str | None = None
    ) -> None:
        if consent_timeout <= 0:
            raise InvalidArgument(f"consent_timeout must be positive, not {consent_timeout}")
        self.consent_timeout = consent_timeout
        self.stats = IceLiteStats()
        self._software: tuple[StunAttribute, ...] = (
            (software_attribute(software),) if software is not None else ()
        )
        self._peers: dict[str, _Peer] = {}
        self._by_address: dict[Address, _Peer] = {}
        self._timers: list[tuple[float, int, _Peer]] = []
        self._counter = itertools.count()
        self._datagrams: list[tuple[bytes, Address]] = []
        self._events: list[IceEvent] = []

    # Peers.

    def register_peer(
        self, local_ufrag: str, local_pwd: str, remote_ufrag: str, now: float
    ) -> None:
        """Start answering checks for a peer.

        After calling this, call :meth:`get_timer`: the peer's consent deadline starts now.

        Raises:
            InvalidArgument: a ufrag is empty or holds a colon, the password is empty, or
                ``local_ufrag`` is already registered.
        """
        _check_ufrag("local ufrag", local_ufrag)
        _check_ufrag("remote ufrag", remote_ufrag)
        if not local_pwd:
            raise InvalidArgument("local password must be non-empty")
        if local_ufrag in self._peers:
            raise InvalidArgument(f"local ufrag {local_ufrag!r} is already registered")
        peer = _Peer(local_ufrag, local_pwd.encode("utf-8"), remote_ufrag, now)
        self._peers[local_ufrag] = peer
        heapq.heappush(self._timers, (now + self.consent_timeout, next(self._counter), peer))

    def unregister_peer(self, local_ufrag: str) -> None:
        """Forget a peer and its addresses, without an event. Unknown ufrags are ignored."""
        peer = self._peers.pop(local_ufrag, None)
        if peer is not None:
            self._forget_addresses(peer)

    def peer_for_address(self, address: Address) -> str | None:
        """Return the local ufrag of the peer that sent authenticated checks from
        ``address``, or None. Use it to route DTLS and SRTP datagrams."""
        peer = self._by_address.get(address)
        return peer.ufrag if peer is not None else None

    def selected_address(self, local_ufrag: str) -> Address | None:
        """Return the address a peer nominated, or None before nomination."""
        peer = self._peers.get(local_ufrag)
        return peer.selected if peer is not None else None

    def __len__(self) -> int:
        """Return the number of registered peers."""
        return len(self._peers)

    # Input.

    def receive_stun(self, data: bytes, address: Address, now: float) -> None:
        """Handle a datagram classified as STUN, received from ``address``.

        After calling this, call :meth:`datagrams_to_send` (a response may be ready),
        :meth:`events_received` and :meth:`get_timer`.
        """
        try:
            message = StunMessage.parse(data)
        except MalformedPacket:
            self.stats.garbage += 1
            return
        # RFC 5389 section 7.3: a wrong FINGERPRINT means this is not STUN; discard.
        if message.has(ATTR_FINGERPRINT) and not verify_fingerprint(data):
            self.stats.garbage += 1
            return
        if message.message_class is not StunClass.REQUEST:
            # An ICE-lite agent sends no requests, so responses are stray, and Binding
            # indications are keepalives that need no answer (RFC 8445 section 11).
            self.stats.ignored += 1
            return
        if message.method != BINDING:
            self.stats.bad_request += 1
            self._error(message, address, 400)
            return
        # RFC 5389 section 10.1.2: without both USERNAME and MESSAGE-INTEGRITY, 400.
        if not message.has(ATTR_USERNAME) or not message.has(ATTR_MESSAGE_INTEGRITY):
            self.stats.bad_request += 1
            self._error(message, address, 400)
            return
        try:
            username = message.username()
        except MalformedPacket:
            username = None
        local, _, remote = (username or "").partition(":")
        peer = self._peers.get(local)
        # RFC 5389 section 10.1.2: an unknown username gets 401, without integrity
        # since there is no key to compute it with.
        if peer is None or remote != peer.remote_ufrag:
            self.stats.unknown_username += 1
            self._error(message, address, 401)
            return
        if not verify_integrity(data, peer.key):
            self.stats.bad_integrity += 1
            self._error(message, address, 401)
            return
        # RFC 5389 section 7.3.1: once authenticated, unknown comprehension-required
        # attributes get 420 with UNKNOWN-ATTRIBUTES.
        unknown = [
            a.type for a in message.attributes if a.type < 0x8000 and a.type not in _KNOWN_REQUIRED
        ]
        if unknown:
            self.stats.unknown_attribute += 1
            self._error(message, address, 420, peer.key, unknown_attributes_attribute(unknown))
            return
        try:
            controlled = message.ice_controlled()
            message.ice_controlling()
            message.priority()
        except MalformedPacket:
            self.stats.bad_request += 1
            self._error(message, address, 400, peer.key)
            return
        if controlled is not None:
            # RFC 8445 section 7.3.1.1: both sides claim the controlled role. A lite
            # agent cannot become controlling, so it keeps its role and answers 487.
            self.stats.role_conflict += 1
            self._error(message, address, 487, peer.key)
            return
        self.stats.checks += 1
        self._learn(peer, address, message.use_candidate(), now)
        # RFC 8445 section 7.3.1.2 / RFC 5389 section 7.3.1.1: the success response
        # carries the source address as XOR-MAPPED-ADDRESS.
        self._send(
            message,
            address,
            StunClass.SUCCESS,
            (xor_mapped_address_attribute(address, message.transaction_id),),
            peer.key,
        )

    def _learn(self, peer: _Peer, address: Address, nominated: bool, now: float) -> None:
        if address not in peer.addresses:
            # RFC 8445 section 7.3.1.3: the source of a valid check is a peer-reflexive
            # candidate when it is not known yet; lite agents learn it the same way.
            previous = self._by_address.get(address)
            if previous is not None and previous is not peer:
                previous.addresses.discard(address)
            peer.addresses.add(address)
            self._by_address[address] = peer
        if nominated and address != peer.selected:
            # RFC 8445 section 7.3.1.5: a nominated pair is selected; a later
            # nomination of another pair replaces it.
            peer.selected = address
            peer.last_consent = now
            self._events.append(PeerAddressSelected(peer.ufrag, address))
        elif peer.selected is None or address == peer.selected:
            peer.last_consent = now

    def _error(
        self,
        request: StunMessage,
        address: Address,
        code: int,
        key: bytes | None = None,
        *extra: StunAttribute,
    ) -> None:
        attributes = (error_code_attribute(code, _REASONS[code]), *extra)
        self._send(request, address, StunClass.ERROR, attributes, key)

    def _send(
        self,
        request: StunMessage,
        address: Address,
        message_class: StunClass,
        attributes: tuple[StunAttribute, ...],
        key: bytes | None = None,
    ) -> None:
        response = StunMessage(
            request.method, message_class, request.transaction_id, attributes + self._software
        )
        # RFC 8445 section 7.3: responses carry FINGERPRINT; MESSAGE-INTEGRITY only when
        # the request was authenticated (RFC 5389 section 10.1.2).
        self._datagrams.append((response.serialize(integrity_key=key, fingerprint=True), address))

    # Output.

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Return and clear the ``(datagram, address)`` pairs to send."""
        datagrams = self._datagrams
        self._datagrams = []
        return datagrams

    def events_received(self) -> list[IceEvent]:
        """Return and clear the events since the last call."""
        events = self._events
        self._events = []
        return events

    # Timers.

    def get_timer(self) -> float | None:
        """Return the next time :meth:`handle_timer` must run, or None.

        The value may be early (a peer refreshed its consent since); then
        :meth:`handle_timer` only re-arms.
        """
        return self._timers[0][0] if self._timers else None

    def handle_timer(self, now: float) -> None:
        """Expire peers whose consent is older than ``consent_timeout``.

        After calling this, call :meth:`events_received` and :meth:`get_timer`.
        """
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, peer = heapq.heappop(timers)
            if self._peers.get(peer.ufrag) is not peer:
                continue
            deadline = peer.last_consent + self.consent_timeout
            if deadline <= now:
                del self._peers[peer.ufrag]
                self._forget_addresses(peer)
                self.stats.expired += 1
                self._events.append(PeerExpired(peer.ufrag, peer.selected))
            else:
                heapq.heappush(timers, (deadline, next(self._counter), peer))

    def _forget_addresses(self, peer: _Peer) -> None:
        # _learn() keeps each address in exactly one peer's set, so these are all ours.
        for address in peer.addresses:
            del self._by_address[address]
        peer.addresses.clear()

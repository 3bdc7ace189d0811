"""DTLS-SRTP handshake for one peer connection, as a sans-I/O core over pyOpenSSL.

The UDP shell demultiplexes datagrams per peer (by 5-tuple) and by first byte (RFC 7983:
20 to 63 is DTLS) and feeds the DTLS ones to :meth:`DtlsSession.receive_datagram`. The
session never touches a socket or a clock: it takes ``now`` (monotonic seconds), returns
datagrams from :meth:`DtlsSession.datagrams_to_send`, reports what happened through
:meth:`DtlsSession.events_received`, and asks to be woken up through
:meth:`DtlsSession.get_timer` / :meth:`DtlsSession.handle_timer`.

Rules of this file:

* OpenSSL runs on memory BIOs. Its output is a byte stream of DTLS records; we cut it
  into datagrams of whole records no larger than the MTU (RFC 6347 §4.1.1: a record must
  not span datagrams, several records may share one).
* The only exception that peer input can raise is :class:`MalformedPacket`, for a datagram
  that is not a DTLS record at all. Anything OpenSSL rejects ends as a
  :class:`HandshakeFailed` or :class:`DtlsClosed` event. Every rejection is counted in
  :class:`DtlsCounters`.
* Retransmission time is ours, not OpenSSL's. OpenSSL's DTLS timer reads the real clock,
  which a sans-I/O core must not depend on. OpenSSL still tells us *whether* a flight is
  waiting for an answer (``DTLSv1_get_timeout() is not None``); we decide *when*, with
  the RFC 6347 §4.2.4 timer: 1 s initially, doubled after each retransmission up to 60 s.
  When it fires we let OpenSSL retransmit (``DTLSv1_handle_timeout``, which gives the
  records fresh sequence numbers), waiting up to 0.25 s once for OpenSSL's own timer
  if it is about to expire. If OpenSSL's timer is further away (``now`` is not the real
  clock, as in tests), we resend the last flight as it was. For the server role that is
  enough: a client that lost our flight processes the resend, and a client that got it
  drops it as a replay and retransmits its own flight on its own timer (RFC 6347
  §4.2.4), which OpenSSL answers. For the client role, a byte-identical resend of the
  final flight does not make the server repeat a lost last flight; the next
  retransmission, once OpenSSL's real-time timer has expired, does.
* The remote certificate is checked against the SDP fingerprints inside the handshake
  (the verify callback), so that a mismatch aborts it with an alert, and checked again
  after it completes.

No cookie exchange (HelloVerifyRequest) is done: the shell only passes DTLS datagrams
from a 5-tuple that ICE has already validated, which is the address check cookies exist
for (RFC 6347 §4.2.1).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from OpenSSL import SSL, crypto

from mediaserver.errors import InvalidArgument, InvalidState, MalformedPacket
from mediaserver.transport.certificate import (
    FINGERPRINT_ALGORITHMS,
    DtlsCertificate,
    Fingerprint,
)
from mediaserver.transport.srtp import SRTP_PROFILES, DtlsRole, SrtpKeys, SrtpProfile

__all__ = [
    "DtlsClosed",
    "DtlsCounters",
    "DtlsEvent",
    "DtlsRole",
    "DtlsSession",
    "DtlsState",
    "HandshakeCompleted",
    "HandshakeFailed",
    "is_dtls",
]

logger = logging.getLogger(__name__)

#: RFC 5764 §4.2: the exporter label for SRTP keys.
SRTP_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"

_DTLS1_2_VERSION = 0xFEFD
_RECORD_HEADER_LENGTH = 13
_READ_SIZE = 65536
#: How long a retransmission may wait for OpenSSL's own timer (see handle_timer).
_OPENSSL_GRACE = 0.25


def is_dtls(data: bytes) -> bool:
    """Whether a datagram's first byte is in the DTLS range of RFC 7983 §7 (20 to 63)."""
    return bool(data) and 19 < data[0] < 64


class DtlsState(enum.Enum):
    """Where a :class:`DtlsSession` is in its life."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


class DtlsEvent:
    """Base class of the events a :class:`DtlsSession` reports."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(DtlsEvent):
    """The handshake finished, the peer's certificate matched, and SRTP is keyed.

    Attributes:
        profile: the SRTP protection profile negotiated with ``use_srtp``.
        keys: the SRTP master keys and salts (RFC 5764 §4.2); build a
            :class:`~mediaserver.transport.srtp.SrtpContext` from them.
        remote_fingerprint: the SHA-256 fingerprint of the peer's certificate.
        protocol_version: for example ``"DTLSv1.2"``.
        cipher: the DTLS cipher suite, for example ``"ECDHE-ECDSA-AES128-GCM-SHA256"``.
    """

    profile: SrtpProfile
    keys: SrtpKeys
    remote_fingerprint: Fingerprint
    protocol_version: str
    cipher: str


@dataclass(frozen=True, slots=True)
class HandshakeFailed(DtlsEvent):
    """The handshake failed; the session is now :attr:`DtlsState.FAILED`.

    Attributes:
        reason: a sentence for logs (fingerprint mismatch, timeout, OpenSSL error, ...).
    """

    reason: str


@dataclass(frozen=True, slots=True)
class DtlsClosed(DtlsEvent):
    """An established session ended.

    Attributes:
        reason: ``"closed by peer"`` (close_notify), ``"closed locally"``, or the error.
    """

    reason: str


@dataclass(slots=True)
class DtlsCounters:
    """Counters of one :class:`DtlsSession` (monotonic; read them for metrics)."""

    datagrams_received: int = 0
    datagrams_sent: int = 0
    #: Datagrams that were not DTLS at all (they raised :class:`MalformedPacket`).
    malformed_datagrams: int = 0
    #: Datagrams ignored because the session was not running (new client, failed, closed).
    dropped_datagrams: int = 0
    #: Application data records received; we run no data channel, so they are dropped.
    application_data_dropped: int = 0
    #: Timer-driven flight retransmissions.
    retransmissions: int = 0
    #: Handshakes that failed (0 or 1 per session).
    handshake_failures: int = 0


class DtlsSession:
    """One DTLS-SRTP association with one peer (sans-I/O).

    Usage by the shell: for a ``setup:passive`` answer create the session with
    ``role="server"`` and feed it datagrams; after every call to :meth:`start`,
    :meth:`receive_datagram`, :meth:`handle_timer` or :meth:`close`, send
    :meth:`datagrams_to_send`, dispatch :meth:`events_received` and re-arm one timer at
    :meth:`get_timer`.

    Args:
        certificate: the process-wide certificate.
        remote_fingerprints: the ``a=fingerprint`` values of the peer's SDP. At least
            one must use a hash function we support. Following RFC 8122 §5, the
            certificate must match one of the fingerprints of the strongest supported
            hash function present.
        role: ``"server"`` for the passive role (the Chime answer), ``"client"`` for the
            active one.
        srtp_profiles: the profiles to negotiate, most preferred first. As the server,
            our preference wins.
        mtu: the largest datagram to produce (UDP payload bytes).
        initial_retransmit_timeout: the first retransmission timer, in seconds.
        max_retransmit_timeout: the cap of the doubling timer, in seconds.
        handshake_timeout: how long the handshake may take from its first datagram
            before it fails, in seconds.

    Raises:
        InvalidArgument: no usable fingerprint, no SRTP profile, or a bad number.
    """

    def __init__(
        self,
        certificate: DtlsCertificate,
        remote_fingerprints: Sequence[Fingerprint],
        *,
        role: DtlsRole = "server",
        srtp_profiles: Sequence[SrtpProfile] = SRTP_PROFILES,
        mtu: int = 1200,
        initial_retransmit_timeout: float = 1.0,
        max_retransmit_timeout: float = 60.0,
        handshake_timeout: float = 30.0,
    ) -> None:
        supported = [f for f in remote_fingerprints if f.supported]
        if not supported:
            raise InvalidArgument("the peer offered no fingerprint with a supported hash")
        strongest = max(supported, key=lambda f: list(FINGERPRINT_ALGORITHMS).index(f.algorithm))
        self._fingerprints = tuple(f for f in supported if f.algorithm == strongest.algorithm)
        if not srtp_profiles:
            raise InvalidArgument("at least one SRTP profile is needed")
        if mtu < 256 or initial_retransmit_timeout <= 0 or handshake_timeout <= 0:
            raise InvalidArgument("mtu must be at least 256, and timeouts positive")
        if role not in ("client", "server"):
            raise InvalidArgument(f"unknown DTLS role {role!r}")

        self.role: DtlsRole = role
        self.counters = DtlsCounters()
        self._profiles = tuple(srtp_profiles)
        self._mtu = mtu
        self._initial_rto = initial_retransmit_timeout
        self._max_rto = max(max_retransmit_timeout, initial_retransmit_timeout)
        self._handshake_timeout = handshake_timeout

        self._state = DtlsState.NEW
        self._events: list[DtlsEvent] = []
        self._outgoing: list[bytes] = []
        self._last_flight: list[bytes] = []
        self._handshake_deadline: float | None = None
        self._retransmit_at: float | None = None
        self._rto = initial_retransmit_timeout
        self._deferred = False
        self._verify_failure: str | None = None

        self._ssl = SSL.Connection(_ssl_context(certificate, self._profiles), None)
        self._ssl.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_callback(weakref.ref(self))
        )
        self._ssl.set_ciphertext_mtu(mtu)
        if role == "server":
            self._ssl.set_accept_state()
        else:
            self._ssl.set_connect_state()

    # Public API.

    @property
    def state(self) -> DtlsState:
        """The current :class:`DtlsState`."""
        return self._state

    def start(self, now: float) -> None:
        """Start the handshake: as the client, send the ClientHello.

        As the server this is optional (the first datagram starts the handshake); it
        starts the handshake timeout early.

        After calling this, call :meth:`datagrams_to_send` and :meth:`get_timer`.

        Raises:
            InvalidState: the session was already started.
        """
        if self._state is not DtlsState.NEW:
            raise InvalidState(f"cannot start a DTLS session that is {self._state.value}")
        self._state = DtlsState.CONNECTING
        self._handshake_deadline = now + self._handshake_timeout
        if self.role == "client":
            self._drive_handshake(now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Handle one UDP datagram carrying DTLS records.

        After calling this, call :meth:`datagrams_to_send`, :meth:`events_received` and
        :meth:`get_timer`.

        Raises:
            MalformedPacket: the datagram is not DTLS (first byte outside 20 to 63, or
                shorter than a record header). It is counted, and the session is
                unchanged.
        """
        if not data or not 19 < data[0] < 64 or (data[0] < 26 and len(data) < 13):
            self.counters.malformed_datagrams += 1
            raise MalformedPacket("not a DTLS record")
        self.counters.datagrams_received += 1
        state = self._state
        if state is DtlsState.NEW and self.role == "server":
            self.start(now)
            state = self._state
        if state is DtlsState.CONNECTING:
            self._ssl.bio_write(data)
            self._drive_handshake(now)
        elif state is DtlsState.CONNECTED:
            self._ssl.bio_write(data)
            self._read_records()
        else:
            self.counters.dropped_datagrams += 1

    def datagrams_to_send(self) -> list[bytes]:
        """Return, and forget, the datagrams to send to the peer, in order."""
        datagrams, self._outgoing = self._outgoing, []
        self.counters.datagrams_sent += len(datagrams)
        return datagrams

    def events_received(self) -> list[DtlsEvent]:
        """Return, and forget, the events that happened since the last call."""
        events, self._events = self._events, []
        return events

    def get_timer(self) -> float | None:
        """The time at which :meth:`handle_timer` must be called, or None for no timer."""
        if self._state is not DtlsState.CONNECTING:
            return None
        deadline = self._handshake_deadline
        retransmit_at = self._retransmit_at
        if retransmit_at is None:
            return deadline
        if deadline is None:
            return retransmit_at
        return min(deadline, retransmit_at)

    def handle_timer(self, now: float) -> None:
        """Retransmit the last flight, or fail the handshake, if their time has come.

        Calling it early, late or more than once is harmless.

        After calling this, call :meth:`datagrams_to_send`, :meth:`events_received` and
        :meth:`get_timer`.
        """
        if self._state is not DtlsState.CONNECTING:
            return
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            self._fail_handshake("DTLS handshake timed out")
            return
        if self._retransmit_at is None or now < self._retransmit_at:
            return
        remaining = self._ssl.DTLSv1_get_timeout()
        if remaining is not None and 0 < remaining <= _OPENSSL_GRACE and not self._deferred:
            # OpenSSL's real-time timer is about to expire: wait for it once, so that
            # OpenSSL retransmits with fresh record sequence numbers.
            self._deferred = True
            self._retransmit_at = now + remaining
            return
        self._deferred = False
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._collect_output()
            self._fail_handshake(f"DTLS retransmission failed: {_describe(exc)}")
            return
        flight = self._collect_output()
        if flight:
            self._last_flight = flight
        else:
            self._outgoing.extend(self._last_flight)
        self.counters.retransmissions += 1
        self._rto = min(self._rto * 2, self._max_rto)
        self._retransmit_at = now + self._rto
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("DTLS %s retransmitted, next timer in %.1f s", self.role, self._rto)

    def close(self) -> None:
        """Send close_notify if the handshake started, and end the session.

        Idempotent. After calling this, call :meth:`datagrams_to_send` and
        :meth:`events_received`.
        """
        if self._state in (DtlsState.CLOSED, DtlsState.FAILED):
            return
        if self._state is not DtlsState.NEW:
            self._shutdown()
            self._collect_output()
        was_connected = self._state is DtlsState.CONNECTED
        self._state = DtlsState.CLOSED
        self._clear_timers()
        if was_connected:
            self._events.append(DtlsClosed("closed locally"))

    # Handshake.

    def _drive_handshake(self, now: float) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            self._collect_output()
            self._fail_handshake(self._verify_failure or f"DTLS handshake failed: {_describe(exc)}")
            return
        else:
            self._collect_output()
            self._complete_handshake()
            return

        flight = self._collect_output()
        if flight:
            self._last_flight = flight
            self._rto = self._initial_rto
        if self._ssl.DTLSv1_get_timeout() is None:
            self._retransmit_at = None
        elif flight:
            self._retransmit_at = now + self._rto

    def _complete_handshake(self) -> None:
        ssl = self._ssl
        peer = ssl.get_peer_certificate(as_cryptography=True)
        if peer is None or not self._fingerprint_matches(peer):
            self._abort("remote certificate does not match the SDP fingerprint")
            return
        name = ssl.get_selected_srtp_profile()
        profile = next((p for p in self._profiles if p.openssl_name == name), None)
        if profile is None:
            self._abort("no SRTP profile negotiated")
            return
        try:
            material = ssl.export_keying_material(SRTP_EXPORTER_LABEL, 2 * profile.master_length)
        except SSL.Error as exc:
            self._abort(f"SRTP key export failed: {_describe(exc)}")
            return
        self._state = DtlsState.CONNECTED
        self._clear_timers()
        self._last_flight = []
        event = HandshakeCompleted(
            profile=profile,
            keys=SrtpKeys.from_keying_material(profile, material),
            remote_fingerprint=Fingerprint.of(peer, "sha-256"),
            protocol_version=ssl.get_protocol_version_name(),
            cipher=ssl.get_cipher_name() or "",
        )
        self._events.append(event)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("DTLS %s connected with %s", self.role, profile.name)
        # Records that came in the same datagram as the last handshake message.
        self._read_records()

    def _abort(self, reason: str) -> None:
        self._shutdown()
        self._collect_output()
        self._fail_handshake(reason)

    def _shutdown(self) -> None:
        # Queues a close_notify alert; it fails harmlessly if the handshake never began.
        with contextlib.suppress(SSL.Error):
            self._ssl.shutdown()

    def _fail_handshake(self, reason: str) -> None:
        self._state = DtlsState.FAILED
        self._clear_timers()
        self.counters.handshake_failures += 1
        self._events.append(HandshakeFailed(reason))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("DTLS %s handshake failed: %s", self.role, reason)

    def _verify(self, cert: crypto.X509, depth: int) -> bool:
        # Self-signed certificates fail OpenSSL's own chain check; the only check that
        # matters in WebRTC is the fingerprint of the leaf (RFC 8122 §5).
        if depth != 0:
            return True
        try:
            matches = self._fingerprint_matches(cert.to_cryptography())
        except Exception:  # The callback must never raise into OpenSSL.
            matches = False
        if not matches:
            self._verify_failure = "remote certificate does not match the SDP fingerprint"
        return matches

    def _fingerprint_matches(self, certificate: x509.Certificate) -> bool:
        return any(f.matches(certificate) for f in self._fingerprints)

    # Established session.

    def _read_records(self) -> None:
        while True:
            try:
                data = self._ssl.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._end(DtlsState.CLOSED, "closed by peer")
                break
            except SSL.Error as exc:
                self._end(DtlsState.FAILED, f"DTLS error: {_describe(exc)}")
                break
            if data:
                self.counters.application_data_dropped += 1
        # Answers to a retransmitted final flight of the peer (RFC 6347 §4.2.4).
        self._collect_output()

    def _end(self, state: DtlsState, reason: str) -> None:
        if state is DtlsState.CLOSED:
            self._shutdown()
        self._state = state
        self._clear_timers()
        self._events.append(DtlsClosed(reason))

    # Output.

    def _collect_output(self) -> list[bytes]:
        """Move what OpenSSL wrote into datagrams to send; return those datagrams."""
        chunks: list[bytes] = []
        while True:
            try:
                chunks.append(self._ssl.bio_read(_READ_SIZE))
            except SSL.WantReadError:
                break
        if not chunks:
            return []
        datagrams = _pack_records(b"".join(chunks), self._mtu)
        self._outgoing.extend(datagrams)
        return datagrams

    def _clear_timers(self) -> None:
        self._handshake_deadline = None
        self._retransmit_at = None

    def __repr__(self) -> str:
        return f"DtlsSession(role={self.role}, state={self._state.value})"


def _pack_records(data: bytes, mtu: int) -> list[bytes]:
    """Cut a stream of DTLS 1.2 records into datagrams of whole records (RFC 6347 §4.1.1).

    Each datagram holds as many whole records as fit in ``mtu`` bytes; a record larger
    than ``mtu`` travels alone. Bytes that do not parse as records (which OpenSSL never
    writes) go out as they are, in one last datagram.
    """
    datagrams: list[bytes] = []
    start = position = 0
    size = len(data)
    while size - position >= _RECORD_HEADER_LENGTH:
        end = position + _RECORD_HEADER_LENGTH + int.from_bytes(data[position + 11 : position + 13])
        if end > size:
            break
        if end - start > mtu and position > start:
            datagrams.append(data[start:position])
            start = position
        position = end
    if start < size:
        datagrams.append(data[start:])
    return datagrams


def _describe(exc: SSL.Error) -> str:
    """A short text for an OpenSSL error (its reason strings)."""
    reasons = [
        str(item[2])
        for item in (exc.args[0] if exc.args and isinstance(exc.args[0], list) else [])
        if isinstance(item, tuple) and len(item) == 3
    ]
    return ", ".join(reasons) or str(exc) or type(exc).__name__


# Contexts are shared by every session using the same certificate and profiles: building
# one loads the key and certificate, which is slower than creating a connection.
_contexts: weakref.WeakKeyDictionary[DtlsCertificate, dict[tuple[SrtpProfile, ...], SSL.Context]]
_contexts = weakref.WeakKeyDictionary()


def _verify_callback(
    session_ref: weakref.ref[DtlsSession],
) -> Callable[[SSL.Connection, crypto.X509, int, int, int], bool]:
    # A weak reference, so that the session and its connection form no reference cycle
    # and are freed as soon as the shell drops the session.
    def verify(
        connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        session = session_ref()
        return session is not None and session._verify(cert, depth)

    return verify


def _reject_by_default(
    connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    # Every session installs its own fingerprint check; without one, fail closed.
    return False


def _ssl_context(certificate: DtlsCertificate, profiles: tuple[SrtpProfile, ...]) -> SSL.Context:
    by_profiles = _contexts.setdefault(certificate, {})
    context = by_profiles.get(profiles)
    if context is None:
        context = SSL.Context(SSL.DTLS_METHOD)
        # RFC 8996 deprecates DTLS 1.0; every browser speaks DTLS 1.2.
        context.set_min_proto_version(_DTLS1_2_VERSION)
        # No tickets and no session cache: a resumed session would skip the certificate,
        # hence the fingerprint check. No renegotiation. The MTU is ours, not a BIO query.
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_QUERY_MTU)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _reject_by_default)
        context.use_certificate(certificate.certificate)
        context.use_privatekey(certificate.private_key)
        context.check_privatekey()
        context.set_tlsext_use_srtp(b":".join(p.openssl_name for p in profiles))
        by_profiles[profiles] = context
    return context

"""SRTP and SRTCP protection for one peer connection, keyed by DTLS-SRTP.

Rules of this file:

* One :class:`SrtpContext` per peer connection, holding two pylibsrtp sessions: an
  inbound one (``SSRC_ANY_INBOUND``: any SSRC the peer sends, each one getting its own
  replay window once a first packet authenticates) and an outbound one
  (``SSRC_ANY_OUTBOUND``: any SSRC we send).
* Everything the peer can make fail on unprotect raises :class:`MalformedPacket`, or one
  of its two subclasses here, and is counted in :class:`SrtpCounters`. Nothing else is
  raised for any ``bytes`` input.
* A failure to protect our own packet is our bug, not the peer's: it raises
  :class:`LocalProtocolError`.

Decisions:

* Outbound ``allow_repeat_tx`` is on, as in libwebrtc: the SFU may resend a packet it
  already sent (a NACK answered without RTX). **Contract for callers:** a repeated
  (SSRC, sequence number) must carry byte-identical content, otherwise AES counter mode
  reuses its key stream. Rewriting sequence numbers per consumer (the munger) keeps this
  true.
* The inbound replay window is 1024 packets, as in libwebrtc, instead of libsrtp's 128, so
  that late video packets are not rejected as too old.
* **Per-packet calls skip pylibsrtp's wrapper** when they can (:class:`_DirectRtp`): RTP
  protect and unprotect call libsrtp on the session's own buffer with a preallocated
  length cell, about 0.6-0.8 µs less per packet than ``Session.protect`` (which
  allocates a cell and re-checks types per call), a third of the per-packet cost. Any
  failure, and every SRTCP call, goes through pylibsrtp's public API, so errors read
  the same; without pylibsrtp 1.0's internals the public API is used throughout.
* Profiles are ordered by preference: AEAD_AES_128_GCM first because it is about 27 %
  cheaper per 1200-byte packet (``anchors-and-performance.md`` §9.3c) and authenticates
  with a 16-byte tag, then AES_CM_128_HMAC_SHA1_80 which every browser offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pylibsrtp

try:  # pylibsrtp 1.0's cffi binding, for _DirectRtp
    from pylibsrtp import _binding as _pylibsrtp_binding
except ImportError:  # pragma: no cover - another pylibsrtp layout
    _pylibsrtp_binding = None

from mediaserver.errors import InvalidArgument, LocalProtocolError, MalformedPacket

__all__ = [
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AES128_CM_SHA1_80",
    "SRTP_PROFILES",
    "DtlsRole",
    "SrtpAuthenticationFailed",
    "SrtpContext",
    "SrtpCounters",
    "SrtpKeys",
    "SrtpProfile",
    "SrtpReplayed",
]

#: The DTLS role of one end; RFC 5764 §4.2 names the SRTP keys after it.
DtlsRole = Literal["client", "server"]

_MAX_RTP_TRAILER = 16 + 128
"""pylibsrtp's room kept for the SRTP trailer (tag and MKI) when protecting RTP."""

#: libsrtp's error strings, as pylibsrtp reports them, for the two failures we tell apart.
_AUTH_ERRORS = frozenset({"authentication failure"})
_REPLAY_ERRORS = frozenset(
    {
        "replay check failed (bad index)",
        "replay check failed (index too old)",
        "packet index is too old to consider",
    }
)


class SrtpAuthenticationFailed(MalformedPacket):
    """An SRTP or SRTCP packet failed authentication (wrong key, or altered in transit).

    Proposed for ``mediaserver/errors.py`` under ``MalformedPacket``.
    """


class SrtpReplayed(MalformedPacket):
    """An SRTP or SRTCP packet was already received, or is older than the replay window.

    Proposed for ``mediaserver/errors.py`` under ``MalformedPacket``.
    """


@dataclass(frozen=True, slots=True)
class SrtpProfile:
    """An SRTP protection profile negotiated by the DTLS ``use_srtp`` extension.

    Attributes:
        name: the IANA name (RFC 5764 §4.1.2, RFC 7714 §14.2).
        openssl_name: the name OpenSSL uses in ``SSL_CTX_set_tlsext_use_srtp``.
        key_length: the master key length in bytes.
        salt_length: the master salt length in bytes.
        libsrtp_profile: the ``srtp_profile_t`` value for pylibsrtp.
    """

    name: str
    openssl_name: bytes
    key_length: int
    salt_length: int
    libsrtp_profile: int

    @property
    def master_length(self) -> int:
        """Length of a master key followed by its master salt."""
        return self.key_length + self.salt_length


SRTP_AEAD_AES_128_GCM = SrtpProfile(
    name="AEAD_AES_128_GCM",
    openssl_name=b"SRTP_AEAD_AES_128_GCM",
    key_length=16,
    salt_length=12,
    libsrtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
)
SRTP_AES128_CM_SHA1_80 = SrtpProfile(
    name="AES_CM_128_HMAC_SHA1_80",
    openssl_name=b"SRTP_AES128_CM_SHA1_80",
    key_length=16,
    salt_length=14,
    libsrtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
)

#: The profiles we offer and accept, most preferred first.
SRTP_PROFILES: tuple[SrtpProfile, ...] = (SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80)


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """The SRTP master keys and salts exported from a DTLS handshake (RFC 5764 §4.2).

    Key bytes never appear in ``repr()``.

    Attributes:
        profile: the negotiated profile, which gives the lengths.
        client_key: ``client_write_SRTP_master_key``.
        client_salt: ``client_write_SRTP_master_salt``.
        server_key: ``server_write_SRTP_master_key``.
        server_salt: ``server_write_SRTP_master_salt``.
    """

    profile: SrtpProfile
    client_key: bytes = field(repr=False)
    client_salt: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    server_salt: bytes = field(repr=False)

    def __post_init__(self) -> None:
        p = self.profile
        if len(self.client_key) != p.key_length or len(self.server_key) != p.key_length:
            raise InvalidArgument(f"{p.name} master keys must have {p.key_length} bytes")
        if len(self.client_salt) != p.salt_length or len(self.server_salt) != p.salt_length:
            raise InvalidArgument(f"{p.name} master salts must have {p.salt_length} bytes")

    @classmethod
    def from_keying_material(cls, profile: SrtpProfile, material: bytes) -> SrtpKeys:
        """Split the output of the ``EXTRACTOR-dtls_srtp`` exporter.

        RFC 5764 §4.2: the material is ``client_write_SRTP_master_key[key_len] +
        server_write_SRTP_master_key[key_len] + client_write_SRTP_master_salt[salt_len] +
        server_write_SRTP_master_salt[salt_len]``.

        Raises:
            InvalidArgument: ``material`` is not ``2 * profile.master_length`` bytes long.
        """
        k, s = profile.key_length, profile.salt_length
        if len(material) != 2 * (k + s):
            raise InvalidArgument(f"{profile.name} keying material must have {2 * (k + s)} bytes")
        return cls(
            profile=profile,
            client_key=material[0:k],
            server_key=material[k : 2 * k],
            client_salt=material[2 * k : 2 * k + s],
            server_salt=material[2 * k + s : 2 * k + 2 * s],
        )

    def write_master(self, role: DtlsRole) -> bytes:
        """The master key followed by the master salt that ``role`` protects with."""
        if role == "client":
            return self.client_key + self.client_salt
        return self.server_key + self.server_salt


@dataclass(slots=True)
class SrtpCounters:
    """Packet counters of one :class:`SrtpContext` (monotonic; read them for metrics)."""

    rtp_protected: int = 0
    rtcp_protected: int = 0
    rtp_unprotected: int = 0
    rtcp_unprotected: int = 0
    #: Inbound packets that failed authentication.
    auth_failures: int = 0
    #: Inbound packets rejected by the replay window.
    replays: int = 0
    #: Inbound packets rejected for any other reason (too short, bad header, too long).
    malformed: int = 0
    #: Outbound packets libsrtp refused to protect (a local bug).
    protect_failures: int = 0


_ANY_INBOUND: int = pylibsrtp.Policy.SSRC_ANY_INBOUND
_ANY_OUTBOUND: int = pylibsrtp.Policy.SSRC_ANY_OUTBOUND


def _policy(libsrtp_profile: int, master: bytes, ssrc_type: int, window: int) -> pylibsrtp.Policy:
    policy = pylibsrtp.Policy(key=master, ssrc_type=ssrc_type, srtp_profile=libsrtp_profile)
    policy.window_size = window
    return policy


class _DirectRtp:
    """``srtp_protect`` or ``srtp_unprotect`` on one pylibsrtp session, without the wrapper.

    Calling it returns the processed packet, or None when the packet is too long for
    the session's buffer or libsrtp refused it: the caller then goes through the public
    API, which fails the same way (a refused packet changes no libsrtp state) and raises
    pylibsrtp's error.
    """

    __slots__ = ("_buffer", "_cdata", "_function", "_length", "_limit", "_session")

    def __init__(self, session: pylibsrtp.Session, function: str, trailer: int) -> None:
        self._session = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._function = getattr(_pylibsrtp_binding.lib, function)
        self._length = _pylibsrtp_binding.ffi.new("int *")
        self._limit = len(session._cdata) - trailer

    @classmethod
    def create(cls, session: pylibsrtp.Session, function: str, trailer: int) -> _DirectRtp | None:
        """The direct path, or None if this pylibsrtp lacks the internals it needs."""
        try:
            return cls(session, function, trailer)
        except (AttributeError, TypeError):  # pragma: no cover - another pylibsrtp
            return None

    def __call__(self, packet: bytes) -> bytes | None:
        size = len(packet)
        if size > self._limit:
            return None
        buffer = self._buffer
        buffer[0:size] = packet
        length = self._length
        length[0] = size
        if self._function(self._session, self._cdata, length):
            return None
        data: bytes = buffer[0 : length[0]]
        return data


class SrtpContext:
    """SRTP/SRTCP protection for one peer connection (sans-I/O, synchronous).

    Build it from the :class:`~mediaserver.transport.dtls.HandshakeCompleted` event:
    ``SrtpContext(event.keys, role=session.role)``. The caller demultiplexes RTP from
    RTCP (RFC 5761 §4) and calls the matching method.

    Args:
        keys: the keys exported by the DTLS handshake.
        role: our DTLS role. We protect with our role's write key and unprotect with the
            peer's.
        replay_window: size of the inbound replay window, in packets (64 to 32767).
        allow_repeat_tx: let the outbound session protect an already-used (SSRC,
            sequence number) again; see the module docstring for the contract.

    Raises:
        InvalidArgument: ``replay_window`` is out of range.
    """

    __slots__ = ("_protect", "_rx", "_tx", "_unprotect", "counters", "profile")

    def __init__(
        self,
        keys: SrtpKeys,
        role: DtlsRole,
        *,
        replay_window: int = 1024,
        allow_repeat_tx: bool = True,
    ) -> None:
        if not 64 <= replay_window < 0x8000:
            raise InvalidArgument("the SRTP replay window must be between 64 and 32767")
        remote_role: DtlsRole = "server" if role == "client" else "client"
        self.profile = keys.profile
        self.counters = SrtpCounters()
        profile = keys.profile.libsrtp_profile
        self._rx = pylibsrtp.Session(
            _policy(profile, keys.write_master(remote_role), _ANY_INBOUND, replay_window)
        )
        tx_policy = _policy(profile, keys.write_master(role), _ANY_OUTBOUND, replay_window)
        tx_policy.allow_repeat_tx = allow_repeat_tx
        self._tx = pylibsrtp.Session(tx_policy)
        self._protect = _DirectRtp.create(self._tx, "srtp_protect", _MAX_RTP_TRAILER)
        self._unprotect = _DirectRtp.create(self._rx, "srtp_unprotect", 0)

    def protect_rtp(self, packet: bytes) -> bytes:
        """Encrypt and authenticate an RTP packet.

        Raises:
            LocalProtocolError: the packet is not valid RTP, or is too long (pylibsrtp
                1.0 accepts at most 1356 bytes).
        """
        direct = self._protect
        if direct is not None:
            done = direct(packet)
            if done is not None:
                self.counters.rtp_protected += 1
                return done
        try:
            data: bytes = self._tx.protect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            self.counters.protect_failures += 1
            raise LocalProtocolError(f"SRTP protect failed: {exc}") from None
        self.counters.rtp_protected += 1
        return data

    def protect_rtcp(self, packet: bytes) -> bytes:
        """Encrypt and authenticate an RTCP compound packet.

        Raises:
            LocalProtocolError: the packet is not valid RTCP, or is too long (pylibsrtp
                1.0 accepts at most 1352 bytes).
        """
        try:
            data: bytes = self._tx.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            self.counters.protect_failures += 1
            raise LocalProtocolError(f"SRTCP protect failed: {exc}") from None
        self.counters.rtcp_protected += 1
        return data

    def unprotect_rtp(self, packet: bytes) -> bytes:
        """Authenticate, replay-check and decrypt an SRTP packet.

        Raises:
            SrtpAuthenticationFailed: the authentication tag does not verify.
            SrtpReplayed: the packet was already received or is too old.
            MalformedPacket: the packet cannot be SRTP at all (too short, bad header,
                longer than 1500 bytes).
        """
        direct = self._unprotect
        if direct is not None:
            done = direct(packet)
            if done is not None:
                self.counters.rtp_unprotected += 1
                return done
        try:
            data: bytes = self._rx.unprotect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise self._unprotect_error("SRTP", exc) from None
        self.counters.rtp_unprotected += 1
        return data

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """Authenticate, replay-check and decrypt an SRTCP packet.

        Raises:
            SrtpAuthenticationFailed: the authentication tag does not verify.
            SrtpReplayed: the SRTCP index was already received or is too old.
            MalformedPacket: the packet cannot be SRTCP at all.
        """
        try:
            data: bytes = self._rx.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise self._unprotect_error("SRTCP", exc) from None
        self.counters.rtcp_unprotected += 1
        return data

    def _unprotect_error(self, what: str, exc: Exception) -> MalformedPacket:
        reason = str(exc)
        if isinstance(exc, pylibsrtp.Error) and reason in _AUTH_ERRORS:
            self.counters.auth_failures += 1
            return SrtpAuthenticationFailed(f"{what} authentication failed")
        if isinstance(exc, pylibsrtp.Error) and reason in _REPLAY_ERRORS:
            self.counters.replays += 1
            return SrtpReplayed(f"{what} replay rejected: {reason}")
        self.counters.malformed += 1
        return MalformedPacket(f"{what} unprotect failed: {reason}")

    def __repr__(self) -> str:
        return f"SrtpContext({self.profile.name})"

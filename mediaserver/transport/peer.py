"""One attendee connection's media transport: ICE credentials, DTLS and SRTP (sans I/O).

The UDP shell (:mod:`mediaserver.transport.udp`) finds a peer by its ICE ufrag or its
5-tuple and hands it the datagrams; the peer decrypts what arrives and encrypts what the
media engine sends. Per packet it only calls into libsrtp: no heavyweight objects.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Sequence

from mediaserver.errors import MalformedPacket
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint
from mediaserver.transport.dtls import (
    DtlsClosed,
    DtlsSession,
    HandshakeCompleted,
    HandshakeFailed,
)
from mediaserver.transport.srtp import SrtpContext
from mediaserver.transport.stun import Address

__all__ = ["PeerStats", "PeerTransport", "new_ice_credentials"]

logger = logging.getLogger(__name__)

_ICE_CHARS = string.ascii_letters + string.digits + "+/"


def new_ice_credentials() -> tuple[str, str]:
    """A fresh ufrag (8 chars, 48 bits) and password (24 chars, 144 bits) (RFC 8839 §5.4)."""
    ufrag = "".join(secrets.choice(_ICE_CHARS) for _ in range(8))
    pwd = "".join(secrets.choice(_ICE_CHARS) for _ in range(24))
    return ufrag, pwd


class PeerStats:
    """Per-peer counters (read by metrics; plain ints on the hot path)."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "rtcp_in",
        "rtp_in",
        "rtp_out",
        "srtp_errors",
        "unknown_before_dtls",
    )

    def __init__(self) -> None:
        self.rtp_in = 0
        self.rtcp_in = 0
        self.rtp_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.srtp_errors = 0
        self.unknown_before_dtls = 0


class PeerTransport:
    """The media transport of one signaling connection.

    Args:
        key: an opaque id for logs (meeting/attendee).
        certificate: the server's DTLS certificate.
        remote_ufrag: the ``a=ice-ufrag`` of the client's offer.
        remote_fingerprints: the ``a=fingerprint`` values of the client's offer.
        now: monotonic time of creation.
    """

    def __init__(
        self,
        key: str,
        certificate: DtlsCertificate,
        remote_ufrag: str,
        remote_pwd: str,
        remote_fingerprints: Sequence[Fingerprint],
        now: float,
    ) -> None:
        self.key = key
        self.local_ufrag, self.local_pwd = new_ice_credentials()
        self.remote_ufrag = remote_ufrag
        self.remote_pwd = remote_pwd
        self.dtls = DtlsSession(certificate, remote_fingerprints, role="server")
        self.dtls.start(now)
        self.srtp: SrtpContext | None = None
        self.address: Address | None = None
        """The nominated address: where media goes."""
        self.last_rx = now
        self.connected_at: float | None = None
        self.closed = False
        self.stats = PeerStats()
        self.owner: object = None
        """Whatever the media engine hangs on the peer (its downlink state)."""

    @property
    def connected(self) -> bool:
        """True when SRTP is keyed and an address is selected: media can flow."""
        return self.srtp is not None and self.address is not None and not self.closed

    def receive_dtls(self, data: bytes, now: float) -> list[bytes]:
        """Feed a DTLS datagram; returns the datagrams to send back."""
        self.last_rx = now
        self.dtls.receive_datagram(data, now)
        self._dtls_events(now)
        return self.dtls.datagrams_to_send()

    def handle_timer(self, now: float) -> list[bytes]:
        """Run the DTLS retransmission timer if due; returns datagrams to send."""
        deadline = self.dtls.get_timer()
        if deadline is None or now < deadline:
            return []
        self.dtls.handle_timer(now)
        self._dtls_events(now)
        return self.dtls.datagrams_to_send()

    def _dtls_events(self, now: float) -> None:
        for event in self.dtls.events_received():
            if isinstance(event, HandshakeCompleted):
                self.srtp = SrtpContext(event.keys, role="server")
                self.connected_at = now
                logger.info("%s DTLS connected (%s, %s)", self.key, event.profile.name,
                            event.cipher)  # fmt: skip
            elif isinstance(event, HandshakeFailed):
                logger.info("%s DTLS handshake failed: %s", self.key, event.reason)
            elif isinstance(event, DtlsClosed):
                logger.info("%s DTLS closed: %s", self.key, event.reason)
                self.srtp = None

    def unprotect(self, data: bytes, now: float) -> tuple[bool, bytes] | None:
        """Decrypt one SRTP or SRTCP packet; returns (is_rtcp, plaintext) or None if dropped.

        RTP and RTCP are told apart by the second byte (RFC 5761 §4: payload types 192-223
        with the marker bit are RTCP).
        """
        srtp = self.srtp
        if srtp is None:
            self.stats.unknown_before_dtls += 1
            return None
        is_rtcp = 192 <= data[1] <= 223
        try:
            plain = srtp.unprotect_rtcp(data) if is_rtcp else srtp.unprotect_rtp(data)
        except MalformedPacket:
            self.stats.srtp_errors += 1
            return None
        self.last_rx = now
        self.stats.bytes_in += len(data)
        if is_rtcp:
            self.stats.rtcp_in += 1
        else:
            self.stats.rtp_in += 1
        return is_rtcp, plain

    def close(self) -> None:
        self.closed = True
        self.dtls.close()
        self.srtp = None

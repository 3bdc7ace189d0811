"""The server's DTLS certificate and SDP certificate fingerprints.

WebRTC does not authenticate DTLS certificates through a PKI. Each side sends a
self-signed certificate, and the other side checks it against the hash carried in the
SDP ``a=fingerprint`` attribute (RFC 8122 §5, RFC 8827 §6.5). The server therefore needs
one key pair and one self-signed certificate, shared by every peer connection of the
process: the composition root creates a :class:`DtlsCertificate` once, with
:meth:`DtlsCertificate.generate` or :meth:`DtlsCertificate.from_pem`, and hands it to
every :class:`~mediaserver.transport.dtls.DtlsSession`. Its :attr:`~DtlsCertificate.fingerprint`
goes into every SDP answer.

The key is ECDSA P-256, the key type browsers generate themselves and the cheapest one to
sign a ServerKeyExchange with.
"""

from __future__ import annotations

import datetime
import hmac
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mediaserver.errors import InvalidArgument, MalformedMessage

__all__ = [
    "FINGERPRINT_ALGORITHMS",
    "DtlsCertificate",
    "Fingerprint",
]

#: Hash functions of RFC 8122 §5 that we can compute, strongest last.
FINGERPRINT_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}

_ACCEPTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A certificate fingerprint as carried in SDP (RFC 8122 §5).

    Attributes:
        algorithm: the hash function's textual name, lower case (``"sha-256"``).
            Names we cannot compute are kept, so that a list of fingerprints can be
            parsed whole; they simply never match.
        value: the raw digest bytes.
    """

    algorithm: str
    value: bytes

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse the value of an ``a=fingerprint`` attribute.

        The grammar is ``hash-func SP fingerprint`` where the fingerprint is hex byte
        pairs separated by colons (RFC 8122 §5). Hex digits are accepted in either case,
        and the hash function name is case-insensitive.

        Args:
            text: for example ``"sha-256 AB:CD:..."``; an ``a=fingerprint:`` prefix is
                tolerated.

        Raises:
            MalformedMessage: the text does not follow the grammar, or the digest length
                does not match a known hash function.
        """
        body = text.strip()
        for prefix in ("a=fingerprint:", "fingerprint:"):
            if body.lower().startswith(prefix):
                body = body[len(prefix) :]
                break
        parts = body.split()
        if len(parts) != 2:
            raise MalformedMessage(f"fingerprint must be 'hash-func fingerprint': {text!r}")
        algorithm, hex_pairs = parts[0].lower(), parts[1].split(":")
        if any(len(pair) != 2 or not _HEX_DIGITS.issuperset(pair) for pair in hex_pairs):
            raise MalformedMessage(f"fingerprint is not colon-separated hex pairs: {text!r}")
        value = bytes.fromhex("".join(hex_pairs))
        hash_type = FINGERPRINT_ALGORITHMS.get(algorithm)
        digest_size = None if hash_type is None else hash_type().digest_size
        if digest_size is not None and len(value) != digest_size:
            raise MalformedMessage(
                f"{algorithm} fingerprint must have {digest_size} bytes, not {len(value)}"
            )
        return cls(algorithm, value)

    @classmethod
    def of(cls, certificate: x509.Certificate, algorithm: str = "sha-256") -> Fingerprint:
        """Compute the fingerprint of a certificate (the hash of its DER encoding).

        Raises:
            InvalidArgument: ``algorithm`` is not in :data:`FINGERPRINT_ALGORITHMS`.
        """
        hash_type = FINGERPRINT_ALGORITHMS.get(algorithm)
        if hash_type is None:
            raise InvalidArgument(f"unsupported fingerprint algorithm {algorithm!r}")
        return cls(algorithm, certificate.fingerprint(hash_type()))

    @property
    def supported(self) -> bool:
        """Whether we can compute this hash function."""
        return self.algorithm in FINGERPRINT_ALGORITHMS

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether ``certificate`` hashes to this fingerprint (constant-time compare)."""
        hash_type = FINGERPRINT_ALGORITHMS.get(self.algorithm)
        if hash_type is None:
            return False
        return hmac.compare_digest(certificate.fingerprint(hash_type()), self.value)

    def __str__(self) -> str:
        """The SDP form, ``sha-256 AB:CD:...`` (upper-case hex, RFC 8122 §5)."""
        return f"{self.algorithm} {self.value.hex(':').upper()}"


class DtlsCertificate:
    """An ECDSA key pair with its self-signed certificate, used for every DTLS session.

    Args:
        private_key: an ECDSA private key on P-256 (or P-384).
        certificate: a certificate for the same key.

    Raises:
        InvalidArgument: the key is not an accepted ECDSA key, or does not belong to the
            certificate.
    """

    __slots__ = ("__weakref__", "_certificate", "_fingerprint", "_private_key")

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, _ACCEPTED_CURVES
        ):
            raise InvalidArgument("the DTLS key must be an ECDSA P-256 or P-384 key")
        if certificate.public_key() != private_key.public_key():
            raise InvalidArgument("the DTLS certificate does not match its private key")
        self._private_key = private_key
        self._certificate = certificate
        self._fingerprint = Fingerprint.of(certificate, "sha-256")

    @classmethod
    def generate(
        cls,
        *,
        now: datetime.datetime | None = None,
        lifetime: datetime.timedelta = datetime.timedelta(days=365),
    ) -> DtlsCertificate:
        """Create a new P-256 key and a self-signed certificate for it.

        Browsers do not check the validity period of a WebRTC certificate, but other
        stacks may; the certificate is valid from one day before ``now`` (clock skew) for
        ``lifetime``. The common name is random, as browsers do, so that it reveals
        nothing about the server.

        Args:
            now: the wall-clock time, timezone-aware; defaults to the current UTC time.
            lifetime: how long the certificate stays valid after ``now``.
        """
        if now is None:
            now = datetime.datetime.now(datetime.UTC)
        private_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, os.urandom(16).hex())])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + lifetime)
            .sign(private_key, hashes.SHA256())
        )
        return cls(private_key, certificate)

    @classmethod
    def from_pem(
        cls, certificate_pem: bytes, private_key_pem: bytes, password: bytes | None = None
    ) -> DtlsCertificate:
        """Load a certificate and key saved by :meth:`certificate_pem` and :meth:`private_key_pem`.

        Raises:
            InvalidArgument: either PEM block does not parse, or the pair is not accepted.
        """
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            private_key = serialization.load_pem_private_key(private_key_pem, password)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(f"cannot load the DTLS certificate: {exc}") from exc
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise InvalidArgument("the DTLS key must be an ECDSA P-256 or P-384 key")
        return cls(private_key, certificate)

    @property
    def certificate(self) -> x509.Certificate:
        """The self-signed X.509 certificate."""
        return self._certificate

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The ECDSA private key."""
        return self._private_key

    @property
    def fingerprint(self) -> Fingerprint:
        """The SHA-256 fingerprint to put in SDP answers (``str()`` gives the SDP form)."""
        return self._fingerprint

    @property
    def not_valid_after(self) -> datetime.datetime:
        """The end of the validity period (timezone-aware, UTC)."""
        return self._certificate.not_valid_after_utc

    def certificate_pem(self) -> bytes:
        """The certificate in PEM form."""
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        """The private key in PKCS#8 PEM form, encrypted if ``password`` is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def __repr__(self) -> str:
        return f"DtlsCertificate({self._fingerprint})"

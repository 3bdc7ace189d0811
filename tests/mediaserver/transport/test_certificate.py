"""Tests for mediaserver.transport.certificate."""

from __future__ import annotations

import datetime
import re

import pytest
from aiortc.rtcdtlstransport import certificate_digest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mediaserver.errors import InvalidArgument, MalformedMessage
from mediaserver.transport.certificate import DtlsCertificate, Fingerprint

SDP_SHA256 = re.compile(r"^sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}$")


@pytest.fixture(scope="module")
def certificate() -> DtlsCertificate:
    return DtlsCertificate.generate()


def test_a_generated_certificate_is_ecdsa_p256_and_self_signed(
    certificate: DtlsCertificate,
) -> None:
    cert = certificate.certificate
    key = certificate.private_key
    assert isinstance(key.curve, ec.SECP256R1)
    assert cert.issuer == cert.subject
    assert cert.public_key() == key.public_key()


def test_the_fingerprint_is_in_sdp_form(certificate: DtlsCertificate) -> None:
    assert SDP_SHA256.match(str(certificate.fingerprint))


def test_the_fingerprint_agrees_with_aiortcs_digest(certificate: DtlsCertificate) -> None:
    expected = certificate_digest(certificate.certificate, "sha-256")
    assert str(certificate.fingerprint) == f"sha-256 {expected}"


def test_the_validity_period_follows_now_and_lifetime() -> None:
    now = datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC)
    certificate = DtlsCertificate.generate(now=now, lifetime=datetime.timedelta(days=10))
    assert certificate.not_valid_after == now + datetime.timedelta(days=10)
    assert certificate.certificate.not_valid_before_utc == now - datetime.timedelta(days=1)


def test_pem_round_trip_keeps_the_fingerprint(certificate: DtlsCertificate) -> None:
    loaded = DtlsCertificate.from_pem(
        certificate.certificate_pem(), certificate.private_key_pem(b"secret"), b"secret"
    )
    assert loaded.fingerprint == certificate.fingerprint
    assert repr(loaded) == f"DtlsCertificate({certificate.fingerprint})"


def test_a_key_that_does_not_belong_to_the_certificate_is_rejected(
    certificate: DtlsCertificate,
) -> None:
    with pytest.raises(InvalidArgument):
        DtlsCertificate(ec.generate_private_key(ec.SECP256R1()), certificate.certificate)


def test_non_ecdsa_keys_are_rejected(certificate: DtlsCertificate) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidArgument):
        DtlsCertificate(rsa_key, certificate.certificate)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        DtlsCertificate(ec.generate_private_key(ec.SECP521R1()), certificate.certificate)


def test_garbage_pem_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        DtlsCertificate.from_pem(b"not a certificate", b"not a key")


def test_fingerprints_parse_and_print_back(certificate: DtlsCertificate) -> None:
    text = str(certificate.fingerprint)
    assert Fingerprint.parse(text) == certificate.fingerprint
    assert Fingerprint.parse(f"a=fingerprint:{text}") == certificate.fingerprint
    assert Fingerprint.parse(text.lower().replace("sha-256", "SHA-256")) == certificate.fingerprint
    assert Fingerprint.parse(text).matches(certificate.certificate)


def test_a_fingerprint_of_another_algorithm_matches_too(certificate: DtlsCertificate) -> None:
    fingerprint = Fingerprint.of(certificate.certificate, "sha-384")
    assert len(fingerprint.value) == 48
    assert fingerprint.matches(certificate.certificate)
    assert not Fingerprint("sha-256", bytes(32)).matches(certificate.certificate)


def test_unknown_hash_functions_parse_but_never_match(certificate: DtlsCertificate) -> None:
    fingerprint = Fingerprint.parse("md5 01:02:03")
    assert not fingerprint.supported
    assert not fingerprint.matches(certificate.certificate)
    with pytest.raises(InvalidArgument):
        Fingerprint.of(certificate.certificate, "md5")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha-256",
        "sha-256 AB:CD extra",
        "sha-256 ABCD",
        "sha-256 AB:C",
        "sha-256 AB:ZZ",
        "sha-256 AB:CD",  # 2 bytes, not 32
        "sha-256 " + ":".join(["٣٣"] * 32),  # non-ASCII digits
    ],
)
def test_malformed_fingerprints_are_rejected(text: str) -> None:
    with pytest.raises(MalformedMessage):
        Fingerprint.parse(text)

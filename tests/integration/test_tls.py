"""``--tls-cert``/``--tls-key``: the API over HTTPS and signaling over WSS, end to end.

The MediaPlacement URLs follow the listener's scheme (``wss://`` and ``https://``), boto3
verifies the server's certificate, and a bot joins over ``wss://`` and gets its audio. With
``--public-url`` (a TLS-terminating proxy in front) the URLs name that base instead.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.bot import Bot
from tests.helpers.server import TIMEOUT_FACTOR, ServerProcess, running_server

pytestmark = pytest.mark.timeout(90)

T = 15.0 * TIMEOUT_FACTOR


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (subjectAltName IP, RFC 6125 §6.2) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "carillon-test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("carillon-tls")
    cert, key = write_self_signed(directory)
    with running_server(
        directory / "data",
        ["--tls-cert", str(cert), "--tls-key", str(key)],
        cafile=cert,
    ) as srv:
        yield srv


def create(chime: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    meeting: dict[str, Any] = chime.create_meeting(
        ClientRequestToken=str(uuid.uuid4()), MediaRegion="us-east-1", ExternalMeetingId="tls"
    )
    attendee: dict[str, Any] = chime.create_attendee(
        MeetingId=meeting["Meeting"]["MeetingId"], ExternalUserId="tls-user"
    )
    return meeting, attendee


def test_placement_urls_use_https_and_wss(tls_server: ServerProcess) -> None:
    meeting, _ = create(tls_server.client())
    placement = meeting["Meeting"]["MediaPlacement"]
    meeting_id = meeting["Meeting"]["MeetingId"]
    authority = f"127.0.0.1:{tls_server.http_port}"
    assert placement["SignalingUrl"] == f"wss://{authority}/control/{meeting_id}"
    assert placement["AudioFallbackUrl"] == f"wss://{authority}/calls/{meeting_id}"
    assert placement["EventIngestionUrl"] == f"https://{authority}/v1/client-events"
    assert placement["AudioHostUrl"] == f"127.0.0.1:{tls_server.udp_port}"


def test_an_untrusted_client_cannot_talk_to_the_api(tls_server: ServerProcess) -> None:
    from botocore.exceptions import SSLError

    chime = tls_server.client(verify=True)  # the system's trust store: no test CA in it
    with pytest.raises(SSLError):
        chime.list_attendees(MeetingId=str(uuid.uuid4()))


async def test_a_bot_joins_over_wss_and_hears_audio(tls_server: ServerProcess) -> None:
    meeting, attendee = await asyncio.to_thread(create, tls_server.client())
    bot = Bot(meeting, attendee, audio=440.0, ssl_context=tls_server.ssl_context())
    try:
        await bot.join(T)
        assert bot.peer is not None
        start = bot.peer.audio_packets_received
        await bot.peer.wait_audio_packets(start + 25, 5.0 * TIMEOUT_FACTOR)
        assert bot.signaling.present_attendees() == {bot.attendee_id: "tls-user"}
    finally:
        await bot.close()


def test_public_url_names_the_proxy(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", ["--public-url", "https://meet.example.test/"]) as srv:
        meeting, _ = create(srv.client())
    placement = meeting["Meeting"]["MediaPlacement"]
    meeting_id = meeting["Meeting"]["MeetingId"]
    assert placement["SignalingUrl"] == f"wss://meet.example.test/control/{meeting_id}"
    assert placement["TurnControlUrl"] == "https://meet.example.test/v2/turn_sessions"

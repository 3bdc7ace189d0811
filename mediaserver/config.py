"""Server configuration: one frozen dataclass, filled from flags and ``CARILLON_*`` variables.

Every option is a command-line flag of ``carillon serve`` and also an environment variable
named ``CARILLON_<NAME>`` (upper case, dashes as underscores). A flag given on the command
line wins over the environment, which wins over the default. Parsing happens only here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["ServerConfig", "add_arguments", "config_from_args", "format_host"]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``carillon serve`` can be told."""

    host: str = "127.0.0.1"
    """Address the HTTP/WebSocket and UDP listeners bind to."""
    http_port: int = 8080
    """TCP port of the control plane API, the signaling WebSocket and the demo page."""
    udp_port: int = 3478
    """The single UDP port that carries every attendee's media."""
    public_host: str = ""
    """Address put in URLs and ICE candidates; empty means the same as ``host``."""
    public_url: str = ""
    """Base URL clients reach the HTTP/WebSocket listener at, e.g. ``https://meet.example.com``
    behind a TLS-terminating proxy; empty means ``http(s)://<public host>:<http port>``."""
    tls_cert: str = ""
    """PEM certificate chain: serve HTTPS and WSS on ``http_port`` (with ``tls_key``)."""
    tls_key: str = ""
    """PEM private key of ``tls_cert``."""
    data_dir: Path = Path("carillon-data")
    """Directory of the SQLite store and the generated credentials."""
    api_rate: float = 10.0
    """Control-plane requests per second allowed (Chime's default quota is 10/s)."""
    api_burst: int = 20
    """Control-plane burst size (Chime's default is 20)."""
    max_active_meetings: int = 250
    """Active-meeting quota; CreateMeeting beyond it answers LimitExceededException."""
    max_attendees_per_meeting: int = 250
    """Attendees one meeting may have (Chime: 250). A meeting's own
    ``MeetingFeatures.Attendee.MaxCount`` can only lower it; raising it is for load tests of
    meetings larger than Chime allows (``python -m bench audio-room --sizes 500``)."""
    max_replicas_per_primary: int = 4
    """Replica meetings one primary meeting may have (Chime: 4, adjustable to 40)."""
    audio_bitrate: int = 32000
    """Opus bitrate of the mix each attendee receives, bits/s (6,000 to 64,000)."""
    audio_stereo_bitrate: int = 64000
    """Opus bitrate of the mix of attendees that negotiated stereo (6,000 to 128,000)."""
    max_speakers: int = 3
    """Active speakers mixed at once (the loudest, with hysteresis)."""
    max_video_kbps: int = 0
    """Cap on each sender's video, kbit/s; 0 follows Chime: 1500, or 2500 for cameras in
    FHD meetings and content shares in UHD ones (meetings-digest.md §4.3, §4.5)."""
    server_side_adaption: bool = True
    """Grant server-side video quality adaption to clients that ask for it in JOIN: the
    server picks each subscriber's simulcast layers from its downlink estimate."""
    log_level: str = "info"
    """Logging level: debug, info, warning or error."""
    log_json: bool = False
    """Log JSON lines instead of text."""

    # Meeting events (mediaserver.events) and their delivery.
    webhook_urls: tuple[str, ...] = ()
    """URLs every meeting event is POSTed to (``--webhook-url``, repeatable or comma-separated)."""
    webhook_secret: str = ""
    """HMAC-SHA256 key of the ``X-Carillon-Signature`` header; empty sends unsigned events."""
    webhook_timeout: float = 10.0
    """Seconds one webhook attempt may take."""
    events_max_attempts: int = 8
    """Delivery attempts per event and target before it is given up."""
    events_retry_base: float = 0.5
    """First retry delay in seconds; it doubles per failed attempt, up to 60 s."""
    events_queue_size: int = 10000
    """Events queued per target at most; beyond it the oldest is dropped and counted."""
    events_log_max_bytes: int = 10 * 1024 * 1024
    """Size at which ``<data-dir>/events.jsonl`` is rotated; 0 disables the events log."""
    events_log_keep: int = 5
    """Rotated events logs kept (``events.jsonl.1`` ... ``.N``)."""
    events_aws: bool = False
    """Publish to the SQS queue / SNS topic named in a meeting's NotificationsConfiguration."""
    events_aws_endpoint_url: str = ""
    """SQS/SNS endpoint for that (implies ``--events-aws``); empty means AWS itself."""
    events_aws_region: str = ""
    """Region for SQS/SNS calls; empty means the region in the queue or topic ARN."""
    drop_after: float = 15.0
    """Seconds without signaling or media after which an attendee is dropped (hidden; tests)."""

    @property
    def advertised_host(self) -> str:
        """The host name or address clients are told to reach."""
        return self.public_host or self.host

    @property
    def tls(self) -> bool:
        """Whether the HTTP/WebSocket listener itself speaks TLS."""
        return bool(self.tls_cert)

    @property
    def base_url(self) -> str:
        """``scheme://authority`` of the HTTP/WebSocket listener as clients reach it."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{format_host(self.advertised_host)}:{self.http_port}"


_HELP = {
    "host": "address to bind (default %(default)s)",
    "http_port": "TCP port for the API, signaling and the demo page (default %(default)s)",
    "udp_port": "UDP port for all media (default %(default)s)",
    "public_host": "address put in URLs and ICE candidates (default: --host)",
    "public_url": "base URL of the API and signaling as clients reach them, e.g. "
    "https://meet.example.com behind a TLS proxy (default: from --public-host and --http-port)",
    "tls_cert": "PEM certificate chain: serve HTTPS/WSS (needs --tls-key)",
    "tls_key": "PEM private key for --tls-cert",
    "data_dir": "directory for the SQLite store and credentials (default %(default)s)",
    "api_rate": "API requests per second (default %(default)s)",
    "api_burst": "API burst size (default %(default)s)",
    "max_active_meetings": "active-meeting quota (default %(default)s)",
    "max_attendees_per_meeting": "attendees per meeting (default %(default)s, as Chime; "
    "more is for load tests)",
    "max_replicas_per_primary": "replica meetings per primary meeting (default %(default)s)",
    "audio_bitrate": "Opus bitrate of each attendee's mix in bits/s (default %(default)s)",
    "audio_stereo_bitrate": "Opus bitrate of a stereo attendee's mix (default %(default)s)",
    "max_speakers": "active speakers mixed at once (default %(default)s)",
    "max_video_kbps": "cap on each sender's video in kbit/s: REMB, then frames dropped "
    "(default: 1500, 2500 for FHD cameras and UHD content)",
    "server_side_adaption": "pick subscribers' simulcast layers on the server when their "
    "client asks for it (default: on; --no-server-side-adaption: the client picks)",
    "log_level": "debug, info, warning or error (default %(default)s)",
    "log_json": "log JSON lines (default: text)",
    "webhook_urls": "POST meeting events to this URL (repeatable, or comma-separated)",
    "webhook_secret": "HMAC key for X-Carillon-Signature (prefer CARILLON_WEBHOOK_SECRET)",
    "webhook_timeout": "seconds per webhook attempt (default %(default)s)",
    "events_max_attempts": "delivery attempts per event and target (default %(default)s)",
    "events_retry_base": "first retry delay in seconds, doubling (default %(default)s)",
    "events_queue_size": "events queued per target before dropping the oldest "
    "(default %(default)s)",
    "events_log_max_bytes": "rotate events.jsonl at this size; 0 disables it (default %(default)s)",
    "events_log_keep": "rotated events logs kept (default %(default)s)",
    "events_aws": "publish events to the meetings' SQS queues / SNS topics (boto3 credentials)",
    "events_aws_endpoint_url": "SQS/SNS endpoint URL (implies --events-aws)",
    "events_aws_region": "region for SQS/SNS (default: the ARN's)",
    "drop_after": argparse.SUPPRESS,
}

_FLAG_NAMES = {"webhook_urls": "--webhook-url"}
"""Flags not spelled after their field."""


def _env_name(field_name: str) -> str:
    return "CARILLON_" + field_name.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :class:`ServerConfig` field; defaults come from nowhere yet."""
    for f in fields(ServerConfig):
        flag = _FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        default = f.default
        if isinstance(default, tuple):
            parser.add_argument(
                flag, dest=f.name, action="append", default=None, help=_HELP[f.name]
            )
            continue
        if isinstance(default, bool):
            # --flag and --no-flag, so a default of True can be turned off too.
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=_HELP[f.name],
            )
            continue
        kind: type = type(default) if not isinstance(default, Path) else Path
        parser.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=None,
            help=_HELP[f.name].replace("%(default)s", str(default)),
        )


def _parse_env_value(raw: str, default: object, name: str) -> object:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, tuple):
            return _split_list([raw])
    except ValueError:
        raise SystemExit(f"invalid value for {name}: {raw!r}") from None
    return raw


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Merge flags, environment and defaults into a :class:`ServerConfig`."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(ServerConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = _split_list(given) if isinstance(f.default, tuple) else given
            continue
        raw = env.get(_env_name(f.name))
        if raw is not None:
            values[f.name] = _parse_env_value(raw, f.default, _env_name(f.name))
    config = ServerConfig(**values)  # type: ignore[arg-type]
    _check(config)
    return config


def _split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated and comma-separated values as one tuple, blanks removed."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _check(config: ServerConfig) -> None:
    if bool(config.tls_cert) != bool(config.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    for name in ("tls_cert", "tls_key"):
        path = getattr(config, name)
        if path and not Path(path).is_file():
            raise SystemExit(f"--{name.replace('_', '-')}: no such file: {path}")
    if config.public_url and (
        not config.public_url.startswith(("http://", "https://"))
        or "?" in config.public_url
        or "#" in config.public_url
    ):
        raise SystemExit(
            f"--public-url must be an http:// or https:// URL without query, not "
            f"{config.public_url!r}"
        )
    for name in ("http_port", "udp_port"):
        port = getattr(config, name)
        if not 0 <= port <= 65535:
            raise SystemExit(f"--{name.replace('_', '-')} must be 0-65535, not {port}")
    if config.api_rate <= 0 or config.api_burst < 1:
        raise SystemExit("--api-rate must be > 0 and --api-burst >= 1")
    if not 6000 <= config.audio_bitrate <= 64000:
        raise SystemExit("--audio-bitrate must be 6000-64000 (mono Opus)")
    if not 6000 <= config.audio_stereo_bitrate <= 128000:
        raise SystemExit("--audio-stereo-bitrate must be 6000-128000 (stereo Opus)")
    if config.max_video_kbps < 0:
        raise SystemExit("--max-video-kbps must be >= 0 (0: Chime's limits)")
    if not 1 <= config.max_speakers <= 16:
        raise SystemExit("--max-speakers must be 1-16")
    if config.max_active_meetings < 1:
        raise SystemExit("--max-active-meetings must be >= 1")
    if config.max_attendees_per_meeting < 1:
        raise SystemExit("--max-attendees-per-meeting must be >= 1")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SystemExit("--log-level must be debug, info, warning or error")
    for url in config.webhook_urls:
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"--webhook-url must be an http:// or https:// URL, not {url!r}")
    if config.webhook_timeout <= 0 or config.events_retry_base <= 0 or config.drop_after <= 0:
        raise SystemExit("--webhook-timeout, --events-retry-base and drop-after must be > 0")
    if config.events_max_attempts < 1 or config.events_queue_size < 1:
        raise SystemExit("--events-max-attempts and --events-queue-size must be >= 1")
    if config.events_log_max_bytes < 0 or config.events_log_keep < 1:
        raise SystemExit("--events-log-max-bytes must be >= 0 and --events-log-keep >= 1")


def format_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL authority (RFC 3986 section 3.2.2)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def config_names() -> Sequence[str]:
    """The environment variable names, for documentation and tests."""
    return [_env_name(f.name) for f in fields(ServerConfig)]

"""The ``EventIngestionUrl`` sink: amazon-chime-sdk-js posts its client events here.

The client sends meeting events (join timings, device selections) as JSON with
``Authorization: Bearer <JoinToken>`` to ``MediaPlacement.EventIngestionUrl``, or with
``navigator.sendBeacon(url + "?beacon=1")`` (chime-signaling-protocol.md §1). Carillon
accepts and counts them (204) so the client does not log failures; it does not store
them. The page may be served from another origin, so preflights are answered (CORS).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["PATH", "ClientEventsSink"]

PATH = "/v1/client-events"

_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type"),
    (b"access-control-max-age", b"600"),
]


class ClientEventsSink:
    """``POST`` and ``OPTIONS`` handlers for :data:`PATH` (ControlApi extra routes)."""

    def __init__(self) -> None:
        self.received = 0
        self.bytes = 0

    async def post(
        self, scope: MutableMapping[str, Any], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        self.received += 1
        self.bytes += len(body)
        return 204, list(_CORS), b""

    async def preflight(
        self, scope: MutableMapping[str, Any], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 204, list(_CORS), b""

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", PATH): self.post, ("OPTIONS", PATH): self.preflight}

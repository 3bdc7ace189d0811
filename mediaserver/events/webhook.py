"""Webhook delivery: each event is POSTed as JSON to every configured URL, signed.

Request (one per event and attempt)::

    POST <url>
    Content-Type: application/json
    User-Agent: carillon-events/1
    X-Carillon-Event-Id: <envelope id>          (the same on every retry: deduplicate on it)
    X-Carillon-Event-Type: chime:AttendeeJoined
    X-Carillon-Delivery-Attempt: 1               (1, 2, 3... on retries)
    X-Carillon-Signature: t=<unix seconds>,v1=<hex>    (only when a secret is configured)

    <the event JSON>

``v1`` is the lowercase hex HMAC-SHA256, keyed with the webhook secret (its UTF-8 bytes),
of the signed string ``"<t>." + <the raw request body>``; ``t`` is the time of the attempt,
so receivers should reject signatures older than a few minutes (replay protection). See
:func:`verify_signature`. Any 2xx answer is success. 408, 429, 5xx and network errors are
retried with exponential backoff; other answers give the event up at once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import aiohttp

from mediaserver.clock import Clock
from mediaserver.events.envelope import MeetingEvent
from mediaserver.events.queue import Backoff
from mediaserver.events.sink import PermanentDeliveryError, QueuedSink

__all__ = [
    "ATTEMPT_HEADER",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "WebhookSink",
    "sign",
    "verify_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Carillon-Signature"
EVENT_ID_HEADER = "X-Carillon-Event-Id"
EVENT_TYPE_HEADER = "X-Carillon-Event-Type"
ATTEMPT_HEADER = "X-Carillon-Delivery-Attempt"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Carillon-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float, tolerance: float = 300.0
) -> bool:
    """Check an ``X-Carillon-Signature`` header as a receiver should.

    Args:
        secret: the shared webhook secret.
        header: the header value, ``t=<unix>,v1=<hex>`` (several ``v1`` may follow).
        body: the raw request body, byte for byte.
        now: the receiver's clock (unix seconds).
        tolerance: largest accepted age (or clock skew) of ``t``, in seconds.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


class WebhookSink(QueuedSink):
    """POSTs every event to one URL (aiohttp), in order per meeting.

    Args:
        url: the receiver.
        secret: HMAC key; empty means unsigned requests.
        clock: for the signature timestamp.
        timeout: seconds per attempt (connect + answer).
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        clock: Clock,
        timeout: float,
        capacity: int,
        backoff: Backoff,
    ) -> None:
        super().__init__("webhook", capacity=capacity, backoff=backoff)
        self.url = url
        self.secret = secret
        self.clock = clock
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "carillon-events/1"},
            )
        return self._session

    async def deliver(self, event: MeetingEvent, attempt: int) -> None:
        body = event.body()
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            EVENT_TYPE_HEADER: event.event_type,
            ATTEMPT_HEADER: str(attempt),
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body, int(self.clock.wall()))
        async with self._client().post(self.url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
        if 200 <= status < 300:
            return
        if status >= 500 or status in _RETRYABLE_STATUSES:
            raise ConnectionError(f"{self.url} answered HTTP {status}")
        raise PermanentDeliveryError(f"{self.url} answered HTTP {status}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

"""The demo meeting page: static files and a join endpoint for the browser client.

``GET /``, ``GET /app.js`` and ``GET /style.css`` serve the page in ``web/`` (the bundle
``app.js`` is built into ``web/dist/`` by ``web/build.sh``). ``POST /demo/join`` with the
JSON body ``{"meeting": <name>, "name": <display name>}`` finds or creates the meeting whose
ExternalMeetingId is ``<name>``, creates an attendee for ``<display name>`` and answers
``{"Meeting": ..., "Attendee": ...}`` exactly as CreateMeeting and CreateAttendee render them,
which is what ``new MeetingSessionConfiguration(meeting, attendee)`` takes
(chime-signaling-protocol.md §1). The browser never sees the API credentials: the server
calls its own registry.

The join endpoint is unauthenticated, like the page. It is a demo: anyone who can reach the
HTTP port can create meetings, so its rate is capped (``JOIN_RATE``) and the registry's
meeting quota applies. The only defence against cross-site use is that the endpoint
requires ``Content-Type: application/json``, which a cross-origin page cannot send without
a CORS preflight, and no preflight is ever answered.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediaserver.clock import Clock
from mediaserver.control.operations import Operations
from mediaserver.errors import InvalidArgument, NotFound, Throttled
from mediaserver.ratelimit import TokenBucket
from mediaserver.registry import Meeting, MeetingRegistry
from mediaserver.types import MeetingId

__all__ = [
    "DEMO_MEDIA_REGION",
    "JOIN_BURST",
    "JOIN_RATE",
    "DemoJoin",
    "demo_routes",
    "external_user_id",
    "meeting_name",
]

Scope = MutableMapping[str, Any]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]
Handler = Callable[[Scope, bytes], Awaitable[Response]]

DEMO_MEDIA_REGION = "us-east-1"
JOIN_RATE = 5.0
"""Joins per second the demo endpoint accepts (all callers together)."""
JOIN_BURST = 20

_MAX_EXTERNAL_ID = 64
_SUFFIX_BYTES = 3
"""The random suffix of an ExternalUserId: ``#`` and 6 hex digits."""
_SUFFIX_LEN = 1 + 2 * _SUFFIX_BYTES
# The documented ExternalUserId / ExternalMeetingId character set (control-plane-api.md §3)
# without "#", which separates the display name from the random suffix.
_DISALLOWED = re.compile(r"[^-_&@+=,(){}\[\]/«».:|'\"a-zA-Z0-9À-ÿ\s]")
_SPACES = re.compile(r"\s+")

_MISSING_BUNDLE = (
    "<!doctype html><html><head><meta charset=utf-8><title>Carillon demo: not built</title>"
    "</head><body><h1>The demo page is not built</h1><p>The browser bundle "
    "<code>web/dist/app.js</code> is missing. Build it with <code>sh web/build.sh</code> "
    "(or <code>sh scripts/install-browser-deps.sh</code>, which also installs Chromium for "
    "the browser tests), then reload this page.</p></body></html>"
)


def _clean(value: str) -> str:
    value = _DISALLOWED.sub("", value)
    return _SPACES.sub(" ", value).strip()


def meeting_name(raw: object) -> str:
    """The ExternalMeetingId for a meeting name typed into the page.

    Characters outside the documented set are dropped and runs of white space collapse
    to one space.

    Raises:
        InvalidArgument: not a string, or not 2-64 characters once cleaned, or it uses
            the reserved ``aws:`` prefix.
    """
    if not isinstance(raw, str):
        raise InvalidArgument("meeting must be a string")
    name = _clean(raw)
    if not 2 <= len(name) <= _MAX_EXTERNAL_ID:
        raise InvalidArgument("meeting must be 2 to 64 letters, digits or punctuation")
    if name[:4].lower() == "aws:":
        raise InvalidArgument("meeting must not start with 'aws:'")
    return name


def external_user_id(raw: object, suffix: str | None = None) -> str:
    """An ExternalUserId for a display name: the cleaned name, ``#`` and a random suffix.

    The suffix makes two people with the same name two attendees (ExternalUserId is an
    idempotency key within a meeting). The page shows the part before the last ``#``.

    Raises:
        InvalidArgument: not a string, empty once cleaned, or the reserved ``aws:`` prefix.
    """
    if not isinstance(raw, str):
        raise InvalidArgument("name must be a string")
    name = _clean(raw)[: _MAX_EXTERNAL_ID - _SUFFIX_LEN].rstrip()
    if not name:
        raise InvalidArgument("name must contain a letter, digit or punctuation")
    if name[:4].lower() == "aws:":
        raise InvalidArgument("name must not start with 'aws:'")
    if suffix is None:
        suffix = secrets.token_hex(_SUFFIX_BYTES)
    return f"{name}#{suffix}"


def _json_response(status: int, body: dict[str, Any]) -> Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (
        status,
        [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
        payload,
    )


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return b""


@dataclass(frozen=True, slots=True)
class _Asset:
    relative: tuple[str, ...]
    """Candidate paths under ``web_dir``, first found wins."""
    content_type: bytes
    needs_bundle: bool


_ASSETS: dict[str, _Asset] = {
    "/": _Asset(("index.html",), b"text/html; charset=utf-8", True),
    "/app.js": _Asset(("dist/app.js",), b"text/javascript; charset=utf-8", True),
    "/style.css": _Asset(("dist/style.css", "style.css"), b"text/css; charset=utf-8", False),
}


class DemoJoin:
    """The ``POST /demo/join`` endpoint and the meeting-name map behind it."""

    def __init__(
        self,
        registry: MeetingRegistry,
        operations: Operations,
        clock: Clock,
        *,
        rate: float = JOIN_RATE,
        burst: int = JOIN_BURST,
    ) -> None:
        self.registry = registry
        self.operations = operations
        self.clock = clock
        self.bucket = TokenBucket(rate, burst)
        self.meetings: dict[str, MeetingId] = {}
        """ExternalMeetingId → MeetingId of the meetings the demo created or found."""

    def _find(self, name: str) -> Meeting | None:
        known = self.meetings.get(name)
        if known is not None:
            try:
                return self.registry.get_meeting(known)
            except NotFound:
                del self.meetings[name]
        # A meeting of that name made before a restart, or through the API.
        for meeting in self.registry.meetings:
            if meeting.external_meeting_id == name:
                self.meetings[name] = meeting.meeting_id
                return meeting
        return None

    def join(self, body: bytes, now: float) -> dict[str, Any]:
        """Find or create the meeting, create the attendee, render both.

        Raises:
            InvalidArgument: a malformed body or name.
            LimitExceeded: the meeting or attendee quota is reached.
        """
        try:
            request = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("The request body is not valid JSON") from None
        if not isinstance(request, dict):
            raise InvalidArgument("The request body must be a JSON object")
        name = meeting_name(request.get("meeting"))
        user = external_user_id(request.get("name"))
        meeting = self._find(name)
        if meeting is None:
            meeting = self.registry.create_meeting(
                {"ExternalMeetingId": name, "MediaRegion": DEMO_MEDIA_REGION}, now
            )
            self.meetings[name] = meeting.meeting_id
        attendee = self.registry.create_attendee(meeting, user, None)
        return {
            "Meeting": self.operations.meeting_to_wire(meeting),
            "Attendee": attendee.to_wire(),
        }

    async def __call__(self, scope: Scope, body: bytes) -> Response:
        content_type = _header(scope, b"content-type").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            raise InvalidArgument("POST /demo/join takes Content-Type: application/json")
        if not self.bucket.try_acquire(self.clock.monotonic()):
            raise Throttled("Too many joins, try again in a second")
        return _json_response(200, self.join(body, self.clock.wall()))


class _StaticFile:
    def __init__(self, web_dir: Path, asset: _Asset) -> None:
        self.web_dir = web_dir
        self.asset = asset

    async def __call__(self, scope: Scope, body: bytes) -> Response:
        if self.asset.needs_bundle and not (self.web_dir / "dist" / "app.js").is_file():
            headers = [(b"content-type", b"text/html; charset=utf-8"), (b"retry-after", b"60")]
            return 503, headers, _MISSING_BUNDLE.encode()
        for relative in self.asset.relative:
            path = self.web_dir / relative
            if path.is_file():
                headers = [
                    (b"content-type", self.asset.content_type),
                    (b"cache-control", b"no-cache"),
                    (b"x-content-type-options", b"nosniff"),
                ]
                return 200, headers, path.read_bytes()
        return 404, [(b"content-type", b"text/plain; charset=utf-8")], b"not found\n"


async def _no_favicon(scope: Scope, body: bytes) -> Response:
    return 204, [(b"cache-control", b"max-age=86400")], b""


def demo_routes(
    registry: MeetingRegistry, operations: Operations, clock: Clock, web_dir: Path
) -> dict[tuple[str, str], Handler]:
    """The routes of the demo page, for ``ControlApi(extra_routes=...)``.

    ``web_dir`` is the ``web/`` directory of the source tree: ``index.html`` and
    ``style.css`` are read from it and the bundle from ``web_dir/dist/app.js``, at each
    request, so a rebuild needs no restart.
    """
    routes: dict[tuple[str, str], Handler] = {}
    for path, asset in _ASSETS.items():
        handler = _StaticFile(web_dir, asset)
        routes[("GET", path)] = handler
    routes[("GET", "/index.html")] = routes[("GET", "/")]
    routes[("GET", "/favicon.ico")] = _no_favicon
    routes[("POST", "/demo/join")] = DemoJoin(registry, operations, clock)
    return routes

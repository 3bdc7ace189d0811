"""The demo page routes, driven through the ASGI app as ``carillon serve`` wires them."""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from mediaserver.config import ServerConfig
from mediaserver.control.api import ControlApi
from mediaserver.control.operations import Operations
from mediaserver.demo import (
    DEMO_MEDIA_REGION,
    JOIN_BURST,
    demo_routes,
    external_user_id,
    meeting_name,
)
from mediaserver.errors import InvalidArgument
from mediaserver.registry import Limits, MeetingRegistry, SqliteStore
from tests.helpers.clock import FakeClock

# control-plane-api.md §3: ExternalUserId is 2-64 characters of this set.
_EXTERNAL_ID = re.compile(r"[-_&@+=,(){}\[\]\/«».:|'\"#a-zA-Z0-9À-ÿ\s]{2,64}")


class Harness:
    def __init__(self, tmp_path: Path, web_dir: Path) -> None:
        self.clock = FakeClock()
        self.config = ServerConfig(http_port=8123, udp_port=3479)
        self.registry = MeetingRegistry(
            SqliteStore(tmp_path / "db.sqlite3"),
            now=self.clock.wall(),
            limits=Limits(max_active_meetings=3),
        )
        self.operations = Operations(self.registry, self.config)
        self.api = ControlApi(
            self.operations,
            clock=self.clock,
            secrets={"AKIDTEST": "secret"},
            rate=10,
            burst=20,
            extra_routes=demo_routes(self.registry, self.operations, self.clock, web_dir),
        )

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str | None = "application/json",
    ) -> tuple[int, dict[str, str], bytes]:
        headers = [(b"host", b"localhost")]
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        scope: dict[str, Any] = {
            "type": "http",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
        }
        sent: list[MutableMapping[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await self.api(scope, receive, send)
        start, payload = sent
        response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], response_headers, payload["body"]

    async def join(self, meeting: object, name: object) -> tuple[int, dict[str, Any]]:
        status, _, body = await self.request(
            "POST", "/demo/join", json.dumps({"meeting": meeting, "name": name}).encode()
        )
        return status, json.loads(body)


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "dist").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>demo</title>")
    (web / "style.css").write_text("body {}")
    (web / "dist" / "app.js").write_text("window.x = 1;")
    return web


@pytest.fixture
def harness(tmp_path: Path, web_dir: Path) -> Harness:
    return Harness(tmp_path, web_dir)


async def test_the_page_and_its_assets_are_served(harness: Harness) -> None:
    for path, content_type, text in [
        ("/", "text/html", b"<!doctype html>"),
        ("/app.js", "text/javascript", b"window.x"),
        ("/style.css", "text/css", b"body"),
    ]:
        status, headers, body = await harness.request("GET", path, content_type=None)
        assert status == 200, path
        assert headers["content-type"].startswith(content_type)
        assert body.startswith(text)


async def test_without_the_bundle_the_page_says_to_build_it(
    harness: Harness, web_dir: Path
) -> None:
    (web_dir / "dist" / "app.js").unlink()
    for path in ("/", "/app.js"):
        status, headers, body = await harness.request("GET", path, content_type=None)
        assert status == 503
        assert headers["content-type"].startswith("text/html")
        assert b"web/build.sh" in body
    status, _, _ = await harness.request("GET", "/style.css", content_type=None)
    assert status == 200


async def test_join_answers_what_create_meeting_and_create_attendee_would(
    harness: Harness,
) -> None:
    status, body = await harness.join("team standup", "Ada Lovelace")
    assert status == 200
    assert set(body) == {"Meeting", "Attendee"}
    meeting = harness.registry.get_meeting(body["Meeting"]["MeetingId"])
    assert body["Meeting"] == harness.operations.meeting_to_wire(meeting)
    assert body["Meeting"]["ExternalMeetingId"] == "team standup"
    assert body["Meeting"]["MediaRegion"] == DEMO_MEDIA_REGION
    placement = body["Meeting"]["MediaPlacement"]
    assert placement["SignalingUrl"] == f"ws://127.0.0.1:8123/control/{meeting.meeting_id}"
    attendee = harness.registry.get_attendee(meeting, body["Attendee"]["AttendeeId"])
    assert body["Attendee"] == attendee.to_wire()
    assert re.fullmatch(r"Ada Lovelace#[0-9a-f]{6}", attendee.external_user_id)


async def test_joins_with_the_same_meeting_name_meet(harness: Harness) -> None:
    _, first = await harness.join("room", "Ada")
    _, second = await harness.join("room", "Ada")
    _, other = await harness.join("other room", "Ada")
    assert first["Meeting"]["MeetingId"] == second["Meeting"]["MeetingId"]
    assert other["Meeting"]["MeetingId"] != first["Meeting"]["MeetingId"]
    # Same display name, two people.
    assert first["Attendee"]["AttendeeId"] != second["Attendee"]["AttendeeId"]
    assert first["Attendee"]["ExternalUserId"] != second["Attendee"]["ExternalUserId"]


async def test_an_ended_meeting_is_replaced_by_a_new_one(harness: Harness) -> None:
    _, first = await harness.join("room", "Ada")
    harness.registry.delete_meeting(first["Meeting"]["MeetingId"], harness.clock.wall())
    status, second = await harness.join("room", "Ada")
    assert status == 200
    assert second["Meeting"]["MeetingId"] != first["Meeting"]["MeetingId"]


async def test_a_meeting_created_through_the_api_is_found_by_name(harness: Harness) -> None:
    meeting = harness.registry.create_meeting(
        {"ExternalMeetingId": "from api", "MediaRegion": "eu-west-1"}, harness.clock.wall()
    )
    _, body = await harness.join("from api", "Ada")
    assert body["Meeting"]["MeetingId"] == meeting.meeting_id


@pytest.mark.parametrize(
    ("meeting", "name"),
    [
        ("x", "Ada"),  # too short
        ("m" * 65, "Ada"),
        ("aws:reserved", "Ada"),
        ("room", "aws:me"),
        ("room", "   "),
        ("room", "ΩΩΩ"),  # nothing left of it
        (None, "Ada"),
        ("room", 7),
    ],
)
async def test_bad_names_are_rejected(harness: Harness, meeting: object, name: object) -> None:
    status, body = await harness.join(meeting, name)
    assert status == 400
    assert body["Code"] == "BadRequest"
    assert not list(harness.registry.meetings)


async def test_malformed_requests_are_rejected(harness: Harness) -> None:
    for payload in (b"not json", b"[1, 2]", b'"room"'):
        status, _, _ = await harness.request("POST", "/demo/join", payload)
        assert status == 400
    status, _, _ = await harness.request(
        "POST", "/demo/join", b'{"meeting": "room", "name": "Ada"}', content_type="text/plain"
    )
    assert status == 400, "a form post from another site must not join"
    assert not list(harness.registry.meetings)


async def test_the_meeting_quota_applies(harness: Harness) -> None:
    for i in range(3):
        status, _ = await harness.join(f"room {i}", "Ada")
        assert status == 200
    status, body = await harness.join("room 3", "Ada")
    assert status == 400
    assert body["Code"] == "ResourceLimitExceeded"


async def test_joins_are_rate_limited(harness: Harness) -> None:
    statuses = [(await harness.join("room", "Ada"))[0] for _ in range(JOIN_BURST + 1)]
    assert statuses[:JOIN_BURST] == [200] * JOIN_BURST
    assert statuses[-1] == 429
    harness.clock.advance(1.0)
    assert (await harness.join("room", "Ada"))[0] == 200


def test_external_user_ids_satisfy_the_documented_rules() -> None:
    for raw in ("A", "Ada Lovelace", "  x\t y ", "Zoë <script>", "名前 Bob", "é" * 100, "a#b"):
        value = external_user_id(raw)
        assert _EXTERNAL_ID.fullmatch(value), value
        assert value.count("#") == 1
    assert external_user_id("Zoë <script>", suffix="abc123") == "Zoë script#abc123"
    assert len(external_user_id("x" * 200)) == 64


def test_meeting_names_are_cleaned() -> None:
    assert meeting_name("  Team   standup\n") == "Team standup"
    assert meeting_name("a#b") == "ab"
    with pytest.raises(InvalidArgument):
        meeting_name("#")

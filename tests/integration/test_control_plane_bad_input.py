"""Requests no SDK would send still get the modeled 4xx and change nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.rawhttp import raw_request

GUID = "00000000-0000-4000-8000-000000000000"
_BASE = b'{"MediaRegion": "us-east-1", "ExternalMeetingId": "m1"'


def _count_meetings(server: Any, chime: Any, meeting_ids: list[str]) -> int:
    alive = 0
    for meeting_id in meeting_ids:
        try:
            chime.get_meeting(MeetingId=meeting_id)
            alive += 1
        except chime.exceptions.NotFoundException:
            pass
    return alive


def test_no_authorization_header_is_missing_authentication_token(server: Any) -> None:
    response = raw_request(server.http_port, "GET", f"/meetings/{GUID}", sign=False)
    assert response.status == 403
    assert response.error_type == "MissingAuthenticationTokenException"
    body = response.json()
    assert body["Code"] == "MissingAuthenticationToken"
    assert body["RequestId"] == response.headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "structure"),
        (b'"text"', "structure"),
        (
            b'{"MediaRegion": "us-east-1", "ExternalMeetingId": "m1", "ClientRequestToken": 12}',
            "string",
        ),
        (
            _BASE + b', "ClientRequestToken": "ab", "Bogus": 1}',
            "Unknown member",
        ),
        (b'{"MediaRegion": "us-east-1", "ClientRequestToken": "ab"}', "externalMeetingId"),
        (
            b'{"MediaRegion": NaN, "ExternalMeetingId": "m1", "ClientRequestToken": "ab"}',
            "not valid JSON",
        ),
        (
            _BASE + b', "ClientRequestToken": "ab", '
            b'"MeetingFeatures": {"Attendee": {"MaxCount": true}}}',
            "integer",
        ),
    ],
)
def test_malformed_bodies_are_bad_requests(server: Any, body: bytes, fragment: str) -> None:
    response = raw_request(server.http_port, "POST", "/meetings", body)
    assert response.status == 400, response.body
    assert response.error_type == "BadRequestException"
    assert fragment in response.json()["Message"]


def test_body_over_one_mebibyte_is_rejected(server: Any) -> None:
    big = json.dumps({"MediaRegion": "us-east-1", "ExternalMeetingId": "m", "Pad": "x" * (1 << 20)})
    response = raw_request(server.http_port, "POST", "/meetings", big.encode())
    assert response.status == 400
    assert response.error_type == "BadRequestException"
    assert "exceeds" in response.json()["Message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing-here"),
        ("PATCH", "/meetings"),
        ("GET", f"/meetings/{GUID}/attendees/{GUID}/extra"),
        ("PUT", f"/meetings/{GUID}/attendees/capabilities"),
        ("POST", f"/meetings/{GUID}/transcription?operation=pause"),
    ],
)
def test_unknown_operations_are_404(server: Any, method: str, path: str) -> None:
    response = raw_request(server.http_port, method, path, b"{}" if method != "GET" else b"")
    assert response.status == 404
    assert response.error_type == "UnknownOperationException"


def test_bad_input_never_changes_state(server: Any, chime: Any) -> None:
    meeting = chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="stable")["Meeting"]
    meeting_id = meeting["MeetingId"]
    chime.create_attendee(MeetingId=meeting_id, ExternalUserId="keep")
    bad_bodies = [
        b'{"Attendees": [{"ExternalUserId": "ok-1"}, {"ExternalUserId": 5}]}',
        b'{"Attendees": []}',
        b'{"Attendees": [{"ExternalUserId": "x", "Capabilities": {"Audio": "Loud"}}]}',
    ]
    for body in bad_bodies:
        response = raw_request(
            server.http_port,
            "POST",
            f"/meetings/{meeting_id}/attendees?operation=batch-create",
            body,
        )
        assert response.status == 400, body
    attendees = chime.list_attendees(MeetingId=meeting_id)["Attendees"]
    assert [a["ExternalUserId"] for a in attendees] == ["keep"]
    assert chime.get_meeting(MeetingId=meeting_id)["Meeting"] == meeting


def test_health_needs_no_credentials(server: Any) -> None:
    response = raw_request(server.http_port, "GET", "/health", sign=False)
    assert response.status == 200


def test_the_event_ingestion_url_accepts_client_events(server: Any, chime: Any) -> None:
    """The JS client posts its events to MediaPlacement.EventIngestionUrl (no SigV4)."""
    meeting = chime.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="ingest")["Meeting"]
    url = meeting["MediaPlacement"]["EventIngestionUrl"]
    path = url.split(str(server.http_port), 1)[1]
    preflight = raw_request(server.http_port, "OPTIONS", path, sign=False)
    assert preflight.status == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    body = json.dumps({"metadata": {}, "events": []}).encode()
    response = raw_request(
        server.http_port, "POST", path, body, sign=False,
        headers={"Authorization": "Bearer token", "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status == 204

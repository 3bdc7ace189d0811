"""The 16 ChimeSDKMeetings operations on top of the registry (pure, no I/O).

Each handler takes the validated request and returns an :class:`ApiResult`; errors are
raised from :mod:`mediaserver.errors` and turned into the wire format by the HTTP shell
(``../shared/spec/control-plane-api.md`` sections 2-7).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mediaserver.config import ServerConfig, format_host
from mediaserver.control import shapes
from mediaserver.control.router import Route
from mediaserver.control.schema import Struct, validate
from mediaserver.errors import InvalidArgument, MediaServerError
from mediaserver.registry import Attendee, Meeting, MeetingRegistry

__all__ = ["ApiRequest", "ApiResult", "Operations", "media_placement"]

_GUID = re.compile(shapes.GUID_PATTERN)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """A routed, authenticated request."""

    route: Route
    query: Sequence[tuple[str, str]]
    body: dict[str, Any]
    caller: str
    """The access key id that signed the request (idempotency keys are per caller)."""
    now: float
    """Wall-clock time, epoch seconds."""

    def query_value(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ApiResult:
    """Status and JSON body (None for an empty body)."""

    status: int
    body: dict[str, Any] | None


def media_placement(config: ServerConfig, meeting_id: str) -> dict[str, str]:
    """MediaPlacement URLs pointing at this server (control-plane-api.md §5).

    ``SignalingUrl`` has no query string because the client appends ``?...``
    unconditionally (chime-signaling-protocol.md §1.1).
    """
    host = format_host(config.advertised_host)
    base = config.base_url
    # WebSocket URLs follow the HTTP scheme: wss:// whenever clients reach us over TLS
    # (RFC 6455 §3), directly (--tls-cert) or through a proxy (--public-url https://...).
    ws = "wss" + base[len("https") :] if base.startswith("https") else "ws" + base[len("http") :]
    return {
        "AudioHostUrl": f"{host}:{config.udp_port}",
        "AudioFallbackUrl": f"{ws}/calls/{meeting_id}",
        "SignalingUrl": f"{ws}/control/{meeting_id}",
        "TurnControlUrl": f"{base}/v2/turn_sessions",
        "ScreenDataUrl": f"{ws}/v2/screen/{meeting_id}",
        "ScreenViewingUrl": f"{ws}/ws/connect?passcode=null&viewer_uuid=null"
        f"&X-BitHub-Call-Id={meeting_id}",
        "ScreenSharingUrl": f"{ws}/v2/screen/{meeting_id}",
        "EventIngestionUrl": f"{base}/v1/client-events",
    }


def _check_guid(value: str | None, member: str) -> str:
    if value is None or _GUID.fullmatch(value) is None:
        raise InvalidArgument(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {shapes.GUID_PATTERN}"
        )
    return value


class Operations:
    """Handlers of the ChimeSDKMeetings operations."""

    def __init__(self, registry: MeetingRegistry, config: ServerConfig) -> None:
        self.registry = registry
        self.config = config
        self._handlers: dict[str, tuple[Struct | None, Callable[[ApiRequest], ApiResult]]] = {
            "CreateMeeting": (shapes.CREATE_MEETING, self.create_meeting),
            "CreateMeetingWithAttendees": (
                shapes.CREATE_MEETING_WITH_ATTENDEES,
                self.create_meeting_with_attendees,
            ),
            "GetMeeting": (None, self.get_meeting),
            "DeleteMeeting": (None, self.delete_meeting),
            "CreateAttendee": (shapes.CREATE_ATTENDEE, self.create_attendee),
            "BatchCreateAttendee": (shapes.BATCH_CREATE_ATTENDEE, self.batch_create_attendee),
            "ListAttendees": (None, self.list_attendees),
            "GetAttendee": (None, self.get_attendee),
            "DeleteAttendee": (None, self.delete_attendee),
            "UpdateAttendeeCapabilities": (shapes.UPDATE_CAPABILITIES, self.update_capabilities),
            "BatchUpdateAttendeeCapabilitiesExcept": (
                shapes.BATCH_UPDATE_CAPABILITIES_EXCEPT,
                self.batch_update_capabilities_except,
            ),
            "StartMeetingTranscription": (shapes.START_TRANSCRIPTION, self.start_transcription),
            "StopMeetingTranscription": (shapes.EMPTY, self.stop_transcription),
            "ListTagsForResource": (None, self.list_tags),
            "TagResource": (shapes.TAG_RESOURCE, self.tag_resource),
            "UntagResource": (shapes.UNTAG_RESOURCE, self.untag_resource),
        }

    @property
    def operation_names(self) -> list[str]:
        return list(self._handlers)

    def dispatch(self, request: ApiRequest, raw_body: object) -> ApiResult:
        """Validate the body of ``request`` against its operation's shape, then run it.

        Raises:
            MediaServerError: the modeled error of the operation.
        """
        shape, handler = self._handlers[request.route.operation]
        if request.route.meeting_id is not None:
            _check_guid(request.route.meeting_id, "meetingId")
        if request.route.attendee_id is not None:
            _check_guid(request.route.attendee_id, "attendeeId")
        body = validate(shape, raw_body) if shape is not None else {}
        request = ApiRequest(request.route, request.query, body, request.caller, request.now)
        return handler(request)

    # -- rendering --------------------------------------------------------------------

    def meeting_to_wire(self, meeting: Meeting) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "MeetingId": meeting.meeting_id,
            "ExternalMeetingId": meeting.external_meeting_id,
            "MediaRegion": meeting.media_region,
            "MediaPlacement": media_placement(self.config, meeting.meeting_id),
            "MeetingArn": meeting.arn,
        }
        if meeting.meeting_host_id is not None:
            wire["MeetingHostId"] = meeting.meeting_host_id
        if meeting.features is not None:
            wire["MeetingFeatures"] = meeting.features
        if meeting.primary_meeting_id is not None:
            wire["PrimaryMeetingId"] = meeting.primary_meeting_id
        if meeting.tenant_ids is not None:
            wire["TenantIds"] = meeting.tenant_ids
        return wire

    @staticmethod
    def _split(
        items: list[tuple[str, dict[str, str] | None]], results: list[Attendee | MediaServerError]
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        attendees: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for (external_user_id, _), result in zip(items, results, strict=True):
            if isinstance(result, MediaServerError):
                errors.append(
                    {
                        "ExternalUserId": external_user_id,
                        "ErrorCode": result.code,
                        "ErrorMessage": str(result),
                    }
                )
            else:
                attendees.append(result.to_wire())
        return attendees, errors

    # -- meetings ---------------------------------------------------------------------

    def _idempotency_key(self, request: ApiRequest) -> str:
        token = request.body["ClientRequestToken"]
        return f"{request.caller}:{request.route.operation}:{token}"

    def create_meeting(self, request: ApiRequest) -> ApiResult:
        key = self._idempotency_key(request)
        remembered = self.registry.remembered(key, request.now)
        if remembered is not None:
            return ApiResult(200, remembered)
        meeting = self.registry.create_meeting(request.body, request.now)
        response = {"Meeting": self.meeting_to_wire(meeting)}
        self.registry.remember(key, response, request.now)
        return ApiResult(200, response)

    def create_meeting_with_attendees(self, request: ApiRequest) -> ApiResult:
        key = self._idempotency_key(request)
        remembered = self.registry.remembered(key, request.now)
        if remembered is not None:
            return ApiResult(200, remembered)
        params = {k: v for k, v in request.body.items() if k != "Attendees"}
        items = [(a["ExternalUserId"], a.get("Capabilities")) for a in request.body["Attendees"]]
        meeting = self.registry.create_meeting(params, request.now)
        attendees, errors = self._split(items, self.registry.create_attendees(meeting, items))
        response = {
            "Meeting": self.meeting_to_wire(meeting),
            "Attendees": attendees,
            "Errors": errors,
        }
        self.registry.remember(key, response, request.now)
        return ApiResult(200, response)

    def _meeting(self, request: ApiRequest) -> Meeting:
        assert request.route.meeting_id is not None
        return self.registry.get_meeting(request.route.meeting_id)

    def get_meeting(self, request: ApiRequest) -> ApiResult:
        return ApiResult(200, {"Meeting": self.meeting_to_wire(self._meeting(request))})

    def delete_meeting(self, request: ApiRequest) -> ApiResult:
        assert request.route.meeting_id is not None
        self.registry.delete_meeting(request.route.meeting_id, request.now)
        return ApiResult(204, None)

    # -- attendees --------------------------------------------------------------------

    def create_attendee(self, request: ApiRequest) -> ApiResult:
        meeting = self._meeting(request)
        attendee = self.registry.create_attendee(
            meeting, request.body["ExternalUserId"], request.body.get("Capabilities")
        )
        return ApiResult(200, {"Attendee": attendee.to_wire()})

    def batch_create_attendee(self, request: ApiRequest) -> ApiResult:
        meeting = self._meeting(request)
        items = [(a["ExternalUserId"], a.get("Capabilities")) for a in request.body["Attendees"]]
        attendees, errors = self._split(items, self.registry.create_attendees(meeting, items))
        return ApiResult(200, {"Attendees": attendees, "Errors": errors})

    def list_attendees(self, request: ApiRequest) -> ApiResult:
        meeting = self._meeting(request)
        raw_max = request.query_value("max-results")
        max_results = 100
        if raw_max is not None:
            if not raw_max.isdigit() or not 1 <= int(raw_max) <= 100:
                raise InvalidArgument(
                    f"1 validation error detected: Value '{raw_max}' at 'maxResults' failed "
                    "to satisfy constraint: Member must have value between 1 and 100"
                )
            max_results = int(raw_max)
        next_token = request.query_value("next-token")
        if next_token is not None and len(next_token) > 4096:
            raise InvalidArgument(
                "1 validation error detected: Value at 'nextToken' failed to satisfy "
                "constraint: Member must have length less than or equal to 4096"
            )
        page, token = self.registry.list_attendees(meeting, next_token, max_results)
        body: dict[str, Any] = {"Attendees": [a.to_wire() for a in page]}
        if token is not None:
            body["NextToken"] = token
        return ApiResult(200, body)

    def get_attendee(self, request: ApiRequest) -> ApiResult:
        assert request.route.attendee_id is not None
        meeting = self._meeting(request)
        attendee = self.registry.get_attendee(meeting, request.route.attendee_id)
        return ApiResult(200, {"Attendee": attendee.to_wire()})

    def delete_attendee(self, request: ApiRequest) -> ApiResult:
        assert request.route.attendee_id is not None
        meeting = self._meeting(request)
        self.registry.delete_attendee(meeting, request.route.attendee_id)
        return ApiResult(204, None)

    def update_capabilities(self, request: ApiRequest) -> ApiResult:
        assert request.route.attendee_id is not None
        meeting = self._meeting(request)
        attendee = self.registry.update_capabilities(
            meeting, request.route.attendee_id, request.body["Capabilities"]
        )
        return ApiResult(200, {"Attendee": attendee.to_wire()})

    def batch_update_capabilities_except(self, request: ApiRequest) -> ApiResult:
        meeting = self._meeting(request)
        excluded = [item["AttendeeId"] for item in request.body["ExcludedAttendeeIds"]]
        self.registry.update_capabilities_except(meeting, excluded, request.body["Capabilities"])
        return ApiResult(200, None)

    # -- transcription ----------------------------------------------------------------

    def start_transcription(self, request: ApiRequest) -> ApiResult:
        meeting = self._meeting(request)
        self.registry.start_transcription(meeting, request.body["TranscriptionConfiguration"])
        return ApiResult(200, None)

    def stop_transcription(self, request: ApiRequest) -> ApiResult:
        self.registry.stop_transcription(self._meeting(request))
        return ApiResult(200, None)

    # -- tags -------------------------------------------------------------------------

    def list_tags(self, request: ApiRequest) -> ApiResult:
        arn = request.query_value("arn")
        if arn is None:
            raise InvalidArgument(
                "1 validation error detected: Value null at 'resourceARN' failed to satisfy "
                "constraint: Member must not be null"
            )
        shapes.LIST_TAGS_ARN.check(arn, "resourceARN")
        meeting = self.registry.meeting_for_arn(arn)
        return ApiResult(200, {"Tags": [{"Key": k, "Value": v} for k, v in meeting.tags.items()]})

    def tag_resource(self, request: ApiRequest) -> ApiResult:
        self.registry.tag(request.body["ResourceARN"], request.body["Tags"])
        return ApiResult(204, None)

    def untag_resource(self, request: ApiRequest) -> ApiResult:
        self.registry.untag(request.body["ResourceARN"], request.body["TagKeys"])
        return ApiResult(204, None)

"""The meeting registry: all meeting and attendee state, sans I/O.

Rules of this file:

* Every method that changes state first validates everything it will need ("may raise"
  before any change), then changes memory, then writes the change through to the store.
  A request that fails changes nothing.
* Time is passed in as ``now`` (wall-clock epoch seconds; lifecycle limits are wall-clock
  durations and survive restarts). Timers are pulled: :meth:`get_timer` says when
  :meth:`handle_timer` must run next.
* Listeners receive :mod:`mediaserver.registry.events`; a listener that raises is logged
  and never breaks the registry.

Meeting lifecycle (meetings-digest.md §12, control-plane-api.md §3 "Auto-end"): a meeting
ends on DeleteMeeting, 24 hours after creation, after 5 consecutive minutes with no
attendee connected (counted from creation or from the last departure), and, for a replica,
when its primary ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mediaserver.errors import (
    InvalidArgument,
    InvalidToken,
    LimitExceeded,
    MediaServerError,
    MeetingEnded,
    NotFound,
    ResourceNotFound,
    TooManyTags,
)
from mediaserver.registry.events import (
    AttendeeCapabilitiesUpdated,
    AttendeeCreated,
    AttendeeDeleted,
    MeetingCreated,
    MeetingEnded as MeetingEndedEvent,
    RegistryEvent,
)
from mediaserver.registry.models import CONTENT_SUFFIX, Attendee, Capabilities, Meeting
from mediaserver.registry.store import IdempotencyRecord, MeetingStore
from mediaserver.types import AttendeeId, MeetingId

__all__ = ["JoinGrant", "Limits", "MeetingRegistry", "derive_account_id"]

logger = logging.getLogger(__name__)

MAX_MEETING_DURATION = 24 * 3600.0
"""A meeting ends 24 hours after creation (meetings-digest.md §12)."""
IDLE_TIMEOUT = 5 * 60.0
"""A meeting with no attendee connected for 5 consecutive minutes ends."""
IDEMPOTENCY_RETENTION = 24 * 3600.0
"""ClientRequestToken records are kept at least as long as a meeting can live."""
MAX_TAGS = 50


@dataclass(frozen=True, slots=True)
class Limits:
    """Quotas the registry enforces (meetings-digest.md §3)."""

    max_active_meetings: int = 250
    max_attendees_per_meeting: int = 250
    max_replicas_per_primary: int = 4


@dataclass(frozen=True, slots=True)
class JoinGrant:
    """The result of authorizing a signaling connection."""

    meeting: Meeting
    attendee: Attendee
    content: bool
    """True for the ``#content`` share session of the attendee."""

    @property
    def attendee_id(self) -> str:
        return self.attendee.attendee_id + (CONTENT_SUFFIX if self.content else "")


def derive_account_id(access_key_id: str) -> str:
    """A stable 12-digit account id for ARNs, derived from the server's access key id."""
    digest = int.from_bytes(hashlib.sha256(access_key_id.encode()).digest()[:8], "big")
    return f"{digest % 10**12:012d}"


def new_join_token() -> str:
    """256 random bits as base64url without padding: a valid RFC 7230 token (spec §0)."""
    return secrets.token_urlsafe(32)


def _new_guid() -> str:
    return str(uuid.uuid4())


Listener = Callable[[RegistryEvent], None]


class MeetingRegistry:
    """Meetings, attendees, idempotency records and lifecycle timers."""

    def __init__(
        self,
        store: MeetingStore,
        *,
        now: float,
        limits: Limits | None = None,
        account_id: str = "000000000000",
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.account_id = account_id
        self._meetings: dict[MeetingId, Meeting] = {}
        self._idempotency: dict[str, IdempotencyRecord] = {}
        self._listeners: list[Listener] = []
        self._load(now)

    # -- start-up ---------------------------------------------------------------------

    def _load(self, now: float) -> None:
        state = self.store.load()
        for record in state.meetings:
            meeting = Meeting.from_record(record)
            # Nobody is connected after a restart; the idle timer restarts now.
            meeting.empty_since = now
            self._meetings[meeting.meeting_id] = meeting
        for meeting_id, record in state.attendees:
            owner = self._meetings.get(MeetingId(meeting_id))
            if owner is not None:
                owner.add_attendee(Attendee.from_record(record))
        for idem in state.idempotency:
            self._idempotency[idem.key] = idem
        logger.info(
            "registry loaded %d meetings, %d attendees",
            len(self._meetings),
            sum(len(m.attendees) for m in self._meetings.values()),
        )

    # -- listeners --------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`RegistryEvent` from now on."""
        self._listeners.append(listener)

    def _emit(self, event: RegistryEvent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("registry listener failed on %s", type(event).__name__)

    # -- meetings ---------------------------------------------------------------------

    @property
    def meetings(self) -> Iterable[Meeting]:
        return self._meetings.values()

    def get_meeting(self, meeting_id: str) -> Meeting:
        """Raises:  NotFound: the meeting does not exist or has ended."""
        meeting = self._meetings.get(MeetingId(meeting_id.lower()))
        if meeting is None:
            raise NotFound(f"Meeting {meeting_id} not found")
        return meeting

    def create_meeting(self, params: dict[str, Any], now: float) -> Meeting:
        """Create a meeting from a validated CreateMeeting body (without Attendees).

        Raises:
            InvalidArgument: inconsistent features, reserved ids, bad primary meeting.
            LimitExceeded: the active-meeting or replica quota is reached.
        """
        _check_external_id(params["ExternalMeetingId"], "ExternalMeetingId")
        if "MeetingHostId" in params:
            _check_external_id(params["MeetingHostId"], "MeetingHostId")
        features = params.get("MeetingFeatures")
        _check_features(features)
        if len(self._meetings) >= self.limits.max_active_meetings:
            raise LimitExceeded(
                f"The active meeting limit of {self.limits.max_active_meetings} is reached"
            )
        primary_id: MeetingId | None = None
        if "PrimaryMeetingId" in params:
            primary = self._meetings.get(MeetingId(params["PrimaryMeetingId"].lower()))
            if primary is None:
                raise InvalidArgument(f"Primary meeting {params['PrimaryMeetingId']} not found")
            if primary.primary_meeting_id is not None:
                raise InvalidArgument(
                    f"Meeting {primary.meeting_id} is a replica and cannot be a primary meeting"
                )
            replicas = sum(
                1 for m in self._meetings.values() if m.primary_meeting_id == primary.meeting_id
            )
            if replicas >= self.limits.max_replicas_per_primary:
                raise LimitExceeded(
                    f"Meeting {primary.meeting_id} already has {replicas} replica meetings"
                )
            primary_id = primary.meeting_id
        tags = _tags_from_wire(params.get("Tags", []))
        meeting = Meeting(
            meeting_id=MeetingId(_new_guid()),
            external_meeting_id=params["ExternalMeetingId"],
            media_region=params["MediaRegion"],
            created_at=now,
            meeting_host_id=params.get("MeetingHostId"),
            features=features,
            notifications=params.get("NotificationsConfiguration"),
            primary_meeting_id=primary_id,
            tenant_ids=params.get("TenantIds"),
            network_type=params.get("MediaPlacementNetworkType"),
            tags=tags,
            account_id=self.account_id,
            empty_since=now,
        )
        self._meetings[meeting.meeting_id] = meeting
        self.store.save_meeting(meeting.meeting_id, meeting.to_record())
        logger.info(
            "meeting %s created", meeting.meeting_id, extra={"meeting_id": meeting.meeting_id}
        )
        self._emit(MeetingCreated(meeting))
        return meeting

    def delete_meeting(self, meeting_id: str, now: float) -> None:
        """DeleteMeeting: end the meeting, its attendees and, for a primary, its replicas.

        Raises:
            NotFound: no such meeting.
        """
        self._end(self.get_meeting(meeting_id), "deleted")

    def _end(self, meeting: Meeting, reason: str) -> None:
        if self._meetings.pop(meeting.meeting_id, None) is None:
            return
        self.store.delete_meeting(meeting.meeting_id)
        logger.info(
            "meeting %s ended (%s)",
            meeting.meeting_id,
            reason,
            extra={"meeting_id": meeting.meeting_id},
        )
        self._emit(MeetingEndedEvent(meeting, reason))
        for replica in [
            m for m in self._meetings.values() if m.primary_meeting_id == meeting.meeting_id
        ]:
            self._end(replica, "primary-ended")

    # -- attendees --------------------------------------------------------------------

    def default_capabilities(self, meeting: Meeting) -> Capabilities:
        """Capabilities of an attendee created without any (control-plane-api.md §3)."""
        video_off = meeting.video_max_resolution == "None"
        content_off = meeting.content_max_resolution == "None"
        if video_off and not content_off:
            return Capabilities("SendReceive", "Receive", "SendReceive")
        return Capabilities(
            "SendReceive",
            "None" if video_off else "SendReceive",
            "None" if content_off else "SendReceive",
        )

    def check_capabilities(self, meeting: Meeting, caps: Capabilities) -> None:
        """Raises:  InvalidArgument: the capabilities conflict with the meeting's features."""
        if meeting.video_max_resolution == "None" and caps.video != "None":
            raise InvalidArgument(
                "Video capabilities must be None when MeetingFeatures.Video.MaxResolution is None"
            )
        if meeting.content_max_resolution == "None" and caps.content != "None":
            raise InvalidArgument(
                "Content capabilities must be None when "
                "MeetingFeatures.Content.MaxResolution is None"
            )
        if caps.content in ("SendReceive", "Receive") and caps.video not in (
            "SendReceive",
            "Receive",
        ):
            raise InvalidArgument(
                "Content capabilities SendReceive or Receive require Video capabilities "
                "SendReceive or Receive"
            )

    def create_attendees(
        self, meeting: Meeting, items: list[tuple[str, dict[str, str] | None]]
    ) -> list[Attendee | MediaServerError]:
        """Create attendees from (ExternalUserId, Capabilities) pairs, item by item.

        An ExternalUserId already in the meeting (or earlier in ``items``) returns that
        attendee: ExternalUserId is an idempotency token within a meeting. An item that
        fails yields its error in its place and creates nothing.
        """
        results: list[Attendee | MediaServerError] = []
        pending: dict[str, Attendee] = {}
        limit = self.limits.max_attendees_per_meeting
        if meeting.max_count is not None:
            limit = min(limit, meeting.max_count)
        for external_user_id, capabilities in items:
            try:
                _check_external_id(external_user_id, "ExternalUserId")
                existing = meeting.by_external_id.get(external_user_id)
                if existing is not None:
                    results.append(meeting.attendees[existing])
                    continue
                if external_user_id in pending:
                    results.append(pending[external_user_id])
                    continue
                caps = (
                    Capabilities.from_wire(capabilities)
                    if capabilities is not None
                    else self.default_capabilities(meeting)
                )
                self.check_capabilities(meeting, caps)
                if len(meeting.attendees) + len(pending) >= limit:
                    raise LimitExceeded(
                        f"Meeting {meeting.meeting_id} reached its limit of {limit} attendees"
                    )
            except MediaServerError as exc:
                results.append(exc)
                continue
            attendee = Attendee(
                attendee_id=AttendeeId(_new_guid()),
                external_user_id=external_user_id,
                join_token=new_join_token(),
                capabilities=caps,
                seq=meeting.next_seq + len(pending),
            )
            pending[external_user_id] = attendee
            results.append(attendee)
        if pending:
            for attendee in pending.values():
                meeting.add_attendee(attendee)
            self.store.save_attendees(meeting.meeting_id, [a.to_record() for a in pending.values()])
            for attendee in pending.values():
                self._emit(AttendeeCreated(meeting, attendee))
        return results

    def create_attendee(
        self, meeting: Meeting, external_user_id: str, capabilities: dict[str, str] | None
    ) -> Attendee:
        """CreateAttendee.

        Raises:
            InvalidArgument: a reserved id or conflicting capabilities.
            LimitExceeded: the meeting is full.
        """
        (result,) = self.create_attendees(meeting, [(external_user_id, capabilities)])
        if isinstance(result, MediaServerError):
            raise result
        return result

    def get_attendee(self, meeting: Meeting, attendee_id: str) -> Attendee:
        """Raises:  NotFound: no such attendee in this meeting."""
        attendee = meeting.attendees.get(AttendeeId(attendee_id.lower()))
        if attendee is None:
            raise NotFound(f"Attendee {attendee_id} not found")
        return attendee

    def delete_attendee(self, meeting: Meeting, attendee_id: str) -> None:
        """DeleteAttendee: the join token stops working and live sessions are ended."""
        attendee = self.get_attendee(meeting, attendee_id)
        meeting.remove_attendee(attendee)
        self.store.delete_attendee(attendee.attendee_id)
        logger.info(
            "meeting %s attendee %s deleted",
            meeting.meeting_id,
            attendee.attendee_id,
            extra={"meeting_id": meeting.meeting_id, "attendee_id": attendee.attendee_id},
        )
        self._emit(AttendeeDeleted(meeting, attendee))

    def list_attendees(
        self, meeting: Meeting, next_token: str | None, max_results: int
    ) -> tuple[list[Attendee], str | None]:
        """One page of attendees in creation order and the token of the next page.

        Raises:
            InvalidArgument: ``next_token`` was not produced by this server.
        """
        after = -1
        if next_token is not None:
            after = _decode_page_token(next_token, meeting.meeting_id)
        ordered = sorted(
            (a for a in meeting.attendees.values() if a.seq > after), key=lambda a: a.seq
        )
        page = ordered[:max_results]
        token = None
        if len(ordered) > max_results:
            token = _encode_page_token(meeting.meeting_id, page[-1].seq)
        return page, token

    def update_capabilities(
        self, meeting: Meeting, attendee_id: str, capabilities: dict[str, str]
    ) -> Attendee:
        """UpdateAttendeeCapabilities.  Raises NotFound or InvalidArgument, changing nothing."""
        attendee = self.get_attendee(meeting, attendee_id)
        caps = Capabilities.from_wire(capabilities)
        self.check_capabilities(meeting, caps)
        self._set_capabilities(meeting, [attendee], caps)
        return attendee

    def update_capabilities_except(
        self, meeting: Meeting, excluded: Iterable[str], capabilities: dict[str, str]
    ) -> None:
        """BatchUpdateAttendeeCapabilitiesExcept: all attendees not listed get ``capabilities``."""
        caps = Capabilities.from_wire(capabilities)
        self.check_capabilities(meeting, caps)
        skip = {a.lower() for a in excluded}
        targets = [a for a in meeting.attendees.values() if a.attendee_id not in skip]
        self._set_capabilities(meeting, targets, caps)

    def _set_capabilities(
        self, meeting: Meeting, attendees: list[Attendee], caps: Capabilities
    ) -> None:
        for attendee in attendees:
            attendee.capabilities = Capabilities(caps.audio, caps.video, caps.content)
        if attendees:
            self.store.save_attendees(meeting.meeting_id, [a.to_record() for a in attendees])
        for attendee in attendees:
            self._emit(AttendeeCapabilitiesUpdated(meeting, attendee))

    # -- transcription ----------------------------------------------------------------

    def start_transcription(self, meeting: Meeting, configuration: dict[str, Any]) -> None:
        """Store the transcription configuration (the engine is a later subsystem).

        Raises:
            InvalidArgument: not exactly one engine, or inconsistent engine settings.
        """
        engines = [k for k in configuration if configuration[k] is not None]
        if len(engines) != 1:
            raise InvalidArgument(
                "TranscriptionConfiguration must contain exactly one of "
                "EngineTranscribeSettings and EngineTranscribeMedicalSettings"
            )
        settings = configuration.get("EngineTranscribeSettings")
        if settings is not None:
            _check_transcribe_settings(settings)
        meeting.transcription = configuration
        self.store.save_meeting(meeting.meeting_id, meeting.to_record())

    def stop_transcription(self, meeting: Meeting) -> None:
        meeting.transcription = None
        self.store.save_meeting(meeting.meeting_id, meeting.to_record())

    # -- tags -------------------------------------------------------------------------

    def meeting_for_arn(self, arn: str) -> Meeting:
        """Raises:  ResourceNotFound: the ARN names no active meeting of this server."""
        prefix, _, meeting_id = arn.rpartition(":meeting/")
        meeting = self._meetings.get(MeetingId(meeting_id.lower())) if prefix else None
        if meeting is None or meeting.arn != arn:
            raise ResourceNotFound(f"Resource {arn} not found", resource_name=arn)
        return meeting

    def tag(self, arn: str, tags: list[dict[str, str]]) -> None:
        """TagResource.  Raises ResourceNotFound, TooManyTags, changing nothing."""
        meeting = self.meeting_for_arn(arn)
        merged = {**meeting.tags, **_tags_from_wire(tags)}
        if len(merged) > MAX_TAGS:
            raise TooManyTags(
                f"Resource {arn} would have {len(merged)} tags; the limit is {MAX_TAGS}",
                resource_name=arn,
            )
        meeting.tags = merged
        self.store.save_meeting(meeting.meeting_id, meeting.to_record())

    def untag(self, arn: str, keys: list[str]) -> None:
        """UntagResource.  Raises ResourceNotFound."""
        meeting = self.meeting_for_arn(arn)
        for key in keys:
            meeting.tags.pop(key, None)
        self.store.save_meeting(meeting.meeting_id, meeting.to_record())

    # -- idempotency ------------------------------------------------------------------

    def remembered(self, key: str, now: float) -> dict[str, Any] | None:
        """The response stored for an idempotency key, if it has not expired."""
        record = self._idempotency.get(key)
        if record is None or record.expires_at < now:
            return None
        return record.response

    def remember(self, key: str, response: dict[str, Any], now: float) -> None:
        record = IdempotencyRecord(key, response, now + IDEMPOTENCY_RETENTION)
        self._idempotency[key] = record
        self.store.save_idempotency(record)

    # -- signaling ----------------------------------------------------------------------

    def authorize_join(self, meeting_id: str, token: str) -> JoinGrant:
        """Check a signaling connection's join token (chime-signaling-protocol.md §1.1).

        Raises:
            MeetingEnded: the meeting does not exist or has ended (close 4410).
            InvalidToken: the token is unknown or was deleted (close 4403).
        """
        meeting = self._meetings.get(MeetingId(meeting_id.lower()))
        if meeting is None:
            raise MeetingEnded(f"Meeting {meeting_id} not found")
        content = token.endswith(CONTENT_SUFFIX)
        base = token[: -len(CONTENT_SUFFIX)] if content else token
        attendee_id = meeting.by_token.get(base)
        if attendee_id is None:
            raise InvalidToken("The join token is not valid for this meeting")
        return JoinGrant(meeting, meeting.attendees[attendee_id], content)

    def attendee_connected(self, meeting: Meeting, attendee_id: AttendeeId) -> None:
        """The gateway reports a live signaling connection of ``attendee_id``."""
        meeting.connections[attendee_id] = meeting.connections.get(attendee_id, 0) + 1
        meeting.empty_since = None

    def attendee_disconnected(self, meeting: Meeting, attendee_id: AttendeeId, now: float) -> None:
        """The gateway reports that a connection of ``attendee_id`` ended."""
        count = meeting.connections.get(attendee_id, 0) - 1
        if count > 0:
            meeting.connections[attendee_id] = count
        else:
            meeting.connections.pop(attendee_id, None)
        if not meeting.connections and meeting.empty_since is None:
            meeting.empty_since = now

    # -- timers -----------------------------------------------------------------------

    def _deadline(self, meeting: Meeting) -> float:
        deadline = meeting.created_at + MAX_MEETING_DURATION
        # Replicas never idle-expire; they end with their primary (meetings-digest.md §12).
        if meeting.empty_since is not None and meeting.primary_meeting_id is None:
            deadline = min(deadline, meeting.empty_since + IDLE_TIMEOUT)
        return deadline

    def get_timer(self) -> float | None:
        """Wall time at which :meth:`handle_timer` must run next, or None."""
        if not self._meetings:
            return None
        return min(self._deadline(m) for m in self._meetings.values())

    def handle_timer(self, now: float) -> None:
        """End every meeting whose lifetime or idle time ran out, and purge old records."""
        for meeting in list(self._meetings.values()):
            if meeting.meeting_id not in self._meetings:
                continue  # ended with its primary during this loop
            if now >= meeting.created_at + MAX_MEETING_DURATION:
                self._end(meeting, "expired")
            elif now >= self._deadline(meeting):
                self._end(meeting, "idle")
        expired = [k for k, r in self._idempotency.items() if r.expires_at < now]
        if expired:
            for key in expired:
                del self._idempotency[key]
            self.store.purge_idempotency(now)


def _check_external_id(value: str, name: str) -> None:
    # The "aws:" prefix is reserved, case-insensitively (control-plane-api.md §3).
    if value[:4].lower() == "aws:":
        raise InvalidArgument(f"{name} must not start with the reserved prefix 'aws:'")


def _check_features(features: dict[str, Any] | None) -> None:
    if not features:
        return
    video = (features.get("Video") or {}).get("MaxResolution")
    content = (features.get("Content") or {}).get("MaxResolution")
    max_count = (features.get("Attendee") or {}).get("MaxCount")
    # FHD video or UHD content needs an explicit Attendee.MaxCount of at most 25
    # (control-plane-api.md §3, "Large resolutions").
    if video == "FHD" or content == "UHD":
        if max_count is None:
            raise InvalidArgument(
                "MeetingFeatures.Attendee.MaxCount is required when Video.MaxResolution is "
                "FHD or Content.MaxResolution is UHD"
            )
        if max_count > 25:
            raise InvalidArgument(
                "MeetingFeatures.Attendee.MaxCount must be at most 25 when "
                "Video.MaxResolution is FHD or Content.MaxResolution is UHD"
            )


def _check_transcribe_settings(settings: dict[str, Any]) -> None:
    identify = settings.get("IdentifyLanguage", False)
    if identify and "LanguageCode" in settings:
        raise InvalidArgument("LanguageCode and IdentifyLanguage cannot be used together")
    if not identify and "LanguageCode" not in settings:
        raise InvalidArgument("EngineTranscribeSettings needs LanguageCode or IdentifyLanguage")
    if identify and "LanguageOptions" not in settings:
        raise InvalidArgument("IdentifyLanguage requires LanguageOptions")
    if "ContentIdentificationType" in settings and "ContentRedactionType" in settings:
        raise InvalidArgument(
            "ContentIdentificationType and ContentRedactionType cannot be used together"
        )
    if "PiiEntityTypes" in settings and not (
        "ContentIdentificationType" in settings or "ContentRedactionType" in settings
    ):
        raise InvalidArgument(
            "PiiEntityTypes requires ContentIdentificationType or ContentRedactionType"
        )


def _tags_from_wire(tags: list[dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag in tags:
        out[tag["Key"]] = tag["Value"]
    return out


def _encode_page_token(meeting_id: str, seq: int) -> str:
    raw = json.dumps({"m": meeting_id, "s": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str, meeting_id: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
        if value["m"] != meeting_id or not isinstance(value["s"], int):
            raise ValueError(token)
        return int(value["s"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("The NextToken is not valid") from None

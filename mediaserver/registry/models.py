"""Meetings and attendees as the registry keeps them (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mediaserver.types import AttendeeId, MeetingId

__all__ = ["CONTENT_SUFFIX", "Attendee", "Capabilities", "Meeting"]

CONTENT_SUFFIX = "#content"
"""Suffix of the content-share attendee id and join token (chime-signaling-protocol.md §0)."""


@dataclass(slots=True)
class Capabilities:
    """What an attendee may send and receive on each channel (meetings-digest.md §5)."""

    audio: str = "SendReceive"
    video: str = "SendReceive"
    content: str = "SendReceive"

    @classmethod
    def from_wire(cls, value: dict[str, str]) -> Capabilities:
        return cls(audio=value["Audio"], video=value["Video"], content=value["Content"])

    def to_wire(self) -> dict[str, str]:
        return {"Audio": self.audio, "Video": self.video, "Content": self.content}


@dataclass(slots=True)
class Attendee:
    """One attendee of one meeting, as created by CreateAttendee or a batch."""

    attendee_id: AttendeeId
    external_user_id: str
    join_token: str
    capabilities: Capabilities
    seq: int
    """Creation order within the meeting; ListAttendees pages follow it."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "ExternalUserId": self.external_user_id,
            "AttendeeId": self.attendee_id,
            "JoinToken": self.join_token,
            "Capabilities": self.capabilities.to_wire(),
        }

    def to_record(self) -> dict[str, Any]:
        return {**self.to_wire(), "Seq": self.seq}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Attendee:
        return cls(
            attendee_id=AttendeeId(record["AttendeeId"]),
            external_user_id=record["ExternalUserId"],
            join_token=record["JoinToken"],
            capabilities=Capabilities.from_wire(record["Capabilities"]),
            seq=record["Seq"],
        )


@dataclass(slots=True)
class Meeting:
    """One active meeting. Ended meetings are removed from the registry."""

    meeting_id: MeetingId
    external_meeting_id: str
    media_region: str
    created_at: float
    """Wall-clock creation time (epoch seconds); the 24-hour limit counts from it."""
    meeting_host_id: str | None = None
    features: dict[str, Any] | None = None
    """``MeetingFeatures`` exactly as given, echoed back in the Meeting object."""
    notifications: dict[str, str] | None = None
    primary_meeting_id: MeetingId | None = None
    tenant_ids: list[str] | None = None
    network_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    transcription: dict[str, Any] | None = None
    account_id: str = "000000000000"

    # Live state, not persisted.
    attendees: dict[AttendeeId, Attendee] = field(default_factory=dict)
    by_external_id: dict[str, AttendeeId] = field(default_factory=dict)
    by_token: dict[str, AttendeeId] = field(default_factory=dict)
    next_seq: int = 0
    connections: dict[AttendeeId, int] = field(default_factory=dict)
    """Live signaling connections per attendee, reported by the gateway."""
    empty_since: float | None = None
    """Wall time since when no attendee has been connected; None while someone is."""

    @property
    def arn(self) -> str:
        return f"arn:aws:chime:{self.media_region}:{self.account_id}:meeting/{self.meeting_id}"

    @property
    def video_max_resolution(self) -> str:
        return str(((self.features or {}).get("Video") or {}).get("MaxResolution", "HD"))

    @property
    def content_max_resolution(self) -> str:
        return str(((self.features or {}).get("Content") or {}).get("MaxResolution", "FHD"))

    @property
    def max_count(self) -> int | None:
        """``MeetingFeatures.Attendee.MaxCount`` if the meeting was created with one."""
        count = ((self.features or {}).get("Attendee") or {}).get("MaxCount")
        return None if count is None else int(count)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "MeetingId": self.meeting_id,
            "ExternalMeetingId": self.external_meeting_id,
            "MediaRegion": self.media_region,
            "CreatedAt": self.created_at,
            "AccountId": self.account_id,
            "Tags": self.tags,
        }
        optional = {
            "MeetingHostId": self.meeting_host_id,
            "MeetingFeatures": self.features,
            "NotificationsConfiguration": self.notifications,
            "PrimaryMeetingId": self.primary_meeting_id,
            "TenantIds": self.tenant_ids,
            "MediaPlacementNetworkType": self.network_type,
            "Transcription": self.transcription,
        }
        record.update({k: v for k, v in optional.items() if v is not None})
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Meeting:
        primary = record.get("PrimaryMeetingId")
        return cls(
            meeting_id=MeetingId(record["MeetingId"]),
            external_meeting_id=record["ExternalMeetingId"],
            media_region=record["MediaRegion"],
            created_at=record["CreatedAt"],
            account_id=record.get("AccountId", "000000000000"),
            tags=dict(record.get("Tags", {})),
            meeting_host_id=record.get("MeetingHostId"),
            features=record.get("MeetingFeatures"),
            notifications=record.get("NotificationsConfiguration"),
            primary_meeting_id=MeetingId(primary) if primary else None,
            tenant_ids=record.get("TenantIds"),
            network_type=record.get("MediaPlacementNetworkType"),
            transcription=record.get("Transcription"),
        )

    def add_attendee(self, attendee: Attendee) -> None:
        self.attendees[attendee.attendee_id] = attendee
        self.by_external_id[attendee.external_user_id] = attendee.attendee_id
        self.by_token[attendee.join_token] = attendee.attendee_id
        self.next_seq = max(self.next_seq, attendee.seq + 1)

    def remove_attendee(self, attendee: Attendee) -> None:
        self.attendees.pop(attendee.attendee_id, None)
        if self.by_external_id.get(attendee.external_user_id) == attendee.attendee_id:
            del self.by_external_id[attendee.external_user_id]
        self.by_token.pop(attendee.join_token, None)
        self.connections.pop(attendee.attendee_id, None)

"""All 16 ChimeSDKMeetings operations from unmodified boto3 against the real server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

GUID_MISSING = "00000000-0000-4000-8000-000000000000"


def _meeting(chime: Any, **kwargs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "MediaRegion": "us-east-1",
        "ExternalMeetingId": "m-" + uuid.uuid4().hex[:8],
    }
    params.update(kwargs)
    meeting: dict[str, Any] = chime.create_meeting(**params)["Meeting"]
    return meeting


def test_create_meeting_returns_a_meeting_that_points_at_this_server(
    chime: Any, server: Any
) -> None:
    meeting = _meeting(chime, ExternalMeetingId="standup")
    assert uuid.UUID(meeting["MeetingId"])
    assert meeting["ExternalMeetingId"] == "standup"
    assert meeting["MediaRegion"] == "us-east-1"
    placement = meeting["MediaPlacement"]
    assert placement["AudioHostUrl"] == f"127.0.0.1:{server.udp_port}"
    assert placement["SignalingUrl"] == (
        f"ws://127.0.0.1:{server.http_port}/control/{meeting['MeetingId']}"
    )
    assert "?" not in placement["SignalingUrl"]
    assert set(placement) == {
        "AudioHostUrl", "AudioFallbackUrl", "SignalingUrl", "TurnControlUrl",
        "ScreenDataUrl", "ScreenViewingUrl", "ScreenSharingUrl", "EventIngestionUrl",
    }  # fmt: skip
    assert meeting["MeetingArn"].startswith("arn:aws:chime:us-east-1:")
    assert meeting["MeetingArn"].endswith(f":meeting/{meeting['MeetingId']}")


def test_get_meeting_returns_the_created_meeting(chime: Any) -> None:
    meeting = _meeting(chime, MeetingFeatures={"Audio": {"EchoReduction": "AVAILABLE"}})
    got = chime.get_meeting(MeetingId=meeting["MeetingId"])["Meeting"]
    assert got == meeting
    assert got["MeetingFeatures"] == {"Audio": {"EchoReduction": "AVAILABLE"}}


def test_client_request_token_returns_the_original_meeting(chime: Any) -> None:
    first = _meeting(chime, ClientRequestToken="token-abc", ExternalMeetingId="one")
    again = _meeting(chime, ClientRequestToken="token-abc", ExternalMeetingId="two")
    assert again == first
    other = _meeting(chime, ClientRequestToken="token-xyz", ExternalMeetingId="one")
    assert other["MeetingId"] != first["MeetingId"]


def test_delete_meeting_makes_it_not_found(chime: Any) -> None:
    meeting = _meeting(chime)
    chime.delete_meeting(MeetingId=meeting["MeetingId"])
    with pytest.raises(chime.exceptions.NotFoundException) as info:
        chime.get_meeting(MeetingId=meeting["MeetingId"])
    assert info.value.response["Error"]["Message"] == f"Meeting {meeting['MeetingId']} not found"
    assert info.value.response["Code"] == "NotFound"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_attendee_lifecycle(chime: Any) -> None:
    meeting_id = _meeting(chime)["MeetingId"]
    attendee = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"]
    assert attendee["ExternalUserId"] == "alice"
    assert attendee["Capabilities"] == {
        "Audio": "SendReceive", "Video": "SendReceive", "Content": "SendReceive"
    }  # fmt: skip
    token = attendee["JoinToken"]
    assert len(token) >= 22 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    got = chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    assert got["Attendee"] == attendee
    again = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"]
    assert again == attendee, "ExternalUserId is an idempotency token within a meeting"
    chime.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    with pytest.raises(chime.exceptions.NotFoundException):
        chime.get_attendee(MeetingId=meeting_id, AttendeeId=attendee["AttendeeId"])
    new = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="alice")["Attendee"]
    assert new["AttendeeId"] != attendee["AttendeeId"]
    assert new["JoinToken"] != token


def test_create_meeting_with_attendees_reports_per_item_errors(chime: Any) -> None:
    response = chime.create_meeting_with_attendees(
        MediaRegion="eu-west-1",
        ExternalMeetingId="batch",
        Attendees=[
            {"ExternalUserId": "u1"},
            {"ExternalUserId": "aws:reserved"},
            {
                "ExternalUserId": "u3",
                "Capabilities": {"Audio": "Send", "Video": "None", "Content": "Receive"},
            },
        ],
    )
    assert response["Meeting"]["MediaRegion"] == "eu-west-1"
    assert [a["ExternalUserId"] for a in response["Attendees"]] == ["u1"]
    assert [(e["ExternalUserId"], e["ErrorCode"]) for e in response["Errors"]] == [
        ("aws:reserved", "BadRequest"),
        ("u3", "BadRequest"),
    ]
    listed = chime.list_attendees(MeetingId=response["Meeting"]["MeetingId"])["Attendees"]
    assert listed == response["Attendees"]


def test_batch_create_and_paginated_list(chime: Any) -> None:
    meeting_id = _meeting(chime)["MeetingId"]
    users = [{"ExternalUserId": f"user-{i:03d}"} for i in range(25)]
    created = chime.batch_create_attendee(MeetingId=meeting_id, Attendees=users)
    assert created["Errors"] == []
    assert len(created["Attendees"]) == 25
    seen: list[str] = []
    kwargs: dict[str, Any] = {"MeetingId": meeting_id, "MaxResults": 10}
    pages = 0
    while True:
        page = chime.list_attendees(**kwargs)
        pages += 1
        seen.extend(a["ExternalUserId"] for a in page["Attendees"])
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert pages == 3
    assert seen == [u["ExternalUserId"] for u in users]


def test_capabilities_update_and_batch_update_except(chime: Any) -> None:
    meeting_id = _meeting(chime)["MeetingId"]
    a = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="aa")["Attendee"]
    b = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="bb")["Attendee"]
    c = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="cc")["Attendee"]
    caps = {"Audio": "Receive", "Video": "Receive", "Content": "None"}
    updated = chime.update_attendee_capabilities(
        MeetingId=meeting_id, AttendeeId=a["AttendeeId"], Capabilities=caps
    )["Attendee"]
    assert updated["Capabilities"] == caps
    muted = {"Audio": "None", "Video": "None", "Content": "None"}
    chime.batch_update_attendee_capabilities_except(
        MeetingId=meeting_id,
        ExcludedAttendeeIds=[{"AttendeeId": b["AttendeeId"]}],
        Capabilities=muted,
    )
    get = chime.get_attendee
    assert (
        get(MeetingId=meeting_id, AttendeeId=a["AttendeeId"])["Attendee"]["Capabilities"] == muted
    )
    assert (
        get(MeetingId=meeting_id, AttendeeId=b["AttendeeId"])["Attendee"]["Capabilities"]
        == (b["Capabilities"])
    )
    assert (
        get(MeetingId=meeting_id, AttendeeId=c["AttendeeId"])["Attendee"]["Capabilities"] == muted
    )
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.update_attendee_capabilities(
            MeetingId=meeting_id,
            AttendeeId=a["AttendeeId"],
            Capabilities={"Audio": "None", "Video": "None", "Content": "Receive"},
        )


def test_video_none_meeting_rejects_video_capabilities(chime: Any) -> None:
    meeting_id = _meeting(
        chime,
        MeetingFeatures={"Video": {"MaxResolution": "None"}, "Content": {"MaxResolution": "None"}},
    )["MeetingId"]
    plain = chime.create_attendee(MeetingId=meeting_id, ExternalUserId="plain")["Attendee"]
    assert plain["Capabilities"] == {"Audio": "SendReceive", "Video": "None", "Content": "None"}
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.create_attendee(
            MeetingId=meeting_id,
            ExternalUserId="viewer",
            Capabilities={"Audio": "SendReceive", "Video": "Receive", "Content": "None"},
        )


def test_transcription_start_and_stop(chime: Any) -> None:
    meeting_id = _meeting(chime)["MeetingId"]
    chime.start_meeting_transcription(
        MeetingId=meeting_id,
        TranscriptionConfiguration={"EngineTranscribeSettings": {"LanguageCode": "fr-FR"}},
    )
    chime.stop_meeting_transcription(MeetingId=meeting_id)
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.start_meeting_transcription(
            MeetingId=meeting_id,
            TranscriptionConfiguration={"EngineTranscribeSettings": {"LanguageCode": "xx-XX"}},
        )
    with pytest.raises(chime.exceptions.NotFoundException):
        chime.stop_meeting_transcription(MeetingId=GUID_MISSING)


def test_tags(chime: Any) -> None:
    meeting = _meeting(chime, Tags=[{"Key": "team", "Value": "media"}])
    arn = meeting["MeetingArn"]
    assert chime.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "team", "Value": "media"}
    ]
    chime.tag_resource(ResourceARN=arn, Tags=[{"Key": "env", "Value": "prod"}])
    chime.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert chime.list_tags_for_resource(ResourceARN=arn)["Tags"] == [
        {"Key": "env", "Value": "prod"}
    ]
    with pytest.raises(chime.exceptions.TooManyTagsException):
        chime.tag_resource(
            ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)]
        )
    assert len(chime.list_tags_for_resource(ResourceARN=arn)["Tags"]) == 1, "nothing changed"
    missing = arn.rsplit("/", 1)[0] + "/" + GUID_MISSING
    with pytest.raises(chime.exceptions.ResourceNotFoundException):
        chime.list_tags_for_resource(ResourceARN=missing)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"ExternalMeetingId": "x" * 65}, "length less than or equal to 64"),
        ({"ClientRequestToken": "a b!"}, "regular expression pattern"),
        ({"MediaPlacementNetworkType": "Bogus"}, "enum value set"),
        ({"TenantIds": ["t1", "t2", "t3", "t4", "t5", "t6"]}, "length less than or equal to 5"),
        ({"TenantIds": ["aaaaa"]}, "regular expression pattern"),
        ({"MeetingFeatures": {"Attendee": {"MaxCount": 999}}}, "less than or equal to 250"),
        ({"MeetingFeatures": {"Video": {"MaxResolution": "FHD"}}}, "MaxCount is required"),
        ({"ExternalMeetingId": "AWS:meeting"}, "reserved prefix"),
    ],
)
def test_invalid_create_meeting_is_a_bad_request(
    chime: Any, params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(chime.exceptions.BadRequestException) as info:
        _meeting(chime, **params)
    assert fragment in info.value.response["Error"]["Message"]


def test_malformed_ids_in_paths_are_bad_requests(chime: Any) -> None:
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.get_meeting(MeetingId="not-a-guid")
    meeting_id = _meeting(chime)["MeetingId"]
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.get_attendee(MeetingId=meeting_id, AttendeeId="nope")


def test_too_many_attendees_in_one_batch_is_rejected(chime: Any) -> None:
    with pytest.raises(chime.exceptions.BadRequestException):
        chime.create_meeting_with_attendees(
            MediaRegion="us-east-1",
            ExternalMeetingId="too-many",
            Attendees=[{"ExternalUserId": f"u{i:02d}"} for i in range(21)],
        )


def test_attendee_max_count_is_enforced(chime: Any) -> None:
    meeting_id = _meeting(chime, MeetingFeatures={"Attendee": {"MaxCount": 2}})["MeetingId"]
    chime.create_attendee(MeetingId=meeting_id, ExternalUserId="one")
    chime.create_attendee(MeetingId=meeting_id, ExternalUserId="two")
    with pytest.raises(chime.exceptions.LimitExceededException):
        chime.create_attendee(MeetingId=meeting_id, ExternalUserId="three")
    batch = chime.batch_create_attendee(
        MeetingId=meeting_id, Attendees=[{"ExternalUserId": "four"}]
    )
    assert batch["Attendees"] == []
    assert batch["Errors"][0]["ExternalUserId"] == "four"


def test_wrong_secret_is_invalid_signature(server: Any) -> None:
    bad = server.client(aws_secret_access_key="wrong-secret")
    with pytest.raises(ClientError) as info:
        bad.create_meeting(MediaRegion="us-east-1", ExternalMeetingId="nope")
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key_is_unrecognized_client(server: Any) -> None:
    bad = server.client(aws_access_key_id="AKIDUNKNOWN000000000")
    with pytest.raises(ClientError) as info:
        bad.get_meeting(MeetingId=GUID_MISSING)
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"

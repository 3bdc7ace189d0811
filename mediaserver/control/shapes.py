"""The request shapes of the 16 ChimeSDKMeetings operations.

Transcribed from ``../shared/spec/control-plane-api.md`` sections 2 and 3 (model
constraints) plus the patterns the AWS documentation states for ids (section 3, "Field
constraints"). ``tests/mediaserver/control/test_shapes.py`` checks these tables against
the botocore model installed with the test dependencies.
"""

from __future__ import annotations

from mediaserver.control.schema import Bool, Int, ListOf, Str, Struct

__all__ = [
    "BATCH_CREATE_ATTENDEE",
    "BATCH_UPDATE_CAPABILITIES_EXCEPT",
    "CAPABILITIES",
    "CREATE_ATTENDEE",
    "CREATE_MEETING",
    "CREATE_MEETING_WITH_ATTENDEES",
    "EMPTY",
    "GUID_PATTERN",
    "START_TRANSCRIPTION",
    "TAG_RESOURCE",
    "UNTAG_RESOURCE",
    "UPDATE_CAPABILITIES",
]

GUID_PATTERN = r"[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}"

# The documented (not modeled) character set of ExternalMeetingId, ExternalUserId and
# MeetingHostId (control-plane-api.md section 3).
_EXTERNAL_ID_PATTERN = r"[-_&@+=,(){}\[\]\/«».:|'\"#a-zA-Z0-9À-ÿ\s]*"
_ARN_NOTIFICATION_PATTERN = r"^arn[\/\:\-\_\.a-zA-Z0-9]+$"

MEDIA_CAPABILITY = Str(enum=("SendReceive", "Send", "Receive", "None"))

CAPABILITIES = Struct(
    {"Audio": MEDIA_CAPABILITY, "Video": MEDIA_CAPABILITY, "Content": MEDIA_CAPABILITY},
    required=frozenset({"Audio", "Video", "Content"}),
)

EXTERNAL_ID = Str(min=2, max=64, pattern=_EXTERNAL_ID_PATTERN)

_TAG_KEY = Str(min=1, max=128, pattern=r"^[a-zA-Z+-=._:/]+$")

_TAG = Struct(
    {
        "Key": _TAG_KEY,
        "Value": Str(min=0, max=256, pattern=r"[\s\w+-=\.:/@]*"),
    },
    required=frozenset({"Key", "Value"}),
)

_MEETING_FEATURES = Struct(
    {
        "Audio": Struct({"EchoReduction": Str(enum=("AVAILABLE", "UNAVAILABLE"))}),
        "Video": Struct({"MaxResolution": Str(enum=("None", "HD", "FHD"))}),
        "Content": Struct({"MaxResolution": Str(enum=("None", "FHD", "UHD"))}),
        "Attendee": Struct({"MaxCount": Int(min=1, max=250)}),
    }
)

_NOTIFICATIONS = Struct(
    {
        "LambdaFunctionArn": Str(min=1, max=1024, pattern=_ARN_NOTIFICATION_PATTERN),
        "SnsTopicArn": Str(min=1, max=1024, pattern=_ARN_NOTIFICATION_PATTERN),
        "SqsQueueArn": Str(min=1, max=1024, pattern=_ARN_NOTIFICATION_PATTERN),
    }
)

_ATTENDEE_ITEM = Struct(
    {"ExternalUserId": EXTERNAL_ID, "Capabilities": CAPABILITIES},
    required=frozenset({"ExternalUserId"}),
)

_CREATE_MEETING_MEMBERS = {
    "ClientRequestToken": Str(min=2, max=64, pattern=r"[-_a-zA-Z0-9]*"),
    "MediaRegion": Str(min=2, max=64),
    "MeetingHostId": EXTERNAL_ID,
    "ExternalMeetingId": EXTERNAL_ID,
    "NotificationsConfiguration": _NOTIFICATIONS,
    "MeetingFeatures": _MEETING_FEATURES,
    "PrimaryMeetingId": Str(min=2, max=64),
    "TenantIds": ListOf(
        Str(min=2, max=256, pattern=r"^(?!.*?(.)\1{3})[-_!@#$a-zA-Z0-9]*$"), min=1, max=5
    ),
    "Tags": ListOf(_TAG, min=0, max=50),
    "MediaPlacementNetworkType": Str(enum=("Ipv4Only", "DualStack")),
}
_CREATE_MEETING_REQUIRED = frozenset({"ClientRequestToken", "MediaRegion", "ExternalMeetingId"})

CREATE_MEETING = Struct(_CREATE_MEETING_MEMBERS, required=_CREATE_MEETING_REQUIRED)

CREATE_MEETING_WITH_ATTENDEES = Struct(
    {**_CREATE_MEETING_MEMBERS, "Attendees": ListOf(_ATTENDEE_ITEM, min=1, max=20)},
    required=_CREATE_MEETING_REQUIRED | {"Attendees"},
)

CREATE_ATTENDEE = Struct(
    {"ExternalUserId": EXTERNAL_ID, "Capabilities": CAPABILITIES},
    required=frozenset({"ExternalUserId"}),
)

BATCH_CREATE_ATTENDEE = Struct(
    {"Attendees": ListOf(_ATTENDEE_ITEM, min=1, max=100)},
    required=frozenset({"Attendees"}),
)

UPDATE_CAPABILITIES = Struct({"Capabilities": CAPABILITIES}, required=frozenset({"Capabilities"}))

BATCH_UPDATE_CAPABILITIES_EXCEPT = Struct(
    {
        "ExcludedAttendeeIds": ListOf(
            Struct({"AttendeeId": Str(pattern=GUID_PATTERN)}, required=frozenset({"AttendeeId"})),
            min=1,
            max=250,
        ),
        "Capabilities": CAPABILITIES,
    },
    required=frozenset({"ExcludedAttendeeIds", "Capabilities"}),
)

_LANGUAGE_CODES = (
    "en-US", "en-GB", "es-US", "fr-CA", "fr-FR", "en-AU", "it-IT",
    "de-DE", "pt-BR", "ja-JP", "ko-KR", "zh-CN", "th-TH", "hi-IN",
)  # fmt: skip

_TRANSCRIBE_REGIONS = (
    "us-east-2", "us-east-1", "us-west-2", "ap-northeast-2", "ap-southeast-2",
    "ap-northeast-1", "ca-central-1", "eu-central-1", "eu-west-1", "eu-west-2",
    "sa-east-1", "auto", "us-gov-west-1",
)  # fmt: skip

_TRANSCRIBE_MEDICAL_REGIONS = (
    "us-east-1", "us-east-2", "us-west-2", "ap-southeast-2", "ca-central-1", "eu-west-1", "auto",
)  # fmt: skip

_ENGINE_TRANSCRIBE = Struct(
    {
        "LanguageCode": Str(enum=_LANGUAGE_CODES),
        "VocabularyFilterMethod": Str(enum=("remove", "mask", "tag")),
        "VocabularyFilterName": Str(max=4096),
        "VocabularyName": Str(max=4096),
        "Region": Str(enum=_TRANSCRIBE_REGIONS),
        "EnablePartialResultsStabilization": Bool(),
        "PartialResultsStability": Str(enum=("low", "medium", "high")),
        "ContentIdentificationType": Str(enum=("PII",)),
        "ContentRedactionType": Str(enum=("PII",)),
        "PiiEntityTypes": Str(min=1, max=300, pattern=r"^[A-Z_, ]+"),
        "LanguageModelName": Str(min=1, max=200, pattern=r"^[0-9a-zA-Z._-]+"),
        "IdentifyLanguage": Bool(),
        "LanguageOptions": Str(min=1, max=200, pattern=r"^[a-zA-Z-,]+"),
        "PreferredLanguage": Str(enum=_LANGUAGE_CODES),
        "VocabularyNames": Str(min=1, max=3000, pattern=r"^[a-zA-Z0-9,-._]+"),
        "VocabularyFilterNames": Str(min=1, max=3000, pattern=r"^[a-zA-Z0-9,-._]+"),
    }
)

_ENGINE_TRANSCRIBE_MEDICAL = Struct(
    {
        "LanguageCode": Str(enum=("en-US",)),
        "Specialty": Str(
            enum=("PRIMARYCARE", "CARDIOLOGY", "NEUROLOGY", "ONCOLOGY", "RADIOLOGY", "UROLOGY")
        ),
        "Type": Str(enum=("CONVERSATION", "DICTATION")),
        "VocabularyName": Str(max=4096),
        "Region": Str(enum=_TRANSCRIBE_MEDICAL_REGIONS),
        "ContentIdentificationType": Str(enum=("PHI",)),
    },
    required=frozenset({"LanguageCode", "Specialty", "Type"}),
)

START_TRANSCRIPTION = Struct(
    {
        "TranscriptionConfiguration": Struct(
            {
                "EngineTranscribeSettings": _ENGINE_TRANSCRIBE,
                "EngineTranscribeMedicalSettings": _ENGINE_TRANSCRIBE_MEDICAL,
            }
        )
    },
    required=frozenset({"TranscriptionConfiguration"}),
)

_RESOURCE_ARN = Str(min=1, max=1011, pattern=r"^arn:.*")

TAG_RESOURCE = Struct(
    {"ResourceARN": _RESOURCE_ARN, "Tags": ListOf(_TAG, min=0, max=50)},
    required=frozenset({"ResourceARN", "Tags"}),
)

UNTAG_RESOURCE = Struct(
    {"ResourceARN": _RESOURCE_ARN, "TagKeys": ListOf(_TAG_KEY, min=0, max=50)},
    required=frozenset({"ResourceARN", "TagKeys"}),
)

LIST_TAGS_ARN = _RESOURCE_ARN

EMPTY = Struct({})
"""Operations without input members (StopMeetingTranscription)."""

"""Tests for signaling.messages: conversions keep proto2 presence and reject bad UTF-8."""

from __future__ import annotations

import pytest

from mediaserver.errors import MalformedMessage
from signaling import signaling_pb2 as pb
from signaling.messages import (
    AudioAttendeeState,
    AudioStreamIdInfo,
    Bitrate,
    ClientDetails,
    DataMessage,
    MediaType,
    StreamAllocation,
    StreamDescriptor,
    StreamMetrics,
    TrackMapping,
    TurnCredentials,
    VideoQualityAdaptationPreference,
    VideoSubscriptionConfiguration,
)
from tests.helpers.signaling_wire import field_bytes, field_str

EXAMPLES = [
    ClientDetails(app_name="a", os_version="b"),
    TurnCredentials(username="u", password="p", ttl=1, uris=("turn:x", "turns:y")),
    StreamDescriptor(stream_id=1, media_type=MediaType.VIDEO, attendee_id="A", width=640),
    StreamAllocation(track_label="", stream_id=2, group_id=2),
    TrackMapping(stream_id=11, ssrc=555, track_label="v_2"),
    Bitrate(source_stream_id=1, avg_bitrate_bps=0),
    AudioAttendeeState(audio_stream_id=3, volume=0, signal_strength=2, muted=False),
    AudioStreamIdInfo(audio_stream_id=8),
    AudioStreamIdInfo(audio_stream_id=8, muted=False),
    AudioStreamIdInfo(audio_stream_id=8, dropped=True),
    DataMessage(topic="t", data=b"", lifetime_ms=0, ingest_time_ns=0),
    VideoSubscriptionConfiguration(
        mid="2",
        attendee_id="A",
        group_id=1,
        target_bitrate_kbps=300,
        quality_adaptation_preference=VideoQualityAdaptationPreference.MAINTAIN_RESOLUTION,
    ),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_to_pb_and_back_is_the_identity(message: object) -> None:
    pb_message = message.to_pb()  # type: ignore[attr-defined]
    parsed = type(pb_message).FromString(pb_message.SerializeToString())
    assert type(message).from_pb(parsed) == message  # type: ignore[attr-defined]


def test_muted_false_is_on_the_wire_and_none_is_not() -> None:
    assert AudioStreamIdInfo(audio_stream_id=1, muted=False).to_pb().HasField("muted")
    assert not AudioStreamIdInfo(audio_stream_id=1).to_pb().HasField("muted")


def test_invalid_utf8_in_a_string_field_is_malformed() -> None:
    msg = pb.SdkTurnCredentials.FromString(field_bytes(1, b"\xff"))
    with pytest.raises(MalformedMessage, match=r"^field username is not valid UTF-8$"):
        TurnCredentials.from_pb(msg)


def test_invalid_utf8_in_a_repeated_string_field_is_malformed() -> None:
    msg = pb.SdkTurnCredentials.FromString(field_str(4, "ok") + field_bytes(4, b"\xff"))
    with pytest.raises(MalformedMessage, match=r"^field uris is not valid UTF-8$"):
        TurnCredentials.from_pb(msg)


def test_invalid_utf8_in_a_dimension_is_malformed() -> None:
    dimension = field_bytes(2, field_bytes(1, b"\xff"))  # value.string_value
    msg = pb.SdkStreamMetricFrame.FromString(field_bytes(6, b"\x08\x01" + dimension))
    with pytest.raises(MalformedMessage, match=r"^field string_value is not valid UTF-8$"):
        StreamMetrics.from_pb(msg)

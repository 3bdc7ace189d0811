"""Tests for signaling.codec: framing, round trips, every error path, property tests."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given, settings, strategies as st

from mediaserver.errors import LocalProtocolError, MalformedMessage
from signaling import signaling_pb2 as pb
from signaling.codec import (
    FRAME_TYPE_RTC,
    MAX_FRAME_SIZE,
    PAYLOAD_FIELDS,
    REQUIRED_PAYLOADS,
    decode_frame,
    encode_frame,
    new_frame,
)
from signaling.messages import (
    FrameType,
    MediaType,
    NotificationLevel,
    ServerSideNetworkAdaption,
    StreamServiceType,
    VideoCodecCapability,
    VideoQualityAdaptationPreference,
)
from tests.helpers.signaling_wire import build_vectors, field_msg, field_varint
from tests.helpers.vectors import load

VALID = [n for n in build_vectors() if not n.endswith("_invalid.bin")]


def test_encode_prefixes_the_rtc_type_byte() -> None:
    data = encode_frame(new_frame(FrameType.LEAVE_ACK, 5))
    assert data == b"\x05" + bytes([0x08, 0x05, 0x10, 0x0A])
    assert data[0] == FRAME_TYPE_RTC


def test_encode_refuses_a_frame_without_required_fields() -> None:
    with pytest.raises(
        LocalProtocolError, match=r"^cannot encode frame: missing required fields: type$"
    ):
        encode_frame(pb.SdkSignalFrame(timestamp_ms=1))


def test_encode_refuses_a_ping_without_ping_id() -> None:
    frame = new_frame(FrameType.PING_PONG, 1)
    frame.ping_pong.type = pb.PING
    with pytest.raises(LocalProtocolError, match=r"ping_pong\.ping_id$"):
        encode_frame(frame)


@pytest.mark.parametrize("frame_type", list(FrameType))
def test_every_frame_type_round_trips_with_its_payload(frame_type: FrameType) -> None:
    frame = new_frame(frame_type, 1_790_000_000_123)
    payload = PAYLOAD_FIELDS[frame_type]
    if frame_type is FrameType.PING_PONG:
        frame.ping_pong.type = pb.PONG
        frame.ping_pong.ping_id = 7
    else:
        getattr(frame, payload).SetInParent()
    decoded = decode_frame(encode_frame(frame))
    assert decoded == frame
    assert decoded.HasField(payload)  # type: ignore[arg-type]


@pytest.mark.parametrize("frame_type", [FrameType.LEAVE, FrameType.LEAVE_ACK])
def test_empty_payloads_are_optional(frame_type: FrameType) -> None:
    assert FrameType(decode_frame(encode_frame(new_frame(frame_type, 1))).type) is frame_type


@pytest.mark.parametrize("frame_type", sorted(REQUIRED_PAYLOADS))
def test_a_missing_required_payload_is_malformed(frame_type: FrameType) -> None:
    payload = REQUIRED_PAYLOADS[frame_type]
    with pytest.raises(
        MalformedMessage, match=rf"^{frame_type.name} frame without its {payload} field$"
    ):
        decode_frame(encode_frame(new_frame(frame_type, 1)))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty_invalid.bin", "empty frame"),
        ("type_byte_0x02_invalid.bin", "unexpected frame type byte 0x02 (expected 0x05)"),
        ("truncated_invalid.bin", "frame does not parse as SdkSignalFrame"),
        ("unknown_frame_type_invalid.bin", "unknown frame type 99"),
        ("missing_timestamp_invalid.bin", "missing required fields: timestamp_ms"),
        ("ping_without_ping_id_invalid.bin", "missing required fields: ping_pong.ping_id"),
        ("subscribe_without_payload_invalid.bin", "SUBSCRIBE frame without its sub field"),
        ("invalid_utf8_invalid.bin", "field sub.sdp_offer is not valid UTF-8"),
    ],
)
def test_invalid_vectors_fail_with_their_exact_message(name: str, message: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        decode_frame(load(f"signaling/{name}"))
    assert str(info.value) == message


def test_a_text_frame_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match=r"^text frame; signaling frames are binary$"):
        decode_frame("\x05")


def test_a_frame_over_the_size_limit_is_malformed() -> None:
    data = b"\x05" + b"\x00" * MAX_FRAME_SIZE
    with pytest.raises(MalformedMessage) as info:
        decode_frame(data)
    assert str(info.value) == f"frame too large: {MAX_FRAME_SIZE + 1} bytes (max {MAX_FRAME_SIZE})"


def test_a_frame_at_the_size_limit_is_accepted() -> None:
    frame = new_frame(FrameType.SUBSCRIBE, 1)
    frame.sub.sdp_offer = ""
    size = len(encode_frame(frame))
    # Two nested length varints (sdp_offer, sub) each grow from 1 to 3 bytes.
    frame.sub.sdp_offer = "a" * (MAX_FRAME_SIZE - size - 4)
    data = encode_frame(frame)
    assert len(data) == MAX_FRAME_SIZE
    assert decode_frame(data).sub.sdp_offer == frame.sub.sdp_offer


def test_an_unknown_type_byte_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match=r"0xff"):
        decode_frame(b"\xff")


def test_a_bare_type_byte_lacks_required_fields() -> None:
    with pytest.raises(MalformedMessage, match=r"^missing required fields: timestamp_ms, type$"):
        decode_frame(b"\x05")


def test_unknown_fields_are_tolerated() -> None:
    data = encode_frame(new_frame(FrameType.LEAVE, 1)) + field_varint(100, 1)
    assert FrameType(decode_frame(data).type) is FrameType.LEAVE


def test_packed_receive_stream_ids_are_accepted() -> None:
    frame = new_frame(FrameType.SUBSCRIBE, 1)
    frame.sub.SetInParent()
    packed = field_msg(6, bytes([0x1A, 0x02, 0x00, 0x0B]))  # field 3, packed [0, 11]
    assert list(decode_frame(encode_frame(frame) + packed).sub.receive_stream_ids) == [0, 11]


def test_an_unknown_enum_inside_a_payload_reads_as_absent() -> None:
    frame = new_frame(FrameType.SUBSCRIBE, 1)
    data = encode_frame(frame) + field_msg(6, field_varint(1, 9))  # duplex 9
    decoded = decode_frame(data)
    assert not decoded.sub.HasField("duplex")


@pytest.mark.parametrize("name", VALID)
def test_valid_vectors_re_encode_byte_for_byte(name: str) -> None:
    data = load(f"signaling/{name}")
    assert encode_frame(decode_frame(data)) == data


def test_vector_files_match_the_hand_encoder() -> None:
    for name, data in build_vectors().items():
        assert load(f"signaling/{name}") == data, name


def test_join_vector_decodes_to_the_spec_fields() -> None:
    frame = decode_frame(load("signaling/join_js_client.bin"))
    assert frame.timestamp_ms == 1_790_000_000_000
    assert FrameType(frame.type) is FrameType.JOIN
    join = frame.join
    assert join.protocol_version == 2
    assert join.flags == 2
    assert join.audio_session_id == 123_456_789
    assert join.wants_compressed_sdp is True
    assert ServerSideNetworkAdaption(join.server_side_network_adaption) is (
        ServerSideNetworkAdaption.DEFAULT
    )
    assert join.client_details.client_source == "amazon-chime-sdk-js"
    assert join.client_details.chime_sdk_version == "3.32.0"
    assert join.HasField("wants_all_temporal_layers_in_index")


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (FrameType, pb.SdkSignalFrame.Type),
        (ServerSideNetworkAdaption, pb.SdkServerSideNetworkAdaption),
        (StreamServiceType, pb.SdkStreamServiceType),
        (MediaType, pb.SdkStreamMediaType),
        (VideoCodecCapability, pb.SdkVideoCodecCapability),
        (VideoQualityAdaptationPreference, pb.SdkVideoQualityAdaptationPreference),
        (NotificationLevel, pb.SdkNotificationFrame.NotificationLevel),
    ],
)
def test_python_enums_match_the_schema(ours: type[FrameType], theirs: object) -> None:
    assert {m.name: m.value for m in ours} == dict(theirs.items())  # type: ignore[attr-defined]


def test_payload_table_names_real_fields() -> None:
    fields = pb.SdkSignalFrame.DESCRIPTOR.fields_by_name
    for name in PAYLOAD_FIELDS.values():
        assert fields[name].type == FieldDescriptor.TYPE_MESSAGE


def test_schema_field_numbers_match_the_spec_table() -> None:
    numbers = {f.name: f.number for f in pb.SdkSignalFrame.DESCRIPTOR.fields}
    assert numbers == {
        "timestamp_ms": 1,
        "type": 2,
        "error": 3,
        "join": 4,
        "joinack": 5,
        "sub": 6,
        "suback": 7,
        "index": 8,
        "pause": 10,
        "leave": 11,
        "leave_ack": 12,
        "bitrates": 14,
        "audio_control": 17,
        "audio_metadata": 18,
        "audio_stream_id_info": 19,
        "ping_pong": 20,
        "audio_status": 21,
        "client_metric": 22,
        "data_message": 23,
        "remote_video_update": 25,
        "primary_meeting_join": 26,
        "primary_meeting_join_ack": 27,
        "primary_meeting_leave": 28,
        "notification": 35,
        "meeting_session_timing": 44,
    }


# Property tests (style guide, convention 17).


def _decode_or_malformed(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except MalformedMessage:
        return
    assert FrameType(frame.type) in PAYLOAD_FIELDS


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_decode_only_raises_malformed_message_on_arbitrary_bytes(data: bytes) -> None:
    _decode_or_malformed(data)


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_decode_only_raises_malformed_message_after_the_type_byte(data: bytes) -> None:
    _decode_or_malformed(b"\x05" + data)


@settings(max_examples=500)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_decode_only_raises_malformed_message_on_mutated_vectors(
    name: str, mutations: list[tuple[int, int]]
) -> None:
    data = bytearray(load(f"signaling/{name}"))
    for position, value in mutations:
        data[position % len(data)] = value
    _decode_or_malformed(bytes(data))


@settings(max_examples=200)
@given(st.sampled_from(VALID), st.integers(0, 300))
def test_decode_only_raises_malformed_message_on_truncated_vectors(name: str, cut: int) -> None:
    data = load(f"signaling/{name}")
    _decode_or_malformed(data[: cut % len(data)])


_uint32 = st.integers(0, 2**32 - 1)
_text = st.text(max_size=40)


@given(
    timestamp_ms=st.integers(0, 2**64 - 1),
    frame_type=st.sampled_from(sorted(set(FrameType) - {FrameType.PING_PONG})),
    status=st.none() | _uint32,
    ids=st.lists(_uint32, max_size=5),
    topic=_text,
    data=st.binary(max_size=64),
)
def test_encode_decode_round_trip(
    timestamp_ms: int,
    frame_type: FrameType,
    status: int | None,
    ids: list[int],
    topic: str,
    data: bytes,
) -> None:
    frame = new_frame(frame_type, timestamp_ms)
    getattr(frame, PAYLOAD_FIELDS[frame_type]).SetInParent()
    if status is not None:
        frame.error.status = status
    frame.pause.stream_ids.extend(ids)
    frame.data_message.messages.add(topic=topic, data=data)
    assert decode_frame(encode_frame(frame)) == frame

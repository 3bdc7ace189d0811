"""A minimal protobuf writer, independent of ``signaling_pb2``, for signaling test vectors.

The vectors under ``tests/vectors/signaling/`` are built by :func:`build_vectors` from the
field numbers of ``chime-signaling-protocol.md`` section 2.3, written out by hand here. So
decoding them with :mod:`signaling.codec` checks our ``.proto`` against the spec tables, not
against itself. Fields are written in field-number order, as protobufjs does.

Run ``python -m tests.helpers.signaling_wire`` from the repository root to rewrite the files.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_vectors", "field_bytes", "field_msg", "field_str", "field_varint", "varint"]

# Constants of the vectors, also asserted by the tests.
TIMESTAMP_MS = 1_790_000_000_000
AUDIO_SESSION_ID = 123_456_789
SDP_OFFER = (
    "v=0\r\no=mozilla-chrome 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n"
)
AUDIO_HOST = "media.example.org:3478"


def varint(value: int) -> bytes:
    """Encode a non-negative integer as a protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0): uint32, uint64, bool, enum."""
    return varint(number << 3) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_str(number: int, value: str) -> bytes:
    """A string field."""
    return field_bytes(number, value.encode())


def field_msg(number: int, *parts: bytes) -> bytes:
    """A sub-message field made of already-encoded fields."""
    return field_bytes(number, b"".join(parts))


def _frame(frame_type: int, *parts: bytes, timestamp_ms: int = TIMESTAMP_MS) -> bytes:
    # SdkSignalFrame: timestamp_ms = 1, type = 2; byte 0 is FRAME_TYPE_RTC (section 2.1).
    return b"\x05" + field_varint(1, timestamp_ms) + field_varint(2, frame_type) + b"".join(parts)


def build_vectors() -> dict[str, bytes]:
    """Return every vector, file name → bytes."""
    client_details = field_msg(
        4,  # SdkJoinFrame.client_details
        field_str(5, "Chrome"),  # platform_name
        field_str(6, "156.0.8078.79"),  # platform_version
        field_str(7, "amazon-chime-sdk-js"),  # client_source
        field_str(8, "3.32.0"),  # chime_sdk_version
        field_str(9, "+02:00"),  # client_utc_offset
        field_str(10, "Linux"),  # os_name
        field_str(11, "x86_64"),  # os_version
    )
    join = field_msg(
        4,  # SdkSignalFrame.join
        field_varint(1, 2),  # protocol_version
        field_varint(3, 2),  # flags = HAS_STREAM_UPDATE
        client_details,
        field_varint(6, AUDIO_SESSION_ID),  # audio_session_id
        field_varint(7, 1),  # wants_compressed_sdp = true
        field_varint(10, 1),  # server_side_network_adaption = DEFAULT
        field_varint(12, 0),  # wants_all_temporal_layers_in_index = false
        field_varint(13, 0),  # disable_periodic_keyframe_request_on_content_sender = false
    )
    audio_descriptor = field_msg(
        2,  # SdkSubscribeFrame.send_streams
        field_varint(1, 1),  # stream_id
        field_varint(2, 15),  # framerate
        field_varint(3, 600),  # max_bitrate_kbps
        field_str(4, "AmazonChimeExpressAudio"),  # track_label
        field_varint(6, 1),  # group_id
        field_varint(7, 400_000),  # avg_bitrate_bps
        field_str(8, "attendee-b"),  # attendee_id
        field_varint(9, 1),  # media_type = AUDIO
    )
    subscribe = field_msg(
        6,  # SdkSignalFrame.sub
        field_varint(1, 1),  # duplex = RX
        audio_descriptor,
        field_varint(3, 0),  # receive_stream_ids = [0]; proto2 repeated scalars are unpacked
        field_str(4, SDP_OFFER),  # sdp_offer
        field_str(5, AUDIO_HOST),  # audio_host
        field_varint(6, 0),  # audio_checkin = false
        field_varint(7, 0),  # audio_muted = false
    )
    data_message = field_msg(
        23,  # SdkSignalFrame.data_message
        field_msg(
            1,  # messages
            field_str(1, "chat"),  # topic
            field_bytes(2, b'{"text":"hello"}'),  # data
            field_varint(3, 10_000),  # lifetime_ms
        ),
    )
    return {
        "join_js_client.bin": _frame(1, join),
        "ping_js_client.bin": _frame(19, field_msg(20, field_varint(1, 1), field_varint(2, 1))),
        "subscribe_js_client.bin": _frame(3, subscribe),
        "audio_control_muted_js_client.bin": _frame(16, field_msg(17, field_varint(1, 1))),
        "data_message_js_client.bin": _frame(22, data_message),
        "leave_js_client.bin": _frame(9, field_msg(11)),
        # Invalid vectors, one per error path of decode_frame.
        "empty_invalid.bin": b"",
        "type_byte_0x02_invalid.bin": b"\x02" + _frame(19, field_msg(20))[1:],
        "truncated_invalid.bin": _frame(1, join)[:40],
        "unknown_frame_type_invalid.bin": _frame(99),
        "missing_timestamp_invalid.bin": b"\x05" + field_varint(2, 9),
        "ping_without_ping_id_invalid.bin": _frame(19, field_msg(20, field_varint(1, 1))),
        "subscribe_without_payload_invalid.bin": _frame(3),
        "invalid_utf8_invalid.bin": _frame(3, field_msg(6, field_bytes(4, b"\xff\xfe"))),
    }


def main() -> None:
    """Write the vectors next to INDEX.md."""
    directory = Path(__file__).resolve().parent.parent / "vectors" / "signaling"
    for name, data in build_vectors().items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    main()

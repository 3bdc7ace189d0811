"""Tests for mediacodecs.vp8: RFC 7741 descriptors from hand-built vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from mediacodecs.vp8 import Vp8Descriptor, descriptor_size, is_keyframe, peek_layer
from mediaserver.errors import LocalProtocolError, MalformedPacket
from tests.helpers.vectors import load


def test_keyframe_with_every_optional_field_parses_field_by_field() -> None:
    data = load("rtp/vp8_keyframe_long_picture_id.bin")
    d = Vp8Descriptor.parse(data)
    assert d == Vp8Descriptor(
        start_of_partition=True, picture_id=0x1234, long_picture_id=True, tl0_pic_idx=7,
        temporal_id=0, layer_sync=True, key_index=5, keyframe=True, size=6,
    )  # fmt: skip
    assert d.serialize() == data[: d.size]
    assert is_keyframe(data)
    assert peek_layer(data) == (True, True, 0, True, 0x1234, 7)


def test_delta_frame_on_temporal_layer_2_is_a_sync_point() -> None:
    data = load("rtp/vp8_delta_tid2_sync.bin")
    d = Vp8Descriptor.parse(data)
    assert (d.picture_id, d.tl0_pic_idx, d.temporal_id, d.layer_sync) == (5, 8, 2, True)
    assert not d.keyframe and d.key_index is None and d.size == 5
    assert d.serialize() == data[:5]
    assert peek_layer(data) == (False, True, 2, True, 5, 8)
    assert not is_keyframe(data)


def test_continuation_packet_is_never_a_keyframe() -> None:
    data = load("rtp/vp8_continuation.bin")
    assert not is_keyframe(data)
    assert peek_layer(data)[:2] == (False, False)
    assert descriptor_size(data) == 3


def test_minimal_descriptor_without_extension() -> None:
    data = load("rtp/vp8_minimal_keyframe.bin")
    d = Vp8Descriptor.parse(data)
    assert d.size == 1 and d.keyframe and d.picture_id is None and d.temporal_id is None
    assert peek_layer(data) == (True, True, 0, True, -1, -1)
    assert d.serialize() == b"\x10"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vp8_invalid_truncated_picture_id.bin", "truncated in the picture id"),
        ("vp8_invalid_no_payload_header.bin", "no payload header"),
    ],
)
def test_invalid_vectors_raise_malformed_packet(name: str, message: str) -> None:
    data = load(f"rtp/{name}")
    for parse in (Vp8Descriptor.parse, is_keyframe, peek_layer):
        with pytest.raises(MalformedPacket, match=message):
            parse(data)


def test_empty_payload_is_malformed() -> None:
    with pytest.raises(MalformedPacket):
        Vp8Descriptor.parse(b"")
    with pytest.raises(MalformedPacket):
        peek_layer(b"")


def test_serialize_rejects_out_of_range_fields() -> None:
    with pytest.raises(LocalProtocolError):
        Vp8Descriptor(temporal_id=4).serialize()
    with pytest.raises(LocalProtocolError):
        Vp8Descriptor(picture_id=0x8000).serialize()


@given(
    picture_id=st.none() | st.integers(0, 0x7FFF),
    tl0=st.none() | st.integers(0, 255),
    tid=st.none() | st.integers(0, 3),
    sync=st.booleans(),
    key_index=st.none() | st.integers(0, 31),
    start=st.booleans(),
    pid=st.integers(0, 7),
)
def test_round_trip(
    picture_id: int | None, tl0: int | None, tid: int | None, sync: bool,
    key_index: int | None, start: bool, pid: int,
) -> None:  # fmt: skip
    d = Vp8Descriptor(
        start_of_partition=start, partition_index=pid, picture_id=picture_id,
        long_picture_id=picture_id is not None and picture_id > 0x7F, tl0_pic_idx=tl0,
        temporal_id=tid, layer_sync=sync and tid is not None, key_index=key_index,
    )  # fmt: skip
    data = d.serialize() + b"\x01"
    parsed = Vp8Descriptor.parse(data)
    assert parsed.serialize() == data[:-1]
    assert parsed.size == len(data) - 1
    assert peek_layer(data)[2] == (tid or 0)


@given(st.binary(max_size=12))
def test_garbage_parses_or_raises_malformed_packet(data: bytes) -> None:
    for parse in (Vp8Descriptor.parse, is_keyframe, peek_layer):
        with contextlib.suppress(MalformedPacket):
            parse(data)

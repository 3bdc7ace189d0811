"""Tests for mediacodecs.vp9: RFC 9628 descriptors from hand-built vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from mediacodecs.vp9 import (
    Vp9Descriptor,
    Vp9PictureGroupEntry,
    Vp9ScalabilityStructure,
    is_keyframe,
    peek_layer,
)
from mediaserver.errors import LocalProtocolError, MalformedPacket
from tests.helpers.vectors import load


def test_keyframe_with_scalability_structure() -> None:
    data = load("rtp/vp9_keyframe_ss.bin")
    d = Vp9Descriptor.parse(data)
    assert d.picture_id == 0x0123 and d.long_picture_id
    assert d.keyframe and d.begin and not d.end and not d.inter_picture_predicted
    assert (d.spatial_id, d.temporal_id, d.tl0_pic_idx) == (0, 0, 0x11)
    assert d.scalability_structure == Vp9ScalabilityStructure(
        3,
        ((320, 180), (640, 360), (1280, 720)),
        (Vp9PictureGroupEntry(0, False, (4,)), Vp9PictureGroupEntry(1, True, (1,))),
    )
    assert d.size == 23
    assert d.serialize() == data[:23]
    assert is_keyframe(data)
    assert peek_layer(data) == (True, True, False, 0, 0, False)


def test_flexible_mode_upper_layer_packet() -> None:
    data = load("rtp/vp9_flexible_s1t2.bin")
    d = Vp9Descriptor.parse(data)
    assert d.flexible and d.inter_picture_predicted and d.not_reference_for_upper
    assert (d.spatial_id, d.temporal_id, d.switching_up, d.inter_layer_dependency) == (
        1, 2, True, True,
    )  # fmt: skip
    assert d.p_diffs == (1, 2) and d.tl0_pic_idx is None and not d.keyframe
    assert d.serialize() == data[: d.size]
    assert peek_layer(data) == (False, True, True, 1, 2, True)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("vp9_invalid_too_many_pdiffs.bin", "more than 3 P_DIFFs"),
        ("vp9_invalid_truncated_layer.bin", "truncated in the layer indices"),
    ],
)
def test_invalid_vectors_raise_malformed_packet(name: str, message: str) -> None:
    with pytest.raises(MalformedPacket, match=message):
        Vp9Descriptor.parse(load(f"rtp/{name}"))


def test_serialize_rejects_inconsistent_fields() -> None:
    with pytest.raises(LocalProtocolError):
        Vp9Descriptor(p_diffs=(1,)).serialize()
    with pytest.raises(LocalProtocolError):
        Vp9Descriptor(flexible=True, inter_picture_predicted=True).serialize()
    with pytest.raises(LocalProtocolError):
        Vp9ScalabilityStructure(2, ((1, 1),)).serialize()


@given(
    picture_id=st.none() | st.integers(0, 0x7FFF),
    flags=st.tuples(*[st.booleans()] * 5),
    tid=st.integers(0, 7),
    sid=st.integers(0, 7),
    diffs=st.lists(st.integers(0, 127), min_size=1, max_size=3),
)
def test_round_trip(
    picture_id: int | None, flags: tuple[bool, bool, bool, bool, bool], tid: int, sid: int,
    diffs: list[int],
) -> None:  # fmt: skip
    flexible, predicted, begin, end, layers = flags
    d = Vp9Descriptor(
        picture_id=picture_id, long_picture_id=picture_id is not None and picture_id > 127,
        inter_picture_predicted=predicted, flexible=flexible, begin=begin, end=end,
        layer_indices=layers, temporal_id=tid if layers else 0, spatial_id=sid if layers else 0,
        tl0_pic_idx=9 if layers and not flexible else None,
        p_diffs=tuple(diffs) if flexible and predicted else (),
    )  # fmt: skip
    data = d.serialize()
    parsed = Vp9Descriptor.parse(data)
    assert parsed.serialize() == data
    assert parsed.size == len(data)
    assert (parsed.spatial_id, parsed.temporal_id) == (d.spatial_id, d.temporal_id)


@given(st.binary(max_size=30))
def test_garbage_parses_or_raises_malformed_packet(data: bytes) -> None:
    for parse in (Vp9Descriptor.parse, peek_layer):
        with contextlib.suppress(MalformedPacket):
            parse(data)

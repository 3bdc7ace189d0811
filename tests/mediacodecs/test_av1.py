"""Tests for mediacodecs.av1: dependency descriptors from hand-built vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, strategies as st

from mediacodecs.av1 import DependencyDescriptor, DependencyDescriptorTracker, is_keyframe
from mediaserver.errors import MalformedPacket
from tests.helpers.vectors import load


def test_keyframe_carries_an_l1t3_template_structure() -> None:
    data = load("rtp/av1_dd_keyframe_l1t3.bin")
    d = DependencyDescriptor.parse(data)
    assert (d.start_of_frame, d.end_of_frame, d.template_id, d.frame_number) == (True, False, 0, 1)
    assert d.keyframe and is_keyframe(data)
    s = d.structure
    assert s is not None
    assert s.template_layers == ((0, 0), (0, 0), (0, 1), (0, 2))
    assert s.decode_target_count == 3 and s.max_temporal_id == 2 and s.max_spatial_id == 0
    assert s.template_dtis == ((2, 2, 2), (2, 2, 2), (0, 2, 2), (0, 0, 1))
    assert s.template_fdiffs == ((), (4,), (2,), (1,))
    assert s.chain_count == 1 and s.template_chain_fdiffs == ((0,), (4,), (2,), (1,))
    assert s.resolutions == ((640, 360),)
    assert d.active_decode_targets == 0b111


def test_mandatory_only_descriptor() -> None:
    d = DependencyDescriptor.parse(load("rtp/av1_dd_mandatory.bin"))
    assert (d.start_of_frame, d.end_of_frame, d.template_id, d.frame_number) == (False, True, 2, 2)
    assert not d.keyframe and d.structure is None


def test_tracker_maps_template_ids_to_layers_after_a_keyframe() -> None:
    tracker = DependencyDescriptorTracker()
    assert tracker.layer(load("rtp/av1_dd_mandatory.bin")) == (False, False, True, 0, 0)
    assert tracker.layer(load("rtp/av1_dd_keyframe_l1t3.bin")) == (True, True, False, 0, 0)
    assert tracker.layer(load("rtp/av1_dd_mandatory.bin")) == (False, False, True, 0, 1)
    assert tracker.layer(bytes([0xC3, 0, 3])) == (False, True, True, 0, 2)
    assert tracker.layer(bytes([0xC9, 0, 3]))[3:] == (0, 0)  # Unknown template.


def test_short_descriptor_is_malformed() -> None:
    data = load("rtp/av1_dd_invalid_short.bin")
    for parse in (DependencyDescriptor.parse, is_keyframe, DependencyDescriptorTracker().layer):
        with pytest.raises(MalformedPacket, match="at least 3"):
            parse(data)


def test_truncated_structure_is_malformed() -> None:
    data = load("rtp/av1_dd_keyframe_l1t3.bin")
    with pytest.raises(MalformedPacket, match="truncated"):
        DependencyDescriptor.parse(data[:6])


@given(st.binary(max_size=24))
def test_garbage_parses_or_raises_malformed_packet(data: bytes) -> None:
    with contextlib.suppress(MalformedPacket):
        DependencyDescriptor.parse(data)

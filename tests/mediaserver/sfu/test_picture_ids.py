"""Tests for mediaserver.sfu.picture_ids: VP8/VP9 picture numbering across switches."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings, strategies as st

from mediacodecs.vp8 import Vp8Descriptor
from mediacodecs.vp9 import Vp9Descriptor
from mediaserver.errors import InvalidArgument
from mediaserver.sfu.picture_ids import PictureIds, picture_fields


@dataclass
class Source:
    """A simulated publisher stream numbering its own pictures (libwebrtc starts each
    simulcast encoding at random numbers)."""

    pid: int
    tl0: int
    key: int


_PATTERN = (0, 2, 1, 2)
"""The temporal layer of each picture in a three-layer VP8 group."""


def vp8_packet(pid: int, tl0: int, tid: int, key: int, *, keyframe: bool, start: bool) -> bytes:
    descriptor = Vp8Descriptor(
        start_of_partition=start, picture_id=pid, long_picture_id=True, tl0_pic_idx=tl0,
        temporal_id=tid, layer_sync=tid == 0, key_index=key,
    ).serialize()  # fmt: skip
    header = bytes([0x00 if keyframe else 0x01]) if start else b""
    return descriptor + header + b"\x9d\x01\x2a" * 4


def vp8_picture(source: Source, index: int, *, keyframe: bool, packets: int) -> list[bytes]:
    """The packets of a source's next picture; advances the source's numbers."""
    tid = 0 if keyframe else _PATTERN[index % 4]
    if keyframe:
        source.key = (source.key + 1) & 0x1F
    if tid == 0:
        source.tl0 = (source.tl0 + 1) & 0xFF
    source.pid = (source.pid + 1) & 0x7FFF
    return [
        vp8_packet(source.pid, source.tl0, tid, source.key, keyframe=keyframe, start=i == 0)
        for i in range(packets)
    ]


def read(payload: bytes) -> tuple[int, int, int, int]:
    d = Vp8Descriptor.parse(payload)
    assert d.picture_id is not None and d.tl0_pic_idx is not None
    assert d.temporal_id is not None and d.key_index is not None
    return d.picture_id, d.tl0_pic_idx, d.temporal_id, d.key_index


def test_the_first_stream_passes_through_unchanged() -> None:
    ids = PictureIds("vp8")
    source = Source(pid=0x7FFD, tl0=254, key=3)
    for index in range(8):
        for packet in vp8_picture(source, index, keyframe=index == 0, packets=2):
            assert ids.apply(packet) is packet
    assert not ids.rewriting


def test_a_switch_continues_the_numbers_of_the_previous_stream() -> None:
    ids = PictureIds("vp8")
    low, high = Source(pid=100, tl0=10, key=1), Source(pid=20000, tl0=200, key=30)
    sent = [ids.apply(p) for i in range(4) for p in vp8_picture(low, i, keyframe=i == 0, packets=1)]
    last_pid, last_tl0, _, last_key = read(sent[-1])
    ids.rebase()
    first = ids.apply(vp8_picture(high, 0, keyframe=True, packets=1)[0])
    assert read(first) == ((last_pid + 1) & 0x7FFF, (last_tl0 + 1) & 0xFF, 0, last_key + 1)
    # The rest of the packet is untouched.
    assert first[6:] == vp8_picture(Source(0, 0, 0), 0, keyframe=True, packets=1)[0][6:]
    assert ids.rewriting


@settings(max_examples=200, deadline=None)
@given(
    starts=st.lists(
        st.tuples(st.integers(0, 0x7FFF), st.integers(0, 0xFF), st.integers(0, 31)),
        min_size=2, max_size=4,
    ),
    schedule=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40)), min_size=1, max_size=8),
    packets=st.integers(1, 3),
)  # fmt: skip
def test_pictures_stay_contiguous_across_any_switches(
    starts: list[tuple[int, int, int]], schedule: list[tuple[int, int]], packets: int
) -> None:
    """Whatever the streams' own numbers and the switches (wrap-around included), the
    subscriber sees picture ids +1 per picture, TL0PICIDX +1 per base-layer picture and
    KEYIDX +1 per key frame."""
    sources = [Source(*start) for start in starts]
    ids = PictureIds("vp8")
    previous: tuple[int, int, int, int] | None = None
    current = -1
    for which, count in schedule:
        which %= len(sources)
        switching = which != current
        if switching:
            ids.rebase()  # The m-line switches at this source's key frame.
            current = which
        for index in range(count):
            keyframe = switching and index == 0
            picture = vp8_picture(sources[which], index, keyframe=keyframe, packets=packets)
            out = [read(ids.apply(p)) for p in picture]
            assert len(set(out)) == 1  # Every packet of a picture has the same numbers.
            pid, tl0, tid, key = out[0]
            if previous is not None:
                assert pid == (previous[0] + 1) & 0x7FFF
                assert tl0 == (previous[1] + (tid == 0)) & 0xFF
                assert key == (previous[3] + keyframe) & 0x1F
            previous = out[0]


@settings(max_examples=100, deadline=None)
@given(
    start=st.integers(0, 0x7FFF),
    target=st.integers(0, 1),
    pictures=st.integers(4, 60),
    switch_at=st.integers(1, 30),
)
def test_dropped_temporal_layers_leave_no_picture_id_gap(
    start: int, target: int, pictures: int, switch_at: int
) -> None:
    """Pictures a layer selector drops (above ``target``) take no picture id, also after
    a switch to another stream."""
    ids = PictureIds("vp8")
    sources = [Source(pid=start, tl0=0, key=0), Source(pid=(start + 9000) & 0x7FFF, tl0=7, key=4)]
    sent: list[int] = []
    source, offset = sources[0], 0
    for index in range(pictures):
        keyframe = index in (0, switch_at)
        if index == switch_at:
            source, offset = sources[1], switch_at
            ids.rebase()
        picture = vp8_picture(source, index - offset, keyframe=keyframe, packets=2)
        tid = read(picture[0])[2]
        for packet in picture:
            if tid > target:
                ids.skip(packet)
            else:
                sent.append(read(ids.apply(packet))[0])
    firsts = sent[::2]
    assert all(b == (a + 1) & 0x7FFF for a, b in itertools.pairwise(firsts))


def test_vp9_picture_id_and_tl0_continue_across_a_switch() -> None:
    def packet(pid: int, tl0: int) -> bytes:
        d = Vp9Descriptor(
            picture_id=pid, long_picture_id=True, begin=True, end=True, layer_indices=True,
            tl0_pic_idx=tl0,
        )  # fmt: skip
        return d.serialize() + b"\x82\x49\x83"

    ids = PictureIds("vp9")
    assert ids.apply(packet(5, 9)) == packet(5, 9)
    ids.rebase()
    assert ids.apply(packet(31000, 100)) == packet(6, 10)
    assert ids.apply(packet(31001, 101)) == packet(7, 11)


def test_a_malformed_descriptor_passes_through() -> None:
    ids = PictureIds("vp8")
    good = vp8_picture(Source(1, 1, 1), 0, keyframe=True, packets=1)[0]
    ids.apply(good)
    ids.rebase()
    truncated = bytes([0x90, 0x80])  # X and I set, the picture id missing.
    assert picture_fields("vp8", truncated) is None
    assert ids.apply(truncated) is truncated


def test_only_vp8_and_vp9_have_picture_ids() -> None:
    with pytest.raises(InvalidArgument):
        PictureIds("h264")

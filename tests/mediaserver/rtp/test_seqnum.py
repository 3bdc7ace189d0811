"""Tests for mediaserver.rtp.seqnum: wrap arithmetic from every wrap point."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.seqnum import (
    Unwrapper,
    uint16_add,
    uint16_diff,
    uint16_gt,
    uint16_gte,
    uint32_add,
    uint32_diff,
    uint32_gt,
    uint32_gte,
)

START_POINTS = [0, 1, 32767, 32768, 65535]

# (offset from start, expected uint16_diff(start + offset, start), expected gt)
STEPS = [
    (0, 0, False),
    (1, 1, True),
    (2, 2, True),
    (100, 100, True),
    (32767, 32767, True),
    (32768, -32768, False),
    (32769, -32767, False),
    (65535, -1, False),
    (-1, -1, False),
    (-100, -100, False),
]


@pytest.mark.parametrize("start", START_POINTS)
@pytest.mark.parametrize(("offset", "diff", "newer"), STEPS)
def test_uint16_table_from_every_wrap_point(
    start: int, offset: int, diff: int, newer: bool
) -> None:
    """uint16 add/diff/gt agree with the table from each start point."""
    value = uint16_add(start, offset)
    assert 0 <= value <= 0xFFFF
    assert value == (start + offset) % 65536
    assert uint16_diff(value, start) == diff
    assert uint16_gt(value, start) is newer
    assert uint16_gte(value, start) is (newer or diff == 0)


def test_half_space_apart_is_newer_in_neither_direction() -> None:
    """RFC 1982 leaves exactly half the space undefined; we say "not newer" both ways."""
    assert not uint16_gt(32768, 0)
    assert not uint16_gt(0, 32768)
    assert not uint32_gt(1 << 31, 0)
    assert not uint32_gt(0, 1 << 31)


@pytest.mark.parametrize("start", [0, 1, (1 << 31) - 1, 1 << 31, (1 << 32) - 1])
def test_uint32_wrap(start: int) -> None:
    """uint32 arithmetic wraps at 2**32 from each wrap point."""
    assert uint32_add(start, 1) == (start + 1) % (1 << 32)
    assert uint32_diff(uint32_add(start, 5), start) == 5
    assert uint32_diff(uint32_add(start, -5), start) == -5
    assert uint32_gt(uint32_add(start, 1), start)
    assert not uint32_gt(start, uint32_add(start, 1))
    assert uint32_gte(start, start)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_uint16_diff_inverts_add(a: int, b: int) -> None:
    """Adding the difference back gives the original value."""
    assert uint16_add(b, uint16_diff(a, b)) == a
    assert -32768 <= uint16_diff(a, b) <= 32767


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))
def test_uint32_diff_inverts_add(a: int, b: int) -> None:
    """Adding the difference back gives the original value."""
    assert uint32_add(b, uint32_diff(a, b)) == a


@pytest.mark.parametrize("start", START_POINTS)
def test_unwrapper_counts_cycles_across_the_wrap(start: int) -> None:
    """A stream running through 0 keeps increasing extended numbers."""
    unwrapper = Unwrapper()
    extended = [unwrapper.unwrap(uint16_add(start, i)) for i in range(70000)]
    assert extended == list(range(start, start + 70000))
    assert unwrapper.highest == start + 69999


@pytest.mark.parametrize("start", START_POINTS)
def test_unwrapper_places_late_packets_in_their_cycle(start: int) -> None:
    """A reordered packet gets its own (smaller) extended number; highest stays."""
    unwrapper = Unwrapper()
    unwrapper.unwrap(start)
    unwrapper.unwrap(uint16_add(start, 3))
    assert unwrapper.unwrap(uint16_add(start, 1)) == start + 1
    assert unwrapper.unwrap(uint16_add(start, -2)) == start - 2
    assert unwrapper.highest == start + 3
    assert unwrapper.unwrap(uint16_add(start, 4)) == start + 4


def test_unwrapper_32_bit_timestamps() -> None:
    """With bits=32 it unwraps RTP timestamps."""
    unwrapper = Unwrapper(32)
    assert unwrapper.highest is None
    assert unwrapper.unwrap(0xFFFFFF00) == 0xFFFFFF00
    assert unwrapper.unwrap(0x100) == (1 << 32) + 0x100
    assert unwrapper.unwrap(0xFFFFFFF0) == 0xFFFFFFF0


def test_unwrapper_rejects_other_widths() -> None:
    """Only 16 and 32 bits are supported."""
    with pytest.raises(InvalidArgument, match=r"^bits must be 16 or 32, not 8$"):
        Unwrapper(8)

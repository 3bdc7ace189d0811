"""Tests for mediaserver.sfu.munger: continuity across switches, drops and wrap-around."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.seqnum import uint16_add, uint16_diff, uint32_diff
from mediaserver.sfu.munger import SeqMunger
from tests.mediaserver.sfu.builders import START_POINTS


@pytest.mark.parametrize("start", START_POINTS)
@pytest.mark.parametrize("out_start", START_POINTS)
def test_in_order_packets_keep_their_spacing_across_the_wrap(start: int, out_start: int) -> None:
    m = SeqMunger(90000, initial_sequence_number=out_start, initial_timestamp=5)
    outputs = [m.input(uint16_add(start, i), 1000 + i, 0.0) for i in range(70000)]
    assert outputs[0] == (out_start, 5)
    for i, out in enumerate(outputs):
        assert out is not None
        assert out[0] == uint16_add(out_start, i)
        assert out[1] == (5 + i) & 0xFFFFFFFF


@pytest.mark.parametrize("start", START_POINTS)
def test_a_switch_continues_the_sequence_and_the_clock(start: int) -> None:
    m = SeqMunger(90000, initial_sequence_number=start, initial_timestamp=0xFFFFFF00)
    for i in range(10):
        m.input(uint16_add(40000, i), 3000 * i, now=1.0 + i / 30)
    last_seq, last_ts = m.last_sequence_number, m.last_timestamp
    m.switch()
    # The new source has unrelated numbers; 100 ms later.
    out = m.input(start, 123456, now=1.0 + 9 / 30 + 0.1)
    assert out == (uint16_add(last_seq, 1), (last_ts + 9000) & 0xFFFFFFFF)
    out2 = m.input(uint16_add(start, 1), 123456 + 3000, now=2.0)
    assert out2 == (uint16_add(last_seq, 2), (last_ts + 12000) & 0xFFFFFFFF)


def test_a_switch_with_no_elapsed_time_still_advances_the_timestamp() -> None:
    m = SeqMunger(90000, initial_sequence_number=0, initial_timestamp=0)
    m.input(10, 500, 1.0)
    m.switch()
    assert m.input(9000, 7, 1.0) == (1, 1)


@pytest.mark.parametrize("start", START_POINTS)
def test_filtered_packets_leave_no_gap_and_losses_do(start: int) -> None:
    m = SeqMunger(90000, initial_sequence_number=100, initial_timestamp=0)
    seqs = [uint16_add(start, i) for i in range(12)]
    got = []
    for i, seq in enumerate(seqs):
        if i in (3, 4, 8):
            m.drop(seq)  # Filtered by the selector.
        elif i == 6:
            continue  # Lost upstream: never seen.
        else:
            out = m.input(seq, 0, 0.0)
            assert out is not None
            got.append(out[0])
    # 12 inputs, 3 filtered: numbers 100..108, with 104 missing (the real loss).
    assert got == [100, 101, 102, 103, 105, 106, 107, 108]


def test_a_late_packet_fills_the_hole_kept_for_it() -> None:
    m = SeqMunger(90000, initial_sequence_number=0, initial_timestamp=0)
    assert m.input(65534, 0, 0.0) == (0, 0)
    assert m.input(1, 0, 0.0) == (3, 0)  # 65535 and 0 are late.
    m.drop(2)
    assert m.input(3, 0, 0.0) == (4, 0)
    assert m.input(0, 0, 0.0) == (2, 0)
    assert m.input(65535, 0, 0.0) == (1, 0)
    m.drop(6)
    m.drop(7)
    assert m.input(8, 0, 0.0) == (7, 0)  # 4 and 5 stay reserved: they may still come.
    assert m.input(5, 0, 0.0) == (6, 0)
    assert m.input(4, 0, 0.0) == (5, 0)


def test_late_packets_from_before_the_switch_or_dropped_are_refused() -> None:
    m = SeqMunger(90000, initial_sequence_number=0, initial_timestamp=0)
    m.input(100, 0, 0.0)
    m.switch()
    m.input(500, 0, 0.0)
    assert m.input(499, 0, 0.0) is None
    m.input(502, 0, 0.0)
    m.drop(503)
    m.input(504, 0, 0.0)
    assert m.input(503, 0, 0.0) is None  # The selector dropped it already.
    assert m.input(501, 0, 0.0) == (2, 1)  # The switch advanced the clock by 1 tick.


def test_the_drop_history_is_bounded() -> None:
    m = SeqMunger(90000, initial_sequence_number=0, initial_timestamp=0)
    m.input(0, 0, 0.0)
    for seq in range(2, 600):
        m.drop(seq)
    m.input(600, 0, 0.0)
    assert m.input(1, 0, 0.0) is None  # Older than the remembered drops.


def test_clock_rate_must_be_positive() -> None:
    with pytest.raises(InvalidArgument):
        SeqMunger(0)


OPS = st.lists(
    st.sampled_from(["forward", "forward", "forward", "drop", "lose", "switch"]),
    min_size=1,
    max_size=300,
)


@given(
    ops=OPS,
    start=st.sampled_from(START_POINTS),
    out_start=st.sampled_from(START_POINTS),
    jump=st.integers(0, 0xFFFF),
)
def test_output_is_strictly_increasing_with_gaps_only_for_losses(
    ops: list[str], start: int, out_start: int, jump: int
) -> None:
    m = SeqMunger(90000, initial_sequence_number=out_start, initial_timestamp=0)
    seq = start
    ts = 0
    now = 0.0
    outputs: list[tuple[int, int]] = []
    losses_since_last: list[int] = []
    lost = 0
    switched = True
    for op in ops:
        now += 0.01
        ts += 900
        if op == "switch":
            m.switch()
            seq = uint16_add(seq, jump)
            ts += jump * 7
            switched = True
            continue
        if op == "forward":
            out = m.input(seq, ts, now)
            assert out is not None
            outputs.append(out)
            # A new source continues right after the last output, whatever was lost.
            losses_since_last.append(0 if switched else lost)
            lost = 0
            switched = False
        elif op == "drop":
            m.drop(seq)
        else:
            lost += 1
        seq = uint16_add(seq, 1)
    assert outputs == [] or outputs[0][0] == out_start
    for (prev, cur), gap in zip(itertools.pairwise(outputs), losses_since_last[1:],
                                strict=False):  # fmt: skip
        assert uint16_diff(cur[0], prev[0]) == 1 + gap
        assert uint32_diff(cur[1], prev[1]) > 0

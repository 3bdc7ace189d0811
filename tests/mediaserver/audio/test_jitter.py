from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.audio.jitter import LOST, JitterBuffer, Lost
from mediaserver.errors import InvalidArgument
from mediaserver.rtp.seqnum import Unwrapper, uint16_add

STARTS = [0, 1, 32767, 32768, 65535]
FRAME = 0.020
TS_STEP = 960


def payload(i: int) -> bytes:
    return b"p%d" % i


def run(
    start: int,
    arrivals: list[tuple[float, int]],
    ticks: int,
    tick0: float = 0.010,
    **kwargs: float,
) -> list[bytes | Lost | None]:
    """Push packet ``i`` (sequence ``start + i``) at each ``(time, i)``; pop every 20 ms.

    Returns what each pop returned, with payloads mapped back to ``i``-labelled bytes.
    """
    jb = JitterBuffer(**kwargs)  # type: ignore[arg-type]
    events = sorted(arrivals)
    out: list[bytes | Lost | None] = []
    k = 0
    for t in range(ticks):
        now = tick0 + t * FRAME
        while k < len(events) and events[k][0] <= now:
            at, i = events[k]
            jb.push(uint16_add(start, i), (1000 + i * TS_STEP) & 0xFFFFFFFF, payload(i), at)
            k += 1
        out.append(jb.pop(now))
    return out


def steady(n: int, offset: float = 0.0) -> list[tuple[float, int]]:
    return [(i * FRAME + offset, i) for i in range(n)]


@pytest.mark.parametrize("start", STARTS)
def test_in_order_stream_plays_every_packet_once_in_order(start: int) -> None:
    out = run(start, steady(20), 22)
    assert out[:20] == [payload(i) for i in range(20)]


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize(
    "order",
    [[1, 0, 2, 3, 4, 5], [0, 2, 1, 3, 5, 4], [0, 1, 3, 2, 4, 5]],
)
def test_reordering_within_the_delay_is_repaired(start: int, order: list[int]) -> None:
    # Packets arrive in bursts of two within one tick, out of order; the delay covers it.
    arrivals = [
        (0.001 + (pos // 2) * 2 * FRAME + 0.001 * (pos % 2), i) for pos, i in enumerate(order)
    ]
    arrivals += [(0.001 + (6 + j) * FRAME, 6 + j) for j in range(6)]
    out = run(start, arrivals, 16, min_delay_ms=40)
    played = [x for x in out if isinstance(x, bytes)]
    assert played == [payload(i) for i in range(12)]


@pytest.mark.parametrize("start", STARTS)
def test_a_lost_packet_is_reported_once_and_playout_continues(start: int) -> None:
    arrivals = [a for a in steady(10) if a[1] != 4]
    jb = JitterBuffer(min_delay_ms=40)
    got: list[bytes | Lost | None] = []
    for t in range(11):
        now = 0.010 + t * FRAME
        for at, i in arrivals:
            if now - FRAME < at <= now:
                jb.push(uint16_add(start, i), i * TS_STEP, payload(i), at)
        got.append(jb.pop(now))
    played = [x for x in got if x is not None]
    assert played[:9] == [*(payload(i) for i in range(4)), LOST, *(payload(i) for i in range(5, 9))]
    assert jb.stats.concealed == 1 and jb.stats.played >= 8


@pytest.mark.parametrize("start", STARTS)
def test_late_packet_is_dropped_and_counted(start: int) -> None:
    jb = JitterBuffer()
    for i in range(3):
        jb.push(uint16_add(start, i), i * TS_STEP, payload(i), i * FRAME)
        assert jb.pop(i * FRAME + 0.001) == payload(i)
    # Packet 3 is missing, 4 arrived: 3 is concealed.
    jb.push(uint16_add(start, 4), 4 * TS_STEP, payload(4), 4 * FRAME)
    assert jb.pop(4 * FRAME + 0.001) is LOST
    jb.push(uint16_add(start, 3), 3 * TS_STEP, payload(3), 4 * FRAME + 0.005)
    assert jb.stats.late == 1
    assert jb.pop(5 * FRAME) == payload(4)


@pytest.mark.parametrize("start", STARTS)
def test_duplicates_are_dropped(start: int) -> None:
    jb = JitterBuffer(min_delay_ms=60)
    for i in (0, 1, 1, 2, 0):
        jb.push(uint16_add(start, i), i * TS_STEP, payload(i), 0.001 * i)
    assert jb.stats.duplicates == 2
    assert [jb.pop(0.01 + t * FRAME) for t in range(3)] == [payload(0), payload(1), payload(2)]


@pytest.mark.parametrize("start", STARTS)
def test_extended_sequence_agrees_with_the_unwrapper(start: int) -> None:
    jb = JitterBuffer(min_delay_ms=200)
    unwrapper = Unwrapper()
    for i in (0, 2, 1, 5, 3, 4):
        seq = uint16_add(start, i)
        jb.push(seq, i * TS_STEP, payload(i), 0.0)
        unwrapper.unwrap(seq)
    assert jb.depth == 6
    assert unwrapper.highest == start + 5


@pytest.mark.parametrize("start", STARTS)
def test_empty_buffer_holds_then_grows_the_delay(start: int) -> None:
    jb = JitterBuffer()
    jb.push(start, 0, payload(0), 0.0)
    assert jb.pop(0.001) == payload(0)
    # Packet 1 is 10 ms late: the tick conceals and holds, then 1 plays.
    assert jb.pop(0.021) is LOST
    jb.push(uint16_add(start, 1), TS_STEP, payload(1), 0.030)
    assert jb.pop(0.041) == payload(1)
    jb.push(uint16_add(start, 2), 2 * TS_STEP, payload(2), 0.040)
    assert jb.pop(0.061) == payload(2)
    assert jb.stats.late == 0


@pytest.mark.parametrize("start", STARTS)
def test_held_frame_stands_for_a_lost_packet(start: int) -> None:
    jb = JitterBuffer()
    jb.push(start, 0, payload(0), 0.0)
    assert jb.pop(0.001) == payload(0)
    assert jb.pop(0.021) is LOST  # 1 is missing, nothing buffered: hold
    jb.push(uint16_add(start, 2), 2 * TS_STEP, payload(2), 0.040)
    assert jb.pop(0.041) == payload(2)  # the held LOST was packet 1's concealment
    assert jb.stats.concealed == 1


@pytest.mark.parametrize("start", STARTS)
def test_goes_idle_after_max_conceal_then_restarts(start: int) -> None:
    jb = JitterBuffer(max_conceal=3)
    jb.push(start, 0, payload(0), 0.0)
    assert jb.pop(0.001) == payload(0)
    assert [jb.pop(0.001 + t * FRAME) for t in range(1, 6)] == [LOST, LOST, LOST, None, None]
    assert jb.stats.idles == 1 and not jb.playing
    # The sender resumes (DTX end): sequence numbers continue.
    jb.push(uint16_add(start, 1), 40 * TS_STEP, payload(1), 0.8)
    assert jb.pop(0.801) == payload(1)


@pytest.mark.parametrize("start", STARTS)
def test_large_jump_resyncs(start: int) -> None:
    jb = JitterBuffer()
    jb.push(start, 0, payload(0), 0.0)
    assert jb.pop(0.001) == payload(0)
    far = uint16_add(start, 5000)
    jb.push(far, 5000 * TS_STEP, payload(5000), 0.02)
    assert jb.stats.resyncs == 1
    assert jb.pop(0.021) == payload(5000)


def test_ssrc_change_resyncs() -> None:
    jb = JitterBuffer()
    jb.push(10, 0, payload(0), 0.0, ssrc=1)
    assert jb.pop(0.001) == payload(0)
    jb.push(40000, 77, payload(9), 0.02, ssrc=2)
    assert jb.stats.resyncs == 1
    assert jb.pop(0.021) == payload(9)
    jb.push(40001, 77 + TS_STEP, payload(10), 0.04, ssrc=2)
    assert jb.stats.resyncs == 1


def test_target_delay_adapts_to_jitter_and_is_clamped() -> None:
    calm = JitterBuffer()
    for i in range(200):
        calm.push(i, i * TS_STEP, payload(i), i * FRAME)
    assert calm.jitter_ms < 0.01
    assert calm.target_delay_ms == 20.0

    import random

    rnd = random.Random(7)
    jittery = JitterBuffer()
    for i in range(400):
        jittery.push(i, i * TS_STEP, payload(i), i * FRAME + rnd.uniform(0, 0.040))
    assert 5.0 < jittery.jitter_ms < 30.0
    assert 40.0 <= jittery.target_delay_ms <= 200.0

    wild = JitterBuffer()
    for i in range(400):
        wild.push(i, i * TS_STEP, payload(i), i * FRAME + rnd.uniform(0, 0.9))
    assert wild.target_delay_ms == 200.0


def test_late_packets_boost_the_target_and_the_boost_decays() -> None:
    jb = JitterBuffer()
    for i in range(3):
        jb.push(i, i * TS_STEP, payload(i), i * FRAME)
        jb.pop(i * FRAME + 0.001)
    jb.push(4, 4 * TS_STEP, payload(4), 4 * FRAME)
    jb.pop(4 * FRAME + 0.001)  # 3 concealed
    jb.push(3, 3 * TS_STEP, payload(3), 4 * FRAME + 0.002)  # late
    boosted = jb.target_frames
    assert boosted >= 2
    jb.pop(2.0)
    assert jb.target_frames == boosted - 1


def test_unpopped_buffer_stays_bounded_and_trims_to_target() -> None:
    jb = JitterBuffer()
    for i in range(500):
        jb.push(i & 0xFFFF, i * TS_STEP, payload(i), i * FRAME)
        assert len(jb) <= 13
    jb.trim_to_target()
    assert jb.depth == jb.target_frames == 1
    assert jb.pop(500 * FRAME) == payload(499)


def test_burst_after_stall_is_trimmed_and_excess_shrinks() -> None:
    jb = JitterBuffer()
    jb.push(0, 0, payload(0), 0.0)
    assert jb.pop(0.001) == payload(0)
    # A backlog that never drains: after 25 ticks one frame is dropped.
    for i in range(1, 7):
        jb.push(i, i * TS_STEP, payload(i), 0.02)
    now = 0.021
    for i in range(7, 40):
        jb.pop(now)
        jb.push(i, i * TS_STEP, payload(i), now + 0.001)
        now += FRAME
    assert jb.stats.shrinks >= 1


def test_starts_at_the_earliest_packet_before_playout() -> None:
    jb = JitterBuffer(min_delay_ms=60)
    jb.push(11, TS_STEP, payload(1), 0.0)
    jb.push(10, 0, payload(0), 0.001)
    jb.push(12, 2 * TS_STEP, payload(2), 0.002)
    assert jb.peek() == payload(0)
    assert [jb.pop(0.01 * t) for t in range(3)] == [payload(0), payload(1), payload(2)]


def test_idle_buffer_pops_none_and_peeks_none() -> None:
    jb = JitterBuffer(min_delay_ms=40)
    assert jb.pop(0.0) is None and jb.peek() is None and jb.depth == 0
    jb.push(0, 0, payload(0), 0.0)
    assert jb.pop(0.001) is None  # buffering to 2 frames
    jb.reset()
    assert len(jb) == 0


def test_rejects_bad_delays() -> None:
    with pytest.raises(InvalidArgument):
        JitterBuffer(min_delay_ms=10)
    with pytest.raises(InvalidArgument):
        JitterBuffer(min_delay_ms=100, max_delay_ms=50)


def test_lost_repr() -> None:
    assert repr(LOST) == "LOST"


@settings(max_examples=60, deadline=None)
@given(
    start=st.sampled_from(STARTS),
    count=st.integers(1, 60),
    delays=st.lists(st.floats(0.0, 0.25), min_size=60, max_size=60),
    drops=st.sets(st.integers(0, 59), max_size=10),
    dups=st.sets(st.integers(0, 59), max_size=5),
)
def test_random_arrival_orders_keep_the_invariants(
    start: int, count: int, delays: list[float], drops: set[int], dups: set[int]
) -> None:
    jb = JitterBuffer()
    events: list[tuple[float, int]] = []
    for i in range(count):
        if i in drops:
            continue
        events.append((i * FRAME + delays[i], i))
        if i in dups:
            events.append((i * FRAME + delays[i] + 0.003, i))
    events.sort()
    sent = {payload(i) for _, i in events}
    played: list[int] = []
    k = 0
    now = 0.0
    while now < count * FRAME + 0.6:
        while k < len(events) and events[k][0] <= now:
            at, i = events[k]
            jb.push(uint16_add(start, i), i * TS_STEP, payload(i), at)
            k += 1
        got = jb.pop(now)
        assert got is None or got is LOST or got in sent
        if isinstance(got, bytes):
            played.append(int(got[1:]))
        assert len(jb) <= 13
        assert jb.target_frames <= 10
        now += FRAME
    # Every packet plays at most once, in sequence order.
    assert played == sorted(set(played))
    s = jb.stats
    # Every unique packet is played, dropped (late, or to bound the delay) or still held;
    # a duplicate of a packet already played counts as late.
    unique = len({i for _, i in events})
    assert s.played + s.dropped + len(jb) <= unique <= s.played + s.late + s.dropped + len(jb)
    assert s.duplicates + s.late + s.dropped + s.played + len(jb) == s.received

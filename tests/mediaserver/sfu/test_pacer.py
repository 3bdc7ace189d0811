"""Tests for mediaserver.sfu.pacer: the per-subscriber token bucket and its bounded queue."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.pacer import (
    MAX_BURST_BYTES,
    MIN_BURST_BYTES,
    PACE_FACTOR,
    PACE_FLOOR,
    Pacer,
    pacing_rate,
)


def _packet(n: int, size: int = 1200) -> bytes:
    return n.to_bytes(4, "big") + bytes(size - 4)


def test_an_unpaced_pacer_sends_everything_at_once_and_queues_nothing() -> None:
    pacer = Pacer()
    assert all(pacer.offer(_packet(i), 0.0) for i in range(10_000))
    counters = (pacer.rate, pacer.backlog, pacer.queued, pacer.dropped, pacer.expired)
    assert counters == (0, 0, 0, 0, 0)
    assert pacer.due(1.0) == [] and pacer.next_due(1.0) is None


def test_the_fast_path_sends_while_the_budget_lasts_then_packets_wait_in_order() -> None:
    pacer = Pacer(1_000_000)  # 125 kB/s; burst 40 ms = 5 kB
    assert pacer.burst == 5_000
    sent = [pacer.offer(_packet(i), 10.0) for i in range(6)]
    assert sent == [True, True, True, True, False, False]
    assert pacer.backlog == 2 and pacer.queued == 2
    # Once one packet waits, a later one never overtakes it, even with budget back.
    assert pacer.offer(_packet(6, 100), 10.1) is False
    due = pacer.next_due(10.0)
    # 200 bytes left in the bucket: 1000 more for the next 1200-byte packet.
    assert due is not None and due == pytest.approx(10.0 + 1000 / 125_000)
    assert pacer.due(10.0) == []
    assert pacer.due(10.1) == [_packet(4), _packet(5), _packet(6, 100)]
    assert pacer.backlog == 0 and pacer.next_due(10.1) is None
    # Idle again with a full bucket: the fast path.
    assert pacer.offer(_packet(7), 11.0) is True


def test_a_full_queue_drops_its_oldest_packets_and_counts_them() -> None:
    pacer = Pacer(100_000, max_packets=3)  # the minimum burst: two packets
    results = [pacer.offer(_packet(i, 1500), 0.0) for i in range(7)]
    assert results == [True, True, False, False, False, False, False]
    assert pacer.backlog == 3 and pacer.dropped == 2 and pacer.queued == 5
    assert pacer.due(0.2) == [_packet(4, 1500)]  # 2500 bytes of budget
    assert pacer.due(0.25) == [_packet(5, 1500)]  # 1000 + 625
    assert pacer.due(0.31) == [] and pacer.expired == 1 and pacer.backlog == 0


def test_packets_that_waited_too_long_are_dropped_and_counted() -> None:
    pacer = Pacer(100_000, max_wait=0.3)  # 12.5 kB/s
    for i in range(12):
        pacer.offer(_packet(i), 0.0)
    assert pacer.backlog == 10
    # 0.25 s later 3125 bytes of budget: two packets leave.
    assert pacer.due(0.25) == [_packet(2), _packet(3)]
    # After 0.3 s what is left is stale: dropped, counted, nothing sent.
    assert pacer.due(0.31) == []
    assert pacer.expired == 8 and pacer.backlog == 0 and pacer.dropped == 0
    pacer.offer(_packet(20), 0.4)
    assert pacer.offer(_packet(21), 0.4) is True


def test_a_packet_larger_than_the_burst_leaves_on_a_full_bucket_and_leaves_debt() -> None:
    pacer = Pacer(80_000)  # 10 kB/s, burst 3000 bytes
    assert pacer.burst == MIN_BURST_BYTES
    assert pacer.offer(_packet(0, 5_000), 0.0) is True
    assert pacer.offer(_packet(1, 100), 0.0) is False
    due = pacer.next_due(0.0)
    assert due == pytest.approx(0.21)  # 2000 bytes of debt, then 100 bytes
    assert pacer.due(0.2) == [] and pacer.due(0.2101) == [_packet(1, 100)]


def test_set_rate_repaces_and_zero_releases_what_waits() -> None:
    pacer = Pacer(100_000)
    for i in range(5):
        pacer.offer(_packet(i), 1.0)
    assert pacer.backlog == 3
    pacer.set_rate(10_000_000)
    assert pacer.burst == 50_000 and pacer.rate == 10_000_000
    pacer.set_rate(100_000_000)
    assert pacer.burst == MAX_BURST_BYTES
    pacer.set_rate(0)
    assert pacer.next_due(1.0) == 1.0
    assert pacer.due(1.0) == [_packet(2), _packet(3), _packet(4)]
    with pytest.raises(InvalidArgument):
        pacer.set_rate(-1)
    with pytest.raises(InvalidArgument):
        Pacer(max_packets=0)
    with pytest.raises(InvalidArgument):
        Pacer(max_wait=0)


def test_clear_drops_and_counts_what_waits() -> None:
    pacer = Pacer(100_000)
    for i in range(5):
        pacer.offer(_packet(i), 0.0)
    assert pacer.clear() == 3 and pacer.expired == 3 and pacer.backlog == 0


def test_the_rate_policy_paces_at_two_and_a_half_times_the_estimate_with_a_floor() -> None:
    assert pacing_rate(None) == 0
    assert pacing_rate(1_000_000) == int(PACE_FACTOR * 1_000_000) == 2_500_000
    assert pacing_rate(10_000) == PACE_FLOOR


_events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=0.05),  # time step
        st.sampled_from(["offer", "offer", "offer", "due", "rate"]),
        st.integers(min_value=20, max_value=1500),  # packet size
        st.integers(min_value=50_000, max_value=5_000_000),  # new rate
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.integers(min_value=50_000, max_value=5_000_000),
    max_packets=st.integers(min_value=1, max_value=40),
    events=_events,
)
def test_bounds_budget_and_accounting_hold_for_any_sequence(
    rate: int, max_packets: int, events: list[tuple[float, str, int, int]]
) -> None:
    pacer = Pacer(rate, max_packets=max_packets)
    now = 0.0
    offered: list[bytes] = []
    released: list[bytes] = []
    fast = 0
    # Bytes released since the last rate change, and when that was: the bucket bound holds
    # per constant-rate interval.
    since, window_start, burst, byte_rate = 0, now, pacer.burst, rate / 8
    for n, (step, action, size, new_rate) in enumerate(events):
        now += step
        if action == "offer":
            packet = n.to_bytes(4, "big") + bytes(size)
            offered.append(packet)
            if pacer.offer(packet, now):
                fast += 1
                released.append(packet)
                since += len(packet)
        elif action == "due":
            out = pacer.due(now)
            released += out
            since += sum(len(p) for p in out)
        else:
            pacer.set_rate(new_rate)
            since, window_start, burst, byte_rate = 0, now, pacer.burst, new_rate / 8
        assert pacer.backlog <= max_packets
        # Packets are at most 1504 bytes; the burst is at least 3000, so never in debt.
        assert since <= byte_rate * (now - window_start) + burst + 1e-6
    # Order is kept: what was released is a subsequence of what was offered, in order.
    position = {p: i for i, p in enumerate(offered)}
    indexes = [position[p] for p in released]
    assert indexes == sorted(indexes)
    # Nothing is lost without being counted.
    assert len(offered) == len(released) + pacer.dropped + pacer.expired + pacer.backlog
    assert pacer.queued == len(offered) - fast

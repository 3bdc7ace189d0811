"""Tests for mediaserver.ratelimit: explicit ``now`` values, no sleeping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.ratelimit import TokenBucket

T0 = 1000.0


def test_new_bucket_allows_a_burst_then_throttles() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.try_acquire(T0) for _ in range(6)] == [True] * 5 + [False]


def test_tokens_come_back_at_the_configured_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    for _ in range(5):
        assert bucket.try_acquire(T0)
    assert not bucket.try_acquire(T0 + 0.05)  # Half a token.
    assert bucket.try_acquire(T0 + 0.1)
    assert not bucket.try_acquire(T0 + 0.1)
    assert bucket.available(T0 + 0.3) == pytest.approx(2.0)


def test_bucket_never_holds_more_than_burst() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert bucket.try_acquire(T0)
    assert bucket.available(T0 + 3600) == 3.0
    assert [bucket.try_acquire(T0 + 3600) for _ in range(4)] == [True, True, True, False]


def test_a_refused_request_spends_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert bucket.try_acquire(T0, cost=1.5)
    assert not bucket.try_acquire(T0, cost=1)
    assert bucket.available(T0) == pytest.approx(0.5)


def test_cost_above_burst_never_passes() -> None:
    bucket = TokenBucket(rate=100, burst=2)
    assert not bucket.try_acquire(T0 + 1e6, cost=3)
    assert bucket.retry_after(T0 + 1e6, cost=3) == math.inf


def test_zero_cost_always_passes() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.try_acquire(T0)
    assert bucket.try_acquire(T0, cost=0)
    assert bucket.retry_after(T0, cost=0) == 0.0


def test_retry_after_is_zero_when_tokens_are_there() -> None:
    bucket = TokenBucket(rate=2, burst=4)
    assert bucket.retry_after(T0) == 0.0
    assert bucket.retry_after(T0, cost=4) == 0.0


def test_retry_after_is_the_time_to_earn_the_missing_tokens() -> None:
    bucket = TokenBucket(rate=4, burst=2)
    assert bucket.try_acquire(T0, cost=2)
    assert bucket.retry_after(T0) == pytest.approx(0.25)
    assert bucket.retry_after(T0, cost=2) == pytest.approx(0.5)
    assert bucket.retry_after(T0 + 0.1) == pytest.approx(0.15)
    assert not bucket.try_acquire(T0 + 0.2)
    assert bucket.try_acquire(T0 + 0.25)


def test_time_going_backwards_earns_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.try_acquire(T0)
    assert not bucket.try_acquire(T0 - 10)
    assert bucket.retry_after(T0 - 10) == pytest.approx(1.0)
    assert not bucket.try_acquire(T0 + 0.5)
    assert bucket.try_acquire(T0 + 1.0)


def test_first_reading_sets_the_clock() -> None:
    """A bucket created long before its first use starts from its first ``now``, full."""
    bucket = TokenBucket(rate=1, burst=2)
    assert bucket.available(5_000_000.0) == 2.0
    assert bucket.try_acquire(5_000_000.0, cost=2)
    assert bucket.available(5_000_000.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1, 1), (1, 0), (1, -2), (math.inf, 1), (1, math.nan), (math.nan, 1)],
)
def test_invalid_configuration_is_rejected(rate: float, burst: float) -> None:
    with pytest.raises(InvalidArgument):
        TokenBucket(rate, burst)


@pytest.mark.parametrize("cost", [-1, math.nan, math.inf])
def test_invalid_cost_is_rejected(cost: float) -> None:
    bucket = TokenBucket(rate=1, burst=1)
    with pytest.raises(InvalidArgument):
        bucket.try_acquire(T0, cost=cost)
    with pytest.raises(InvalidArgument):
        bucket.retry_after(T0, cost=cost)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.01, 1000),
    burst=st.floats(1, 100),
    steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0, 3)), max_size=40),
)
def test_waiting_retry_after_is_always_enough(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    """After any history, waiting exactly ``retry_after`` lets the request through."""
    bucket = TokenBucket(rate, burst)
    now = T0
    for delay, cost in steps:
        now += delay
        bucket.try_acquire(now, cost=cost)
        assert 0.0 <= bucket.available(now) <= burst
        if cost <= burst:
            wait = bucket.retry_after(now, cost=cost)
            assert wait >= 0.0
            now += wait
            assert bucket.try_acquire(now, cost=cost)


@settings(max_examples=100, deadline=None)
@given(
    rate=st.floats(0.1, 100),
    burst=st.floats(1, 50),
    times=st.lists(st.floats(0, 100), min_size=1, max_size=200).map(sorted),
)
def test_long_run_throughput_is_bounded_by_burst_plus_rate(
    rate: float, burst: float, times: list[float]
) -> None:
    """Over any window, no more than ``burst + rate * elapsed`` unit requests pass."""
    bucket = TokenBucket(rate, burst)
    passed = sum(bucket.try_acquire(T0 + t) for t in times)
    assert passed <= burst + rate * (times[-1] - times[0]) + 1e-6

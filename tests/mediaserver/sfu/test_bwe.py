"""Tests for mediaserver.sfu.bwe: the estimate reacts to growing delay and to loss."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.bwe import BandwidthEstimator
from mediaserver.sfu.twcc import PacketResult

RATE = 1_000_000
SIZE = 1250  # bytes: 100 packets/s per 1 Mbit/s


def feed(bwe: BandwidthEstimator, seconds: float, *, extra_delay_per_s: float = 0.0,
         lose_every: int = 0) -> None:  # fmt: skip
    """Send at 1 Mbit/s, report every 100 ms; delay grows by ``extra_delay_per_s``."""
    interval = SIZE * 8 / RATE
    n = int(seconds / interval)
    batch: list[PacketResult] = []
    for i in range(n):
        send = i * interval
        arrival = 0.05 + send + send * extra_delay_per_s
        lost = lose_every and i % lose_every == 0
        batch.append(PacketResult(i & 0xFFFF, send, None if lost else arrival, SIZE))
        if len(batch) == 10:
            bwe.receive_results(batch, send + 0.06)
            batch = []


def test_a_steady_path_keeps_the_estimate_near_the_sending_rate() -> None:
    bwe = BandwidthEstimator(RATE)
    feed(bwe, 5.0)
    assert bwe.usage == "normal"
    assert RATE * 0.95 <= bwe.estimate <= RATE * 1.6
    assert bwe.loss_fraction == 0.0


def test_growing_delay_is_detected_as_overuse_and_cuts_the_estimate() -> None:
    bwe = BandwidthEstimator(RATE)
    feed(bwe, 5.0, extra_delay_per_s=0.1)  # Queues grow by 100 ms per second.
    assert bwe.usage == "overusing"
    assert bwe.estimate < RATE * 0.9


def test_heavy_loss_cuts_the_estimate() -> None:
    bwe = BandwidthEstimator(RATE)
    feed(bwe, 3.0, lose_every=5)  # 20% loss, no delay growth.
    assert bwe.loss_fraction == pytest.approx(0.2, abs=0.02)
    assert bwe.estimate < RATE * 0.5


def test_light_loss_does_not() -> None:
    bwe = BandwidthEstimator(RATE)
    feed(bwe, 3.0, lose_every=20)  # 5%: the hold zone.
    assert bwe.estimate >= RATE * 0.95


def test_remb_caps_the_estimate_and_bounds_are_checked() -> None:
    bwe = BandwidthEstimator(RATE, min_bitrate=50_000)
    bwe.receive_remb(300_000)
    assert bwe.estimate == 300_000
    bwe.receive_remb(10)
    assert bwe.estimate == 50_000
    assert bwe.acknowledged_bitrate() is None
    with pytest.raises(InvalidArgument):
        BandwidthEstimator(10, min_bitrate=100)

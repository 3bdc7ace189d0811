"""Tests for mediaserver.sfu.allocator: priority allocation and BITRATES measurement."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.allocator import BitrateMeter, LayerOption, StreamDemand, allocate

SIMULCAST = (LayerOption(0, 2, 300_000), LayerOption(1, 2, 600_000), LayerOption(2, 2, 1_200_000))


def demand(key: str, priority: int, cap: int | None = None) -> StreamDemand:
    return StreamDemand(key, priority, SIMULCAST, cap)


def test_everyone_gets_a_tile_before_anyone_gets_a_sharp_one() -> None:
    result = allocate(1_500_000, [demand("b", 2), demand("a", 1), demand("c", 3)])
    assert [a.key for a in result] == ["b", "a", "c"]
    # All three get 300k, then a (priority 1) and b (2) are raised with what is left.
    assert [a.bitrate for a in result] == [600_000, 600_000, 300_000]
    assert sum(a.bitrate for a in result) <= 1_500_000


def test_the_most_important_stream_is_raised_first() -> None:
    result = allocate(2_000_000, [demand("low", 5), demand("high", 1)])
    assert {a.key: a.bitrate for a in result} == {"low": 600_000, "high": 1_200_000}


def test_streams_that_do_not_fit_are_paused() -> None:
    result = allocate(500_000, [demand("a", 1), demand("b", 2)])
    assert result[0].layer == SIMULCAST[0] and result[1].layer is None and result[1].bitrate == 0


def test_a_subscriber_cap_limits_the_layer() -> None:
    result = allocate(10_000_000, [demand("a", 1, cap=700_000)])
    assert result[0].layer == SIMULCAST[1]


def test_layers_must_be_ordered() -> None:
    with pytest.raises(InvalidArgument):
        StreamDemand("x", 1, tuple(reversed(SIMULCAST)))


def test_bitrate_meter_reports_sending_streams_only() -> None:
    meter = BitrateMeter(window=2.0)
    for i in range(200):
        meter.add(7, 1250, 10.0 + i * 0.01)  # 1 Mbit/s for 2 s
    meter.add(8, 100, 10.0)
    rates = meter.bitrates(12.0)
    assert rates[7] == pytest.approx(1_000_000, rel=0.05)
    assert 8 not in meter.bitrates(13.0)
    meter.forget(7)
    assert meter.bitrates(12.0) == {}
    with pytest.raises(InvalidArgument):
        BitrateMeter(0)

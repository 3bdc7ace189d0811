"""Tests for mediaserver.sfu.nack: uplink loss detection, retries, give-up."""

from __future__ import annotations

import pytest

from mediaserver.rtp.seqnum import uint16_add
from mediaserver.sfu.nack import NackGenerator
from tests.mediaserver.sfu.builders import START_POINTS


def make() -> NackGenerator:
    return NackGenerator(sender_ssrc=1, media_ssrc=2, delay=0.01, retry_interval=0.02,
                         max_retries=3, max_age=1.0)  # fmt: skip


@pytest.mark.parametrize("start", START_POINTS)
def test_a_gap_is_nacked_after_the_delay_and_cleared_when_repaired(start: int) -> None:
    g = make()
    g.receive(start, 0.0)
    g.receive(uint16_add(start, 1), 0.0)
    g.receive(uint16_add(start, 5), 0.0)
    lost = [uint16_add(start, i) for i in (2, 3, 4)]
    assert g.missing == sorted(lost) or set(g.missing) == set(lost)
    assert g.get_timer() == pytest.approx(0.01)
    assert g.nacks_to_send(0.005) is None
    nack = g.nacks_to_send(0.01)
    assert nack is not None and nack.lost == lost and nack.media_ssrc == 2
    g.receive(lost[1], 0.02)  # Retransmitted.
    assert g.stats.recovered == 1
    nack = g.nacks_to_send(0.03)
    assert nack is not None and nack.lost == [lost[0], lost[2]]


def test_retries_back_off_and_then_give_up() -> None:
    g = make()
    g.receive(10, 0.0)
    g.receive(12, 0.0)
    times = []
    now = 0.0
    while now < 1.0:
        if g.nacks_to_send(now) is not None:
            times.append(round(now, 3))
        now += 0.001
    assert times == [0.01, 0.03, 0.07]  # delay, then 20 ms, then 40 ms
    assert g.stats.given_up == 1 and g.stats.nacked == 3
    assert g.get_timer() is None and g.missing == []


def test_missing_packets_are_given_up_after_max_age() -> None:
    g = NackGenerator(sender_ssrc=1, media_ssrc=2, delay=0.0, max_retries=100, max_age=0.1)
    g.receive(1, 0.0)
    g.receive(3, 0.0)
    assert g.nacks_to_send(0.0) is not None
    assert g.nacks_to_send(0.2) is None
    assert g.stats.given_up == 1


def test_duplicates_and_reordering_are_not_losses() -> None:
    g = make()
    for seq in (65534, 65535, 0, 0, 65535, 1):
        g.receive(seq, 0.0)
    assert g.missing == [] and g.stats.missing == 0 and g.nacks_to_send(1.0) is None


def test_a_huge_jump_resets_instead_of_nacking_everything() -> None:
    g = make()
    g.receive(0, 0.0)
    g.receive(20000, 0.0)
    assert g.missing == [] and g.stats.resets == 1


def test_a_retransmission_fills_a_gap_only_when_the_packet_is_missing() -> None:
    gen = NackGenerator(sender_ssrc=1, media_ssrc=2)
    assert gen.fills_gap(10)  # nothing seen yet
    for seq in (65534, 65535, 1):  # 0 lost, across the wrap
        gen.receive(seq, 0.0)
    assert gen.fills_gap(0) and gen.fills_gap(2)
    assert not gen.fills_gap(65535) and not gen.fills_gap(1) and not gen.fills_gap(60000)
    gen.receive(0, 0.1)
    assert not gen.fills_gap(0)

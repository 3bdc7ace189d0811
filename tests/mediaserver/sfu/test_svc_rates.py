"""SVC layer costs (mediaserver/sfu/svc_rates.py), measured on the real Chromium VP9 L3T3
vector (tests/vectors/rtp/svc) and on hand-made counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from mediaserver.rtp.dump import read_dump
from mediaserver.rtp.packet import RtpPacket
from mediaserver.sfu.svc_rates import LAYER_CODES, SvcLayerRates, layer_code, layer_of_code
from mediaserver.sfu.view import PacketViewParser

VECTOR = Path(__file__).parents[2] / "vectors" / "rtp" / "svc" / "chromium_vp9_l3t3.rtp"


def _packet(size: int, padding: int = 0) -> bytes:
    """An RTP packet of ``size`` bytes; with ``padding``, that many of them padding."""
    first = 0xA0 if padding else 0x80
    body = bytes(size - 12 - padding) + (bytes(padding - 1) + bytes([padding]) if padding else b"")
    return bytes([first, 98]) + bytes(10) + body


def test_the_chromium_vector_costs_more_with_each_layer() -> None:
    parser = PacketViewParser("vp9")
    rates = SvcLayerRates()
    rates.sample(0.0)
    media = 0
    for data in read_dump(VECTOR.read_bytes()):
        view = parser.parse(data)
        rates.add(data, view.spatial_id, view.temporal_id)
        media += len(data) if RtpPacket.parse(data).payload else 0
    rates.sample(2.0)
    options = rates.options()
    assert [(s, t) for s, t, _ in options] == [(s, t) for s in range(3) for t in range(3)]
    cost = {(s, t): bitrate for s, t, bitrate in options}
    for s in range(3):
        for t in range(3):
            if s:
                assert cost[s, t] > cost[s - 1, t]
            if t:
                assert cost[s, t] > cost[s, t - 1]
    # Everything but Chromium's padding-only probes, over the 2 s.
    assert cost[2, 2] == pytest.approx(media * 8 / 2.0, abs=2)


def test_padding_only_packets_are_not_counted() -> None:
    rates = SvcLayerRates()
    rates.sample(0.0)
    rates.add(_packet(1000), 1, 0)
    rates.add(_packet(12 + 255, padding=255), 0, 0)
    rates.add(_packet(300, padding=20), 0, 0)
    rates.sample(1.0)
    assert rates.options() == [(0, 0, 2400), (1, 0, 10400)]


def test_a_single_layer_stream_offers_nothing_to_choose() -> None:
    rates = SvcLayerRates()
    rates.sample(0.0)
    rates.add(_packet(1000), 0, 0)
    rates.sample(1.0)
    assert rates.options() == []


def test_a_layer_that_stops_is_not_on_offer() -> None:
    rates = SvcLayerRates()
    rates.sample(0.0)
    rates.add(_packet(500), 0, 0)
    rates.add(_packet(500), 1, 0)
    rates.sample(1.0)
    assert len(rates.options()) == 2
    rates.add(_packet(500), 0, 0)
    rates.sample(2.0)
    assert rates.options() == []


@given(st.integers(0, 7), st.integers(0, 7))
def test_layer_codes_round_trip(spatial: int, temporal: int) -> None:
    code = layer_code(spatial, temporal)
    assert code in LAYER_CODES
    assert layer_of_code(code) == (spatial, temporal)

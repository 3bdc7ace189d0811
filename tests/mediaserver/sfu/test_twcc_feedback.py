"""Tests for mediaserver.sfu.twcc_feedback: transport-cc feedback about what we received."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.rtcp import (
    TWCC_NOT_RECEIVED,
    TWCC_RECEIVED_LARGE_DELTA,
    TWCC_RECEIVED_SMALL_DELTA,
    RtcpTransportCc,
)
from mediaserver.sfu.twcc import TransportSequencer
from mediaserver.sfu.twcc_feedback import MAX_FEEDBACK_BYTES, TransportFeedbackGenerator

ROUNDING = 0.000125 + 1e-9
"""Half a 250 µs delta unit: how far a reconstructed arrival may be off."""


def wire(packets: Sequence[RtcpTransportCc]) -> list[RtcpTransportCc]:
    """Each feedback through serialize and the parser, checking its size."""
    parsed = []
    for packet in packets:
        data = packet.serialize()
        assert len(data) <= MAX_FEEDBACK_BYTES
        parsed.append(RtcpTransportCc.parse(data))
    return parsed


def reports(packets: Sequence[RtcpTransportCc]) -> list[tuple[int, float | None]]:
    """(16-bit number, reconstructed arrival or None) for every reported packet, in order."""
    out: list[tuple[int, float | None]] = []
    for packet in wire(packets):
        arrival = packet.reference_time * 0.064
        for seq, delta in packet.packet_results():
            if delta is None:
                out.append((seq, None))
            else:
                arrival += delta * 0.00025
                out.append((seq, arrival))
    return out


def test_in_order_packets_with_a_gap_report_the_gap_lost() -> None:
    g = TransportFeedbackGenerator()
    for seq, t in ((10, 1.000), (11, 1.005), (14, 1.020), (15, 1.021)):
        g.receive(seq, t)
    (fb,) = g.feedback(7, 9)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_sequence) == (7, 9, 10)
    assert fb.packet_status_count == 6 and fb.feedback_packet_count == 0
    assert fb.reference_time == int(1.0 / 0.064)
    got = reports([fb])
    assert [s for s, a in got if a is None] == [12, 13]
    assert [a for _, a in got if a is not None] == pytest.approx(
        [1.000, 1.005, 1.020, 1.021], abs=ROUNDING
    )
    # Nothing new: no feedback; the next one starts after the last number reported.
    assert g.feedback(7, 9) == []
    g.receive(17, 1.1)
    (fb,) = g.feedback(7, 9)
    assert (fb.base_sequence, fb.packet_status_count, fb.feedback_packet_count) == (16, 2, 1)


def test_statuses_small_large_and_negative_deltas() -> None:
    g = TransportFeedbackGenerator()
    g.receive(0, 6.4)  # delta 0 from the reference
    g.receive(2, 6.49)  # sent after 1, arrives before it: negative below
    g.receive(1, 6.5)  # 100 ms: large
    g.receive(3, 6.501)  # small
    (fb,) = wire(g.feedback(1, 2))
    assert fb.statuses() == [
        TWCC_RECEIVED_SMALL_DELTA,
        TWCC_RECEIVED_LARGE_DELTA,
        TWCC_RECEIVED_LARGE_DELTA,
        TWCC_RECEIVED_SMALL_DELTA,
    ]
    assert fb.deltas == (0, 400, -40, 44)


def test_a_gap_longer_than_a_run_length_chunk_and_the_wrap() -> None:
    g = TransportFeedbackGenerator(32768)
    g.receive(65530, 0.0)
    g.receive((65530 + 10_001) & 0xFFFF, 0.5)
    (fb,) = g.feedback(1, 2)
    statuses = wire([fb])[0].statuses()
    assert statuses == [1] + [TWCC_NOT_RECEIVED] * 10_000 + [2]
    assert len(fb.chunks) <= 4  # two run length chunks cover the gap
    assert fb.serialize() == RtcpTransportCc.parse(fb.serialize()).serialize()


def test_a_delta_beyond_16_bits_starts_a_new_feedback() -> None:
    g = TransportFeedbackGenerator()
    g.receive(100, 1.0)
    g.receive(101, 1.01)
    g.receive(103, 10.0)  # 8.99 s later: more than 8.19 s
    packets = g.feedback(1, 2)
    assert [(p.base_sequence, p.packet_status_count) for p in packets] == [(100, 3), (103, 1)]
    assert [p.feedback_packet_count for p in packets] == [0, 1]
    assert reports(packets)[-1][1] == pytest.approx(10.0, abs=ROUNDING)
    assert g.feedback_count == 2


def test_a_long_burst_is_split_below_the_size_limit() -> None:
    g = TransportFeedbackGenerator()
    for k in range(3000):
        g.receive(k, k * 0.07)  # 70 ms apart: every delta large (two bytes)
    packets = g.feedback(1, 2)
    assert len(packets) > 1
    got = reports(packets)
    assert [s for s, _ in got] == list(range(3000))
    assert all(a is not None for _, a in got)


def test_duplicates_are_ignored_and_late_packets_counted() -> None:
    g = TransportFeedbackGenerator(16, max_rewind=4)
    g.receive(50, 1.0)
    g.receive(50, 2.0)
    assert (g.received, g.duplicates) == (1, 1)
    g.feedback(1, 2)
    g.receive(40, 2.1)  # 10 behind the window: too late to report
    assert g.late == 1
    g.receive(48, 2.2)  # within the rewind: reported again, now received
    got = reports(g.feedback(1, 2))
    assert [s for s, _ in got] == [48, 49, 50]
    assert got[0][1] == pytest.approx(2.2, abs=ROUNDING) and got[1][1] is None
    assert got[2][1] == pytest.approx(1.0, abs=ROUNDING)


def test_a_jump_beyond_the_ring_reports_only_what_it_holds() -> None:
    g = TransportFeedbackGenerator(16)
    g.receive(0, 0.0)
    g.feedback(1, 2)
    g.receive(100, 1.0)
    (fb,) = g.feedback(1, 2)
    assert (fb.base_sequence, fb.packet_status_count) == (85, 16)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgument):
        TransportFeedbackGenerator(100)
    with pytest.raises(InvalidArgument):
        TransportFeedbackGenerator(8)
    with pytest.raises(InvalidArgument):
        TransportFeedbackGenerator(16, max_rewind=16)


def test_our_downlink_side_understands_our_uplink_feedback() -> None:
    sender = TransportSequencer(64, initial_sequence_number=65500)
    receiver = TransportFeedbackGenerator()
    lost = {3, 4, 20}
    for k in range(60):
        seq = sender.next(k * 0.01, 1000)
        if k not in lost:
            receiver.receive(seq, 100.0 + k * 0.0113)
    results = sender.receive_feedback(wire(receiver.feedback(1, 2))[0])
    assert [r.sequence_number for r in results] == [(65500 + k) & 0xFFFF for k in range(60)]
    assert {k for k, r in enumerate(results) if r.arrival_time is None} == lost
    for k, r in enumerate(results):
        assert r.send_time == pytest.approx(k * 0.01)
        if r.arrival_time is not None:
            assert r.arrival_time == pytest.approx(100.0 + k * 0.0113, abs=ROUNDING)


_gaps = st.one_of(st.floats(0.0, 0.07), st.floats(0.0, 0.0005), st.floats(8.0, 20.0), st.just(0.0))


@settings(max_examples=150, deadline=None)
@given(
    first=st.integers(0, 0xFFFF),
    present=st.lists(st.booleans(), min_size=1, max_size=257),
    order=st.randoms(use_true_random=False),
    gaps=st.lists(_gaps, min_size=300, max_size=300),
    duplicate_every=st.integers(0, 7),
)
def test_one_feedback_reports_exactly_what_arrived(
    first: int,
    present: list[bool],
    order: random.Random,
    gaps: list[float],
    duplicate_every: int,
) -> None:
    """Reordering (any order within 256 numbers), duplicates, wrap, large and tiny gaps."""
    offsets = [k for k, p in enumerate(present) if p] or [0]
    delivered = list(offsets)
    order.shuffle(delivered)
    g = TransportFeedbackGenerator()
    truth: dict[int, float] = {}
    t = 1000.0
    for n, k in enumerate(delivered):
        t += gaps[n]
        g.receive((first + k) & 0xFFFF, t)
        truth[k] = t
        if duplicate_every and n % duplicate_every == 0:
            g.receive((first + k) & 0xFFFF, t + 1.0)
    got = reports(g.feedback(3, 4))
    lo, hi = min(offsets), max(offsets)
    assert [s for s, _ in got] == [(first + k) & 0xFFFF for k in range(lo, hi + 1)]
    for (_, arrival), k in zip(got, range(lo, hi + 1), strict=True):
        if k in truth:
            assert arrival == pytest.approx(truth[k], abs=ROUNDING)
        else:
            assert arrival is None
    assert g.received == len(offsets)


@settings(max_examples=100, deadline=None)
@given(
    first=st.integers(0, 0xFFFF),
    steps=st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(0.0, 0.2), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_feedback_rounds_cover_every_number_once(
    first: int, steps: list[tuple[int, float, bool]]
) -> None:
    """In-order arrivals with gaps of lost numbers (up to 10,000), feedback at any point."""
    g = TransportFeedbackGenerator(32768)
    packets: list[RtcpTransportCc] = []
    truth: dict[int, float | None] = {}
    k, t = 0, 50.0
    for gap, step, report in steps:
        for lost in range(k, k + gap):
            truth[lost] = None
        k += gap
        t += step
        g.receive((first + k) & 0xFFFF, t)
        truth[k] = t
        k += 1
        if report:
            packets += g.feedback(1, 2)
    packets += g.feedback(1, 2)
    assert [p.feedback_packet_count for p in packets] == list(range(len(packets)))
    got = reports(packets)
    expected = sorted(truth)[next(i for i, v in enumerate(sorted(truth)) if truth[v]) :]
    assert [s for s, _ in got] == [(first + e) & 0xFFFF for e in expected]
    for (_, arrival), e in zip(got, expected, strict=True):
        want = truth[e]
        if want is None:
            assert arrival is None
        else:
            assert arrival == pytest.approx(want, abs=ROUNDING)


def test_receive_rtp_reads_the_number_from_the_extension_block() -> None:
    g = TransportFeedbackGenerator()
    with_number = RtpPacket(payload_type=96, extensions={5: b"\x01\x02"}, payload=b"p")
    g.receive_rtp(with_number.serialize(), 5, 1.0)
    g.receive_rtp(with_number.serialize(), 6, 1.0)  # another id: not recorded
    g.receive_rtp(RtpPacket(payload_type=96, payload=b"p").serialize(), 5, 1.0)
    g.receive_rtp(with_number.serialize()[:14], 5, 1.0)  # truncated block: skipped
    assert g.received == 1
    (fb,) = g.feedback(1, 2)
    assert (fb.base_sequence, fb.packet_status_count) == (0x0102, 1)


def test_pending_counts_the_numbers_the_next_feedback_reports() -> None:
    g = TransportFeedbackGenerator()
    assert g.pending == 0
    g.receive(5, 0.0)
    g.receive(8, 0.01)
    assert g.pending == 4
    g.feedback(1, 2)
    assert g.pending == 0

"""Tests for mediaserver.sfu.controller: one subscriber's numbering, feedback and layers.

The link tests drive the controller with generated transport-cc feedback from a simulated
bottleneck (a FIFO of fixed capacity that drops what would wait longer than 250 ms), with
time passed in: packets go out every 10 ms at the chosen layer's rate plus the probe rate,
feedback comes back every 100 ms, and layers are re-chosen every 500 ms as the server does.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mediaserver.errors import InvalidArgument
from mediaserver.rtp.packet import RtpPacket
from mediaserver.rtp.rtcp import RtcpRemb, RtcpTransportCc
from mediaserver.sfu.controller import DownlinkController, LinePreference, twcc_block
from mediaserver.video import OutStream

LOW, HI = 1, 2
LAYERS = {"2": [(LOW, 150_000), (HI, 500_000)]}
PACKET = 1000


class Bottleneck:
    """A FIFO link of ``capacity`` bits/s, 20 ms propagation, dropping beyond 250 ms."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy_until = 0.0
        self.records: list[tuple[int, float | None]] = []

    def send(self, seq: int, size: int, now: float) -> None:
        start = max(now, self.busy_until)
        if start - now > 0.25:
            self.records.append((seq, None))
            return
        self.busy_until = start + size * 8 / self.capacity
        self.records.append((seq, self.busy_until + 0.020))

    def feedback(self, count: int) -> RtcpTransportCc | None:
        """The receiver's transport-cc feedback for what arrived since the last one."""
        records, self.records = self.records, []
        received = [a for _, a in records if a is not None]
        if not received:
            return None
        reference = int(min(received) / 0.064)
        previous = reference * 0.064
        deltas: list[int | None] = []
        for _, arrival in records:
            if arrival is None:
                deltas.append(None)
                continue
            delta = round((arrival - previous) / 0.00025)
            previous += delta * 0.00025
            deltas.append(delta)
        return RtcpTransportCc.build(1, 2, records[0][0], reference, count & 0xFF, deltas)


class Session:
    """A subscriber with one simulcast m-line behind a :class:`Bottleneck`."""

    def __init__(self, capacity: int) -> None:
        self.link = Bottleneck(capacity)
        self.controller = DownlinkController(3, adaptive=True)
        self.controller.lines["2"] = LinePreference(HI)
        self.current = {"2": HI}
        self.now = 0.0
        self.credit = 0.0
        self.feedbacks = 0
        self.probed = False

    def run(self, seconds: float) -> None:
        rates = dict(LAYERS["2"])
        for _ in range(round(seconds / 0.01)):
            self.now += 0.01
            self.probed |= self.controller.probe_rate > 0
            rate = rates.get(self.current["2"], 0) + self.controller.probe_rate
            self.credit += rate * 0.01 / 8
            while self.credit >= PACKET:
                self.credit -= PACKET
                block = self.controller.extension(self.now, PACKET)
                self.link.send(int.from_bytes(block[5:7], "big"), PACKET, self.now)
            ticks = round(self.now / 0.01)
            if ticks % 10 == 0:
                feedback = self.link.feedback(self.feedbacks)
                if feedback is not None:
                    self.feedbacks += 1
                    self.controller.receive_transport_cc(feedback, self.now)
            if ticks % 50 == 0:
                chosen = self.controller.choose(LAYERS, self.current, self.now)
                self.current.update(chosen)


def test_the_layer_follows_the_estimate_down_and_back_up() -> None:
    session = Session(3_000_000)
    session.run(10)
    assert session.current == {"2": HI}
    estimate = session.controller.estimate
    assert estimate is not None and estimate > 500_000

    session.link.capacity = 250_000  # Congestion: delay grows, then packets are lost.
    session.run(10)
    assert session.current == {"2": LOW}
    estimate = session.controller.estimate
    assert estimate is not None and estimate < 500_000

    session.probed = False
    session.link.capacity = 3_000_000  # The link recovers; probes find the room.
    session.run(40)
    assert session.probed
    assert session.current == {"2": HI}


def test_a_starved_link_pauses_the_m_line_and_probes_resume_it() -> None:
    session = Session(60_000)
    session.run(15)
    assert session.current == {"2": 0}
    # Nothing is sent while paused, so only probes can show that the link recovered.
    session.link.capacity = 3_000_000
    session.probed = False
    session.run(60)
    assert session.probed
    assert session.current == {"2": HI}


def test_no_choice_before_feedback_and_remb_alone_is_the_estimate() -> None:
    controller = DownlinkController(None, adaptive=True)
    controller.lines["2"] = LinePreference(HI)
    assert not controller.stamping and controller.estimate is None
    assert controller.choose(LAYERS, {"2": HI}, 0.0) == {}
    controller.receive_remb(2_000_000)
    assert controller.estimate == 2_000_000
    assert controller.choose(LAYERS, {"2": HI}, 0.0) == {"2": HI}
    controller.receive_remb(300_000)
    assert controller.choose(LAYERS, {"2": HI}, 0.5) == {"2": LOW}
    assert controller.probe_rate == 0, "REMB alone cannot show what a probe does"
    controller.receive_remb(20_000)
    assert controller.choose(LAYERS, {"2": LOW}, 1.0) == {"2": 0}


def test_before_feedback_an_m_line_on_a_silent_layer_moves_to_the_lowest_sending_one() -> None:
    # The browser case: the client subscribed to a layer that then stopped (the sender's
    # simulcast policy changed layers); with nothing forwarded no feedback would ever come.
    controller = DownlinkController(3, adaptive=True)
    controller.lines["2"] = LinePreference(3)
    controller.lines["4"] = LinePreference(HI)
    controller.lines["6"] = LinePreference(7)
    controller.lines["6"].client_paused = True
    layers = {"2": LAYERS["2"], "4": LAYERS["2"], "6": [(8, 100_000)]}
    chosen = controller.choose(layers, {"2": 3, "4": HI, "6": 7}, 0.0)
    assert controller.estimate is None
    assert chosen == {"2": LOW}, "only the stalled, not client-paused m-line moves"
    assert controller.probe_rate == 0
    assert controller.choose({"2": []}, {"2": 3}, 0.5) == {}, "no layer sends: nothing to pick"


def test_priorities_decide_who_gets_the_better_layer() -> None:
    layers = {"2": [(1, 150_000), (2, 500_000)], "3": [(3, 150_000), (4, 500_000)]}
    controller = DownlinkController(None, adaptive=True)
    controller.lines["2"] = LinePreference(2, priority=2)
    controller.lines["3"] = LinePreference(4, priority=1)
    controller.receive_remb(900_000)
    assert controller.choose(layers, {"2": 1, "3": 3}, 0.0) == {"2": 1, "3": 4}
    controller.lines["2"].priority = 0
    assert controller.choose(layers, {"2": 1, "3": 4}, 0.5) == {"2": 2, "3": 3}
    # A target bitrate below the high layer keeps that m-line low whatever the estimate.
    controller.lines["2"].target_bitrate = 200_000
    controller.receive_remb(5_000_000)
    assert controller.choose(layers, {"2": 2, "3": 3}, 1.0) == {"2": 1, "3": 4}
    # A tile the client paused takes no share and is left alone.
    controller.lines["3"].client_paused = True
    assert controller.choose(layers, {"2": 1, "3": 4}, 1.5) == {"2": 1}


def test_an_upgrade_needs_a_margin_over_the_higher_layer() -> None:
    controller = DownlinkController(None, adaptive=True)
    controller.lines["2"] = LinePreference(HI)
    controller.receive_remb(int(520_000 / 0.85))  # fits 500k, not 500k x 1.15
    assert controller.choose(LAYERS, {"2": HI}, 0.0) == {"2": HI}
    assert controller.choose(LAYERS, {"2": LOW}, 0.5) == {"2": LOW}


def test_the_extension_block_numbers_packets_in_the_rewritten_header() -> None:
    controller = DownlinkController(5)
    assert controller.stamping and controller.ext_id == 5
    out = OutStream(subscriber=object(), mid="2", ssrc=7, payload_type=96)
    source = RtpPacket(
        payload_type=100, sequence_number=9, timestamp=1, ssrc=1, csrcs=(11, 12),
        extension_profile=0xBEDE, extensions={4: b"1"}, payload=b"frame",
    ).serialize()  # fmt: skip
    sent = [RtpPacket.parse(out.forward(source, 1.0, controller.extension(1.0, 99)))]
    sent.append(RtpPacket.parse(out.forward(source, 1.1, controller.extension(1.1, 99))))
    assert [p.extensions for p in sent] == [{5: b"\x00\x00"}, {5: b"\x00\x01"}]
    assert all(p.csrcs == (11, 12) and p.payload == b"frame" and p.ssrc == 7 for p in sent)
    assert controller.sequencer.sent == 2
    assert twcc_block(14, 0x10002)[4:7] == bytes([0xE1, 0x00, 0x02])
    with pytest.raises(InvalidArgument):
        twcc_block(15, 0)
    with pytest.raises(InvalidArgument):
        controller.set_extension(0)
    controller.set_extension(None)
    assert not controller.stamping


def test_the_capacity_is_the_estimate_with_adaption_else_only_the_remb() -> None:
    controller = DownlinkController(5)
    assert controller.capacity is None and controller.remb is None
    controller.receive_remb(300_000)
    assert controller.capacity == controller.remb == 300_000
    controller.receive_remb(2_000_000)
    assert controller.capacity == 2_000_000
    adaptive = DownlinkController(5, adaptive=True)
    assert adaptive.capacity is None
    adaptive.receive_remb(400_000)
    assert adaptive.capacity == adaptive.estimate == 400_000


def test_a_packet_that_waited_in_the_pacer_gets_its_real_send_time() -> None:
    controller = DownlinkController(5)
    out = OutStream(subscriber=object(), mid="2", ssrc=7, payload_type=96)
    source = RtpPacket(payload_type=100, sequence_number=9, ssrc=1, payload=b"f").serialize()
    packet = out.forward(source, 1.0, controller.extension(1.0, 99))
    controller.sent_late(packet, 1.2)
    controller.sent_late(b"\x80\x60" + bytes(10), 1.3)  # no extension: ignored
    controller.sent_late(b"\x90\x60" + bytes(10), 1.3)  # truncated: ignored
    fb = RtcpTransportCc.build(1, 2, 0, reference_time=1, feedback_packet_count=0, deltas=[4])
    (result,) = controller.sequencer.receive_feedback(fb)
    assert result.send_time == 1.2
    controller.set_extension(None)
    controller.sent_late(packet, 5.0)  # not stamping: nothing to correct
    (result,) = controller.sequencer.receive_feedback(fb)
    assert result.send_time == 1.2


@given(st.integers(min_value=0, max_value=(1 << 40)))
def test_remb_bitrates_survive_the_wire_within_the_mantissa(bitrate: int) -> None:
    wire = RtcpRemb.from_bitrate(1, bitrate, [2, 3]).serialize()
    parsed = RtcpRemb.parse(wire)
    assert parsed.ssrcs == (2, 3)
    assert parsed.bitrate <= bitrate < parsed.bitrate + (1 << parsed.exponent)
    controller = DownlinkController(None)
    controller.receive_remb(parsed.bitrate)
    assert controller.estimate == parsed.bitrate


def test_layers_rank_by_their_order_not_by_what_they_measure() -> None:
    """Two layers of a still picture cost about the same, and their measured rates cross
    from one call to the next: the choice stays on the higher layer (the simulcast order
    ranks them), instead of flipping at every call and costing a key frame each time."""
    controller = DownlinkController(None, adaptive=True)
    controller.lines["2"] = LinePreference(HI)
    controller.receive_remb(30_000)
    current = HI
    for step, rates in enumerate([(7_714, 8_931), (8_029, 7_890), (7_291, 7_938), (6_818, 5_235)]):
        layers = {"2": [(LOW, rates[0]), (HI, rates[1])]}
        chosen = controller.choose(layers, {"2": current}, step * 0.5)
        current = chosen.get("2", current)
        assert current == HI, (step, rates, chosen)

"""Tests for mediaserver.sfu.uplink_cap: REMB first, then whole frames dropped."""

from __future__ import annotations

import pytest

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.uplink_cap import GRACE, UplinkCap, cap_for_resolution

FPS = 30


class Sender:
    """A camera at ``bitrate`` bits/s: 30 frames/s of 1000-byte packets; it sends a
    keyframe when asked (a PLI) and, if ``obeys``, drops to 80 % of a REMB's value."""

    def __init__(self, cap: UplinkCap, bitrate: int, *, obeys: bool = False) -> None:
        self.cap = cap
        self.bitrate = bitrate
        self.obeys = obeys
        self.now = 0.0
        self.frame = 0
        self.keyframe_asked = False
        self.rembs: list[float] = []
        self.frames: list[tuple[bool, list[bool]]] = []
        """Per frame sent: (keyframe, which of its packets were forwarded)."""

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds * FPS)):
            self.now += 1 / FPS
            if self.cap.remb_due(self.now):
                self.rembs.append(self.now)
                if self.obeys:
                    self.bitrate = int(self.cap.cap * 0.8)
            keyframe = self.frame == 0 or self.keyframe_asked
            self.keyframe_asked = False
            packets = max(1, round(self.bitrate / FPS / 8 / 1000))
            forwarded = []
            for i in range(packets):
                check = keyframe and i == 0 if self.cap.needs_keyframe_check(1) else None
                admitted, ask = self.cap.admit(1, self.frame * 3000, 1000, self.now, check)
                forwarded.append(admitted)
                self.keyframe_asked |= ask
            self.frames.append((keyframe, forwarded))
            self.frame += 1


def test_a_sender_within_its_cap_is_left_alone() -> None:
    sender = Sender(UplinkCap(1_000_000), 800_000)
    sender.run(10)
    assert sender.rembs == [] and not sender.cap.over
    assert all(all(f) for _, f in sender.frames)


def test_a_sender_over_its_cap_gets_rembs_then_loses_whole_frames() -> None:
    cap = UplinkCap(500_000)
    sender = Sender(cap, 1_200_000)
    sender.run(12)
    assert cap.over
    first = sender.rembs[0]
    # Once a second while over.
    assert all(b - a >= 1.0 for a, b in zip(sender.rembs, sender.rembs[1:], strict=False))
    assert len(sender.rembs) >= 10
    # Nothing is dropped during the grace period after the first REMB.
    during_grace = [f for i, (_, f) in enumerate(sender.frames) if (i + 1) / FPS < first + GRACE]
    assert all(all(f) for f in during_grace)
    # Afterwards frames go whole or not at all; the excess is dropped.
    assert all(all(f) or not any(f) for _, f in sender.frames)
    assert cap.dropped_frames > 0 and cap.dropped_packets > 0
    forwarded = sum(sum(f) for _, f in sender.frames[-5 * FPS :]) * 1000 * 8 / 5
    assert forwarded <= 500_000 * 1.1 * 1.2
    # A forwarded run after a drop always starts with a keyframe the cap asked for.
    previous = True
    for keyframe, packets in sender.frames:
        if all(packets) and not previous:
            assert keyframe
        previous = all(packets)
    assert cap.keyframe_requests > 0


def test_a_sender_that_obeys_the_remb_loses_nothing_and_is_cleared() -> None:
    cap = UplinkCap(500_000)
    sender = Sender(cap, 900_000, obeys=True)
    sender.run(15)
    assert len(sender.rembs) >= 1
    assert cap.dropped_frames == 0
    assert not cap.over


def test_caps_follow_the_documented_chime_limits() -> None:
    assert cap_for_resolution("HD") == 1_500_000
    assert cap_for_resolution("FHD") == 2_500_000
    assert cap_for_resolution("FHD", content=True) == 1_500_000
    assert cap_for_resolution("UHD", content=True) == 2_500_000
    with pytest.raises(InvalidArgument):
        UplinkCap(0)


def test_the_protected_layer_is_never_dropped() -> None:
    cap = UplinkCap(400_000)
    cap.protected = 1
    now = 0.0
    forwarded = {1: 0, 2: 0}
    sent = {1: 0, 2: 0}
    for frame in range(15 * FPS):
        now += 1 / FPS
        cap.remb_due(now)
        for stream, packets in ((1, 1), (2, 3)):  # ~240 kbit/s and ~720 kbit/s
            check = cap.needs_keyframe_check(stream)
            for i in range(packets):
                keyframe = (frame % 15 == 0 and i == 0) if check else None
                admitted, _ = cap.admit(stream, frame * 3000, 1000, now, keyframe)
                sent[stream] += 1
                forwarded[stream] += admitted
    assert forwarded[1] == sent[1]
    assert 0 < forwarded[2] < sent[2]
    assert cap.dropped_frames > 0

"""When the gateway sends BITRATES (chime-signaling-protocol.md §4.4): every 4 s, and at
once when the set of sending streams changes (a simulcast layer turned on or off)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from mediaserver.gateway.room import MeetingRoom, Member
from mediaserver.gateway.server import BITRATES_INTERVAL, SignalingGateway


class FakeRoom:
    def __init__(self) -> None:
        self.meeting_id = "meeting-1"
        self.members: list[Member] = []
        self.bitrates_sent_at = 0.0
        self.bitrates_streams: frozenset[int] = frozenset()
        self.sent: list[dict[int, int]] = []

    def send_bitrates(
        self, rates: dict[int, int], estimate: Callable[[Member], int | None] | None = None
    ) -> None:
        self.sent.append(rates)


class FakeMedia:
    def __init__(self) -> None:
        self.sending = frozenset({1, 2})

    def sending_streams(self, members: Sequence[Member], now: float) -> frozenset[int]:
        return self.sending

    def stream_bitrates(self, members: Sequence[Member], now: float) -> dict[int, int]:
        return dict.fromkeys(sorted(self.sending), 100_000)

    def downlink_estimate(self, member: Member) -> int | None:
        return None


def test_bitrates_go_out_every_interval_and_at_once_when_a_layer_stops_or_starts() -> None:
    room, media = FakeRoom(), FakeMedia()

    def tick(now: float) -> None:
        SignalingGateway._maybe_send_bitrates(cast(MeetingRoom, room), cast(Any, media), now)

    tick(BITRATES_INTERVAL)
    assert room.sent == [{1: 100_000, 2: 100_000}]
    for second in (1.0, 2.0, 3.0):
        tick(BITRATES_INTERVAL + second)
    assert len(room.sent) == 1, "nothing changed: the next one is due in 4 s"
    media.sending = frozenset({1})  # The sender turned layer 2 off.
    tick(BITRATES_INTERVAL + 3.5)
    assert room.sent[-1] == {1: 100_000}
    tick(BITRATES_INTERVAL + 4.5)
    assert len(room.sent) == 2
    media.sending = frozenset({1, 2})  # ... and on again.
    tick(BITRATES_INTERVAL + 5.0)
    assert room.sent[-1] == {1: 100_000, 2: 100_000}
    tick(2 * BITRATES_INTERVAL + 5.0)
    assert len(room.sent) == 4, "the periodic one goes on"

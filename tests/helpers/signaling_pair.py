"""A client and a server signaling session talking in memory (style guide, convention 15)."""

from __future__ import annotations

from signaling import ClientSignalingSession, Event, SignalingSession
from tests.helpers.clock import FakeClock

__all__ = ["SignalingPair"]


class SignalingPair:
    """A :class:`ClientSignalingSession` and a :class:`SignalingSession` on one fake link.

    Frames only move when the test calls :meth:`roundtrip` or :meth:`roundtrip_until_idle`.
    Events are collected into :attr:`server_events` and :attr:`client_events`.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.server = SignalingSession(now=self.clock.monotonic(), wall_clock=self.clock.wall)
        self.client = ClientSignalingSession(wall_clock=self.clock.wall)
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []

    def roundtrip(self) -> int:
        """Move the client's frames to the server, then the server's to the client.

        Returns:
            How many frames moved.
        """
        moved = 0
        for data in self.client.frames_to_send():
            self.server.receive_frame(data, self.clock.monotonic())
            moved += 1
        self.server_events.extend(self.server.events_received())
        for data in self.server.frames_to_send():
            self.client.receive_frame(data)
            moved += 1
        self.client_events.extend(self.client.events_received())
        return moved

    def roundtrip_until_idle(self, limit: int = 100) -> None:
        """Call :meth:`roundtrip` until no frame moves (at most ``limit`` times)."""
        for _ in range(limit):
            if self.roundtrip() == 0:
                return
        raise AssertionError(f"still busy after {limit} round trips")

    def pop_server_events(self) -> list[Event]:
        """Return and forget the collected server events."""
        events, self.server_events = self.server_events, []
        return events

    def pop_client_events(self) -> list[Event]:
        """Return and forget the collected client events."""
        events, self.client_events = self.client_events, []
        return events

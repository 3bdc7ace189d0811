"""A clock that only moves when a test moves it."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Implements :class:`mediaserver.clock.Clock`; ``advance()`` moves both time bases."""

    def __init__(self, monotonic: float = 1000.0, wall: float = 1_790_000_000.0) -> None:
        self._monotonic = monotonic
        self._wall = wall

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._wall += seconds

"""Clocks: the only place the server reads time (style guide, convention 2).

Core code receives ``now`` as an argument. Shells read it from a :class:`Clock`.
Two time bases exist: ``monotonic()`` for timers and durations, ``wall()`` for epoch
timestamps that go on the wire (``timestamp_ms``, SigV4 dates, event timestamps).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Source of time for shells; tests pass a fake one."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

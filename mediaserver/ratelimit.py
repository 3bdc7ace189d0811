"""A sans-I/O token bucket for API rate limits.

The bucket holds up to ``burst`` tokens and gains ``rate`` tokens per second. A request spends
``cost`` tokens; when the bucket cannot pay, the HTTP shell answers 429 ``ThrottlingException``
(:class:`~mediaserver.errors.Throttled`, ``control-plane-api.md`` section 4) and may use
:meth:`TokenBucket.retry_after` for a ``Retry-After`` header.

Rules of this file:

* Time is an argument (style guide, convention 2). ``now`` is seconds on any clock that never
  goes backwards, normally ``Clock.monotonic()``. If ``now`` does go backwards, the bucket
  simply gains nothing until time passes its last reading again.
* A new bucket is full: the first ``burst`` requests pass at once.
"""

from __future__ import annotations

import math

from mediaserver.errors import InvalidArgument

__all__ = ["TokenBucket"]

# Floating-point slack, in tokens: waiting exactly retry_after() must be enough to pass.
_EPSILON = 1e-9


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` tokens stored.

    Args:
        rate: tokens added per second; positive and finite.
        burst: capacity of the bucket, and its initial content; positive and finite.

    Raises:
        InvalidArgument: ``rate`` or ``burst`` is not a positive finite number.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise InvalidArgument(f"rate must be a positive finite number, not {rate!r}")
        if not (math.isfinite(burst) and burst > 0):
            raise InvalidArgument(f"burst must be a positive finite number, not {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        """Add the tokens earned since the last reading, up to ``burst``."""
        last = self._last
        if last is None:
            self._last = now
        elif now > last:
            self._tokens = min(self.burst, self._tokens + (now - last) * self.rate)
            self._last = now

    def available(self, now: float) -> float:
        """Return how many tokens the bucket holds at ``now``."""
        self._refill(now)
        return self._tokens

    def try_acquire(self, now: float, cost: float = 1) -> bool:
        """Spend ``cost`` tokens if the bucket holds them.

        Args:
            now: the current time, in seconds.
            cost: tokens the request costs; zero always passes.

        Returns:
            ``True`` if the tokens were spent, ``False`` (and nothing spent) otherwise. A cost
            above ``burst`` can never be paid.

        Raises:
            InvalidArgument: ``cost`` is negative or not finite.
        """
        if not (math.isfinite(cost) and cost >= 0):
            raise InvalidArgument(f"cost must be a non-negative finite number, not {cost!r}")
        self._refill(now)
        if self._tokens + _EPSILON >= cost:
            self._tokens = max(0.0, self._tokens - cost)
            return True
        return False

    def retry_after(self, now: float, cost: float = 1) -> float:
        """Return the seconds to wait before ``try_acquire(now + delay, cost)`` can succeed.

        Args:
            now: the current time, in seconds.
            cost: tokens the request would cost.

        Returns:
            ``0.0`` if the tokens are there now, ``math.inf`` if ``cost`` exceeds ``burst``, and
            otherwise the time the missing tokens take to accumulate (assuming nothing else is
            spent meanwhile). Round it up for an HTTP ``Retry-After`` header.

        Raises:
            InvalidArgument: ``cost`` is negative or not finite.
        """
        if not (math.isfinite(cost) and cost >= 0):
            raise InvalidArgument(f"cost must be a non-negative finite number, not {cost!r}")
        if cost > self.burst:
            return math.inf
        self._refill(now)
        missing = cost - self._tokens
        if missing <= _EPSILON:
            return 0.0
        return missing / self.rate

"""Wrap-around arithmetic for RTP sequence numbers and timestamps.

Rules of this file:

* This is the only module that does modular arithmetic on 16-bit sequence numbers and
  32-bit timestamps (style guide, convention 9). Everything else calls these functions.
* "Newer" follows serial number arithmetic (RFC 1982 section 3.2): ``a`` is newer than
  ``b`` when the forward distance from ``b`` to ``a`` is less than half the number space.
  Exactly half the space apart is ambiguous; we call it "not newer" in both directions,
  as RFC 1982 leaves it undefined.
* Extended sequence numbers follow RFC 3550 appendix A.1: a count of wrap cycles shifted
  left by 16 plus the 16-bit sequence number, driven by the highest sequence seen so far.
"""

from __future__ import annotations

from mediaserver.errors import InvalidArgument

__all__ = [
    "UINT16_MOD",
    "UINT32_MOD",
    "Unwrapper",
    "uint16_add",
    "uint16_diff",
    "uint16_gt",
    "uint16_gte",
    "uint32_add",
    "uint32_diff",
    "uint32_gt",
    "uint32_gte",
]

UINT16_MOD = 1 << 16
"""Size of the RTP sequence number space (RFC 3550 section 5.1)."""

UINT32_MOD = 1 << 32
"""Size of the RTP timestamp space (RFC 3550 section 5.1)."""

_U16_MASK = UINT16_MOD - 1
_U16_HALF = UINT16_MOD >> 1
_U32_MASK = UINT32_MOD - 1
_U32_HALF = UINT32_MOD >> 1


def uint16_add(a: int, b: int) -> int:
    """Return ``(a + b) mod 2**16``; ``b`` may be negative."""
    return (a + b) & _U16_MASK


def uint16_diff(a: int, b: int) -> int:
    """Return the signed shortest distance ``a - b`` in ``[-32768, 32767]``.

    ``uint16_add(b, uint16_diff(a, b)) == a`` always holds.
    """
    return ((a - b + _U16_HALF) & _U16_MASK) - _U16_HALF


def uint16_gt(a: int, b: int) -> bool:
    """Return True when sequence number ``a`` is newer than ``b`` (RFC 1982 section 3.2)."""
    d = (a - b) & _U16_MASK
    return 0 < d < _U16_HALF


def uint16_gte(a: int, b: int) -> bool:
    """Return True when ``a == b`` or ``a`` is newer than ``b``."""
    return ((a - b) & _U16_MASK) < _U16_HALF


def uint32_add(a: int, b: int) -> int:
    """Return ``(a + b) mod 2**32``; ``b`` may be negative."""
    return (a + b) & _U32_MASK


def uint32_diff(a: int, b: int) -> int:
    """Return the signed shortest distance ``a - b`` in ``[-2**31, 2**31 - 1]``."""
    return ((a - b + _U32_HALF) & _U32_MASK) - _U32_HALF


def uint32_gt(a: int, b: int) -> bool:
    """Return True when timestamp ``a`` is newer than ``b`` (RFC 1982 section 3.2)."""
    d = (a - b) & _U32_MASK
    return 0 < d < _U32_HALF


def uint32_gte(a: int, b: int) -> bool:
    """Return True when ``a == b`` or ``a`` is newer than ``b``."""
    return ((a - b) & _U32_MASK) < _U32_HALF


class Unwrapper:
    """Turns wrapping 16-bit (or 32-bit) counters into monotonic extended values.

    RFC 3550 appendix A.1 keeps ``cycles`` (the wrap count shifted left by 16) and
    ``max_seq``; the extended highest sequence number is ``cycles + max_seq``. This class
    does the same, and also places an out-of-order (older) value in the cycle it belongs
    to instead of in the current one, so a late packet from before a wrap gets a smaller
    extended number rather than a huge one.

    The first value seen maps to itself. A value older than the first one maps below it
    and may be negative; callers that need non-negative numbers can start from an offset.

    Args:
        bits: 16 for sequence numbers (the default), 32 for timestamps.

    Raises:
        InvalidArgument: ``bits`` is neither 16 nor 32.
    """

    __slots__ = ("_half", "_highest", "_last", "_mask")

    def __init__(self, bits: int = 16) -> None:
        if bits not in (16, 32):
            raise InvalidArgument(f"bits must be 16 or 32, not {bits}")
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last = 0
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The extended value of the newest input so far, or None before the first."""
        return self._highest

    def unwrap(self, value: int) -> int:
        """Return the extended value of ``value`` and remember it if it is the newest."""
        highest = self._highest
        if highest is None:
            self._highest = value
            self._last = value
            return value
        # Signed shortest distance from the newest value seen (RFC 1982 section 3.2).
        delta = ((value - self._last + self._half) & self._mask) - self._half
        extended = highest + delta
        if delta > 0:
            self._highest = extended
            self._last = value
        return extended

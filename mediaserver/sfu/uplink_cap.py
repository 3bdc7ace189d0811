"""A publisher's video bitrate cap: REMB limits first, then whole frames dropped.

Rules of this file (meetings-digest.md §4.5, [L1606] of the developer guide):

* Sans-I/O, time passed in. One :class:`UplinkCap` per publishing connection, over all
  its video streams (every simulcast layer counts: the cap is on what the sender sends).
* A token bucket of ``cap`` bits/s with one second of depth measures the sender. When it
  runs dry the sender is over its cap: :meth:`UplinkCap.remb_due` tells the caller to send
  it an RTCP REMB (draft-alvestrand-rmcat-remb-03 §2) with the cap, at once and then once
  a second while it stays over.
* If the sender is still over the cap :data:`GRACE` seconds after the first REMB, its
  excess is dropped at frame granularity: a frame that starts while the bucket is empty is
  dropped whole, and so is every later frame of that stream until its next keyframe that
  fits (a decoder cannot use delta frames whose reference is gone). :meth:`UplinkCap.admit`
  asks for that keyframe (the caller sends a throttled PLI, RFC 4585 §6.3.1).
* Per packet, :meth:`UplinkCap.admit` does a few float operations and dict lookups.
"""

from __future__ import annotations

from mediaserver.errors import InvalidArgument

__all__ = ["GRACE", "REMB_INTERVAL", "UplinkCap", "cap_for_resolution"]

GRACE = 2.0
"""Seconds between the first REMB and the first dropped frame."""
REMB_INTERVAL = 1.0
"""Seconds between two REMBs while the sender stays over its cap."""
_CLEAR_AFTER = 5.0
"""Seconds within the cap after which the sender counts as well behaved again."""

STANDARD_KBPS = 1500
"""Chime's standard-session video limit (1280x720, meetings-digest.md §4.3 [L1596])."""
HD_KBPS = 2500
"""Chime's HD-session limit (1920x1080, [L1598]); also content at UHD (§4.7)."""


def cap_for_resolution(max_resolution: str, *, content: bool = False) -> int:
    """The cap in bits/s for a camera (``Video.MaxResolution``) or a content share
    (``Content.MaxResolution``): 2500 kbit/s for FHD cameras and UHD content, else 1500."""
    high = max_resolution == ("UHD" if content else "FHD")
    return (HD_KBPS if high else STANDARD_KBPS) * 1000


class UplinkCap:
    """Enforces one sender's cap (sans-I/O).

    Two token buckets of ``cap * tolerance`` bits/s, one second deep: one charges every
    packet the sender sends (is it over its cap? REMB), the other only what is forwarded
    (may the next frame go?). The protected stream (the lowest simulcast layer) is never
    dropped, so subscribers can always fall back to it; the others lose whole frames while
    the forwarded bucket is empty.

    Args:
        cap: bits/s allowed.
        tolerance: the buckets refill at ``cap * tolerance`` (encoders overshoot briefly).

    Raises:
        InvalidArgument: ``cap`` is not positive.
    """

    __slots__ = ("_blocked", "_clean_since", "_first_remb", "_forwarded", "_last",
                 "_last_remb", "_over_since", "_rate", "_sent", "_timestamps", "cap",
                 "dropped_frames", "dropped_packets", "keyframe_requests",
                 "protected")  # fmt: skip

    def __init__(self, cap: int, *, tolerance: float = 1.1) -> None:
        if cap <= 0:
            raise InvalidArgument(f"the bitrate cap must be positive, not {cap}")
        self.cap = cap
        self.protected: int | None = None
        """A stream never dropped (the lowest simulcast layer), or None."""
        self._rate = cap * tolerance / 8  # bytes per second
        self._sent = self._rate
        self._forwarded = self._rate
        self._last: float | None = None
        self._over_since: float | None = None
        self._last_remb: float | None = None
        self._first_remb: float | None = None
        self._clean_since: float | None = None
        self._timestamps: dict[int, int] = {}
        """stream id → RTP timestamp of its current frame."""
        self._blocked: set[int] = set()
        """Streams being dropped until their next keyframe that fits."""
        self.dropped_frames = 0
        self.dropped_packets = 0
        self.keyframe_requests = 0

    @property
    def over(self) -> bool:
        """The sender is over its cap (REMBs are being sent)."""
        return self._over_since is not None

    def admit(
        self, stream_id: int, timestamp: int, size: int, now: float, keyframe: bool | None
    ) -> tuple[bool, bool]:
        """Account one packet; return ``(forward it, request a keyframe of the stream)``.

        Args:
            stream_id: the published stream the packet belongs to.
            timestamp: its RTP timestamp (a new value starts a new frame).
            size: its size in bytes.
            now: its arrival time.
            keyframe: whether it starts a keyframe; the caller needs to look only while
                :meth:`needs_keyframe_check` is true (None otherwise).
        """
        last = self._last
        self._last = now
        if last is not None:
            refill = (now - last) * self._rate
            self._sent = min(self._sent + refill, self._rate)
            self._forwarded = min(self._forwarded + refill, self._rate)
        self._sent -= size
        self._track(now)
        new_frame = self._timestamps.get(stream_id) != timestamp
        if new_frame:
            self._timestamps[stream_id] = timestamp
        if stream_id not in self._blocked:
            if (
                new_frame
                and self._forwarded < 0
                and stream_id != self.protected
                and self._dropping(now)
            ):
                # Over the cap past the grace period: drop this frame and what depends on it.
                self._blocked.add(stream_id)
                self.dropped_frames += 1
                self.dropped_packets += 1
                self.keyframe_requests += 1
                return False, True
            self._forwarded -= size
            return True, False
        ask = False
        if new_frame:
            if keyframe and self._forwarded >= 0:
                self._blocked.discard(stream_id)
                self._forwarded -= size
                return True, False
            self.dropped_frames += 1
            # Room again, or the keyframe did not fit: (re)ask; the caller throttles.
            ask = self._forwarded >= 0 or bool(keyframe)
            self.keyframe_requests += int(ask)
        self.dropped_packets += 1
        return False, ask

    def needs_keyframe_check(self, stream_id: int) -> bool:
        """Whether :meth:`admit` wants to know if this stream's packets start keyframes."""
        return stream_id in self._blocked

    def remb_due(self, now: float) -> bool:
        """Whether to send the sender a REMB with :attr:`cap` now (then call again later)."""
        if self._over_since is None:
            return False
        if self._last_remb is not None and now - self._last_remb < REMB_INTERVAL:
            return False
        self._last_remb = now
        if self._first_remb is None:
            self._first_remb = now
        return True

    def _dropping(self, now: float) -> bool:
        first = self._first_remb
        return first is not None and self._over_since is not None and now - first >= GRACE

    def _track(self, now: float) -> None:
        if self._sent < 0:
            self._clean_since = None
            if self._over_since is None:
                self._over_since = now
            return
        if self._over_since is None:
            return
        if self._clean_since is None:
            self._clean_since = now
        elif now - self._clean_since >= _CLEAR_AFTER and not self._blocked:
            self._over_since = self._last_remb = self._first_remb = self._clean_since = None

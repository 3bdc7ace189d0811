"""Downlink bandwidth estimation per subscriber: delay-based plus loss-based (GCC-like).

Rules of this file:

* Inputs are :class:`~mediaserver.sfu.twcc.PacketResult` batches from the subscriber's
  transport-cc feedback, and REMB values (draft-alvestrand-rmcat-remb) when the browser
  sends those instead. Time is passed in; nothing here reads a clock.
* The structure follows draft-ietf-rmcat-gcc-02 and libwebrtc's published design, written
  from the draft, not from code:

  - packets are grouped into bursts sent within 5 ms (§5.2); for consecutive groups the
    delay variation is ``arrival delta - send delta``;
  - a trendline filter (a least-squares slope over the last 20 smoothed accumulated
    delays) replaces the draft's Kalman filter, as in current libwebrtc;
  - an over-use detector compares the scaled trend with an adaptive threshold
    (§5.4: ``K_u = 0.01``, ``K_d = 0.00018`` per ms, here with libwebrtc's
    per-trendline constants 0.0087 / 0.039);
  - AIMD rate control (§5.5): on over-use the rate drops to 0.85 x the rate actually
    acknowledged; while normal it grows about 8 % per second, never beyond 1.5 x the
    acknowledged rate (an SFU often sends less than it may);
  - the loss-based controller (§6): above 10 % loss the rate is cut by half the loss
    fraction, below 2 % it grows 5 %, in between it holds.

* The estimate is the minimum of the delay-based rate, the loss-based rate and the last
  REMB (if any), clamped to ``[min_bitrate, max_bitrate]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Literal

from mediaserver.errors import InvalidArgument
from mediaserver.sfu.twcc import PacketResult

__all__ = ["BandwidthEstimator", "BandwidthUsage", "OveruseDetector", "TrendlineEstimator"]

BandwidthUsage = Literal["normal", "overusing", "underusing"]

_BURST_SECONDS = 0.005
_BETA = 0.85


class TrendlineEstimator:
    """Slope of the smoothed accumulated delay variation over a sliding window.

    Args:
        window: number of samples in the regression.
        smoothing: exponential smoothing coefficient of the accumulated delay.
        gain: the threshold gain applied to the slope.
    """

    __slots__ = ("_accumulated", "_first_arrival", "_gain", "_samples", "_smoothed",
                 "_smoothing", "num_deltas", "trend")  # fmt: skip

    def __init__(self, window: int = 20, smoothing: float = 0.9, gain: float = 4.0) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)
        self._smoothing = smoothing
        self._gain = gain
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._first_arrival: float | None = None
        self.num_deltas = 0
        self.trend = 0.0
        """The latest slope (ms of delay per ms of time)."""

    def update(self, delay_variation_ms: float, arrival_ms: float) -> float:
        """Add one group's delay variation; return the modified trend (what is compared)."""
        if self._first_arrival is None:
            self._first_arrival = arrival_ms
        self.num_deltas += 1
        self._accumulated += delay_variation_ms
        s = self._smoothing
        self._smoothed = s * self._smoothed + (1 - s) * self._accumulated
        samples = self._samples
        samples.append((arrival_ms - self._first_arrival, self._smoothed))
        if len(samples) == samples.maxlen:
            n = len(samples)
            mean_x = sum(x for x, _ in samples) / n
            mean_y = sum(y for _, y in samples) / n
            num = sum((x - mean_x) * (y - mean_y) for x, y in samples)
            den = sum((x - mean_x) ** 2 for x, _ in samples)
            if den > 0:
                self.trend = num / den
        return min(self.num_deltas, 60) * self.trend * self._gain


class OveruseDetector:
    """Compares the modified trend with an adaptive threshold (draft-ietf-rmcat-gcc §5.4)."""

    __slots__ = ("_last_update_ms", "_overuse_count", "_overuse_ms", "_prev_trend",
                 "state", "threshold")  # fmt: skip

    _K_UP = 0.0087
    _K_DOWN = 0.039
    _OVERUSE_TIME_MS = 10.0

    def __init__(self) -> None:
        self.threshold = 12.5
        self.state: BandwidthUsage = "normal"
        self._overuse_ms = -1.0
        self._overuse_count = 0
        self._prev_trend = 0.0
        self._last_update_ms: float | None = None

    def detect(self, modified_trend: float, send_delta_ms: float, now_ms: float) -> BandwidthUsage:
        """Update with one sample and return the usage state."""
        if modified_trend > self.threshold:
            if self._overuse_ms < 0:
                self._overuse_ms = send_delta_ms / 2
            else:
                self._overuse_ms += send_delta_ms
            self._overuse_count += 1
            if (
                self._overuse_ms > self._OVERUSE_TIME_MS
                and self._overuse_count > 1
                and modified_trend >= self._prev_trend
            ):
                self._overuse_ms = 0.0
                self._overuse_count = 0
                self.state = "overusing"
        elif modified_trend < -self.threshold:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.state = "underusing"
        else:
            self._overuse_ms = -1.0
            self._overuse_count = 0
            self.state = "normal"
        self._prev_trend = modified_trend
        self._adapt(modified_trend, now_ms)
        return self.state

    def _adapt(self, modified_trend: float, now_ms: float) -> None:
        last = self._last_update_ms
        self._last_update_ms = now_ms
        if last is None:
            return
        magnitude = abs(modified_trend)
        if magnitude > self.threshold + 15.0:
            return  # A spike: do not let it drag the threshold (libwebrtc does the same).
        k = self._K_DOWN if magnitude < self.threshold else self._K_UP
        elapsed = min(now_ms - last, 100.0)
        self.threshold = min(max(self.threshold + k * (magnitude - self.threshold) * elapsed, 6.0),
                             600.0)  # fmt: skip


class BandwidthEstimator:
    """The downlink estimate of one subscriber connection (sans-I/O).

    Args:
        initial_bitrate: bits/s before any feedback.
        min_bitrate: floor of the estimate.
        max_bitrate: ceiling of the estimate.

    Raises:
        InvalidArgument: the bounds are inconsistent.
    """

    __slots__ = ("_acked", "_delay_rate", "_detector", "_group", "_last_increase",
                 "_loss_rate", "_max", "_min", "_prev_group", "_remb", "_trendline",
                 "loss_fraction")  # fmt: skip

    def __init__(
        self,
        initial_bitrate: int = 1_000_000,
        *,
        min_bitrate: int = 30_000,
        max_bitrate: int = 20_000_000,
    ) -> None:
        if not 0 < min_bitrate <= initial_bitrate <= max_bitrate:
            raise InvalidArgument("need 0 < min_bitrate <= initial_bitrate <= max_bitrate")
        self._min = min_bitrate
        self._max = max_bitrate
        self._delay_rate = float(initial_bitrate)
        self._loss_rate = float(initial_bitrate)
        self._remb: float | None = None
        self._trendline = TrendlineEstimator()
        self._detector = OveruseDetector()
        # A group: [first send, last send, last arrival]; previous complete group too.
        self._group: list[float] | None = None
        self._prev_group: list[float] | None = None
        # (arrival time, size) of acknowledged packets, for the acknowledged rate.
        self._acked: deque[tuple[float, int]] = deque()
        self._last_increase: float | None = None
        self.loss_fraction = 0.0
        """Smoothed fraction of packets reported lost."""

    @property
    def usage(self) -> BandwidthUsage:
        """The over-use detector's state."""
        return self._detector.state

    @property
    def estimate(self) -> int:
        """The current downlink estimate in bits/s."""
        rate = min(self._delay_rate, self._loss_rate)
        if self._remb is not None:
            rate = min(rate, self._remb)
        return int(min(max(rate, self._min), self._max))

    def acknowledged_bitrate(self) -> float | None:
        """Bits/s the receiver acknowledged over the last 500 ms of arrivals, or None."""
        acked = self._acked
        if len(acked) < 2:
            return None
        span = acked[-1][0] - acked[0][0]
        if span <= 0:
            return None
        return sum(size for _, size in acked) * 8 / max(span, 0.1)

    def apply_probe(self, bitrate: float, now: float) -> None:
        """A probe was delivered at ``bitrate`` bits/s without over-use or loss: the
        delay-based rate may rise to it at once instead of growing 8 % a second (what
        libwebrtc does with its probe clusters; the draft leaves probing out)."""
        if self._detector.state != "normal":
            return
        self._delay_rate = max(self._delay_rate, min(float(bitrate), float(self._max)))
        self._loss_rate = max(self._loss_rate, min(float(bitrate), float(self._max)))
        self._last_increase = now

    def receive_remb(self, bitrate: int) -> None:
        """Apply a REMB value (bits/s) from the subscriber."""
        self._remb = float(bitrate)

    def receive_results(self, results: Iterable[PacketResult], now: float) -> None:
        """Update with one transport-cc feedback's packet results (send-time order)."""
        lost = 0
        total = 0
        acked = self._acked
        for result in results:
            total += 1
            arrival = result.arrival_time
            if arrival is None:
                lost += 1
                continue
            acked.append((arrival, result.size))
            self._add_to_group(result.send_time, arrival)
        if acked:
            horizon = acked[-1][0] - 0.5
            while acked and acked[0][0] < horizon:
                acked.popleft()
        if total:
            self.loss_fraction = 0.7 * self.loss_fraction + 0.3 * (lost / total)
            self._update_loss_rate(lost / total)
        self._update_delay_rate(now)

    def _add_to_group(self, send: float, arrival: float) -> None:
        group = self._group
        if group is None:
            self._group = [send, send, arrival]
            return
        if send - group[0] <= _BURST_SECONDS:
            group[1] = max(group[1], send)
            group[2] = max(group[2], arrival)
            return
        previous = self._prev_group
        if previous is not None:
            send_delta = (group[1] - previous[1]) * 1000
            arrival_delta = (group[2] - previous[2]) * 1000
            trend = self._trendline.update(arrival_delta - send_delta, group[2] * 1000)
            self._detector.detect(trend, send_delta, group[2] * 1000)
        self._prev_group = group
        self._group = [send, send, arrival]

    def _update_delay_rate(self, now: float) -> None:
        state = self._detector.state
        acked = self.acknowledged_bitrate()
        if state == "overusing":
            base = acked if acked is not None else self._delay_rate
            self._delay_rate = min(self._delay_rate, _BETA * base)
            self._last_increase = now
            return
        if state == "underusing":
            self._last_increase = now  # Hold: queues are draining.
            return
        last = self._last_increase
        self._last_increase = now
        if last is None:
            return
        elapsed = min(max(now - last, 0.0), 1.0)
        increased = self._delay_rate * (1.08**elapsed)
        if acked is not None:
            increased = min(increased, 1.5 * acked + 10_000)
        self._delay_rate = max(self._delay_rate, min(increased, float(self._max)))
        if acked is not None and self._delay_rate > 1.5 * acked + 10_000:
            # Do not keep an estimate far above what is being delivered.
            self._delay_rate = max(1.5 * acked + 10_000, float(self._min))

    def _update_loss_rate(self, loss: float) -> None:
        if loss > 0.10:
            self._loss_rate = max(self._loss_rate * (1 - 0.5 * loss), float(self._min))
        elif loss < 0.02:
            self._loss_rate = min(self._loss_rate * 1.05, float(self._max))

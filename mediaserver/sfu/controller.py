"""One subscriber's downlink congestion control: the glue between the SFU cores.

Rules of this file:

* Sans-I/O; time is passed in. One :class:`DownlinkController` per subscriber connection
  (transport-wide numbers count every packet of the bundled transport,
  draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
* Per forwarded packet only :meth:`DownlinkController.extension` runs: the next
  transport-wide sequence number (:class:`~mediaserver.sfu.twcc.TransportSequencer`, three
  list writes) packed into a ready one-byte-header extension block (RFC 8285 §4.2). The
  forwarding path puts that block into the rewritten header; no object per packet.
* The subscriber's transport-cc feedback and REMB (draft-alvestrand-rmcat-remb-03) feed one
  :class:`~mediaserver.sfu.bwe.BandwidthEstimator`.
* With server-side adaption (chime-signaling-protocol.md §3.2, §4.5) :meth:`choose` maps the
  estimate onto the subscriber's m-lines with :func:`~mediaserver.sfu.allocator.allocate`:
  for each m-line one stream id of the subscribed source's group (a simulcast layer), or 0
  when even the lowest layer does not fit (the caller pauses the group, §4.6).
* Probing (the BANDWIDTH_PROBING half of the mode): the estimator never rises far above
  what the subscriber acknowledges, so a subscriber moved down would stay down. When the
  layers it wants cost more than the estimate allows and the link shows neither over-use
  nor loss, :attr:`DownlinkController.probe_rate` asks the caller to send that many extra
  bits/s of padding-only packets (each with a transport-wide number), so the feedback shows
  whether the link carries more. A probe that meets congestion stops and the next waits
  twice as long (4 s up to 60 s).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mediaserver.errors import InvalidArgument, MalformedPacket
from mediaserver.rtp.packet import peek_extension_offset
from mediaserver.rtp.rtcp import RtcpTransportCc
from mediaserver.sfu.allocator import LayerOption, StreamDemand, allocate
from mediaserver.sfu.bwe import BandwidthEstimator
from mediaserver.sfu.twcc import TransportSequencer

__all__ = ["HEADROOM", "DownlinkController", "LinePreference", "twcc_block"]

HEADROOM = 0.85
"""Share of the estimate given to video (the rest: audio, RTCP, retransmissions, bursts)."""
UPGRADE_MARGIN = 1.15
"""A higher layer is taken only when the budget exceeds its bitrate by this factor, so that
measurement noise does not flip a subscriber between two layers."""
KEEP_FACTOR = 0.7
"""The layer being forwarded counts at this share of its bitrate: the estimate follows what
is sent (an over-use sets it to 0.85 x the acknowledged rate), so without this discount one
over-use would already drop the layer that caused no trouble."""

PROBE_MAX = 2_000_000
"""Largest probe, bits/s."""
PROBE_HOLD = 4.0
"""Seconds before probing again after a probe met congestion (doubles, up to 60 s)."""
_PROBE_HOLD_MAX = 60.0
_CONGESTED_LOSS = 0.05

_BLOCK = struct.Struct("!HHBHx")
"""RFC 8285 §4.2: 0xBEDE, length 1 word, element header (id, len-1 = 1), 16-bit value, pad."""


def twcc_block(ext_id: int, sequence_number: int) -> bytes:
    """The header extension block carrying only a transport-wide sequence number.

    Raises:
        InvalidArgument: ``ext_id`` is not a one-byte-header id (1-14, RFC 8285 §4.2).
    """
    if not 1 <= ext_id <= 14:
        raise InvalidArgument(f"transport-cc extension id {ext_id} is not 1-14")
    return _BLOCK.pack(0xBEDE, 1, (ext_id << 4) | 1, sequence_number & 0xFFFF)


@dataclass(slots=True)
class LinePreference:
    """What the subscriber asked for on one m-line (§4.5 ``SdkVideoSubscriptionConfiguration``).

    Attributes:
        stream_id: the stream the client named; its group is the subscribed source.
        priority: lower is more important (``VideoPriorityBasedPolicy``); None: m-line order.
        target_bitrate: the client's ``target_bitrate_kbps`` in bits/s, or None.
        client_paused: the client paused this tile itself (C→S PAUSE).
        server_paused: the server paused it for lack of bandwidth (S→C PAUSE, §4.6).
        paused_stream_id: the stream named in that PAUSE (its group is the tile the
            client shows paused), kept for the RESUME even if the m-line changed source.
    """

    stream_id: int
    priority: int | None = None
    target_bitrate: int | None = None
    client_paused: bool = False
    server_paused: bool = False
    paused_stream_id: int = 0


class DownlinkController:
    """Transport-wide numbering, feedback and layer choice for one subscriber (sans-I/O).

    Args:
        ext_id: the negotiated transport-cc header extension id, or None (no stamping).
        adaptive: server-side adaption is on for this subscriber (§3.2).
        initial_bitrate: bits/s assumed before the first feedback.
    """

    __slots__ = ("_element", "_last_feedback", "_next_number", "_pack", "_probe_after",
                 "_probe_hold", "_remb", "adaptive", "estimator", "feedback_count", "lines",
                 "probe_credit", "probe_cursor", "probe_rate", "remb_count",
                 "sequencer", "stamping")  # fmt: skip

    def __init__(
        self, ext_id: int | None, *, adaptive: bool = False, initial_bitrate: int = 1_000_000
    ) -> None:
        self._element = 0
        self.stamping = False
        """Whether forwarded packets get a transport-wide sequence number (a plain
        attribute: it is read once per forwarded packet)."""
        self.set_extension(ext_id)
        self.adaptive = adaptive
        self.sequencer = TransportSequencer()
        self._next_number = self.sequencer.next
        self._pack = _BLOCK.pack
        self.estimator = BandwidthEstimator(initial_bitrate)
        self.feedback_count = 0
        """transport-cc feedback packets applied."""
        self.remb_count = 0
        """REMB packets applied."""
        self._remb = 0
        self.probe_rate = 0
        """Extra bits/s the caller should send as probes until the next :meth:`choose`."""
        self._probe_hold = PROBE_HOLD
        self._probe_after = 0.0
        self._last_feedback = 0
        self.probe_credit = 0.0
        """Probe bytes due and not yet sent (:meth:`probe_budget`)."""
        self.probe_cursor = 0
        """Which m-line carries the next probe (the caller's round-robin counter)."""
        self.lines: dict[str, LinePreference] = {}
        """mid → what the client asked for on it (kept only with adaption)."""

    @property
    def ext_id(self) -> int | None:
        return self._element >> 4 if self._element else None

    def set_extension(self, ext_id: int | None) -> None:
        """Use ``ext_id`` (from the latest answer) for the transport-wide number, or stop."""
        if ext_id is None:
            self._element = 0
            self.stamping = False
            return
        twcc_block(ext_id, 0)  # validates the id
        self._element = (ext_id << 4) | 1
        self.stamping = True

    def extension(self, now: float, size: int) -> bytes:
        """The extension block for the next packet sent at ``now`` (``size`` bytes)."""
        return self._pack(0xBEDE, 1, self._element, self._next_number(now, size))

    def sent_late(self, packet: bytes, now: float) -> None:
        """``packet`` (stamped by :meth:`extension` earlier) leaves only at ``now``: its
        transport-wide record takes the real send time (the pacer held it)."""
        if not self.stamping:
            return
        try:
            found = peek_extension_offset(packet, self._element >> 4)
        except MalformedPacket:
            return
        if found is not None and found[1] >= 2:
            offset = found[0]
            self.sequencer.sent_at((packet[offset] << 8) | packet[offset + 1], now)

    # -- feedback ------------------------------------------------------------------------

    def receive_transport_cc(self, feedback: RtcpTransportCc, now: float) -> None:
        """Apply the subscriber's transport-cc feedback (draft-holmer-...-01 §3.1)."""
        results = self.sequencer.receive_feedback(feedback)
        if results:
            self.feedback_count += 1
            self.estimator.receive_results(results, now)

    def receive_remb(self, bitrate: int) -> None:
        """Apply the subscriber's REMB (bits/s)."""
        self.remb_count += 1
        self._remb = bitrate
        self.estimator.receive_remb(bitrate)

    @property
    def estimate(self) -> int | None:
        """The downlink estimate in bits/s, or None before any feedback.

        A subscriber that sends REMB but no transport-cc feedback did the estimation
        itself: its latest REMB is the estimate. With transport-cc feedback the estimator's
        delay- and loss-based rate counts, capped by the REMB if any.
        """
        if self.feedback_count:
            return self.estimator.estimate
        if self.remb_count:
            return self._remb
        return None

    @property
    def remb(self) -> int | None:
        """The subscriber's latest REMB in bits/s, or None before any."""
        return self._remb if self.remb_count else None

    @property
    def capacity(self) -> int | None:
        """What the subscriber's path is known to take, bits/s, or None: the pacing input
        (:func:`mediaserver.sfu.pacer.pacing_rate`).

        With server-side adaption the estimate: probes keep it honest. Without, only the
        subscriber's own REMB: the server does not probe then, so its transport-cc estimate
        stays near what it happens to send (at most 1.5 x what was acknowledged) and says
        nothing about a higher rate the subscriber switches to; pacing at it would drop
        the new stream's packets, and each drop, reported lost, would lower it further.
        """
        if self.adaptive:
            return self.estimate
        return self.remb

    # -- server-side adaption --------------------------------------------------------------

    def choose(
        self,
        layers: Mapping[str, Sequence[tuple[int, int]]],
        current: Mapping[str, int],
        now: float,
    ) -> dict[str, int]:
        """Pick one stream per m-line from the estimate and the priorities; decide
        :attr:`probe_rate` for the time until the next call.

        Args:
            layers: mid → ``(stream id, bits/s)`` of the subscribed source's layers that
                are sending, lowest layer first (the simulcast order: low, mid, hi,
                chime-signaling-protocol.md §4.2). The order ranks the layers, not the
                measured rates: two layers of a still picture can measure alike, and a
                ranking by rate would flip between them at every call. M-lines absent here
                are left alone. For a source sending one SVC stream the ids are its
                ``(spatial, temporal)`` layers (:func:`~mediaserver.sfu.svc_rates.layer_code`)
                with cumulative rates, in the same lowest-first order.
            current: mid → the stream forwarded now (0: none or paused).
            now: the current time.

        Returns:
            mid → the stream to forward, 0 when none fits (pause). Before feedback only
            the m-lines whose stream is not sending, each moved to its lowest sending layer.
        """
        congested = self._take_probe_result(now)
        estimate = self.estimate
        if estimate is None:
            self.probe_rate = 0
            return self._unstall(layers, current)
        wanted = 0
        sending = 0
        demands: list[StreamDemand] = []
        for index, (mid, options) in enumerate(layers.items()):
            line = self.lines.get(mid)
            if line is None or line.client_paused or not options:
                continue
            now_on = current.get(mid, 0)
            sending += _rate_of(options, now_on)
            on_index = next((i for i, (s, _) in enumerate(options) if s == now_on), None)
            layer_options = []
            floor = 0
            for spatial, (stream_id, bitrate) in enumerate(options):
                # Hysteresis: a layer above the current one must fit with a margin, the
                # current one is kept until the estimate falls clearly below it.
                if stream_id == now_on:
                    cost = int(bitrate * KEEP_FACTOR)
                elif on_index is not None and spatial > on_index:
                    cost = int(bitrate * UPGRADE_MARGIN)
                else:
                    cost = bitrate
                # A higher layer never costs less than the one below it (the allocator
                # wants its options in rising cost).
                floor = max(cost, floor + 1)
                layer_options.append(LayerOption(spatial, 0, floor))
            cap = line.target_bitrate
            affordable = [o.bitrate for o in layer_options if cap is None or o.bitrate <= cap]
            wanted += max(affordable or [layer_options[0].bitrate])
            priority = line.priority if line.priority is not None else 1000 + index
            demands.append(StreamDemand(mid, priority, tuple(layer_options), line.target_bitrate))
        budget = int(estimate * HEADROOM)
        chosen: dict[str, int] = {}
        for allocation in allocate(budget, demands):
            layer = allocation.layer
            chosen[allocation.key] = (
                layers[allocation.key][layer.spatial][0] if layer is not None else 0
            )
        self._decide_probe(int(wanted / HEADROOM), estimate, sending, congested, now)
        return chosen

    def _unstall(
        self, layers: Mapping[str, Sequence[tuple[int, int]]], current: Mapping[str, int]
    ) -> dict[str, int]:
        """Before any feedback the client's choice stands, unless that layer stopped
        sending (a simulcast sender switches layers when a third attendee joins,
        DefaultSimulcastUplinkPolicy): nothing would then reach the subscriber, so no
        feedback would ever come to start the estimate. Such an m-line gets the lowest
        layer that sends."""
        moved: dict[str, int] = {}
        for mid, options in layers.items():
            line = self.lines.get(mid)
            if line is None or line.client_paused or not options:
                continue
            if all(stream_id != current.get(mid, 0) for stream_id, _ in options):
                moved[mid] = options[0][0]
        return moved

    def _take_probe_result(self, now: float) -> bool:
        """Whether new feedback shows congestion; a probe it shows delivered without
        congestion raises the estimate to the delivered rate."""
        estimator = self.estimator
        # Without new feedback (nothing sent: all paused) the detector's state is stale.
        fresh = self.feedback_count != self._last_feedback
        self._last_feedback = self.feedback_count
        congested = fresh and (
            estimator.usage == "overusing" or estimator.loss_fraction > _CONGESTED_LOSS
        )
        if fresh and not congested and self.probe_rate:
            delivered = estimator.acknowledged_bitrate()
            if delivered is not None:
                estimator.apply_probe(delivered, now)
        return congested

    def probe_budget(self, elapsed: float) -> float:
        """Bytes of probes due after ``elapsed`` more seconds at :attr:`probe_rate`; the
        caller sends about that much and subtracts what it sent from :attr:`probe_credit`."""
        if not self.probe_rate:
            self.probe_credit = 0.0
            return 0.0
        self.probe_credit = min(
            self.probe_credit + self.probe_rate * elapsed / 8, self.probe_rate * 0.1 / 8
        )
        return self.probe_credit

    def _decide_probe(
        self, needed: int, estimate: int, sending: int, congested: bool, now: float
    ) -> None:
        """Probe so that media plus probes reach the estimate the wanted layers need."""
        shortfall = needed - estimate
        if congested:
            if self.probe_rate:
                self._probe_after = now + self._probe_hold
                self._probe_hold = min(self._probe_hold * 2, _PROBE_HOLD_MAX)
            self.probe_rate = 0
            return
        if shortfall <= 0 or not self.feedback_count or now < self._probe_after:
            if shortfall <= 0 and self.probe_rate:
                self._probe_hold = PROBE_HOLD  # The probe found the room it looked for.
            self.probe_rate = 0
            return
        # Transport-cc feedback shows what the probe does; REMB alone would not.
        self.probe_rate = min(needed - sending, PROBE_MAX, max(estimate, 100_000))


def _rate_of(ranked: Sequence[tuple[int, int]], stream_id: int) -> int:
    for candidate, bitrate in ranked:
        if candidate == stream_id:
            return bitrate
    return 0

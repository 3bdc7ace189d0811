"""Video forwarding tables of the media engine (the server's SFU path).

Each published camera or content share arrives on its publisher's peer, one stream per
simulcast layer; each subscriber receives a stream on one of its ``recvonly`` m-lines, with
the SSRC fixed for that m-line (chime-signaling-protocol.md §3.3) and its own sequence
numbers and timestamps. Per packet the router only rewrites a copy of the RTP header (SSRC,
payload type, sequence number, timestamp), drops the publisher's header extensions (their
ids belong to the publisher's negotiation; a stale MID would misroute the packet at the
subscriber, RFC 8843 §15) and hands the bytes to the subscriber's SRTP context.

Switching an m-line to another stream (a simulcast layer, or another source) takes effect
at the new stream's next keyframe, and a keyframe is requested at once (RTCP PLI, RFC 4585
§6.3.1, at most every :data:`PLI_INTERVAL` seconds), so the subscriber's decoder never gets
a delta frame without its reference. Each m-line keeps what it sent so the subscriber's
NACKs are answered with RTX packets when the m-line negotiated RTX (RFC 4588), else by
resending the original packets (same SSRC and sequence number). An m-line given a layer
target (:meth:`VideoRouter.set_layer_target`) drops VP8 temporal layers and VP9/AV1 SVC
layers above it without leaving sequence gaps (``mediaserver.video_layers``); choosing the
target from a bandwidth estimate is the allocator's job.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from mediaserver.sfu.picture_ids import PictureIds
from mediaserver.sfu.retransmission import RetransmissionBuffer, RtxParameters
from mediaserver.sfu.view import PacketView
from mediaserver.video_layers import LayerControl

__all__ = ["PLI_INTERVAL", "OutStream", "Prepared", "VideoRouter", "prepare"]

PLI_INTERVAL = 0.5
"""Seconds between two keyframe requests to the same publisher stream."""
_FRAME_TICKS = 3000
"""One frame at 30 frames/s on the 90 kHz video clock: the timestamp gap at a switch."""

_SEQ_TS_SSRC = struct.Struct("!HII")
_HEADER = struct.Struct("!BBHII")
"""The fixed RTP header (RFC 3550 §5.1): V/P/X/CC, M/PT, sequence, timestamp, SSRC."""


class Prepared(NamedTuple):
    """An uplink packet read once for all of its copies (:func:`prepare`)."""

    first: int
    """Byte 0 with the X bit cleared: version, padding and CSRC count."""
    marker: int
    """``0x80`` when the marker bit is set, else 0."""
    seq: int
    ts: int
    ssrc: int
    csrcs: bytes
    payload: bytes
    """Everything after the header extension (padding included)."""
    tail: bytes
    """``csrcs + payload``: what follows a rewritten 12-byte header without extension."""


def prepare(packet: bytes) -> Prepared:
    """Split an RTP packet into the parts each forwarded copy reuses.

    The publisher's header extension is left out (RFC 3550 §5.3.1): its ids belong to the
    publisher's negotiation. The packet is assumed well formed (it passed SRTP and the
    media engine's header peeks).
    """
    first = packet[0]
    seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(packet, 2)
    start = 12 + 4 * (first & 0x0F)
    csrcs = packet[12:start]
    if first & 0x10:
        payload = packet[start + 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big") :]
        tail = csrcs + payload if csrcs else payload
    else:
        payload = packet[start:]
        tail = packet[12:]
    return Prepared(first & 0xEF, packet[1] & 0x80, seq, ts, ssrc, csrcs, payload, tail)


@dataclass(slots=True, eq=False)
class OutStream:
    """One subscriber m-line: what it forwards and how its numbering continues."""

    subscriber: object
    """The subscriber's downlink (opaque here)."""
    mid: str
    ssrc: int
    payload_type: int
    stream_id: int = 0
    """The stream forwarded on this m-line; 0 for none."""
    pending_stream_id: int = 0
    """A stream to switch to at its next keyframe (simulcast layer switch, §4.5)."""
    paused: bool = False
    seq_offset: int = 0
    ts_offset: int = 0
    last_seq: int = field(default_factory=lambda: secrets.randbelow(0x10000))
    last_ts: int = field(default_factory=lambda: secrets.randbelow(0x100000000))
    source_ssrc: int | None = None
    """The publisher SSRC the offsets were computed for."""
    packets: int = 0
    frame_ended: bool = False
    """The last packet sent ended a frame (marker bit): padding may follow it."""
    history: RetransmissionBuffer = field(default_factory=RetransmissionBuffer)
    """What was sent on this m-line, to answer the subscriber's NACKs (RFC 4585 §6.2.1)."""
    layer_target: tuple[int, int] | None = None
    """``(spatial, temporal)`` cap set by :meth:`VideoRouter.set_layer_target`, or None."""
    layers: LayerControl | None = None
    """Layer dropping and gapless numbering, once a target was set (mediaserver.video_layers)."""
    picture_ids: PictureIds | None = None
    """VP8/VP9 picture numbering continued across switches (mediaserver.sfu.picture_ids)."""

    def use_payload_format(self, payload_format: str) -> None:
        """The m-line now forwards this format: renumber its pictures when it has them."""
        current = self.picture_ids
        if current is not None and current.payload_format == payload_format:
            return
        self.picture_ids = PictureIds(payload_format) if payload_format in ("vp8", "vp9") else None

    def forward_layers(
        self, view: PacketView, stream_id: int, now: float, extension: bytes = b""
    ) -> bytes | None:
        """:meth:`forward` through :attr:`layers`: the packet renumbered without the gaps of
        dropped layers, or None when it is not for this subscriber."""
        decided = self.decide_layers(view, stream_id, now)
        if decided is None:
            return None
        return self.forward_decided(view, decided, now, extension)

    def decide_layers(
        self, view: PacketView, stream_id: int, now: float
    ) -> tuple[int, int, bool] | None:
        """Whether :attr:`layers` forwards ``view``: its (sequence number, timestamp,
        marker) on this m-line, or None when its layer is dropped."""
        layers = self.layers
        assert layers is not None
        decided = layers.decide(view, stream_id, now)
        if decided is None and self.picture_ids is not None:
            self.picture_ids.skip(prepare(view.data).payload)
        return decided

    def forward_decided(
        self,
        view: PacketView,
        decided: tuple[int, int, bool],
        now: float,
        extension: bytes = b"",
    ) -> bytes:
        """The packet :meth:`decide_layers` kept, numbered as decided and remembered for
        retransmissions."""
        out_seq, out_ts, marker = decided
        self.last_seq = out_seq
        self.last_ts = out_ts
        if view.ssrc != self.source_ssrc:
            self.source_ssrc = view.ssrc
            if self.picture_ids is not None:
                self.picture_ids.rebase()
        self.packets += 1
        self.frame_ended = marker
        head, out = self._emit(
            prepare(view.data), out_seq, out_ts, 0x80 if marker else 0, extension
        )
        self.history.store(head, out, now)
        return out

    def forward(self, packet: bytes, now: float, extension: bytes = b"") -> bytes:
        """:meth:`forward_prepared` for a single packet."""
        return self.forward_prepared(prepare(packet), now, extension)

    def forward_prepared(self, packet: Prepared, now: float, extension: bytes = b"") -> bytes:
        """:meth:`rewrite` of a prepared packet, remembered for retransmissions."""
        head, out = self._copy(packet, extension)
        self.history.store(head, out, now)
        return out

    def rewrite(self, packet: bytes, extension: bytes = b"") -> bytes:
        """A copy of ``packet`` renumbered for this m-line (not remembered).

        The first packet of a new source continues this m-line's numbering seamlessly.
        ``extension``, a complete header extension block of this subscriber's negotiation
        (the transport-wide sequence number, :mod:`mediaserver.sfu.controller`), replaces
        the publisher's when given (RFC 3550 §5.3.1).
        """
        return self._copy(prepare(packet), extension)[1]

    def _copy(self, packet: Prepared, extension: bytes) -> tuple[bytes, bytes]:
        ssrc = packet.ssrc
        if ssrc != self.source_ssrc:
            self.source_ssrc = ssrc
            self.seq_offset = (self.last_seq + 1 - packet.seq) & 0xFFFF
            self.ts_offset = (self.last_ts + _FRAME_TICKS - packet.ts) & 0xFFFFFFFF
            if self.picture_ids is not None:
                self.picture_ids.rebase()
        out_seq = (packet.seq + self.seq_offset) & 0xFFFF
        out_ts = (packet.ts + self.ts_offset) & 0xFFFFFFFF
        if (out_seq - self.last_seq) & 0xFFFF < 0x8000:
            # Only a newer packet moves the numbering on; a retransmitted one (RTX from
            # the publisher) fills its gap without taking the numbering back.
            self.last_seq = out_seq
            self.last_ts = out_ts
        self.packets += 1
        marker = packet.marker
        self.frame_ended = marker != 0
        return self._emit(packet, out_seq, out_ts, marker, extension)

    def _emit(
        self, packet: Prepared, out_seq: int, out_ts: int, marker: int, extension: bytes
    ) -> tuple[bytes, bytes]:
        """(The 12-byte header, the whole packet) of a copy on this m-line."""
        payload = packet.payload
        pictures = self.picture_ids
        if pictures is not None:
            payload = pictures.apply(payload)
        if not extension:
            head = _HEADER.pack(
                packet.first, marker | self.payload_type, out_seq, out_ts, self.ssrc
            )
            if payload is packet.payload:
                return head, head + packet.tail
            return head, head + packet.csrcs + payload
        head = _HEADER.pack(
            packet.first | 0x10, marker | self.payload_type, out_seq, out_ts, self.ssrc
        )
        return head, head + packet.csrcs + extension + payload

    def padding(self, extension: bytes, size: int, now: float) -> bytes:
        """A padding-only packet continuing this m-line's numbering (RFC 3550 §5.1: P bit,
        the last octet counts the padding), for bandwidth probes. Call only when
        :attr:`frame_ended`: like a sender without RTX, padding goes between frames, with
        the last frame's timestamp. Later packets are numbered after it.

        Args:
            extension: the extension block (the transport-wide sequence number) or b"".
            size: padding octets, 1-255.
        """
        size = max(1, min(size, 255))
        self.last_seq = (self.last_seq + 1) & 0xFFFF
        self.seq_offset = (self.seq_offset + 1) & 0xFFFF
        head = bytes([0xB0 if extension else 0xA0, self.payload_type])
        header = head + _SEQ_TS_SSRC.pack(self.last_seq, self.last_ts, self.ssrc)
        packet = header + extension + bytes(size - 1) + bytes([size])
        self.history.store(header, packet, now)
        return packet


class VideoRouter:
    """Stream id → publisher, and stream id → the subscriber m-lines forwarding it."""

    def __init__(self, request_keyframe: Callable[[object, int, float], None]) -> None:
        self._request_keyframe = request_keyframe
        self.publishers: dict[int, object] = {}
        """stream id → publisher downlink."""
        self._outs: dict[int, tuple[OutStream, ...]] = {}
        """stream id → the m-lines forwarding it (an immutable tuple: style guide §8)."""
        self._by_subscriber: dict[object, dict[str, OutStream]] = {}
        self._last_pli: dict[int, float] = {}

    def publish(self, publisher: object, stream_ids: list[int], now: float) -> None:
        for stream_id in [s for s, p in self.publishers.items() if p is publisher]:
            if stream_id not in stream_ids:
                del self.publishers[stream_id]
        for stream_id in stream_ids:
            new = self.publishers.get(stream_id) is not publisher
            self.publishers[stream_id] = publisher
            if new and self._outs.get(stream_id):
                # Another connection (maybe another codec) publishes the stream now: its
                # m-lines start again at its first key frame.
                self.restart([stream_id], now)

    def unpublish(self, publisher: object) -> None:
        self.publish(publisher, [], 0.0)

    def subscribe(
        self,
        subscriber: object,
        lines: dict[str, tuple[int, int, int]],
        now: float,
    ) -> None:
        """Set a subscriber's m-lines: mid → (ssrc, payload type, stream id)."""
        current = self._by_subscriber.get(subscriber, {})
        updated: dict[str, OutStream] = {}
        for mid, (ssrc, payload_type, stream_id) in lines.items():
            out = current.get(mid)
            if out is None or out.ssrc != ssrc:
                out = OutStream(subscriber, mid, ssrc, payload_type)
            out.payload_type = payload_type
            self._target(out, stream_id, now)
            updated[mid] = out
        self._by_subscriber[subscriber] = updated
        self._rebuild()

    def select(self, subscriber: object, mid: str, stream_id: int, now: float) -> None:
        """REMOTE_VIDEO_UPDATE: forward ``stream_id`` on ``mid`` without renegotiation (§4.5)."""
        out = self._by_subscriber.get(subscriber, {}).get(mid)
        if out is None:
            return
        self._target(out, stream_id, now)
        self._rebuild()

    def _target(self, out: OutStream, stream_id: int, now: float) -> None:
        """Point ``out`` at ``stream_id``: it takes over at that stream's next keyframe, so
        the subscriber's decoder never sees a delta frame it has no reference for."""
        if stream_id == out.stream_id and not out.pending_stream_id:
            return
        if not stream_id:
            out.stream_id = out.pending_stream_id = 0
            return
        if stream_id == out.stream_id:
            out.pending_stream_id = 0
            return
        out.pending_stream_id = stream_id
        self.keyframe(stream_id, now, force=True)

    def set_rtx(
        self, subscriber: object, mid: str, ssrc: int | None, payload_type: int | None
    ) -> None:
        """Answer NACKs on ``mid`` with RTX on this SSRC and payload type (RFC 4588 §4),
        or, with None, by resending the original packets."""
        out = self._by_subscriber.get(subscriber, {}).get(mid)
        if out is None:
            return
        current = out.history.rtx
        if current is None and ssrc is None:
            return
        if current is not None and (current.ssrc, current.payload_type) == (ssrc, payload_type):
            return
        rtx = None
        if ssrc is not None and payload_type is not None:
            rtx = RtxParameters(ssrc, payload_type, secrets.randbelow(0x10000))
        out.history = RetransmissionBuffer(rtx=rtx)

    def set_layer_target(self, subscriber: object, mid: str, spatial: int, temporal: int) -> None:
        """Cap the layers forwarded on ``mid`` to ``(spatial, temporal)`` (for the bandwidth
        allocator; :data:`~mediaserver.sfu.layers.MAX_LAYER` means every layer).

        Temporal layers of VP8, and the spatial and temporal layers of VP9 SVC and AV1,
        are dropped above the target; the change takes effect where the decoder can follow
        (a frame start, a switching point, a key frame). Simulcast streams are chosen with
        :meth:`select`. Formats without layers (H.264) ignore the target.
        """
        out = self._by_subscriber.get(subscriber, {}).get(mid)
        if out is None:
            return
        out.layer_target = (spatial, temporal)
        if out.layers is not None:
            out.layers.set_target(spatial, temporal)

    def engage_layers(
        self, out: OutStream, payload_format: str, now: float, view: PacketView | None = None
    ) -> LayerControl:
        """Start dropping layers on ``out`` (its target is set), numbering on from where it
        is. When ``out`` has been forwarding every layer of the stream ``view`` (the packet
        at hand) belongs to, the numbering goes on exactly as before and layers go down at
        the next picture; otherwise SVC formats wait for a key frame, which is requested."""
        assert out.layer_target is not None
        whole = view is not None and bool(out.stream_id) and out.source_ssrc == view.ssrc
        if whole:
            assert view is not None
            layers = out.layers = LayerControl(
                payload_format,
                view.sequence_number + out.seq_offset,
                view.timestamp + out.ts_offset,
            )
            layers.adopt(out.stream_id, view.ssrc)
        else:
            layers = out.layers = LayerControl(
                payload_format, out.last_seq + 1, out.last_ts + _FRAME_TICKS
            )
        layers.set_target(*out.layer_target)
        if not whole and payload_format != "vp8" and out.stream_id:
            self.keyframe(out.stream_id, now, force=True)
        return layers

    def restart(self, stream_ids: list[int], now: float) -> None:
        """The publisher of ``stream_ids`` changed codec: the m-lines forwarding them start
        again at the next key frame (one is requested)."""
        for lines in self._by_subscriber.values():
            for out in lines.values():
                if out.stream_id in stream_ids:
                    # Nothing more of the old stream; a pending switch stays pending.
                    out.pending_stream_id = out.pending_stream_id or out.stream_id
                    out.stream_id = 0
        for stream_id in stream_ids:
            self.keyframe(stream_id, now, force=True)
        self._rebuild()

    def switch(self, out: OutStream) -> None:
        """The pending stream's keyframe arrived: ``out`` forwards it from now on."""
        out.stream_id = out.pending_stream_id
        out.pending_stream_id = 0
        out.source_ssrc = None
        out.layers = None  # Re-engaged for the new stream's format, numbering on.
        self._rebuild()

    def pause(self, subscriber: object, stream_ids: set[int], paused: bool, now: float) -> None:
        """PAUSE/RESUME from a subscriber (§4.6): stop or resume those streams; a resumed
        stream restarts at its next keyframe."""
        for out in self._by_subscriber.get(subscriber, {}).values():
            current = out.stream_id or out.pending_stream_id
            if current in stream_ids and out.paused != paused:
                out.paused = paused
                if not paused:
                    out.stream_id, out.pending_stream_id = 0, current
                    self.keyframe(current, now, force=True)
        self._rebuild()

    def unsubscribe(self, subscriber: object) -> None:
        if self._by_subscriber.pop(subscriber, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        outs: dict[int, list[OutStream]] = {}
        for lines in self._by_subscriber.values():
            for out in lines.values():
                if out.paused:
                    continue
                if out.stream_id:
                    outs.setdefault(out.stream_id, []).append(out)
                if out.pending_stream_id:
                    outs.setdefault(out.pending_stream_id, []).append(out)
        self._outs = {stream_id: tuple(lst) for stream_id, lst in outs.items()}

    def outs(self, stream_id: int) -> tuple[OutStream, ...]:
        return self._outs.get(stream_id, ())

    def streams_of(self, publisher: object) -> list[int]:
        return [s for s, p in self.publishers.items() if p is publisher]

    def lines_of(self, subscriber: object) -> dict[str, OutStream]:
        """The subscriber's m-lines, mid → :class:`OutStream` (do not modify)."""
        return self._by_subscriber.get(subscriber, {})

    def out_for_ssrc(self, subscriber: object, ssrc: int) -> OutStream | None:
        for out in self._by_subscriber.get(subscriber, {}).values():
            if out.ssrc == ssrc:
                return out
        return None

    def keyframe(self, stream_id: int, now: float, *, force: bool = False) -> None:
        """Ask the publisher of ``stream_id`` for a keyframe, throttled per stream."""
        publisher = self.publishers.get(stream_id)
        if publisher is None:
            return
        last = self._last_pli.get(stream_id)
        if not force and last is not None and now - last < PLI_INTERVAL:
            return
        self._last_pli[stream_id] = now
        self._request_keyframe(publisher, stream_id, now)

"""The mix-minus Opus mixer of one meeting (sans I/O).

Every attendee sends one Opus stream and receives one: the mix of the others. Per 20 ms
tick, :meth:`MixMinusMixer.tick` picks the top-N speakers from their RFC 6464 levels,
decodes only them, sums them once, and encodes

* one **shared** frame, sent to every listener who is not excluded from any mixed source
  (encoded once, whatever the number of listeners: Asterisk ``bridge_softmix``), and
* one **personal** frame per listener who must not hear one of the mixed sources (a
  speaker must not hear themselves): the total minus their own contribution
  (Janus AudioBridge, FreeSWITCH), limited after the subtraction.

So a tick costs at most N + 1 encodes and N decodes (plus fades), and the per-listener
work left to the server is the RTP header and SRTP protect of a ready-made payload.

Rules of this file:

* No I/O and no clock: :meth:`~MixMinusMixer.receive` is called per uplink RTP packet,
  :meth:`~MixMinusMixer.tick` every 20 ms (or :meth:`~MixMinusMixer.handle_timer` when
  :meth:`~MixMinusMixer.get_timer` is due). After ``tick``, send ``MixOutput.frame_for(id)``
  to every id in :attr:`~MixMinusMixer.receivers`.
* ``receive`` never decodes: it stores the payload in the source's jitter buffer and
  records its level (the RFC 6464 value, or :func:`~mediacodecs.opus.estimate_level`
  when the sender does not send the extension).

Decisions:

* **Mono, and stereo for those who ask.** By default sources are decoded to mono (a
  stereo packet is downmixed by libopus), mixed in float32 and encoded mono at 48 kHz:
  meeting audio is speech, stereo doubles the encode cost (``anchors-and-performance.md``
  §9.3a), and mono Opus is valid in the ``opus/48000/2`` payload format (RFC 7587 §7).
  A listener that negotiated stereo (``stereo=1`` in its offer's Opus fmtp, RFC 7587
  §6.1; amazon-chime-sdk-js adds it for a stereo AudioProfile) gets a stereo mix: while
  such a listener is present, a source whose packets are stereo when it enters the mix is
  decoded in stereo and keeps its channels, mono sources sit in the centre (both
  channels), and the mono listeners' mix is the average of the channels. Each layout has
  its own shared stream, so a tick encodes at most one mono and one stereo shared frame
  whatever the audience, plus the personal frames in each listener's layout.
* **Plain sum, no division** (LiveKit): dividing by the source count makes everyone
  quieter when a third person talks. Each output stream has its own frame-gain limiter
  (instant attack, 0.5 s release, the gain ramped linearly across the frame so it never
  clicks), then a hard clip as a safety net.
* **Who hears what.** A source is never in its *owner*'s mix. The owner of a source is
  the source itself, except for content-share audio ``<attendee>#content``, whose owner is
  ``<attendee>``: the presenter does not hear their own shared tab, everyone else does
  (and the content-share client, if it receives audio, does not hear it either).
  Muted sources and sources that may not send are never mixed; listeners that may not
  receive are left out of :attr:`~MixMinusMixer.receivers`.
* **Clicks.** A source entering the mix is faded in over its first frame with sound (its
  jitter buffer may still be filling at the first tick), one leaving is faded out over one
  extra frame (it is decoded once more for that).
* **Stream continuity for the client's one decoder.** Switching a listener from the
  shared stream to a personal one would feed the client's decoder a bitstream from an
  unrelated encoder state. Instead the personal encoder is *forked*: its state is copied
  from the shared encoder (``OpusEncoder.copy_state_from``) before the shared frame of
  the tick is encoded, so the personal stream continues the shared one exactly. Switching
  back cannot be made exact (the shared encoder moved on), so a listener who no longer
  needs a personal mix keeps its encoder for ``personal_hold_ticks`` (default 10, 200 ms)
  encoding the same total as the shared stream, which lets the two encoder states
  converge, and is moved back at once when the whole mix is silent (every stream then
  carries silence). The cost is up to one extra encode per recently active speaker.
* **Silence is cached.** When nobody is mixed for ``silence_hangover`` ticks, the shared
  frame is a cached encoded silence frame and no encoder runs; the shared encoder resumes
  from the state that produced that frame.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from mediacodecs.opus import (
    FRAME_SAMPLES,
    OpusDecoder,
    OpusEncoder,
    estimate_level,
    packet_has_lbrr,
)
from mediaserver.audio.jitter import LOST, JitterBuffer
from mediaserver.audio.levels import SpeakerSelector, signal_strength
from mediaserver.errors import InvalidArgument, MalformedPacket, NotFound
from mediaserver.rtp.packet import peek_extension

__all__ = [
    "CONTENT_SUFFIX",
    "TICK_SECONDS",
    "MixMinusMixer",
    "MixOutput",
    "MixerStats",
    "SourceLevel",
    "owner_of",
    "peek_uplink",
]

TICK_SECONDS: Final = 0.020
"""The mixer period: one 20 ms Opus frame."""

CONTENT_SUFFIX: Final = "#content"
"""Suffix of a content-share attendee id (the presenter's id plus this)."""

_FULL_SCALE: Final = 32767.0
_MAX_CATCH_UP: Final = 5
"""Ticks :meth:`MixMinusMixer.handle_timer` runs at most when late (LiveKit JumpMixes)."""

_FADE_IN: Final = ((np.arange(FRAME_SAMPLES, dtype=np.float32) + 0.5) / FRAME_SAMPLES).astype(
    np.float32
)
_FADE_OUT: Final = (1.0 - _FADE_IN).astype(np.float32)
_RAMP: Final = _FADE_IN


_SEQ_TS_SSRC: Final = struct.Struct("!HII")


def peek_uplink(packet: bytes, audio_level_id: int | None) -> tuple[int, int, int, int | None, int]:
    """Read what the mixer needs from one decrypted uplink RTP packet, on the bytes.

    Returns:
        (sequence number, timestamp, SSRC, RFC 6464 level in -dBov or None, payload offset).

    Browsers put the audio level first in a one-byte-header extension block (RFC 8285
    §4.2), so it is read there directly; anywhere else it is searched for. Padding is
    not stripped (Opus senders do not pad).

    Raises:
        MalformedPacket: the packet is shorter than its header says.
    """
    n = len(packet)
    if n < 12:
        raise MalformedPacket(f"RTP packet of {n} bytes")
    first = packet[0]
    offset = 12 + 4 * (first & 0x0F)
    level: int | None = None
    if first & 0x10:
        if offset + 4 > n:
            raise MalformedPacket("RTP header extension is truncated")
        block = offset + 4
        offset = block + 4 * ((packet[offset + 2] << 8) | packet[offset + 3])
        if offset > n:
            raise MalformedPacket("RTP header extension is truncated")
        if audio_level_id is not None:
            if (
                packet[block - 4] == 0xBE
                and packet[block - 3] == 0xDE
                and block + 2 <= offset
                and packet[block] == audio_level_id << 4  # id, length 1 (RFC 6464 §3)
            ):
                level = packet[block + 1] & 0x7F
            else:
                element = peek_extension(packet, audio_level_id)
                if element:
                    level = element[0] & 0x7F
    elif offset > n:
        raise MalformedPacket("RTP header is longer than the packet")
    seq, timestamp, ssrc = _SEQ_TS_SSRC.unpack_from(packet, 2)
    return seq, timestamp, ssrc, level, offset


def owner_of(source_id: str) -> str:
    """The listener who must not hear ``source_id``: itself, or the presenter of content."""
    if source_id.endswith(CONTENT_SUFFIX):
        return source_id[: -len(CONTENT_SUFFIX)]
    return source_id


@dataclass(frozen=True, slots=True)
class SourceLevel:
    """One ``attendee_states[]`` entry of AUDIO_METADATA (signaling spec §5.2).

    Attributes:
        source_id: the attendee (or content) id.
        volume: ``round(-dBov)``; 14 or less is full scale, 42 or more silent.
        signal_strength: 0, 1 or 2 (uplink quality).
    """

    source_id: str
    volume: int
    signal_strength: int


@dataclass(frozen=True, slots=True)
class MixOutput:
    """The result of one mixer tick.

    Attributes:
        shared: the Opus frame for every listener without a personal one.
        personal: listener id to its own Opus frame (the mix minus what it must not hear).
        speakers: the speaker set after this tick, ids in the order they joined.
        levels: AUDIO_METADATA entries of the audible, unmuted sources.
        shared_encoded: False when ``shared`` is the cached silence frame.
        shared_stereo: the stereo frame for every stereo listener without a personal one,
            or None when nobody listens in stereo.
        stereo_receivers: the listeners that get stereo frames.
    """

    shared: bytes
    personal: Mapping[str, bytes]
    speakers: tuple[str, ...]
    levels: tuple[SourceLevel, ...]
    shared_encoded: bool
    shared_stereo: bytes | None = None
    stereo_receivers: frozenset[str] = frozenset()

    def frame_for(self, listener_id: str) -> bytes:
        """The frame to send to ``listener_id``."""
        frame = self.personal.get(listener_id)
        if frame is not None:
            return frame
        if self.shared_stereo is not None and listener_id in self.stereo_receivers:
            return self.shared_stereo
        return self.shared


@dataclass(slots=True)
class MixerStats:
    """Counters of one :class:`MixMinusMixer` (monotonic)."""

    ticks: int = 0
    packets: int = 0
    unknown_packets: int = 0
    """Packets dropped: unknown id (a race with removal), may not send, or empty."""
    decoded: int = 0
    concealed: int = 0
    """Frames rebuilt by PLC."""
    fec_recovered: int = 0
    """Frames rebuilt from the next packet's in-band FEC."""
    decode_errors: int = 0
    odd_durations: int = 0
    """Decoded frames that were not 20 ms long (cut or padded)."""
    shared_encodes: int = 0
    """Shared frames encoded, every layout (at most one mono and one stereo per tick)."""
    personal_encodes: int = 0
    silence_ticks: int = 0
    """Ticks whose shared frame was the cached silence frame."""
    speaker_changes: int = 0
    forks: int = 0
    """Personal streams started from the shared encoder's state."""
    limited: int = 0
    """Output frames the limiter attenuated."""


@dataclass(slots=True, eq=False)
class _Source:
    source_id: str
    slot: int
    owner: str
    jitter: JitterBuffer
    can_send: bool = True
    can_receive: bool = True
    muted: bool = False
    removed: bool = False
    decoder: OpusDecoder | None = None
    fade: int = 0
    """+1 fading in at its next frame with sound, -1 fading out this tick, 0 steady."""
    encoder: OpusEncoder | None = None
    personal_idle: int = 0
    gain: float = 1.0
    """Limiter gain of this listener's personal stream."""
    rows: list[int] = field(default_factory=list)
    stereo: bool = False
    """Whether this listener negotiated stereo (its mix is encoded in stereo)."""


@dataclass(slots=True, eq=False)
class _Layout:
    """One output channel layout (mono or stereo): its shared stream and its buffers."""

    channels: int
    bitrate: int
    complexity: int
    shared: OpusEncoder
    silence_state: OpusEncoder
    """The encoder state that produced :attr:`silence`; the shared stream resumes from it."""
    silence: bytes
    total: npt.NDArray[np.float32]
    work: npt.NDArray[np.float32]
    scratch: npt.NDArray[np.float32]
    pcm: npt.NDArray[np.int16]
    ramp: npt.NDArray[np.float32]
    spare: list[OpusEncoder] = field(default_factory=list)
    """Personal encoders of this layout not in use."""
    live: bool = False
    gain: float = 1.0

    @classmethod
    def create(cls, channels: int, bitrate: int, complexity: int) -> _Layout:
        shape = (FRAME_SAMPLES,) if channels == 1 else (FRAME_SAMPLES, channels)
        silence_state = OpusEncoder(channels, bitrate, complexity=complexity)
        silence = silence_state.encode(np.zeros(shape, np.int16))
        shared = OpusEncoder(channels, bitrate, complexity=complexity)
        shared.copy_state_from(silence_state)
        return cls(
            channels=channels,
            bitrate=bitrate,
            complexity=complexity,
            shared=shared,
            silence_state=silence_state,
            silence=silence,
            total=np.zeros(shape, np.float32),
            work=np.zeros(shape, np.float32),
            scratch=np.zeros(shape, np.float32),
            pcm=np.zeros(shape, np.int16),
            ramp=_RAMP if channels == 1 else np.ascontiguousarray(_RAMP[:, None]),
        )

    def take_encoder(self) -> OpusEncoder:
        """A personal encoder forked from the shared stream (or its silence state)."""
        encoder = (
            self.spare.pop()
            if self.spare
            else OpusEncoder(self.channels, self.bitrate, complexity=self.complexity)
        )
        encoder.copy_state_from(self.shared if self.live else self.silence_state)
        return encoder


class MixMinusMixer:
    """Mix-minus audio for one meeting: top-N speakers, one shared encode.

    Args:
        max_speakers: N, how many sources are mixed at most (besides ones fading out).
        bitrate: Opus bitrate of the mono output streams, bits per second.
        stereo_bitrate: Opus bitrate of the stereo output streams.
        complexity: Opus encoder complexity of the output streams.
        min_delay_ms: the jitter buffers' lowest target delay.
        max_delay_ms: the jitter buffers' highest target delay.
        personal_hold_ticks: ticks a listener keeps its personal stream after it stops
            needing one (see the module docstring).
        silence_hangover: ticks the shared encoder keeps encoding silence before the
            cached silence frame takes over.
        limit: the limiter's ceiling as a fraction of full scale.
        selector: the active-speaker selector; by default ``SpeakerSelector(max_speakers)``.

    Raises:
        InvalidArgument: a parameter is out of range.
    """

    def __init__(
        self,
        max_speakers: int = 3,
        *,
        bitrate: int = 32000,
        stereo_bitrate: int = 64000,
        complexity: int = 5,
        min_delay_ms: float = 20.0,
        max_delay_ms: float = 200.0,
        personal_hold_ticks: int = 10,
        silence_hangover: int = 2,
        limit: float = 0.89,
        selector: SpeakerSelector | None = None,
    ) -> None:
        if not 0.0 < limit <= 1.0:
            raise InvalidArgument("limit must be in (0, 1]")
        if personal_hold_ticks < 0 or silence_hangover < 0:
            raise InvalidArgument("hold and hangover ticks must not be negative")
        self.selector = selector if selector is not None else SpeakerSelector(max_speakers)
        self.stats = MixerStats()
        self._stereo_bitrate = stereo_bitrate
        self._complexity = complexity
        self._delays = (min_delay_ms, max_delay_ms)
        self._hold = personal_hold_ticks
        self._hangover = silence_hangover
        self._ceiling = limit * _FULL_SCALE
        self._sources: dict[str, _Source] = {}
        self._by_slot: list[_Source | None] = []
        self._free_slots: list[int] = []
        self._receivers: tuple[str, ...] = ()
        self._mixing: list[_Source] = []
        self._personal: dict[str, _Source] = {}
        self._stereo_receivers: frozenset[str] = frozenset()
        self._decoders: dict[int, list[OpusDecoder]] = {1: [], 2: []}
        """Spare decoders by channel count."""
        # The shared streams (mono always, stereo once a stereo listener came).
        self._mono = _Layout.create(1, bitrate, complexity)
        self._stereo: _Layout | None = None
        self._quiet_ticks = self._hangover + 1
        self._next_tick: float | None = None
        # Preallocated rows, one per mixed source: mono, and stereo while someone listens
        # in stereo.
        rows = 2 * self.selector.max_speakers + 2
        self._rows: npt.NDArray[np.float32] = np.zeros((rows, FRAME_SAMPLES), np.float32)
        self._srows: npt.NDArray[np.float32] = np.zeros((0, FRAME_SAMPLES, 2), np.float32)

    # -- membership ----------------------------------------------------------------------

    @property
    def receivers(self) -> tuple[str, ...]:
        """Ids of the sources that receive audio (rebuilt on change; iterate freely)."""
        return self._receivers

    @property
    def stereo_receivers(self) -> frozenset[str]:
        """Ids of the receivers that negotiated stereo."""
        return self._stereo_receivers

    @property
    def silence_frame(self) -> bytes:
        """The cached encoded silence frame (also sent when nobody is mixed)."""
        return self._mono.silence

    @property
    def shared_encoder(self) -> OpusEncoder:
        """The encoder of the mono shared stream (its ``encodes`` counts shared encodes)."""
        return self._mono.shared

    @property
    def stereo_shared_encoder(self) -> OpusEncoder | None:
        """The encoder of the stereo shared stream, once a stereo listener came."""
        return None if self._stereo is None else self._stereo.shared

    def __contains__(self, source_id: object) -> bool:
        return source_id in self._sources

    def __len__(self) -> int:
        return len(self._sources)

    def _rebuild_receivers(self) -> None:
        self._receivers = tuple(s.source_id for s in self._sources.values() if s.can_receive)
        self._stereo_receivers = frozenset(
            s.source_id for s in self._sources.values() if s.can_receive and s.stereo
        )
        if self._stereo_receivers and self._stereo is None:
            self._stereo = _Layout.create(2, self._stereo_bitrate, self._complexity)

    def _refresh_eligible(self, src: _Source) -> None:
        self.selector.set_eligible(src.slot, src.can_send and not src.muted and not src.removed)

    def add_source(
        self,
        source_id: str,
        *,
        can_send: bool = True,
        can_receive: bool = True,
        muted: bool = False,
        owner: str | None = None,
        stereo: bool = False,
    ) -> None:
        """Add an attendee (or content share) that may send and/or receive audio.

        Args:
            source_id: the attendee id, or ``<attendee>#content``.
            can_send: whether its capabilities allow sending audio.
            can_receive: whether its capabilities allow receiving audio.
            muted: its initial mute state.
            owner: who must not hear this source; :func:`owner_of` by default.
            stereo: whether it negotiated stereo (it then receives a stereo mix).

        Raises:
            InvalidArgument: ``source_id`` is already a source.
        """
        if source_id in self._sources:
            raise InvalidArgument(f"audio source {source_id!r} already exists")
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = len(self._by_slot)
            self._by_slot.append(None)
        self.selector.reset_slot(slot)
        low, high = self._delays
        src = _Source(
            source_id=source_id,
            slot=slot,
            owner=owner if owner is not None else owner_of(source_id),
            jitter=JitterBuffer(min_delay_ms=low, max_delay_ms=high),
            can_send=can_send,
            can_receive=can_receive,
            muted=muted,
            stereo=stereo,
        )
        self._sources[source_id] = src
        self._by_slot[slot] = src
        self._refresh_eligible(src)
        self._rebuild_receivers()

    def _get(self, source_id: str) -> _Source:
        src = self._sources.get(source_id)
        if src is None:
            raise NotFound(f"audio source {source_id!r} does not exist")
        return src

    def remove_source(self, source_id: str) -> None:
        """Remove a source; if it was mixed it fades out over the next tick.

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        src = self._get(source_id)
        del self._sources[source_id]
        src.removed = True
        self._refresh_eligible(src)
        if self.selector.drop(src.slot):
            self.stats.speaker_changes += 1
        if src in self._mixing:
            src.fade = -1
        self._by_slot[src.slot] = None
        self._free_slots.append(src.slot)
        if self._personal.pop(source_id, None) is not None:
            self._release_personal(src)
        self._rebuild_receivers()

    def set_muted(self, source_id: str, muted: bool) -> None:
        """Mute or unmute a source; a muted source leaves every mix at the next tick.

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        src = self._get(source_id)
        src.muted = muted
        self._refresh_eligible(src)

    def set_stereo(self, source_id: str, stereo: bool) -> None:
        """Whether a listener receives a stereo mix (its negotiated Opus ``stereo``).

        A personal stream in the other layout is dropped; the listener continues on the
        shared stream of its new layout. (Clients fix stereo with their AudioProfile
        before joining, so this only follows a new offer.)

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        src = self._get(source_id)
        if src.stereo == stereo:
            return
        src.stereo = stereo
        if self._personal.pop(source_id, None) is not None:
            self._release_personal(src)
        self._rebuild_receivers()

    def set_capabilities(self, source_id: str, can_send: bool, can_receive: bool) -> None:
        """Apply an attendee's audio capabilities (SendReceive, Send, Receive, None).

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        src = self._get(source_id)
        src.can_send = can_send
        src.can_receive = can_receive
        self._refresh_eligible(src)
        if not can_send:
            src.jitter.reset()
        if not can_receive and self._personal.pop(source_id, None) is not None:
            self._release_personal(src)
        self._rebuild_receivers()

    # -- per packet ----------------------------------------------------------------------

    def receive(
        self,
        source_id: str,
        seq: int,
        timestamp: int,
        payload: bytes,
        audio_level: int | None,
        now: float,
        ssrc: int | None = None,
    ) -> None:
        """Take one uplink RTP packet's Opus payload. Never decodes.

        Args:
            source_id: the sending attendee.
            seq: RTP sequence number.
            timestamp: RTP timestamp.
            payload: the Opus payload.
            audio_level: the RFC 6464 level in -dBov (0-127), or None without the extension.
            now: arrival time in seconds.
            ssrc: the packet's SSRC (a change resets the source's jitter buffer).
        """
        src = self._sources.get(source_id)
        if src is None or not src.can_send or not payload:
            self.stats.unknown_packets += 1
            return
        self.stats.packets += 1
        src.jitter.push(seq, timestamp, payload, now, ssrc)
        self.selector.report(
            src.slot, estimate_level(payload) if audio_level is None else audio_level
        )

    def receive_rtp(
        self, source_id: str, packet: bytes, audio_level_id: int | None, now: float
    ) -> None:
        """Take one decrypted uplink RTP packet (the server's per-packet path): the header
        is read by :func:`peek_uplink`, then as :meth:`receive`. Never decodes.

        Raises:
            MalformedPacket: the packet is shorter than its header says.
        """
        seq, timestamp, ssrc, level, offset = peek_uplink(packet, audio_level_id)
        src = self._sources.get(source_id)
        if src is None or not src.can_send or offset >= len(packet):
            self.stats.unknown_packets += 1
            return
        self.stats.packets += 1
        payload = packet[offset:]
        src.jitter.push(seq, timestamp, payload, now, ssrc)
        self.selector.report(src.slot, estimate_level(payload) if level is None else level)

    # -- per tick ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the next tick is due, or None before the first :meth:`tick`."""
        return self._next_tick

    def handle_timer(self, now: float) -> list[MixOutput]:
        """Run every tick that is due by ``now`` (at most 5; older ones are skipped)."""
        due = self._next_tick
        if due is None or now < due:
            return []
        count = int((now - due) / TICK_SECONDS) + 1
        if count > _MAX_CATCH_UP:
            self._next_tick = due + (count - _MAX_CATCH_UP) * TICK_SECONDS
            count = _MAX_CATCH_UP
        return [self.tick(now) for _ in range(count)]

    def tick(self, now: float) -> MixOutput:
        """Mix one 20 ms frame. Send the result to every id in :attr:`receivers`."""
        stats = self.stats
        stats.ticks += 1
        self._next_tick = (self._next_tick if self._next_tick is not None else now) + TICK_SECONDS
        change = self.selector.select()
        by_slot = self._by_slot
        mixing = self._mixing
        stereo = self._stereo if self._stereo_receivers else None
        if stereo is None and self._stereo is not None:
            self._stereo.live = False  # nobody hears it: restart from silence when needed
        if change.entered or change.left:
            stats.speaker_changes += len(change.entered) + len(change.left)
            for slot in change.left:
                src = by_slot[slot]
                if src is not None and src in mixing:
                    src.fade = -1
            for slot in change.entered:
                src = by_slot[slot]
                if src is None:  # pragma: no cover - the selector only knows live slots
                    continue
                if src in mixing:
                    src.fade = 0  # it was about to fade out: just stay
                    continue
                src.jitter.trim_to_target()
                if src.decoder is None:
                    src.decoder = self._take_decoder(src, stereo is not None)
                src.fade = 1
                mixing.append(src)

        # Decode the mixed sources into rows and sum them once per layout.
        count = len(mixing)
        if count > self._rows.shape[0]:
            self._rows = np.zeros((2 * count, FRAME_SAMPLES), np.float32)
        rows = self._rows
        srows: npt.NDArray[np.float32] | None = None
        if stereo is not None:
            if count > self._srows.shape[0]:
                self._srows = np.zeros(
                    (max(2 * count, rows.shape[0]), FRAME_SAMPLES, 2), np.float32
                )
            srows = self._srows
        mono = self._mono
        groups: dict[str, list[int]] = {}
        for i, src in enumerate(mixing):
            self._decode_into(src, rows[i], None if srows is None else srows[i], now)
            groups.setdefault(src.owner, []).append(i)
            if src.owner != src.source_id:
                groups.setdefault(src.source_id, []).append(i)
        if count:
            np.sum(rows[:count], axis=0, out=mono.total)
            if stereo is not None and srows is not None:
                np.sum(srows[:count], axis=0, out=stereo.total)
            self._quiet_ticks = 0
        else:
            self._quiet_ticks += 1

        # Decide who needs a personal stream, forking encoders before the shared encodes.
        personal = self._personal
        sources = self._sources
        for owner in groups:
            listener = sources.get(owner)
            if listener is None or not listener.can_receive:
                continue
            listener.personal_idle = 0
            if listener.encoder is None:
                layout = stereo if listener.stereo and stereo is not None else mono
                listener.encoder = layout.take_encoder()
                listener.gain = layout.gain
                personal[owner] = listener
                stats.forks += 1
        for owner, listener in list(personal.items()):
            if owner in groups:
                continue
            listener.personal_idle += 1
            if not count or listener.personal_idle > self._hold:
                del personal[owner]
                self._release_personal(listener)

        # The shared frames: one per layout.
        shared = self._shared_frame(mono, count)
        shared_stereo = None if stereo is None else self._shared_frame(stereo, count)

        # Personal frames: the total minus the listener's own sources, limited afterwards.
        frames: dict[str, bytes] = {}
        for owner, listener in personal.items():
            if listener.stereo and stereo is not None and srows is not None:
                layout, own_rows = stereo, srows
            else:
                layout, own_rows = mono, rows
            work = layout.work
            own = groups.get(owner)
            if own is None:
                np.copyto(work, layout.total)
            else:
                np.subtract(layout.total, own_rows[own[0]], out=work)
                for r in own[1:]:
                    np.subtract(work, own_rows[r], out=work)
            listener.gain = self._limit(layout, work, listener.gain)
            assert listener.encoder is not None
            frames[owner] = listener.encoder.encode_address(layout.pcm.ctypes.data)
            stats.personal_encodes += 1

        # Sources that faded out this tick leave the mix.
        if any(src.fade < 0 for src in mixing):
            kept: list[_Source] = []
            for src in mixing:
                if src.fade < 0:
                    if src.decoder is not None:
                        self._decoders[src.decoder.channels].append(src.decoder)
                        src.decoder = None
                    src.fade = 0
                else:
                    kept.append(src)
            self._mixing = kept

        speakers = tuple(
            s.source_id for s in (by_slot[slot] for slot in change.speakers) if s is not None
        )
        return MixOutput(
            shared=shared,
            personal=frames,
            speakers=speakers,
            levels=self.audio_levels(now),
            shared_encoded=mono.live,
            shared_stereo=shared_stereo,
            stereo_receivers=self._stereo_receivers,
        )

    def _shared_frame(self, layout: _Layout, count: int) -> bytes:
        """Encode the shared frame of one layout, or give its cached silence frame."""
        stats = self.stats
        if not count and self._quiet_ticks > self._hangover:
            layout.live = False
            if layout is self._mono:
                stats.silence_ticks += 1
            return layout.silence
        if not layout.live:
            layout.shared.copy_state_from(layout.silence_state)
            layout.live = True
        if count:
            np.copyto(layout.work, layout.total)
        else:
            layout.work.fill(0.0)
        layout.gain = self._limit(layout, layout.work, layout.gain)
        stats.shared_encodes += 1
        return layout.shared.encode_address(layout.pcm.ctypes.data)

    def _take_decoder(self, src: _Source, stereo_wanted: bool) -> OpusDecoder:
        """A fresh decoder for a source entering the mix: stereo when someone listens in
        stereo and the source's next packet is stereo (the TOC's s bit, RFC 6716 §3.1)."""
        following = src.jitter.peek()
        channels = 2 if stereo_wanted and following and following[0] & 0x04 else 1
        pool = self._decoders[channels]
        decoder = pool.pop() if pool else OpusDecoder(channels)
        decoder.reset()
        return decoder

    def _release_personal(self, listener: _Source) -> None:
        encoder = listener.encoder
        if encoder is not None:
            layout = self._stereo if encoder.channels == 2 else self._mono
            if layout is not None:
                layout.spare.append(encoder)
            listener.encoder = None
        listener.personal_idle = 0

    def _decode_into(
        self,
        src: _Source,
        row: npt.NDArray[np.float32],
        srow: npt.NDArray[np.float32] | None,
        now: float,
    ) -> None:
        """Pop one frame of ``src``, decode or conceal it, and write it (faded) to ``row``
        (mono) and, while someone listens in stereo, to ``srow`` (stereo)."""
        decoder = src.decoder
        assert decoder is not None
        stats = self.stats
        jitter = src.jitter
        item = jitter.pop(now)
        pcm: npt.NDArray[np.int16] | None
        try:
            if item is None:
                pcm = None
            elif item is LOST:
                following = jitter.peek()
                if following is not None and packet_has_lbrr(following):
                    pcm = decoder.decode_fec_view(following, FRAME_SAMPLES)
                    stats.fec_recovered += 1
                else:
                    pcm = decoder.conceal_view(FRAME_SAMPLES)
                    stats.concealed += 1
            else:
                pcm = decoder.decode_view(item)
                stats.decoded += 1
        except MalformedPacket:
            stats.decode_errors += 1
            pcm = decoder.conceal_view(FRAME_SAMPLES)
        if pcm is None:
            row.fill(0.0)
            if srow is not None:
                srow.fill(0.0)
            return
        n = pcm.shape[0]
        if n != FRAME_SAMPLES:
            stats.odd_durations += 1
            n = min(n, FRAME_SAMPLES)
            pcm = pcm[:n]
            row[n:] = 0.0
            if srow is not None:
                srow[n:] = 0.0
        if pcm.ndim == 1:
            np.copyto(row[:n], pcm, casting="safe")
            if srow is not None:
                srow[:n] = row[:n, None]  # a mono source sits in the centre
        else:
            # A stereo source keeps its channels; mono listeners hear their average.
            np.add(pcm[:, 0], pcm[:, 1], out=row[:n], dtype=np.float32)
            row[:n] *= np.float32(0.5)
            if srow is not None:
                np.copyto(srow[:n], pcm, casting="safe")
        if src.fade > 0:
            # Once, on the first frame with sound (a source may enter before its jitter
            # buffer plays), whatever else enters or leaves in the same tick.
            row *= _FADE_IN
            if srow is not None:
                srow *= _FADE_IN[:, None]
            src.fade = 0
        elif src.fade < 0:
            row *= _FADE_OUT
            if srow is not None:
                srow *= _FADE_OUT[:, None]

    def _limit(self, layout: _Layout, work: npt.NDArray[np.float32], gain: float) -> float:
        """Limit ``work`` in place, convert it into the layout's PCM buffer, return the new
        gain."""
        scratch = layout.scratch
        peak = float(np.abs(work, out=scratch).max())
        ceiling = self._ceiling
        target = 1.0 if peak <= ceiling else ceiling / peak
        new = target if target < gain else min(target, gain + 0.04)
        if new < 1.0 or gain < 1.0:
            self.stats.limited += 1
            # Ramp from the previous gain to the new one across the frame: no step.
            np.multiply(layout.ramp, np.float32(new - gain), out=scratch)
            scratch += np.float32(gain)
            work *= scratch
        np.clip(work, -32768.0, 32767.0, out=work)
        np.copyto(layout.pcm, work, casting="unsafe")
        return new

    # -- levels --------------------------------------------------------------------------

    def audio_levels(self, now: float) -> tuple[SourceLevel, ...]:
        """AUDIO_METADATA entries for every audible, unmuted source (signaling §5.2).

        The list holds every source the client should show as speaking; the client
        sets everyone else to 0. Add the local attendee's own entry with
        :meth:`signal_strength` if it must carry uplink health while silent.
        """
        slots, volumes = self.selector.audible()
        by_slot = self._by_slot
        out: list[SourceLevel] = []
        for slot, volume in zip(slots, volumes, strict=True):
            src = by_slot[slot]
            if src is None:  # pragma: no cover - removed slots are not eligible
                continue
            out.append(SourceLevel(src.source_id, volume, self._strength(src, now)))
        return tuple(out)

    @staticmethod
    def _strength(src: _Source, now: float) -> int:
        last = src.jitter.last_arrival
        return signal_strength(src.jitter.loss, None if last is None else now - last)

    def signal_strength(self, source_id: str, now: float) -> int:
        """The uplink ``signal_strength`` (0-2) of one source.

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        return self._strength(self._get(source_id), now)

    def jitter_buffer(self, source_id: str) -> JitterBuffer:
        """The jitter buffer of one source (for stats).

        Raises:
            NotFound: ``source_id`` is not a source.
        """
        return self._get(source_id).jitter

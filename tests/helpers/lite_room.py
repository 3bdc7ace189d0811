"""Attendees on :class:`bench.litepeer.LitePeer` for tests that control every audio packet.

A :class:`LiteAttendee` joins like the browser (the project's signaling client, then ICE,
DTLS-SRTP on the light peer), may speak through an :class:`~bench.litepeer.OpusTalker`
(synthetic sources, RFC 6464 levels, chosen uplink loss) and records its downlink packets
so a test can decode them afterwards, frame by frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.join import join_one
from bench.litepeer import LitePeer, OpusTalker, decode_received
from bench.media import SAMPLE_RATE, FrameSource, Pcm, tone_level_db
from mediacodecs.opus import FRAME_SAMPLES
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient

__all__ = ["Cosine", "LiteAttendee", "carries_tone", "join_lite"]

_CERTIFICATE = DtlsCertificate.generate()


@dataclass
class LiteAttendee:
    """One attendee: its signaling client, light peer and (when it speaks) talker."""

    client: SignalingClient
    peer: LitePeer
    talker: OpusTalker | None = None

    def frames(self, since: float | None = None) -> list[Pcm]:
        """The decoded downlink, one 20 ms frame per RTP packet (gaps concealed), keeping
        only frames whose packet arrived at ``since`` or later (monotonic time)."""
        channels = 2 if self.peer.stereo else 1
        decoded = decode_received(self.peer.received_audio, channels)
        return [frame for arrival, frame in decoded if since is None or arrival >= since]

    async def close(self) -> None:
        if self.talker is not None:
            self.talker.stop()
        self.peer.close()
        await self.client.close(timeout=1.0)


async def join_lite(
    meeting: dict[str, Any],
    attendee: dict[str, Any],
    *,
    sources: Sequence[FrameSource] = (),
    stereo: bool = False,
    loss: float = 0.0,
    seed: int = 0,
    bitrate: int = 32000,
) -> LiteAttendee:
    """Join ``attendee`` (CreateAttendee's ``Attendee``) and start speaking ``sources``
    (one per channel; none: a listener that sends nothing)."""

    def factory(certificate: DtlsCertificate) -> LitePeer:
        return LitePeer(certificate, record_audio=True, stereo=stereo)

    bot = await join_one(meeting, attendee, _CERTIFICATE, peer_factory=factory)
    joined = LiteAttendee(bot.client, bot.peer)
    if sources:
        joined.talker = OpusTalker(bot.peer, sources, bitrate=bitrate, loss=loss, seed=seed)
        joined.talker.start()
    return joined


class Cosine:
    """A cosine tone whose amplitude glides linearly to :attr:`target` over ``glide`` seconds.

    Args:
        frequency: in Hz.
        amplitude: initial peak level, 0..1 of full scale.
        phase_samples: start this many samples into the wave (a codec's lookahead, so the
            decoded wave peaks where the sender's frames begin).
    """

    def __init__(self, frequency: float, amplitude: float, *, phase_samples: int = 0) -> None:
        self.frequency = frequency
        self.amplitude = amplitude
        self.target = amplitude
        self.step = 0.0
        self.position = phase_samples

    def glide(self, target: float, seconds: float) -> None:
        self.target = target
        self.step = abs(target - self.amplitude) / max(1.0, seconds * SAMPLE_RATE)

    def next_frame(self, samples: int = FRAME_SAMPLES) -> Pcm:
        n = np.arange(self.position, self.position + samples, dtype=np.float64)
        self.position += samples
        direction = math.copysign(1.0, self.target - self.amplitude)
        ramp = self.amplitude + direction * self.step * np.arange(1, samples + 1)
        ramp = np.minimum(ramp, self.target) if direction > 0 else np.maximum(ramp, self.target)
        self.amplitude = float(ramp[-1])
        wave = np.cos(2.0 * np.pi * self.frequency * n / SAMPLE_RATE) * ramp * 32767.0
        frame: Pcm = np.round(wave).astype(np.int16)
        return frame


def carries_tone(frame: npt.NDArray[np.int16], frequency: float, floor_db: float) -> bool:
    """Whether one decoded 20 ms frame holds ``frequency`` at ``floor_db`` or above."""
    return tone_level_db(frame, frequency, bandwidth_hz=25.0) >= floor_db

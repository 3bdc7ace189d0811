"""Synthetic audio for bots, and the FFT helpers that check what a bot heard.

Everything here is plain numpy, with no asyncio or aiortc: sources produce 20 ms frames of
signed 16-bit mono PCM at 48 kHz on demand, and the analysis functions take a PCM buffer.
:mod:`bench.peer` wraps a source in an aiortc track.

Each bot gets its own tone (:func:`bot_frequency`), chosen so that no tone is a 2nd or 3rd
harmonic of another: a mix-minus test can then tell from the spectrum of what a listener
received whose voices are in it (everyone else's) and whose are not (its own).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "FrameSource",
    "PcmLoop",
    "Silence",
    "ToneGenerator",
    "bot_frequency",
    "dominant_frequencies",
    "load_pcm",
    "rms_dbfs",
    "tone_level_db",
]

SAMPLE_RATE = 48000
"""Opus's native rate; every source produces this rate."""

FRAME_SAMPLES = 960
"""20 ms at 48 kHz: one Opus frame as the browser sends it."""

BASE_FREQUENCY = 400.0
FREQUENCY_STEP = 150.0
DISTINCT_TONES = 48
""":func:`bot_frequency` is distinct for this many consecutive indexes (up to 7450 Hz)."""

Pcm = npt.NDArray[np.int16]


class FrameSource(Protocol):
    """Something that yields mono int16 PCM at :data:`SAMPLE_RATE`, frame after frame."""

    def next_frame(self, samples: int = FRAME_SAMPLES) -> Pcm:
        """Return the next ``samples`` samples."""
        ...


def bot_frequency(index: int) -> float:
    """The tone of bot ``index``: 400 Hz + 150 Hz * index, repeating after 48 bots.

    With this spacing no tone is the 2nd or 3rd harmonic of another
    (``2·(400 + 150a) = 400 + 150k`` has no integer solution, nor does the 3rd harmonic).
    """
    if index < 0:
        raise ValueError(f"bot index {index} is negative")
    return BASE_FREQUENCY + FREQUENCY_STEP * (index % DISTINCT_TONES)


@dataclass(slots=True)
class ToneGenerator:
    """A continuous sine tone; consecutive frames join without a phase jump.

    Args:
        frequency: in Hz.
        amplitude: peak level, 0..1 of full scale (0.3 is about -10.5 dBFS).
    """

    frequency: float
    amplitude: float = 0.3
    sample_rate: int = SAMPLE_RATE
    position: int = 0
    """Samples produced so far."""

    def next_frame(self, samples: int = FRAME_SAMPLES) -> Pcm:
        n = np.arange(self.position, self.position + samples, dtype=np.float64)
        self.position += samples
        wave_ = np.sin(2.0 * np.pi * self.frequency * n / self.sample_rate)
        return np.round(wave_ * self.amplitude * 32767.0).astype(np.int16)


@dataclass(slots=True)
class Silence:
    """Digital silence (what the JS client sends when no microphone was chosen)."""

    def next_frame(self, samples: int = FRAME_SAMPLES) -> Pcm:
        return np.zeros(samples, dtype=np.int16)


class PcmLoop:
    """Plays a PCM buffer in a loop.

    Args:
        pcm: mono int16 samples at :data:`SAMPLE_RATE`; must not be empty.
    """

    def __init__(self, pcm: Pcm) -> None:
        if pcm.size == 0:
            raise ValueError("cannot loop an empty PCM buffer")
        self.pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        self.position = 0

    @classmethod
    def from_file(cls, path: str | Path) -> PcmLoop:
        """Load a WAV file, or raw s16le mono 48 kHz PCM (any other extension)."""
        return cls(load_pcm(path))

    def next_frame(self, samples: int = FRAME_SAMPLES) -> Pcm:
        indexes = (np.arange(samples) + self.position) % self.pcm.size
        self.position = (self.position + samples) % self.pcm.size
        return self.pcm[indexes]


def load_pcm(path: str | Path) -> Pcm:
    """Read mono int16 PCM at 48 kHz from a WAV file or a raw s16le 48 kHz mono file.

    WAV files may be 16-bit at any rate and channel count: channels are averaged and the
    rate is converted by linear interpolation (good enough for test signals).

    Raises:
        ValueError: a WAV file that is not 16-bit.
    """
    path = Path(path)
    if path.suffix.lower() != ".wav":
        return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.int16)
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit WAV is supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    data = np.frombuffer(raw, dtype="<i2").astype(np.float64).reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE and data.size:
        duration = data.size / rate
        target = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
        data = np.interp(target, np.arange(data.size) / rate, data)
    result: Pcm = np.clip(np.round(data), -32768, 32767).astype(np.int16)
    return result


def _spectrum(
    pcm: npt.NDArray[np.integer] | npt.NDArray[np.floating], rate: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    samples = np.asarray(pcm, dtype=np.float64).reshape(-1) / 32768.0
    if samples.size < 2:
        raise ValueError("need at least 2 samples")
    window = np.hanning(samples.size)
    # Scale so that a full-scale sine reads 1.0 (0 dB) at its peak bin.
    magnitude: npt.NDArray[np.float64] = (
        np.abs(np.fft.rfft(samples * window)).astype(np.float64) * 2.0 / window.sum()
    )
    freqs: npt.NDArray[np.float64] = np.fft.rfftfreq(samples.size, 1.0 / rate).astype(np.float64)
    return freqs, magnitude


def dominant_frequencies(
    pcm: npt.NDArray[np.integer] | npt.NDArray[np.floating],
    rate: int = SAMPLE_RATE,
    *,
    count: int = 5,
    min_level_db: float = -50.0,
    min_separation_hz: float = 40.0,
) -> list[float]:
    """The strongest tones in ``pcm``, loudest first.

    A Hann-windowed FFT of the whole buffer is searched for local maxima; each peak's
    frequency is refined by parabolic interpolation of the log magnitude. Peaks closer than
    ``min_separation_hz`` to a louder one (window side lobes) are skipped.

    Args:
        pcm: int16-scaled samples (any shape; flattened).
        rate: sample rate in Hz.
        count: at most this many frequencies are returned.
        min_level_db: ignore peaks below this level, in dB of full-scale sine amplitude.
        min_separation_hz: see above.

    Returns:
        Frequencies in Hz, loudest first (empty for silence).
    """
    freqs, magnitude = _spectrum(pcm, rate)
    floor = 10.0 ** (min_level_db / 20.0)
    inner = magnitude[1:-1]
    is_peak = (inner > magnitude[:-2]) & (inner >= magnitude[2:]) & (inner >= floor)
    peaks = np.nonzero(is_peak)[0] + 1
    order = peaks[np.argsort(magnitude[peaks])[::-1]]
    bin_hz = float(freqs[1] - freqs[0])
    found: list[float] = []
    for k in order:
        a, b, c = np.log(magnitude[k - 1 : k + 2] + 1e-20)
        denominator = a - 2.0 * b + c
        offset = 0.5 * (a - c) / denominator if denominator != 0 else 0.0
        frequency = float(freqs[k]) + float(offset) * bin_hz
        if all(abs(frequency - f) >= min_separation_hz for f in found):
            found.append(frequency)
            if len(found) == count:
                break
    return found


def tone_level_db(
    pcm: npt.NDArray[np.integer] | npt.NDArray[np.floating],
    frequency: float,
    rate: int = SAMPLE_RATE,
    *,
    bandwidth_hz: float = 20.0,
) -> float:
    """Level of the tone at ``frequency`` in dB of a full-scale sine (about -10.5 for 0.3).

    The peak magnitude within ``±bandwidth_hz`` of ``frequency`` is used.
    """
    freqs, magnitude = _spectrum(pcm, rate)
    band = np.abs(freqs - frequency) <= bandwidth_hz
    if not band.any():
        return float("-inf")
    peak = float(magnitude[band].max())
    return 20.0 * float(np.log10(peak)) if peak > 0 else float("-inf")


def rms_dbfs(pcm: npt.NDArray[np.integer] | npt.NDArray[np.floating]) -> float:
    """RMS level in dBFS (``-inf`` for digital silence)."""
    samples = np.asarray(pcm, dtype=np.float64).reshape(-1) / 32768.0
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20.0 * float(np.log10(rms)) if rms > 0 else float("-inf")

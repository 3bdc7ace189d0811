"""``bench.media``: tone sources and the FFT helpers the mix-minus tests rely on."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from bench.media import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    PcmLoop,
    Silence,
    ToneGenerator,
    bot_frequency,
    dominant_frequencies,
    load_pcm,
    rms_dbfs,
    tone_level_db,
)


def frames(source: ToneGenerator | Silence | PcmLoop, count: int) -> np.ndarray:
    return np.concatenate([source.next_frame() for _ in range(count)])


def test_bot_frequencies_are_distinct_and_not_harmonics_of_each_other() -> None:
    tones = [bot_frequency(i) for i in range(48)]
    assert len(set(tones)) == 48
    for a in tones:
        for b in tones:
            assert b not in (2 * a, 3 * a)
    assert bot_frequency(48) == bot_frequency(0)
    with pytest.raises(ValueError):
        bot_frequency(-1)


def test_tone_frames_are_20_ms_int16_and_phase_continuous() -> None:
    tone = ToneGenerator(1000.0, amplitude=0.5)
    first = tone.next_frame()
    assert first.dtype == np.int16 and first.shape == (FRAME_SAMPLES,)
    joined = np.concatenate([first, tone.next_frame()])
    whole = ToneGenerator(1000.0, amplitude=0.5).next_frame(2 * FRAME_SAMPLES)
    assert np.array_equal(joined, whole)
    assert int(np.abs(joined.astype(np.int32)).max()) == round(0.5 * 32767)


def test_dominant_frequencies_finds_each_tone_of_a_mix_loudest_first() -> None:
    mix = sum(
        (
            frames(ToneGenerator(f, amplitude=a), 50).astype(np.int32)
            for f, a in [(550.0, 0.3), (1000.0, 0.1), (1450.0, 0.05)]
        ),
        np.zeros(50 * FRAME_SAMPLES, dtype=np.int32),
    )
    found = dominant_frequencies(mix, SAMPLE_RATE, count=3)
    assert found == pytest.approx([550.0, 1000.0, 1450.0], abs=1.0)
    assert dominant_frequencies(frames(Silence(), 10)) == []


def test_tone_level_reads_the_amplitude_in_db() -> None:
    pcm = frames(ToneGenerator(700.0, amplitude=0.3), 25)
    assert tone_level_db(pcm, 700.0) == pytest.approx(20 * np.log10(0.3), abs=0.3)
    assert tone_level_db(pcm, 1300.0) < -80
    assert rms_dbfs(pcm) == pytest.approx(20 * np.log10(0.3 / np.sqrt(2)), abs=0.3)
    assert rms_dbfs(np.zeros(10, dtype=np.int16)) == float("-inf")


def test_pcm_loop_wraps_around() -> None:
    loop = PcmLoop(np.arange(1000, dtype=np.int16))
    out = frames(loop, 2)
    assert out[999] == 999 and out[1000] == 0 and out[-1] == (2 * FRAME_SAMPLES - 1) % 1000
    with pytest.raises(ValueError):
        PcmLoop(np.zeros(0, dtype=np.int16))


def test_wav_files_are_downmixed_and_resampled_to_48k_mono(tmp_path: Path) -> None:
    rate, seconds = 16000, 0.5
    t = np.arange(int(rate * seconds)) / rate
    left = np.round(np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    stereo = np.stack([left, left], axis=1)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(stereo.tobytes())
    pcm = load_pcm(path)
    assert pcm.dtype == np.int16 and pcm.size == int(SAMPLE_RATE * seconds)
    assert dominant_frequencies(pcm, count=1) == pytest.approx([440.0], abs=2.0)
    raw = tmp_path / "tone.pcm"
    raw.write_bytes(pcm.astype("<i2").tobytes())
    assert np.array_equal(PcmLoop.from_file(raw).pcm, pcm)

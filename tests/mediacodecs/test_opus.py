from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from mediacodecs.opus import (
    FRAME_SAMPLES,
    OpusDecoder,
    OpusEncoder,
    OpusToc,
    estimate_level,
    opus_version,
    packet_frame_count,
    packet_has_lbrr,
    packet_samples,
    parse_toc,
)
from mediaserver.errors import InvalidArgument, MalformedPacket


def tone(
    freq: float, frames: int, amplitude: float = 6000.0, start: int = 0
) -> npt.NDArray[np.int16]:
    n = np.arange(start, start + frames * FRAME_SAMPLES)
    return (np.sin(2 * np.pi * freq * n / 48000) * amplitude).astype(np.int16)


def speechlike(frames: int, seed: int = 1) -> npt.NDArray[np.int16]:
    """A modulated low tone with noise: libopus codes it in SILK/hybrid mode."""
    t = np.arange(frames * FRAME_SAMPLES) / 48000
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * 300 * t) * 3000 * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (x + rng.normal(0, 300, t.size)).astype(np.int16)


def dominant_freq(x: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.argmax(spectrum) * 48000 / x.size)


def encode_frames(enc: OpusEncoder, pcm: npt.NDArray[np.int16]) -> list[bytes]:
    return [enc.encode(pcm[i : i + FRAME_SAMPLES]) for i in range(0, len(pcm), FRAME_SAMPLES)]


# -- TOC ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toc", "config", "stereo", "code", "mode", "bandwidth", "samples"),
    [
        (0x00, 0, False, 0, "silk", "nb", 480),
        (0x0B, 1, False, 3, "silk", "nb", 960),
        (0x4C, 9, True, 0, "silk", "wb", 960),
        (0x78, 15, False, 0, "hybrid", "fb", 960),
        (0x70, 14, False, 0, "hybrid", "fb", 480),
        (0x80, 16, False, 0, "celt", "nb", 120),
        (0xFC, 31, True, 0, "celt", "fb", 960),
        (0xE1, 28, False, 1, "celt", "fb", 120),
    ],
)
def test_parse_toc_reads_config_stereo_and_code(
    toc: int, config: int, stereo: bool, code: int, mode: str, bandwidth: str, samples: int
) -> None:
    parsed = parse_toc(bytes([toc, 0]))
    assert parsed == OpusToc(config, stereo, code)
    assert parsed.mode == mode
    assert parsed.bandwidth == bandwidth
    assert parsed.frame_samples == samples


@pytest.mark.parametrize(
    ("packet", "frames", "samples"),
    [
        (bytes([0xF8, 1, 2]), 1, 960),
        (bytes([0xF9, 1, 2]), 2, 1920),
        (bytes([0xFA, 1, 2]), 2, 1920),
        (bytes([0xFB, 0x03, 1]), 3, 2880),
        (bytes([0x0B, 0x02, 1]), 2, 1920),  # SILK 20 ms, code 3, two frames
        (bytes([0x1B, 0x02, 1]), 2, 5760),  # SILK 60 ms x 2 = 120 ms, the maximum
    ],
)
def test_frame_count_and_samples(packet: bytes, frames: int, samples: int) -> None:
    assert packet_frame_count(packet) == frames
    assert packet_samples(packet) == samples


@pytest.mark.parametrize(
    "packet",
    [b"", bytes([0xFB]), bytes([0xFB, 0x00]), bytes([0xFB, 0x07]), bytes([0x1B, 0x03])],
)
def test_malformed_packets_raise(packet: bytes) -> None:
    with pytest.raises(MalformedPacket):
        packet_samples(packet)


def test_parse_toc_of_empty_packet_raises() -> None:
    with pytest.raises(MalformedPacket):
        parse_toc(b"")


def test_encoder_output_has_the_expected_toc() -> None:
    enc = OpusEncoder(1, 32000)
    packet = enc.encode(tone(440, 1))
    toc = parse_toc(packet)
    assert toc.frame_samples == FRAME_SAMPLES and not toc.stereo and toc.code == 0
    assert packet_samples(packet) == FRAME_SAMPLES
    stereo = OpusEncoder(2, 64000).encode(np.stack([tone(440, 1), tone(660, 1)], axis=1))
    assert parse_toc(stereo).stereo


# -- decode / encode -----------------------------------------------------------------------


def test_round_trip_keeps_the_tone() -> None:
    enc, dec = OpusEncoder(1, 32000), OpusDecoder(1)
    packets = encode_frames(enc, tone(1000, 20))
    out = np.concatenate([dec.decode(p) for p in packets])
    assert out.dtype == np.int16 and out.shape == (20 * FRAME_SAMPLES,)
    assert dominant_freq(out[FRAME_SAMPLES * 5 :]) == pytest.approx(1000, abs=50)
    assert np.abs(out[FRAME_SAMPLES * 5 :]).max() > 3000


def test_decode_returns_a_copy_and_decode_view_a_view() -> None:
    enc, dec = OpusEncoder(1, 32000), OpusDecoder(1)
    a, b = encode_frames(enc, tone(500, 2))
    first = dec.decode(a)
    view = dec.decode_view(b)
    assert not np.shares_memory(first, view)
    assert dec.decode_view(a).base is view.base


def test_stereo_decode_and_mono_downmix() -> None:
    enc = OpusEncoder(2, 64000)
    pcm = np.stack([tone(400, 10), tone(900, 10)], axis=1)
    packets = [enc.encode(pcm[i : i + FRAME_SAMPLES]) for i in range(0, len(pcm), FRAME_SAMPLES)]
    stereo, mono = OpusDecoder(2), OpusDecoder(1)
    s = np.concatenate([stereo.decode(p) for p in packets])
    m = np.concatenate([mono.decode(p) for p in packets])
    assert s.shape == (10 * FRAME_SAMPLES, 2) and m.shape == (10 * FRAME_SAMPLES,)
    assert dominant_freq(s[4800:, 0]) == pytest.approx(400, abs=50)
    assert dominant_freq(s[4800:, 1]) == pytest.approx(900, abs=50)
    spectrum = np.abs(np.fft.rfft(m[4800:].astype(np.float64)))
    bins = {f: spectrum[int(f * m[4800:].size / 48000)] for f in (400, 900)}
    assert min(bins.values()) > 0.3 * max(bins.values())  # both channels are in the downmix


def test_conceal_continues_the_signal() -> None:
    enc, dec = OpusEncoder(1, 32000), OpusDecoder(1)
    for p in encode_frames(enc, tone(300, 10)):
        dec.decode(p)
    plc = dec.conceal()
    assert plc.shape == (FRAME_SAMPLES,)
    assert np.abs(plc).max() > 1000  # PLC extrapolates, it does not output silence
    assert dec.conceal(480).shape == (480,)


def test_fec_recovers_a_lost_frame_better_than_plc() -> None:
    pcm = speechlike(30)
    enc = OpusEncoder(1, 32000, fec=True, packet_loss_perc=20)
    packets = encode_frames(enc, pcm)
    assert packet_has_lbrr(packets[20])
    lost = 20
    with_fec, with_plc = OpusDecoder(1), OpusDecoder(1)
    for p in packets[:lost]:
        with_fec.decode(p)
        with_plc.decode(p)
    fec = with_fec.decode_fec(packets[lost + 1])
    plc = with_plc.conceal()
    reference = OpusDecoder(1)
    for p in packets[:lost]:
        reference.decode(p)
    good = reference.decode(packets[lost]).astype(np.float64)
    err_fec = float(np.mean((fec.astype(np.float64) - good) ** 2))
    err_plc = float(np.mean((plc.astype(np.float64) - good) ** 2))
    assert err_fec < err_plc


def test_has_lbrr_is_false_without_fec_and_for_celt() -> None:
    packets = encode_frames(OpusEncoder(1, 32000), speechlike(5))
    assert not any(packet_has_lbrr(p) for p in packets)
    assert not packet_has_lbrr(bytes([0xF8, 0xFF, 0xFF]))
    assert not packet_has_lbrr(b"\x78")
    assert not packet_has_lbrr(bytes([0x79, 0xFF, 0xFF]))  # code 1: not inspected
    assert not packet_has_lbrr(bytes([0x18, 0xFF]))  # 60 ms SILK: not inspected
    assert packet_has_lbrr(bytes([0x4C, 0x10]))  # stereo WB: side channel LBRR flag


def test_decode_errors_raise_malformed_packet() -> None:
    dec = OpusDecoder(1)
    with pytest.raises(MalformedPacket):
        dec.decode(b"")
    with pytest.raises(MalformedPacket):
        dec.decode_fec(b"")
    with pytest.raises(MalformedPacket):
        dec.decode(bytes([0xFB, 0x00]))  # code 3 with zero frames


def test_copy_state_from_continues_the_bitstream_exactly() -> None:
    pcm = speechlike(40)
    a, b = OpusEncoder(1, 32000), OpusEncoder(1, 32000)
    encode_frames(a, pcm[: 10 * FRAME_SAMPLES])
    b.copy_state_from(a)
    rest = pcm[10 * FRAME_SAMPLES :]
    assert encode_frames(a, rest) == encode_frames(b, rest)
    with pytest.raises(InvalidArgument):
        OpusEncoder(2).copy_state_from(a)


def test_reset_restarts_the_encoder_and_decoder() -> None:
    pcm = tone(700, 6)
    a, b = OpusEncoder(1, 32000), OpusEncoder(1, 32000)
    encode_frames(a, pcm)
    a.reset()
    assert encode_frames(a, pcm) == encode_frames(b, pcm)
    dec = OpusDecoder(1)
    dec.decode(encode_frames(OpusEncoder(), pcm)[0])
    dec.reset()
    assert dec.last_samples == FRAME_SAMPLES


def test_encoder_counts_encodes_and_reports_lookahead() -> None:
    enc = OpusEncoder(1, 32000)
    encode_frames(enc, tone(300, 3))
    assert enc.encodes == 3
    assert enc.lookahead == 312  # 6.5 ms at 48 kHz in VOIP mode
    assert opus_version().startswith("libopus")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"channels": 3},
        {"bitrate": 100},
        {"complexity": 11},
        {"packet_loss_perc": 101},
        {"application": "music"},
        {"max_bandwidth": "xx"},
    ],
)
def test_encoder_rejects_bad_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        OpusEncoder(**kwargs)  # type: ignore[arg-type]


def test_decoder_rejects_bad_channels() -> None:
    with pytest.raises(InvalidArgument):
        OpusDecoder(0)


def test_encoder_accepts_max_bandwidth() -> None:
    packet = OpusEncoder(1, 24000, max_bandwidth="wb").encode(tone(300, 1))
    assert parse_toc(packet).bandwidth in {"nb", "mb", "wb"}


def test_encode_checks_the_pcm() -> None:
    enc = OpusEncoder(1)
    with pytest.raises(InvalidArgument):
        enc.encode(np.zeros(960, np.float32))
    with pytest.raises(InvalidArgument):
        enc.encode(np.zeros(1000, np.int16))
    with pytest.raises(InvalidArgument):
        OpusEncoder(2).encode(np.zeros(961 * 2, np.int16))
    strided = np.zeros(1920, np.int16)[::2]
    assert enc.encode(strided)  # non-contiguous input is copied


def test_estimate_level_ranks_speech_above_silence() -> None:
    enc = OpusEncoder(1, 32000)
    silence = enc.encode(np.zeros(960, np.int16))
    speech = encode_frames(OpusEncoder(1, 32000), speechlike(10))[5]
    assert estimate_level(b"") == 127
    assert estimate_level(b"\xf8") == 127
    assert estimate_level(bytes([0xFB, 0x00])) == 127  # malformed counts as silence
    assert estimate_level(silence) == 127
    assert estimate_level(speech) <= 50
    assert estimate_level(bytes([0xF8]) + bytes(200)) == 20

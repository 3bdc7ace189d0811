from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, strategies as st

from mediacodecs.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, parse_toc
from mediaserver.audio.mixer import MixMinusMixer, MixOutput, owner_of, peek_uplink
from mediaserver.errors import InvalidArgument, MalformedPacket, NotFound
from mediaserver.rtp.extensions import serialize_audio_level
from mediaserver.rtp.packet import RtpPacket

AMPLITUDE = 5000.0
RATE = 48000


class Meeting:
    """Senders that encode tones with our encoder, and clients that decode what they get.

    Each tick: every sender's packet arrives at ``now``, then the mixer ticks at
    ``now + 5 ms``, then every receiver decodes ``frame_for(itself)`` with its own
    decoder, as a browser does with its one audio stream.
    """

    def __init__(self, mixer: MixMinusMixer, ids: list[str]) -> None:
        self.mixer = mixer
        self.ids = ids
        for i in ids:
            if i not in mixer:
                mixer.add_source(i)
        self.encoders = {i: OpusEncoder(1, 32000) for i in ids}
        self.clients = {i: OpusDecoder(1) for i in ids}
        self.heard: dict[str, list[npt.NDArray[np.int16]]] = {i: [] for i in ids}
        self.gain = dict.fromkeys(ids, 0.0)
        self.seq = dict.fromkeys(ids, 0)
        self.tick_no = 0
        self.outputs: list[MixOutput] = []

    def step(
        self,
        talking: dict[str, float],
        *,
        levels: dict[str, int] | None = None,
        drop: Callable[[str], bool] = lambda _: False,
        with_level: bool = True,
    ) -> MixOutput:
        """Advance one tick; ``talking`` maps a sender to its tone frequency."""
        k = self.tick_no
        now = 1.0 + k * 0.020
        n = np.arange(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        for i in self.ids:
            target = 1.0 if i in talking else 0.0
            # Senders ramp their own tone over one frame: the source itself never clicks.
            env = np.linspace(self.gain[i], target, FRAME_SAMPLES, endpoint=False)
            self.gain[i] = target
            freq = talking.get(i, 0.0)
            pcm = (np.sin(2 * np.pi * freq * n / RATE) * AMPLITUDE * env).astype(np.int16)
            payload = self.encoders[i].encode(pcm)
            seq = self.seq[i]
            self.seq[i] = (seq + 1) & 0xFFFF
            if drop(i):
                continue
            level = (levels or {}).get(i, 20 if i in talking else 127)
            self.mixer.receive(
                i, seq, (k * FRAME_SAMPLES) & 0xFFFFFFFF, payload,
                level if with_level else None, now,
            )  # fmt: skip
        out = self.mixer.tick(now + 0.005)
        for i in self.mixer.receivers:
            if i in self.clients:
                self.heard[i].append(self.clients[i].decode(out.frame_for(i)))
        self.tick_no += 1
        self.outputs.append(out)
        return out

    def run(self, ticks: int, talking: dict[str, float], **kwargs: object) -> None:
        for _ in range(ticks):
            self.step(talking, **kwargs)  # type: ignore[arg-type]

    def audio(self, listener: str, last: int) -> npt.NDArray[np.float64]:
        return np.concatenate(self.heard[listener][-last:]).astype(np.float64)


def power(x: npt.NDArray[np.float64], freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    b = round(freq * x.size / RATE)
    return float(np.sum(spectrum[b - 2 : b + 3] ** 2))


TONES = {"a": 400.0, "b": 700.0, "c": 1000.0}


def test_each_speaker_hears_the_others_and_never_itself() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b", "c", "d", "e"])
    meeting.run(40, TONES)
    assert set(meeting.outputs[-1].speakers) == {"a", "b", "c"}
    assert set(meeting.outputs[-1].personal) == {"a", "b", "c"}
    for listener in ("a", "b", "c", "d", "e"):
        x = meeting.audio(listener, 20)
        p = {s: power(x, f) for s, f in TONES.items()}
        others = [p[s] for s in TONES if s != listener]
        assert min(others) > 0.2 * max(others), (listener, p)  # everyone else, balanced
        if listener in TONES:
            assert p[listener] < 1e-3 * min(others), (listener, p)  # never itself


def test_shared_mix_is_encoded_once_per_tick_whatever_the_audience() -> None:
    mixer = MixMinusMixer()
    ids = ["a", "b", "c"] + [f"l{i}" for i in range(20)]
    meeting = Meeting(mixer, ids)
    for _ in range(20):
        before = mixer.shared_encoder.encodes
        out = meeting.step(TONES)
        assert mixer.shared_encoder.encodes == before + 1
        assert out.shared_encoded
        assert len(out.personal) == 3
    assert mixer.stats.shared_encodes == 20
    assert mixer.stats.personal_encodes == 60
    assert mixer.stats.decoded == 60  # three speakers decoded per tick, nobody else
    # Listeners all get the very same bytes.
    out = meeting.outputs[-1]
    assert len({out.frame_for(i) for i in ids[3:]}) == 1


def test_speaker_changes_are_click_free() -> None:
    mixer = MixMinusMixer(max_speakers=2)
    ids = ["a", "b", "c", "d"]
    meeting = Meeting(mixer, ids)
    slow = {"a": 200.0, "b": 250.0, "c": 300.0}
    for k in range(90):
        talking = {s: f for s, f in slow.items()}
        if k >= 40:
            del talking["a"]
        if k < 10:
            del talking["b"]
        if k < 25 or k >= 70:
            del talking["c"]
        meeting.step(talking, levels={"c": 10})  # c is louder: it replaces a speaker
    assert mixer.stats.speaker_changes >= 4
    # The largest tone slope is 2 pi 300 Hz x 5000 / 48 kHz ~ 200 per sample per tone; a
    # source switched in or out without a fade would jump by up to 5000.
    for listener in ids:
        x = np.concatenate(meeting.heard[listener]).astype(np.float64)
        jump = float(np.max(np.abs(np.diff(x))))
        assert jump < 1500, (listener, jump)


def test_a_speaker_swap_fades_the_newcomer_in_once() -> None:
    # One seat: c, louder, takes it from a in one tick (one source enters as one leaves).
    # At 350 Hz the decoded tone (6.5 ms codec delay) is near its peak where the mixer's
    # frames meet, so fading c in a second time would step by about AMPLITUDE (and by
    # about 1,000 after the client's decoder).
    mixer = MixMinusMixer(max_speakers=1)
    meeting = Meeting(mixer, ["a", "c", "d"])
    meeting.run(20, {"a": 210.0})
    meeting.run(30, {"a": 210.0, "c": 350.0}, levels={"a": 20, "c": 10})
    assert [o.speakers for o in meeting.outputs[19:21]] == [("a",), ("a",)]
    assert meeting.outputs[-1].speakers == ("c",)
    for listener in ("a", "d"):
        x = np.concatenate(meeting.heard[listener]).astype(np.float64)
        jump = float(np.max(np.abs(np.diff(x))))
        assert jump < 600, (listener, jump)  # the tones' slopes: 2 pi f x 5000 / 48 kHz


@pytest.mark.parametrize(("fec", "min_delay"), [(False, 20.0), (True, 40.0)])
def test_packet_loss_is_concealed_without_gaps(fec: bool, min_delay: float) -> None:
    mixer = MixMinusMixer(min_delay_ms=min_delay)
    meeting = Meeting(mixer, ["a", "b"])
    meeting.encoders["a"] = OpusEncoder(1, 32000, fec=fec, packet_loss_perc=10 if fec else 0)
    rnd = random.Random(5)
    meeting.run(150, {"a": 500.0}, drop=lambda s: s == "a" and rnd.random() < 0.05)
    losses = mixer.jitter_buffer("a").stats.concealed
    assert losses >= 5
    assert mixer.stats.concealed + mixer.stats.fec_recovered >= losses - 1
    if fec:
        assert mixer.stats.fec_recovered >= 1  # the next packet was buffered: FEC used
    frames = meeting.heard["b"][10:]
    rms = np.array([np.sqrt(np.mean(f.astype(np.float64) ** 2)) for f in frames])
    median = float(np.median(rms))
    # No gap: an unconcealed loss would be a frame of digital silence. Opus PLC of a pure
    # tone fades (to about 10 % at worst here), but the energy stays.
    assert rms.min() > 0.03 * median
    assert rms.mean() > 0.85 * median
    assert rms.max() < 1.6 * median


def test_a_muted_source_leaves_every_mix_within_five_ticks() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b", "c"])
    talking = {"a": 400.0, "b": 700.0}
    meeting.run(20, talking)
    mixer.set_muted("a", True)
    out = meeting.step(talking)
    assert "a" not in out.speakers
    assert all(level.source_id != "a" for level in out.levels)
    meeting.run(4, talking)  # 5 ticks = 100 ms after the mute
    meeting.run(10, talking)
    for listener in ("b", "c"):
        x = meeting.audio(listener, 10)
        assert power(x, 400) < 1e-3 * power(meeting.audio("c", 10), 700), listener
    mixer.set_muted("a", False)
    meeting.run(10, talking)
    assert "a" in meeting.outputs[-1].speakers


def test_content_share_is_mixed_for_everyone_but_its_presenter() -> None:
    assert owner_of("x#content") == "x" and owner_of("x") == "x"
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["x", "x#content", "y"])
    meeting.run(30, {"x#content": 600.0, "y": 900.0})
    out = meeting.outputs[-1]
    assert "x" in out.personal  # x is not speaking, but must not hear its content
    x_hears, y_hears = meeting.audio("x", 15), meeting.audio("y", 15)
    assert power(x_hears, 600) < 1e-3 * power(x_hears, 900)
    assert power(y_hears, 600) > 1e3 * power(y_hears, 900)  # y hears content, not itself
    c_hears = meeting.audio("x#content", 15)
    assert power(c_hears, 600) < 1e-3 * power(c_hears, 900)


def test_capabilities_exclude_senders_and_receivers() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("mute-mic", can_send=False)
    mixer.add_source("deaf", can_receive=False)
    meeting = Meeting(mixer, ["mute-mic", "deaf", "z"])
    assert set(mixer.receivers) == {"mute-mic", "z"}
    meeting.run(20, {"mute-mic": 400.0, "deaf": 700.0})
    out = meeting.outputs[-1]
    assert out.speakers == ("deaf",)
    assert "deaf" not in out.personal  # it receives nothing, so it needs no mix
    z = meeting.audio("z", 10)
    assert power(z, 400) < 1e-3 * power(z, 700)
    assert mixer.stats.unknown_packets == 20
    mixer.set_capabilities("deaf", can_send=False, can_receive=True)
    meeting.run(3, {"deaf": 700.0})
    assert meeting.outputs[-1].speakers == ()
    assert "deaf" in mixer.receivers


def test_silence_is_the_cached_frame_and_costs_no_encode() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b"])
    meeting.run(5, {})
    assert all(o.shared == mixer.silence_frame and not o.shared_encoded for o in meeting.outputs)
    assert mixer.shared_encoder.encodes == 0 and mixer.stats.silence_ticks == 5
    meeting.run(20, {"a": 500.0})
    assert meeting.outputs[-1].shared_encoded
    meeting.run(20, {})
    assert meeting.outputs[-1].shared == mixer.silence_frame
    assert meeting.outputs[-1].personal == {}


def test_a_former_speaker_returns_to_the_shared_stream_after_the_hold() -> None:
    mixer = MixMinusMixer(personal_hold_ticks=10)
    meeting = Meeting(mixer, ["a", "b", "c"])
    meeting.run(20, {"a": 400.0, "b": 700.0})
    meeting.run(60, {"b": 700.0})
    personal_ticks = [k for k, o in enumerate(meeting.outputs) if "a" in o.personal]
    last = personal_ticks[-1]
    # a leaves the speaker set after the release and hold (~20 ticks), then 10 held ticks.
    assert 30 <= last <= 60
    assert all("a" not in o.personal for o in meeting.outputs[last + 1 :])
    assert mixer.stats.forks == 2
    x = meeting.audio("a", 10)
    assert power(x, 700) > 1e3 * power(x, 400)


def test_levels_report_audible_sources() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b", "c"])
    meeting.run(10, {"a": 400.0, "b": 700.0}, levels={"a": 20, "b": 30})
    levels = {lv.source_id: lv for lv in meeting.outputs[-1].levels}
    assert set(levels) == {"a", "b"}
    assert levels["a"].volume == 20 and levels["b"].volume == 30
    assert levels["a"].signal_strength == 2
    assert mixer.signal_strength("c", 1.5) == 2
    assert mixer.audio_levels(1.5) == meeting.outputs[-1].levels


def test_packet_size_ranks_senders_without_the_extension() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b", "c", "d"])
    meeting.run(10, {"b": 700.0}, with_level=False)
    assert meeting.outputs[-1].speakers == ("b",)


def test_removing_a_speaker_fades_it_out() -> None:
    mixer = MixMinusMixer()
    meeting = Meeting(mixer, ["a", "b"])
    meeting.run(10, {"a": 400.0})
    mixer.remove_source("a")
    assert "a" not in mixer.receivers and "a" not in mixer
    meeting.ids.remove("a")
    out = meeting.step({})
    assert out.speakers == ()
    jump = np.max(np.abs(np.diff(np.concatenate(meeting.heard["b"]).astype(np.float64))))
    assert jump < 1500
    mixer.receive("a", 1, 1, b"\xf8\x00", 20, 2.0)
    assert mixer.stats.unknown_packets == 1
    mixer.add_source("a")  # the slot is reused
    assert len(mixer) == 2


def test_timer_runs_due_ticks_and_caps_catch_up() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("a")
    assert mixer.get_timer() is None
    assert mixer.handle_timer(5.0) == []
    mixer.tick(1.0)
    assert mixer.get_timer() == pytest.approx(1.02)
    assert mixer.handle_timer(1.01) == []
    assert len(mixer.handle_timer(1.021)) == 1
    assert len(mixer.handle_timer(1.101)) == 4
    assert len(mixer.handle_timer(9.0)) == 5
    timer = mixer.get_timer()
    assert timer is not None and 9.0 < timer <= 9.021


def test_membership_errors() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("a")
    with pytest.raises(InvalidArgument):
        mixer.add_source("a")
    for call in (
        lambda: mixer.remove_source("zz"),
        lambda: mixer.set_muted("zz", True),
        lambda: mixer.set_capabilities("zz", True, True),
        lambda: mixer.signal_strength("zz", 0.0),
        lambda: mixer.jitter_buffer("zz"),
    ):
        with pytest.raises(NotFound):
            call()
    assert mixer.jitter_buffer("a").depth == 0
    with pytest.raises(InvalidArgument):
        MixMinusMixer(limit=0.0)
    with pytest.raises(InvalidArgument):
        MixMinusMixer(personal_hold_ticks=-1)


def test_loud_sum_is_limited_not_wrapped() -> None:
    mixer = MixMinusMixer(max_speakers=3)
    meeting = Meeting(mixer, ["a", "b", "c", "d"])
    global AMPLITUDE
    saved, AMPLITUDE = AMPLITUDE, 20000.0
    try:
        meeting.run(30, {"a": 400.0, "b": 400.0, "c": 400.0})
    finally:
        AMPLITUDE = saved
    assert mixer.stats.limited > 0
    x = meeting.audio("d", 10)
    assert np.abs(x).max() <= 32767
    assert np.mean(np.abs(x) > 32000) < 0.01  # not a clipped square wave


def _stereo_room(
    mixer: MixMinusMixer, ticks: int, listeners: dict[str, int]
) -> dict[str, list[npt.NDArray[np.int16]]]:
    """``s`` sends stereo (400 Hz left, 700 Hz right), ``m`` mono 1000 Hz; every id in
    ``listeners`` decodes its frames with that many channels (``s`` and ``m`` included)."""
    encoders = {"s": OpusEncoder(2, 64000), "m": OpusEncoder(1, 32000)}
    decoders = {i: OpusDecoder(c) for i, c in listeners.items()}
    heard: dict[str, list[npt.NDArray[np.int16]]] = {i: [] for i in listeners}
    for k in range(ticks):
        n = np.arange(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
        ramp = min(1.0, k / 5)
        left, right, mid = (
            (np.sin(2 * np.pi * f * n / RATE) * AMPLITUDE * ramp).astype(np.int16)
            for f in (400.0, 700.0, 1000.0)
        )
        now = 1.0 + k * 0.020
        packets = {
            "s": encoders["s"].encode(np.stack([left, right], axis=1)),
            "m": encoders["m"].encode(mid),
        }
        for i, payload in packets.items():
            mixer.receive(i, k, k * FRAME_SAMPLES, payload, 20, now)
        out = mixer.tick(now + 0.005)
        for i, decoder in decoders.items():
            heard[i].append(decoder.decode(out.frame_for(i)))
    return heard


def test_a_stereo_listener_hears_stereo_sources_in_stereo_and_mono_ones_centred() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("s", stereo=True)
    mixer.add_source("m")
    mixer.add_source("x", stereo=True)
    mixer.add_source("y")
    heard = _stereo_room(mixer, 40, {"x": 2, "y": 1, "s": 2, "m": 1})
    x = np.concatenate(heard["x"][-20:]).astype(np.float64)
    left, right = x[:, 0], x[:, 1]
    # The stereo source keeps its channels (400 Hz left, 700 Hz right) ...
    assert power(left, 400.0) > 100 * power(right, 400.0)
    assert power(right, 700.0) > 100 * power(left, 700.0)
    # ... and the mono source is in the centre.
    assert 0.5 < power(left, 1000.0) / power(right, 1000.0) < 2.0
    assert power(left, 1000.0) > 0.1 * power(left, 400.0)
    # A mono listener hears all three tones.
    y = np.concatenate(heard["y"][-20:]).astype(np.float64)
    p = [power(y, f) for f in (400.0, 700.0, 1000.0)]
    assert min(p) > 0.1 * max(p), p
    # The stereo speaker gets its mix-minus in stereo: the mono tone, never itself.
    s = np.concatenate(heard["s"][-20:]).astype(np.float64)
    for channel in (s[:, 0], s[:, 1]):
        assert power(channel, 1000.0) > 1e3 * max(power(channel, 400.0), power(channel, 700.0))
    # The mono speaker hears the stereo source downmixed, never itself.
    m = np.concatenate(heard["m"][-20:]).astype(np.float64)
    assert min(power(m, 400.0), power(m, 700.0)) > 1e3 * power(m, 1000.0)


def test_each_layout_is_encoded_once_per_tick() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("s", stereo=True)
    mixer.add_source("m")
    for i in range(10):
        mixer.add_source(f"x{i}", stereo=True)
        mixer.add_source(f"y{i}")
    _stereo_room(mixer, 10, {})
    stereo = mixer.stereo_shared_encoder
    assert stereo is not None and stereo.channels == 2
    for _ in range(10):
        mono_before, stereo_before = mixer.shared_encoder.encodes, stereo.encodes
        personal_before = mixer.stats.personal_encodes
        out = mixer.tick(2.0)
        assert mixer.shared_encoder.encodes == mono_before + 1
        assert stereo.encodes == stereo_before + 1
        assert mixer.stats.personal_encodes == personal_before + 2  # the two speakers
        assert len({out.frame_for(f"x{i}") for i in range(10)}) == 1
        assert len({out.frame_for(f"y{i}") for i in range(10)}) == 1
        assert out.frame_for("x0") == out.shared_stereo != out.shared == out.frame_for("y0")
    assert parse_toc(out.frame_for("x0")).stereo and not parse_toc(out.frame_for("y0")).stereo
    assert parse_toc(out.frame_for("s")).stereo and not parse_toc(out.frame_for("m")).stereo


def test_without_stereo_listeners_nothing_is_encoded_in_stereo() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("s")
    mixer.add_source("m")
    mixer.add_source("x", stereo=True)
    heard = _stereo_room(mixer, 10, {"x": 2})
    assert parse_toc(mixer.tick(2.0).frame_for("x")).stereo
    mixer.set_stereo("x", False)
    out = mixer.tick(2.02)
    assert out.shared_stereo is None and not out.stereo_receivers
    assert not parse_toc(out.frame_for("x")).stereo
    assert len(heard["x"]) == 10
    with pytest.raises(NotFound):
        mixer.set_stereo("nobody", True)


@given(
    seq=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=3),
    level=st.none() | st.integers(0, 127),
    level_id=st.integers(1, 14),
    others=st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=3),
    level_first=st.booleans(),
    two_byte=st.booleans(),
    payload=st.binary(max_size=64),
)
def test_peek_uplink_reads_what_the_packet_parser_reads(
    seq: int, timestamp: int, ssrc: int, csrcs: list[int], level: int | None, level_id: int,
    others: dict[int, bytes], level_first: bool, two_byte: bool, payload: bytes,
) -> None:  # fmt: skip
    others.pop(level_id, None)
    extensions = dict(others)
    if level is not None:
        element = serialize_audio_level(True, level)
        extensions = {level_id: element, **others} if level_first else {**others, level_id: element}
    packet = RtpPacket(
        payload_type=111, sequence_number=seq, timestamp=timestamp, ssrc=ssrc,
        csrcs=tuple(csrcs), extensions=extensions, payload=payload,
        extension_profile=(0x1000 if two_byte else None) if extensions else None,
    ).serialize()  # fmt: skip
    got = peek_uplink(packet, level_id)
    parsed = RtpPacket.parse(packet)
    assert got[:3] == (seq, timestamp, ssrc)
    assert got[3] == level
    assert packet[got[4] :] == parsed.payload


@given(st.binary(max_size=80), st.none() | st.integers(1, 14))
def test_peek_uplink_raises_only_malformed_packet(data: bytes, level_id: int | None) -> None:
    with contextlib.suppress(MalformedPacket):
        peek_uplink(data, level_id)


def test_receive_rtp_feeds_the_jitter_buffer_and_the_levels() -> None:
    mixer = MixMinusMixer()
    mixer.add_source("a")
    payload = OpusEncoder(1, 32000).encode(np.zeros(FRAME_SAMPLES, np.int16))
    packet = RtpPacket(
        payload_type=111, sequence_number=7, timestamp=960, ssrc=5,
        extensions={1: serialize_audio_level(True, 12)}, payload=payload,
    ).serialize()  # fmt: skip
    mixer.receive_rtp("a", packet, 1, 1.0)
    mixer.receive_rtp("nobody", packet, 1, 1.0)
    mixer.receive_rtp("a", RtpPacket(payload_type=111, ssrc=5).serialize(), 1, 1.0)  # empty
    assert mixer.stats.packets == 1 and mixer.stats.unknown_packets == 2
    assert mixer.jitter_buffer("a").stats.received == 1
    with pytest.raises(MalformedPacket):
        mixer.receive_rtp("a", packet[:14], 1, 1.0)

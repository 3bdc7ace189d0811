"""``python -m bench mixer``: CPU per 20 ms tick of the mix-minus mixer against a naive one.

Both mixers run in this process, in the same run, on the same uplink packets, for each
meeting size (10, 100, 250 and 1,000 attendees by default, 3 of them speaking). One tick
of work per mixer is:

* **receive**: for every attendee's uplink packet, SRTP unprotect (one ``SrtpContext``
  per attendee, AEAD_AES_128_GCM), header and RFC 6464 audio-level read, ``receive()``;
* **tick**: ``MixMinusMixer.tick`` (top-N from levels, decode N, one shared encode plus one
  per speaker), or the naive mixer's tick (decode everyone, sum, one personal encode per
  attendee, the design of Janus AudioBridge and FreeSWITCH);
* **egress**: for every receiving attendee, RTP header (``AudioSender``) and SRTP protect.

Non-speakers send 32 kbit/s Opus frames of low noise with an audio level of 70 (-70 dBov);
speakers send tones with level 20. CPU time is ``time.process_time`` per tick; each cell
is the median over ``--runs`` runs of the mean over ``--ticks`` ticks (fewer ticks for
the naive mixer at large sizes, where one tick takes longer than the budget anyway).

Server-added latency of the mixer path is measured at the minimum jitter buffer (20 ms):
a packet arriving between two ticks is mixed at the next tick, so it waits 0-20 ms (10 ms
on average), plus the tick's own processing time, plus the Opus encoder's lookahead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bench.stats import format_table, median
from mediacodecs.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, opus_version
from mediaserver.audio.egress import AudioSender
from mediaserver.audio.jitter import LOST, JitterBuffer
from mediaserver.audio.mixer import TICK_SECONDS, MixMinusMixer
from mediaserver.rtp.extensions import parse_audio_level, serialize_audio_level
from mediaserver.rtp.packet import RtpPacket, peek_extension, peek_header, peek_payload_offset
from mediaserver.transport.srtp import SRTP_AEAD_AES_128_GCM, SrtpContext, SrtpKeys

__all__ = ["add_arguments", "run"]

PAYLOAD_TYPE = 111
AUDIO_LEVEL_ID = 1
SPEAKER_LEVEL = 20
NOISE_LEVEL = 70


class Mixer(Protocol):
    def receive(
        self, source_id: str, seq: int, timestamp: int, payload: bytes,
        audio_level: int | None, now: float,
    ) -> None: ...  # fmt: skip

    def tick_frames(self, now: float) -> tuple[bytes, dict[str, bytes]]: ...


class FastMixer:
    """Adapter: the mix-minus mixer behind the benchmark's two-call interface."""

    def __init__(self, ids: list[str], complexity: int, speakers: int) -> None:
        self.mixer = MixMinusMixer(speakers, complexity=complexity)
        for i in ids:
            self.mixer.add_source(i)
        self.receive = self.mixer.receive

    def tick_frames(self, now: float) -> tuple[bytes, dict[str, bytes]]:
        out = self.mixer.tick(now)
        return out.shared, dict(out.personal)


class NaiveMixer:
    """Decode every attendee, sum, and encode one mix-minus per attendee."""

    def __init__(self, ids: list[str], complexity: int) -> None:
        self.ids = ids
        self.index = {i: k for k, i in enumerate(ids)}
        self.jitter = [JitterBuffer() for _ in ids]
        self.decoders = [OpusDecoder(1) for _ in ids]
        self.encoders = [OpusEncoder(1, 32000, complexity=complexity) for _ in ids]
        self.rows: npt.NDArray[np.float32] = np.zeros((len(ids), FRAME_SAMPLES), np.float32)
        self.total: npt.NDArray[np.float32] = np.zeros(FRAME_SAMPLES, np.float32)
        self.work: npt.NDArray[np.float32] = np.zeros(FRAME_SAMPLES, np.float32)
        self.pcm: npt.NDArray[np.int16] = np.zeros(FRAME_SAMPLES, np.int16)
        self.addr: int = self.pcm.ctypes.data

    def receive(
        self, source_id: str, seq: int, timestamp: int, payload: bytes,
        audio_level: int | None, now: float,
    ) -> None:  # fmt: skip
        self.jitter[self.index[source_id]].push(seq, timestamp, payload, now)

    def tick_frames(self, now: float) -> tuple[bytes, dict[str, bytes]]:
        rows = self.rows
        for k, (jb, dec) in enumerate(zip(self.jitter, self.decoders, strict=True)):
            item = jb.pop(now)
            if item is None:
                rows[k].fill(0.0)
            elif item is LOST:
                np.copyto(rows[k], dec.conceal_view(FRAME_SAMPLES))
            else:
                np.copyto(rows[k], dec.decode_view(item)[:FRAME_SAMPLES])
        np.sum(rows, axis=0, out=self.total)
        frames: dict[str, bytes] = {}
        for k, i in enumerate(self.ids):
            np.subtract(self.total, rows[k], out=self.work)
            np.clip(self.work, -32768.0, 32767.0, out=self.work)
            np.copyto(self.pcm, self.work, casting="unsafe")
            frames[i] = self.encoders[k].encode_address(self.addr)
        return b"", frames


@dataclass
class Uplink:
    """Pre-protected uplink packets of one meeting, one list per tick."""

    ids: list[str]
    ticks: list[list[tuple[str, bytes]]]
    keys: dict[str, SrtpKeys]

    def server_contexts(self) -> dict[str, SrtpContext]:
        """Fresh server-side contexts (each run replays the same packets)."""
        return {i: SrtpContext(k, "server") for i, k in self.keys.items()}


def _frames(kind: str, count: int, seed: int) -> list[bytes]:
    enc = OpusEncoder(1, 32000)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        if kind == "tone":
            n = np.arange(k * FRAME_SAMPLES, (k + 1) * FRAME_SAMPLES)
            pcm = np.sin(2 * np.pi * (300 + 200 * seed) * n / 48000) * 6000
        else:
            pcm = rng.normal(0, 30, FRAME_SAMPLES)
        out.append(enc.encode(pcm.astype(np.int16)))
    return out


def _uplink(size: int, speakers: int, ticks: int) -> Uplink:
    ids = [f"attendee-{k:04d}" for k in range(size)]
    noise = _frames("noise", 50, 99)
    tones = [_frames("tone", ticks, s) for s in range(speakers)]
    all_keys: dict[str, SrtpKeys] = {}
    per_tick: list[list[tuple[str, bytes]]] = [[] for _ in range(ticks)]
    for k, i in enumerate(ids):
        keys = SrtpKeys.from_keying_material(SRTP_AEAD_AES_128_GCM, os.urandom(56))
        client = SrtpContext(keys, "client")
        all_keys[i] = keys
        ssrc = 0x10000 + k
        for t in range(ticks):
            speaking = k < speakers
            payload = tones[k][t] if speaking else noise[(t + k) % len(noise)]
            level = SPEAKER_LEVEL if speaking else NOISE_LEVEL
            packet = RtpPacket(
                payload_type=PAYLOAD_TYPE, sequence_number=(k * 7 + t) & 0xFFFF,
                timestamp=(t * FRAME_SAMPLES) & 0xFFFFFFFF, ssrc=ssrc,
                extensions={AUDIO_LEVEL_ID: serialize_audio_level(speaking, level)},
                payload=payload,
            )  # fmt: skip
            per_tick[t].append((i, client.protect_rtp(packet.serialize())))
    return Uplink(ids, per_tick, all_keys)


@dataclass
class TickCost:
    receive_us: float
    tick_us: float
    egress_us: float

    @property
    def total_us(self) -> float:
        return self.receive_us + self.tick_us + self.egress_us


def _drive(mixer: Mixer, up: Uplink, ticks: int, warmup: int) -> TickCost:
    senders = {i: AudioSender(PAYLOAD_TYPE, 0x20000 + k) for k, i in enumerate(up.ids)}
    out_ctx = up.server_contexts()
    clock = time.process_time
    spent = [0.0, 0.0, 0.0]
    now = 100.0
    for t in range(warmup + ticks):
        packets = up.ticks[t]
        a = clock()
        for source_id, data in packets:
            plain = out_ctx[source_id].unprotect_rtp(data)
            _, _, seq, ts, _ = peek_header(plain)
            element = peek_extension(plain, AUDIO_LEVEL_ID)
            level = parse_audio_level(element)[1] if element is not None else None
            mixer.receive(source_id, seq, ts, plain[peek_payload_offset(plain) :], level, now)
        b = clock()
        shared, personal = mixer.tick_frames(now + 0.005)
        c = clock()
        for source_id in up.ids:
            payload = personal.get(source_id, shared)
            out_ctx[source_id].protect_rtp(senders[source_id].packet(payload))
        d = clock()
        if t >= warmup:
            spent[0] += b - a
            spent[1] += c - b
            spent[2] += d - c
        now += TICK_SECONDS
    return TickCost(*(s / ticks * 1e6 for s in spent))


def _latency(complexity: int) -> dict[str, float]:
    """Ticks between a packet's arrival and the tick that mixes it, at the minimum delay."""
    mixer = MixMinusMixer(complexity=complexity)
    mixer.add_source("speaker")
    mixer.add_source("listener")
    frames = _frames("tone", 60, 0)
    waited: list[int] = []
    now = 10.0
    for t, payload in enumerate(frames):
        arrival = now + 0.013  # 13 ms after a tick, 7 ms before the next
        mixer.receive("speaker", t, t * FRAME_SAMPLES, payload, SPEAKER_LEVEL, arrival)
        played_before = mixer.jitter_buffer("speaker").stats.played
        ticks = 0
        while True:
            now += TICK_SECONDS
            ticks += 1
            mixer.tick(now)
            if mixer.jitter_buffer("speaker").stats.played > played_before or ticks > 20:
                break
        if t >= 10:
            waited.append(ticks)
    lookahead_ms = OpusEncoder(1, 32000).lookahead / 48.0
    return {
        "ticks_waited_median": median([float(w) for w in waited]),
        "queue_ms_max": median([float(w) for w in waited]) * TICK_SECONDS * 1000,
        "queue_ms_mean": median([float(w) for w in waited]) * TICK_SECONDS * 1000 / 2,
        "encoder_lookahead_ms": lookahead_ms,
        "jitter_target_ms": mixer.jitter_buffer("speaker").target_delay_ms,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5, help="independent runs (default 5)")
    parser.add_argument("--ticks", type=int, default=25, help="measured ticks per run")
    parser.add_argument(
        "--naive-ticks", type=int, default=5, help="measured ticks per run, naive mixer"
    )
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured ticks first")
    parser.add_argument("--sizes", default="10,100,250,1000", help="attendees per meeting")
    parser.add_argument("--speakers", type=int, default=3)
    parser.add_argument("--complexity", type=int, default=5, help="Opus encoder complexity")
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in str(args.sizes).split(",")]
    results: dict[int, dict[str, Any]] = {}
    for size in sizes:
        total_ticks = args.warmup + max(args.ticks, args.naive_ticks)
        up = _uplink(size, args.speakers, total_ticks)
        fast: list[TickCost] = []
        naive: list[TickCost] = []
        for _ in range(args.runs):
            fast.append(
                _drive(FastMixer(up.ids, args.complexity, args.speakers), up, args.ticks,
                       args.warmup)
            )  # fmt: skip
            naive.append(
                _drive(NaiveMixer(up.ids, args.complexity), up, args.naive_ticks, args.warmup)
            )
        results[size] = {
            "mixminus": {k: median([getattr(c, k) for c in fast])
                         for k in ("receive_us", "tick_us", "egress_us", "total_us")},
            "naive": {k: median([getattr(c, k) for c in naive])
                      for k in ("receive_us", "tick_us", "egress_us", "total_us")},
        }  # fmt: skip
    latency = _latency(args.complexity)
    rows = []
    for size, r in results.items():
        m, n = r["mixminus"], r["naive"]
        rows.append([
            size, m["receive_us"] / 1000, m["tick_us"] / 1000, m["egress_us"] / 1000,
            m["total_us"] / 1000, 100 * m["total_us"] / 20000, n["total_us"] / 1000,
            100 * n["total_us"] / 20000, n["total_us"] / m["total_us"],
        ])  # fmt: skip
    command = (
        f"python -m bench mixer --runs {args.runs} --ticks {args.ticks} "
        f"--naive-ticks {args.naive_ticks} --sizes {args.sizes} --speakers {args.speakers} "
        f"--complexity {args.complexity}"
    )
    summary: dict[str, Any] = {
        "command": command,
        "libopus": opus_version(),
        "results": {str(k): v for k, v in results.items()},
        "latency": latency,
    }
    if 250 in results:
        summary["ratio_naive_over_mixminus_at_250"] = (
            results[250]["naive"]["total_us"] / results[250]["mixminus"]["total_us"]
        )
    print(f"\n{command}  (median of {args.runs} runs, {opus_version()})\n")
    print(format_table(
        ["attendees", "recv ms", "tick ms", "egress ms", "mix-minus ms/tick", "% core",
         "naive ms/tick", "naive % core", "naive / mix-minus"], rows))  # fmt: skip
    tick_ms = results[sizes[-1]]["mixminus"]["tick_us"] / 1000
    print(
        f"\nlatency at the minimum jitter buffer ({latency['jitter_target_ms']:.0f} ms): "
        f"a packet waits {latency['ticks_waited_median']:.0f} tick (0-20 ms, "
        f"{latency['queue_ms_mean']:.0f} ms on average) + tick processing "
        f"({tick_ms:.2f} ms at {sizes[-1]}) + Opus lookahead "
        f"{latency['encoder_lookahead_ms']:.1f} ms"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary

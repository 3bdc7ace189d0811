"""``python -m bench mixer``: CPU per 20 ms tick of the mix-minus mixer against a naive one.

Both mixers run in this process, in the same run, on the same uplink packets, for each
meeting size (10, 100, 250 and 1,000 attendees by default, 3 of them speaking). One tick
of work per mixer is:

* **receive**: for every attendee's uplink packet, SRTP unprotect (one ``SrtpContext``
  per attendee, AEAD_AES_128_GCM) and ``receive_rtp()`` (header and RFC 6464 level read
  on the bytes, jitter buffer), the server's per-packet path;
* **tick**: ``MixMinusMixer.tick`` (top-N from levels, decode N, one shared encode plus one
  per speaker), or the naive mixer's tick (decode everyone, sum, one personal encode per
  attendee, the design of Janus AudioBridge and FreeSWITCH);
* **egress**: for every receiving attendee, :func:`~mediaserver.audio.egress.send_mix`,
  the audio clock's own loop: RTP header (``AudioSender``) and SRTP protect (the socket
  send is a no-op here).

Non-speakers send 32 kbit/s Opus frames of low noise with an audio level of 70 (-70 dBov);
speakers send tones with level 20. CPU time is ``time.process_time`` per tick; each cell
is the median over ``--runs`` runs of the mean over ``--ticks`` ticks (fewer ticks for
the naive mixer at large sizes, where one tick takes longer than the budget anyway).

**Server-added latency** (``--latency-sizes``) is measured in real time: every attendee's
packets arrive at a steady phase of the 20 ms grid (drawn at random per attendee, the
speakers' spread evenly from a random start; steady, so the jitter buffers stay at their
20 ms minimum), are unprotected and received as they arrive,
and the tick runs on the grid and sends every listener its packet through a real UDP
socket on loopback. A latency sample is, for one speaker's packet and one listener, the
time from the packet's arrival to the ``sendto`` of the listener's packet carrying the
tick that mixed it (known from the jitter buffer's played count), so it includes the wait
for the tick, the mix and every listener served before. The Opus encoder's look-ahead
(6.5 ms of algorithmic delay inside the mixed audio) comes on top and is reported apart.

**RSS** (``--rss-size``): the process RSS growth from building one meeting of that many
attendees (a mixer source each, uplink and downlink SRTP contexts, an ``AudioSender``)
and running it for a second, and the process total.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bench.stats import format_table, median, percentile
from mediacodecs.opus import FRAME_SAMPLES, OpusDecoder, OpusEncoder, opus_version
from mediaserver.audio.egress import AudioSender, send_mix
from mediaserver.audio.jitter import LOST, JitterBuffer
from mediaserver.audio.mixer import TICK_SECONDS, MixMinusMixer, MixOutput, peek_uplink
from mediaserver.rtp.extensions import serialize_audio_level
from mediaserver.rtp.packet import RtpPacket
from mediaserver.transport.peer import PeerStats
from mediaserver.transport.srtp import SRTP_AEAD_AES_128_GCM, SrtpContext, SrtpKeys
from mediaserver.transport.stun import Address

__all__ = ["add_arguments", "run"]

PAYLOAD_TYPE = 111
AUDIO_LEVEL_ID = 1
SPEAKER_LEVEL = 20
NOISE_LEVEL = 70


class Mixer(Protocol):
    def receive_rtp(
        self, source_id: str, packet: bytes, audio_level_id: int | None, now: float
    ) -> None: ...

    def tick(self, now: float) -> MixOutput: ...


def mix_minus(ids: list[str], complexity: int, speakers: int) -> MixMinusMixer:
    """The mix-minus mixer with one source per id."""
    mixer = MixMinusMixer(speakers, complexity=complexity)
    for i in ids:
        mixer.add_source(i)
    return mixer


@dataclass(slots=True, eq=False)
class _Peer:
    srtp: SrtpContext | None
    address: Address | None
    stats: PeerStats = field(default_factory=PeerStats)


@dataclass(slots=True, eq=False)
class _Listener:
    """What the media engine's downlink gives :func:`send_mix`."""

    source_id: str
    audio: AudioSender
    peer: _Peer


def _listeners(up: Uplink, contexts: dict[str, SrtpContext]) -> list[_Listener]:
    return [
        _Listener(i, AudioSender(PAYLOAD_TYPE, 0x20000 + k), _Peer(contexts[i], ("127.0.0.1", 9)))
        for k, i in enumerate(up.ids)
    ]


def _no_send(data: bytes, address: Address) -> None:
    pass


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

    def receive_rtp(
        self, source_id: str, packet: bytes, audio_level_id: int | None, now: float
    ) -> None:
        seq, timestamp, ssrc, _, offset = peek_uplink(packet, audio_level_id)
        self.jitter[self.index[source_id]].push(seq, timestamp, packet[offset:], now, ssrc)

    def tick(self, now: float) -> MixOutput:
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
        return MixOutput(b"", frames, (), (), True)


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
    contexts = up.server_contexts()
    listeners = _listeners(up, contexts)
    receive = mixer.receive_rtp
    clock = time.process_time
    spent = [0.0, 0.0, 0.0]
    now = 100.0
    for t in range(warmup + ticks):
        packets = up.ticks[t]
        a = clock()
        for source_id, data in packets:
            receive(source_id, contexts[source_id].unprotect_rtp(data), AUDIO_LEVEL_ID, now)
        b = clock()
        out = mixer.tick(now + 0.005)
        c = clock()
        send_mix(out, listeners, _no_send)
        d = clock()
        if t >= warmup:
            spent[0] += b - a
            spent[1] += c - b
            spent[2] += d - c
        now += TICK_SECONDS
    return TickCost(*(s / ticks * 1e6 for s in spent))


def _wait_until(deadline: float) -> None:
    """Sleep most of the way, then spin: packets are due tens of microseconds apart."""
    remaining = deadline - time.perf_counter()
    if remaining > 0.002:
        time.sleep(remaining - 0.001)
    while time.perf_counter() < deadline:
        pass


def _added_latency(
    size: int, speakers: int, complexity: int, ticks: int, warmup: int, seed: int
) -> list[float]:
    """Packet in → mixed packet out, in ms, for every (speaker packet, listener) pair."""
    up = _uplink(size, speakers, warmup + ticks)
    mixer = mix_minus(up.ids, complexity, speakers)
    contexts = up.server_contexts()
    listeners = _listeners(up, contexts)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.setblocking(False)
    sink_address: Address = sink.getsockname()
    for listener in listeners:
        listener.peer.address = sink_address
    sent_at = np.zeros(size)
    position = [0]
    dropped = [0]

    def sendto(data: bytes, address: Address) -> None:
        try:
            out.sendto(data, address)
        except BlockingIOError:
            dropped[0] += 1  # the sink is never read: a full buffer drops, as UDP does
        sent_at[position[0]] = time.perf_counter()
        position[0] += 1

    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, TICK_SECONDS, size)
    # The speakers' phases are spread evenly from a random start, so that few runs cover
    # the whole 20 ms (the samples of one speaker differ only by the listener served).
    start_phase = rng.uniform()
    for k in range(speakers):
        phase[k] = (start_phase + k / speakers) % 1.0 * TICK_SECONDS
    order = [int(k) for k in np.argsort(phase)]
    buffers = [mixer.jitter_buffer(up.ids[k]) for k in range(speakers)]
    arrivals: list[list[float]] = [[] for _ in range(speakers)]
    samples: list[float] = []
    start = time.perf_counter() + 0.05
    for t in range(warmup + ticks):
        base = start + t * TICK_SECONDS
        packets = up.ticks[t]
        for k in order:
            _wait_until(base + phase[k])
            source_id, data = packets[k]
            now = time.perf_counter()
            mixer.receive_rtp(
                source_id, contexts[source_id].unprotect_rtp(data), AUDIO_LEVEL_ID, now
            )
            if k < speakers:
                arrivals[k].append(now)
        _wait_until(base + TICK_SECONDS)
        before = [b.stats.played for b in buffers]
        result = mixer.tick(time.perf_counter())
        position[0] = 0
        send_mix(result, listeners, sendto)
        if t < warmup:
            continue
        for k, buffer in enumerate(buffers):
            if buffer.stats.played == before[k]:
                continue
            # Packets are consumed in arrival order: played ones, and dropped ones when
            # the source entered the mix.
            consumed = buffer.stats.played + buffer.stats.dropped
            arrival = arrivals[k][consumed - 1]
            delays = np.delete(sent_at, k) - arrival  # a speaker does not hear itself
            samples.extend((delays * 1000.0).tolist())
    sink.close()
    out.close()
    return samples


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_child(size: int, speakers: int, complexity: int) -> dict[str, float]:
    up = _uplink(size, speakers, 55)
    gc.collect()
    before = _rss_bytes()
    mixer = mix_minus(up.ids, complexity, speakers)
    _drive(mixer, up, 50, 5)
    gc.collect()
    after = _rss_bytes()
    return {"attendees": size, "growth_mb": (after - before) / 1e6, "process_mb": after / 1e6}


def _rss(size: int, speakers: int, complexity: int) -> dict[str, float]:
    """Process RSS growth from one meeting of ``size`` attendees run for 50 ticks, in a
    fresh process (memory freed by earlier runs would otherwise be reused unseen)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, float] = pool.apply(_rss_child, (size, speakers, complexity))
    return result


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
    parser.add_argument(
        "--latency-sizes",
        default=None,
        help="meeting sizes for the real-time latency run (default: the largest of --sizes)",
    )
    parser.add_argument("--latency-ticks", type=int, default=100, help="ticks per latency run")
    parser.add_argument(
        "--rss-size", type=int, default=None, help="attendees for the RSS run (default: largest)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write results as JSON here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in str(args.sizes).split(",")]
    if args.latency_sizes is None:
        args.latency_sizes = str(max(sizes))
    if args.rss_size is None:
        args.rss_size = max(sizes)
    results: dict[int, dict[str, Any]] = {}
    for size in sizes:
        total_ticks = args.warmup + max(args.ticks, args.naive_ticks)
        up = _uplink(size, args.speakers, total_ticks)
        fast: list[TickCost] = []
        naive: list[TickCost] = []
        for _ in range(args.runs):
            fast.append(
                _drive(mix_minus(up.ids, args.complexity, args.speakers), up, args.ticks,
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
    latency: dict[str, dict[str, float]] = {}
    for size in [int(s) for s in str(args.latency_sizes).split(",") if s]:
        runs = [
            _added_latency(size, args.speakers, args.complexity, args.latency_ticks, 10, seed)
            for seed in range(args.runs)
        ]
        latency[str(size)] = {
            "p50_ms": median([percentile(r, 50) for r in runs]),
            "p99_ms": median([percentile(r, 99) for r in runs]),
            "max_ms": median([max(r) for r in runs]),
            "samples_per_run": median([float(len(r)) for r in runs]),
        }
    lookahead_ms = OpusEncoder(1, 32000).lookahead / 48.0
    rss = _rss(args.rss_size, args.speakers, args.complexity)
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
        f"--complexity {args.complexity} --latency-sizes {args.latency_sizes} "
        f"--latency-ticks {args.latency_ticks} --rss-size {args.rss_size}"
    )
    summary: dict[str, Any] = {
        "command": command,
        "libopus": opus_version(),
        "results": {str(k): v for k, v in results.items()},
        "latency": latency,
        "encoder_lookahead_ms": lookahead_ms,
        "rss": rss,
    }
    if 250 in results:
        summary["ratio_naive_over_mixminus_at_250"] = (
            results[250]["naive"]["total_us"] / results[250]["mixminus"]["total_us"]
        )
    print(f"\n{command}  (median of {args.runs} runs, {opus_version()})\n")
    print(format_table(
        ["attendees", "recv ms", "tick ms", "egress ms", "mix-minus ms/tick", "% core",
         "naive ms/tick", "naive % core", "naive / mix-minus"], rows))  # fmt: skip
    print("\nserver-added latency, packet in -> mixed packet out (jitter buffer at 20 ms):")
    print(format_table(
        ["attendees", "p50 ms", "p99 ms", "max ms", "samples/run"],
        [[size, v["p50_ms"], v["p99_ms"], v["max_ms"], v["samples_per_run"]]
         for size, v in latency.items()]))  # fmt: skip
    print(f"plus the Opus encoder's look-ahead inside the audio: {lookahead_ms:.1f} ms")
    print(
        f"\nRSS: one meeting of {rss['attendees']} attendees grows the process by "
        f"{rss['growth_mb']:.1f} MB (process {rss['process_mb']:.0f} MB)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary

"""``python -m bench audio-room``: how large a meeting stays usable, as its users hear it.

For each meeting size, bots join like real clients (``bench.join.join_one``: signaling
plus a light WebRTC peer). Three *speakers* send a continuous Opus stream with a one-second
cycle: 800 ms of silence, then a 200 ms tone burst, the three staggered by a third of a
second. Three *probes* decode what they receive and time the onset of each burst: the
mouth-to-ear latency is the burst's onset in the probe's downlink minus the moment the
speaker sent its first burst packet (bots share one clock), so it covers the server's
jitter buffer, the mixer tick, the re-encode and both network hops (loopback), but not a
browser's playout buffer. Every bot counts the audio packets it receives: loss is one minus
received over the 50 packets/s the server promises (chime-signaling-protocol.md §6.3).

A size is *sustained* when loss stays under 1 % and the mouth-to-ear p95 under 150 ms.
Chime caps a meeting at 250 attendees; so does Carillon's API unless the server is started
with ``--max-attendees-per-meeting`` (a size above 250 passes it to the server it starts).
The bots run in ``--processes`` worker processes (bench/fleet.py), joined at
``--join-rate`` per second overall; speakers and probes may sit in different processes,
which share one monotonic clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvloop

from bench.fleet import Fleet, WorkerState
from bench.join import (
    MAX_PER_MEETING,
    JoinItem,
    Roster,
    bots_close,
    bots_packets,
    flat,
    join_items,
    join_summary,
    numbered,
    spread,
)
from bench.litepeer import LitePeer
from bench.options import (
    Server,
    add_output_arguments,
    add_server_arguments,
    bot_cpus,
    open_server,
    pin_to_bot_cpus,
    process_count,
)
from bench.plots import plot_audio_room
from bench.progress import tracking
from bench.report import finish, measured
from bench.stats import median, percentile
from mediacodecs.opus import OpusDecoder, OpusEncoder
from mediaserver.transport.certificate import DtlsCertificate

__all__ = ["add_arguments", "run"]

FRAME = 960
CYCLE_FRAMES = 50
"""One second of 20 ms frames."""
BURST_FRAMES = 10
SPEAKERS = 3
PROBES = 3

PeerFactory = Callable[[DtlsCertificate], LitePeer]


def _cycle(frequency: float) -> list[bytes]:
    """One second of Opus frames: 40 silent, then a 200 ms tone (one encoder, in order)."""
    encoder = OpusEncoder(1, 32000)
    frames = []
    t = np.arange(FRAME) / 48000
    for i in range(CYCLE_FRAMES):
        if i >= CYCLE_FRAMES - BURST_FRAMES:
            phase = i * FRAME / 48000
            pcm = (0.3 * 32767 * np.sin(2 * np.pi * frequency * (t + phase))).astype(np.int16)
        else:
            pcm = np.zeros(FRAME, dtype=np.int16)
        frames.append(encoder.encode(pcm))
    return frames


@dataclass
class Probe:
    """Decodes a bot's downlink, records when tone bursts begin, and estimates the
    interarrival jitter of the downlink (RFC 3550 §6.4.1, in milliseconds)."""

    decoder: OpusDecoder = field(default_factory=lambda: OpusDecoder(1))
    onsets: list[float] = field(default_factory=list)
    quiet: int = 0
    jitter_ms: float = 0.0
    _last: tuple[float, int] | None = None

    def arrived(self, timestamp: int, now: float) -> None:
        """J += (|D| - J) / 16 with D the change in transit time (RFC 3550 §A.8)."""
        if self._last is not None:
            last_now, last_ts = self._last
            rtp_elapsed = ((timestamp - last_ts) & 0xFFFFFFFF) / 48.0
            transit_change = (now - last_now) * 1000 - rtp_elapsed
            self.jitter_ms += (abs(transit_change) - self.jitter_ms) / 16
        self._last = (now, timestamp)

    def feed(self, payload: bytes, now: float) -> None:
        try:
            pcm = self.decoder.decode(payload)
        except ValueError:
            return
        loud = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 1000.0
        if loud and self.quiet >= 5:
            self.onsets.append(now)
        self.quiet = 0 if loud else self.quiet + 1


class ProbePeer(LitePeer):
    """A light peer that also decodes its audio for :class:`Probe`."""

    probe: Probe

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) > 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
            srtp = self._srtp
            if srtp is not None:
                try:
                    plain = srtp.unprotect_rtp(data)
                except ValueError:
                    self.srtp_errors += 1
                    return
                self.audio_packets += 1
                if self.timings.first_audio is None:
                    self.timings.first_audio = time.monotonic()
                    self.first_audio_received.set()
                self.probe.arrived(int.from_bytes(plain[4:8], "big"), time.monotonic())
                offset = 12 + 4 * (plain[0] & 0x0F)
                if plain[0] & 0x10:
                    offset += 4 + 4 * int.from_bytes(plain[offset + 2 : offset + 4], "big")
                self.probe.feed(plain[offset:], time.monotonic())
                return
        super().datagram_received(data, addr)


class Speaker:
    """Sends one staggered burst cycle; records when each burst's first packet leaves."""

    def __init__(self, peer: LitePeer, frames: list[bytes], offset: float) -> None:
        self.peer = peer
        self.frames = frames
        self.offset = offset
        self.burst_times: list[float] = []
        self.task: asyncio.Task[None] | None = None

    def start(self, t0: float) -> None:
        self.task = asyncio.create_task(self._run(t0))

    async def _run(self, t0: float) -> None:
        peer = self.peer
        loop = asyncio.get_running_loop()
        start = loop.time() - (time.monotonic() - t0) + self.offset
        index = 0
        seq, ts, ssrc = 1000, 0, 0x5EED0000 + int(self.offset * 1000)
        while True:
            await asyncio.sleep(max(0.0, start + index * 0.02 - loop.time()))
            srtp, transport, remote = peer._srtp, peer._transport, peer._remote
            if srtp is None or transport is None or remote is None:
                index += 1
                continue
            position = index % CYCLE_FRAMES
            if position == CYCLE_FRAMES - BURST_FRAMES:
                self.burst_times.append(time.monotonic())
            header = bytes([0x80, remote.audio_payload_type]) + seq.to_bytes(2, "big")
            header += ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big")
            transport.sendto(srtp.protect_rtp(header + self.frames[position]), remote.address)
            seq = (seq + 1) & 0xFFFF
            ts = (ts + FRAME) & 0xFFFFFFFF
            index += 1

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def _latencies(onsets: list[float], bursts: list[float]) -> list[float]:
    """Match each onset to the latest burst sent before it (within 400 ms)."""
    out = []
    for onset in onsets:
        sent = [b for b in bursts if 0 <= onset - b < 0.4]
        if sent:
            out.append(onset - max(sent))
    return out


# -- worker-side commands (bench/fleet.py) -------------------------------------------------


def _probe_factory(state: WorkerState, probes: Sequence[int]) -> Callable[[int], PeerFactory]:
    found: dict[int, Probe] = state.data.setdefault("probes", {})

    def for_join(k: int) -> PeerFactory:
        if k not in probes:
            return LitePeer
        probe = found[k] = Probe()

        def factory(cert: DtlsCertificate) -> LitePeer:
            peer = ProbePeer(cert)
            peer.probe = probe
            return peer

        return factory

    return for_join


async def room_join(
    state: WorkerState, items: Sequence[JoinItem], t0: float, rate: float, probes: list[int]
) -> list[dict[str, Any]]:
    """Fleet command: join this worker's share; the join numbers in ``probes`` decode."""
    return await join_items(state, items, t0, rate, factory=_probe_factory(state, probes))


async def room_speak(state: WorkerState, speakers: list[int], t0: float) -> int:
    """Fleet command: the bots numbered ``speakers`` (those this worker holds) start their
    staggered burst cycles on the common clock ``t0``."""
    bots = state.data.get("bots", {})
    running: list[Speaker] = state.data.setdefault("speakers", [])
    for j, k in enumerate(speakers):
        if k in bots:
            speaker = Speaker(bots[k].peer, _cycle(500.0 + 300.0 * j), j / len(speakers))
            speaker.start(t0)
            running.append(speaker)
    return len(running)


async def room_reset(state: WorkerState) -> None:
    """Fleet command: forget the onsets heard while meetings settled."""
    for probe in state.data.get("probes", {}).values():
        probe.onsets.clear()


async def room_collect(state: WorkerState) -> dict[str, Any]:
    """Fleet command: stop the speakers; their burst times and the probes' onsets."""
    speakers: list[Speaker] = state.data.pop("speakers", [])
    for speaker in speakers:
        speaker.stop()
    probes: dict[int, Probe] = state.data.pop("probes", {})
    return {
        "bursts": [t for s in speakers for t in s.burst_times],
        "onsets": [p.onsets for p in probes.values()],
        "jitter_ms": [p.jitter_ms for p in probes.values()],
    }


# -- the scenario --------------------------------------------------------------------------


async def _size(
    server: Server, fleet: Fleet, size: int, args: argparse.Namespace
) -> dict[str, Any]:
    people = await Roster(server, per_meeting=size).attendees(size)
    items = numbered(people)
    probes = list(range(SPEAKERS, SPEAKERS + PROBES))
    base = fleet.joined_count
    t0 = time.monotonic() + 0.5
    work = [{**w, "t0": t0, "rate": args.join_rate, "probes": probes}
            for w in spread(items, fleet.processes)]  # fmt: skip
    async with tracking(f"audio-room {size}: joining", size, lambda: fleet.joined_count - base):
        records = flat(await fleet.call(room_join, work))
    joined = join_summary(records)
    await fleet.call(room_speak, {"speakers": list(range(SPEAKERS)), "t0": time.monotonic()})
    await asyncio.sleep(2.0)  # speaker selection and jitter buffers settle
    await fleet.call(room_reset)
    before = _merged(await fleet.call(bots_packets))
    window = await measured(server, args.duration, f"audio-room {size}")
    after = _merged(await fleet.call(bots_packets))
    collected = await fleet.call(room_collect)
    await fleet.call(bots_close)
    bursts = sorted(t for c in collected for t in c["bursts"])
    latencies = [ms * 1000 for c in collected for onsets in c["onsets"]
                 for ms in _latencies(onsets, bursts)]  # fmt: skip
    expected = 50.0 * (window.seconds)
    # A bot that failed to join receives nothing: it counts as 100 % loss.
    received = [after[k] - before.get(k, 0) for k in after] + [0] * int(joined["failures"])
    loss = [max(0.0, 1.0 - r / expected) for r in received]
    return {
        "attendees": size,
        "join_failures": joined["failures"],
        "join_p50_ms": joined["first_audio_p50_ms"],
        "server_cpu": window.server_cpu,
        "server_rss_mb": window.server_rss_mb,
        "server_cpu_wait_pct": 100 * window.server_cpu_wait,
        "load_average": os.getloadavg()[0],
        "server_ticks_per_s": window.rate("carillon_audio_ticks_total"),
        "server_late_ticks_per_s": window.rate("carillon_audio_late_ticks_total"),
        "udp_rcvbuf_drops_per_s": window.rate("udp_rcvbuf_errors"),
        "loss_pct_median": 100 * median(loss),
        "loss_pct_p95": 100 * percentile(loss, 95),
        "m2e_bursts": len(latencies),
        "m2e_p50_ms": percentile(latencies, 50),
        "m2e_p95_ms": percentile(latencies, 95),
        "jitter_ms": median([j for c in collected for j in c["jitter_ms"]]),
    }


def _merged(parts: Sequence[dict[int, int]]) -> dict[int, int]:
    return {k: v for part in parts for k, v in part.items()}


def _sizes(args: argparse.Namespace) -> list[int]:
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(f"--sizes must list attendee counts, not {args.sizes!r}") from None
    if any(s < SPEAKERS + PROBES for s in sizes):
        raise SystemExit(f"--sizes: every meeting needs at least {SPEAKERS + PROBES} attendees")
    return sizes


async def _one_run(args: argparse.Namespace, processes: int) -> list[dict[str, Any]]:
    results = []
    with Fleet(processes, bot_cpus(args)) as fleet:
        for size in _sizes(args):
            extra = ["--api-rate", "100000", "--api-burst", "100000"]
            if size > MAX_PER_MEETING:
                extra += ["--max-attendees-per-meeting", str(size)]
            with open_server(args, extra) as server:
                results.append(await _size(server, fleet, size, args))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10,50,100,250", help="attendees per meeting")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--join-rate", type=float, default=50.0, help="joins per second")
    add_server_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.join_rate <= 0:
        raise SystemExit("--join-rate must be > 0")
    sizes = _sizes(args)
    pin_to_bot_cpus(args)
    processes = process_count(args, max(sizes))
    runs = [uvloop.run(_one_run(args, processes)) for _ in range(args.runs)]
    rows = []
    medians = []
    for i, size in enumerate(sizes):
        m = {k: median([r[i][k] for r in runs]) for k in runs[0][i] if k != "attendees"}
        m["attendees"] = size
        m["sustained"] = m["loss_pct_p95"] < 1.0 and m["m2e_p95_ms"] < 150.0
        medians.append(m)
        rows.append([size, m["server_cpu"], m["server_rss_mb"], m["server_ticks_per_s"],
                     m["loss_pct_median"],
                     m["loss_pct_p95"], m["m2e_p50_ms"], m["m2e_p95_ms"], m["jitter_ms"],
                     "yes" if m["sustained"] else "no"])  # fmt: skip
    sustained = [m["attendees"] for m in medians if m["sustained"]]
    summary: dict[str, Any] = {
        "command": f"python -m bench audio-room --runs {args.runs} --sizes {args.sizes} "
        f"--duration {args.duration:g} --join-rate {args.join_rate:g} --processes {processes}",
        "scenario": "audio-room",
        "processes": processes,
        "runs": runs,
        "median": medians,
        "largest_sustained": max(sustained) if sustained else 0,
    }
    finish(args, "audio-room", summary,
           ["attendees", "server CPU (cores)", "server RSS (MB)", "server ticks/s",
            "loss % (median)",
            "loss % (p95 of bots)", "mouth-to-ear p50 (ms)", "mouth-to-ear p95 (ms)",
            "jitter (ms)", "sustained"], rows,
           note=f"{SPEAKERS} speakers, {PROBES} probes, {processes} bot processes",
           plot=plot_audio_room)  # fmt: skip
    print(f"\nlargest meeting sustained (loss < 1 %, mouth-to-ear p95 < 150 ms): "
          f"{summary['largest_sustained']}")  # fmt: skip
    return summary

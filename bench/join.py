"""``python -m bench join``: join time and the cost of idle attendees on one UDP port.

Bots join exactly like the browser client on the wire: the project's
:class:`~signaling.client.SignalingClient` (WebSocket, PING, JOIN, SUBSCRIBE) and a
:class:`~bench.litepeer.LitePeer` (ICE, DTLS-SRTP, then the continuous audio). The server
runs pinned to CPU 0 and the bots to CPU 1.

Phases of one run:

* **one**: ``--sequential`` joins one after another;
* **burst**: ``--burst`` bots join at the same moment;
* **idle**: ``--idle`` bots join (``--join-rate`` per second) and stay connected; the
  server's CPU and RSS are sampled over ``--duration`` seconds. The baseline, measured in the
  same run on the same server before anyone joined, is the idle server itself.

Join time is measured from the start of the WebSocket connection to three milestones:
WebSocket open, DTLS connected, first audio packet received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench.httpload import HttpConnection, RequestSpec, Signer, json_body
from bench.litepeer import LitePeer
from bench.server import BenchServer
from bench.stats import format_table, median, percentile
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient

__all__ = ["add_arguments", "run"]

MAX_PER_MEETING = 250


@dataclass
class JoinTiming:
    ws_open: float
    dtls: float
    first_audio: float


@dataclass
class Bot:
    client: SignalingClient
    peer: LitePeer
    timing: JoinTiming | None = None

    async def close(self) -> None:
        self.peer.close()
        await self.client.close(timeout=1.0)


class Roster:
    """Creates meetings and attendees through the real control plane."""

    def __init__(self, server: BenchServer) -> None:
        self.server = server
        self.signer = Signer(server.access_key_id, server.secret_access_key)
        self.conn = HttpConnection("127.0.0.1", server.http_port, self.signer)
        self.meetings = 0

    async def attendees(self, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        await self.conn.connect()
        out: list[tuple[dict[str, Any], dict[str, Any]]] = []
        while len(out) < count:
            self.meetings += 1
            status, body = await self.conn.request(RequestSpec("POST", "/meetings", json_body({
                "ClientRequestToken": f"join-bench-{self.meetings}-{time.time_ns()}",
                "MediaRegion": "us-east-1",
                "ExternalMeetingId": f"join-bench-{self.meetings}",
            })))  # fmt: skip
            if status != 200:
                raise RuntimeError(f"CreateMeeting: {status} {body!r}")
            meeting = json.loads(body)["Meeting"]
            want = min(MAX_PER_MEETING, count - len(out))
            while want > 0:
                batch = min(100, want)
                items = [{"ExternalUserId": f"bot-{len(out) + i:05d}"} for i in range(batch)]
                status, body = await self.conn.request(
                    RequestSpec(
                        "POST",
                        f"/meetings/{meeting['MeetingId']}/attendees",
                        json_body({"Attendees": items}),
                        query="operation=batch-create",
                    )
                )
                if status != 200:
                    raise RuntimeError(f"BatchCreateAttendee: {status} {body!r}")
                out.extend((meeting, a) for a in json.loads(body)["Attendees"])
                want -= batch
        await self.conn.close()
        return out


async def join_one(
    meeting: dict[str, Any],
    attendee: dict[str, Any],
    certificate: DtlsCertificate,
    *,
    peer_factory: Callable[[DtlsCertificate], LitePeer] = LitePeer,
) -> Bot:
    client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
    peer = peer_factory(certificate)
    await peer.start()
    await client.connect()
    await client.join()
    ack = await client.subscribe(peer.offer())
    if not ack.sdp_answer:
        raise RuntimeError("SUBSCRIBE_ACK without an answer")
    await peer.connect(ack.sdp_answer)
    await asyncio.wait_for(peer.first_audio_received.wait(), 15.0)
    start = client.timings["connect_start"]
    assert peer.timings.dtls_connected is not None and peer.timings.first_audio is not None
    bot = Bot(client, peer)
    bot.timing = JoinTiming(
        ws_open=client.timings["ws_open"] - start,
        dtls=peer.timings.dtls_connected - start,
        first_audio=peer.timings.first_audio - start,
    )
    return bot


def _summary(bots: list[Bot]) -> dict[str, float]:
    firsts = [b.timing.first_audio * 1000 for b in bots if b.timing]
    dtls = [b.timing.dtls * 1000 for b in bots if b.timing]
    opens = [b.timing.ws_open * 1000 for b in bots if b.timing]
    return {
        "count": len(firsts),
        "ws_open_p50_ms": percentile(opens, 50),
        "dtls_p50_ms": percentile(dtls, 50),
        "first_audio_p50_ms": percentile(firsts, 50),
        "first_audio_p99_ms": percentile(firsts, 99),
    }


async def _one_run(args: argparse.Namespace) -> dict[str, Any]:
    certificate = DtlsCertificate.generate()
    extra = ["--api-rate", "100000", "--api-burst", "100000", "--max-active-meetings", "10000"]
    with BenchServer(extra_args=extra) as server:
        roster = Roster(server)
        total = args.sequential + args.burst + args.idle
        attendees = await roster.attendees(total)
        result: dict[str, Any] = {}
        bots: list[Bot] = []
        for meeting, attendee in attendees[: args.sequential]:
            bot = await join_one(meeting, attendee, certificate)
            bots.append(bot)
            await bot.close()
        result["one"] = _summary(bots)
        rest = attendees[args.sequential :]
        burst = await asyncio.gather(*(join_one(m, a, certificate) for m, a in rest[: args.burst]))
        result["burst"] = _summary(list(burst))
        await asyncio.gather(*(b.close() for b in burst))
        await asyncio.sleep(1.0)
        # Baseline: the server with nobody connected, measured now on the same process.
        base_a = server.sample()
        await asyncio.sleep(args.duration)
        base_b = server.sample()
        idle_bots: list[Bot] = []
        pending = rest[args.burst :]
        step = max(1, int(args.join_rate))
        for i in range(0, len(pending), step):
            started = time.monotonic()
            chunk = pending[i : i + step]
            idle_bots.extend(await asyncio.gather(*(join_one(m, a, certificate) for m, a in chunk)))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        await asyncio.sleep(2.0)
        before_packets = sum(b.peer.audio_packets for b in idle_bots)
        loaded_a = server.sample()
        await asyncio.sleep(args.duration)
        loaded_b = server.sample()
        after_packets = sum(b.peer.audio_packets for b in idle_bots)
        n = max(1, len(idle_bots))
        elapsed = loaded_b.at - loaded_a.at
        result["idle"] = {
            "attendees": len(idle_bots),
            "server_cpu_baseline": (base_b.cpu_seconds - base_a.cpu_seconds)
            / (base_b.at - base_a.at),
            "server_cpu": (loaded_b.cpu_seconds - loaded_a.cpu_seconds) / elapsed,
            "rss_baseline_mb": base_b.rss_bytes / 1e6,
            "rss_mb": loaded_b.rss_bytes / 1e6,
            "rss_per_attendee_kb": (loaded_b.rss_bytes - base_b.rss_bytes) / n / 1e3,
            "audio_packets_per_attendee_per_s": (after_packets - before_packets) / n / elapsed,
        }
        await asyncio.gather(*(b.close() for b in idle_bots))
        return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=20, help="joins one at a time")
    parser.add_argument("--burst", type=int, default=50, help="joins at the same moment")
    parser.add_argument("--idle", type=int, default=500, help="idle attendees kept connected")
    parser.add_argument("--join-rate", type=float, default=50.0, help="idle joins per second")
    parser.add_argument("--duration", type=float, default=10.0, help="CPU sampling seconds")
    parser.add_argument("--json", type=Path, default=None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1 and 1 in cpus:
        os.sched_setaffinity(0, {1})
    runs = [uvloop.run(_one_run(args)) for _ in range(args.runs)]

    def med(phase: str, key: str) -> float:
        return median([r[phase][key] for r in runs])

    summary: dict[str, Any] = {
        "command": f"python -m bench join --runs {args.runs} --sequential {args.sequential} "
        f"--burst {args.burst} --idle {args.idle} --duration {args.duration:g}",
        "runs": runs,
    }
    rows = [
        ["1 client: ws open p50 (ms)", med("one", "ws_open_p50_ms"), "-"],
        ["1 client: DTLS connected p50 (ms)", med("one", "dtls_p50_ms"), "-"],
        ["1 client: first audio p50 (ms)", med("one", "first_audio_p50_ms"), "-"],
        ["1 client: first audio p99 (ms)", med("one", "first_audio_p99_ms"), "-"],
        [f"{args.burst} at once: first audio p50 (ms)", med("burst", "first_audio_p50_ms"),
         "<= 100"],
        [f"{args.burst} at once: first audio p99 (ms)", med("burst", "first_audio_p99_ms"),
         "<= 300"],
        [f"{args.idle} idle attendees: server CPU (cores)", med("idle", "server_cpu"), "< 0.10"],
        ["baseline: idle server CPU (cores)", med("idle", "server_cpu_baseline"), "-"],
        [f"{args.idle} idle attendees: server RSS (MB)", med("idle", "rss_mb"), "-"],
        ["RSS per idle attendee (kB)", med("idle", "rss_per_attendee_kb"), "< 500"],
        ["audio packets/s received per idle attendee", med("idle",
         "audio_packets_per_attendee_per_s"), "50"],
    ]  # fmt: skip
    summary["median"] = {str(r[0]): r[1] for r in rows}
    print(f"\n{summary['command']}  (median of {args.runs} runs)\n")
    print(format_table(["measure", "value", "target"], rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return summary

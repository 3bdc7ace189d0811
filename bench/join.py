"""``python -m bench join``: the join storm, and the cost of idle attendees on one UDP port.

Bots join exactly like the browser client on the wire: the project's
:class:`~signaling.client.SignalingClient` (WebSocket, PING, JOIN, SUBSCRIBE) and a
:class:`~bench.litepeer.LitePeer` (ICE, DTLS-SRTP, then the continuous audio). They run in
``--processes`` worker processes (bench/fleet.py) on the bot CPUs; a server the benchmark
starts itself runs pinned to CPU 0.

Phases of one run:

* **one**: ``--sequential`` joins one after another;
* **burst**: ``--burst`` bots join at the same moment (spread over the processes);
* **storm**: ``--storm`` attendees join at ``--join-rate`` joins per second overall (the
  schedule ``t0 + k / rate`` is shared by every process) and stay connected; the server's
  CPU and RSS are sampled each second against the attendees connected (the plot);
* **idle**: the stormed attendees stay; the server's CPU and RSS are measured over
  ``--duration`` seconds. The baseline, measured in the same run on the same server before
  anyone joined, is the idle server itself.

Join time is measured from the start of the WebSocket connection to three milestones:
WebSocket open, DTLS connected, first audio packet received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import uvloop

from bench.fleet import Fleet, WorkerState, schedule
from bench.httpload import HttpConnection, RequestSpec, Signer, json_body
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
from bench.plots import plot_join
from bench.progress import tracking
from bench.report import finish, measured, series
from bench.stats import median, percentile
from mediaserver.transport.certificate import DtlsCertificate
from signaling.client import SignalingClient

__all__ = [
    "Bot",
    "JoinItem",
    "Roster",
    "add_arguments",
    "bots_close",
    "bots_join",
    "bots_packets",
    "flat",
    "join_items",
    "join_one",
    "join_summary",
    "numbered",
    "run",
    "spread",
]

MAX_PER_MEETING = 250
"""Chime's attendee cap per meeting (and Carillon's default ``--max-attendees``)."""

JoinItem = tuple[int, dict[str, Any], dict[str, Any]]
"""(join number over all processes, meeting JSON, attendee JSON)."""


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

    def __init__(self, server: Server, per_meeting: int = MAX_PER_MEETING) -> None:
        self.server = server
        self.per_meeting = per_meeting
        self.signer = Signer(server.access_key_id, server.secret_access_key)
        self.conn = HttpConnection(server.host, server.http_port, self.signer)
        self.meetings = 0

    async def attendees(self, count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        await self.conn.connect()
        out: list[tuple[dict[str, Any], dict[str, Any]]] = []
        while len(out) < count:
            self.meetings += 1
            status, body = await self.conn.request(RequestSpec("POST", "/meetings", json_body({
                "ClientRequestToken": f"join-bench-{self.meetings}-{time.time_ns()}",
                "MediaRegion": "us-east-1",
                "ExternalMeetingId": f"join-bench-{self.meetings}-{time.time_ns()}",
            })))  # fmt: skip
            if status != 200:
                raise RuntimeError(f"CreateMeeting: {status} {body!r}")
            meeting = json.loads(body)["Meeting"]
            want = min(self.per_meeting, count - len(out))
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
                created = json.loads(body).get("Attendees", []) if status == 200 else []
                if len(created) != batch:
                    raise RuntimeError(f"BatchCreateAttendee: {status} {body[:300]!r}")
                out.extend((meeting, a) for a in created)
                want -= batch
        await self.conn.close()
        return out


def spread(items: Sequence[JoinItem], processes: int) -> list[dict[str, Any]]:
    """Deal join items to the processes in turn (item ``k`` to process ``k % processes``)."""
    return [{"items": list(items[i::processes])} for i in range(processes)]


def numbered(
    people: Sequence[tuple[dict[str, Any], dict[str, Any]]], first: int = 0
) -> list[JoinItem]:
    return [(first + k, m, a) for k, (m, a) in enumerate(people)]


async def join_one(
    meeting: dict[str, Any],
    attendee: dict[str, Any],
    certificate: DtlsCertificate,
    *,
    peer_factory: Callable[[DtlsCertificate], LitePeer] = LitePeer,
) -> Bot:
    client = SignalingClient({"Meeting": meeting}, {"Attendee": attendee})
    peer = peer_factory(certificate)
    try:
        await peer.start()
        await client.connect()
        await client.join()
        ack = await client.subscribe(peer.offer())
        if not ack.sdp_answer:
            raise RuntimeError("SUBSCRIBE_ACK without an answer")
        await peer.connect(ack.sdp_answer)
        await asyncio.wait_for(peer.first_audio_received.wait(), 15.0)
    except BaseException:
        peer.close()
        await client.close(timeout=1.0)
        raise
    start = client.timings["connect_start"]
    assert peer.timings.dtls_connected is not None and peer.timings.first_audio is not None
    bot = Bot(client, peer)
    bot.timing = JoinTiming(
        ws_open=client.timings["ws_open"] - start,
        dtls=peer.timings.dtls_connected - start,
        first_audio=peer.timings.first_audio - start,
    )
    return bot


# -- worker-side commands (bench/fleet.py) -------------------------------------------------


def _certificate(state: WorkerState) -> DtlsCertificate:
    certificate = state.data.get("certificate")
    if certificate is None:
        certificate = state.data["certificate"] = DtlsCertificate.generate()
    assert isinstance(certificate, DtlsCertificate)
    return certificate


def _bots(state: WorkerState) -> dict[int, Bot]:
    bots: dict[int, Bot] = state.data.setdefault("bots", {})
    return bots


async def join_items(
    state: WorkerState,
    items: Sequence[JoinItem],
    t0: float,
    rate: float,
    *,
    sequential: bool = False,
    keep: bool = True,
    factory: Callable[[int], Callable[[DtlsCertificate], LitePeer]] | None = None,
) -> list[dict[str, Any]]:
    """Join ``items``, item ``k`` at :func:`~bench.fleet.schedule` ``(t0, rate, k)``; keep the
    bots in the worker's state (or close them at once). One record per item: its join
    times, or the error, and how many attendees (all processes) had joined by then."""
    certificate = _certificate(state)
    bots = _bots(state)

    async def one(k: int, meeting: dict[str, Any], attendee: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, schedule(t0, rate, k) - time.monotonic()))
        try:
            bot = await join_one(
                meeting, attendee, certificate,
                peer_factory=factory(k) if factory is not None else LitePeer,
            )  # fmt: skip
        except Exception as exc:
            return {"k": k, "error": f"{type(exc).__name__}: {exc}"}
        state.count_join()
        assert bot.timing is not None
        record = {
            "k": k,
            "ws_open_ms": bot.timing.ws_open * 1000,
            "dtls_ms": bot.timing.dtls * 1000,
            "first_audio_ms": bot.timing.first_audio * 1000,
            "connected": state.joined.value,
        }
        if keep:
            bots[k] = bot
        else:
            await bot.close()
        return record

    if sequential:
        return [await one(*item) for item in items]
    return list(await asyncio.gather(*(one(*item) for item in items)))


async def bots_join(
    state: WorkerState, items: Sequence[JoinItem], t0: float, rate: float,
    sequential: bool = False, keep: bool = True,
) -> list[dict[str, Any]]:  # fmt: skip
    """Fleet command: :func:`join_items` with plain light peers."""
    return await join_items(state, items, t0, rate, sequential=sequential, keep=keep)


async def bots_packets(state: WorkerState) -> dict[int, int]:
    """Fleet command: audio packets each kept bot has received so far."""
    return {k: bot.peer.audio_packets for k, bot in _bots(state).items()}


async def bots_close(state: WorkerState) -> int:
    """Fleet command: close every kept bot; returns how many."""
    bots = _bots(state)
    await asyncio.gather(*(b.close() for b in bots.values()), return_exceptions=True)
    closed = len(bots)
    bots.clear()
    return closed


def join_summary(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    ok = [r for r in records if "error" not in r]
    firsts = [r["first_audio_ms"] for r in ok]
    return {
        "count": len(ok),
        "failures": len(records) - len(ok),
        "ws_open_p50_ms": percentile([r["ws_open_ms"] for r in ok], 50),
        "dtls_p50_ms": percentile([r["dtls_ms"] for r in ok], 50),
        "first_audio_p50_ms": percentile(firsts, 50),
        "first_audio_p95_ms": percentile(firsts, 95),
        "first_audio_p99_ms": percentile(firsts, 99),
    }


def flat(results: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records of every process, in join order."""
    return sorted((r for part in results for r in part), key=lambda r: int(r["k"]))


# -- the scenario --------------------------------------------------------------------------


async def _one_run(args: argparse.Namespace, processes: int) -> dict[str, Any]:
    extra = ["--api-rate", "100000", "--api-burst", "100000", "--max-active-meetings", "10000"]
    with open_server(args, extra) as server, Fleet(processes, bot_cpus(args)) as fleet:
        total = args.sequential + args.burst + args.storm
        people = await Roster(server).attendees(total)
        result: dict[str, Any] = {"processes": processes}
        now = time.monotonic
        one = numbered(people[: args.sequential])
        records = await fleet.call(
            bots_join, {"items": one, "t0": now(), "rate": 0.0, "sequential": True,
                        "keep": False}, only=[0])  # fmt: skip
        result["one"] = join_summary(flat(records))
        burst = numbered(people[args.sequential : args.sequential + args.burst])
        base = fleet.joined_count
        async with tracking("join: burst", len(burst), lambda: fleet.joined_count - base):
            work = [{**w, "t0": now() + 0.2, "rate": 0.0, "keep": False}
                    for w in spread(burst, processes)]  # fmt: skip
            result["burst"] = join_summary(flat(await fleet.call(bots_join, work)))
        await asyncio.sleep(1.0)
        # Baseline: the server with nobody connected, measured now on the same process.
        baseline = await measured(server, args.duration, "join: baseline")
        storm = numbered(people[args.sequential + args.burst :])
        base = fleet.joined_count
        t0 = now() + 0.5
        work = [{**w, "t0": t0, "rate": args.join_rate} for w in spread(storm, processes)]
        async with series(server, lambda: fleet.joined_count - base) as points:
            async with tracking("join: storm", len(storm), lambda: fleet.joined_count - base):
                storm_records = flat(await fleet.call(bots_join, work))
            await asyncio.sleep(2.0)
            before = sum(sum(c.values()) for c in await fleet.call(bots_packets))
            loaded = await measured(server, args.duration, "join: idle attendees")
            after = sum(sum(c.values()) for c in await fleet.call(bots_packets))
        for record in storm_records:
            if "connected" in record:
                record["connected"] -= base
        result["storm"] = {**join_summary(storm_records), "join_rate": args.join_rate}
        result["storm_joins"] = [
            {"connected": r["connected"], "first_audio_ms": r["first_audio_ms"]}
            for r in storm_records
            if "first_audio_ms" in r
        ]
        result["storm_series"] = points
        n = max(1, result["storm"]["count"])
        result["idle"] = {
            "attendees": result["storm"]["count"],
            "server_cpu_baseline": baseline.server_cpu,
            "server_cpu": loaded.server_cpu,
            "server_cpu_wait_pct": 100 * loaded.server_cpu_wait,
            "server_ticks_per_s": loaded.rate("carillon_audio_ticks_total"),
            "rss_baseline_mb": baseline.server_rss_mb,
            "rss_mb": loaded.server_rss_mb,
            "rss_per_attendee_kb": (loaded.end.rss_bytes - baseline.end.rss_bytes) / n / 1e3,
            "audio_packets_per_attendee_per_s": (after - before) / n / loaded.seconds,
        }
        await fleet.call(bots_close)
        return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=20, help="joins one at a time")
    parser.add_argument("--burst", type=int, default=50, help="joins at the same moment")
    parser.add_argument(
        "--storm", "--idle", dest="storm", type=int, default=500,
        help="attendees of the join storm, kept connected (idle) afterwards",
    )  # fmt: skip
    parser.add_argument(
        "--join-rate", type=float, default=50.0, help="storm joins per second, all processes"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="CPU sampling seconds")
    add_server_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.join_rate <= 0:
        raise SystemExit("--join-rate must be > 0")
    pin_to_bot_cpus(args)
    processes = process_count(args, max(args.burst, args.storm))
    runs = [uvloop.run(_one_run(args, processes)) for _ in range(args.runs)]

    def med(phase: str, key: str) -> float:
        return median([r[phase][key] for r in runs])

    summary: dict[str, Any] = {
        "command": f"python -m bench join --runs {args.runs} --sequential {args.sequential} "
        f"--burst {args.burst} --storm {args.storm} --join-rate {args.join_rate:g} "
        f"--duration {args.duration:g} --processes {processes}",
        "scenario": "join",
        "processes": processes,
        "runs": runs,
    }
    storm, rate = args.storm, args.join_rate
    rows = [
        ["1 client: ws open p50 (ms)", med("one", "ws_open_p50_ms"), "-"],
        ["1 client: DTLS connected p50 (ms)", med("one", "dtls_p50_ms"), "-"],
        ["1 client: first audio p50 (ms)", med("one", "first_audio_p50_ms"), "-"],
        ["1 client: first audio p99 (ms)", med("one", "first_audio_p99_ms"), "-"],
        [f"{args.burst} at once: first audio p50 (ms)", med("burst", "first_audio_p50_ms"),
         "<= 100"],
        [f"{args.burst} at once: first audio p99 (ms)", med("burst", "first_audio_p99_ms"),
         "<= 300"],
        [f"storm {storm} at {rate:g}/s: first audio p50 (ms)",
         med("storm", "first_audio_p50_ms"), "-"],
        [f"storm {storm} at {rate:g}/s: first audio p99 (ms)",
         med("storm", "first_audio_p99_ms"), "-"],
        ["join failures (all phases)", sum(r[p]["failures"] for r in runs
                                           for p in ("one", "burst", "storm")), "0"],
        [f"{storm} idle attendees: server CPU (cores)", med("idle", "server_cpu"), "< 0.10"],
        ["baseline: idle server CPU (cores)", med("idle", "server_cpu_baseline"), "-"],
        [f"{storm} idle attendees: server RSS (MB)", med("idle", "rss_mb"), "-"],
        ["RSS per idle attendee (kB)", med("idle", "rss_per_attendee_kb"), "< 500"],
        ["audio packets/s received per idle attendee", med("idle",
         "audio_packets_per_attendee_per_s"), "50"],
    ]  # fmt: skip
    summary["median"] = {str(r[0]): r[1] for r in rows}
    finish(args, "join", summary, ["measure", "value", "target"], rows,
           note=f"{processes} bot processes", plot=plot_join)  # fmt: skip
    return summary

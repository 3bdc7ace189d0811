"""``python -m bench churn`` and ``python -m bench data-flood``: meetings that keep moving.

* **churn**: ``--concurrency`` bots keep joining a meeting and leaving it again (LEAVE,
  then the socket closes) for ``--duration`` seconds; join times and failures are reported,
  with the server's CPU. A server that leaks state per connection shows it here as growing
  RSS. ``--concurrency 10,20,40`` measures several meeting sizes (the plot's axis).
* **data-flood**: ``--receivers`` bots join; one more sends DATA_MESSAGEs at ``--rate`` per
  second. The ingest latency is the server's ``ingest_time_ns`` stamp minus the send time
  carried in the payload (bots and server share one machine clock); every receiver's count
  shows the fan-out kept up; messages above the meeting's 100/s token bucket come back to
  the sender with ``ingest_time_ns = 0`` (chime-signaling-protocol.md §5.4).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time
from collections.abc import Sequence
from typing import Any

import uvloop

from bench.fleet import Fleet, WorkerState
from bench.join import (
    Bot,
    JoinItem,
    Roster,
    bots_close,
    bots_join,
    flat,
    join_one,
    numbered,
    spread,
)
from bench.options import (
    add_output_arguments,
    add_server_arguments,
    bot_cpus,
    open_server,
    pin_to_bot_cpus,
    process_count,
)
from bench.plots import plot_churn
from bench.progress import tracking
from bench.report import finish, measured
from bench.stats import median, percentile
from mediaserver.transport.certificate import DtlsCertificate

__all__ = ["add_churn_arguments", "add_flood_arguments", "run_churn", "run_flood"]

_API = ["--api-rate", "100000", "--api-burst", "100000"]


# -- churn --------------------------------------------------------------------------------


async def churn_loops(
    state: WorkerState, slots: list[list[JoinItem]], deadline: float, stay: float
) -> dict[str, Any]:
    """Fleet command: one loop per slot joins, stays ``stay`` seconds, LEAVEs and closes,
    again and again until ``deadline``, cycling through the slot's attendees."""
    certificate = DtlsCertificate.generate()
    joins: list[float] = []
    failures = 0

    async def loop(slot: list[JoinItem]) -> None:
        nonlocal failures
        turn = 0
        while time.monotonic() < deadline:
            _, meeting, attendee = slot[turn % len(slot)]
            turn += 1
            try:
                bot: Bot = await join_one(meeting, attendee, certificate)
            except Exception:
                failures += 1
                continue
            state.count_join()
            assert bot.timing is not None
            joins.append(bot.timing.first_audio * 1000)
            await asyncio.sleep(stay)
            await bot.client.leave(5.0)
            await bot.close()

    await asyncio.gather(*(loop(slot) for slot in slots))
    return {"joins": joins, "failures": failures}


def _concurrencies(args: argparse.Namespace) -> list[int]:
    try:
        sizes = [int(c) for c in str(args.concurrency).split(",")]
    except ValueError:
        raise SystemExit(f"--concurrency must list bot counts, not {args.concurrency!r}") from None
    if any(c < 1 for c in sizes):
        raise SystemExit("--concurrency must be >= 1")
    return sizes


async def _churn_size(args: argparse.Namespace, fleet: Fleet, concurrency: int) -> dict[str, float]:
    with open_server(args, _API) as server:
        pool = numbered(await Roster(server).attendees(concurrency * 2))
        slots = [pool[i::concurrency] for i in range(concurrency)]
        deadline = time.monotonic() + args.duration
        work = [{"slots": slots[i :: fleet.processes], "deadline": deadline, "stay": args.stay}
                for i in range(fleet.processes)]  # fmt: skip
        start = server.sample()
        base = fleet.joined_count
        async with tracking(f"churn {concurrency}", 0, lambda: fleet.joined_count - base,
                            unit="joins"):  # fmt: skip
            results = await fleet.call(churn_loops, work)
        end = server.sample()
        joins = [j for r in results for j in r["joins"]]
        seconds = end.at - start.at
        return {
            "attendees": concurrency,
            "joins": len(joins),
            "failures": sum(r["failures"] for r in results),
            "joins_per_s": len(joins) / seconds,
            "first_audio_p50_ms": percentile(joins, 50),
            "first_audio_p99_ms": percentile(joins, 99),
            "server_cpu": (end.cpu_seconds - start.cpu_seconds) / seconds,
            "server_rss_start_mb": start.rss_bytes / 1e6,
            "server_rss_mb": end.rss_bytes / 1e6,
        }


async def _churn_once(args: argparse.Namespace, processes: int) -> list[dict[str, float]]:
    with Fleet(processes, bot_cpus(args)) as fleet:
        return [await _churn_size(args, fleet, c) for c in _concurrencies(args)]


def add_churn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--concurrency", default="20", help="bots in the meeting; a list measures several"
    )
    parser.add_argument("--stay", type=float, default=1.0, help="seconds each bot stays")
    parser.add_argument("--duration", type=float, default=20.0)
    add_server_arguments(parser)
    add_output_arguments(parser)


def _medians(runs: Sequence[Sequence[dict[str, float]]]) -> list[dict[str, float]]:
    return [{k: median([r[i][k] for r in runs]) for k in runs[0][i]}
            for i in range(len(runs[0]))]  # fmt: skip


def run_churn(args: argparse.Namespace) -> dict[str, Any]:
    sizes = _concurrencies(args)
    pin_to_bot_cpus(args)
    processes = process_count(args, max(sizes))
    runs = [uvloop.run(_churn_once(args, processes)) for _ in range(args.runs)]
    medians = _medians(runs)
    summary: dict[str, Any] = {
        "command": f"python -m bench churn --runs {args.runs} --concurrency "
        f"{args.concurrency} --stay {args.stay:g} --duration {args.duration:g} "
        f"--processes {processes}",
        "scenario": "churn",
        "processes": processes,
        "runs": runs,
        "median": medians,
    }
    keys = list(medians[0])
    finish(args, "churn", summary, keys, [[m[k] for k in keys] for m in medians],
           note=f"{processes} bot processes", plot=plot_churn)  # fmt: skip
    return summary


# -- data flood ---------------------------------------------------------------------------

_STAMP = struct.Struct("!d")


async def flood_send(state: WorkerState, rate: float, duration: float, size: int) -> int:
    """Fleet command: the worker's first kept bot sends DATA_MESSAGEs stamped with the
    wall-clock send time at ``rate`` per second for ``duration`` seconds."""
    bots: dict[int, Bot] = state.data["bots"]
    sender = bots[min(bots)]
    sent = 0
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    deadline = next_at + duration
    while loop.time() < deadline:
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        payload = _STAMP.pack(time.time()) + bytes(size - _STAMP.size)
        await sender.client.send_data_message("flood", payload)
        sent += 1
    return sent


async def flood_collect(state: WorkerState, sender: int) -> dict[str, Any]:
    """Fleet command: what each receiver got (ingest latencies), and the sender's count of
    throttled messages if this worker holds the sender."""
    bots: dict[int, Bot] = state.data["bots"]
    latencies: list[float] = []
    delivered = 0
    throttled = 0
    for k, bot in bots.items():
        if k == sender:
            throttled = sum(1 for m in bot.client.data_messages if m.ingest_time_ns == 0)
            continue
        for message in bot.client.data_messages:
            if message.topic != "flood" or not message.ingest_time_ns:
                continue
            delivered += 1
            sent_at = _STAMP.unpack_from(message.data)[0]
            latencies.append((message.ingest_time_ns / 1e9 - sent_at) * 1000)
    return {"latencies": latencies, "delivered": delivered, "throttled": throttled}


async def _flood_once(args: argparse.Namespace, processes: int) -> dict[str, float]:
    with open_server(args, _API) as server, Fleet(processes, bot_cpus(args)) as fleet:
        people = numbered(await Roster(server).attendees(args.receivers + 1))
        work = [{**w, "t0": time.monotonic(), "rate": 0.0} for w in spread(people, processes)]
        async with tracking("data-flood: joining", len(people), lambda: fleet.joined_count):
            records = flat(await fleet.call(bots_join, work))
        failures = sum(1 for r in records if "error" in r)
        window = asyncio.create_task(measured(server, args.duration, "data-flood"))
        sent = (await fleet.call(
            flood_send, {"rate": args.rate, "duration": args.duration, "size": args.size},
            only=[0]))[0]  # fmt: skip
        await window
        await asyncio.sleep(1.0)
        end = server.sample()
        parts = await fleet.call(flood_collect, {"sender": 0})
        await fleet.call(bots_close)
        start = (await window).start
        latencies = [x for p in parts for x in p["latencies"]]
        return {
            "sent": sent,
            "join_failures": failures,
            "throttled_back_to_sender": sum(p["throttled"] for p in parts),
            "delivered_per_receiver": sum(p["delivered"] for p in parts)
            / max(1, args.receivers - failures),
            "ingest_latency_p50_ms": percentile(latencies, 50),
            "ingest_latency_p99_ms": percentile(latencies, 99),
            "server_cpu": (end.cpu_seconds - start.cpu_seconds) / (end.at - start.at),
        }


def add_flood_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--receivers", type=int, default=50)
    parser.add_argument("--rate", type=float, default=150.0, help="messages per second")
    parser.add_argument("--size", type=int, default=512, help="bytes per message (<= 2048)")
    parser.add_argument("--duration", type=float, default=10.0)
    add_server_arguments(parser)
    add_output_arguments(parser, plot=False)


def run_flood(args: argparse.Namespace) -> dict[str, Any]:
    if args.rate <= 0 or not _STAMP.size <= args.size <= 2048 or args.receivers < 1:
        raise SystemExit("--rate must be > 0, --size 8-2048 and --receivers >= 1")
    pin_to_bot_cpus(args)
    processes = process_count(args, args.receivers + 1)
    runs = [uvloop.run(_flood_once(args, processes)) for _ in range(args.runs)]
    m = {k: median([r[k] for r in runs]) for k in runs[0]}
    summary = {
        "command": f"python -m bench data-flood --runs {args.runs} --receivers "
        f"{args.receivers} --rate {args.rate:g} --size {args.size} --duration {args.duration:g} "
        f"--processes {processes}",
        "scenario": "data-flood",
        "processes": processes,
        "runs": runs,
        "median": m,
    }
    finish(args, "data-flood", summary, ["measure", "value"], [[k, v] for k, v in m.items()],
           note=f"{processes} bot processes")  # fmt: skip
    return summary

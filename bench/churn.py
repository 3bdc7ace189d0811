"""``python -m bench churn`` and ``python -m bench data-flood``: meetings that keep moving.

* **churn**: ``--concurrency`` bots keep joining a meeting and leaving it again (LEAVE,
  then the socket closes) for ``--duration`` seconds; join times and failures are reported,
  with the server's CPU. A server that leaks state per connection shows it here as growing
  RSS.
* **data-flood**: ``--receivers`` bots join; one more sends DATA_MESSAGEs at ``--rate`` per
  second. The ingest latency is the server's ``ingest_time_ns`` stamp minus the send time
  carried in the payload (bots and server share one machine clock); every receiver's count
  shows the fan-out kept up; messages above the meeting's 100/s token bucket come back to
  the sender with ``ingest_time_ns = 0`` (chime-signaling-protocol.md §5.4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.join import Bot, Roster, join_one
from bench.server import BenchServer
from bench.stats import format_table, median, percentile
from mediaserver.transport.certificate import DtlsCertificate

__all__ = ["add_churn_arguments", "add_flood_arguments", "run_churn", "run_flood"]


def _progress(text: str) -> None:
    """A one-line progress indicator on stderr (the results go to stdout)."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()


def _pin() -> None:
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1 and 1 in cpus:
        os.sched_setaffinity(0, {1})


def _write(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))


# -- churn --------------------------------------------------------------------------------


async def _churn_once(args: argparse.Namespace) -> dict[str, float]:
    extra = ["--api-rate", "100000", "--api-burst", "100000"]
    with BenchServer(extra_args=extra) as server:
        roster = Roster(server)
        pool = await roster.attendees(args.concurrency * 2)
        certificate = DtlsCertificate.generate()
        joins: list[float] = []
        failures = 0
        deadline = time.monotonic() + args.duration
        start = server.sample()

        async def worker(slots: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
            nonlocal failures
            turn = 0
            while time.monotonic() < deadline:
                meeting, attendee = slots[turn % len(slots)]
                turn += 1
                try:
                    bot: Bot = await join_one(meeting, attendee, certificate)
                except (TimeoutError, OSError, ConnectionError):
                    failures += 1
                    continue
                assert bot.timing is not None
                joins.append(bot.timing.first_audio * 1000)
                _progress(f"churn: {len(joins)} joins, {failures} failures")
                await asyncio.sleep(args.stay)
                await bot.client.leave(5.0)
                await bot.close()

        await asyncio.gather(
            *(worker(pool[i :: args.concurrency]) for i in range(args.concurrency))
        )
        end = server.sample()
        return {
            "joins": len(joins),
            "failures": failures,
            "joins_per_s": len(joins) / (end.at - start.at),
            "first_audio_p50_ms": percentile(joins, 50),
            "first_audio_p99_ms": percentile(joins, 99),
            "server_cpu": (end.cpu_seconds - start.cpu_seconds) / (end.at - start.at),
            "server_rss_mb": end.rss_bytes / 1e6,
        }


def add_churn_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=20, help="bots in the meeting")
    parser.add_argument("--stay", type=float, default=1.0, help="seconds each bot stays")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)


def run_churn(args: argparse.Namespace) -> dict[str, Any]:
    _pin()
    runs = [uvloop.run(_churn_once(args)) for _ in range(args.runs)]
    m = {k: median([r[k] for r in runs]) for k in runs[0]}
    summary = {
        "command": f"python -m bench churn --runs {args.runs} --concurrency "
        f"{args.concurrency} --stay {args.stay:g} --duration {args.duration:g}",
        "runs": runs,
        "median": m,
    }
    rows = [[k, v] for k, v in m.items()]
    print(f"\n{summary['command']}  (median of {args.runs} runs)\n")
    print(format_table(["measure", "value"], rows))
    _write(args, summary)
    return summary


# -- data flood ---------------------------------------------------------------------------

_STAMP = struct.Struct("!d")


async def _flood_once(args: argparse.Namespace) -> dict[str, float]:
    extra = ["--api-rate", "100000", "--api-burst", "100000"]
    with BenchServer(extra_args=extra) as server:
        roster = Roster(server)
        people = await roster.attendees(args.receivers + 1)
        certificate = DtlsCertificate.generate()
        bots = list(await asyncio.gather(*(join_one(m, a, certificate) for m, a in people)))
        sender, receivers = bots[0], bots[1:]
        start = server.sample()
        sent = 0
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        deadline = next_at + args.duration
        while loop.time() < deadline:
            next_at += 1.0 / args.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            payload = _STAMP.pack(time.time()) + bytes(args.size - _STAMP.size)
            await sender.client.send_data_message("flood", payload)
            sent += 1
            if sent % 50 == 0:
                _progress(f"data-flood: {sent} sent")
        await asyncio.sleep(1.0)
        end = server.sample()
        latencies: list[float] = []
        delivered = 0
        for bot in receivers:
            for message in bot.client.data_messages:
                if message.topic != "flood" or not message.ingest_time_ns:
                    continue
                delivered += 1
                sent_at = _STAMP.unpack_from(message.data)[0]
                latencies.append((message.ingest_time_ns / 1e9 - sent_at) * 1000)
        throttled = sum(1 for m in sender.client.data_messages if m.ingest_time_ns == 0)
        await asyncio.gather(*(b.close() for b in bots))
        return {
            "sent": sent,
            "throttled_back_to_sender": throttled,
            "delivered_per_receiver": delivered / max(1, len(receivers)),
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
    parser.add_argument("--json", type=Path, default=None)


def run_flood(args: argparse.Namespace) -> dict[str, Any]:
    _pin()
    runs = [uvloop.run(_flood_once(args)) for _ in range(args.runs)]
    m = {k: median([r[k] for r in runs]) for k in runs[0]}
    summary = {
        "command": f"python -m bench data-flood --runs {args.runs} --receivers "
        f"{args.receivers} --rate {args.rate:g} --size {args.size} --duration {args.duration:g}",
        "runs": runs,
        "median": m,
    }
    print(f"\n{summary['command']}  (median of {args.runs} runs)\n")
    print(format_table(["measure", "value"], [[k, v] for k, v in m.items()]))
    _write(args, summary)
    return summary

"""``python -m bench control-plane``: CreateAttendee latency and throughput over loopback.

The server runs pinned to CPU 0 with the API rate limit raised; the load generator runs in
this process (pinned to CPU 1 when the machine has two). Two phases per run:

* **latency**: one connection, one request at a time (closed loop), p50/p99 of CreateAttendee;
* **throughput**: ``--concurrency`` connections for ``--duration`` seconds, requests/s, with
  the server's CPU use read from /proc, and p50/p99 under that load.

The baseline, measured in the same run on the same server, is ``GET /health`` (no auth, no
validation, no storage) at the same concurrency: the ratio shows what the Chime API itself
costs over the bare HTTP stack.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.httpload import HttpConnection, RequestSpec, Signer, json_body
from bench.options import (
    Server,
    add_output_arguments,
    add_server_arguments,
    open_server,
    pin_to_bot_cpus,
)
from bench.report import finish
from bench.stats import median, percentile

__all__ = ["add_arguments", "run"]

ATTENDEES_PER_MEETING = 250


@dataclass
class PhaseResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float
    """Server CPU seconds per wall second during the phase (1.0 = one full core)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class AttendeeRequests:
    """Hands out CreateAttendee requests spread over pre-created meetings."""

    def __init__(self, meeting_ids: list[str]) -> None:
        self.meeting_ids = meeting_ids
        self.counter = itertools.count()

    def next(self) -> RequestSpec:
        n = next(self.counter)
        meeting = self.meeting_ids[(n // ATTENDEES_PER_MEETING) % len(self.meeting_ids)]
        body = json_body({"ExternalUserId": f"bench-{n:09d}"})
        return RequestSpec("POST", f"/meetings/{meeting}/attendees", body)


async def _create_meetings(conn: HttpConnection, count: int) -> list[str]:
    ids = []
    for i in range(count):
        body = json_body(
            {
                "ClientRequestToken": f"bench-{i}-{time.time_ns()}",
                "MediaRegion": "us-east-1",
                "ExternalMeetingId": f"bench-{i}",
            }
        )
        status, payload = await conn.request(RequestSpec("POST", "/meetings", body))
        if status != 200:
            raise RuntimeError(f"CreateMeeting failed: {status} {payload!r}")
        ids.append(json.loads(payload)["Meeting"]["MeetingId"])
    return ids


async def _phase(
    server: Server,
    signer: Signer | None,
    make: Any,
    concurrency: int,
    duration: float | None,
    count: int | None,
) -> PhaseResult:
    conns = [HttpConnection(server.host, server.http_port, signer) for _ in range(concurrency)]
    await asyncio.gather(*(c.connect() for c in conns))
    latencies: list[float] = []
    errors = 0
    remaining = [count if count is not None else -1]
    deadline = time.monotonic() + duration if duration is not None else float("inf")

    async def worker(conn: HttpConnection) -> None:
        nonlocal errors
        while time.monotonic() < deadline and remaining[0] != 0:
            remaining[0] -= 1
            spec = make()
            start = time.perf_counter()
            status, _ = await conn.request(spec)
            latencies.append(time.perf_counter() - start)
            if status >= 300:
                errors += 1

    before = server.sample()
    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.monotonic() - started
    after = server.sample()
    await asyncio.gather(*(c.close() for c in conns))
    return PhaseResult(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        server_cpu=(after.cpu_seconds - before.cpu_seconds) / (after.at - before.at),
    )


async def _one_run(args: argparse.Namespace) -> dict[str, PhaseResult]:
    with open_server(
        args, ["--api-rate", "1000000", "--api-burst", "1000000", "--max-active-meetings", "100000"]
    ) as server:
        signer = Signer(server.access_key_id, server.secret_access_key)
        setup = HttpConnection(server.host, server.http_port, signer)
        await setup.connect()
        expected = args.latency_requests + int(args.duration * 20000)
        meetings = await _create_meetings(setup, max(1, expected // ATTENDEES_PER_MEETING + 1))
        await setup.close()
        attendees = AttendeeRequests(meetings)
        # Warm-up: the first requests pay for imports and caches.
        await _phase(server, signer, attendees.next, 4, None, 400)
        latency = await _phase(server, signer, attendees.next, 1, None, args.latency_requests)
        throughput = await _phase(
            server, signer, attendees.next, args.concurrency, args.duration, None
        )
        health = RequestSpec("GET", "/health")
        baseline = await _phase(server, None, lambda: health, args.concurrency, args.duration, None)
        return {"latency": latency, "throughput": throughput, "baseline": baseline}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="independent runs (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load phase")
    parser.add_argument("--concurrency", type=int, default=8, help="connections under load")
    parser.add_argument("--latency-requests", type=int, default=2000)
    add_server_arguments(parser, bots=False)
    add_output_arguments(parser, plot=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    pin_to_bot_cpus(args)  # the server has CPU 0
    runs = [asyncio.run(_one_run(args)) for _ in range(args.runs)]

    def med(phase: str, attr: str) -> float:
        values = [getattr(r[phase], attr) if attr != "rate" else r[phase].rate for r in runs]
        return median(values)

    summary: dict[str, Any] = {
        "command": "python -m bench control-plane "
        f"--runs {args.runs} --duration {args.duration:g} --concurrency {args.concurrency}",
        "runs": [{k: {**asdict(v), "rate": v.rate} for k, v in r.items()} for r in runs],
        "median": {
            "create_attendee_p50_ms": med("latency", "p50_ms"),
            "create_attendee_p99_ms": med("latency", "p99_ms"),
            "create_attendee_rps": med("throughput", "rate"),
            "create_attendee_p99_ms_loaded": med("throughput", "p99_ms"),
            "server_cpu_cores_loaded": med("throughput", "server_cpu"),
            "health_rps_baseline": med("baseline", "rate"),
            "errors": sum(r["throughput"].errors + r["latency"].errors for r in runs),
        },
    }
    m: dict[str, float] = summary["median"]
    m["ratio_to_baseline"] = m["create_attendee_rps"] / m["health_rps_baseline"]
    m["create_attendee_rps_per_core"] = m["create_attendee_rps"] / max(
        m["server_cpu_cores_loaded"], 1e-9
    )
    rows = [
        ["CreateAttendee p50, 1 connection (ms)", m["create_attendee_p50_ms"], "-"],
        ["CreateAttendee p99, 1 connection (ms)", m["create_attendee_p99_ms"], "<= 5"],
        [f"CreateAttendee requests/s, {args.concurrency} connections", m["create_attendee_rps"],
         ">= 1,500"],
        ["CreateAttendee p99 under that load (ms)", m["create_attendee_p99_ms_loaded"], "-"],
        ["server CPU under that load (cores)", m["server_cpu_cores_loaded"], "<= 1"],
        ["baseline: GET /health requests/s", m["health_rps_baseline"], "-"],
        ["CreateAttendee / baseline", m["ratio_to_baseline"], "-"],
        ["errors", m["errors"], "0"],
    ]  # fmt: skip
    summary["scenario"] = "control-plane"
    finish(args, "control-plane", summary, ["measure", "value", "target"], rows)
    return summary

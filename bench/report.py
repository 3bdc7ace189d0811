"""What every server-driving scenario does around its bots: sample the server's CPU and RSS
against the attendees connected, time a measured window with a progress bar, and write
the table, the JSON and the plot at the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.options import Server, output_paths
from bench.progress import tracking
from bench.server import ProcessSample
from bench.stats import format_table

__all__ = ["Window", "cpu_between", "finish", "measured", "series", "server_counters"]


def cpu_between(a: ProcessSample, b: ProcessSample) -> float:
    """Server cores used between two samples (NaN when the server is not observable)."""
    return (b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) if b.at > a.at else math.nan


@contextlib.asynccontextmanager
async def series(
    server: Server, attendees: Callable[[], int], every: float = 1.0
) -> AsyncIterator[list[dict[str, float]]]:
    """Sample the server every ``every`` seconds while the body runs: one point per sample
    with the attendees connected, the server's cores over the interval and its RSS."""
    points: list[dict[str, float]] = []

    async def sample() -> None:
        last = server.sample()
        while True:
            await asyncio.sleep(every)
            now = server.sample()
            points.append({
                "attendees": float(attendees()),
                "server_cpu": cpu_between(last, now),
                "server_rss_mb": now.rss_bytes / 1e6,
            })  # fmt: skip
            last = now

    task = asyncio.create_task(sample())
    try:
        yield points
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def server_counters(server: Server) -> dict[str, float]:
    """The server's audio clock counters from ``GET /metrics`` (empty if unreadable), and
    this machine's UDP receive-buffer drops from /proc/net/snmp (RFC 4113 udpInErrors'
    RcvbufErrors companion; machine-wide, so other processes' drops count too)."""
    counters: dict[str, float] = {}
    try:
        with urllib.request.urlopen(server.endpoint + "/metrics", timeout=2) as response:
            text = response.read().decode()
    except (OSError, ValueError):
        text = ""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("carillon_audio_ticks_total", "carillon_audio_late_ticks_total"):
            counters[name] = float(value)
    try:
        with open("/proc/net/snmp") as f:
            udp = [line.split() for line in f if line.startswith("Udp:")]
        counters["udp_rcvbuf_errors"] = float(udp[1][udp[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        pass
    return counters


class Window:
    """Server samples (and counters) at the start and end of a measured window."""

    start: ProcessSample
    end: ProcessSample
    counters_start: dict[str, float]
    counters_end: dict[str, float]

    def rate(self, counter: str) -> float:
        """Increase of ``counter`` per second over the window (NaN if not read)."""
        if counter not in self.counters_start or counter not in self.counters_end:
            return math.nan
        return (self.counters_end[counter] - self.counters_start[counter]) / self.seconds

    @property
    def seconds(self) -> float:
        return self.end.at - self.start.at

    @property
    def server_cpu(self) -> float:
        return cpu_between(self.start, self.end)

    @property
    def server_rss_mb(self) -> float:
        return self.end.rss_bytes / 1e6

    @property
    def server_cpu_wait(self) -> float:
        """Share of the window the server was runnable but waited for a CPU."""
        return (self.end.wait_seconds - self.start.wait_seconds) / self.seconds


async def measured(server: Server, duration: float, label: str) -> Window:
    """Wait ``duration`` seconds with a progress bar, sampling the server at both ends."""
    window = Window()
    loop = asyncio.get_running_loop()
    window.counters_start = server_counters(server)
    window.start = server.sample()
    began = loop.time()
    async with tracking(f"{label}: measuring", duration, lambda: round(loop.time() - began),
                        unit="s"):  # fmt: skip
        await asyncio.sleep(duration)
    window.end = server.sample()
    window.counters_end = server_counters(server)
    return window


def finish(
    args: argparse.Namespace,
    scenario: str,
    summary: dict[str, Any],
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    note: str = "",
    plot: Callable[[dict[str, Any], Path], Path] | None = None,
) -> None:
    """Print the summary table, then write the JSON and the plot if asked for."""
    runs = len(summary.get("runs", [])) or 1
    print(f"\n{summary['command']}  (median of {runs} runs{'; ' + note if note else ''})\n")
    print(format_table(headers, rows))
    json_path, plot_path = output_paths(args, scenario)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2, default=float))
        print(f"json: {json_path}")
    if plot is not None and plot_path is not None:
        print(f"plot: {plot(summary, plot_path)}")

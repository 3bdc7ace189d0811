"""Options every server-driving scenario shares: where the server is, where the bots run,
and where the results go.

* ``--url`` (with ``--access-key-id``/``--secret-access-key``, default
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) drives a running server instead of
  starting one; ``--server-pid`` lets its CPU and RSS be read from /proc.
* ``--processes N`` spreads the bots over N worker processes (0: one per
  :data:`BOTS_PER_PROCESS` bots); ``--bot-cpus`` pins them (default: every CPU but the
  server's, CPU 0, when the benchmark starts the server itself).
* ``--json PATH``, ``--plot PATH`` and ``--out DIR`` (``DIR/<scenario>.json`` and
  ``DIR/<scenario>.png``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.server import BenchServer, RemoteServer

__all__ = [
    "BOTS_PER_PROCESS",
    "SERVER_CPU",
    "add_output_arguments",
    "add_server_arguments",
    "bot_cpus",
    "open_server",
    "output_paths",
    "pin_to_bot_cpus",
    "process_count",
]

BOTS_PER_PROCESS = 200
"""Light bots one process keeps up with comfortably (each receives 50 packets/s)."""

SERVER_CPU = 0
"""The core a server started by the benchmark is pinned to."""

Server = BenchServer | RemoteServer


def add_server_arguments(parser: argparse.ArgumentParser, *, bots: bool = True) -> None:
    group = parser.add_argument_group("server and bots")
    group.add_argument(
        "--url", default=None, help="drive this running server (default: start one on CPU 0)"
    )
    group.add_argument(
        "--access-key-id",
        default=os.environ.get("AWS_ACCESS_KEY_ID", ""),
        help="API key of the --url server (default $AWS_ACCESS_KEY_ID)",
    )
    group.add_argument(
        "--secret-access-key",
        default=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        help="API secret of the --url server (default $AWS_SECRET_ACCESS_KEY)",
    )
    group.add_argument(
        "--server-pid", type=int, default=None, help="pid of the --url server, for CPU and RSS"
    )
    if bots:
        group.add_argument(
            "--processes",
            type=int,
            default=0,
            help=f"bot processes (default 0: one per {BOTS_PER_PROCESS} bots)",
        )
        group.add_argument(
            "--bot-cpus",
            default="",
            help="comma-separated CPUs for the bots (default: all but the server's)",
        )


def add_output_arguments(parser: argparse.ArgumentParser, *, plot: bool = True) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    if plot:
        group.add_argument("--plot", type=Path, default=None, help="write the PNG plot here")
    group.add_argument(
        "--out", type=Path, default=None, help="write <scenario>.json and .png into this directory"
    )


def output_paths(args: argparse.Namespace, scenario: str) -> tuple[Path | None, Path | None]:
    """The JSON and PNG paths asked for (``--json``/``--plot`` win over ``--out``)."""
    out: Path | None = args.out
    json_path: Path | None = args.json
    plot_path: Path | None = getattr(args, "plot", None)
    if out is not None:
        json_path = json_path or out / f"{scenario}.json"
        if hasattr(args, "plot"):
            plot_path = plot_path or out / f"{scenario}.png"
    return json_path, plot_path


@contextlib.contextmanager
def open_server(args: argparse.Namespace, extra_args: Sequence[str] = ()) -> Iterator[Server]:
    """The ``--url`` server, or a fresh one pinned to :data:`SERVER_CPU`."""
    if args.url:
        if not args.access_key_id or not args.secret_access_key:
            raise SystemExit("--url needs --access-key-id and --secret-access-key (or AWS_*)")
        with RemoteServer(
            args.url, args.access_key_id, args.secret_access_key, args.server_pid
        ) as remote:
            yield remote
        return
    with BenchServer(cpu=SERVER_CPU, extra_args=list(extra_args)) as server:
        yield server


def bot_cpus(args: argparse.Namespace) -> list[int]:
    """The CPUs bots may use: ``--bot-cpus``, else every allowed CPU but the server's."""
    allowed = sorted(os.sched_getaffinity(0))
    text: str = getattr(args, "bot_cpus", "")
    if text:
        try:
            wanted = [int(c) for c in text.split(",")]
        except ValueError:
            raise SystemExit(f"--bot-cpus must list CPU numbers, not {text!r}") from None
        if not set(wanted) <= set(allowed):
            raise SystemExit(f"--bot-cpus {text}: this process may only use CPUs {allowed}")
        return wanted
    if args.url or len(allowed) < 2:
        return allowed
    return [c for c in allowed if c != SERVER_CPU]


def pin_to_bot_cpus(args: argparse.Namespace) -> None:
    """Keep this (the coordinating) process off the server's core too."""
    os.sched_setaffinity(0, set(bot_cpus(args)))


def process_count(args: argparse.Namespace, bots: int) -> int:
    """``--processes``, or one process per :data:`BOTS_PER_PROCESS` bots."""
    given: int = getattr(args, "processes", 0)
    if given < 0:
        raise SystemExit("--processes must be >= 0")
    return given or max(1, math.ceil(bots / BOTS_PER_PROCESS))

"""Bots spread over worker processes, driven one command at a time.

One core of Python bots runs out long before the server does (DTLS handshakes, WebSocket
upgrades and 50 received packets/s per bot), so scenarios run their bots in ``processes``
workers started with the ``spawn`` method, each pinned to one of the bot CPUs in turn.

The coordinating process sends a worker a command, ``(function, kwargs)``, over a pipe;
the worker awaits ``function(state, **kwargs)`` on its own uvloop event loop and sends the
result back. ``function`` is a module-level coroutine function (pickled by name) and
``state`` a :class:`WorkerState` the worker keeps between commands, so bots joined by one
command keep running (sending, counting) until a later command closes them. A worker's
exception comes back as :class:`WorkerError` with its traceback.

Workers count completed joins in one shared counter (:attr:`Fleet.joined`), which the
progress bar reads. All processes share ``time.monotonic()`` (CLOCK_MONOTONIC is
system-wide on Linux), so a time taken in one process is comparable in another: that is
how joins are scheduled across processes at an overall rate, and how a speaker's send time
in one worker meets a probe's receive time in another.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import uvloop

__all__ = ["Fleet", "WorkerError", "WorkerState", "schedule"]


class WorkerError(RuntimeError):
    """A command failed in a worker process (the message holds its traceback)."""


@dataclass
class WorkerState:
    """What one worker keeps between commands."""

    index: int
    processes: int
    joined: Synchronized[int]
    data: dict[str, Any] = field(default_factory=dict)
    """Scenario objects (bots, peers, counters), by name."""

    def count_join(self) -> None:
        with self.joined.get_lock():
            self.joined.value += 1


Command = Callable[..., Awaitable[Any]]


def schedule(t0: float, rate: float, k: int) -> float:
    """When join number ``k`` (over all processes) starts: ``t0 + k / rate``; all at ``t0``
    when ``rate`` is 0 (a burst)."""
    return t0 + k / rate if rate > 0 else t0


def _worker_main(
    conn: Connection, index: int, processes: int, cpu: int | None, joined: Synchronized[int]
) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    state = WorkerState(index, processes, joined)
    uvloop.run(_serve(conn, state))


async def _serve(conn: Connection, state: WorkerState) -> None:
    loop = asyncio.get_running_loop()
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message is None:
            break
        function, kwargs = message
        try:
            result = await function(state, **kwargs)
        except Exception:
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("ok", result))
    conn.close()


class Fleet:
    """``processes`` bot workers, pinned round-robin to ``cpus``."""

    def __init__(self, processes: int, cpus: Sequence[int]) -> None:
        if processes < 1:
            raise ValueError("a fleet needs at least one process")
        self.processes = processes
        self.cpus = list(cpus)
        context = multiprocessing.get_context("spawn")
        self.joined: Synchronized[int] = context.Value("i", 0)
        self._conns: list[Connection] = []
        self._workers: list[BaseProcess] = []
        for index in range(processes):
            parent, child = context.Pipe()
            cpu = self.cpus[index % len(self.cpus)] if self.cpus else None
            worker = context.Process(
                target=_worker_main,
                args=(child, index, processes, cpu, self.joined),
                name=f"bench-bots-{index}",
                daemon=True,
            )
            worker.start()
            child.close()
            self._conns.append(parent)
            self._workers.append(worker)

    @property
    def joined_count(self) -> int:
        return int(self.joined.value)

    async def call(
        self,
        function: Command,
        kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]] = (),
        *,
        only: Sequence[int] | None = None,
    ) -> list[Any]:
        """Run ``function(state, **kwargs)`` in the workers (``only`` some of them) and
        return their results in worker order. ``kwargs`` is one mapping for all, or a
        sequence with one mapping per worker."""
        targets = list(range(self.processes)) if only is None else list(only)
        per_worker: list[Mapping[str, Any]] = (
            [kwargs] * self.processes if isinstance(kwargs, Mapping) else list(kwargs)
        )
        if not per_worker:
            per_worker = [{}] * self.processes
        for index in targets:
            self._conns[index].send((function, per_worker[index]))
        loop = asyncio.get_running_loop()
        replies = await asyncio.gather(
            *(loop.run_in_executor(None, self._conns[i].recv) for i in targets)
        )
        results = []
        for index, (status, value) in zip(targets, replies, strict=True):
            if status != "ok":
                raise WorkerError(f"bot process {index} failed:\n{value}")
            results.append(value)
        return results

    def close(self) -> None:
        for conn, worker in zip(self._conns, self._workers, strict=True):
            if worker.is_alive():
                with contextlib.suppress(BrokenPipeError, OSError):
                    conn.send(None)
        for worker in self._workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
                worker.join()
        for conn in self._conns:
            conn.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

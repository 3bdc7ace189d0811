"""A progress bar on stderr while a benchmark runs (results go to stdout).

On a terminal it redraws one line (``\\r``); otherwise (CI logs, pipes) it prints a plain
line at most every :data:`PLAIN_INTERVAL` seconds and when a phase ends, so logs stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

__all__ = ["PLAIN_INTERVAL", "Progress", "tracking"]

PLAIN_INTERVAL = 5.0
WIDTH = 24


class Progress:
    """One phase: ``label`` with ``done`` out of ``total`` (0 total: a counter, no bar)."""

    def __init__(
        self, label: str, total: float = 0, *, stream: TextIO | None = None, unit: str = ""
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self._last_plain = float("-inf")
        self.started = time.monotonic()

    def render(self, done: float, note: str = "") -> str:
        elapsed = time.monotonic() - self.started
        unit = f" {self.unit}" if self.unit else ""
        if self.total > 0:
            fraction = min(1.0, max(0.0, done / self.total))
            filled = int(fraction * WIDTH)
            bar = "#" * filled + "." * (WIDTH - filled)
            text = f"{self.label} [{bar}] {done:g}/{self.total:g}{unit}"
        else:
            text = f"{self.label}: {done:g}{unit}"
        text += f" {elapsed:.0f}s"
        return f"{text}  {note}" if note else text

    def update(self, done: float, note: str = "") -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self.render(done, note) + "\x1b[K")
            self.stream.flush()
        elif now - self._last_plain >= PLAIN_INTERVAL:
            self._last_plain = now
            self.stream.write(self.render(done, note) + "\n")
            self.stream.flush()

    def finish(self, done: float, note: str = "") -> None:
        text = self.render(done, note)
        self.stream.write(("\r" + text + "\x1b[K\n") if self.tty else text + "\n")
        self.stream.flush()


@contextlib.asynccontextmanager
async def tracking(
    label: str,
    total: float,
    read: Callable[[], float],
    *,
    unit: str = "",
    note: Callable[[], str] | None = None,
    every: float = 0.25,
) -> AsyncIterator[Progress]:
    """Redraw ``label``'s bar from ``read()`` every ``every`` seconds while the body runs."""
    progress = Progress(label, total, unit=unit)

    async def refresh() -> None:
        while True:
            progress.update(read(), note() if note else "")
            await asyncio.sleep(every)

    task = asyncio.create_task(refresh())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        progress.finish(read(), note() if note else "")

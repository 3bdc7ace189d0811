"""The events log: every meeting event as one JSON line, rotated by size.

``<data dir>/events.jsonl`` receives each event's JSON (the same text the webhooks get)
followed by a newline, in emission order. When writing a line would make the file larger
than ``max_bytes``, the file is rotated: ``events.jsonl.1`` becomes ``.2`` and so on,
keeping ``keep`` old files, and the current file becomes ``events.jsonl.1``. Replay with,
e.g., ``cat $(ls -r events.jsonl.*) events.jsonl | jq .``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["EventLog"]

logger = logging.getLogger(__name__)


class EventLog:
    """An append-only JSON-lines file with size-based rotation.

    Args:
        path: the current file (created with its directory if missing).
        max_bytes: rotate before a write that would pass this size.
        keep: rotated files kept (``path.1`` is the newest); at least 1.
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("max_bytes and keep must be >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = path.open("ab")
        self._size = self._file.tell()
        self.errors = 0

    def write(self, body: bytes) -> None:
        """Append one line (``body`` must not contain a newline) and flush it."""
        if self._file is None:
            return
        line = body + b"\n"
        try:
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            self._size += len(line)
        except OSError as exc:
            self.errors += 1
            logger.warning("events log %s: %s", self.path, exc)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for index in range(self.keep - 1, 0, -1):
            source = self.path.with_name(f"{self.path.name}.{index}")
            if source.exists():
                os.replace(source, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")
        self._size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

"""Persistence of the registry behind a narrow interface.

The registry keeps everything in memory and writes each change through to a
:class:`MeetingStore`. :class:`SqliteStore` is the embedded implementation (one file in the
data directory, WAL journal, each change committed before the API answers, so a crash or
SIGTERM after a response loses nothing). A networked store for several nodes implements the
same Protocol.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["IdempotencyRecord", "MeetingStore", "SqliteStore", "StoredState"]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The response a ClientRequestToken produced, kept until ``expires_at`` (wall time)."""

    key: str
    response: dict[str, Any]
    expires_at: float


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything a store holds, as loaded at start-up."""

    meetings: list[dict[str, Any]]
    attendees: list[tuple[str, dict[str, Any]]]
    """(meeting id, attendee record) pairs."""
    idempotency: list[IdempotencyRecord]


class MeetingStore(Protocol):
    """What the registry needs from persistence."""

    def load(self) -> StoredState: ...

    def save_meeting(self, meeting_id: str, record: dict[str, Any]) -> None: ...

    def delete_meeting(self, meeting_id: str) -> None:
        """Delete the meeting and all its attendees."""
        ...

    def save_attendees(self, meeting_id: str, records: list[dict[str, Any]]) -> None: ...

    def delete_attendee(self, attendee_id: str) -> None: ...

    def save_idempotency(self, record: IdempotencyRecord) -> None: ...

    def purge_idempotency(self, now: float) -> None:
        """Forget records whose ``expires_at`` is before ``now``."""
        ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meetings (
    meeting_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS attendees (
    attendee_id TEXT PRIMARY KEY,
    meeting_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attendees_by_meeting ON attendees (meeting_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    expires_at REAL NOT NULL
);
PRAGMA user_version = 1;
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteStore:
    """The embedded store: ``carillon.sqlite3`` in the data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with synchronous=NORMAL: a committed change survives a process crash; only a
        # power loss can lose the last few, which is the usual trade-off for a server.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # Checkpoints (copying the WAL into the database file, with an fsync) would stall
        # the request that happens to trigger one; a background thread runs them instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpointer = _Checkpointer(path)
        self._checkpointer.start()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def load(self) -> StoredState:
        meetings = [json.loads(r) for (r,) in self._db.execute("SELECT record FROM meetings")]
        attendees = [
            (m, json.loads(r))
            for m, r in self._db.execute(
                "SELECT meeting_id, record FROM attendees ORDER BY meeting_id, seq"
            )
        ]
        idem = [
            IdempotencyRecord(k, json.loads(r), e)
            for k, r, e in self._db.execute("SELECT key, response, expires_at FROM idempotency")
        ]
        return StoredState(meetings, attendees, idem)

    def save_meeting(self, meeting_id: str, record: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO meetings (meeting_id, record) VALUES (?, ?)",
                (meeting_id, _dumps(record)),
            )

    def delete_meeting(self, meeting_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM attendees WHERE meeting_id = ?", (meeting_id,))
            db.execute("DELETE FROM meetings WHERE meeting_id = ?", (meeting_id,))

    def save_attendees(self, meeting_id: str, records: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO attendees (attendee_id, meeting_id, seq, record)"
                " VALUES (?, ?, ?, ?)",
                [(r["AttendeeId"], meeting_id, r["Seq"], _dumps(r)) for r in records],
            )

    def delete_attendee(self, attendee_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM attendees WHERE attendee_id = ?", (attendee_id,))

    def save_idempotency(self, record: IdempotencyRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO idempotency (key, response, expires_at) VALUES (?, ?, ?)",
                (record.key, _dumps(record.response), record.expires_at),
            )

    def purge_idempotency(self, now: float) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM idempotency WHERE expires_at < ?", (now,))

    def close(self) -> None:
        self._checkpointer.stop()
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


class _Checkpointer(threading.Thread):
    """Runs a passive WAL checkpoint every ``interval`` seconds on its own connection."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self._path = path
        self._interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None)
        try:
            while not self._stopped.wait(self._interval):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stopped.set()
        self.join()


class _Transaction:
    """``with`` block around one write transaction (BEGIN IMMEDIATE … COMMIT)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


def iter_records(state: StoredState) -> Iterator[dict[str, Any]]:
    """All meeting records of a loaded state (helper for tools)."""
    yield from state.meetings

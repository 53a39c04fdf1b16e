"""The tag service's desired-state store: one SQLite row per tag, what it should show and what it shows.

Why desired state rather than a job queue: a price change is "tag 1/5 should show image H", not "send
image H to tag 1/5 once". If the gateway restarts, the bus is down for an hour or the cloud sends three
price changes for the same tag while it is unreachable, the service just converges every tag to its
latest desired image; nothing is replayed twice and nothing is lost (the row is committed before the
command is answered). ``applied_hash`` is what the tag confirmed showing, so a desired image equal to it
is never sent again (skip-unchanged), and ``staged_hash`` is an image already transferred into the
tag's spare slot for a timed display.

The store is used from one thread only (the service runs it on a single-thread executor, so SQLite never
blocks the event loop); the service keeps an in-memory copy of the rows and writes changes through.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TagRecord", "TagState", "TagStore"]


class TagState:
    """Values of :attr:`TagRecord.state`."""

    IDLE = "idle"  # nothing desired yet (or desired == applied since the last change)
    PENDING = "pending"  # a desired image waits to be sent (possibly after a back-off)
    STAGED = "staged"  # transferred into the spare slot; shown at ``show_at``
    APPLIED = "applied"  # the tag confirmed showing the desired image
    FAILED = "failed"  # retries exhausted; the next command for this tag tries again


@dataclass
class TagRecord:
    """One tag's row. Times are Unix seconds."""

    address: str
    bus: str
    panel: str
    state: str = TagState.IDLE
    desired_hash: str | None = None
    desired_image: bytes | None = None
    desired_request: str | None = None
    desired_at: float | None = None
    show_at: float | None = None
    priority: int = 0
    staged_hash: str | None = None
    applied_hash: str | None = None
    applied_at: float | None = None
    battery_mv: int | None = None
    signal: int | None = None
    last_seen: float | None = None
    last_error: str | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    bytes_sent: int = 0
    updates: int = 0

    def public(self) -> dict[str, Any]:
        """The row without the image bytes (for results, status commands and the field CLI)."""
        data = dataclasses.asdict(self)
        del data["desired_image"]
        return data


_FIELDS = [f.name for f in dataclasses.fields(TagRecord)]
_COLUMN_TYPES = {
    "address": "TEXT PRIMARY KEY",
    "bus": "TEXT NOT NULL",
    "panel": "TEXT NOT NULL",
    "state": "TEXT NOT NULL",
    "desired_image": "BLOB",
    "priority": "INTEGER NOT NULL",
    "attempts": "INTEGER NOT NULL",
    "next_attempt_at": "REAL NOT NULL",
    "bytes_sent": "INTEGER NOT NULL",
    "updates": "INTEGER NOT NULL",
}


class TagStore:
    """SQLite file of :class:`TagRecord` rows (WAL; confined to one thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        columns = ", ".join(f"{name} {_COLUMN_TYPES.get(name, '')}".strip() for name in _FIELDS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS tags ({columns})")
        # Bluetooth tags: the onboarding record of each (BLE address, keys, display information), as JSON
        self._db.execute("CREATE TABLE IF NOT EXISTS ble_records (address TEXT PRIMARY KEY, bus TEXT, record TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def load(self) -> list[TagRecord]:
        rows = self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM tags ORDER BY address").fetchall()
        return [TagRecord(**dict(zip(_FIELDS, row, strict=True))) for row in rows]

    def save(self, records: list[TagRecord]) -> None:
        """Insert or replace ``records`` in one transaction."""
        if not records:
            return
        placeholders = ", ".join("?" for _ in _FIELDS)
        rows = [tuple(getattr(record, name) for name in _FIELDS) for record in records]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(f"INSERT OR REPLACE INTO tags ({', '.join(_FIELDS)}) VALUES ({placeholders})", rows)

    def ble_records(self, bus: str) -> dict[str, str]:
        """ESL address -> onboarding record (JSON) of the Bluetooth tags on ``bus``."""
        rows = self._db.execute("SELECT address, record FROM ble_records WHERE bus = ?", (bus,)).fetchall()
        return {address: record for address, record in rows}

    def save_ble_record(self, bus: str, address: str, record: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO ble_records (address, bus, record) VALUES (?, ?, ?)", (address, bus, record)
        )

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self._db.close()

"""Durable outbox: every uplink message is on disk before it is published, and is deleted only after
the broker's PUBACK.

Two layers:

* :class:`OutboxStore` is synchronous SQLite (WAL). It owns the sequence counters: the per-gateway
  ``seq`` (the message id) and the per-stream ``stream_seq`` are allocated inside the same transaction
  that stores the message, so a crash can neither lose a committed message nor reuse an id. The envelope
  bytes are built at insert time and never change, so every redelivery is byte-identical.
* :class:`Outbox` is the asyncio face. All SQLite work runs on one dedicated thread (never on the event
  loop). ``put()`` uses group commit: concurrent producers are written in one transaction and each
  ``await`` returns once its message is durable. Acks are batched into deletes the same way.

Bounds are explicit. The outbox is limited by total bytes and by message age; when full, the configured
policy either drops the oldest messages or refuses the newest. Every drop is counted per stream and
reason in the database (so the counts survive restarts) and reported in health messages: never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.core.config import DropPolicy, OutboxConfig, OutboxSync
from agents.core.errors import MessageTooLarge
from protocols.mqtt_v1 import check_stream, encode_data, encode_envelope

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    stream TEXT PRIMARY KEY,
    last_stream_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS drops (
    stream TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (stream, reason)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Upper bound of an envelope's bytes besides data, gateway id (twice) and stream name: keys, two 20-digit
# sequence numbers and a timestamp.
_ENVELOPE_OVERHEAD = 160

DROP_LOG_INTERVAL_S = 10.0

# Reasons a message can leave the outbox without a PUBACK.
DROP_FULL = "full"  # outbox over max_bytes (drop_oldest evicts, drop_newest refuses)
DROP_AGE = "age"  # older than max_age
DROP_REJECTED = "rejected"  # the broker answered the publish with an MQTT 5 error reason code


@dataclass(frozen=True)
class OutboxRow:
    """A stored message ready to publish."""

    seq: int
    stream: str
    stream_seq: int
    topic: str
    payload: bytes
    ts: float


@dataclass(frozen=True)
class PutResult:
    """Outcome of one ``put``: ``seq`` is None when the drop_newest policy refused the message."""

    seq: int | None
    stream_seq: int | None

    @property
    def accepted(self) -> bool:
        return self.seq is not None


@dataclass
class OutboxStats:
    backlog_messages: int = 0
    backlog_bytes: int = 0
    oldest_ts: float | None = None
    last_seq: int = 0
    accepted: int = 0  # accepted by this process
    acked: int = 0  # acked by the broker in this process
    dropped: dict[str, int] = field(default_factory=dict)  # "<reason>" -> count, all time (persisted)

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "backlog_messages": self.backlog_messages,
            "backlog_bytes": self.backlog_bytes,
            "oldest_age_s": None if self.oldest_ts is None else round(max(0.0, now - self.oldest_ts), 3),
            "last_seq": self.last_seq,
            "accepted": self.accepted,
            "acked": self.acked,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
        }


@dataclass
class PreparedBatch:
    """Rows with sequence numbers allocated, ready for :meth:`OutboxStore.commit_prepared`."""

    results: list[PutResult] = field(default_factory=list)
    rows: list[OutboxRow] = field(default_factory=list)
    refused: dict[tuple[str, str], int] = field(default_factory=dict)


class OutboxStore:
    """Synchronous SQLite outbox. Not thread-safe: :class:`Outbox` confines it to one thread."""

    def __init__(self, path: Path, config: OutboxConfig, *, gateway_id: str, topic_for: Callable[[str], str]):
        self.path = path
        self.config = config
        self.gateway_id = gateway_id
        self._topic_for = topic_for
        self._topics: dict[str, str] = {}  # stream -> topic, validated once
        self._drop_logged_at: dict[tuple[str, str], float] = {}
        self._unlogged_drops: dict[tuple[str, str], int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if config.sync is OutboxSync.FULL else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
        self._last_seq: int = row[0] if row else 0
        self._stream_seq: dict[str, int] = dict(self._db.execute("SELECT stream, last_stream_seq FROM streams"))
        count, size, oldest = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0), MIN(ts) FROM outbox"
        ).fetchone()
        self.stats = OutboxStats(backlog_messages=count, backlog_bytes=size, oldest_ts=oldest, last_seq=self._last_seq)
        for reason, total in self._db.execute("SELECT reason, SUM(count) FROM drops GROUP BY reason"):
            self.stats.dropped[reason] = total

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    # -- writes ---------------------------------------------------------------------------------

    def prepare(self, items: list[tuple[str, bytes, float]]) -> PreparedBatch:
        """CPU half of an append (no SQL): allocate sequence numbers and build the envelopes.

        Kept apart from :meth:`commit_prepared` so the event loop can do this work while the SQLite
        thread only writes. The batch must be committed before the next one is prepared; if the commit
        fails, the counters are reloaded from the database so no sequence number is skipped.
        """
        batch = PreparedBatch()
        topics = self._topics
        limit = int(self.config.max_bytes)
        projected = self.stats.backlog_bytes
        for stream, data_json, ts in items:
            stream_seq = self._stream_seq.get(stream, 0) + 1
            seq = self._last_seq + 1
            topic = topics.get(stream) or topics.setdefault(stream, self._topic_for(stream))
            payload = encode_envelope(
                gateway_id=self.gateway_id, stream=stream, seq=seq, stream_seq=stream_seq, ts=ts, data_json=data_json
            )
            size = len(payload) + len(topic)
            if projected + size > limit and self.config.drop_policy is DropPolicy.DROP_NEWEST:
                key = (stream, DROP_FULL)
                batch.refused[key] = batch.refused.get(key, 0) + 1
                batch.results.append(PutResult(None, None))
                continue
            projected += size
            self._last_seq = seq
            self._stream_seq[stream] = stream_seq
            batch.rows.append(OutboxRow(seq, stream, stream_seq, topic, payload, ts))
            batch.results.append(PutResult(seq, stream_seq))
        return batch

    def commit_prepared(self, batch: PreparedBatch) -> list[int]:
        """Write a prepared batch in one transaction; returns the seqs evicted by ``drop_oldest``."""
        evicted: list[int] = []
        limit = int(self.config.max_bytes)
        drops = dict(batch.refused)
        pending: list[tuple[int, str, int, float, str, bytes]] = []
        touched: dict[str, int] = {}
        with self._transaction():
            for row in batch.rows:
                pending.append((row.seq, row.stream, row.stream_seq, row.ts, row.topic, row.payload))
                touched[row.stream] = row.stream_seq
                self.stats.backlog_messages += 1
                self.stats.backlog_bytes += len(row.payload) + len(row.topic)
                if self.stats.oldest_ts is None:
                    self.stats.oldest_ts = row.ts
                if self.stats.backlog_bytes > limit:
                    # Evicting needs the pending rows on disk first, so that the oldest is found in SQL.
                    self._insert_rows(pending)
                    pending = []
                    evicted.extend(self._evict_oldest(limit, drops))
            self._insert_rows(pending)
            self._db.executemany(
                "INSERT INTO streams (stream, last_stream_seq) VALUES (?, ?) "
                "ON CONFLICT(stream) DO UPDATE SET last_stream_seq = excluded.last_stream_seq",
                touched.items(),
            )
            self._record_drops(drops)
        self.stats.last_seq = self._last_seq
        self.stats.accepted += len(batch.rows)
        return evicted

    def append_many(self, items: list[tuple[str, bytes, float]]) -> tuple[list[PutResult], list[int]]:
        """Prepare and commit in one call: ``(stream, data_json, ts)`` items -> (results, evicted seqs)."""
        batch = self.prepare(items)
        return batch.results, self.commit_prepared(batch)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; on any failure roll back and reload the in-memory counters."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._reload_counters()
            raise

    def _insert_rows(self, rows: list[tuple[int, str, int, float, str, bytes]]) -> None:
        self._db.executemany(
            "INSERT INTO outbox (seq, stream, stream_seq, ts, topic, payload) VALUES (?, ?, ?, ?, ?, ?)", rows
        )

    def _evict_oldest(self, limit: int, drops: dict[tuple[str, str], int]) -> list[int]:
        evicted = []
        while self.stats.backlog_bytes > limit:
            row = self._db.execute(
                "SELECT seq, stream, LENGTH(payload) + LENGTH(topic) FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                break
            seq, stream, size = row
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            evicted.append(seq)
            self.stats.backlog_messages -= 1
            self.stats.backlog_bytes -= size
            drops[(stream, DROP_FULL)] = drops.get((stream, DROP_FULL), 0) + 1
        self._refresh_oldest()
        return evicted

    def _record_drops(self, drops: dict[tuple[str, str], int]) -> None:
        for (stream, reason), count in drops.items():
            self._db.execute(
                "INSERT INTO drops (stream, reason, count) VALUES (?, ?, ?) "
                "ON CONFLICT(stream, reason) DO UPDATE SET count = count + excluded.count",
                (stream, reason, count),
            )
            self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + count
            # Counted always, logged at most every DROP_LOG_INTERVAL_S per stream and reason.
            key = (stream, reason)
            self._unlogged_drops[key] = self._unlogged_drops.get(key, 0) + count
            now = time.monotonic()
            if now - self._drop_logged_at.get(key, -DROP_LOG_INTERVAL_S) >= DROP_LOG_INTERVAL_S:
                log.warning(
                    "outbox dropped %d message(s) of stream %r (reason: %s) since the last report",
                    self._unlogged_drops.pop(key),
                    stream,
                    reason,
                )
                self._drop_logged_at[key] = now

    def _reload_counters(self) -> None:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
        self._last_seq = row[0] if row else 0
        self._stream_seq = dict(self._db.execute("SELECT stream, last_stream_seq FROM streams"))
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) FROM outbox"
        ).fetchone()
        self.stats.backlog_messages, self.stats.backlog_bytes = count, size
        self._refresh_oldest()

    def _refresh_oldest(self) -> None:
        row = self._db.execute("SELECT ts FROM outbox ORDER BY seq LIMIT 1").fetchone()
        self.stats.oldest_ts = row[0] if row else None

    def delete(self, seqs: Iterable[int], *, drop_reason: str | None = None) -> int:
        """Delete acknowledged (or rejected) messages; returns how many were still present."""
        seqs = list(seqs)
        if not seqs:
            return 0
        removed = 0
        drops: dict[tuple[str, str], int] = {}
        with self._transaction():
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT stream, LENGTH(payload) + LENGTH(topic) FROM outbox WHERE seq IN ({marks})", chunk
                ).fetchall()
                self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)
                for stream, size in rows:
                    removed += 1
                    self.stats.backlog_messages -= 1
                    self.stats.backlog_bytes -= size
                    if drop_reason:
                        drops[(stream, drop_reason)] = drops.get((stream, drop_reason), 0) + 1
            self._record_drops(drops)
        if drop_reason is None:
            self.stats.acked += removed
        self._refresh_oldest()
        return removed

    def delete_known(self, rows: list[tuple[int, str, int]]) -> None:
        """Delete acknowledged rows whose ``(seq, stream, size)`` the caller knows to be stored.

        The fast path for PUBACKs: acknowledged seqs come in runs, so one range delete per run.
        """
        if not rows:
            return
        ranges: list[tuple[int, int]] = []
        for seq, _stream, _size in sorted(rows):
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)
        self.stats.backlog_messages -= len(rows)
        self.stats.backlog_bytes -= sum(size for *_, size in rows)
        self.stats.acked += len(rows)
        if self.stats.backlog_messages == 0:
            self.stats.oldest_ts = None
        elif self.stats.oldest_ts is not None:
            self._refresh_oldest()

    def expire(self, now: float) -> list[int]:
        """Drop messages older than ``max_age`` (counted as reason ``age``); returns their seqs."""
        cutoff = now - self.config.max_age.total_seconds()
        seqs = [s for (s,) in self._db.execute("SELECT seq FROM outbox WHERE ts < ? ORDER BY seq", (cutoff,))]
        self.delete(seqs, drop_reason=DROP_AGE)
        return seqs

    # -- reads ----------------------------------------------------------------------------------

    def read_after(self, seq: int, limit: int) -> list[OutboxRow]:
        rows = self._db.execute(
            "SELECT seq, stream, stream_seq, topic, payload, ts FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [OutboxRow(s, st, ss, t, bytes(p), ts) for s, st, ss, t, p, ts in rows]

    def stream_position(self, stream: str) -> int:
        """Last ``stream_seq`` ever allocated on ``stream`` (0 if none): lets producers resume exactly."""
        return self._stream_seq.get(stream, 0)

    def drops_by_stream(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for stream, reason, count in self._db.execute("SELECT stream, reason, count FROM drops"):
            out.setdefault(stream, {})[reason] = count
        return out


class Outbox:
    """Asyncio facade over :class:`OutboxStore`: group-committed puts, batched acks, age sweeps.

    Run :meth:`serve` as a task for as long as the outbox is used; it performs the writes.
    """

    def __init__(self, store: OutboxStore, *, sweep_interval_s: float = 10.0, cache_limit: int = 20000) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-sqlite")
        self._pending: list[tuple[list[tuple[str, bytes]], float, asyncio.Future[list[PutResult]]]] = []
        self._acks: list[int] = []
        self._acks_since = 0.0
        self.ack_batch = 500
        self.ack_linger_s = 0.1
        self._rejects: list[int] = []
        self._work = asyncio.Event()
        self._sweep_interval_s = sweep_interval_s
        self._commit_listeners: list[Callable[[], None]] = []
        # Rows committed by this process and not yet deleted, kept so the publisher need not read SQLite
        # back. Touched only on the event loop. Invariant: every stored row with seq >= _cache_floor is
        # in _cache (older rows, e.g. a backlog from before a restart, are read from SQLite).
        self._cache: dict[int, OutboxRow] = {}
        self._cache_floor = store.stats.last_seq + 1
        self._cache_limit = cache_limit
        self._serving = False
        self._closed = False

    @classmethod
    def open(cls, path: Path, config: OutboxConfig, *, gateway_id: str, topic_for: Callable[[str], str]) -> Outbox:
        return cls(OutboxStore(path, config, gateway_id=gateway_id, topic_for=topic_for))

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def stats(self) -> OutboxStats:
        return self.store.stats

    async def put(self, stream: str, data: Any) -> PutResult:
        """Store one message durably; returns once it is committed (or refused by drop_newest)."""
        return (await self.put_many([(stream, data)]))[0]

    async def put_many(self, items: list[tuple[str, Any]]) -> list[PutResult]:
        """Store ``(stream, data)`` messages durably, in order, in one commit; returns when committed.

        Raises :class:`MessageTooLarge` (storing none of them) if any message exceeds the limit.
        """
        if self._closed:
            raise RuntimeError("outbox is closed")
        limit = int(self.store.config.max_message_bytes)
        encoded = []
        for stream, data in items:
            if stream not in self.store._topics:
                check_stream(stream)
            # Serialise once, and check the size before queueing so one oversized message cannot fail
            # a whole commit batch. The envelope adds a bounded header (see _ENVELOPE_OVERHEAD).
            data_json = encode_data(data)
            size = len(data_json) + _ENVELOPE_OVERHEAD + 2 * len(self.store.gateway_id) + len(stream)
            if size > limit:
                raise MessageTooLarge(f"message on {stream!r} is about {size} bytes; limit is {limit}")
            encoded.append((stream, data_json))
        ts = time.time()
        future: asyncio.Future[list[PutResult]] = asyncio.get_running_loop().create_future()
        self._pending.append((encoded, ts, future))
        self._work.set()
        return await future

    def ack(self, seq: int) -> None:
        """The broker acknowledged ``seq``; it is deleted in the next batch."""
        if not self._acks:
            self._acks_since = time.monotonic()
            self._work.set()  # the writer arms its ack_linger_s deadline
        self._acks.append(seq)
        if len(self._acks) >= self.ack_batch:
            self._work.set()

    def reject(self, seq: int) -> None:
        """The broker refused ``seq`` (MQTT 5 reason code >= 0x80): drop it, counted as ``rejected``."""
        self._rejects.append(seq)
        self._work.set()

    async def read_after(self, seq: int, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` stored messages with a sequence above ``seq``, in order."""
        if seq + 1 >= self._cache_floor:
            rows = []
            for candidate in range(seq + 1, self.store.stats.last_seq + 1):
                row = self._cache.get(candidate)
                if row is not None:
                    rows.append(row)
                    if len(rows) >= limit:
                        break
            return rows
        stored: list[OutboxRow] = await self._run(self.store.read_after, seq, limit)
        return stored

    def _forget(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            self._cache.pop(seq, None)

    def add_commit_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) after each commit of new messages."""
        self._commit_listeners.append(callback)

    def remove_commit_listener(self, callback: Callable[[], None]) -> None:
        self._commit_listeners.remove(callback)

    async def stream_position(self, stream: str) -> int:
        position: int = await self._run(self.store.stream_position, stream)
        return position

    async def drops_by_stream(self) -> dict[str, dict[str, int]]:
        drops: dict[str, dict[str, int]] = await self._run(self.store.drops_by_stream)
        return drops

    async def serve(self) -> None:
        """Writer loop: commit pending puts, delete acked messages, expire old ones. Runs until cancelled."""
        if self._serving:
            raise RuntimeError("Outbox.serve is already running")
        self._serving = True
        next_sweep = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_sweep:
                    self._forget(await self._run(self.store.expire, time.time()))
                    next_sweep = now + self._sweep_interval_s
                deadline = next_sweep
                if self._acks:
                    deadline = min(deadline, self._acks_since + self.ack_linger_s)
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                    # that arrives as the event is set, and the writer would never stop.
                    async with asyncio.timeout(max(0.0, deadline - now)):
                        await self._work.wait()
                except TimeoutError:
                    pass
                self._work.clear()
                # Puts are committed at once (a producer is waiting). PUBACK deletions wait for a larger
                # batch or ack_linger_s: fewer, longer range deletes, at the price of a few more
                # redeliveries after a crash (harmless: the cloud de-duplicates by id).
                flush_acks = len(self._acks) >= self.ack_batch or (
                    bool(self._acks) and time.monotonic() >= self._acks_since + self.ack_linger_s
                )
                await self._flush_once(include_acks=flush_acks)
        finally:
            self._serving = False

    async def _flush_once(self, *, include_acks: bool = True) -> None:
        batch, self._pending = self._pending, []
        if batch:
            rows = [(stream, data_json, ts) for encoded, ts, _ in batch for stream, data_json in encoded]
            prepared = self.store.prepare(rows)
            results, stored = prepared.results, prepared.rows
            commit = asyncio.get_running_loop().run_in_executor(self._executor, self.store.commit_prepared, prepared)
            cancelled = False
            try:
                try:
                    evicted = await asyncio.shield(commit)
                except asyncio.CancelledError:
                    # The write is already under way on the SQLite thread: let it finish, so its producers
                    # learn the truth (stored or failed), then stop as asked.
                    cancelled = True
                    evicted = await commit
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for row in stored:
                self._cache[row.seq] = row
            self._forget(evicted)
            while len(self._cache) > self._cache_limit:
                # Oldest first (dicts keep insertion order, and seqs are inserted in increasing order).
                oldest = next(iter(self._cache))
                del self._cache[oldest]
                self._cache_floor = oldest + 1
            start = 0
            for encoded, _, future in batch:
                if not future.done():
                    future.set_result(results[start : start + len(encoded)])
                start += len(encoded)
            for listener in list(self._commit_listeners):
                listener()
            if cancelled:
                raise asyncio.CancelledError
        acks: list[int] = []
        if include_acks:
            # A message resent after a reconnect can be acknowledged twice within one batch.
            acks, self._acks = list(dict.fromkeys(self._acks)), []
        if acks:
            known = [
                (q, r.stream, len(r.payload) + len(r.topic)) for q in acks if (r := self._cache.get(q)) is not None
            ]
            unknown = [q for q in acks if q not in self._cache]
            await self._run(self.store.delete_known, known)
            if unknown:
                await self._run(self.store.delete, unknown)
            self._forget(acks)
        rejects, self._rejects = self._rejects, []
        if rejects:
            await self._run(lambda: self.store.delete(rejects, drop_reason=DROP_REJECTED))
            self._forget(rejects)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._serving:
            await self._flush_once()
        for *_, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("outbox closed before the message was stored"))
        self._pending.clear()
        await self._run(self.store.close)
        self._executor.shutdown(wait=True)

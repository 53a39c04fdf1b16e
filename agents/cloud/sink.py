"""The cloud sink: a small MQTT subscriber that stores what gateways send and checks it.

It is the reference consumer of the v1 schema (``protocols/mqtt_v1.md``), used by ``storeedge cloud``,
by the simulator and by the fault tests:

* every envelope is stored in SQLite before paho sends its PUBACK (the insert runs inside paho's
  ``on_message``), so a sink crash cannot lose an acknowledged message;
* duplicates are dropped by ``id`` (QoS 1 is at least once) and counted;
* per gateway and stream it reports gaps in ``stream_seq`` and messages that arrived out of order;
* retained status messages (birth / Last Will) are kept per gateway.

It subscribes with a persistent session (fixed client id, clean session off), so the broker queues
traffic for it while it is away; the broker must keep sessions across its own restarts for that to hold
(mosquitto: ``persistence true``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from agents.core.config import BrokerUrl, MqttProtocol, TlsConfig
from agents.uplink.mqtt_session import MqttSession, SessionOptions
from protocols.errors import ProtocolError
from protocols.mqtt_v1 import COMMAND, ROOT, STATUS, decode_envelope, parse_topic

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    arrival INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    gateway TEXT NOT NULL,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream_seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_stream ON messages (gateway, stream, stream_seq);
CREATE TABLE IF NOT EXISTS status (
    topic TEXT PRIMARY KEY, gateway TEXT NOT NULL, payload TEXT NOT NULL, received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SinkStore:
    """The sink's SQLite database. Thread-safe through one lock (writes come from paho's thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._max_seen: dict[tuple[str, str], int] = {
            (g, s): m
            for g, s, m in self._db.execute("SELECT gateway, stream, MAX(stream_seq) FROM messages GROUP BY 1, 2")
        }
        self.counters: dict[str, int] = dict(self._db.execute("SELECT name, value FROM counters"))

    def _bump(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            (name,),
        )

    def store(self, topic: str, payload: bytes) -> str:
        """Store one inbound message; returns what happened: stored, duplicate, status, ignored, invalid."""
        try:
            parsed = parse_topic(topic)
        except ProtocolError:
            with self._lock:
                self._bump("invalid")
            return "invalid"
        if parsed.suffix == COMMAND:
            return "ignored"  # downlink traffic, not ours to store
        now = time.time()
        with self._lock:
            if parsed.suffix == STATUS:
                self._db.execute(
                    "INSERT OR REPLACE INTO status (topic, gateway, payload, received_at) VALUES (?, ?, ?, ?)",
                    (topic, parsed.gateway_id, payload.decode("utf-8", "replace"), now),
                )
                return "status"
            try:
                env = decode_envelope(payload)
            except ProtocolError as exc:
                log.warning("sink: invalid payload on %s: %s", topic, exc)
                self._bump("invalid")
                return "invalid"
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT OR IGNORE INTO messages (id, gateway, stream, seq, stream_seq, ts, topic, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (env.id, env.gateway, env.stream, env.seq, env.stream_seq, env.ts, topic, payload, now),
            )
            if cur.rowcount == 0:
                self._bump("duplicates")
                self._db.execute("COMMIT")
                return "duplicate"
            key = (env.gateway, env.stream)
            if env.stream_seq < self._max_seen.get(key, 0):
                self._bump("out_of_order")
            self._max_seen[key] = max(env.stream_seq, self._max_seen.get(key, 0))
            self._bump("stored")
            self._db.execute("COMMIT")
            return "stored"

    def report(self, *, max_ranges: int = 20) -> dict[str, Any]:
        """Counts, duplicates, gaps per stream, and the latest status per gateway."""
        with self._lock:
            streams: dict[str, dict[str, Any]] = {}
            rows = self._db.execute(
                "SELECT gateway, stream, COUNT(*), MAX(stream_seq) FROM messages GROUP BY gateway, stream"
            ).fetchall()
            for gateway, stream, count, top in rows:
                missing = top - count
                entry: dict[str, Any] = {"received": count, "max_stream_seq": top, "missing": missing}
                if missing:
                    entry["missing_ranges"] = self._missing_ranges(gateway, stream, max_ranges)
                streams[f"{gateway}/{stream}"] = entry
            statuses = {
                gateway: json.loads(payload) if payload.startswith("{") else payload
                for gateway, payload in self._db.execute("SELECT gateway, payload FROM status")
            }
            return {
                "received_unique": sum(s["received"] for s in streams.values()),
                "duplicates": self.counters.get("duplicates", 0),
                "invalid": self.counters.get("invalid", 0),
                "out_of_order": self.counters.get("out_of_order", 0),
                "missing": sum(s["missing"] for s in streams.values()),
                "streams": streams,
                "status": statuses,
            }

    def _missing_ranges(self, gateway: str, stream: str, limit: int) -> list[list[int]]:
        ranges: list[list[int]] = []
        expected = 1
        for (value,) in self._db.execute(
            "SELECT stream_seq FROM messages WHERE gateway = ? AND stream = ? ORDER BY stream_seq", (gateway, stream)
        ):
            if value > expected:
                ranges.append([expected, value - 1])
                if len(ranges) >= limit:
                    break
            expected = value + 1
        return ranges

    def stream_in_arrival_order(self, gateway: str, stream: str) -> list[int]:
        """``stream_seq`` values of one stream in the order they first arrived (for order checks)."""
        with self._lock:
            return [
                v
                for (v,) in self._db.execute(
                    "SELECT stream_seq FROM messages WHERE gateway = ? AND stream = ? ORDER BY arrival",
                    (gateway, stream),
                )
            ]

    def stream_data(self, gateway: str, stream: str) -> list[Any]:
        """The ``data`` of every stored message of one stream, in order of first arrival."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM messages WHERE gateway = ? AND stream = ? ORDER BY arrival", (gateway, stream)
            ).fetchall()
        return [json.loads(payload)["data"] for (payload,) in rows]

    def received_ids(self, gateway: str) -> set[int]:
        with self._lock:
            return {s for (s,) in self._db.execute("SELECT seq FROM messages WHERE gateway = ?", (gateway,))}

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CloudSink:
    """Subscribes to ``storeedge/v1/#`` and stores everything in a :class:`SinkStore`."""

    def __init__(
        self,
        broker: BrokerUrl,
        db_path: Path,
        *,
        client_id: str = "storeedge-cloud-sink",
        protocol: MqttProtocol = MqttProtocol.V311,
        tls: TlsConfig | None = None,
        topic_filter: str = f"{ROOT}/#",
    ) -> None:
        self.store = SinkStore(db_path)
        self.session = MqttSession(
            SessionOptions(
                url=broker,
                client_id=client_id,
                protocol=protocol,
                tls=tls,
                username=broker.username,
                password=broker.password,
                persistent_session=True,
                subscriptions=((topic_filter, 1),),
                reconnect_min_s=0.2,
                reconnect_max_s=5.0,
            ),
            name="cloud-sink",
            on_message=self._on_message,
        )

    def _on_message(self, _generation: int, message: paho.MQTTMessage) -> None:
        # Runs on paho's thread; paho sends the PUBACK after this returns, i.e. after the commit.
        self.store.store(message.topic, bytes(message.payload))

    async def run(self) -> None:
        await self.session.run()

    def close(self) -> None:
        self.store.close()

"""What the gateway leaves behind, read without changing it, and the state of its agents.

The running gateway writes ``health.json`` every few seconds and keeps its outbox and tag store in SQLite files;
the doctor reads them (the databases opened read-only) rather than asking the gateway. A fresh health file means
the gateway runs: it then owns the serial ports, and the doctor reports what the gateway sees instead of opening
them itself.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from agents.doctor.results import CheckResult, fail, ok, warn
from agents.gateway.config import GatewayConfig

__all__ = ["check_agents", "gateway_running", "query_all", "query_one", "read_json"]


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file (``health.json``), or None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)


def query_one(path: Path, sql: str) -> tuple[Any, ...] | None:
    """The first row of ``sql`` on the SQLite file ``path``, opened read-only."""
    db = _connect_ro(path)
    try:
        row: tuple[Any, ...] | None = db.execute(sql).fetchone()
        return row
    finally:
        db.close()


def query_all(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Every row of ``sql`` on the SQLite file ``path``, opened read-only."""
    db = _connect_ro(path)
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


def gateway_running(config: GatewayConfig, health: dict[str, Any] | None) -> bool:
    """Whether a gateway wrote its health file recently (it then owns the serial ports)."""
    if not health or not isinstance(health.get("ts"), int | float):
        return False
    return time.time() - float(health["ts"]) < 3 * config.runtime.health_file_interval_s + 10


async def check_agents(config: GatewayConfig, health: dict[str, Any] | None) -> list[CheckResult]:
    """The state of every agent, from the health file the running gateway writes."""
    if health is None:
        return [
            warn(
                "agents",
                f"no health file at {config.health_path}: the gateway is not running",
                "start it: `systemctl start storeedge` (or `storeedge run --config FILE`)",
            )
        ]
    age = time.time() - float(health.get("ts", 0))
    if not gateway_running(config, health):
        return [
            fail(
                "agents",
                f"health file is {age:.0f} s old: the gateway stopped or hangs",
                "check `systemctl status storeedge` and `journalctl -u storeedge -n 100`",
            )
        ]
    results = []
    for name, agent in sorted(health.get("agents", {}).items()):
        state = agent.get("state")
        if state == "backoff":
            results.append(
                fail(
                    f"agent:{name}",
                    f"agent {name} keeps crashing ({agent.get('restarts')} restarts): {agent.get('last_error')}",
                    "see the error above; `journalctl -u storeedge` has the traceback",
                )
            )
        elif state in ("running", "finished", "new"):
            results.append(ok(f"agent:{name}", f"agent {name} {state}", restarts=agent.get("restarts")))
        else:
            results.append(
                warn(f"agent:{name}", f"agent {name} is {state}", "restart the gateway if it does not recover")
            )
    return results

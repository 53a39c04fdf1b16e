"""The agent supervisor: named agents in one task group, restarted with back-off when they crash.

Every agent is a long-running coroutine (:meth:`Agent.run`). The supervisor

* starts each in a named task (``agent:<name>``) inside a :class:`asyncio.TaskGroup`;
* catches a crash, records it in the agent's :class:`AgentHealth` (state, last error, restarts),
  logs it in one line (the traceback goes to DEBUG: a restart is routine, and a journal full of
  tracebacks hides the reason) and restarts the agent after a jittered, capped back-off; an agent that
  stayed up for ``stable_after_s`` gets its back-off reset;
* on stop, asks agents to :meth:`Agent.drain` in reverse start order (producers first, the uplink last,
  so what producers flushed can still be published) and then cancels them;
* writes a JSON health snapshot to disk every few seconds and at exit, which ``storeedge doctor`` reads.
  Writes run in a worker thread one at a time: the final write waits for a periodic write whose task
  was cancelled while its thread was still busy, so the last snapshot on disk is the final one.

An agent that returns normally is finished and is not restarted (for example a bounded load generator).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.core.backoff import Backoff

log = logging.getLogger(__name__)


@dataclass
class AgentHealth:
    """What the field CLI and the health uplink know about one agent."""

    name: str
    state: str = "new"  # new | running | backoff | finished | stopped
    started_at: float | None = None
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    counters: dict[str, float] = field(default_factory=dict)

    def count(self, key: str, amount: float = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + amount

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "counters": dict(self.counters),
        }


class Agent:
    """Base class of gateway agents. Subclasses implement :meth:`run`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.health = AgentHealth(name)

    async def run(self) -> None:
        """Do the agent's work until cancelled. Raising means "crashed": the supervisor restarts it."""
        raise NotImplementedError

    async def drain(self, timeout_s: float) -> None:
        """Finish in-flight work before shutdown (default: nothing to do)."""

    def diagnostics(self) -> dict[str, Any]:
        """Extra, agent-specific state for health snapshots and support bundles."""
        return {}


class Supervisor:
    """Runs agents until ``stop`` is set; see the module docstring."""

    def __init__(
        self,
        agents: Sequence[Agent],
        *,
        restart_min_s: float = 1.0,
        restart_max_s: float = 60.0,
        stable_after_s: float = 60.0,
        health_path: Path | None = None,
        health_interval_s: float = 2.0,
        snapshot_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agent names must be unique, got {names}")
        self.agents = list(agents)
        self._restart_min_s = restart_min_s
        self._restart_max_s = restart_max_s
        self._stable_after_s = stable_after_s
        self._health_path = health_path
        self._health_interval_s = health_interval_s
        self._snapshot_extra = snapshot_extra
        # The health write running in a worker thread, if any. Cancelling the task that awaits it does not
        # stop the thread, so the next write waits for this future first.
        self._health_write: asyncio.Future[None] | None = None
        self.started_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        """Health of every agent plus whatever the runtime adds (outbox, uplink)."""
        snap: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "uptime_s": round(time.time() - self.started_at, 1),
            "pid": os.getpid(),
            "agents": {a.name: {**a.health.as_dict(), **a.diagnostics()} for a in self.agents},
        }
        if self._snapshot_extra is not None:
            snap.update(self._snapshot_extra())
        return snap

    async def run(self, stop: asyncio.Event, *, grace_s: float = 5.0) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = {a.name: group.create_task(self._keep_running(a), name=f"agent:{a.name}") for a in self.agents}
            writer = group.create_task(self._health_writer(), name="supervisor:health-writer")
            await stop.wait()
            log.info("stopping agents (grace %.1fs)", grace_s)
            deadline = time.monotonic() + grace_s
            for agent in reversed(self.agents):
                task = tasks[agent.name]
                if not task.done():
                    remaining = max(0.0, deadline - time.monotonic())
                    try:
                        async with asyncio.timeout(remaining + 0.5):
                            await agent.drain(remaining)
                    except TimeoutError:
                        log.warning("agent %s did not drain within the grace period", agent.name)
                    except Exception:  # one agent's failed drain must not skip the others' shutdown
                        log.exception("agent %s failed to drain", agent.name)
                    task.cancel()
                    await asyncio.wait([task])
                if agent.health.state != "finished":
                    agent.health.state = "stopped"
            writer.cancel()
        await self._write_health()

    async def _keep_running(self, agent: Agent) -> None:
        backoff = Backoff(self._restart_min_s, self._restart_max_s)
        while True:
            agent.health.state = "running"
            agent.health.started_at = time.time()
            began = time.monotonic()
            try:
                await agent.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - an agent crash must never take the others down
                crash = exc
            else:
                agent.health.state = "finished"
                log.info("agent %s finished", agent.name)
                return
            if time.monotonic() - began >= self._stable_after_s:
                backoff.reset()
            delay = backoff.next_delay()
            agent.health.restarts += 1
            agent.health.last_error = f"{type(crash).__name__}: {crash}"
            agent.health.last_error_at = time.time()
            agent.health.state = "backoff"
            log.error(
                "agent %s crashed (%s); restart %d in %.2fs",
                agent.name,
                agent.health.last_error,
                agent.health.restarts,
                delay,
            )
            log.debug("agent %s crash traceback", agent.name, exc_info=crash)
            await asyncio.sleep(delay)

    async def _health_writer(self) -> None:
        while True:
            try:
                await self._write_health()
            except OSError as exc:  # a full or read-only disk must not stop the gateway; retried next interval
                log.warning("cannot write health file %s: %s", self._health_path, exc)
            await asyncio.sleep(self._health_interval_s)

    async def _write_health(self) -> None:
        if self._health_path is None:
            return
        if self._health_write is not None and not self._health_write.done():
            await asyncio.wait([self._health_write])
        text = json.dumps(self.snapshot(), indent=2, default=str)
        loop = asyncio.get_running_loop()
        self._health_write = loop.run_in_executor(None, write_atomically, self._health_path, text)
        # Shielded: cancelling this task (shutdown) leaves the future to report when the thread is done.
        await asyncio.shield(self._health_write)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so readers see either the old or the new file, never a torn one.

    The temporary file gets a unique name in the same directory (so the rename stays on one file system):
    concurrent writers of one path never share a temporary file, the last rename wins, and a failed write
    leaves no temporary file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            # mkstemp creates 0600; the health file stays readable to a technician's `storeedge doctor`.
            os.fchmod(tmp.fileno(), 0o644)
            tmp.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

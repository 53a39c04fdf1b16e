"""The agent supervisor (:mod:`agents.core.supervisor`): restarts, back-off, finishing, draining, health.

Small :class:`Agent` subclasses stand in for real agents: one that crashes a few times and then runs, one
that finishes, one that counts ticks, and one that records when it is drained. Back-off delays are
captured exactly by wrapping :class:`~agents.core.backoff.Backoff` where the supervisor creates it, so the
timing checks do not depend on how fast this machine is.

The health file tests cover the shutdown race of issue 10: two writers of one path never collide on a
temporary file, and the final write waits for a periodic write still busy in its thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import agents.core.supervisor as supervisor_module
from agents.core.backoff import Backoff
from agents.core.supervisor import Agent, AgentHealth, Supervisor, write_atomically
from tests.conftest import wait_for

MIN_S = 0.01
MAX_S = 0.05


class CrashingAgent(Agent):
    """Crashes ``crashes`` times (``RuntimeError: crash <n>``), then runs until cancelled."""

    def __init__(self, name: str, crashes: int, *, run_before_crash_s: float = 0.0) -> None:
        super().__init__(name)
        self.crashes = crashes
        self.run_before_crash_s = run_before_crash_s
        self.runs = 0
        self.states_seen_in_run: list[str] = []
        self.started: list[float] = []
        self.crashed: list[float] = []
        self.steady = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        self.started.append(time.monotonic())
        self.states_seen_in_run.append(self.health.state)
        if self.runs <= self.crashes:
            if self.run_before_crash_s:
                await asyncio.sleep(self.run_before_crash_s)
            self.crashed.append(time.monotonic())
            raise RuntimeError(f"crash {self.runs}")
        self.steady.set()
        while True:
            self.health.count("ticks")
            await asyncio.sleep(0.01)


class AlwaysCrashingAgent(Agent):
    """Crashes on every run with a ValueError."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        await asyncio.sleep(0)
        raise ValueError(f"bad input #{self.runs}")


class FinishingAgent(Agent):
    """Does a bounded piece of work and returns."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.runs = 0
        self.drained = False

    async def run(self) -> None:
        self.runs += 1
        await asyncio.sleep(0.01)
        self.health.count("done")

    async def drain(self, timeout_s: float) -> None:
        self.drained = True


class TickingAgent(Agent):
    """Runs until cancelled, counting ``ticks``; records drain calls (in ``log``) and cancellation."""

    def __init__(self, name: str, log: list[str] | None = None, *, drain_s: float = 0.0) -> None:
        super().__init__(name)
        self.log = log if log is not None else []
        self.drain_s = drain_s
        self.drain_timeouts: list[float] = []
        self.running_when_drained: bool | None = None
        self.cancelled = False

    async def run(self) -> None:
        try:
            while True:
                self.health.count("ticks")
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled = True
            self.log.append(f"cancelled:{self.name}")
            raise

    async def drain(self, timeout_s: float) -> None:
        self.drain_timeouts.append(timeout_s)
        self.running_when_drained = self.health.state == "running" and not self.cancelled
        self.log.append(f"drain:{self.name}")
        if self.drain_s:
            await asyncio.sleep(self.drain_s)

    def diagnostics(self) -> dict[str, Any]:
        return {"kind": "ticker"}


class FailingDrainAgent(TickingAgent):
    """A running agent whose drain raises."""

    async def drain(self, timeout_s: float) -> None:
        self.log.append(f"drain:{self.name}")
        raise RuntimeError("drain failed")


class RecordingBackoff(Backoff):
    """A :class:`Backoff` that remembers every delay it hands out (shared list across instances)."""

    delays: list[float] = []
    bounds: list[tuple[float, float]] = []

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(self.attempt, 64))
        delay = super().next_delay()
        RecordingBackoff.delays.append(delay)
        RecordingBackoff.bounds.append((base / 2, base))
        return delay


@pytest.fixture
def recorded_backoff(monkeypatch: pytest.MonkeyPatch) -> type[RecordingBackoff]:
    monkeypatch.setattr(RecordingBackoff, "delays", [])
    monkeypatch.setattr(RecordingBackoff, "bounds", [])
    monkeypatch.setattr(supervisor_module, "Backoff", RecordingBackoff)
    return RecordingBackoff


@asynccontextmanager
async def supervising(supervisor: Supervisor, *, grace_s: float = 1.0) -> AsyncIterator[asyncio.Event]:
    """Run ``supervisor`` in a task; on exit set its stop event and wait for it to return."""
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop, grace_s=grace_s), name="test:supervisor")
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=grace_s + 10)


# -- restarts ------------------------------------------------------------------------------------


async def test_crashed_agent_is_restarted_and_its_health_records_the_crash(
    recorded_backoff: type[RecordingBackoff],
) -> None:
    agent = CrashingAgent("flaky", crashes=2)
    supervisor = Supervisor([agent], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await asyncio.wait_for(agent.steady.wait(), 5)
        assert agent.runs == 3
        assert agent.health.restarts == 2
        assert agent.health.last_error == "RuntimeError: crash 2"
        assert agent.health.last_error_at is not None and agent.health.last_error_at <= time.time()
        assert agent.health.state == "running"
        assert agent.states_seen_in_run == ["running", "running", "running"]
        assert agent.health.started_at is not None
        await wait_for(lambda: agent.health.counters.get("ticks", 0) >= 3, what="the restarted agent to work")
    assert agent.health.state == "stopped"
    assert agent.health.restarts == 2  # stopping is not a crash
    assert agent.health.last_error == "RuntimeError: crash 2"


async def test_backoff_state_is_visible_between_crash_and_restart() -> None:
    agent = CrashingAgent("flaky", crashes=1)
    # 0.4 s back-off (with equal jitter at least 0.2 s): ample time to observe the state.
    supervisor = Supervisor([agent], restart_min_s=0.4, restart_max_s=0.4)
    async with supervising(supervisor):
        await wait_for(lambda: agent.health.restarts == 1, interval=0.005, what="the first crash")
        assert agent.health.state == "backoff"
        assert agent.health.last_error == "RuntimeError: crash 1"
        await asyncio.wait_for(agent.steady.wait(), 5)
        assert agent.health.state == "running"
    assert agent.started[1] - agent.crashed[0] >= 0.2


async def test_restart_delays_grow_and_stay_within_the_configured_bounds(
    recorded_backoff: type[RecordingBackoff],
) -> None:
    crashes = 7
    agent = CrashingAgent("flaky", crashes=crashes)
    supervisor = Supervisor([agent], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await asyncio.wait_for(agent.steady.wait(), 5)
    delays = recorded_backoff.delays
    assert len(delays) == crashes
    # Exponential from restart_min_s, capped at restart_max_s, with "equal jitter" (half fixed, half random).
    expected_bases = [min(MAX_S, MIN_S * 2**n) for n in range(crashes)]
    assert [hi for _, hi in recorded_backoff.bounds] == pytest.approx(expected_bases)
    for delay, (lo, hi) in zip(delays, recorded_backoff.bounds, strict=True):
        assert lo <= delay <= hi
    assert all(MIN_S / 2 <= d <= MAX_S for d in delays)
    assert delays[0] <= MIN_S
    # The supervisor really waited at least the drawn delay before each restart.
    for n, delay in enumerate(delays):
        assert agent.started[n + 1] - agent.crashed[n] >= delay - 0.002


async def test_backoff_resets_after_a_stable_run(recorded_backoff: type[RecordingBackoff]) -> None:
    agent = CrashingAgent("flaky", crashes=4, run_before_crash_s=0.06)
    supervisor = Supervisor([agent], restart_min_s=MIN_S, restart_max_s=MAX_S, stable_after_s=0.05)
    async with supervising(supervisor):
        await asyncio.wait_for(agent.steady.wait(), 5)
    assert len(recorded_backoff.delays) == 4
    assert all(hi == pytest.approx(MIN_S) for _, hi in recorded_backoff.bounds)  # always the first step


async def test_an_agent_crash_does_not_stop_the_other_agents() -> None:
    crasher = AlwaysCrashingAgent("crasher")
    worker = TickingAgent("worker")
    finisher = FinishingAgent("finisher")
    supervisor = Supervisor([worker, crasher, finisher], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await wait_for(lambda: crasher.health.restarts >= 3, what="repeated crashes")
        ticks = worker.health.counters["ticks"]
        restarts = crasher.health.restarts
        await wait_for(
            lambda: worker.health.counters["ticks"] >= ticks + 5 and crasher.health.restarts >= restarts + 3,
            what="the worker to keep ticking while the crasher keeps crashing",
        )
        assert worker.health.state == "running" and worker.health.restarts == 0
        assert worker.health.last_error is None
        assert finisher.health.state == "finished" and finisher.runs == 1
        assert crasher.health.last_error is not None
        assert crasher.health.last_error.startswith("ValueError: bad input #")
    assert worker.health.state == "stopped"
    assert crasher.health.state == "stopped"
    assert finisher.health.state == "finished"


async def test_a_restart_logs_one_line_and_keeps_the_traceback_at_debug(
    recorded_backoff: type[RecordingBackoff], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=supervisor_module.__name__)
    agent = CrashingAgent("flaky", crashes=3)
    supervisor = Supervisor([agent], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await asyncio.wait_for(agent.steady.wait(), 5)
    crash_lines = [r for r in caplog.records if r.levelno >= logging.INFO and "crashed" in r.getMessage()]
    assert [r.getMessage() for r in crash_lines] == [
        f"agent flaky crashed (RuntimeError: crash {n}); restart {n} in {delay:.2f}s"
        for n, delay in enumerate(recorded_backoff.delays, start=1)
    ]
    assert all(r.levelno == logging.ERROR for r in crash_lines)
    info_and_up = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in info_and_up)
    assert "Traceback" not in "".join(caplog.handler.format(r) for r in info_and_up)
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info is not None]
    assert [str(r.exc_info[1]) for r in tracebacks if r.exc_info] == ["crash 1", "crash 2", "crash 3"]


# -- finishing -----------------------------------------------------------------------------------


async def test_a_finished_agent_is_not_restarted(recorded_backoff: type[RecordingBackoff]) -> None:
    finisher = FinishingAgent("batch")
    ticker = TickingAgent("ticker")
    supervisor = Supervisor([finisher, ticker], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await wait_for(lambda: finisher.health.state == "finished", what="the batch agent to finish")
        await asyncio.sleep(0.2)  # many back-off periods
        assert finisher.runs == 1
        assert finisher.health.counters == {"done": 1}
        assert finisher.health.restarts == 0 and finisher.health.last_error is None
        assert recorded_backoff.delays == []
    assert finisher.health.state == "finished"  # not overwritten with "stopped"
    assert finisher.drained is False  # a finished agent has nothing left to drain
    assert ticker.health.state == "stopped"


# -- stopping ------------------------------------------------------------------------------------


async def test_stop_drains_in_reverse_start_order_then_cancels() -> None:
    log: list[str] = []
    first, second, third = TickingAgent("uplink", log), TickingAgent("commands", log), TickingAgent("producer", log)
    finisher = FinishingAgent("batch")
    crasher = AlwaysCrashingAgent("crasher")
    supervisor = Supervisor([first, second, finisher, crasher, third], restart_min_s=0.2, restart_max_s=0.2)
    async with supervising(supervisor, grace_s=2.0):
        await wait_for(
            lambda: finisher.health.state == "finished" and crasher.health.state == "backoff",
            what="the batch agent to finish and the crasher to back off",
        )
    assert log == [
        "drain:producer",
        "cancelled:producer",
        "drain:commands",
        "cancelled:commands",
        "drain:uplink",
        "cancelled:uplink",
    ]
    for agent in (first, second, third):
        assert agent.running_when_drained is True, f"{agent.name} was drained after it stopped running"
        assert len(agent.drain_timeouts) == 1 and 0 < agent.drain_timeouts[0] <= 2.0
        assert agent.health.state == "stopped"
    assert crasher.health.state == "stopped"
    assert finisher.health.state == "finished"


async def test_a_drain_that_overruns_the_grace_period_is_cut_short() -> None:
    log: list[str] = []
    slow = TickingAgent("slow-drain", log, drain_s=30)
    other = TickingAgent("other", log)
    supervisor = Supervisor([other, slow], restart_min_s=MIN_S, restart_max_s=MAX_S)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop, grace_s=0.3), name="test:supervisor")
    await wait_for(lambda: slow.health.counters.get("ticks", 0) > 0, what="agents to start")
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - started < 3
    assert log == ["drain:slow-drain", "cancelled:slow-drain", "drain:other", "cancelled:other"]
    assert slow.health.state == other.health.state == "stopped"


async def test_a_failing_drain_does_not_skip_the_other_agents(tmp_path: Path) -> None:
    log: list[str] = []
    first, broken = TickingAgent("first", log), FailingDrainAgent("broken", log)
    health_path = tmp_path / "health.json"
    supervisor = Supervisor([first, broken], restart_min_s=MIN_S, restart_max_s=MAX_S, health_path=health_path)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop, grace_s=1.0), name="test:supervisor")
    await wait_for(lambda: first.health.counters.get("ticks", 0) > 0, what="agents to start")
    stop.set()
    await asyncio.wait([task], timeout=10)
    assert task.done()
    error = task.exception()
    assert error is None, f"Supervisor.run raised because one agent's drain failed: {error!r}"
    assert log == ["drain:broken", "cancelled:broken", "drain:first", "cancelled:first"]
    assert first.health.state == broken.health.state == "stopped"
    assert json.loads(health_path.read_text())["agents"]["first"]["state"] == "stopped"


# -- health file ---------------------------------------------------------------------------------


async def test_health_file_is_written_while_running_and_at_exit(tmp_path: Path) -> None:
    health_path = tmp_path / "state" / "health.json"
    flaky = CrashingAgent("flaky", crashes=1)
    ticker = TickingAgent("ticker")
    finisher = FinishingAgent("batch")
    supervisor = Supervisor(
        [ticker, flaky, finisher],
        restart_min_s=MIN_S,
        restart_max_s=MAX_S,
        health_path=health_path,
        health_interval_s=0.05,
        snapshot_extra=lambda: {"gateway_id": "gw-test"},
    )
    async with supervising(supervisor):
        await asyncio.wait_for(flaky.steady.wait(), 5)

        def file_shows_everyone_running() -> bool:
            if not health_path.exists():
                return False
            agents: dict[str, dict[str, Any]] = json.loads(health_path.read_text())["agents"]
            return bool(agents["flaky"]["state"] == "running" and agents["batch"]["state"] == "finished")

        await wait_for(file_shows_everyone_running, what="a periodic health file")
        assert not list(health_path.parent.glob(".*.tmp")), "temporary files must be renamed into place"
    health = json.loads(health_path.read_text())
    assert set(health["agents"]) == {"ticker", "flaky", "batch"}
    assert health["gateway_id"] == "gw-test"
    assert isinstance(health["pid"], int) and health["uptime_s"] >= 0 and health["ts"] > 0
    assert health["agents"]["ticker"]["state"] == "stopped"
    assert health["agents"]["ticker"]["kind"] == "ticker"  # diagnostics() are merged in
    assert health["agents"]["ticker"]["counters"]["ticks"] >= 1
    assert health["agents"]["flaky"] == {
        **flaky.health.as_dict(),
        "state": "stopped",
        "restarts": 1,
        "last_error": "RuntimeError: crash 1",
    }
    assert health["agents"]["batch"]["state"] == "finished"
    assert supervisor.snapshot()["agents"].keys() == health["agents"].keys()


async def test_no_health_file_without_a_path(tmp_path: Path) -> None:
    supervisor = Supervisor([TickingAgent("ticker")], restart_min_s=MIN_S, restart_max_s=MAX_S)
    async with supervising(supervisor):
        await asyncio.sleep(0.05)
    assert os.listdir(tmp_path) == []


def test_two_threads_writing_one_path_never_collide(tmp_path: Path) -> None:
    health_path = tmp_path / "health.json"
    writes_per_thread = 5_000  # 10,000 writes in all
    written: set[str] = set()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        start.wait()
        try:
            for n in range(writes_per_thread):
                text = json.dumps({"writer": name, "n": n})
                written.add(text)
                write_atomically(health_path, text)
        except BaseException as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,), name=f"test:writer-{name}") for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = health_path.read_text(encoding="utf-8")
    assert final in written
    assert json.loads(final)["n"] == writes_per_thread - 1  # the last rename wins: some thread's last write
    assert os.listdir(tmp_path) == ["health.json"], "no temporary file is left behind"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    health_path = tmp_path / "health.json"
    write_atomically(health_path, "old")

    def refuse(_src: object, _dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(os, "replace", refuse)
        write_atomically(health_path, "new")
    assert os.listdir(tmp_path) == ["health.json"]
    assert health_path.read_text(encoding="utf-8") == "old"


class SlowHealthWrites:
    """Stands in for ``write_atomically``: each write takes ``seconds`` and records its start and end."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.events: list[tuple[str, str]] = []  # ("start" | "end", text)
        self.active = 0
        self.most_active = 0
        self._lock = threading.Lock()

    def __call__(self, path: Path, text: str) -> None:
        with self._lock:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
            self.events.append(("start", text))
        time.sleep(self.seconds)
        write_atomically(path, text)
        with self._lock:
            self.active -= 1
            self.events.append(("end", text))


async def test_the_final_health_write_waits_for_the_periodic_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    health_path = tmp_path / "health.json"
    slow = SlowHealthWrites(0.3)
    monkeypatch.setattr(supervisor_module, "write_atomically", slow)
    ticker = TickingAgent("ticker")
    supervisor = Supervisor(
        [ticker], restart_min_s=MIN_S, restart_max_s=MAX_S, health_path=health_path, health_interval_s=0.01
    )
    async with supervising(supervisor):
        # Stop while a periodic write is busy in its thread: cancelling its task does not stop the thread.
        await wait_for(lambda: slow.active == 1, interval=0.005, what="a periodic health write in progress")
    assert slow.most_active == 1, "two health writes ran at the same time"
    kinds = [kind for kind, _ in slow.events]
    assert kinds == ["start", "end"] * (len(kinds) // 2), "every write ended before the next began"
    final_text = slow.events[-1][1]
    assert json.loads(final_text)["agents"]["ticker"]["state"] == "stopped"
    assert health_path.read_text(encoding="utf-8") == final_text
    assert os.listdir(tmp_path) == ["health.json"]


async def test_a_failing_health_write_is_logged_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    health_path = tmp_path / "health.json"
    failures = 3

    def flaky_write(path: Path, text: str) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise OSError(28, "No space left on device")
        write_atomically(path, text)

    monkeypatch.setattr(supervisor_module, "write_atomically", flaky_write)
    ticker = TickingAgent("ticker")
    supervisor = Supervisor(
        [ticker], restart_min_s=MIN_S, restart_max_s=MAX_S, health_path=health_path, health_interval_s=0.01
    )
    async with supervising(supervisor):
        await wait_for(health_path.exists, what="a health write after the disk recovered")
        assert ticker.health.state == "running"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"cannot write health file {health_path}: [Errno 28] No space left on device"] * 3


# -- construction and AgentHealth ----------------------------------------------------------------


def test_duplicate_agent_names_are_refused() -> None:
    with pytest.raises(ValueError, match="agent names must be unique"):
        Supervisor([TickingAgent("same"), FinishingAgent("other"), TickingAgent("same")])


def test_agent_health_counts_and_serialises() -> None:
    health = AgentHealth("uplink")
    assert health.as_dict() == {
        "state": "new",
        "started_at": None,
        "restarts": 0,
        "last_error": None,
        "last_error_at": None,
        "counters": {},
    }
    health.count("sent")
    health.count("sent", 2)
    health.count("bytes", 1.5)
    snapshot = health.as_dict()
    assert snapshot["counters"] == {"sent": 3, "bytes": 1.5}
    snapshot["counters"]["sent"] = 100  # the snapshot is a copy
    assert health.counters["sent"] == 3


async def test_base_agent_run_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        await Agent("bare").run()
    assert Agent("bare").diagnostics() == {}

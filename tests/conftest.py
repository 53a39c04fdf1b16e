"""Shared fixtures: real brokers, temporary gateway configs, and hygiene checks.

Hygiene: every test fails if it leaves asyncio tasks pending or threads
running (paho network threads, SQLite executors), so a leak is caught where it is introduced.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.core.config import BrokerUrl, GatewayConfig
from sim.broker import EmbeddedBroker
from tests.brokers import Mosquitto


def pytest_configure(config: pytest.Config) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise pytest.UsageError("mosquitto is required for the test suite: apt-get install -y mosquitto")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [
            t for t in threading.enumerate() if t not in before and t.is_alive() and not t.name.startswith("asyncio_")
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    assert not pending, f"test leaked asyncio tasks: {[t.get_name() for t in pending]}"


def shared_data_dir() -> Path:
    """The shared models and footage: ``$STOREEDGE_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    override = os.environ.get("STOREEDGE_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "models").is_dir():
        raise pytest.UsageError(f"shared data not found at {path}; set STOREEDGE_SHARED_DATA")
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def amqtt_broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


def gateway_config(tmp_path: Path, broker_url: BrokerUrl | str, **overrides: Any) -> GatewayConfig:
    """A gateway config for tests: fast heartbeats and reconnects, state under ``tmp_path``.

    Keyword overrides replace top-level sections; dict sections are merged one level deep.
    """
    data: dict[str, Any] = {
        "store_id": "store-1",
        "gateway_id": "gw-1",
        "state_dir": str(tmp_path / "state"),
        "broker": {"url": str(broker_url), "reconnect": {"min_delay_s": 0.1, "max_delay_s": 1.0}},
        "heartbeat": {"interval_s": 0.5, "health_interval_s": 2},
        "runtime": {"restart_min_delay_s": 0.05, "restart_max_delay_s": 0.5, "shutdown_grace_s": 3},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return GatewayConfig.model_validate(data)


async def wait_for(
    predicate: Any,
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a wrapped awaitable
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``predicate()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)

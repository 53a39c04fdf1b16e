"""Shared fixtures: real brokers, temporary gateway configs, hygiene checks, and the footage switch.

Hygiene: every test fails if it leaves asyncio tasks pending or threads
running (paho network threads, SQLite executors), so a leak is caught where it is introduced.

Footage: tests that read the licensed models and footage (``$STOREEDGE_SHARED_DATA``, or ``../shared/data``
beside the repository; never copied into it) carry the ``footage`` marker, set here for every test that uses
the ``shared_data`` fixture (directly or through another fixture) and by hand for any that reads the folder
otherwise. On a plain clone without the folder they are not run and the run ends with one line saying how
many and what to set; with ``STOREEDGE_REQUIRE_FOOTAGE=1`` (CI) a missing folder is a usage error instead.
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

from agents.core.config import BrokerUrl
from agents.gateway.config import GatewayConfig
from sim.broker import EmbeddedBroker
from tests.brokers import Mosquitto

FOOTAGE_MARKER = "footage"
REQUIRE_FOOTAGE_ENV = "STOREEDGE_REQUIRE_FOOTAGE"
_footage_not_run = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise pytest.UsageError("mosquitto is required for the test suite: apt-get install -y mosquitto")


def shared_data_dir() -> Path:
    """The shared models and footage: ``$STOREEDGE_SHARED_DATA`` or ``../shared/data`` beside the repo."""
    override = os.environ.get("STOREEDGE_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_present(path: Path) -> bool:
    return (path / "models").is_dir() and (path / "footage").is_dir()


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Mark footage tests before ``-m``/``-k`` select; once selected, leave them out if there is no footage."""
    # ``fixturenames`` is the closure: a test whose fixture depends on ``shared_data`` is included.
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(FOOTAGE_MARKER)
    yield
    needs_footage = [item for item in items if item.get_closest_marker(FOOTAGE_MARKER) is not None]
    path = shared_data_dir()
    if not needs_footage or shared_data_present(path):
        return
    if os.environ.get(REQUIRE_FOOTAGE_ENV) == "1":
        raise pytest.UsageError(
            f"{len(needs_footage)} footage tests need the shared data (models/ and footage/), "
            f"not found at {path}; set STOREEDGE_SHARED_DATA ({REQUIRE_FOOTAGE_ENV}=1 makes this an error)"
        )
    # Deselected rather than skipped: one summary line says what is missing, not one line per test.
    items[:] = [item for item in items if item.get_closest_marker(FOOTAGE_MARKER) is None]
    config.hook.pytest_deselected(items=needs_footage)
    config.stash[_footage_not_run] = len(needs_footage)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    not_run = config.stash.get(_footage_not_run, 0)
    if not_run:
        terminalreporter.write_line(
            f"{not_run} footage tests not run: set STOREEDGE_SHARED_DATA to the shared data folder "
            f"(models/ and footage/; not found at {shared_data_dir()})",
            yellow=True,
        )


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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests using it are ``footage`` tests (see the module docstring)."""
    path = shared_data_dir()
    if not shared_data_present(path):  # not reached when the collection hook deselected the test
        raise pytest.UsageError(f"shared data (models/ and footage/) not found at {path}; set STOREEDGE_SHARED_DATA")
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

"""Field commands against a running gateway: ``storeedge tags list|show|ping|led`` through its broker and its
tag store, with simulated serial tags behind a pty (issue 6, field commands)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from agents.gateway.config import load_config
from agents.gateway.runtime import Gateway
from protocols.esl import EslAddress
from sim.serial_tags import SimulatedSerialBus
from tests.brokers import Mosquitto
from tests.conftest import wait_for


async def storeedge(*args: str) -> tuple[int, str]:
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return run.returncode, run.stdout + run.stderr


def link_state(gateway: Gateway) -> str | None:
    uplink = gateway.uplink
    return uplink.session.health.state if uplink is not None and uplink.session is not None else None


async def test_tags_field_commands(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with SimulatedSerialBus([EslAddress(1, 1), EslAddress(1, 2)]) as bus:
        data: dict[str, Any] = {
            "store_id": "store-1",
            "gateway_id": "gw-1",
            "state_dir": str(tmp_path / "state"),
            "broker": {"url": str(mosquitto.url), "reconnect": {"min_delay_s": 0.1, "max_delay_s": 1}},
            "heartbeat": {"interval_s": 0.5},
            "runtime": {"health_file_interval_s": 0.5},
            "tags": {
                "buses": [
                    {"name": "aisle-1", "port": bus.port, "tags": [{"addresses": "1/1-2", "panel": "152x152-bw"}]}
                ]
            },
        }
        config_path = tmp_path / "gateway.yaml"
        config_path.write_text(yaml.safe_dump(data))
        gateway = Gateway(load_config(config_path))
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            task = group.create_task(gateway.run(stop), name="test:gateway")
            try:
                await wait_for(
                    lambda: gateway.snapshot().get("agents", {}).get("tags", {}).get("state") == "running",
                    what="the tag service",
                )
                await wait_for(lambda: link_state(gateway) == "connected", what="the gateway's broker connection")
                code, out = await storeedge("tags", "ping", "1/1", "1/2", "--config", str(config_path))
                assert code == 0, out
                assert "1/1: ok" in out and "battery_mv=3000" in out
                code, out = await storeedge("tags", "led", "1/2", "9/9", "--config", str(config_path), "--json")
                assert code == 1, out  # one unknown tag: per-tag error, the other flashed
                result = json.loads(out)
                statuses = {entry["tag"]: entry["status"] for entry in result["result"]["tags"]}
                assert statuses == {"1/2": "ok", "9/9": "error"}
                assert bus.tags[EslAddress(1, 2)].firmware.handler.leds[0].active
                code, out = await storeedge("tags", "list", "--config", str(config_path), "--json")
                assert code == 0, out
                rows = json.loads(out)
                assert [row["address"] for row in rows] == ["1/1", "1/2"]
                assert all(row["battery_mv"] == 3000 for row in rows)
                code, out = await storeedge("tags", "show", "1/7", "--config", str(config_path))
                assert code == 1 and "unknown tag 1/7" in out
            finally:
                stop.set()
            await task


async def test_counts_live_prints_intervals_as_they_arrive(tmp_path: Path, mosquitto: Mosquitto) -> None:
    data: dict[str, Any] = {
        "store_id": "store-1",
        "gateway_id": "gw-1",
        "state_dir": str(tmp_path / "state"),
        "broker": {"url": str(mosquitto.url), "reconnect": {"min_delay_s": 0.1, "max_delay_s": 1}},
    }
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(data))
    gateway = Gateway(load_config(config_path))
    stop = asyncio.Event()
    follower = subprocess.Popen(  # noqa: ASYNC220 - a long-running child read from a thread, not awaited
        [sys.executable, "-m", "agents.cli", "counts", "--live", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    record = {"line": "entrance", "visits_a_to_b": 7, "visits_b_to_a": 3, "events_a_to_b": 8, "events_b_to_a": 3}
    try:
        async with asyncio.TaskGroup() as group:
            task = group.create_task(gateway.run(stop), name="test:gateway")
            try:
                await wait_for(lambda: link_state(gateway) == "connected", what="the gateway's broker connection")
                assert gateway.outbox is not None
                outbox = gateway.outbox
                first_line = group.create_task(asyncio.to_thread(follower.stdout.readline), name="test:read")  # type: ignore[union-attr]
                # the follower subscribes without a session (it sees what comes after): publish until it has
                for _ in range(60):
                    await outbox.put("counts/door", record)
                    done, _ = await asyncio.wait({first_line}, timeout=0.5)
                    if done:
                        break
                line = await first_line
                assert line.strip() == "counts/door entrance: in 7 out 3 (events 8/3)"
            finally:
                stop.set()
            await task
    finally:
        follower.send_signal(signal.SIGINT)
        _out, err = await asyncio.to_thread(follower.communicate, timeout=15)
    assert follower.returncode == 0, err

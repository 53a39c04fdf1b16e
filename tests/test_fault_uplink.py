"""Fault test (issue 2, acceptance 2): nothing lost, nothing doubled, order kept, under abuse.

A gateway *process* (``storeedge sim gateway``: the production runtime plus the simulator's load) generates
10,000 messages on four streams at 700 msg/s. While it runs, mosquitto is restarted twice and the gateway is
SIGKILLed at three random moments and restarted.
The cloud sink must end up holding all 10,000 exactly once after de-duplication, each stream complete
and in order of first arrival. The random schedule is seeded; the seed is printed so a failure can be
replayed with ``STOREEDGE_FAULT_SEED``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.cloud.sink import CloudSink
from tests.brokers import Mosquitto
from tests.conftest import wait_for

MESSAGES = 10_000
STREAMS = 4
RATE = 700.0
LOAD = f"streams={STREAMS},rate_per_s={RATE},messages={MESSAGES},payload_bytes=32"


def _gateway_yaml(tmp_path: Path, broker: Mosquitto) -> Path:
    config = {
        "store_id": "store-fault",
        "gateway_id": "gw-fault",
        "state_dir": str(tmp_path / "state"),
        "broker": {"url": str(broker.url), "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.5}},
        "heartbeat": {"interval_s": 1, "health_interval_s": 5},
        "runtime": {"restart_min_delay_s": 0.1, "restart_max_delay_s": 1, "health_file_interval_s": 0.2},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "sim", "gateway", "--config", str(self.config_path), "--load", LOAD],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(20)


def _generated(state_dir: Path) -> int:
    try:
        health = json.loads((state_dir / "health.json").read_text())
    except (OSError, ValueError):
        return 0
    return int(health["agents"].get("loadgen", {}).get("counters", {}).get("generated_total", 0))


@pytest.mark.slow
async def test_10k_messages_survive_broker_restarts_and_sigkills(tmp_path: Path, mosquitto: Mosquitto) -> None:
    seed = int(os.environ.get("STOREEDGE_FAULT_SEED", random.randrange(1 << 30)))
    print(f"fault schedule seed: {seed}")
    rng = random.Random(seed)
    # Three kills and two broker restarts at distinct random moments inside the generation window.
    moments = sorted(rng.uniform(1.0, 11.0) for _ in range(5))
    actions = ["kill", "kill", "kill", "broker", "broker"]
    rng.shuffle(actions)
    schedule = list(zip(moments, actions, strict=True))
    print(f"schedule: {schedule}")

    sink = CloudSink(mosquitto.url, tmp_path / "cloud.sqlite3", client_id="fault-sink")
    gateway = GatewayProcess(_gateway_yaml(tmp_path, mosquitto), tmp_path / "gateway.log")
    state_dir = tmp_path / "state"
    gateway_down_s = 0.0
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="fault:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            started = time.monotonic()
            gateway.start()
            for at, action in schedule:
                await asyncio.sleep(max(0.0, started + at - time.monotonic()))
                if action == "kill":
                    gateway.kill()
                    down = rng.uniform(0.2, 0.8)
                    await asyncio.sleep(down)
                    gateway_down_s += down
                    gateway.start()
                else:
                    await asyncio.to_thread(mosquitto.restart, rng.uniform(0.3, 1.0))
            await wait_for(lambda: _generated(state_dir) >= MESSAGES, timeout=60, what="all messages generated")
            generation_s = time.monotonic() - started
            try:
                await wait_for(
                    lambda: (
                        sum(s["received"] for k, s in sink.store.report()["streams"].items() if "/load/" in k)
                        >= MESSAGES
                    ),
                    timeout=60,
                    interval=0.25,
                    what="all messages at the sink",
                )
            except AssertionError:
                print(json.dumps(sink.store.report(), indent=1))
                print((tmp_path / "gateway.log").read_text()[-5000:])
                raise
            assert gateway.terminate() == 0, (tmp_path / "gateway.log").read_text()[-3000:]
            sink.session.request_stop()
            await sink_task

        report = sink.store.report()
        print(json.dumps({k: v for k, v in report.items() if k != "streams"}, indent=1))
        load = {k: v for k, v in report["streams"].items() if "/load/" in k}
        assert len(load) == STREAMS
        assert sum(s["received"] for s in load.values()) == MESSAGES, load
        for key, stream in load.items():
            assert stream["missing"] == 0, (key, stream)
            arrival = sink.store.stream_in_arrival_order("gw-fault", key.split("/", 1)[1])
            assert arrival == list(range(1, len(arrival) + 1)), f"{key} out of order"
        assert report["out_of_order"] == 0
        assert report["invalid"] == 0
        # Generation kept pace: at least 500 msg/s over the time the gateway process was up.
        rate = MESSAGES / (generation_s - gateway_down_s)
        print(f"generation rate {rate:.0f} msg/s, sink duplicates dropped {report['duplicates']}")
        assert rate >= 500
    finally:
        if gateway.process is not None and gateway.process.poll() is None:
            gateway.process.kill()
            gateway.process.wait(10)
        sink.close()

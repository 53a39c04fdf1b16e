"""End-to-end: gateway -> mosquitto -> cloud sink, for both MQTT protocol versions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.cloud.sink import CloudSink
from agents.core.config import MqttProtocol
from agents.gateway.runtime import Gateway
from sim.loadgen import LoadgenConfig, loadgen_agents
from tests.brokers import Mosquitto
from tests.conftest import gateway_config, wait_for


@pytest.mark.parametrize("protocol", [MqttProtocol.V311, MqttProtocol.V5])
async def test_gateway_traffic_reaches_sink_exactly_once(
    tmp_path: Path, mosquitto: Mosquitto, protocol: MqttProtocol
) -> None:
    config = gateway_config(
        tmp_path,
        mosquitto.url,
        broker={"protocol": protocol.value},
    )
    sink = CloudSink(mosquitto.url, tmp_path / "cloud.sqlite3", protocol=protocol)
    gateway = Gateway(config, extra_agents=loadgen_agents(LoadgenConfig(streams=2, rate_per_s=200, messages=300)))
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(gateway.run(stop), name="test:gateway")
            await wait_for(
                lambda: sink.store.report()["streams"].get("gw-1/load/1", {}).get("received", 0) == 150,
                timeout=20,
                what="300 loadgen messages at the sink",
            )
            status = sink.store.report()["status"]["gw-1"]
            assert status["online"] is True
            stop.set()
            await gw_task
            await wait_for(lambda: sink.store.report()["status"]["gw-1"]["online"] is False, what="offline status")
            sink.session.request_stop()
            await sink_task
        report = sink.store.report()
        assert report["streams"]["gw-1/load/0"] == {"received": 150, "max_stream_seq": 150, "missing": 0}
        assert report["streams"]["gw-1/load/1"] == {"received": 150, "max_stream_seq": 150, "missing": 0}
        assert report["out_of_order"] == 0
        status = report["status"]["gw-1"]
        assert status == {"online": False, "reason": "shutdown", "since": status["since"]}
        assert gateway.outbox is not None and gateway.outbox.stats.backlog_messages == 0
        # Exactly once: every message the gateway produced (every stream, ids gateway:seq) is stored, none is
        # missing, and none reached the sink twice (nothing reconnected, so QoS 1 had nothing to redeliver).
        produced = gateway.outbox.stats.last_seq
        assert sink.store.received_ids("gw-1") == set(range(1, produced + 1))
        assert report["received_unique"] == produced
        assert report["duplicates"] == 0
        health = json.loads(config.health_path.read_text())
        assert set(health["agents"]) == {"uplink", "commands", "heartbeat", "loadgen"}
        assert health["agents"]["loadgen"]["state"] == "finished"
    finally:
        sink.close()

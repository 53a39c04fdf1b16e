"""The heartbeat agent: a small liveness message every ``heartbeat.interval_s`` and a full health
snapshot (agents, outbox backlog and drops, MQTT session) every ``heartbeat.health_interval_s``.

Both travel through the durable outbox, so the cloud sees gaps in connectivity as delayed heartbeats
rather than missing ones, and sees drop counters that explain any gap in other streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from agents.core.config import HeartbeatConfig
from agents.core.supervisor import Agent
from agents.uplink.outbox import Outbox
from protocols.mqtt_v1 import HEALTH, HEARTBEAT


class HeartbeatAgent(Agent):
    def __init__(self, config: HeartbeatConfig, outbox: Outbox, snapshot: Callable[[], dict[str, Any]]) -> None:
        super().__init__("heartbeat")
        self.config = config
        self.outbox = outbox
        self._snapshot = snapshot
        self._started = time.monotonic()

    async def run(self) -> None:
        next_health = time.monotonic()
        while True:
            snap = self._snapshot()
            await self.outbox.put(
                HEARTBEAT,
                {
                    "uptime_s": round(time.monotonic() - self._started, 1),
                    "agents": {name: a["state"] for name, a in snap["agents"].items()},
                    "backlog": snap["outbox"]["backlog_messages"],
                },
            )
            self.health.count("heartbeats")
            if time.monotonic() >= next_health:
                await self.outbox.put(HEALTH, snap)
                self.health.count("health_reports")
                next_health = time.monotonic() + self.config.health_interval_s
            await asyncio.sleep(self.config.interval_s)

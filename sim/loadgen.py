"""Synthetic uplink traffic for soak tests, benchmarks and simulator scenarios.

The generator emits messages on ``load/<i>`` streams at a steady rate. It is crash-exact: on start it
asks the outbox how far each stream already got (the outbox allocates ``stream_seq`` in the same
transaction that stores a message), so after a SIGKILL it resumes where the last *committed* message
left off. A bounded run (``messages``) therefore produces exactly that many messages however often the
process is killed, which is what the fault test checks end to end.
"""

from __future__ import annotations

import asyncio
import time

from agents.core.config import LoadgenConfig
from agents.core.supervisor import Agent
from agents.uplink.outbox import Outbox


def loadgen_stream(index: int) -> str:
    return f"load/{index}"


class LoadgenAgent(Agent):
    def __init__(self, config: LoadgenConfig, outbox: Outbox) -> None:
        super().__init__("loadgen")
        self.config = config
        self.outbox = outbox

    async def run(self) -> None:
        streams = [loadgen_stream(i) for i in range(self.config.streams)]
        positions = {s: await self.outbox.stream_position(s) for s in streams}
        total = sum(positions.values())
        self.health.counters["generated_total"] = total
        pad = "x" * self.config.payload_bytes
        interval = 1.0 / self.config.rate_per_s
        started = time.monotonic()
        emitted = 0
        while self.config.messages is None or total < self.config.messages:
            # Emit whatever is due (bursts after a stall), each burst committed as one group.
            due = int((time.monotonic() - started) / interval) + 1 - emitted
            if self.config.messages is not None:
                due = min(due, self.config.messages - total)
            if due <= 0:
                await asyncio.sleep(interval)
                continue
            batch = []
            for _ in range(due):
                stream = min(streams, key=lambda s: positions[s])
                positions[stream] += 1
                batch.append((stream, {"pad": pad}))
            await self.outbox.put_many(batch)
            emitted += due
            total += due
            self.health.counters["generated_total"] = total

"""Synthetic uplink traffic for soak tests, benchmarks and simulator scenarios.

The generator emits messages on ``load/<i>`` streams at a steady rate. It is crash-exact: on start it
asks the outbox how far each stream already got (the outbox allocates ``stream_seq`` in the same
transaction that stores a message), so after a SIGKILL it resumes where the last *committed* message
left off. A bounded run (``messages``) therefore produces exactly that many messages however often the
process is killed, which is what the fault test checks end to end.

The load is the simulator's setting, never the gateway's: scenarios carry a top-level ``loadgen:`` section,
``storeedge sim gateway --load ...`` runs a real gateway with it, and :func:`loadgen_agents` plugs the agent
into :class:`agents.gateway.runtime.Gateway` through its ``extra_agents`` hook.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import Field

from agents.core.config import StrictModel
from agents.core.supervisor import Agent
from agents.uplink.outbox import Outbox

if TYPE_CHECKING:
    from agents.gateway.runtime import Gateway

__all__ = ["LoadgenAgent", "LoadgenConfig", "loadgen_agents", "loadgen_stream", "parse_load_spec"]


class LoadgenConfig(StrictModel):
    """Synthetic traffic for soak tests, benchmarks and the simulator (not for production stores)."""

    streams: int = Field(1, ge=1, le=64)
    rate_per_s: float = Field(10.0, gt=0)
    messages: int | None = Field(None, ge=1, description="Total messages over all streams; None = unbounded.")
    payload_bytes: int = Field(64, ge=0, le=65536)


def parse_load_spec(text: str) -> LoadgenConfig:
    """``streams=4,rate_per_s=700,messages=10000`` (the ``--load`` option) as a :class:`LoadgenConfig`."""
    fields: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected KEY=VALUE, got {item!r} (keys: {', '.join(LoadgenConfig.model_fields)})")
        fields[key.strip()] = value.strip()
    return LoadgenConfig.model_validate(fields)


def loadgen_agents(config: LoadgenConfig | None) -> Callable[[Gateway], list[Agent]]:
    """The ``extra_agents`` hook of a gateway that also generates ``config``'s load (none for ``None``)."""

    def build(gateway: Gateway) -> list[Agent]:
        if config is None:
            return []
        assert gateway.outbox is not None  # the hook runs once the outbox is open
        return [LoadgenAgent(config, gateway.outbox)]

    return build


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

"""The gateway runtime: builds the outbox and the agents from a validated config and runs them.

``storeedge run --config FILE`` ends up in :func:`run_until_signalled`. Shutdown on SIGTERM/SIGINT is orderly:
producers stop first, the uplink drains the outbox for up to ``runtime.shutdown_grace_s`` and publishes
a retained ``{"online": false, "reason": "shutdown"}``, then the outbox is checkpointed and closed.
Whatever could not be sent stays on disk and goes out after the next start.

With cameras, one store-level :class:`~agents.footfall.day.agent.StoreDayAgent` is shared by all of them: its
observer sees every camera's frames (re-identification and the staff policy when configured), and it closes
the store day and publishes ``counts/daily``. It starts before the cameras, so it drains after them.

One state directory belongs to one running gateway: an exclusive ``flock`` on ``<state_dir>/gateway.lock``
turns an accidental second instance into a clear error instead of two writers on one outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.core.errors import GatewayLockedError
from agents.core.supervisor import Agent, Supervisor
from agents.footfall.day.clock import Clock
from agents.gateway.config import GatewayConfig
from agents.heartbeat import HeartbeatAgent
from agents.uplink.commands import CommandAgent, NoArgs
from agents.uplink.link import UplinkAgent
from agents.uplink.outbox import Outbox
from protocols.mqtt_v1 import GatewayTopics

if TYPE_CHECKING:
    from agents.footfall.day.agent import StoreDayAgent

log = logging.getLogger(__name__)


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "gateway.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise GatewayLockedError(
                f"another storeedge gateway is already running on state directory {state_dir}"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


class Gateway:
    """All agents of one gateway, wired together.

    ``extra_agents`` adds agents built on the running gateway (its outbox, its commands): the simulator's load
    generator plugs in here, from above, so the production runtime knows nothing of it. ``clock`` is the store
    day's clock (default: the system clock); the simulator passes an accelerated one to cross a day boundary.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        extra_agents: Callable[[Gateway], list[Agent]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.topics = GatewayTopics(config.store_id, config.gateway_id)
        self._extra_agents = extra_agents
        self.clock = clock
        self.store_day: StoreDayAgent | None = None  # built with the agents when the gateway has cameras
        self.outbox: Outbox | None = None
        self.uplink: UplinkAgent | None = None
        self.commands: CommandAgent | None = None
        self.supervisor: Supervisor | None = None
        self.ready = asyncio.Event()

    def snapshot(self) -> dict[str, Any]:
        """Current health (agents, outbox, uplink); empty before start."""
        return self.supervisor.snapshot() if self.supervisor else {}

    def _runtime_health(self) -> dict[str, Any]:
        assert self.outbox is not None
        return {
            "store_id": self.config.store_id,
            "gateway_id": self.config.gateway_id,
            "outbox": self.outbox.stats.as_dict(),
        }

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        with state_dir_lock(config.state_dir):
            outbox = Outbox.open(
                config.outbox_path, config.outbox, gateway_id=config.gateway_id, topic_for=self.topics.stream
            )
            self.outbox = outbox
            commands = CommandAgent(config.commands, outbox, config.state_dir / "commands.sqlite3")
            uplink = UplinkAgent(config, outbox, commands=commands.submit)
            self.commands, self.uplink = commands, uplink
            agents: list[Agent] = [uplink, commands]
            agents.append(HeartbeatAgent(config.heartbeat, outbox, self.snapshot))
            if config.cameras:
                agents.extend(await self._footfall_agents(outbox))
            tag_service = None
            if config.tags is not None:
                from agents.tags.service import TagServiceAgent

                store_path = config.tags.store_path or config.state_dir / "tags.sqlite3"
                tag_service = TagServiceAgent(config.tags, outbox, store_path)
                tag_service.register_commands(commands.register)
                agents.append(tag_service)
            if self._extra_agents is not None:
                agents.extend(self._extra_agents(self))
            self.supervisor = Supervisor(
                agents,
                restart_min_s=config.runtime.restart_min_delay_s,
                restart_max_s=config.runtime.restart_max_delay_s,
                health_path=config.health_path,
                health_interval_s=config.runtime.health_file_interval_s,
                snapshot_extra=self._runtime_health,
            )

            async def health_command(_args: NoArgs) -> dict[str, Any]:
                return self.snapshot()

            commands.register("health", NoArgs, health_command, "Return the gateway's health snapshot.")
            try:
                async with asyncio.TaskGroup() as group:
                    writer = group.create_task(outbox.serve(), name="outbox:writer")
                    self.ready.set()
                    await self.supervisor.run(stop, grace_s=config.runtime.shutdown_grace_s)
                    writer.cancel()
            finally:
                if tag_service is not None:
                    await tag_service.aclose()
                await commands.aclose()
                await outbox.aclose()
        log.info("gateway %s stopped", config.gateway_id)


    async def _footfall_agents(self, outbox: Outbox) -> list[Agent]:
        """The store day (with re-identification and staff when configured), the staff policy's badge scanner,
        and one agent per camera, in that order (so the cameras drain first and the store day last)."""
        from agents.footfall.agent import FootfallAgent
        from agents.footfall.day.agent import StoreDayAgent

        config = self.config
        section = config.footfall
        identity = None
        if section.identity is not None:
            from agents.footfall.identity import StoreIdentity

            identity = await asyncio.to_thread(StoreIdentity, section.identity)  # loads the ONNX model
        staff = None
        if section.staff is not None:
            from agents.footfall.staff.policy import build_staff_policy

            zones = {camera.name: [zone.name for zone in camera.counting.zones] for camera in config.cameras}
            staff = build_staff_policy(
                section.staff, zones, person_of=identity.person_of if identity is not None else None
            )
        day = StoreDayAgent(
            section.day,
            outbox,
            store_id=config.store_id,
            gateway_id=config.gateway_id,
            state_dir=config.state_dir,
            clock=self.clock,
            identity=identity,
            staff=staff,
        )
        self.store_day = day
        cameras = [FootfallAgent(camera, outbox, day.store_day) for camera in config.cameras]
        for agent in cameras:
            day.watch_camera(agent.camera.name, agent.source_totals)
        return [day, *(staff.agents() if staff is not None else []), *cameras]


async def run_until_signalled(gateway: Gateway) -> None:
    """Run ``gateway`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

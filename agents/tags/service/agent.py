"""The tag service agent: ties the command handlers, the desired-state store and one scheduler per bus together.

Lifecycle: :meth:`TagServiceAgent.run` opens the store and every bus, loads the rows (adding declared tags and
following bus and panel changes in the config), then runs each bus's :class:`BusScheduler` (and a Bluetooth
bus's own background work) until cancelled; :meth:`~TagServiceAgent.drain` lets running updates finish first.

Commands (:mod:`agents.tags.service.commands` has their arguments):

* ``tags.set_labels`` validates and renders the items on a worker thread, records each valid one as its tag's
  desired image (committed before the answer) and wakes the buses; the answer lists each item as ``queued``,
  ``unchanged`` (the tag already shows that image, or will) or ``error`` with the reason.
* ``tags.led`` and ``tags.ping`` talk to each tag at once, one task per tag; ``tags.status`` reads the rows.

The store runs on a single-thread executor so SQLite never blocks the event loop; the agent keeps the rows in
memory (shared with the schedulers) and writes every change through.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.core.supervisor import Agent
from agents.tags.config import BusConfig, SerialBusConfig, TagsConfig, parse_address
from agents.tags.panels import Panel
from agents.tags.render import Template, default_template, load_template
from agents.tags.service.buses import MaintainedTransport, TransportFactory, open_ble_bus, open_serial_transport
from agents.tags.service.commands import (
    LedArgs,
    PreparedItem,
    SetLabelsArgs,
    StatusArgs,
    TagListArgs,
    led_command,
    prepare_items,
)
from agents.tags.service.scheduler import FAILURES, BusScheduler
from agents.tags.store import TagRecord, TagState, TagStore
from agents.tags.transport import TagRefusedError, TagTransport
from agents.uplink.outbox import Outbox
from protocols.esl import BasicState, EslAddress, LedState, Ping

__all__ = ["CommandRegistrar", "TagServiceAgent"]

_READY_WAIT_S = 10.0

CommandRegistrar = Callable[[str, type[BaseModel], Callable[[Any], Awaitable[Any]], str], None]


class TagServiceAgent(Agent):
    """See the package docstring (:mod:`agents.tags.service`) and this module's."""

    def __init__(
        self,
        config: TagsConfig,
        outbox: Outbox,
        store_path: Path,
        *,
        open_transport: TransportFactory | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__("tags")
        self.config = config
        self.outbox = outbox
        self._store_path = store_path
        self._open_transport = open_transport or self._open_bus
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tag-store")
        self._templates: dict[str, Template] = {"default": default_template()}
        for name, path in config.templates.items():
            self._templates[name] = load_template(path)
        self._panels: dict[EslAddress, Panel] = {}
        self._bus_of: dict[EslAddress, str] = {}
        for bus in config.buses:
            for tag_range in bus.tags:
                for address in tag_range.expand():
                    self._panels[address] = tag_range.panel_profile
                    self._bus_of[address] = bus.name
        self._records: dict[EslAddress, TagRecord] = {}  # filled by run(); shared with the schedulers
        rng = rng or random.Random()
        self._buses = {
            bus.name: BusScheduler(
                bus,
                [address for address, name in self._bus_of.items() if name == bus.name],
                self._records,
                tags=config,
                outbox=outbox,
                health=self.health,
                save=self._save,
                rng=rng,
            )
            for bus in config.buses
        }
        self._store: TagStore | None = None
        self._ready = asyncio.Event()
        self._ble_claimed: set[str] = set()  # BLE addresses onboarded (or being onboarded) by any Bluetooth bus

    @property
    def _running(self) -> dict[EslAddress, asyncio.Task[None]]:
        """The updates in flight, on every bus."""
        return {address: task for bus in self._buses.values() for address, task in bus.running.items()}

    # ------------------------------------------------------------------------------------------------------------
    # Lifecycle

    def register_commands(self, register: CommandRegistrar) -> None:
        register("tags.set_labels", SetLabelsArgs, self._set_labels, "Set what a batch of tags should show.")
        register("tags.led", LedArgs, self._led, "Flash, light or switch off the LED of some tags.")
        register("tags.ping", TagListArgs, self._ping, "Ping tags; answers their state and battery.")
        register("tags.status", StatusArgs, self._status, "The stored state of some or all tags.")

    async def _open_bus(self, bus: BusConfig) -> TagTransport:
        if isinstance(bus, SerialBusConfig):
            return await open_serial_transport(bus)
        assert self._store is not None
        wake_up = self._buses[bus.name].wake_up
        return await open_ble_bus(bus, self._store, self._db, claimed=self._ble_claimed, on_change=wake_up)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _save(self, records: list[TagRecord]) -> None:
        assert self._store is not None
        snapshot = [TagRecord(**vars(record)) for record in records]  # the thread must not see later mutations
        await self._db(self._store.save, snapshot)

    async def run(self) -> None:
        for bus in self._buses.values():
            bus.draining = False
        self._ble_claimed.clear()
        store: TagStore = await self._db(TagStore, self._store_path)
        self._store = store
        try:
            await self._load(store)
            async with asyncio.TaskGroup() as group:
                for bus in self._buses.values():
                    bus.wake = asyncio.Event()
                    bus.transport = await self._open_transport(bus.config)
                self._ready.set()
                for bus in self._buses.values():
                    group.create_task(bus.run(), name=f"tags:scheduler-{bus.name}")
                    if isinstance(bus.transport, MaintainedTransport):
                        group.create_task(bus.transport.maintain(), name=f"tags:maintain-{bus.name}")
        finally:
            self._ready.clear()
            for bus in self._buses.values():
                if bus.transport is not None:
                    await bus.transport.close()
                    bus.transport = None
            await self._db(store.close)
            self._store = None

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)

    async def drain(self, timeout_s: float) -> None:
        """Start no new updates; let the running ones finish (a cut transfer is resumed after the restart)."""
        for bus in self._buses.values():
            bus.draining = True
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)

    async def _load(self, store: TagStore) -> None:
        """Read the rows; add declared tags, follow bus and panel changes in the config."""
        rows: list[TagRecord] = await self._db(store.load)
        by_address = {parse_address(row.address): row for row in rows}
        changed: list[TagRecord] = []
        self._records.clear()
        for address, panel in self._panels.items():
            bus = self._bus_of[address]
            record = by_address.get(address)
            if record is None:
                record = TagRecord(address=str(address), bus=bus, panel=panel.name)
                changed.append(record)
            elif record.bus != bus or record.panel != panel.name:
                if record.panel.partition("@")[0] != panel.base_name:
                    # another panel: what the tag showed is no proof of anything any more
                    record.applied_hash = record.staged_hash = None
                    record.desired_hash = record.desired_image = None
                    record.state = TagState.IDLE
                record.bus, record.panel = bus, panel.name
                changed.append(record)
            if record.state == TagState.STAGED and record.show_at is None:
                record.state = TagState.PENDING
            self._records[address] = record
        await self._save(changed)

    async def _until_ready(self) -> None:
        try:
            async with asyncio.timeout(_READY_WAIT_S):
                await self._ready.wait()
        except TimeoutError:
            raise RuntimeError("the tag service is not running (its buses could not be opened; see health)") from None

    def _wake(self, addresses: Sequence[EslAddress]) -> None:
        for name in {self._bus_of[address] for address in addresses}:
            self._buses[name].wake_up()

    def _bus(self, address: EslAddress) -> BusScheduler:
        return self._buses[self._bus_of[address]]

    # ------------------------------------------------------------------------------------------------------------
    # Commands

    async def _set_labels(self, args: SetLabelsArgs) -> dict[str, Any]:
        await self._until_ready()
        prepared = await asyncio.to_thread(prepare_items, args.items, self._panels, self._templates)
        request = args.request or f"{time.time():.3f}"
        now = time.time()
        results: list[dict[str, Any]] = []
        changed: list[TagRecord] = []
        counts = {"queued": 0, "unchanged": 0, "error": 0}
        for item in prepared:
            if item.error is not None or item.address is None:
                counts["error"] += 1
                results.append({"item": item.index, "tag": item.tag, "status": "error", "reason": item.error})
                continue
            record = self._records[item.address]
            image_hash = item.image_hash
            status = self._desire(record, item, image_hash, f"{request}#{item.index}", now)
            changed.append(record)
            counts[status] += 1
            results.append({"item": item.index, "tag": str(item.address), "status": status, "image_hash": image_hash})
        await self._save(changed)
        self._wake([parse_address(record.address) for record in changed])
        self.health.count("label_items_queued", counts["queued"])
        self.health.count("label_items_unchanged", counts["unchanged"])
        self.health.count("label_items_refused", counts["error"])
        return {**counts, "items": results}

    def _desire(self, record: TagRecord, item: PreparedItem, image_hash: str | None, request: str, now: float) -> str:
        """Record ``item`` as the tag's desired image; "unchanged" when the tag already shows it (or will)."""
        same_image = record.desired_hash == image_hash
        if same_image and record.show_at == item.show_at:
            if record.state == TagState.APPLIED or (record.applied_hash == image_hash and item.show_at is None):
                return "unchanged"
            if record.state in (TagState.PENDING, TagState.STAGED):
                record.priority = max(record.priority, item.priority)
                return "queued"
        record.desired_hash = image_hash
        record.desired_image = item.framebuffer
        record.desired_request = request
        record.desired_at = now
        record.priority = item.priority
        record.show_at = item.show_at
        record.attempts = 0
        record.next_attempt_at = 0.0
        record.last_error = None
        if record.applied_hash == image_hash and item.show_at is None:
            record.state = TagState.APPLIED
            return "unchanged"
        record.state = TagState.STAGED if record.staged_hash == image_hash and item.show_at else TagState.PENDING
        return "queued"

    def _known(self, tags: Sequence[str]) -> tuple[list[EslAddress], list[dict[str, Any]]]:
        addresses: list[EslAddress] = []
        errors: list[dict[str, Any]] = []
        for tag in tags:
            try:
                address = parse_address(tag)
            except ValueError as exc:
                errors.append({"tag": tag, "status": "error", "reason": str(exc)})
                continue
            if address not in self._records:
                errors.append({"tag": tag, "status": "error", "reason": f"unknown tag {address}"})
                continue
            addresses.append(address)
        return addresses, errors

    async def _per_tag(
        self, tags: Sequence[str], action: Callable[[EslAddress], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        await self._until_ready()
        addresses, results = self._known(tags)

        async def one(address: EslAddress) -> dict[str, Any]:
            try:
                return {"tag": str(address), "status": "ok", **await action(address)}
            except FAILURES as exc:
                record = self._records[address]
                record.last_error = str(exc)
                return {"tag": str(address), "status": "error", "reason": str(exc)}

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(address), name=f"tags:cmd-{address}") for address in addresses]
        results.extend(task.result() for task in tasks)
        await self._save([self._records[address] for address in addresses])
        ok = sum(1 for result in results if result["status"] == "ok")
        return {"ok": ok, "error": len(results) - ok, "tags": results}

    async def _ping(self, args: TagListArgs) -> dict[str, Any]:
        async def ping(address: EslAddress) -> dict[str, Any]:
            response = await self._bus(address).require_transport().send_command(address, Ping(address.esl_id))
            if not isinstance(response, BasicState):
                raise TagRefusedError(f"tag {address} answered ping with {response}")
            record = self._records[address]
            record.last_seen = time.time()
            await self._bus(address).read_battery(address, record)
            return {"flags": int(response.flags), "battery_mv": record.battery_mv}

        return await self._per_tag(args.tags, ping)

    async def _led(self, args: LedArgs) -> dict[str, Any]:
        async def led(address: EslAddress) -> dict[str, Any]:
            response = await self._bus(address).require_transport().send_command(address, led_command(address, args))
            if not isinstance(response, LedState):
                raise TagRefusedError(f"tag {address} refused LED control: {response}")
            self._records[address].last_seen = time.time()
            return {"led": response.led_index}

        return await self._per_tag(args.tags, led)

    async def _status(self, args: StatusArgs) -> dict[str, Any]:
        if args.tags is None:
            return {"tags": [record.public() for record in self._records.values()], "errors": []}
        addresses, errors = self._known(args.tags)
        return {"tags": [self._records[address].public() for address in addresses], "errors": errors}

    # ------------------------------------------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        buses: dict[str, Any] = {}
        for name, bus in self._buses.items():
            records = [self._records[a] for a in bus.addresses if a in self._records]
            states: dict[str, int] = {}
            for record in records:
                states[record.state] = states.get(record.state, 0) + 1
            transport = bus.transport
            buses[name] = {
                "type": bus.config.type,
                "port": getattr(bus.config, "port", None),
                "open": transport is not None,
                "tags": len(records),
                "states": states,
                "link_bytes_written": transport.bytes_written if transport else None,
            }
            if isinstance(transport, MaintainedTransport):
                buses[name].update(transport.diagnostics())
        return {"buses": buses, "running_updates": len(self._running)}

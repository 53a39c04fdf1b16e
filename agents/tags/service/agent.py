"""The tag service agent: desired state in, converged tags out.

Flow::

    cloud command tags.set_labels ──► prepare_items (render, validate; worker thread)
                                   ──► TagStore rows (desired image + hash), committed before the answer
    per-bus scheduler ──► transport.send_image / display_image ──► tag confirms ──► row "applied"
                      ──► result on stream ``tags/state`` (image hash, battery, last seen, last error)

Why this shape:

* **Per-item results.** A batch of 400 price changes must not fail because item 17 has a negative price or
  names a tag that is not on this gateway: every item is validated and rendered on its own, and the command
  result lists each item as ``queued``, ``unchanged`` or ``error`` with the reason.
* **Skip-unchanged.** The desired image is identified by its content hash; a tag whose confirmed image has
  the same hash gets nothing sent, so re-sending a batch costs zero image bytes.
* **Scheduler.** One loop per bus picks due tags (highest ``priority`` first, then oldest request) and runs at
  most ``max_concurrent`` updates at a time, each in its own named task. A failed update is retried after a
  jittered exponential back-off until ``retry.max_attempts``; then the tag is ``failed`` with its last error
  until the next command for it.
* **Timed display.** An item with ``show_at`` in the future is transferred now into the tag's spare image
  slot (staged) and only the short Display Image command is sent at ``show_at``, so a store-wide price
  change at opening time takes seconds, not the length of the whole transfer. A staged image the tag lost
  (reset) is detected at display time and sent again in full.
* **Frames never crash the agent.** Transport and codec errors (:class:`TagTransportError`,
  :class:`ProtocolError`) are per-tag failures; anything else is a bug and crashes the agent so the
  supervisor restarts it (the desired state survives in SQLite).

* **Buses.** A bus is a serial line (:class:`SerialTagTransport`) or a Bluetooth access point
  (:class:`agents.tags.ble.bus.BleBus`); the scheduler sees only :class:`agents.tags.transport.TagTransport`. A
  Bluetooth bus also onboards tags in the background and the scheduler skips a tag until it is onboarded.

Commands: ``tags.set_labels``, ``tags.led``, ``tags.ping``, ``tags.status``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.core.backoff import Backoff
from agents.core.supervisor import Agent
from agents.tags.config import BleBusConfig, BusConfig, SerialBusConfig, TagsConfig, parse_address
from agents.tags.encoding import ImageEncodingError
from agents.tags.panels import Panel, UnknownPanelError, panel_by_name
from agents.tags.render import (
    LabelFieldsError,
    LabelImage,
    Template,
    TemplateError,
    default_template,
    load_template,
    render_label,
)
from agents.tags.serial_transport import SerialTagTransport
from agents.tags.store import TagRecord, TagState, TagStore
from agents.tags.transport import TagRefusedError, TagTransport, TagTransportError
from agents.uplink.outbox import Outbox
from protocols.errors import ProtocolError
from protocols.esl import BasicState, EslAddress, LedControl, LedState, Ping, ReadSensorData, SensorValue

log = logging.getLogger(__name__)

__all__ = [
    "RESULTS_STREAM",
    "LabelItem",
    "PreparedItem",
    "TagServiceAgent",
    "prepare_items",
]

RESULTS_STREAM = "tags/state"
#: Image slot the tag shows immediate updates from, and the spare slot timed updates are staged into.
CURRENT_SLOT = 0
STAGED_SLOT = 1
BATTERY_SENSOR = 0
_READY_WAIT_S = 10.0
_FAILURES = (TagTransportError, ProtocolError)


# --------------------------------------------------------------------------------------------------------------------
# Command arguments


class LabelItem(BaseModel):
    """One item of ``tags.set_labels``: what tag ``tag`` should show."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tag: str = Field(description="ESL address 'group/id'.")
    fields: dict[str, Any] = Field(description="Label fields for the template (name, price, currency, ...).")
    template: str = "default"
    panel: str | None = Field(None, description="Panel name; must be the tag's panel (a rotation may differ).")
    priority: int = Field(0, ge=-100, le=100, description="Higher goes first.")
    show_at: datetime | None = Field(None, description="Show at this time (ISO 8601 with zone, or Unix seconds).")

    @field_validator("show_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("show_at needs a time zone (e.g. 2026-12-01T07:00:00+01:00) or Unix seconds")
        return value


class SetLabelsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=2000, description="LabelItem objects, validated one by one.")
    request: str | None = Field(None, max_length=128, description="Echoed (with #item) in the tags/state results.")


class TagListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1, max_length=2000)


class LedArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1, max_length=2000)
    action: Literal["flash", "on", "off"] = "flash"
    color: Literal["red", "green", "blue", "white", "yellow"] = "green"
    duration_s: int = Field(10, ge=1, le=3600, description="How long to flash or stay on.")
    led: int = Field(0, ge=0, le=255)


class StatusArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] | None = Field(None, max_length=2000, description="Default: every tag.")


_COLOURS = {
    "red": (3, 0, 0),
    "green": (0, 3, 0),
    "blue": (0, 0, 3),
    "white": (3, 3, 3),
    "yellow": (3, 3, 0),
}


def led_command(address: EslAddress, args: LedArgs) -> LedControl:
    """The ECP LED Control for ``args``: flash = 200 ms on / 200 ms off for ``duration_s`` seconds."""
    red, green, blue = _COLOURS[args.color]
    if args.action == "off":
        pattern, repeat_type, duration = 0, 0, 0
    elif args.action == "on":
        pattern, repeat_type, duration = 0xFF_FFFF_FFFF, 1, args.duration_s
    else:
        pattern, repeat_type, duration = 0b10, 1, args.duration_s
    return LedControl(
        esl_id=address.esl_id,
        led_index=args.led,
        red=red,
        green=green,
        blue=blue,
        brightness=3,
        pattern=pattern,
        off_period=100,
        on_period=100,
        repeat_type=repeat_type,
        repeats_duration=duration,
    )


# --------------------------------------------------------------------------------------------------------------------
# Preparing items (pure; runs on a worker thread)


@dataclass(frozen=True)
class PreparedItem:
    """A validated and rendered item, or the reason it was refused."""

    index: int
    tag: str | None
    error: str | None = None
    address: EslAddress | None = None
    image: LabelImage | None = None
    framebuffer: bytes | None = None
    priority: int = 0
    show_at: float | None = None

    @property
    def image_hash(self) -> str | None:
        return self.image.content_hash() if self.image is not None else None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
    return f"{where}: {message}" if where else message


def prepare_items(
    items: Sequence[Any], panels: Mapping[EslAddress, Panel], templates: Mapping[str, Template]
) -> list[PreparedItem]:
    """Validate and render every item on its own; a bad item becomes an error entry, the others go on."""
    prepared: list[PreparedItem] = []
    first_index: dict[EslAddress, int] = {}
    for index, raw in enumerate(items):
        tag = raw.get("tag") if isinstance(raw, dict) and isinstance(raw.get("tag"), str) else None
        try:
            item = LabelItem.model_validate(raw)
        except ValidationError as exc:
            prepared.append(PreparedItem(index, tag, error=_first_error(exc)))
            continue
        try:
            address = parse_address(item.tag)
        except ValueError as exc:
            prepared.append(PreparedItem(index, tag, error=f"tag: {exc}"))
            continue
        if address in first_index:
            error = f"tag {address} appears twice in this batch (first valid at item {first_index[address]})"
            prepared.append(PreparedItem(index, tag, error=error))
            continue
        tag_panel = panels.get(address)
        if tag_panel is None:
            prepared.append(PreparedItem(index, tag, error=f"unknown tag {address}: not declared on any bus"))
            continue
        panel = tag_panel
        if item.panel is not None:
            try:
                panel = panel_by_name(item.panel)
            except UnknownPanelError as exc:
                prepared.append(PreparedItem(index, tag, error=f"panel: {exc}"))
                continue
            if panel.base_name != tag_panel.base_name:
                error = f"panel: tag {address} has a {tag_panel.base_name} panel, not {panel.base_name}"
                prepared.append(PreparedItem(index, tag, error=error))
                continue
        template = templates.get(item.template)
        if template is None:
            known = ", ".join(sorted(templates))
            prepared.append(PreparedItem(index, tag, error=f"template: unknown template {item.template!r} ({known})"))
            continue
        try:
            image = render_label(item.fields, panel, template)
            framebuffer = image.framebuffer()
        except LabelFieldsError as exc:
            prepared.append(PreparedItem(index, tag, error=f"fields: {exc}"))
            continue
        except (TemplateError, ImageEncodingError) as exc:
            prepared.append(PreparedItem(index, tag, error=f"render: {exc}"))
            continue
        first_index[address] = index
        show_at = item.show_at.timestamp() if item.show_at is not None else None
        prepared.append(
            PreparedItem(index, tag, None, address, image, framebuffer, priority=item.priority, show_at=show_at)
        )
    return prepared


# --------------------------------------------------------------------------------------------------------------------
# The agent


@dataclass
class _Bus:
    config: BusConfig
    transport: TagTransport | None = None
    wake: asyncio.Event | None = None


CommandRegistrar = Callable[[str, type[BaseModel], Callable[[Any], Awaitable[Any]], str], None]
TransportFactory = Callable[[BusConfig], Awaitable[TagTransport]]


@runtime_checkable
class MaintainedTransport(Protocol):
    """A transport with background work of its own (a BLE bus onboards new tags) and tags that may not be usable
    yet; the service runs :meth:`maintain` beside the bus's scheduler and skips tags that are not ready."""

    async def maintain(self) -> None: ...

    def is_ready(self, address: EslAddress) -> bool: ...

    def diagnostics(self) -> dict[str, Any]: ...


async def open_serial_transport(bus: SerialBusConfig) -> TagTransport:
    return SerialTagTransport(
        bus.port,
        baudrate=bus.baudrate,
        max_concurrent=bus.max_concurrent,
        block_size=bus.block_size,
        max_tries=bus.max_tries,
        ack_timeout=bus.ack_timeout_s,
        reply_timeout=bus.reply_timeout_s,
    )


class TagServiceAgent(Agent):
    """See the module docstring."""

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
        self._rng = rng or random.Random()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tag-store")
        self._templates: dict[str, Template] = {"default": default_template()}
        for name, path in config.templates.items():
            self._templates[name] = load_template(path)
        self._buses = {bus.name: _Bus(bus) for bus in config.buses}
        self._panels: dict[EslAddress, Panel] = {}
        self._bus_of: dict[EslAddress, str] = {}
        for bus in config.buses:
            for tag_range in bus.tags:
                for address in tag_range.expand():
                    self._panels[address] = tag_range.panel_profile
                    self._bus_of[address] = bus.name
        self._records: dict[EslAddress, TagRecord] = {}
        self._store: TagStore | None = None
        self._ready = asyncio.Event()
        self._draining = False
        self._running: dict[EslAddress, asyncio.Task[None]] = {}
        self._ble_claimed: set[str] = set()  # BLE addresses onboarded (or being onboarded) by any Bluetooth bus

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
        return await self._open_ble_bus(bus)

    async def _open_ble_bus(self, bus: BleBusConfig) -> TagTransport:
        # imported here: a gateway without Bluetooth buses never loads bleak
        from agents.tags.ble.access_point import EslTagRecord
        from agents.tags.ble.bus import BleBus
        from protocols.esl import KeyMaterial

        assert self._store is not None
        store = self._store
        key_name = f"ble.{bus.name}.ap_sync_key"
        stored_key: str | None = await self._db(store.meta, key_name)
        if stored_key is None:
            stored_key = KeyMaterial(os.urandom(16), os.urandom(8)).encode().hex()
            await self._db(store.set_meta, key_name, stored_key)
        rows: dict[str, str] = await self._db(store.ble_records, bus.name)
        records = []
        for address, text in rows.items():
            try:
                records.append(EslTagRecord.from_dict(json.loads(text)))
            except ValueError as exc:
                log.warning(
                    "bus %s: ignoring the damaged record of tag %s (it will be onboarded again): %s",
                    bus.name,
                    address,
                    exc,
                )

        async def save_record(record: EslTagRecord) -> None:
            await self._db(store.save_ble_record, bus.name, str(record.esl_address), json.dumps(record.to_dict()))

        state = self._buses[bus.name]
        return BleBus(
            bus,
            ap_sync_key=KeyMaterial.decode(bytes.fromhex(stored_key)),
            declared={address: tag_range.panel_profile for tag_range in bus.tags for address in tag_range.expand()},
            claimed=self._ble_claimed,
            records=records,
            save_record=save_record,
            on_change=lambda: state.wake.set() if state.wake is not None else None,
        )

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _save(self, records: list[TagRecord]) -> None:
        assert self._store is not None
        snapshot = [TagRecord(**vars(record)) for record in records]  # the thread must not see later mutations
        await self._db(self._store.save, snapshot)

    async def run(self) -> None:
        self._draining = False
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
                    group.create_task(self._schedule(bus), name=f"tags:scheduler-{bus.config.name}")
                    if isinstance(bus.transport, MaintainedTransport):
                        group.create_task(bus.transport.maintain(), name=f"tags:maintain-{bus.config.name}")
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
        self._draining = True
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=timeout_s)

    async def _load(self, store: TagStore) -> None:
        """Read the rows; add declared tags, follow bus and panel changes in the config."""
        rows: list[TagRecord] = await self._db(store.load)
        by_address = {parse_address(row.address): row for row in rows}
        changed: list[TagRecord] = []
        self._records = {}
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
            wake = self._buses[name].wake
            if wake is not None:
                wake.set()

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

    def _transport_for(self, address: EslAddress) -> TagTransport:
        transport = self._buses[self._bus_of[address]].transport
        if transport is None:
            raise TagTransportError(f"bus {self._bus_of[address]} is not open")
        return transport

    async def _per_tag(
        self, tags: Sequence[str], action: Callable[[EslAddress], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        await self._until_ready()
        addresses, results = self._known(tags)

        async def one(address: EslAddress) -> dict[str, Any]:
            try:
                return {"tag": str(address), "status": "ok", **await action(address)}
            except _FAILURES as exc:
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
            response = await self._transport_for(address).send_command(address, Ping(address.esl_id))
            if not isinstance(response, BasicState):
                raise TagRefusedError(f"tag {address} answered ping with {response}")
            record = self._records[address]
            record.last_seen = time.time()
            await self._read_battery(address, record)
            return {"flags": int(response.flags), "battery_mv": record.battery_mv}

        return await self._per_tag(args.tags, ping)

    async def _led(self, args: LedArgs) -> dict[str, Any]:
        async def led(address: EslAddress) -> dict[str, Any]:
            response = await self._transport_for(address).send_command(address, led_command(address, args))
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
    # Scheduling

    def _due(self, record: TagRecord, now: float) -> tuple[bool, float | None]:
        """(run now?, when to look again)."""
        if record.state not in (TagState.PENDING, TagState.STAGED):
            return False, None
        if record.next_attempt_at > now:
            return False, record.next_attempt_at
        if record.state == TagState.STAGED and record.show_at is not None and record.show_at > now:
            return False, record.show_at
        return True, None

    async def _schedule(self, bus: _Bus) -> None:
        assert bus.wake is not None
        addresses = [address for address, name in self._bus_of.items() if name == bus.config.name]
        limit = bus.config.max_concurrent
        async with asyncio.TaskGroup() as group:
            while True:
                bus.wake.clear()
                now = time.time()
                due: list[TagRecord] = []
                next_look: float | None = None
                transport = bus.transport
                for address in addresses:
                    if address in self._running:
                        continue
                    if isinstance(transport, MaintainedTransport) and not transport.is_ready(address):
                        continue  # not onboarded yet: the bus wakes this loop when it is
                    record = self._records[address]
                    run_now, later = self._due(record, now)
                    if run_now:
                        due.append(record)
                    elif later is not None:
                        next_look = later if next_look is None else min(next_look, later)
                free = (
                    0 if self._draining else limit - sum(1 for a in self._running if self._bus_of[a] == bus.config.name)
                )
                due.sort(key=lambda r: (-r.priority, r.desired_at or 0.0, r.address))
                for record in due[: max(0, free)]:
                    address = parse_address(record.address)
                    task = group.create_task(self._update(bus, address, record), name=f"tags:update-{address}")
                    self._running[address] = task
                    task.add_done_callback(functools.partial(self._finished, bus, address))
                timeout = None if next_look is None else max(0.0, next_look - time.time())
                try:
                    async with asyncio.timeout(timeout):
                        await bus.wake.wait()
                except TimeoutError:
                    pass

    def _finished(self, bus: _Bus, address: EslAddress, _task: asyncio.Task[None]) -> None:
        self._running.pop(address, None)
        if bus.wake is not None:
            bus.wake.set()

    async def _update(self, bus: _Bus, address: EslAddress, record: TagRecord) -> None:
        """Bring one tag to its desired image (or record why not)."""
        transport = bus.transport
        assert transport is not None
        image, image_hash, request = record.desired_image, record.desired_hash, record.desired_request
        if image is None or image_hash is None:
            record.state = TagState.IDLE
            await self._save([record])
            return
        show_at = record.show_at
        bytes_sent = 0
        started = time.time()
        try:
            if show_at is not None and show_at > started:
                result = await transport.send_image(address, image, image_index=STAGED_SLOT, display=False)
                bytes_sent = result.bytes_sent
                outcome = TagState.STAGED
            elif record.staged_hash == image_hash and record.state == TagState.STAGED:
                try:
                    await transport.display_image(address, STAGED_SLOT)
                except TagRefusedError:
                    record.staged_hash = None  # the tag lost the staged image (reset): send it in full now
                    record.state = TagState.PENDING
                    raise
                outcome = TagState.APPLIED
            else:
                result = await transport.send_image(address, image, image_index=CURRENT_SLOT)
                bytes_sent = result.bytes_sent
                outcome = TagState.APPLIED
        except _FAILURES as exc:
            record.bytes_sent += bytes_sent
            self.health.count("image_bytes_sent", bytes_sent)
            await self._failed(address, record, exc, image_hash, request)
            return
        now = time.time()
        record.bytes_sent += bytes_sent
        record.last_seen = now
        record.attempts = 0
        record.last_error = None
        self.health.count("image_bytes_sent", bytes_sent)
        if outcome == TagState.STAGED:
            record.staged_hash = image_hash
            self.health.count("updates_staged")
        else:
            record.applied_hash = image_hash
            record.applied_at = now
            record.updates += 1
            self.health.count("updates_applied")
            if self.config.read_battery:
                await self._read_battery(address, record)
        if record.desired_hash == image_hash:  # not replaced by a newer command meanwhile
            record.state = outcome
        else:
            record.state = TagState.PENDING
        await self._save([record])
        await self._publish(record, outcome, image_hash, request, bytes_sent=bytes_sent, seconds=now - started)

    async def _failed(
        self, address: EslAddress, record: TagRecord, exc: Exception, image_hash: str, request: str | None
    ) -> None:
        record.attempts += 1
        record.last_error = f"{type(exc).__name__}: {exc}"
        self.health.count("update_errors")
        retry = self.config.retry
        if record.desired_hash != image_hash:
            record.state, record.attempts = TagState.PENDING, 0  # superseded while failing: start afresh
        elif record.attempts >= retry.max_attempts:
            record.state = TagState.FAILED
            self.health.count("updates_failed")
            log.warning("tag %s: giving up after %d attempts: %s", address, record.attempts, record.last_error)
        else:
            backoff = Backoff(retry.min_delay_s, retry.max_delay_s, rng=self._rng, attempt=record.attempts - 1)
            record.next_attempt_at = time.time() + backoff.next_delay()
            if record.state != TagState.STAGED:
                record.state = TagState.PENDING
        await self._save([record])
        if record.state == TagState.FAILED:
            await self._publish(record, TagState.FAILED, image_hash, request)

    async def _read_battery(self, address: EslAddress, record: TagRecord) -> None:
        """Best effort: a tag that applied its image but misses a sensor read is still updated."""
        transport = self._transport_for(address)
        try:
            response = await transport.send_command(address, ReadSensorData(address.esl_id, BATTERY_SENSOR))
        except _FAILURES as exc:
            self.health.count("battery_read_errors")
            log.debug("tag %s: battery read failed: %s", address, exc)
            return
        if isinstance(response, SensorValue) and len(response.data) >= 2:
            record.battery_mv = int.from_bytes(response.data[:2], "little")

    async def _publish(
        self,
        record: TagRecord,
        outcome: str,
        image_hash: str,
        request: str | None,
        *,
        bytes_sent: int = 0,
        seconds: float | None = None,
    ) -> None:
        payload = {
            "tag": record.address,
            "bus": record.bus,
            "state": outcome,
            "image_hash": image_hash,
            "applied_hash": record.applied_hash,
            "request": request,
            "show_at": _iso(record.show_at),
            "battery_mv": record.battery_mv,
            "signal": record.signal,
            "last_seen": record.last_seen,
            "last_error": record.last_error,
            "attempts": record.attempts,
            "bytes_sent": bytes_sent,
            "seconds": round(seconds, 3) if seconds is not None else None,
        }
        await self.outbox.put(RESULTS_STREAM, payload)

    # ------------------------------------------------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        buses: dict[str, Any] = {}
        for name, bus in self._buses.items():
            records = [self._records[a] for a, b in self._bus_of.items() if b == name and a in self._records]
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


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None

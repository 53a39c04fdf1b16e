"""The tag service agent against simulated serial tags: desired state, skip-unchanged, per-item errors,
retries, timed display, LED and ping, restarts, and garbage on the line.

The agent runs with a real durable outbox (no broker needed: the results it uplinks are read back from the
outbox) and real :class:`SerialTagTransport` instances on the ptys of :class:`SimulatedSerialBus` (the
MicroPython firmware running on CPython). Command handlers are called the way the command agent calls them:
with the validated argument model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agents.core.config import OutboxConfig
from agents.tags.config import TagsConfig
from agents.tags.panels import panel_by_name
from agents.tags.render import render_label
from agents.tags.service import RESULTS_STREAM, TagServiceAgent, prepare_items
from agents.uplink.outbox import Outbox
from protocols.esl import EslAddress
from protocols.mqtt_v1 import GatewayTopics, decode_envelope
from sim.serial_tags import FaultConfig, SimulatedSerialBus
from tests.conftest import wait_for

TOPICS = GatewayTopics("store-1", "gw-1")


def fields(n: int, price: str = "1.99") -> dict[str, Any]:
    return {"name": f"Product {n}", "price": price, "currency": "EUR", "ean13": "4006381333931"}


def addresses(group: int, count: int) -> list[EslAddress]:
    return [EslAddress(group, i + 1) for i in range(count)]


@dataclass
class Store:
    service: TagServiceAgent
    outbox: Outbox
    buses: dict[str, SimulatedSerialBus]
    handlers: dict[str, tuple[type[BaseModel], Callable[[Any], Awaitable[Any]]]] = field(default_factory=dict)

    async def command(self, ctype: str, args: dict[str, Any]) -> Any:
        model, run = self.handlers[ctype]
        return await run(model.model_validate(args))

    async def results(self) -> list[dict[str, Any]]:
        rows = await self.outbox.read_after(0, 100_000)
        return [decode_envelope(row.payload).data for row in rows if row.stream == RESULTS_STREAM]

    def tag(self, address: EslAddress) -> Any:
        for bus in self.buses.values():
            if address in bus.tags:
                return bus.tags[address]
        raise KeyError(address)

    async def settled(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        def idle() -> bool:
            states = [r.state for r in self.service._records.values()]
            return not self.service._running and all(s in ("applied", "failed", "idle", "staged") for s in states)

        await wait_for(idle, timeout=timeout, what="every tag to settle")


@contextlib.asynccontextmanager
async def running_store(
    tmp_path: Path,
    layout: dict[str, tuple[int, str]],
    *,
    faults: FaultConfig | None = None,
    retry: dict[str, Any] | None = None,
    state: str = "state",
) -> AsyncIterator[Store]:
    """Buses named by ``layout`` (name -> (group, count of tags), panel) with firmware tags behind ptys."""
    buses: dict[str, SimulatedSerialBus] = {}
    bus_sections = []
    for name, (group_count, panel_name) in layout.items():
        group_id, count = divmod(group_count, 1000)
        panel = panel_by_name(panel_name)
        bus = SimulatedSerialBus(
            addresses(group_id, count), width=panel.width, height=panel.height, planes=panel.planes, faults=faults
        )
        bus.start()
        buses[name] = bus
        bus_sections.append(
            {"name": name, "port": bus.port, "tags": [{"addresses": f"{group_id}/1-{count}", "panel": panel_name}]}
        )
    config = TagsConfig.model_validate(
        {"buses": bus_sections, "retry": retry or {"max_attempts": 3, "min_delay_s": 0.05, "max_delay_s": 0.2}}
    )
    outbox = Outbox.open(
        tmp_path / state / "outbox.sqlite3", OutboxConfig(), gateway_id="gw-1", topic_for=TOPICS.stream
    )
    service = TagServiceAgent(config, outbox, tmp_path / state / "tags.sqlite3")
    store = Store(service, outbox, buses)
    service.register_commands(lambda ctype, model, run, _d: store.handlers.__setitem__(ctype, (model, run)))
    try:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(outbox.serve(), name="test:outbox")
            agent = group.create_task(service.run(), name="test:tags")
            await wait_for(service._ready.is_set, what="the tag service to start")
            try:
                yield store
            finally:
                agent.cancel()
                writer.cancel()
    finally:
        await outbox.aclose()
        await service.aclose()
        for bus in buses.values():
            bus.stop()


def expected_framebuffer(n: int, panel: str, price: str = "1.99") -> bytes:
    return render_label(fields(n, price), panel_by_name(panel)).framebuffer()


def sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


async def test_batch_applies_and_resend_sends_zero_image_bytes(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1006, "250x122-bw"), "bus-b": (2004, "200x200-bwr")}) as store:
        items: list[dict[str, Any]] = [{"tag": f"1/{i}", "fields": fields(i)} for i in range(1, 7)]
        items += [{"tag": f"2/{i}", "fields": fields(100 + i)} for i in range(1, 5)]
        answer = await store.command("tags.set_labels", {"items": items, "request": "batch-1"})
        assert (answer["queued"], answer["unchanged"], answer["error"]) == (10, 0, 0)
        await store.settled()
        for i in range(1, 7):
            shown = store.tag(EslAddress(1, i)).planes
            assert shown == expected_framebuffer(i, "250x122-bw")  # 250 wide: rows padded to 32 bytes
        for i in range(1, 5):
            assert store.tag(EslAddress(2, i)).planes == expected_framebuffer(100 + i, "200x200-bwr")
        results = await store.results()
        assert sorted(r["tag"] for r in results) == sorted(item["tag"] for item in items)
        assert all(r["state"] == "applied" and r["battery_mv"] == 3000 for r in results)
        assert {r["request"] for r in results} == {f"batch-1#{i}" for i in range(10)}
        first_bytes = store.service.health.counters["image_bytes_sent"]
        assert first_bytes == 6 * 32 * 122 + 4 * 2 * 5000

        again = await store.command("tags.set_labels", {"items": items})
        assert (again["queued"], again["unchanged"], again["error"]) == (0, 10, 0)
        await asyncio.sleep(0.3)
        assert store.service.health.counters["image_bytes_sent"] == first_bytes
        assert len(await store.results()) == 10


async def test_bad_items_get_their_own_error_and_the_rest_proceed(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1003, "152x152-bw")}) as store:
        items: list[Any] = [
            {"tag": "1/1", "fields": fields(1)},
            {"tag": "1/9", "fields": fields(9)},  # not declared
            {"tag": "1/2", "fields": fields(2, price="-1")},
            {"tag": "1/2", "fields": {**fields(2), "price": "NaN"}},
            {"tag": "1/2", "fields": fields(2, price="1" * 40)},
            {"tag": "1/3", "fields": {"price": "2.50", "currency": "EUR"}},  # no name
            {"tag": "1/3", "fields": fields(3), "panel": "999x999-bw"},
            {"tag": "1/3", "fields": fields(3), "template": "nope"},
            {"tag": "x", "fields": fields(3)},
            "not an object",
            {"tag": "1/2", "fields": fields(2)},
            {"tag": "1/2", "fields": fields(22)},  # twice in one batch
        ]
        answer = await store.command("tags.set_labels", {"items": items})
        by_item = {entry["item"]: entry for entry in answer["items"]}
        assert [by_item[i]["status"] for i in range(len(items))] == [
            "queued", "error", "error", "error", "error", "error", "error", "error", "error", "error", "queued", "error"
        ]  # fmt: skip
        reasons = [by_item[i].get("reason") or "" for i in range(len(items))]
        assert "unknown tag 1/9" in reasons[1]
        assert "price" in reasons[2] and "greater than or equal to 0" in reasons[2]
        assert "price" in reasons[3] and "finite" in reasons[3]
        assert "price" in reasons[4] and "digits" in reasons[4]
        assert "name" in reasons[5] and "missing" in reasons[5]
        assert "unknown panel" in reasons[6]
        assert "unknown template 'nope'" in reasons[7]
        assert "group/id" in reasons[8]
        assert reasons[9]
        assert "appears twice" in reasons[11]
        await store.settled()
        assert store.tag(EslAddress(1, 1)).planes == expected_framebuffer(1, "152x152-bw")
        assert store.tag(EslAddress(1, 2)).planes == expected_framebuffer(2, "152x152-bw")
        assert store.tag(EslAddress(1, 3)).planes is None


async def test_unreachable_tag_fails_after_retries_while_others_apply(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1003, "152x152-bw")}) as store:
        del store.buses["bus-a"].tags[EslAddress(1, 3)]  # the tag's battery died
        items = [{"tag": f"1/{i}", "fields": fields(i)} for i in range(1, 4)]
        await store.command("tags.set_labels", {"items": items})
        await store.settled(timeout=60)
        results = {r["tag"]: r for r in await store.results()}
        assert results["1/1"]["state"] == results["1/2"]["state"] == "applied"
        assert results["1/3"]["state"] == "failed"
        assert results["1/3"]["attempts"] == 3
        assert "TagUnreachableError" in results["1/3"]["last_error"]
        status = await store.command("tags.status", {"tags": ["1/3", "1/7"]})
        assert status["tags"][0]["state"] == "failed"
        assert "unknown tag" in status["errors"][0]["reason"]


async def test_timed_display_stages_first_and_shows_at_the_time(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1002, "296x128-bwr")}) as store:
        await store.command("tags.set_labels", {"items": [{"tag": "1/1", "fields": fields(1)}]})
        await store.settled()
        before = store.tag(EslAddress(1, 1)).planes
        show_at = time.time() + 1.5
        items = [{"tag": "1/1", "fields": fields(1, price="2.49"), "show_at": show_at}]
        await store.command("tags.set_labels", {"items": items})
        await wait_for(lambda: store.service._records[EslAddress(1, 1)].state == "staged", what="staging")
        assert store.tag(EslAddress(1, 1)).planes == before  # transferred, not shown yet
        await wait_for(lambda: store.service._records[EslAddress(1, 1)].state == "applied", what="timed display")
        assert time.time() >= show_at
        assert store.tag(EslAddress(1, 1)).planes == expected_framebuffer(1, "296x128-bwr", price="2.49")
        states = [r["state"] for r in await store.results()]
        assert states == ["applied", "staged", "applied"]


async def test_staged_image_lost_in_a_reset_is_sent_again(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1001, "152x152-bw")}) as store:
        show_at = time.time() + 1.0
        await store.command("tags.set_labels", {"items": [{"tag": "1/1", "fields": fields(1), "show_at": show_at}]})
        await wait_for(lambda: store.service._records[EslAddress(1, 1)].state == "staged", what="staging")
        store.tag(EslAddress(1, 1)).reset()
        await wait_for(lambda: store.service._records[EslAddress(1, 1)].state == "applied", what="display")
        assert store.tag(EslAddress(1, 1)).planes == expected_framebuffer(1, "152x152-bw")


async def test_led_and_ping_per_tag_results(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1002, "152x152-bw")}) as store:
        led = await store.command("tags.led", {"tags": ["1/1", "1/2", "1/5"], "action": "flash", "duration_s": 5})
        assert (led["ok"], led["error"]) == (2, 1)
        firmware_led = store.tag(EslAddress(1, 1)).firmware.handler.leds[0]
        assert firmware_led.active and firmware_led.repeat == (5 << 1) | 1
        off = await store.command("tags.led", {"tags": ["1/1"], "action": "off"})
        assert off["ok"] == 1 and not firmware_led.active
        ping = await store.command("tags.ping", {"tags": ["1/1", "1/2"]})
        assert ping["ok"] == 2 and all(t["battery_mv"] == 3000 for t in ping["tags"])


async def test_desired_state_survives_a_restart(tmp_path: Path) -> None:
    items = [{"tag": f"1/{i}", "fields": fields(i)} for i in range(1, 4)]
    async with running_store(tmp_path, {"bus-a": (1003, "152x152-bw")}) as store:
        await store.command("tags.set_labels", {"items": items})
        await store.settled()
    async with running_store(tmp_path, {"bus-a": (1003, "152x152-bw")}) as store:
        # a new gateway process, the same state dir: the tags are known to show these images
        again = await store.command("tags.set_labels", {"items": items})
        assert again["unchanged"] == 3
        assert store.service.health.counters.get("image_bytes_sent", 0) == 0


async def test_garbage_on_the_line_never_crashes_the_agent(tmp_path: Path) -> None:
    async with running_store(tmp_path, {"bus-a": (1004, "152x152-bw")}) as store:
        bus = store.buses["bus-a"]
        items = [{"tag": f"1/{i}", "fields": fields(i)} for i in range(1, 5)]
        await store.command("tags.set_labels", {"items": items})
        for n in range(20):
            bus.inject_garbage(bytes((n * 37 + k) % 256 for k in range(200)) + b"\x00\x05\x00\xff\x00")
            await asyncio.sleep(0.01)
        await store.settled(timeout=60)
        for i in range(1, 5):
            assert store.tag(EslAddress(1, i)).planes == expected_framebuffer(i, "152x152-bw")
        assert store.service.health.state != "backoff"


@pytest.mark.parametrize("count", [2])
def test_prepare_items_is_pure_and_renders_each_item(count: int) -> None:
    panels = {EslAddress(1, i): panel_by_name("152x152-bw") for i in range(1, count + 1)}
    from agents.tags.render import default_template

    prepared = prepare_items(
        [{"tag": f"1/{i}", "fields": fields(i)} for i in range(1, count + 1)], panels, {"default": default_template()}
    )
    assert [p.error for p in prepared] == [None] * count
    assert prepared[0].framebuffer == expected_framebuffer(1, "152x152-bw")
    assert prepared[0].image_hash != prepared[1].image_hash

"""The tag service with a Bluetooth bus: onboarding by panel, label updates, and bad tags (issue 5, acceptance 4-5).

The service runs with a real outbox and a BLE bus whose access point uses bleak with the bumble backend, both
named in the config; the tags are emulated ESL GATT servers on an in-process radio. A tag that goes out of range
or fails mid-way must end as a per-tag failure with its reason while the others apply and the agent keeps
running; the backend being a config value is shown by building the same bus with bleak's default backend and
with the simulator's, and an object channel nobody registered is a config error that lists the registered ones.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agents.core.config import OutboxConfig
from agents.core.errors import ConfigError
from agents.tags.ble.bus import BleBus
from agents.tags.config import BleBusConfig, TagsConfig
from agents.tags.panels import panel_by_name
from agents.tags.render import render_label
from agents.tags.service import RESULTS_STREAM, TagServiceAgent
from agents.uplink.outbox import Outbox
from protocols.esl import EslAddress, KeyMaterial
from protocols.mqtt_v1 import GatewayTopics, decode_envelope
from sim.ble import (
    BumbleBleakClient,
    BumbleBleakScanner,
    BumbleObjectChannel,
    EmulatedEslTag,
    TagProfile,
    VirtualRadio,
    use_radio,
)
from tests.conftest import wait_for

TOPICS = GatewayTopics("store-1", "gw-1")


def ble_bus(name: str, addresses: str, panel: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "ble",
        "name": name,
        "client_backend": "sim.ble:BumbleBleakClient",
        "scanner_backend": "sim.ble:BumbleBleakScanner",
        "object_channel": "sim",
        "scan_s": 0.5,
        "rescan_s": 0.5,
        "connect_s": 2.0,
        "response_s": 2.0,
        "attempts": 2,
        "tags": [{"addresses": addresses, "panel": panel}],
        **extra,
    }


def fields(n: int) -> dict[str, Any]:
    return {"name": f"Product {n}", "price": "1.49", "currency": "EUR", "qr": f"https://shop.example/p/{n}"}


async def test_ble_bus_onboards_by_panel_and_reports_bad_tags_per_tag(tmp_path: Path) -> None:
    async with VirtualRadio() as radio:
        with use_radio(radio):
            wide = [
                await EmulatedEslTag.create(radio, profile=TagProfile(panel=panel_by_name("296x128-bwr")))
                for _ in range(3)
            ]
            square = [
                await EmulatedEslTag.create(radio, profile=TagProfile(panel=panel_by_name("200x200-bw")))
                for _ in range(2)
            ]
            config = TagsConfig.model_validate(
                {
                    "buses": [ble_bus("ap-1", "1/1-3", "296x128-bwr"), ble_bus("ap-2", "2/1-2", "200x200-bw")],
                    "retry": {"max_attempts": 2, "min_delay_s": 0.05, "max_delay_s": 0.1},
                }
            )
            outbox = Outbox.open(
                tmp_path / "outbox.sqlite3", OutboxConfig(), gateway_id="gw-1", topic_for=TOPICS.stream
            )
            service = TagServiceAgent(config, outbox, tmp_path / "tags.sqlite3")
            handlers: dict[str, Any] = {}
            service.register_commands(lambda ctype, model, run, _d: handlers.__setitem__(ctype, (model, run)))

            async def command(ctype: str, args: dict[str, Any]) -> Any:
                model, run = handlers[ctype]
                return await run(model.model_validate(args))

            try:
                async with asyncio.TaskGroup() as group:
                    writer = group.create_task(outbox.serve(), name="test:outbox")
                    agent = group.create_task(service.run(), name="test:tags")
                    try:

                        def onboarded(bus: str) -> int:
                            return int(service.diagnostics()["buses"][bus].get("onboarded", 0))

                        await wait_for(
                            lambda: onboarded("ap-1") == 3 and onboarded("ap-2") == 2,
                            timeout=30,
                            what="onboarding of all five tags",
                        )
                        # each tag got an address on the bus declaring its panel
                        assert {str(tag.esl_address).split("/")[0] for tag in wide} == {"1"}
                        assert {str(tag.esl_address).split("/")[0] for tag in square} == {"2"}
                        lost = wide[2]
                        await lost.set_out_of_range(True)
                        items = [{"tag": f"1/{i}", "fields": fields(i)} for i in (1, 2, 3)]
                        items += [{"tag": f"2/{i}", "fields": fields(10 + i)} for i in (1, 2)]
                        answer = await command("tags.set_labels", {"items": items})
                        assert answer["queued"] == 5

                        def settled() -> bool:
                            states = [r.state for r in service._records.values()]
                            return not service._running and all(s in ("applied", "failed") for s in states)

                        await wait_for(settled, timeout=60, what="every tag to settle")
                        rows = await outbox.read_after(0, 1000)
                        results = {
                            data["tag"]: data
                            for row in rows
                            if row.stream == RESULTS_STREAM
                            for data in [decode_envelope(row.payload).data]
                        }
                        lost_address = str(lost.esl_address)
                        assert results[lost_address]["state"] == "failed"
                        assert (
                            "TagNotFound" in results[lost_address]["last_error"]
                            or "Connect" in results[lost_address]["last_error"]
                        )
                        for tag in wide[:2] + square:
                            address = str(tag.esl_address)
                            assert results[address]["state"] == "applied", results[address]
                            n = int(address.split("/")[1]) + (10 if address.startswith("2/") else 0)
                            panel = "296x128-bwr" if address.startswith("1/") else "200x200-bw"
                            assert tag.epaper.shown == render_label(fields(n), panel_by_name(panel)).framebuffer()
                        led = await command("tags.led", {"tags": ["1/1", lost_address], "action": "flash"})
                        assert (led["ok"], led["error"]) == (1, 1)
                        assert service.health.state != "backoff" and not agent.done()
                        assert service.diagnostics()["buses"]["ap-1"]["onboarded"] == 3
                    finally:
                        agent.cancel()
                        writer.cancel()
            finally:
                await outbox.aclose()
                await service.aclose()


def test_the_backend_is_a_config_value() -> None:
    """The same bus with bleak's default backend (BlueZ on Linux): built without touching bumble or sim."""
    code = """
import sys
from agents.tags.ble.bus import BleBus
from agents.tags.config import BleBusConfig
from agents.tags.panels import panel_by_name
from protocols.esl import KeyMaterial
from protocols.esl import EslAddress

async def save(record): pass
config = BleBusConfig(type="ble", name="ap", tags=[{"addresses": "1/1", "panel": "152x152-bw"}])
declared = {EslAddress(1, 1): panel_by_name("152x152-bw")}
bus = BleBus(config, ap_sync_key=KeyMaterial(bytes(16), bytes(8)), declared=declared, save_record=save)
assert bus.access_point.client_backend is None and bus.access_point.scanner_backend is None
assert not any(name == "bumble" or name.startswith(("bumble.", "sim")) for name in sys.modules), sorted(sys.modules)
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    assert BleBusConfig.model_validate({"type": "ble", "name": "x"}).client_backend is None
    # and the simulator's backends and object channel, named in the same config, are what the access point gets
    simulated = _bus(BleBusConfig.model_validate(ble_bus("ap", "1/1", "152x152-bw"))).access_point
    assert (simulated.client_backend, simulated.scanner_backend) == (BumbleBleakClient, BumbleBleakScanner)
    assert simulated.channel_factory is BumbleObjectChannel


def test_an_unknown_object_channel_is_a_config_error_naming_the_registered_ones() -> None:
    config = BleBusConfig.model_validate(ble_bus("ap", "1/1", "152x152-bw", object_channel="bogus"))
    with pytest.raises(ConfigError, match=r"'ap': unknown object channel 'bogus': .*\('linux', 'sim'\)"):
        _bus(config)
    with pytest.raises(ValidationError, match="registered channel name or 'module:Class'"):
        BleBusConfig.model_validate(ble_bus("ap", "1/1", "152x152-bw", object_channel="not a name"))


def _bus(config: BleBusConfig) -> BleBus:
    async def save(_record: object) -> None:
        return None

    declared = {EslAddress(1, 1): panel_by_name("152x152-bw")}
    return BleBus(config, ap_sync_key=KeyMaterial(bytes(16), bytes(8)), declared=declared, save_record=save)

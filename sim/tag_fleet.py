"""The tag part of a simulator scenario: serial buses of firmware tags, a price batch from the cloud, a report.

A scenario's ``tags:`` section declares buses (group, number of tags, panel) and fault injection. The fleet

1. starts one :class:`SimulatedSerialBus` per bus (a pty with the MicroPython firmware tags behind it) and
   gives the gateway a ``tags:`` config pointing at the ptys, so the gateway uses plain pyserial;
2. once the gateway is subscribed, publishes ``tags.set_labels`` commands from the cloud side over MQTT (the
   batch: one label per tag, fields from the scenario with ``{n}`` replaced by the tag's number);
3. waits for a ``tags/state`` result from every tag at the cloud sink, then sends the same batch again
   (``resend``), which must transfer zero image bytes;
4. reports totals, the image bytes sent, a hash check of every tag's virtual e-paper against the intended
   image, whether any e-paper ever showed anything but an intended image (a partial image), the measured
   fault rates, the zlib ratio of the batch, and PNG previews of some tags' e-papers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.cloud.sink import CloudSink
from agents.gateway.runtime import Gateway
from agents.tags.encoding import decode_framebuffer
from agents.tags.panels import panel_by_name
from agents.tags.render import LabelImage, render_label
from protocols.esl import EslAddress
from protocols.mqtt_v1 import GatewayTopics
from sim.ble import EmulatedEslTag, TagFaults, TagProfile, VirtualRadio, use_radio
from sim.serial_tags import FaultConfig, SimulatedSerialBus

__all__ = ["SimTagBus", "TagFleet", "TagsScenario"]

_BATCH_CHUNK = 50  # items per command, well under the command size limit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimTagBus(_Strict):
    type: Literal["serial", "ble"] = "serial"
    name: str
    group: int = Field(ge=0, le=127)
    count: int = Field(ge=1, le=254)
    panel: str
    max_concurrent: int = Field(8, ge=1, le=64)
    block_size: int = Field(128, ge=16, le=1000)


class SimFaults(_Strict):
    corrupt_byte: float = Field(0.0, ge=0, lt=1)
    corrupt_burst_ratio: float = Field(0.0, ge=0, lt=1)
    burst_bytes: float = Field(16.0, ge=1)
    corrupt_frame: float = Field(0.0, ge=0, le=1)
    drop_frame: float = Field(0.0, ge=0, lt=1)
    disconnect_mid_transfer: float = Field(0.0, ge=0, lt=1, description="BLE: share of object writes cut off.")
    seed: int | None = None


class TagsScenario(_Strict):
    buses: list[SimTagBus] = Field(min_length=1)
    faults: SimFaults = SimFaults()
    fields: dict[str, Any] = Field(description="Label fields; '{n}' in a string is the tag's number in the fleet.")
    resend: bool = Field(True, description="Send the same batch again once it is applied (must cost 0 bytes).")
    previews: int = Field(1, ge=0, le=20, description="PNG previews saved per bus.")
    timeout_s: float = Field(300.0, gt=0, description="Give up waiting for results after this long.")


def ean13(number: int) -> str:
    """A valid EAN-13 for product ``number`` (a made-up 400-prefix code with the right check digit)."""
    body = f"400{number:09d}"[:12]
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _fill(value: Any, n: int) -> Any:
    if isinstance(value, str):
        return value.replace("{n}", str(n)).replace("{price}", f"{0.99 + (n % 50) * 0.1:.2f}")
    return value


class TagFleet:
    """The simulated buses of one run (see the module docstring)."""

    def __init__(self, scenario: TagsScenario) -> None:
        self.scenario = scenario
        faults = scenario.faults
        self.buses: dict[str, SimulatedSerialBus] = {}
        self.items: list[dict[str, Any]] = []
        self.expected: dict[EslAddress, bytes] = {}
        self.panels: dict[EslAddress, str] = {}
        self.zlib_ratios: list[float] = []
        self.timeline: dict[str, float] = {}
        self.resend_answer: dict[str, Any] = {}
        self.resend_bytes: int | None = None
        self.first_bytes: int | None = None
        self._batch_ids: list[str] = []
        self.ble_addresses: dict[str, list[EslAddress]] = {}
        self.ble_tags: list[EmulatedEslTag] = []
        self.radio: VirtualRadio | None = None
        self._radio_scope: contextlib.ExitStack | None = None
        n = 0
        for index, bus in enumerate(scenario.buses):
            panel = panel_by_name(bus.panel)
            addresses = [EslAddress(bus.group, i + 1) for i in range(bus.count)]
            fault_config = FaultConfig(
                corrupt_byte=faults.corrupt_byte,
                corrupt_burst_ratio=faults.corrupt_burst_ratio,
                burst_bytes=faults.burst_bytes,
                corrupt_frame=faults.corrupt_frame,
                drop_frame=faults.drop_frame,
                seed=None if faults.seed is None else faults.seed + index,
            )
            if bus.type == "serial":
                self.buses[bus.name] = SimulatedSerialBus(
                    addresses, width=panel.width, height=panel.height, planes=panel.planes, faults=fault_config
                )
            else:
                self.ble_addresses[bus.name] = addresses
            for address in addresses:
                n += 1
                fields = {key: _fill(value, n) for key, value in scenario.fields.items()}
                if "ean13" in fields and fields["ean13"] == "auto":
                    fields["ean13"] = ean13(n)
                self.items.append({"tag": str(address), "fields": fields})
                self.panels[address] = bus.panel

    @property
    def total(self) -> int:
        return len(self.items)

    def start(self) -> None:
        for bus in self.buses.values():
            bus.start()

    def stop(self) -> None:
        for bus in self.buses.values():
            bus.stop()

    async def astart(self) -> None:
        """Start the serial buses, and for Bluetooth buses a virtual radio with one emulated tag per address
        (registered with ``use_radio`` so the gateway's bumble-backed bleak backend finds it)."""
        self.start()
        if not self.ble_addresses:
            return
        self.radio = VirtualRadio()
        scope = contextlib.ExitStack()
        scope.enter_context(use_radio(self.radio))
        self._radio_scope = scope
        faults = self.scenario.faults
        for index, bus in enumerate(b for b in self.scenario.buses if b.type == "ble"):
            profile = TagProfile(panel=panel_by_name(bus.panel))
            for number, _address in enumerate(self.ble_addresses[bus.name]):
                seed = None if faults.seed is None else faults.seed * 10_000 + index * 1000 + number
                tag = await EmulatedEslTag.create(
                    self.radio,
                    profile=profile,
                    faults=TagFaults(disconnect_mid_transfer=faults.disconnect_mid_transfer, seed=seed),
                )
                self.ble_tags.append(tag)

    async def aclose(self) -> None:
        if self.radio is not None:
            await self.radio.close()
        if self._radio_scope is not None:
            self._radio_scope.close()
        self.stop()

    def gateway_section(self) -> dict[str, Any]:
        """The gateway's ``tags:`` config for these buses."""
        buses: list[dict[str, Any]] = []
        for bus in self.scenario.buses:
            tags = [{"addresses": f"{bus.group}/1-{bus.count}", "panel": bus.panel}]
            if bus.type == "serial":
                buses.append(
                    {
                        "name": bus.name,
                        "port": self.buses[bus.name].port,
                        "max_concurrent": bus.max_concurrent,
                        "block_size": bus.block_size,
                        "tags": tags,
                    }
                )
            else:
                buses.append(
                    {
                        "type": "ble",
                        "name": bus.name,
                        "client_backend": "sim.ble:BumbleBleakClient",
                        "scanner_backend": "sim.ble:BumbleBleakScanner",
                        "object_channel": "sim",
                        "max_concurrent": bus.max_concurrent,
                        "scan_s": 1.0,
                        "rescan_s": 2.0,
                        "connect_s": 5.0,
                        "response_s": 5.0,
                        "attempts": 6,
                        "tags": tags,
                    }
                )
        return {"buses": buses, "retry": {"max_attempts": 8, "min_delay_s": 0.2, "max_delay_s": 5}}

    def _shown(self) -> dict[EslAddress, tuple[bytes | None, list[str]]]:
        """What every simulated tag shows now and the sha256 of everything it ever showed."""
        shown: dict[EslAddress, tuple[bytes | None, list[str]]] = {}
        for bus in self.buses.values():
            for address, tag in bus.tags.items():
                shown[address] = (tag.planes, list(tag.display.history))
        for ble_tag in self.ble_tags:
            if ble_tag.esl_address is not None:
                shown[ble_tag.esl_address] = (ble_tag.epaper.shown, list(ble_tag.epaper.history))
        return shown

    def render_expected(self) -> None:
        """What every tag must end up showing (the same renderer the gateway uses), and the zlib ratios."""
        for item in self.items:
            address = _address(item["tag"])
            image = render_label(item["fields"], self.panels[address])
            self.expected[address] = image.framebuffer()
            self.zlib_ratios.append(image.encode("zlib").ratio)

    # ------------------------------------------------------------------------------------------------------------

    async def drive(self, gateway: Gateway, sink: CloudSink, topics: GatewayTopics, deadline: float) -> None:
        """Send the batch, wait for every tag's result, resend, wait for its answer."""
        await asyncio.to_thread(self.render_expected)
        await _until(lambda: bool(sink.store.stream_data(topics.gateway_id, "heartbeat")), deadline)
        await _until(lambda: _agent_state(gateway, "tags") == "running", deadline)
        started = time.monotonic()
        self.timeline["batch_sent_s"] = 0.0
        self._publish_batch(sink, topics, "batch")
        await _until(lambda: len(self._settled(sink, topics)) >= self.total, deadline)
        self.timeline["batch_settled_s"] = round(time.monotonic() - started, 2)
        self.first_bytes = _tag_counter(gateway, "image_bytes_sent")
        if not self.scenario.resend:
            return
        resend_ids = self._publish_batch(sink, topics, "resend")
        await _until(lambda: len(self._answers(sink, topics, resend_ids)) >= len(resend_ids), deadline)
        await asyncio.sleep(0.5)  # anything a resend wrongly scheduled would start now
        answers = self._answers(sink, topics, resend_ids)
        self.resend_answer = {
            key: sum(int(answer.get("result", {}).get(key, 0)) for answer in answers)
            for key in ("queued", "unchanged", "error")
        }
        self.resend_bytes = _tag_counter(gateway, "image_bytes_sent") - self.first_bytes
        self.timeline["resend_answered_s"] = round(time.monotonic() - started, 2)

    def _publish_batch(self, sink: CloudSink, topics: GatewayTopics, label: str) -> list[str]:
        generation = sink.session.connected_generation
        if generation is None:
            raise RuntimeError("the cloud sink is not connected; cannot send the batch")
        ids = []
        messages = []
        for start in range(0, self.total, _BATCH_CHUNK):
            command_id = f"sim-{label}-{start // _BATCH_CHUNK}-{uuid.uuid4().hex[:8]}"
            args = {"items": self.items[start : start + _BATCH_CHUNK], "request": command_id}
            payload = json.dumps({"id": command_id, "type": "tags.set_labels", "args": args}).encode()
            messages.append((topics.command, payload))
            ids.append(command_id)
        if len(sink.session.publish_many(generation, messages)) != len(messages):
            raise RuntimeError("the cloud sink lost its connection while sending the batch")
        self._batch_ids.extend(ids)
        return ids

    def _settled(self, sink: CloudSink, topics: GatewayTopics) -> dict[str, dict[str, Any]]:
        """Latest applied/failed result per tag."""
        latest: dict[str, dict[str, Any]] = {}
        for result in sink.store.stream_data(topics.gateway_id, "tags/state"):
            if result.get("state") in ("applied", "failed"):
                latest[result["tag"]] = result
        return latest

    @staticmethod
    def _answers(sink: CloudSink, topics: GatewayTopics, ids: list[str]) -> list[dict[str, Any]]:
        wanted = set(ids)
        return [r for r in sink.store.stream_data(topics.gateway_id, "cmd/result") if r.get("command_id") in wanted]

    # ------------------------------------------------------------------------------------------------------------

    def report(
        self, sink: CloudSink, topics: GatewayTopics, gateway: Gateway, artifacts: Path | None
    ) -> dict[str, Any]:
        settled = self._settled(sink, topics)
        answers = self._answers(sink, topics, self._batch_ids[: (self.total + _BATCH_CHUNK - 1) // _BATCH_CHUNK])
        refused = sum(int(a.get("result", {}).get("error", 0)) for a in answers) + sum(
            1 for a in answers if a.get("status") == "error"
        )
        hash_match = 0
        partial = 0
        intended = {hashlib.sha256(image).hexdigest() for image in self.expected.values()}
        for address, (planes, history) in self._shown().items():
            expected = self.expected.get(address)
            if expected is not None and planes == expected:
                hash_match += 1
            partial += sum(1 for shown in history if shown not in intended)
        previews = self._previews(artifacts) if artifacts is not None else []
        tag_agent = gateway.snapshot().get("agents", {}).get("tags", {})
        counters = tag_agent.get("counters", {})
        ble = None
        if self.ble_tags:
            timelines = [tag.timeline for tag in self.ble_tags]
            ble = {
                "onboarded": sum(1 for tag in self.ble_tags if tag.esl_address is not None),
                "connections": sum(t.connections for t in timelines),
                "object_bytes_received": sum(t.object_bytes_received for t in timelines),
                "modelled_seconds_total": round(sum(t.total_s for t in timelines), 1),
                "object_writes": sum(tag.object_writes for tag in self.ble_tags),
                "dropped_mid_transfer": sum(tag.faults_injected for tag in self.ble_tags),
            }
        total_bytes = sum(bus.bytes_total for bus in self.buses.values())
        corrupted = sum(bus.bytes_corrupted for bus in self.buses.values())
        return {
            "total": self.total,
            "applied": sum(1 for r in settled.values() if r["state"] == "applied"),
            "failed": sum(1 for r in settled.values() if r["state"] == "failed") + refused,
            "no_result": self.total - len(settled),
            "bytes_sent": self.first_bytes
            if self.first_bytes is not None
            else int(counters.get("image_bytes_sent", 0)),
            "raw_image_bytes": sum(len(image) for image in self.expected.values()),
            "hash_match": hash_match,
            "partial_images_shown": partial,
            "resend": {**self.resend_answer, "bytes_sent": self.resend_bytes} if self.scenario.resend else None,
            "zlib_ratio_mean": round(sum(self.zlib_ratios) / len(self.zlib_ratios), 4) if self.zlib_ratios else None,
            "timeline": self.timeline,
            "faults": {
                **self.scenario.faults.model_dump(),
                "measured_corrupted_byte_ratio": round(corrupted / total_bytes, 4) if total_bytes else 0.0,
                "bytes_on_line": total_bytes,
                "frames_dropped": sum(bus.frames_dropped for bus in self.buses.values()),
                "frames": sum(bus.frames_in for bus in self.buses.values()),
            },
            "ble": ble,
            "battery_mv": sorted({r.get("battery_mv") for r in settled.values()} - {None}),
            "previews": previews,
            "agent": counters,
        }

    def _previews(self, folder: Path) -> list[dict[str, Any]]:
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for ble_tag in self.ble_tags[: self.scenario.previews]:
            if ble_tag.esl_address is None or ble_tag.epaper.shown is None:
                continue
            esl = ble_tag.esl_address
            path = folder / f"ble-{esl.group_id}-{esl.esl_id}.png"
            _save_framebuffer_png(ble_tag.epaper.shown, self.panels[esl], path)
            saved.append(
                {
                    "tag": str(esl),
                    "bus": "ble",
                    "panel": self.panels[esl],
                    "path": str(path),
                    "shows_intended_image": ble_tag.epaper.shown == self.expected.get(esl),
                }
            )
        for name, bus in self.buses.items():
            for address in list(bus.tags)[: self.scenario.previews]:
                tag = bus.tags[address]
                path = folder / f"{name}-{address.group_id}-{address.esl_id}.png"
                tag.save_png(path)
                expected = self.expected.get(address)
                saved.append(
                    {
                        "tag": str(address),
                        "bus": name,
                        "panel": self.panels[address],
                        "path": str(path),
                        "shows_intended_image": expected is not None and tag.planes == expected,
                    }
                )
        return saved


def _save_framebuffer_png(framebuffer: bytes, panel_name: str, path: Path) -> None:
    """A PNG of what a tag shows, drawn by the label renderer's own preview (same colours, accent wins)."""
    panel = panel_by_name(panel_name)
    LabelImage(panel, decode_framebuffer(panel, framebuffer)).save_png(path)


def _address(text: str) -> EslAddress:
    group, _, esl_id = text.partition("/")
    return EslAddress(int(group), int(esl_id))


def _agent_state(gateway: Gateway, name: str) -> str | None:
    state = gateway.snapshot().get("agents", {}).get(name, {}).get("state")
    return str(state) if state is not None else None


def _tag_counter(gateway: Gateway, key: str) -> int:
    return int(gateway.snapshot().get("agents", {}).get("tags", {}).get("counters", {}).get(key, 0))


async def _until(predicate: Any, deadline: float) -> None:
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the tag scenario did not finish in time")
        await asyncio.sleep(0.2)

"""The devices a gateway drives: cameras and their detectors, the Bluetooth adapter, serial tag buses, the tags.

Cameras are probed by opening their source and reading frames, detectors by loading the model and timing a
frame. Serial buses are only opened when no gateway is running (a fresh ``health.json`` means the gateway owns
the port: the doctor then reports the bus state the gateway sees, so it never talks over a live RS-485 bus). The
tag fleet is read from the tag store.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from agents.core.urls import redact_url
from agents.doctor.gateway import gateway_running, query_all
from agents.doctor.results import CheckResult, fail, ok, warn
from agents.gateway.config import GatewayConfig

__all__ = [
    "LOW_BATTERY_MV",
    "TAG_NOT_SEEN_HOURS",
    "check_bluetooth",
    "check_cameras",
    "check_tag_buses",
    "check_tag_fleet",
]

LOW_BATTERY_MV = 2400
TAG_NOT_SEEN_HOURS = 24.0


async def check_cameras(config: GatewayConfig) -> list[CheckResult]:
    """Every camera: its source opens and delivers frames, and its detector loads and runs."""
    results = []
    for index, camera in enumerate(config.cameras):
        results.append(await asyncio.to_thread(_probe_camera, index, camera))
        results.append(await asyncio.to_thread(_probe_detector, camera))
    return results


def _probe_camera(index: int, camera: Any) -> CheckResult:
    from agents.footfall.sources import FrameSource, SourceError

    name = f"camera:{camera.name}"
    try:
        probe = FrameSource(camera.source).probe()
    except (SourceError, OSError) as exc:
        return fail(
            name,
            f"camera {camera.name}: {exc}",
            f"check cameras[{index}].source.url "
            f"({redact_url(camera.source.url)}): cable, power, address, credentials, or the file path",
        )
    summary = f"{probe['width']}x{probe['height']}, native {probe['native_fps']} fps, read {probe['read_fps']} fps"
    return ok(name, summary, **probe)


def _probe_detector(camera: Any) -> CheckResult:
    import numpy as np

    from agents.footfall.detectors import build_detector

    name = f"detector:{camera.name}"
    try:
        detector = build_detector(camera.detector)
        frame = np.zeros((480, 640, 3), dtype=np.uint8)
        detector.detect(frame)
        started = time.perf_counter()
        detector.detect(frame)
        latency = (time.perf_counter() - started) * 1000
    except Exception as exc:  # noqa: BLE001 - any load/run failure is this check's result
        return fail(
            name,
            f"detector does not load: {type(exc).__name__}: {exc}",
            "check the model path and type in cameras[].detector; the file must be the ONNX model for that type",
        )
    if latency > 1000:
        return warn(name, f"detector latency {latency:.0f} ms", "lower the input size or sample_fps", ms=latency)
    return ok(name, f"detector loads, {latency:.0f} ms per frame", ms=round(latency, 1))


async def check_bluetooth(config: GatewayConfig) -> list[CheckResult]:
    """A Bluetooth adapter, where a Bluetooth bus needs one."""
    adapters = await asyncio.to_thread(lambda: sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*")))
    # a bus on a custom bleak backend (the simulator's bumble radio, a proxy) needs no adapter of its own
    ble_buses = [
        bus
        for bus in (config.tags.buses if config.tags else [])
        if getattr(bus, "type", "serial") == "ble" and getattr(bus, "client_backend", None) is None
    ]
    if not ble_buses:
        summary = f"adapters: {', '.join(adapters) or 'none'}; no Bluetooth bus needs a local adapter"
        return [ok("bluetooth", summary, adapters=adapters)]
    if not adapters:
        return [
            fail(
                "bluetooth",
                "no Bluetooth adapter found (/sys/class/bluetooth is empty)",
                "plug in or enable the adapter (`rfkill unblock bluetooth`, `systemctl start bluetooth`)",
            )
        ]
    return [ok("bluetooth", f"Bluetooth adapters: {', '.join(adapters)}", adapters=adapters)]


async def check_tag_buses(config: GatewayConfig, health: dict[str, Any] | None) -> list[CheckResult]:
    """Every serial tag bus: its port, and tags answering a ping (or the bus state the running gateway sees)."""
    tags = config.tags
    if tags is None:
        return []
    running = gateway_running(config, health)
    buses_health = (health or {}).get("agents", {}).get("tags", {}).get("buses", {}) if running else {}
    results = []
    from agents.tags.config import SerialBusConfig

    for bus in tags.buses:
        if not isinstance(bus, SerialBusConfig):
            continue  # Bluetooth buses: see the bluetooth check
        name = f"serial:{bus.name}"
        if "://" not in bus.port and not os.path.exists(bus.port):  # noqa: ASYNC240 - a stat of a device node
            results.append(
                fail(
                    name,
                    f"serial port {bus.port} is missing",
                    "check the USB/RS-485 adapter "
                    f"cable and power; `ls /dev/serial/by-id/`; tags.buses[{bus.name}].port",
                )
            )
            continue
        if running:
            state = buses_health.get(bus.name, {})
            if not state.get("open"):
                results.append(
                    fail(
                        name,
                        f"the gateway cannot open {bus.port}",
                        "check permissions (dialout group) and that no other program holds the port",
                    )
                )
            else:
                results.append(ok(name, f"{bus.port} open in the gateway; tags {state.get('states', {})}"))
            continue
        results.append(await _ping_bus(bus))
    return results


async def _ping_bus(bus: Any) -> CheckResult:
    from agents.tags.serial_transport import SerialTagTransport
    from agents.tags.transport import TagTransportError
    from protocols.esl import Ping

    name = f"serial:{bus.name}"
    addresses = [address for tag_range in bus.tags for address in tag_range.expand()]
    try:
        transport = SerialTagTransport(bus.port, baudrate=bus.baudrate, max_tries=3, request_attempts=2)
    except OSError as exc:
        return fail(name, f"cannot open {bus.port}: {exc}", "check permissions (dialout group) and the port")
    answered = 0
    try:
        for address in addresses[:3]:
            try:
                await transport.send_command(address, Ping(address.esl_id))
                answered += 1
            except TagTransportError:
                continue
    finally:
        await transport.close()
    if addresses and answered == 0:
        return fail(
            name,
            f"no tag answers on {bus.port} (tried {min(3, len(addresses))})",
            "check the bus wiring, termination and baud rate, and that the tags are powered",
        )
    return ok(name, f"{bus.port}: {answered} of {min(3, len(addresses))} tags answered a ping")


async def check_tag_fleet(config: GatewayConfig) -> list[CheckResult]:
    """From the tag store: failed updates, low batteries, tags not seen for ``TAG_NOT_SEEN_HOURS``."""
    tags = config.tags
    if tags is None:
        return []
    path = tags.store_path or config.state_dir / "tags.sqlite3"
    if not path.exists():
        return [ok("tag_fleet", "no tag store yet (no update has run)")]
    rows = await asyncio.to_thread(
        query_all, path, "SELECT address, state, battery_mv, last_seen, last_error FROM tags"
    )
    now = time.time()
    failed = [r[0] for r in rows if r[1] == "failed"]
    low = [r[0] for r in rows if r[2] is not None and r[2] < LOW_BATTERY_MV]
    unseen = [r[0] for r in rows if r[3] is not None and now - r[3] > TAG_NOT_SEEN_HOURS * 3600]
    detail = {"tags": len(rows), "failed": failed[:50], "low_battery": low[:50], "not_seen": unseen[:50]}
    problems = []
    if failed:
        problems.append(f"{len(failed)} failed updates")
    if low:
        problems.append(f"{len(low)} low batteries")
    if unseen:
        problems.append(f"{len(unseen)} not seen for {TAG_NOT_SEEN_HOURS:.0f} h")
    if problems:
        return [
            warn(
                "tag_fleet",
                ", ".join(problems) + f" (of {len(rows)} tags)",
                "`storeedge tags list shows which; replace batteries, check tags out of reach of their bus",
                **detail,
            )
        ]
    return [ok("tag_fleet", f"{len(rows)} tags, no failed updates, batteries ok", **detail)]

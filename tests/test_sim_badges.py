"""Emulated staff badges on the virtual radio (``sim/ble/badges.py``) and the gateway's badge scanner hearing them.

The scanner here is the production :class:`BadgeScannerAgent` with bleak's ``BleakScanner`` over the simulator's
bumble backend (``sim.ble:BumbleBleakScanner``): advertising bytes from :mod:`protocols.beacons`, through bumble's
controllers and HCI, into bleak's ``AdvertisementData`` and back through the codec.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from agents.footfall.staff import BadgeSightings, StaffConfig
from agents.footfall.staff.scanner import BadgeScannerAgent
from protocols.beacons import EddystoneUid, IBeacon, beacon_from_fields
from sim.ble import BumbleBleakScanner, RadioClosedError, VirtualRadio, current_radio, use_radio
from sim.ble.badges import (
    BadgeFleet,
    BadgeScenario,
    BadgeSpec,
    BadgeStep,
    EmulatedBadge,
    footage_clock,
    scenario_badges,
)
from tests.conftest import wait_for

STAFF_UUID = uuid.UUID("E2C56DB5-DFFB-48D2-B060-D0F5A71096E0")
OTHER_UUID = uuid.UUID("F7826DA6-4FA2-4E98-8024-BC5B71E0893E")
NAMESPACE = "EDD1EBEAC04E5DEFA017"


@pytest.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as radio:
        with use_radio(radio):
            yield radio


async def _heard(seconds: float = 0.3) -> list[AdvertisementData]:
    """What a bleak scanner on the radio's adapter hears in ``seconds``."""
    heard: list[AdvertisementData] = []

    def seen(_device: BLEDevice, adv: AdvertisementData) -> None:
        heard.append(adv)

    async with BleakScanner(seen, backend=BumbleBleakScanner):
        await asyncio.sleep(seconds)
    return heard


async def test_ibeacon_badge_is_heard_through_bleak_at_its_rssi(radio: VirtualRadio) -> None:
    beacon = IBeacon(uuid=STAFF_UUID, major=7, minor=2, measured_power=-59)
    badge = await EmulatedBadge.create(radio, beacon, interval_ms=50, rssi_dbm=-61)
    heard = await _heard()
    assert len(heard) >= 3
    assert {beacon_from_fields(adv.manufacturer_data, adv.service_data) for adv in heard} == {beacon}
    assert {adv.rssi for adv in heard} == {-61}
    await badge.move(-90)  # walks away: still heard, weaker
    assert {adv.rssi for adv in await _heard()} == {-90}
    await badge.move(None)  # out of range: silent
    assert await _heard() == []
    await badge.close()


async def test_eddystone_badge_is_heard_through_bleak(radio: VirtualRadio) -> None:
    beacon = EddystoneUid(tx_power=-21, namespace=bytes.fromhex(NAMESPACE), instance=bytes.fromhex("0BDB87539B67"))
    await EmulatedBadge.create(radio, beacon, interval_ms=50, rssi_dbm=-58)
    heard = await _heard()
    assert heard
    assert all(beacon_from_fields(adv.manufacturer_data, adv.service_data) == beacon for adv in heard)
    assert all("0000feaa-0000-1000-8000-00805f9b34fb" in adv.service_uuids for adv in heard)


async def test_rssi_is_per_badge(radio: VirtualRadio) -> None:
    near = await EmulatedBadge.create(
        radio, IBeacon(uuid=STAFF_UUID, major=1, minor=1, measured_power=-59), interval_ms=50, rssi_dbm=-55
    )
    far = await EmulatedBadge.create(
        radio, IBeacon(uuid=STAFF_UUID, major=1, minor=2, measured_power=-59), interval_ms=50, rssi_dbm=-88
    )
    heard = await _heard()
    by_minor: dict[int, set[int]] = {}
    for adv in heard:
        found = beacon_from_fields(adv.manufacturer_data, adv.service_data)
        assert isinstance(found, IBeacon)
        by_minor.setdefault(found.minor, set()).add(adv.rssi)
    assert by_minor == {1: {-55}, 2: {-88}}
    assert near.address != far.address


def test_badge_spec_schedule_and_validation() -> None:
    spec = BadgeSpec(
        type="ibeacon",
        uuid=STAFF_UUID,
        schedule=[BadgeStep(at_s=10, rssi_dbm=-55), BadgeStep(at_s=20, rssi_dbm=-95), BadgeStep(at_s=30)],
    )
    assert [spec.rssi_at(t) for t in (0, 9.9, 10, 15, 20, 29, 30, 99)] == [None, None, -55, -55, -95, -95, None, None]
    assert spec.beacon() == IBeacon(uuid=STAFF_UUID, major=0, minor=0, measured_power=-59)
    with pytest.raises(ValueError, match="needs uuid"):
        BadgeSpec(type="ibeacon")
    with pytest.raises(ValueError, match="hex digits"):
        BadgeSpec(type="eddystone", namespace="XYZ", instance="0BDB87539B67")
    with pytest.raises(ValueError, match="time order"):
        BadgeSpec(type="ibeacon", uuid=STAFF_UUID, schedule=[BadgeStep(at_s=5), BadgeStep(at_s=1)])


async def test_fleet_follows_its_schedule_on_the_given_clock(radio: VirtualRadio) -> None:
    now = [100.0]
    spec = BadgeSpec(
        type="ibeacon",
        uuid=STAFF_UUID,
        interval_ms=50,
        schedule=[BadgeStep(at_s=5, rssi_dbm=-60), BadgeStep(at_s=8, rssi_dbm=-92), BadgeStep(at_s=9)],
    )
    fleet = BadgeFleet(radio, [spec], clock=lambda: now[0])
    await fleet.astart()
    try:
        (badge,) = fleet.badges
        assert badge.rssi_dbm is None and not badge.device.is_advertising
        now[0] = 106.0
        await fleet.step()
        assert {adv.rssi for adv in await _heard()} == {-60}
        now[0] = 108.5
        await fleet.step()
        assert {adv.rssi for adv in await _heard()} == {-92}
        now[0] = 109.0
        await fleet.step()
        assert await _heard() == []
        assert fleet.moves == 3
    finally:
        await fleet.aclose()


# -- the gateway's scanner over the emulated radio ------------------------------------------------------------------


def _staff(**extra: Any) -> StaffConfig:
    return StaffConfig.model_validate(
        {
            "badges": [{"type": "ibeacon", "uuid": str(STAFF_UUID)}, {"type": "eddystone", "namespace": NAMESPACE}],
            "rssi_min_dbm": -70,
            "window_s": 2,
            "scanner_backend": "sim.ble:BumbleBleakScanner",
            **extra,
        }
    )


async def _run_for(agent: BadgeScannerAgent, until: Callable[[], bool], what: str) -> None:
    task = asyncio.create_task(agent.run(), name="test:badge-scanner")
    try:
        await wait_for(until, timeout=5.0, interval=0.02, what=what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_scanner_records_configured_badges_near_the_door_only(radio: VirtualRadio) -> None:
    config = _staff()
    sightings = BadgeSightings(window_s=config.window_s)
    agent = BadgeScannerAgent(config, sightings, clock=lambda: 1000.0)
    await EmulatedBadge.create(radio, IBeacon(uuid=STAFF_UUID, major=3, minor=9, measured_power=-59), rssi_dbm=-60)
    await EmulatedBadge.create(  # a staff badge, but across the shop floor
        radio, IBeacon(uuid=STAFF_UUID, major=3, minor=10, measured_power=-59), rssi_dbm=-85
    )
    await EmulatedBadge.create(  # somebody else's beacon, right at the door
        radio, IBeacon(uuid=OTHER_UUID, major=1, minor=1, measured_power=-59), rssi_dbm=-40
    )
    await EmulatedBadge.create(
        radio,
        EddystoneUid(tx_power=-20, namespace=bytes.fromhex(NAMESPACE), instance=bytes(6)),
        rssi_dbm=-65,
    )
    await _run_for(
        agent,
        lambda: agent.health.counters.get("sightings", 0) >= 10 and agent.health.counters.get("weak_sightings", 0) > 0,
        "sightings of the near badges and one of the weak one",
    )
    found = set()
    while (badge := sightings.badge_near(1000.0)) is not None:
        found.add(badge)
    assert found == {f"ibeacon:{STAFF_UUID}:3:9", "eddystone:edd1ebeac04e5defa017:000000000000"}
    assert "adapter_errors" not in agent.health.counters
    assert agent.diagnostics()["badge_presences"] == 2  # the weak staff badge and the stranger are not kept


class FlakyScanner(BumbleBleakScanner):
    """Fails to start twice (as BlueZ does while the adapter resets), then scans."""

    failures = 0

    async def start(self) -> None:
        if FlakyScanner.failures < 2:
            FlakyScanner.failures += 1
            raise BleakError("org.bluez.Error.NotReady: Resource Not Ready")
        await super().start()


async def test_scanner_restarts_with_backoff_after_adapter_errors(radio: VirtualRadio) -> None:
    FlakyScanner.failures = 0
    config = _staff(scanner_backend=f"{__name__}:FlakyScanner")
    sightings = BadgeSightings(window_s=config.window_s)
    agent = BadgeScannerAgent(config, sightings, restart_min_s=0.02, restart_max_s=0.05)
    await EmulatedBadge.create(radio, IBeacon(uuid=STAFF_UUID, major=1, minor=1, measured_power=-59), rssi_dbm=-50)
    await _run_for(agent, lambda: agent.health.counters.get("sightings", 0) > 0, "a sighting after two failed starts")
    assert agent.health.counters["adapter_errors"] == 2
    assert agent.last_error is not None and "NotReady" in agent.last_error


async def test_quiet_scanner_is_restarted(radio: VirtualRadio) -> None:
    config = _staff()
    agent = BadgeScannerAgent(
        config, BadgeSightings(window_s=1), restart_min_s=0.2, restart_max_s=0.3, quiet_restart_s=0.3
    )
    await _run_for(agent, lambda: agent.health.counters.get("quiet_restarts", 0) >= 2, "two restarts of a quiet scan")


def test_unknown_scanner_backend_is_a_config_error() -> None:
    from agents.core.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot load 'sim.ble:NoSuchScanner'"):
        BadgeScannerAgent(_staff(scanner_backend="sim.ble:NoSuchScanner"), BadgeSightings(window_s=1))
    with pytest.raises(ConfigError, match="is not a bleak scanner backend"):
        BadgeScannerAgent(_staff(scanner_backend="sim.ble:VirtualRadio"), BadgeSightings(window_s=1))


# -- a scenario's badges: on the air for a run, on the camera's footage clock --------------------------------------


def _snapshot(frames_read: int, fps: float | None = 10.0) -> dict[str, Any]:
    source = {"frames_read": frames_read, "native_fps": fps}
    return {"agents": {"footfall-door": {"source": source}, "uplink": {}}}


def test_footage_clock_reads_the_camera_s_frames() -> None:
    assert footage_clock(lambda: _snapshot(25), "door")() == 2.5
    assert footage_clock(lambda: _snapshot(25, fps=None), "door")() == 0.0  # not opened yet
    assert footage_clock(lambda: {}, "door")() == 0.0  # the gateway has not started
    assert footage_clock(lambda: _snapshot(25), "side")() == 0.0


async def test_scenario_badges_follow_the_footage_and_leave_no_radio_behind() -> None:
    frames = [0]
    scenario = BadgeScenario.model_validate(
        {
            "camera": "door",
            "poll_s": 0.01,
            "badges": [{"type": "ibeacon", "uuid": str(STAFF_UUID), "schedule": [{"at_s": 2, "rssi_dbm": -60}]}],
        }
    )
    async with scenario_badges(scenario, lambda: _snapshot(frames[0])) as fleet:
        radio = current_radio()  # registered for the gateway's scanner backend
        (badge,) = fleet.badges
        assert badge.rssi_dbm is None
        frames[0] = 20  # two seconds of footage read
        await wait_for(lambda: badge.rssi_dbm == -60, timeout=2, what="the badge to come into range")
        assert {adv.rssi for adv in await _heard()} == {-60}
    assert radio.closed
    with pytest.raises(RadioClosedError):
        current_radio()

"""Emulated staff badges: iBeacon and Eddystone-UID advertisers on the virtual radio, walking in and out of range.

Why: the gateway's badge scanner (``agents/footfall/staff/scanner.py``) uses bleak's public API only, so in the
simulator it runs unchanged over :class:`~sim.ble.bleak_backend.BumbleBleakScanner` and hears these badges the
way it hears real ones over BlueZ: the advertising bytes come from the same codec (:mod:`protocols.beacons`), go
through bumble's controllers and HCI, and reach the scanner as bleak ``AdvertisementData``.

A badge is one bumble device that only advertises (it never scans, so the radio does not copy advertisements to
it). Where it is comes down to two things the scanner can tell apart:

- **RSSI**: :meth:`VirtualRadio.set_rssi <sim.ble.radio.VirtualRadio.set_rssi>` sets the level the adapter
  measures; a badge at -90 dBm is heard but is not *near the door* for a threshold of -70.
- **presence**: ``rssi_dbm=None`` stops its advertising altogether (out of range, or the badge in a locker).

:class:`BadgeFleet` drives several badges through their schedules (``[{at_s, rssi_dbm}]``) against a clock the
caller chooses. In a scenario (``badges:``, :class:`BadgeScenario`) that is the door camera's footage time
(:func:`footage_clock`: frames read / frame rate, from the gateway's health snapshot), so that "in range when
person 2 crosses" holds at any replay speed, however fast the detector keeps up; :func:`scenario_badges` puts
the fleet on the air for the length of a run.

bumble 0.0.236's controller sends only connectable advertising PDUs (ADV_IND), so the emulated badges advertise
connectable where a real badge is usually not; nothing connects to them and the scanner does not care.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal
from uuid import UUID

from bumble.device import Device
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from protocols.beacons import Beacon, EddystoneUid, IBeacon
from sim.ble.radio import RadioClosedError, VirtualRadio, current_radio, use_radio

__all__ = ["BadgeFleet", "BadgeScenario", "BadgeSpec", "BadgeStep", "EmulatedBadge", "footage_clock", "scenario_badges"]

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BadgeStep(_Model):
    """From ``at_s`` (seconds after the fleet's start on its clock) the badge is heard at ``rssi_dbm``;
    ``None`` = not advertising."""

    at_s: float = Field(ge=0, allow_inf_nan=False)
    rssi_dbm: int | None = Field(None, ge=-127, le=20)


class BadgeSpec(_Model):
    """One emulated badge: its beacon (iBeacon or Eddystone-UID) and its schedule (out of range before the first
    step)."""

    type: Literal["ibeacon", "eddystone"]
    uuid: UUID | None = None
    major: int = Field(0, ge=0, le=0xFFFF)
    minor: int = Field(0, ge=0, le=0xFFFF)
    namespace: str | None = Field(None, description="Eddystone: 20 hex digits.")
    instance: str | None = Field(None, description="Eddystone: 12 hex digits.")
    tx_power: int = Field(-59, ge=-128, le=127, description="Measured power (iBeacon, 1 m) / ranging data (0 m).")
    interval_ms: float = Field(100.0, ge=20, le=10_000)
    schedule: list[BadgeStep] = Field(default_factory=list)

    @field_validator("namespace", "instance")
    @classmethod
    def _hex(cls, value: str | None, info: ValidationInfo) -> str | None:
        digits = 20 if info.field_name == "namespace" else 12
        if value is not None and not re.fullmatch(rf"[0-9a-fA-F]{{{digits}}}", value):
            raise ValueError(f"must be {digits} hex digits, got {value!r}")
        return value

    @field_validator("schedule")
    @classmethod
    def _in_order(cls, steps: list[BadgeStep]) -> list[BadgeStep]:
        if any(b.at_s < a.at_s for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("schedule steps must be in time order")
        return steps

    @model_validator(mode="after")
    def _complete(self) -> BadgeSpec:
        if self.type == "ibeacon" and self.uuid is None:
            raise ValueError("an iBeacon badge needs uuid")
        if self.type == "eddystone" and (self.namespace is None or self.instance is None):
            raise ValueError("an Eddystone badge needs namespace and instance")
        return self

    def beacon(self) -> Beacon:
        if self.type == "ibeacon":
            assert self.uuid is not None
            return IBeacon(uuid=self.uuid, major=self.major, minor=self.minor, measured_power=self.tx_power)
        assert self.namespace is not None and self.instance is not None
        return EddystoneUid(
            tx_power=self.tx_power, namespace=bytes.fromhex(self.namespace), instance=bytes.fromhex(self.instance)
        )

    def rssi_at(self, elapsed_s: float) -> int | None:
        """Where the schedule puts the badge ``elapsed_s`` after the start."""
        rssi: int | None = None
        for step in self.schedule:
            if step.at_s > elapsed_s:
                break
            rssi = step.rssi_dbm
        return rssi


class EmulatedBadge:
    """A badge on ``radio`` advertising ``beacon`` every ``interval_ms`` while in range. Build with :meth:`create`."""

    def __init__(self, radio: VirtualRadio, device: Device, beacon: Beacon, *, interval_ms: float) -> None:
        self.radio = radio
        self.device = device
        self.beacon = beacon
        self.interval_ms = interval_ms
        self.address = str(device.public_address).split("/")[0]
        self.rssi_dbm: int | None = None

    @classmethod
    async def create(
        cls, radio: VirtualRadio, beacon: Beacon, *, interval_ms: float = 100.0, rssi_dbm: int | None = None
    ) -> EmulatedBadge:
        """Put a badge on the radio, advertising at ``rssi_dbm`` (``None``: out of range, silent)."""
        device = await radio.add_device(name="badge", observer=False)
        badge = cls(radio, device, beacon, interval_ms=interval_ms)
        await badge.move(rssi_dbm)
        return badge

    async def move(self, rssi_dbm: int | None) -> None:
        """Be heard at ``rssi_dbm`` from now on, or fall silent for ``None``."""
        self.rssi_dbm = rssi_dbm
        self.radio.set_rssi(self.address, rssi_dbm)
        if rssi_dbm is None:
            if self.device.is_advertising:
                await self.device.stop_advertising()
        elif not self.device.is_advertising:
            await self.device.start_advertising(
                advertising_data=self.beacon.advertising_data(), advertising_interval_min=self.interval_ms
            )

    async def close(self) -> None:
        self.radio.set_rssi(self.address, None)
        await self.radio.remove_device(self.device)


class BadgeFleet:
    """Badges following their schedules on ``clock`` (seconds; the schedule's 0 is ``start``, default: the clock
    when :meth:`astart` runs). :meth:`run` applies the schedules until cancelled; :meth:`aclose` removes the
    badges."""

    def __init__(
        self,
        radio: VirtualRadio,
        specs: Sequence[BadgeSpec],
        *,
        clock: Callable[[], float],
        start: float | None = None,
        poll_s: float = 0.02,
    ) -> None:
        self.radio = radio
        self.specs = list(specs)
        self.clock = clock
        self.start = start
        self.poll_s = poll_s
        self.badges: list[EmulatedBadge] = []
        self.moves = 0

    async def astart(self) -> None:
        if self.start is None:
            self.start = self.clock()
        for spec in self.specs:
            badge = await EmulatedBadge.create(self.radio, spec.beacon(), interval_ms=spec.interval_ms)
            self.badges.append(badge)
        await self.step()

    async def step(self) -> None:
        """Move every badge to where its schedule puts it now."""
        assert self.start is not None, "astart() first"
        elapsed = self.clock() - self.start
        for spec, badge in zip(self.specs, self.badges, strict=True):
            wanted = spec.rssi_at(elapsed)
            if wanted != badge.rssi_dbm:
                log.debug("badge %s at %.1fs: %s dBm", badge.address, elapsed, wanted)
                await badge.move(wanted)
                self.moves += 1

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.poll_s)

    async def aclose(self) -> None:
        for badge in self.badges:
            await badge.close()
        self.badges.clear()


class BadgeScenario(_Model):
    """A scenario's ``badges:``: emulated badges whose schedules follow one camera's footage time."""

    camera: str = Field(
        description="The camera whose footage time (seconds since its first frame) drives the schedules."
    )
    poll_s: float = Field(0.05, gt=0, le=1, description="How often the schedules are applied.")
    badges: list[BadgeSpec] = Field(min_length=1)


def footage_clock(snapshot: Callable[[], Mapping[str, Any]], camera: str) -> Callable[[], float]:
    """Seconds of ``camera``'s footage read so far (0 before its first frame), from a gateway health ``snapshot``
    (the footfall agent's source statistics: frames read and the file's frame rate)."""

    def media_time() -> float:
        agent = snapshot().get("agents", {}).get(f"footfall-{camera}") or {}
        source = agent.get("source") or {}
        fps = source.get("native_fps")
        return float(source.get("frames_read", 0)) / fps if fps else 0.0

    return media_time


@contextlib.asynccontextmanager
async def scenario_badges(
    scenario: BadgeScenario, snapshot: Callable[[], Mapping[str, Any]]
) -> AsyncIterator[BadgeFleet]:
    """The scenario's badges on the air, following the footage of ``scenario.camera`` (``snapshot`` is the
    gateway's), until the block ends. They use the radio already registered (a scenario's Bluetooth tags), or a new
    one registered with :func:`~sim.ble.radio.use_radio`, so the gateway's scanner backend
    (``sim.ble:BumbleBleakScanner``) finds it."""
    try:
        radio = current_radio()
        own: VirtualRadio | None = None
    except RadioClosedError:
        radio = own = VirtualRadio()
    with contextlib.ExitStack() as registered:
        if own is not None:
            registered.enter_context(use_radio(own))
        fleet = BadgeFleet(
            radio, scenario.badges, clock=footage_clock(snapshot, scenario.camera), start=0.0, poll_s=scenario.poll_s
        )
        try:
            await fleet.astart()
            task = asyncio.get_running_loop().create_task(fleet.run(), name="sim:badges")
            try:
                yield fleet
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            await fleet.aclose()
            if own is not None:
                await own.close()

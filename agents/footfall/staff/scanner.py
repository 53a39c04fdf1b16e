"""The badge scanner: the gateway's Bluetooth adapter listening for staff badges near the door.

:class:`BadgeScannerAgent` runs a bleak :class:`~bleak.BleakScanner` with a detection callback for as long as
the gateway runs. Each advertisement is parsed by the sans-IO codec (:mod:`protocols.beacons`: iBeacon,
Eddystone-UID); one of the configured badges heard at or above ``rssi_min_dbm`` becomes a sighting in
:class:`~agents.footfall.staff.sightings.BadgeSightings`, stamped with the policy's ``clock`` (monotonic: the
crossings it is compared with are stamped on the same clock when they are judged).
Every other advertisement (phones, tags, other beacons) is dropped in the callback: nothing about it is kept.

The callback runs on the event loop and only parses bytes and takes a short lock; bleak does the I/O. The bleak
backend is a config value (``scanner_backend``, ``'module:Class'``; ``None`` = bleak's own, BlueZ on Linux),
so the simulator plugs in its bumble radio from above and production never names it.

Adapter failures (BlueZ gone, adapter reset, D-Bus errors: bleak raises :class:`~bleak.exc.BleakError` or
``OSError``) do not crash the agent: it logs one line, counts ``adapter_errors``, waits a jittered, capped
back-off and scans again; a scan that stayed up for ``stable_after_s`` resets the back-off. A scanner that has
heard nothing at all for ``quiet_restart_s`` is restarted the same way (BlueZ discovery can stop silently after
an adapter reset; a store always has something advertising).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from agents.core.backoff import Backoff
from agents.core.errors import ConfigError
from agents.core.supervisor import Agent
from agents.footfall.staff.config import StaffConfig
from agents.footfall.staff.sightings import BadgeSightings
from protocols.beacons import beacon_from_fields
from protocols.errors import ProtocolError

__all__ = ["BadgeScannerAgent", "load_scanner_backend"]

log = logging.getLogger(__name__)


class _QuietError(Exception):
    """The scanner heard nothing for ``quiet_restart_s``."""


def load_scanner_backend(path: str | None) -> type[BaseBleakScanner] | None:
    """``'module:Class'`` -> the bleak scanner backend class; ``None`` stays ``None`` (bleak's default).

    Raises :class:`ConfigError` naming the path when it cannot be imported or is not a scanner backend.
    """
    if path is None:
        return None
    module_name, _, name = path.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"footfall.staff.scanner_backend: cannot load {path!r}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, BaseBleakScanner)):
        raise ConfigError(f"footfall.staff.scanner_backend: {path!r} is not a bleak scanner backend")
    return found


class BadgeScannerAgent(Agent):
    """Scans for the configured badges and records their sightings (module docstring)."""

    def __init__(
        self,
        config: StaffConfig,
        sightings: BadgeSightings,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "staff-badges",
        restart_min_s: float = 1.0,
        restart_max_s: float = 60.0,
        stable_after_s: float = 60.0,
        quiet_restart_s: float = 120.0,
    ) -> None:
        super().__init__(name)
        self.config = config
        self.sightings = sightings
        self.clock = clock
        self.backend = load_scanner_backend(config.scanner_backend)
        self._backoff = Backoff(restart_min_s, restart_max_s)
        self._stable_after_s = stable_after_s
        self._quiet_restart_s = quiet_restart_s
        self._last_heard = time.monotonic()
        self.scanning = False
        self.last_error: str | None = None

    def diagnostics(self) -> dict[str, Any]:
        """Counts and state only: no badge identity, no address."""
        return {"scanning": self.scanning, "last_adapter_error": self.last_error, **self.sightings.stats()}

    async def run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                await self._scan()
            except (BleakError, OSError, TimeoutError, _QuietError) as exc:
                self.scanning = False
                quiet = isinstance(exc, _QuietError)
                self.health.count("quiet_restarts" if quiet else "adapter_errors")
                self.last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - began >= self._stable_after_s:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            log.warning("badge scanner stopped (%s); scanning again in %.1fs", self.last_error, delay)
            await asyncio.sleep(delay)

    async def _scan(self) -> None:
        bluez: BlueZScannerArgs = {"adapter": self.config.adapter} if self.config.adapter else {}
        scanner = BleakScanner(detection_callback=self._on_advertisement, backend=self.backend, bluez=bluez)
        async with scanner:
            self.scanning = True
            self._last_heard = time.monotonic()
            log.info(
                "badge scanner started (%d badge entries, rssi >= %d dBm)",
                len(self.config.badges),
                self.config.rssi_min_dbm,
            )
            while True:
                await asyncio.sleep(min(self._quiet_restart_s / 4, 5.0))
                quiet_for = time.monotonic() - self._last_heard
                if quiet_for > self._quiet_restart_s:
                    raise _QuietError(f"nothing heard for {quiet_for:.0f}s")

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback (on the event loop): parse, match, threshold, record."""
        self._last_heard = time.monotonic()
        try:
            beacon = beacon_from_fields(adv.manufacturer_data, adv.service_data)
        except ProtocolError:
            self.health.count("malformed_beacons")
            return
        if beacon is None:
            return
        badge = self.config.badge_for(beacon)
        if badge is None:
            return
        if adv.rssi < self.config.rssi_min_dbm:
            self.health.count("weak_sightings")
            return
        self.health.count("sightings")
        self.sightings.add(badge, adv.rssi, self.clock())

"""A Bluetooth tag bus for the tag service: one access point, its onboarded tags, and onboarding of new ones.

The tag service treats every bus alike (:class:`agents.tags.transport.TagTransport`). For Bluetooth that is not
quite enough: a tag must be onboarded (bonded, given its ESL address and keys) before it can take an image, and
the records that onboarding produces must survive restarts. :class:`BleBus` therefore

* builds the :class:`EslAccessPoint` from the bus config, the bleak backends being config values
  (``"module:Class"``; ``None`` means bleak's default backend for the platform, BlueZ on Linux);
* serves the tag-service interface through :class:`BleTagTransport`;
* runs :meth:`maintain`: scan for unassociated tags and onboard them onto the declared ESL addresses that have no
  tag yet (in address order; an installer who needs a fixed mapping onboards with ``storeedge tags`` later), saving
  each record through the caller, and scan again every ``rescan_s`` while declared addresses are still free;
* reports :meth:`is_ready` per address, so the scheduler does not burn retries on a tag that is not onboarded yet.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from agents.tags.ble.access_point import AccessPointSettings, EslAccessPoint, EslTagRecord
from agents.tags.ble.errors import BleTagError
from agents.tags.ble.transport import BleImageResult, BleTagTransport
from agents.tags.config import BleBusConfig
from protocols.esl import KeyMaterial
from protocols.esl_ecp import Command, DisplayState, EslAddress, Response

__all__ = ["BleBus", "load_class"]

_LOG = logging.getLogger(__name__)


def load_class(path: str | None) -> Any:
    """``"module:Class"`` -> the class; None stays None (bleak's default backend)."""
    if path is None:
        return None
    module_name, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from exc


class BleBus:
    """See the module docstring."""

    def __init__(
        self,
        config: BleBusConfig,
        *,
        ap_sync_key: KeyMaterial,
        declared: Iterable[EslAddress],
        records: Iterable[EslTagRecord] = (),
        save_record: Callable[[EslTagRecord], Awaitable[None]],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        settings = AccessPointSettings(
            scan_s=config.scan_s,
            connect_s=config.connect_s,
            response_s=config.response_s,
            attempts=config.attempts,
            pair=config.pair,
        )
        self.access_point = EslAccessPoint(
            ap_sync_key=ap_sync_key,
            client_backend=load_class(config.client_backend),
            scanner_backend=load_class(config.scanner_backend),
            object_channel=config.object_channel,
            settings=settings,
        )
        self.transport = BleTagTransport(
            self.access_point, records, max_concurrent=config.max_concurrent, compress=config.compress
        )
        self.declared = sorted(declared, key=lambda a: a.to_int())
        self._save_record = save_record
        self._on_change = on_change
        self.onboarding_failures = 0
        self.last_onboarding_error: str | None = None

    # -- the tag-service interface -----------------------------------------------------------------------------

    @property
    def bytes_written(self) -> int:
        return self.transport.bytes_written

    def is_ready(self, address: EslAddress) -> bool:
        return self.transport.has_record(address)

    async def send_command(self, address: EslAddress, command: Command) -> Response:
        return await self.transport.send_command(address, command)

    async def send_image(
        self, address: EslAddress, planes: bytes, *, image_index: int = 0, display: bool = True
    ) -> BleImageResult:
        return await self.transport.send_image(address, planes, image_index=image_index, display=display)

    async def display_image(self, address: EslAddress, image_index: int) -> DisplayState:
        return await self.transport.display_image(address, image_index)

    async def close(self) -> None:
        await self.transport.close()

    # -- onboarding --------------------------------------------------------------------------------------------

    @property
    def missing(self) -> list[EslAddress]:
        """Declared addresses without an onboarded tag."""
        return [address for address in self.declared if not self.transport.has_record(address)]

    async def maintain(self) -> None:
        """Onboard unassociated tags onto free declared addresses until every declared address has a tag."""
        if not self.config.onboard:
            return
        while self.missing:
            await self.onboard_once()
            if self.missing:
                await asyncio.sleep(self.config.rescan_s)

    async def onboard_once(self) -> int:
        """One scan and onboarding round; returns how many tags were onboarded."""
        missing = self.missing
        if not missing:
            return 0
        try:
            found = await self.access_point.scan()
        except BleTagError as exc:
            self.last_onboarding_error = str(exc)
            _LOG.warning("bus %s: scan failed: %s", self.config.name, exc)
            return 0
        known = {record.ble_address for record in self.transport.records()}
        fresh = [tag for tag in found if tag.ble_address not in known]
        assignments = list(zip(fresh, missing, strict=False))
        if not assignments:
            return 0
        _LOG.info("bus %s: onboarding %d tags (%d addresses free)", self.config.name, len(assignments), len(missing))
        outcome = await self.access_point.onboard_all(assignments, concurrency=self.config.max_concurrent)
        onboarded = 0
        for address, result in sorted(outcome.items(), key=lambda item: item[0].to_int()):
            if isinstance(result, EslTagRecord):
                self.transport.add_record(result)
                await self._save_record(result)
                onboarded += 1
            else:
                self.onboarding_failures += 1
                self.last_onboarding_error = f"{address}: {result}"
        if onboarded:
            self._on_change()
        return onboarded

    def diagnostics(self) -> dict[str, Any]:
        return {
            "onboarded": len(self.declared) - len(self.missing),
            "declared": len(self.declared),
            "onboarding_failures": self.onboarding_failures,
            "last_onboarding_error": self.last_onboarding_error,
            "connections": self.access_point.connections,
        }

"""A Bluetooth tag bus for the tag service: one access point, its onboarded tags, and onboarding of new ones.

The tag service treats every bus alike (:class:`agents.tags.transport.TagTransport`). For Bluetooth that is not
quite enough: a tag must be onboarded (bonded, given its ESL address and keys) before it can take an image, and
the records that onboarding produces must survive restarts. :class:`BleBus` therefore

* builds the :class:`EslAccessPoint` from the bus config, the bleak backends being config values
  (``"module:Class"``; ``None`` means bleak's default backend for the platform, BlueZ on Linux) and the object
  channel a registered name (:func:`agents.tags.ble.objects.object_channel_factory`); a value that names nothing
  loadable is a :class:`~agents.core.errors.ConfigError` naming the bus;
* serves the tag-service interface through :class:`BleTagTransport`;
* runs :meth:`maintain`: scan for unassociated tags and onboard each onto the first declared ESL address without a
  tag whose panel matches the tag's Display Information, saving each record through the caller, and scan again
  every ``rescan_s`` while declared addresses are still free;
* reports :meth:`is_ready` per address, so the scheduler does not burn retries on a tag that is not onboarded yet.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from agents.core.errors import ConfigError
from agents.tags.ble.access_point import EslAccessPoint
from agents.tags.ble.errors import BleTagError, IncompatibleTagError
from agents.tags.ble.objects import object_channel_factory
from agents.tags.ble.records import AccessPointSettings, DiscoveredTag, EslTagRecord, TagInformation
from agents.tags.ble.transport import BleImageResult, BleTagTransport
from agents.tags.config import BleBusConfig
from agents.tags.panels import Panel
from protocols.esl import Command, DisplayState, EslAddress, KeyMaterial, Response

__all__ = ["BleBus", "load_class"]

_LOG = logging.getLogger(__name__)


def _fits(panel: Panel, info: TagInformation) -> bool:
    """True when the tag's first display is ``panel`` (size and colours; rotation is a mounting matter)."""
    if not info.displays:
        return False
    display = info.displays[0]
    return (display.width, display.height, int(display.display_type)) == (
        panel.width,
        panel.height,
        panel.colour_mode.esl_display_type,
    )


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
        declared: Mapping[EslAddress, Panel],
        claimed: set[str] | None = None,
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
        try:
            client_backend = load_class(config.client_backend)
            scanner_backend = load_class(config.scanner_backend)
            channel_factory = object_channel_factory(config.object_channel)
        except ValueError as exc:
            raise ConfigError(f"Bluetooth bus {config.name!r}: {exc}") from exc
        self.access_point = EslAccessPoint(
            ap_sync_key=ap_sync_key,
            client_backend=client_backend,
            scanner_backend=scanner_backend,
            object_channel=channel_factory,
            settings=settings,
        )
        self.transport = BleTagTransport(
            self.access_point, records, max_concurrent=config.max_concurrent, compress=config.compress
        )
        self.declared = dict(sorted(declared.items(), key=lambda item: item[0].to_int()))
        self._claimed = claimed if claimed is not None else set()
        self._claimed.update(record.ble_address for record in self.transport.records())
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
        """One scan and onboarding round; returns how many tags were onboarded.

        Every tag seen is claimed in the set shared by all Bluetooth buses of the gateway (a scan also sees the
        tags meant for another access point), then gets the first free declared address whose panel matches its
        Display Information; a tag that fits none of this bus's free addresses is released for the other buses.
        """
        if not self.missing:
            return 0
        try:
            found = await self.access_point.scan()
        except BleTagError as exc:
            self.last_onboarding_error = str(exc)
            _LOG.warning("bus %s: scan failed: %s", self.config.name, exc)
            return 0
        fresh = [tag for tag in found if tag.ble_address not in self._claimed]
        self._claimed.update(tag.ble_address for tag in fresh)
        reserved: set[EslAddress] = set()
        limit = asyncio.Semaphore(self.config.max_concurrent)
        onboarded = 0

        async def one(tag: DiscoveredTag) -> None:
            nonlocal onboarded
            picked: list[EslAddress] = []

            def choose(info: TagInformation) -> EslAddress:
                for address in self.missing:
                    if address not in reserved and _fits(self.declared[address], info):
                        reserved.add(address)
                        picked.append(address)
                        return address
                raise IncompatibleTagError(tag.ble_address, f"no free address on bus {self.config.name} fits it")

            async with limit:
                if all(address in reserved for address in self.missing):
                    self._claimed.discard(tag.ble_address)
                    return
                try:
                    record = await self.access_point.onboard(tag, choose)
                except BleTagError as exc:
                    self._claimed.discard(tag.ble_address)
                    reserved.difference_update(picked)
                    if not isinstance(exc, IncompatibleTagError):
                        self.onboarding_failures += 1
                        self.last_onboarding_error = str(exc)
                        _LOG.warning("bus %s: onboarding failed: %s", self.config.name, exc)
                    return
                self.transport.add_record(record)
                await self._save_record(record)
                onboarded += 1
                self._on_change()

        async with asyncio.TaskGroup() as group:
            for tag in fresh:
                group.create_task(one(tag), name=f"ble-onboard-{tag.ble_address}")
        return onboarded

    def diagnostics(self) -> dict[str, Any]:
        return {
            "onboarded": len(self.declared) - len(self.missing),
            "declared": len(self.declared),
            "onboarding_failures": self.onboarding_failures,
            "last_onboarding_error": self.last_onboarding_error,
            "connections": self.access_point.connections,
        }

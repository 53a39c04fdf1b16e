"""Opening the tag service's buses: a serial line or a Bluetooth access point, seen as one ``TagTransport``.

A bus is a serial line (:class:`agents.tags.serial_transport.SerialTagTransport`) or a Bluetooth access point
(:class:`agents.tags.ble.bus.BleBus`); the scheduler sees only :class:`agents.tags.transport.TagTransport`. A
Bluetooth bus also has background work of its own (it onboards tags) and tags that are not usable until they
are onboarded: :class:`MaintainedTransport` is that extra surface. Its access point's sync key and the tags'
onboarding records are kept in the tag store, so a restart does not onboard every tag again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from agents.tags.config import BleBusConfig, BusConfig, SerialBusConfig
from agents.tags.serial_transport import SerialTagTransport
from agents.tags.store import TagStore
from agents.tags.transport import TagTransport
from protocols.esl import EslAddress

log = logging.getLogger(__name__)

__all__ = ["MaintainedTransport", "StoreCall", "TransportFactory", "open_ble_bus", "open_serial_transport"]

TransportFactory = Callable[[BusConfig], Awaitable[TagTransport]]
StoreCall = Callable[..., Awaitable[Any]]
"""Runs a :class:`TagStore` method with its arguments on the store's thread: ``await call(store.meta, key)``."""


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


async def open_ble_bus(
    bus: BleBusConfig, store: TagStore, call: StoreCall, *, claimed: set[str], on_change: Callable[[], None]
) -> TagTransport:
    """The Bluetooth access point of ``bus``, with its sync key and the onboarding records from ``store``.

    ``claimed`` holds the BLE addresses onboarded (or being onboarded) by any Bluetooth bus of the service;
    ``on_change`` is called when a tag becomes ready, to wake the bus's scheduler.
    """
    # imported here: a gateway without Bluetooth buses never loads bleak
    from agents.tags.ble.bus import BleBus
    from agents.tags.ble.records import EslTagRecord
    from protocols.esl import KeyMaterial

    key_name = f"ble.{bus.name}.ap_sync_key"
    stored_key: str | None = await call(store.meta, key_name)
    if stored_key is None:
        stored_key = KeyMaterial(os.urandom(16), os.urandom(8)).encode().hex()
        await call(store.set_meta, key_name, stored_key)
    rows: dict[str, str] = await call(store.ble_records, bus.name)
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
        await call(store.save_ble_record, bus.name, str(record.esl_address), json.dumps(record.to_dict()))

    return BleBus(
        bus,
        ap_sync_key=KeyMaterial.decode(bytes.fromhex(stored_key)),
        declared={address: tag_range.panel_profile for tag_range in bus.tags for address in tag_range.expand()},
        claimed=claimed,
        records=records,
        save_record=save_record,
        on_change=on_change,
    )

"""bleak backend classes over the :mod:`sim.ble.radio` virtual radio: the seam that lets the real AP run in CI.

Why: the access point talks to tags through bleak's public API only (``BleakScanner``, ``BleakClient``), so on a
gateway it runs over BlueZ and in tests over bumble, with the backend chosen by configuration
(bleak's ``backend=`` parameter of ``BleakClient`` and ``BleakScanner``). Usage is exactly bleak's::

    with use_radio(radio):
        device = await BleakScanner.find_device_by_filter(
            lambda d, adv: ESL_UUID in adv.service_uuids, backend=BumbleBleakScanner)
        async with BleakClient(device, backend=BumbleBleakClient) as client:
            ...

Both classes find their radio through :func:`sim.ble.radio.current_radio`, or take ``radio=`` as an extra keyword
(bleak forwards unknown keywords to the backend). All clients and scanners of one radio share its *adapter*
(one central bumble device), as bleak clients share one BlueZ adapter.

Behaviour chosen to match bleak's BlueZ backend, since that is what the AP meets in production:

- ``connect`` of an address that is not advertising (out of range) raises :class:`BleakDeviceNotFoundError` after
  the timeout; ATT error responses raise :class:`BleakGATTProtocolError` with the ATT code; any other bumble failure
  during an operation (for example the link dropping mid-request) raises :class:`BleakError` chained to it.
- The disconnected callback fires on every disconnection, requested or not (BlueZ does the same).
- ``pair`` runs LE Secure Connections pairing (Just Works) with bonding through bumble's SMP.
- The MTU is exchanged on connect (247 by default, ``mtu=`` keyword to change it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from sim.ble.radio import VirtualRadio, current_radio

__all__ = ["DEFAULT_MTU", "BumbleBleakClient", "BumbleBleakScanner", "advertisement_data"]

_log = logging.getLogger(__name__)

DEFAULT_MTU = 247
"""ATT MTU the client asks for on connect (the common BLE 4.2+ data-length maximum)."""

_PROPERTY_NAMES: tuple[tuple[Characteristic.Properties, CharacteristicPropertyName], ...] = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


def _bleak_uuid(uuid: core.UUID) -> str:
    """bumble UUID -> bleak's normalized lower-case 128-bit string."""
    return normalize_uuid_str(uuid.to_hex_str())


def _radio_from(kwargs: dict[str, Any]) -> VirtualRadio:
    radio = kwargs.get("radio")
    if radio is None:
        return current_radio()
    if not isinstance(radio, VirtualRadio):
        raise TypeError(f"radio= must be a VirtualRadio, got {type(radio).__name__}")
    return radio


class BumbleBleakClient(BaseBleakClient):
    """A bleak client backend whose controller is the virtual radio's adapter. Pass as ``backend=``.

    Extra keywords (through ``BleakClient(..., radio=..., mtu=...)``): ``radio`` (default: :func:`current_radio`)
    and ``mtu`` (default :data:`DEFAULT_MTU`).
    """

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.address = self.address.upper()
        self._radio = _radio_from(kwargs)
        self._requested_mtu = int(kwargs.get("mtu", DEFAULT_MTU))
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._name: str | None = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._notify_subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def radio(self) -> VirtualRadio:
        return self._radio

    @property
    def connection(self) -> Connection | None:
        """The bumble connection while connected (for the simulated object channel)."""
        return self._connection

    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        adapter = await self._radio.adapter()
        timeout = float(kwargs.get("timeout", self._timeout))
        async with self._radio.connect_lock:
            try:
                connection = await adapter.connect(self.address, timeout=timeout)
            except core.TimeoutError as exc:
                raise BleakDeviceNotFoundError(
                    self.address, f"device {self.address} did not answer within {timeout} s (not advertising?)"
                ) from exc
            except (core.BaseBumbleError, hci.HCI_Error) as exc:
                raise BleakError(f"connection to {self.address} failed: {exc}") from exc
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            peer = Peer(connection)
            self._peer = peer
            await peer.request_mtu(self._requested_mtu)
            self.services = await self._discover(peer)
            if pair:
                await self.pair()
        except BaseException:
            await self.disconnect()
            raise

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        try:
            collection = BleakGATTServiceCollection()
            await peer.discover_services()
            for service_proxy in peer.services:
                service = BleakGATTService(service_proxy, service_proxy.handle, _bleak_uuid(service_proxy.uuid))
                collection.add_service(service)
                await service_proxy.discover_characteristics()
                for char_proxy in service_proxy.characteristics:
                    properties = [name for flag, name in _PROPERTY_NAMES if char_proxy.properties & flag]
                    characteristic = BleakGATTCharacteristic(
                        char_proxy,
                        char_proxy.handle,
                        _bleak_uuid(char_proxy.uuid),
                        properties,
                        lambda: self.mtu_size - 3,
                        service,
                    )
                    collection.add_characteristic(characteristic)
                    await char_proxy.discover_descriptors()
                    for desc_proxy in char_proxy.descriptors:
                        collection.add_descriptor(
                            BleakGATTDescriptor(
                                desc_proxy, desc_proxy.handle, _bleak_uuid(desc_proxy.type), characteristic
                            )
                        )
            return collection
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"service discovery on {self.address} failed: {exc}") from exc

    def _on_disconnection(self, reason: int) -> None:
        _log.debug("%s disconnected (reason 0x%02x)", self.address, reason)
        self._connection = None
        self._peer = None
        self._notify_subscribers.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        gone = asyncio.get_running_loop().create_future()

        def on_gone(*_: object) -> None:
            if not gone.done():
                gone.set_result(None)

        connection.once(connection.EVENT_DISCONNECTION, on_gone)
        try:
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            if self._connection is not None:
                raise BleakError(f"disconnect from {self.address} failed: {exc}") from exc
        if self._connection is not None:
            await asyncio.wait_for(gone, self._timeout)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        connection = self._require_connection()
        try:
            await connection.pair()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc

    async def unpair(self) -> None:
        adapter = await self._radio.adapter()
        if adapter.keystore is not None:
            try:
                await adapter.keystore.delete(self.address)
            except KeyError:
                _log.debug("unpair %s: no bond stored", self.address)

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    async def _gatt(self, what: str, operation: Any) -> Any:
        """Await a bumble GATT ``operation`` with bumble errors turned into bleak's."""
        self._require_connection()
        try:
            return await operation
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            raise BleakError(f"{what} on {self.address} failed: {exc}") from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        value = await self._gatt(f"read of {characteristic.uuid}", proxy.read_value())
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: DescriptorProxy = descriptor.obj
        value = await self._gatt(f"read of descriptor {descriptor.uuid}", proxy.read_value())
        return bytearray(value)

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._gatt(f"write of {characteristic.uuid}", proxy.write_value(bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        proxy: DescriptorProxy = descriptor.obj
        await self._gatt(f"write of descriptor {descriptor.uuid}", proxy.write_value(bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._notify_subscribers[characteristic.handle] = deliver
        await self._gatt(f"subscribe to {characteristic.uuid}", proxy.subscribe(deliver, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        deliver = self._notify_subscribers.pop(characteristic.handle, None)
        await self._gatt(f"unsubscribe from {characteristic.uuid}", proxy.unsubscribe(deliver))


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's :class:`AdvertisementData` for a bumble advertisement report (advertising + scan response data)."""
    data = advertisement.data
    service_uuids: list[str] = []
    for ad_type in (
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    ):
        for uuids in data.get_all(ad_type):
            for uuid in uuids:
                text = _bleak_uuid(uuid)
                if text not in service_uuids:
                    service_uuids.append(text)
    service_data: dict[str, bytes] = {}
    for ad_type in (
        AdvertisingData.SERVICE_DATA_16_BIT_UUID,
        AdvertisingData.SERVICE_DATA_32_BIT_UUID,
        AdvertisingData.SERVICE_DATA_128_BIT_UUID,
    ):
        for entry in data.get_all(ad_type):
            uuid, payload = cast(tuple[core.UUID, bytes], entry)
            service_data.setdefault(_bleak_uuid(uuid), bytes(payload))
    manufacturer_data: dict[int, bytes] = {}
    for company_id, payload in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
        manufacturer_data.setdefault(int(company_id), bytes(payload))
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
    return AdvertisementData(
        local_name=str(name) if name is not None else None,
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=int(tx_power) if tx_power is not None else None,
        rssi=int(advertisement.rssi),
        platform_data=(advertisement,),
    )


class BumbleBleakScanner(BaseBleakScanner):
    """A bleak scanner backend listening on the virtual radio's adapter. Pass as ``backend=``.

    ``service_uuids`` filters as bleak documents (any listed UUID in the advertised service UUIDs); ``radio=`` may
    be given as an extra keyword (default: :func:`current_radio`). Devices are keyed by address.
    """

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._radio = _radio_from(kwargs)
        self._adapter: Device | None = None

    async def start(self) -> None:
        if self._adapter is not None:
            return
        self.seen_devices = {}
        adapter = await self._radio.acquire_scanning()
        adapter.on(adapter.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._adapter = adapter

    async def stop(self) -> None:
        adapter = self._adapter
        if adapter is None:
            return
        self._adapter = None
        adapter.remove_listener(adapter.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._radio.release_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        adv = advertisement_data(advertisement)
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        address = str(advertisement.address).split("/")[0]
        device = self.create_or_update_device(address, address, adv.local_name, advertisement, adv)
        self.call_detection_callbacks(device, adv)

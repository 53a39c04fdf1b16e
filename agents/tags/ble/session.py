"""One connection to one tag, as the access point's operations use it: GATT link, ECP, OTS, information, configuration.

:class:`TagSession` is a :class:`~agents.tags.ble.link.GattLink` (characteristics, deadlines, typed errors,
control-point matching) with the tag's three conversations on top: ECP commands
(:mod:`agents.tags.ble.control_point`), image objects (:class:`~agents.tags.ble.object_transfer.ObjectTransfer`) and
the ESL Service's information and configuration characteristics (ESL Profile 1.0 configuration steps 3-7: read
Display, Image, Sensor and LED Information and the DIS PnP ID; write ESL Address, AP Sync Key Material, Response Key
Material and Current Absolute Time). :meth:`agents.tags.ble.access_point.EslAccessPoint.connect` builds one per
connection; the session holds no state beyond it.
"""

from __future__ import annotations

from collections.abc import Callable

from bleak import BleakClient

from agents.tags.ble.control_point import send_command, send_without_response
from agents.tags.ble.link import GattLink
from agents.tags.ble.object_transfer import ObjectTransfer
from agents.tags.ble.objects import AddressType, ObjectChannelFactory
from agents.tags.ble.records import AccessPointSettings, TagInformation
from protocols.esl import (
    ESL_SERVICE_UUID,
    Command,
    CurrentAbsoluteTime,
    DisplayInformation,
    EslAddress,
    EslCharacteristic,
    ImageInformation,
    KeyMaterial,
    LedInfo,
    LedInformation,
    Response,
    SensorInfo,
    SensorInformation,
)
from protocols.ots import OTS_SERVICE_UUID

__all__ = ["DIS_PNP_ID_UUID", "DIS_SERVICE_UUID", "TagSession"]

DIS_SERVICE_UUID = 0x180A
DIS_PNP_ID_UUID = 0x2A50


class TagSession(GattLink):
    """One live connection to one tag (see the module docstring)."""

    def __init__(
        self,
        client: BleakClient,
        *,
        ble_address: str,
        address_type: AddressType,
        settings: AccessPointSettings,
        channel_factory: ObjectChannelFactory,
        count_bytes: Callable[[int], None],
    ) -> None:
        super().__init__(
            client, ble_address=ble_address, address_type=address_type, settings=settings, count_bytes=count_bytes
        )
        self.objects = ObjectTransfer(self, channel_factory)

    @property
    def object_bytes(self) -> int:
        """Object bytes handed to the object channel on this connection (a write that breaks counts in full)."""
        return self.objects.object_bytes

    # -- ECP ----------------------------------------------------------------------------------------------------------

    async def ecp(self, command: Command) -> Response:
        """Send one ECP command and return its response; an Error response raises :class:`EcpError`."""
        return await send_command(self, command)

    async def ecp_without_response(self, command: Command) -> None:
        """Send a command that has no success response (Update Complete, Factory Reset); an Error still raises."""
        await send_without_response(self, command)

    # -- OTS ----------------------------------------------------------------------------------------------------------

    async def upload(self, image_index: int, data: bytes) -> tuple[int, int | None]:
        """Upload ``data`` as image ``image_index``, resuming a verified prefix: ``(bytes_sent, resumed_from)``."""
        return await self.objects.upload(image_index, data)

    # -- information and configuration ---------------------------------------------------------------------------------

    async def read_information(self) -> TagInformation:
        """Read Display, Image, Sensor and LED Information, the DIS PnP ID and the OTS Feature (config step 3)."""
        displays = DisplayInformation.decode(
            await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_DISPLAY_INFORMATION)
        ).displays
        max_index = 0
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_IMAGE_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_IMAGE_INFORMATION)
            max_index = self.decode("image information", ImageInformation.decode, raw).max_image_index
        sensors: tuple[SensorInfo, ...] = ()
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_SENSOR_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_SENSOR_INFORMATION)
            sensors = self.decode("sensor information", SensorInformation.decode, raw).sensors
        leds: tuple[LedInfo, ...] = ()
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_LED_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_LED_INFORMATION)
            leds = self.decode("LED information", LedInformation.decode, raw).leds
        pnp_id = None
        if self.characteristic(DIS_SERVICE_UUID, DIS_PNP_ID_UUID, required=False):
            pnp_id = await self.read(DIS_SERVICE_UUID, DIS_PNP_ID_UUID)
        feature = await self.objects.feature() if self.has_service(OTS_SERVICE_UUID) else None
        return TagInformation(displays, max_index, sensors, leds, pnp_id, feature)

    async def configure(
        self, esl_address: EslAddress, *, ap_sync_key: KeyMaterial, response_key: KeyMaterial, absolute_time_ms: int
    ) -> None:
        """Write ESL Address, AP Sync Key Material, Response Key Material and Current Absolute Time (steps 4-7)."""
        await self.write(ESL_SERVICE_UUID, EslCharacteristic.ESL_ADDRESS, esl_address.encode())
        await self.write(ESL_SERVICE_UUID, EslCharacteristic.AP_SYNC_KEY_MATERIAL, ap_sync_key.encode())
        await self.write(ESL_SERVICE_UUID, EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL, response_key.encode())
        await self.write(
            ESL_SERVICE_UUID,
            EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME,
            CurrentAbsoluteTime(absolute_time_ms & 0xFFFF_FFFF).encode(),
        )

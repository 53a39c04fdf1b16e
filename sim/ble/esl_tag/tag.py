"""An emulated Bluetooth ESL tag: the ESL state machine as a bumble GATT server on the virtual radio.

Why: the access point is tested against tags that speak the real protocol over a real (software) BLE stack, so what
passes in CI is what a bleak client sends to silicon: GATT writes, ECP notifications, OTS control points, object data
over an L2CAP credit-based channel. Every byte layout comes from :mod:`protocols.esl` (ESL Profile and
Service 1.0) and :mod:`protocols.ots`.

:class:`EmulatedEslTag` is an :class:`~sim.ble.esl_tag.state.EslStateMachine` with a bumble device. This module
holds what ties the two: the services the device serves, the connection life cycle and the ordered notifications.

- ESL 0x1857 (here): ESL Address, AP Sync Key Material, ESL Response Key Material, Current Absolute Time (write);
  Display, Image, Sensor and LED Information (read); ESL Control Point (write, write without response, notify).
- OTS 0x1825: :class:`~sim.ble.esl_tag.ots.ObjectTransferServer`.
- DIS 0x180A (here): PnP ID.

Advertising follows the state (:mod:`sim.ble.esl_tag.advertising`); notifications and indications go out in order,
after the write that caused them has been answered. ATT-level refusals are raised as :class:`bumble.att.ATT_Error`
(:mod:`sim.ble.esl_tag.attributes`) so the client gets an ATT Error Response instead of a 30 s timeout.
"""

from __future__ import annotations

import asyncio
import logging

from bumble import att, gatt
from bumble.core import UUID
from bumble.device import Connection, Device
from bumble.pairing import PairingConfig

from protocols.errors import ProtocolError
from protocols.esl import (
    ESL_SERVICE_UUID,
    CurrentAbsoluteTime,
    EslCharacteristic,
    ImageInformation,
    KeyMaterial,
    decode_esl_address,
)
from sim.ble.esl_tag.advertising import Advertiser, advertising_data
from sim.ble.esl_tag.attributes import (
    ATT_CCCD_IMPROPERLY_CONFIGURED,
    ATT_INVALID_ATTRIBUTE_LENGTH,
    ATT_OTS_WRITE_REQUEST_REJECTED,
    ATT_VALUE_NOT_ALLOWED,
    CharacteristicFactory,
)
from sim.ble.esl_tag.model import TagFaults, TagProfile, TagState
from sim.ble.esl_tag.ots import ObjectTransferServer
from sim.ble.esl_tag.state import EslStateMachine
from sim.ble.esl_tag.timing import TimingModel
from sim.ble.radio import VirtualRadio

__all__ = ["DIS_PNP_ID_UUID", "DIS_SERVICE_UUID", "EmulatedEslTag"]

_log = logging.getLogger(__name__)

DIS_SERVICE_UUID = 0x180A
DIS_PNP_ID_UUID = 0x2A50


class EmulatedEslTag(EslStateMachine):
    """One emulated ESL on a :class:`~sim.ble.radio.VirtualRadio`. Create with :meth:`create`, end with :meth:`close`.

    ``address`` is the BLE address the AP connects to. State, keys, images, e-paper, LEDs, battery and the modelled
    timeline are public attributes for tests and the simulator's reports.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        device: Device,
        *,
        profile: TagProfile,
        timing: TimingModel,
        faults: TagFaults,
        require_encryption: bool,
        advertising_interval_ms: float,
    ) -> None:
        super().__init__(profile=profile, timing=timing, faults=faults)
        self.radio = radio
        self.device = device
        self.address = str(device.random_address).split("/")[0]
        self.require_encryption = require_encryption
        self.ecp_log: list[tuple[bytes, bytes | None]] = []
        """Every ECP write and the response notified for it (None: no response), for tests."""

        self._connection: Connection | None = None
        self._outbox: asyncio.Queue[tuple[Connection, gatt.Characteristic[bytes], bytes, bool]] = asyncio.Queue()
        self._closed = False
        self._slept_until_s = 0.0
        self._advertiser = Advertiser(device, interval_ms=advertising_interval_ms)
        characteristics = CharacteristicFactory(require_encryption=require_encryption, on_access=self.count_att_request)
        self.ots = ObjectTransferServer(self, characteristics)
        self.ecp_characteristic = self._esl_characteristic(characteristics)
        device.add_services(
            [
                self._esl_service(characteristics),
                self.ots.service,
                gatt.Service(
                    UUID.from_16_bits(DIS_SERVICE_UUID), [characteristics.static(DIS_PNP_ID_UUID, profile.pnp_id)]
                ),
            ]
        )
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self._notifier = radio.spawn(self._run_outbox(), name=f"esl-tag-{self.address}-notify")
        radio.register_sync_listener(self)

    @classmethod
    async def create(
        cls,
        radio: VirtualRadio,
        *,
        address: str | None = None,
        profile: TagProfile | None = None,
        timing: TimingModel | None = None,
        faults: TagFaults | None = None,
        require_encryption: bool = False,
        advertising_interval_ms: float = 100.0,
    ) -> EmulatedEslTag:
        """Put a new tag on ``radio`` and start advertising (unless the faults put it out of range)."""
        device = await radio.add_device(address, name="ESL", observer=False)
        tag = cls(
            radio,
            device,
            profile=profile or TagProfile(),
            timing=timing or TimingModel(),
            faults=faults or TagFaults(),
            require_encryption=require_encryption,
            advertising_interval_ms=advertising_interval_ms,
        )
        device.pairing_config_factory = lambda _connection: PairingConfig(sc=True, mitm=False, bonding=True)
        await tag._update_advertising()
        return tag

    @property
    def connection(self) -> Connection | None:
        """The AP's current connection, if any."""
        return self._connection

    @property
    def object_writes(self) -> int:
        """OACP Writes accepted (each is one object transfer on one connection)."""
        return self.ots.object_writes

    @property
    def faults_injected(self) -> int:
        """Object writes cut off by ``TagFaults.disconnect_mid_transfer``."""
        return self.ots.faults_injected

    # ------------------------------------------------------------------------------------------------------------
    # The ESL Service

    def _esl_characteristic(self, characteristics: CharacteristicFactory) -> gatt.Characteristic[bytes]:
        props = gatt.Characteristic.Properties
        return characteristics.writable(
            EslCharacteristic.ESL_CONTROL_POINT,
            self._on_ecp_write,
            props.WRITE | props.WRITE_WITHOUT_RESPONSE | props.NOTIFY,
        )

    def _esl_service(self, characteristics: CharacteristicFactory) -> gatt.Service:
        profile = self.profile
        static, writable = characteristics.static, characteristics.writable
        return gatt.Service(
            UUID.from_16_bits(ESL_SERVICE_UUID),
            [
                writable(EslCharacteristic.ESL_ADDRESS, self._on_address_write),
                writable(EslCharacteristic.AP_SYNC_KEY_MATERIAL, self._on_sync_key_write),
                writable(EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL, self._on_response_key_write),
                writable(EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, self._on_time_write),
                static(EslCharacteristic.ESL_DISPLAY_INFORMATION, profile.display_information().encode()),
                static(EslCharacteristic.ESL_IMAGE_INFORMATION, ImageInformation(profile.max_image_index).encode()),
                static(EslCharacteristic.ESL_SENSOR_INFORMATION, profile.sensor_information().encode()),
                static(EslCharacteristic.ESL_LED_INFORMATION, profile.led_information().encode()),
                self.ecp_characteristic,
            ],
        )

    def _require_connected_state(self) -> None:
        if self.state not in (TagState.CONFIGURING, TagState.UPDATING):
            raise att.ATT_Error(ATT_OTS_WRITE_REQUEST_REJECTED, message=f"not writable in state {self.state.value}")

    def _on_address_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.count_att_request()
        try:
            self.esl_address = decode_esl_address(value)
        except ProtocolError as exc:
            raise att.ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc
        if self.esl_address.is_broadcast:
            self.esl_address = None
            raise att.ATT_Error(ATT_VALUE_NOT_ALLOWED, message="ESL ID 0xFF is the broadcast ID")

    def _on_sync_key_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.count_att_request()
        self.sync_key = self._decode_key(value)

    def _on_response_key_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.count_att_request()
        self.response_key = self._decode_key(value)

    @staticmethod
    def _decode_key(value: bytes) -> KeyMaterial:
        try:
            return KeyMaterial.decode(value)
        except ProtocolError as exc:
            raise att.ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc

    def _on_time_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.count_att_request()
        try:
            written = CurrentAbsoluteTime.decode(value)
        except ProtocolError as exc:
            raise att.ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc
        self.set_absolute_time(written.milliseconds)

    def _on_ecp_write(self, connection: Connection, value: bytes) -> None:
        self.count_att_request()
        data = bytes(value)
        if not self._ecp_subscribed(connection):
            raise att.ATT_Error(ATT_CCCD_IMPROPERLY_CONFIGURED, message="enable ECP notifications first")
        response = self.handle_ecp(data)
        self.ecp_log.append((data, response.encode() if response is not None else None))
        if response is not None:
            self.send(self.ecp_characteristic, response.encode(), indicate=False)

    def _ecp_subscribed(self, connection: Connection) -> bool:
        cccds = self.device.gatt_server.subscribers.get(connection, {})
        return bool(cccds.get(self.ecp_characteristic.handle))

    # ------------------------------------------------------------------------------------------------------------
    # Connection life cycle and advertising

    async def _update_advertising(self) -> None:
        if self._closed:
            return
        advertise = self._connection is None and not self.faults.out_of_range
        await self._advertiser.update(advertising_data(self.state, self.profile) if advertise else None)

    async def set_out_of_range(self, out_of_range: bool) -> None:
        """Move the tag out of (or back into) range: no advertising, no sync packets, the link drops."""
        self.faults.out_of_range = out_of_range
        if out_of_range and self._connection is not None:
            await self._connection.disconnect()
        await self._update_advertising()

    def _on_connection(self, connection: Connection) -> None:
        if self.faults.out_of_range:
            # A connection the central started while the tag was still advertising can complete after the
            # tag went out of range: it must not carry traffic, so it drops at once.
            self.radio.spawn(connection.disconnect(), name=f"esl-tag-{self.address}-out-of-range")
            return
        self._connection = connection
        self.link_up()
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection, reason))

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        self.ots.reset()
        self.link_down()
        _log.debug("tag %s disconnected (0x%02x), now %s", self.address, reason, self.state.value)
        self._readvertise()

    def _readvertise(self) -> None:
        """Re-advertise from a bumble callback (which cannot await); skipped while the tag or radio shuts down."""
        if not self._closed and not self.radio.closed:
            self.radio.spawn(self._update_advertising(), name=f"esl-tag-{self.address}-advertise")

    async def close(self) -> None:
        """Stop the tag and take it off the radio."""
        if self._closed:
            return
        self._closed = True
        self.radio.unregister_sync_listener(self)
        self._notifier.cancel()
        await asyncio.gather(self._notifier, return_exceptions=True)
        await self.radio.remove_device(self.device)

    # ------------------------------------------------------------------------------------------------------------
    # Notifications and indications, in order, after the write that caused them has been answered

    def send(self, characteristic: gatt.Characteristic[bytes], value: bytes, *, indicate: bool) -> None:
        """Queue a notification (or an indication) of ``value`` to the connected AP; dropped when none is."""
        if self._connection is not None:
            self._outbox.put_nowait((self._connection, characteristic, value, indicate))

    async def _run_outbox(self) -> None:
        while True:
            connection, characteristic, value, indicate = await self._outbox.get()
            if self.timing.realtime_factor > 0:
                owed_s = self.timeline.total_s - self._slept_until_s
                self._slept_until_s = self.timeline.total_s
                await asyncio.sleep(owed_s * self.timing.realtime_factor)
            if connection is not self._connection:
                continue  # the link that asked has gone; the AP will not see this answer, as over the air
            if indicate:
                await self.device.indicate_subscriber(connection, characteristic, value)
            else:
                await self.device.notify_subscriber(connection, characteristic, value)

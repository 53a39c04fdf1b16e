"""An emulated Bluetooth ESL tag: a bumble GATT server with the ESL, OTS and DIS services and the tag state machine.

Why: the access point is tested against tags that speak the real protocol over a real (software) BLE stack, so what
passes in CI is what a bleak client sends to silicon: GATT writes, ECP notifications, OTS control points, object data
over an L2CAP credit-based channel. Every byte layout comes from :mod:`protocols.esl` (ESL Profile and
Service 1.0); this module only holds the tag's behaviour.

Services (ESL Service 1.0, OTS 1.0):

- ESL 0x1857: ESL Address, AP Sync Key Material, ESL Response Key Material, Current Absolute Time (write);
  Display, Image, Sensor and LED Information (read); ESL Control Point (write, write without response, notify).
- OTS 0x1825: OTS Feature, Object Name/Type/Size/ID/Properties of the selected object, OACP (Write with
  truncate and patch, Read, Calculate Checksum CRC-32, Abort) and OLCP (First, Last, Go To), both indicating their
  responses; object contents over an LE credit-based channel on PSM 0x0025. Image index *n* is object ID 0x100 + n.
- DIS 0x180A: PnP ID.

State machine (ESL 1.0 states, following nrf-esl): UNASSOCIATED (advertising connectable with service UUID
0x1857) -> a connection makes it CONFIGURING -> the AP writes address, both keys and the time, then ECP Update
Complete -> on disconnect SYNCHRONIZED (PAST is implicit: :mod:`sim.ble.pawr` delivers the group's sync packets).
A connection to a synchronized or unsynchronized tag makes it UPDATING; Update Complete then disconnect returns it
to SYNCHRONIZED, a disconnect without it leaves it UNSYNCHRONIZED. Unassociate and Factory Reset return it to
UNASSOCIATED. bumble has no PAwR-initiated connections, so associated tags keep advertising connectable (without
the ESL UUID) to let the AP reconnect by address.

The e-paper (:class:`EslEPaper`) shows an image only when its object holds a whole framebuffer (the serial tags'
row-padded layout, :func:`agents.tags.encoding.encode_framebuffer`) and the AP has run Calculate Checksum over all of
it since the last write: a half-transferred or unverified image answers Display Image with Image Not Available.

The timing model (:class:`TimingModel`) records modelled seconds per tag (:class:`TagTimeline`) instead of
sleeping; faults (:class:`TagFaults`) drop the link mid-transfer or take the tag out of range. ATT-level refusals
are raised as :class:`bumble.att.ATT_Error` so the client gets an ATT Error Response instead of a 30 s timeout.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from bumble import att, core, gatt, hci, l2cap
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.pairing import PairingConfig

from agents.tags.encoding import ImageEncodingError, inflate_framebuffer
from agents.tags.panels import ColourMode, Panel
from protocols.errors import ProtocolError
from protocols.esl import (
    BROADCAST_ESL_ID,
    BasicState,
    BasicStateFlags,
    Command,
    CurrentAbsoluteTime,
    DisplayImage,
    DisplayInfo,
    DisplayInformation,
    DisplayState,
    DisplayTimedImage,
    DisplayType,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    EslCharacteristic,
    FactoryReset,
    ImageInformation,
    KeyMaterial,
    LedControl,
    LedInfo,
    LedInformation,
    LedState,
    LedTimedControl,
    LedType,
    MeshSensor,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorInformation,
    SensorValue,
    ServiceReset,
    SyncPacket,
    Unassociate,
    UnknownOpcodeError,
    UpdateComplete,
    VendorCommand,
    decode_command,
    decode_esl_address,
    encode_slot_response,
    tlv_length,
)
from protocols.ots import (
    IMAGE_OBJECT_ID_BASE,
    OacpOpcode,
    OacpResult,
    OlcpOpcode,
    OlcpResult,
    OtsCharacteristic,
)
from sim.ble.radio import VirtualRadio

__all__ = [
    "DIS_PNP_ID_UUID",
    "DIS_SERVICE_UUID",
    "ESL_SERVICE_UUID16",
    "IMAGE_OBJECT_ID_BASE",
    "OBJECT_PSM",
    "OTS_SERVICE_UUID16",
    "EmulatedEslTag",
    "EslEPaper",
    "ImageObject",
    "OacpOpcode",
    "OacpResult",
    "OlcpOpcode",
    "OlcpResult",
    "OtsCharacteristic",
    "TagFaults",
    "TagProfile",
    "TagState",
    "TagTimeline",
    "TimingModel",
    "framebuffer_size",
]

_log = logging.getLogger(__name__)

ESL_SERVICE_UUID16 = 0x1857
OTS_SERVICE_UUID16 = 0x1825
DIS_SERVICE_UUID = 0x180A
DIS_PNP_ID_UUID = 0x2A50
OBJECT_PSM = 0x0025
"""L2CAP PSM of the OTS object channel (OTS 1.0)."""
OBJECT_TYPE_UNSPECIFIED = 0x2ACA
L2CAP_MTU = 512

_ATT_INVALID_ATTRIBUTE_LENGTH = 0x0D
_ATT_VALUE_NOT_ALLOWED = 0x13
_ATT_OTS_OBJECT_NOT_SELECTED = 0x81
_ATT_OTS_WRITE_REQUEST_REJECTED = 0x80
_ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD


# OTS Feature bits (OACP features u32, OLCP features u32).
_OACP_FEATURES = (
    (1 << 2) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9)
)  # checksum read write trunc patch abort
_OLCP_FEATURES = 1 << 0  # Go To
# Object Properties bits: read, write, truncate, patch.
_OBJECT_PROPERTIES = (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6)
_WRITE_MODE_TRUNCATE = 0x02


class TagState(enum.Enum):
    """ESL states (ESL Profile 1.0)."""

    UNASSOCIATED = "unassociated"
    CONFIGURING = "configuring"
    SYNCHRONIZED = "synchronized"
    UPDATING = "updating"
    UNSYNCHRONIZED = "unsynchronized"


def framebuffer_size(panel: Panel) -> int:
    """Bytes of one image for ``panel``: every plane with rows padded to whole bytes (the serial tags' layout)."""
    return panel.planes * panel.height * ((panel.width + 7) // 8)


@dataclass(frozen=True)
class TimingModel:
    """Modelled air time, recorded per tag in :class:`TagTimeline`: what a real AP would wait for.

    ``connection_setup_s`` covers connect, MTU exchange, discovery and security; every object byte costs
    ``1 / l2cap_throughput_bytes_per_s``; each ATT request (read, write with response, control point) costs
    ``att_round_trip_s``; showing an image costs ``epaper_refresh_s``. Defaults: a 7.5-15 ms connection interval
    on the 1M PHY with a few packets per event, and a three-colour panel's full refresh.

    ``realtime_factor`` 0 (the default) never sleeps, so tests and benchmarks run at CPU speed and report modelled
    seconds. Above 0, before each notification or indication the tag sleeps the modelled time it accrued since the
    previous one, times the factor, so an AP's timeouts and concurrency meet proportionate latencies.
    """

    connection_setup_s: float = 0.6
    l2cap_throughput_bytes_per_s: float = 20_000.0
    att_round_trip_s: float = 0.03
    epaper_refresh_s: float = 2.0
    realtime_factor: float = 0.0

    def transfer_s(self, size: int) -> float:
        return size / self.l2cap_throughput_bytes_per_s


@dataclass
class TagTimeline:
    """Modelled seconds one tag spent, by cause (see :class:`TimingModel`), and bytes received over the air."""

    connection_s: float = 0.0
    att_s: float = 0.0
    transfer_s: float = 0.0
    refresh_s: float = 0.0
    connections: int = 0
    object_bytes_received: int = 0

    @property
    def total_s(self) -> float:
        return self.connection_s + self.att_s + self.transfer_s + self.refresh_s


@dataclass
class TagFaults:
    """Fault injection: ``disconnect_mid_transfer`` is the chance that an OACP Write's data stream is cut (the tag
    drops the link after a random share of the bytes); ``out_of_range`` makes the tag stop advertising and ignore
    sync packets (set it through :meth:`EmulatedEslTag.set_out_of_range`)."""

    disconnect_mid_transfer: float = 0.0
    out_of_range: bool = False
    seed: int | None = None


@dataclass(frozen=True)
class TagProfile:
    """What the tag is: its panel, image slots, LEDs, battery and PnP ID."""

    panel: Panel = field(default_factory=lambda: Panel(296, 128, ColourMode.BWR))
    max_image_index: int = 1
    led_count: int = 1
    battery_mv: int = 3000
    low_battery_mv: int = 2200
    pnp_id: bytes = bytes((0x01, 0x59, 0x00, 0x01, 0xE5, 0x00, 0x01))
    """Vendor ID source 1 (SIG), vendor 0x0059, product 0xE501, version 0x0100 (values are illustrative)."""
    manufacturer_data: bytes | None = None
    """Advertised as Manufacturer Specific Data when set: company ID (u16 LE) then payload (at most 14 bytes)."""

    def display_information(self) -> DisplayInformation:
        return DisplayInformation(
            (DisplayInfo(self.panel.width, self.panel.height, DisplayType(self.panel.colour_mode.esl_display_type)),)
        )

    def sensor_information(self) -> SensorInformation:
        # Mesh Device Property 0x0059 "Present Device Operating Voltage"; the value is reported in millivolts, u16.
        return SensorInformation((MeshSensor(0x0059),))

    def led_information(self) -> LedInformation:
        return LedInformation(tuple(LedInfo(LedType.SRGB, 3, 3, 3) for _ in range(self.led_count)))


@dataclass
class ImageObject:
    """One OTS object (an image slot): its bytes and whether the AP verified them with Calculate Checksum."""

    index: int
    allocated_size: int
    data: bytearray = field(default_factory=bytearray)
    verified: bool = False

    @property
    def object_id(self) -> int:
        return IMAGE_OBJECT_ID_BASE + self.index

    @property
    def name(self) -> str:
        return f"esl_image_{self.index:02X}"

    @property
    def complete(self) -> bool:
        return self.image() is not None

    def image(self) -> bytes | None:
        """The framebuffer this object holds once verified: the raw bytes (object of exactly the framebuffer size)
        or the inflated compressed form (``agents.tags.encoding.compress_framebuffer``); None otherwise."""
        if not self.verified or not self.data:
            return None
        if len(self.data) == self.allocated_size:
            return bytes(self.data)
        try:
            return inflate_framebuffer(bytes(self.data), self.allocated_size)
        except ImageEncodingError:
            return None


class EslEPaper:
    """The tag's virtual e-paper: what it shows and the sha256 of every image it was asked to show, in order."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.shown: bytes | None = None
        self.shown_index: int | None = None
        self.history: list[str] = []
        self.refreshes = 0

    def show(self, index: int, image: bytes) -> None:
        self.shown = bytes(image)
        self.shown_index = index
        self.refreshes += 1
        self.history.append(hashlib.sha256(image).hexdigest())

    @property
    def shown_sha256(self) -> str | None:
        return self.history[-1] if self.history else None


@dataclass
class _LedStatus:
    command: LedControl | LedTimedControl | None = None

    @property
    def active(self) -> bool:
        command = self.command
        if command is None:
            return False
        # Repeats_Duration 0 with Repeat_Type 0 means "off" (ESL Service LED Control).
        return not (command.repeats_duration == 0 and command.repeat_type == 0)


@dataclass
class _PendingWrite:
    image: ImageObject
    offset: int
    length: int
    truncate: bool
    received: int = 0
    cut_after: int | None = None


class EmulatedEslTag:
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
        self.radio = radio
        self.device = device
        self.address = str(device.random_address).split("/")[0]
        self.profile = profile
        self.timing = timing
        self.faults = faults
        self.timeline = TagTimeline()
        self.require_encryption = require_encryption
        self.advertising_interval_ms = advertising_interval_ms
        self._rng = random.Random(faults.seed)

        self.state = TagState.UNASSOCIATED
        self.esl_address: EslAddress | None = None
        self.sync_key: KeyMaterial | None = None
        self.response_key: KeyMaterial | None = None
        self._time_anchor: tuple[int, float] | None = None
        self.update_complete = False
        self.service_needed = False
        self.battery_mv = profile.battery_mv
        self.epaper = EslEPaper(profile.panel)
        size = framebuffer_size(profile.panel)
        self.images = [ImageObject(n, size) for n in range(profile.max_image_index + 1)]
        self.leds = [_LedStatus() for _ in range(profile.led_count)]
        self.pending_timed_image: DisplayTimedImage | None = None
        self.pending_timed_led: LedTimedControl | None = None
        self.faults_injected = 0
        self.object_writes = 0
        """OACP Writes accepted (each is one object transfer on one connection)."""
        """Object writes cut off by ``TagFaults.disconnect_mid_transfer``."""
        self.ecp_log: list[tuple[bytes, bytes | None]] = []
        """Every ECP write and the response notified for it (None: no response), for tests."""

        self._connection: Connection | None = None
        self._channel: l2cap.LeCreditBasedChannel | None = None
        self._selected: ImageObject | None = None
        self._pending_write: _PendingWrite | None = None
        self._outbox: asyncio.Queue[tuple[Connection, gatt.Characteristic[bytes], bytes, bool]] = asyncio.Queue()
        self._closed = False
        self._advertised: bytes | None = None
        self._slept_until_s = 0.0
        self._build_gatt()
        device.on(device.EVENT_CONNECTION, self._on_connection)
        device.create_l2cap_server(
            spec=l2cap.LeCreditBasedChannelSpec(psm=OBJECT_PSM, mtu=L2CAP_MTU), handler=self._on_l2cap_channel
        )
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

    # ------------------------------------------------------------------------------------------------------------
    # GATT database

    def _build_gatt(self) -> None:
        props = gatt.Characteristic.Properties
        read_perm = att.Attribute.READABLE | (att.Attribute.READ_REQUIRES_ENCRYPTION if self.require_encryption else 0)
        write_perm = att.Attribute.WRITEABLE | (
            att.Attribute.WRITE_REQUIRES_ENCRYPTION if self.require_encryption else 0
        )

        def readable(uuid: int, read: Any) -> gatt.Characteristic[bytes]:
            return gatt.Characteristic(
                UUID.from_16_bits(uuid), props.READ, read_perm, gatt.CharacteristicValue(read=read)
            )

        def writable(uuid: int, write: Any, properties: gatt.Characteristic.Properties = props.WRITE) -> Any:
            return gatt.Characteristic(
                UUID.from_16_bits(uuid), properties, write_perm, gatt.CharacteristicValue(write=write)
            )

        profile = self.profile
        self.ecp_characteristic: gatt.Characteristic[bytes] = writable(
            EslCharacteristic.ESL_CONTROL_POINT,
            self._on_ecp_write,
            props.WRITE | props.WRITE_WITHOUT_RESPONSE | props.NOTIFY,
        )
        esl = gatt.Service(
            UUID.from_16_bits(ESL_SERVICE_UUID16),
            [
                writable(EslCharacteristic.ESL_ADDRESS, self._on_address_write),
                writable(EslCharacteristic.AP_SYNC_KEY_MATERIAL, self._on_sync_key_write),
                writable(EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL, self._on_response_key_write),
                writable(EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, self._on_time_write),
                readable(
                    EslCharacteristic.ESL_DISPLAY_INFORMATION, self._static(profile.display_information().encode())
                ),
                readable(
                    EslCharacteristic.ESL_IMAGE_INFORMATION,
                    self._static(ImageInformation(profile.max_image_index).encode()),
                ),
                readable(EslCharacteristic.ESL_SENSOR_INFORMATION, self._static(profile.sensor_information().encode())),
                readable(EslCharacteristic.ESL_LED_INFORMATION, self._static(profile.led_information().encode())),
                self.ecp_characteristic,
            ],
        )
        self.oacp_characteristic: gatt.Characteristic[bytes] = writable(
            OtsCharacteristic.OACP, self._on_oacp_write, props.WRITE | props.INDICATE
        )
        self.olcp_characteristic: gatt.Characteristic[bytes] = writable(
            OtsCharacteristic.OLCP, self._on_olcp_write, props.WRITE | props.INDICATE
        )
        ots = gatt.Service(
            UUID.from_16_bits(OTS_SERVICE_UUID16),
            [
                readable(
                    OtsCharacteristic.OTS_FEATURE, self._static(struct.pack("<II", _OACP_FEATURES, _OLCP_FEATURES))
                ),
                readable(OtsCharacteristic.OBJECT_NAME, self._selected_value(lambda image: image.name.encode())),
                readable(
                    OtsCharacteristic.OBJECT_TYPE,
                    self._selected_value(lambda _: struct.pack("<H", OBJECT_TYPE_UNSPECIFIED)),
                ),
                readable(
                    OtsCharacteristic.OBJECT_SIZE,
                    self._selected_value(lambda image: struct.pack("<II", len(image.data), image.allocated_size)),
                ),
                readable(
                    OtsCharacteristic.OBJECT_ID,
                    self._selected_value(lambda image: image.object_id.to_bytes(6, "little")),
                ),
                readable(
                    OtsCharacteristic.OBJECT_PROPERTIES,
                    self._selected_value(lambda _: struct.pack("<I", _OBJECT_PROPERTIES)),
                ),
                self.oacp_characteristic,
                self.olcp_characteristic,
            ],
        )
        dis = gatt.Service(
            UUID.from_16_bits(DIS_SERVICE_UUID), [readable(DIS_PNP_ID_UUID, self._static(profile.pnp_id))]
        )
        self.device.add_services([esl, ots, dis])

    def _static(self, value: bytes) -> Any:
        def read(_connection: Connection) -> bytes:
            self.timeline.att_s += self.timing.att_round_trip_s
            return value

        return read

    def _selected_value(self, encode: Any) -> Any:
        def read(_connection: Connection) -> bytes:
            if self._selected is None:
                raise att.ATT_Error(_ATT_OTS_OBJECT_NOT_SELECTED, message="no object selected (OLCP Go To first)")
            self.timeline.att_s += self.timing.att_round_trip_s
            return bytes(encode(self._selected))

        return read

    # ------------------------------------------------------------------------------------------------------------
    # Connection life cycle and advertising

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def configured(self) -> bool:
        """Address, both keys and the absolute time have been written."""
        return None not in (self.esl_address, self.sync_key, self.response_key, self._time_anchor)

    async def _update_advertising(self) -> None:
        if self._closed:
            return
        should_advertise = self._connection is None and not self.faults.out_of_range
        data = self._advertising_data()
        if self.device.is_advertising and (not should_advertise or data != self._advertised):
            await self.device.stop_advertising()
        if should_advertise and not self.device.is_advertising:
            await self.device.start_advertising(
                advertising_data=data, advertising_interval_min=self.advertising_interval_ms
            )
            self._advertised = data

    def _advertising_data(self) -> bytes:
        structures: list[tuple[int, bytes]] = [(AdvertisingData.FLAGS, bytes((0x06,)))]
        if self.state is TagState.UNASSOCIATED:
            structures.append(
                (
                    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    bytes(UUID.from_16_bits(ESL_SERVICE_UUID16)),
                )
            )
        structures.append((AdvertisingData.COMPLETE_LOCAL_NAME, b"ESL"))
        if self.profile.manufacturer_data is not None:
            structures.append((AdvertisingData.MANUFACTURER_SPECIFIC_DATA, self.profile.manufacturer_data))
        return bytes(AdvertisingData(structures))

    async def set_out_of_range(self, out_of_range: bool) -> None:
        """Move the tag out of (or back into) range: no advertising, no sync packets, the link drops."""
        self.faults.out_of_range = out_of_range
        if out_of_range and self._connection is not None:
            await self._connection.disconnect()
        await self._update_advertising()

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self.timeline.connections += 1
        self.timeline.connection_s += self.timing.connection_setup_s
        self.update_complete = False
        if self.state is TagState.UNASSOCIATED:
            self.state = TagState.CONFIGURING
        elif self.state in (TagState.SYNCHRONIZED, TagState.UNSYNCHRONIZED):
            self.state = TagState.UPDATING
        connection.on(connection.EVENT_DISCONNECTION, lambda reason: self._on_disconnection(connection, reason))

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        self._channel = None
        self._pending_write = None
        self._selected = None
        if self.state is TagState.CONFIGURING:
            if self.update_complete:
                self.state = TagState.SYNCHRONIZED
            elif self.configured:
                self.state = TagState.UNSYNCHRONIZED
            else:
                self._forget_configuration()
        elif self.state is TagState.UPDATING:
            self.state = TagState.SYNCHRONIZED if self.update_complete else TagState.UNSYNCHRONIZED
        _log.debug("tag %s disconnected (0x%02x), now %s", self.address, reason, self.state.value)
        self._schedule_advertising_update()

    def _schedule_advertising_update(self) -> None:
        """Re-advertise from a bumble callback (which cannot await); skipped while the tag or radio shuts down."""
        if not self._closed and not self.radio.closed:
            self.radio.spawn(self._update_advertising(), name=f"esl-tag-{self.address}-advertise")

    def _forget_configuration(self) -> None:
        self.state = TagState.UNASSOCIATED
        self.esl_address = None
        self.sync_key = None
        self.response_key = None
        self._time_anchor = None
        self.update_complete = False

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

    def _send(self, characteristic: gatt.Characteristic[bytes], value: bytes, *, indicate: bool) -> None:
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

    # ------------------------------------------------------------------------------------------------------------
    # ESL configuration characteristics

    def _require_connected_state(self) -> None:
        if self.state not in (TagState.CONFIGURING, TagState.UPDATING):
            raise att.ATT_Error(_ATT_OTS_WRITE_REQUEST_REJECTED, message=f"not writable in state {self.state.value}")

    def _on_address_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.timeline.att_s += self.timing.att_round_trip_s
        try:
            self.esl_address = decode_esl_address(value)
        except ProtocolError as exc:
            raise att.ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc
        if self.esl_address.is_broadcast:
            self.esl_address = None
            raise att.ATT_Error(_ATT_VALUE_NOT_ALLOWED, message="ESL ID 0xFF is the broadcast ID")

    def _on_sync_key_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.timeline.att_s += self.timing.att_round_trip_s
        self.sync_key = self._decode_key(value)

    def _on_response_key_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.timeline.att_s += self.timing.att_round_trip_s
        self.response_key = self._decode_key(value)

    @staticmethod
    def _decode_key(value: bytes) -> KeyMaterial:
        try:
            return KeyMaterial.decode(value)
        except ProtocolError as exc:
            raise att.ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc

    def _on_time_write(self, _connection: Connection, value: bytes) -> None:
        self._require_connected_state()
        self.timeline.att_s += self.timing.att_round_trip_s
        try:
            written = CurrentAbsoluteTime.decode(value)
        except ProtocolError as exc:
            raise att.ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH, message=str(exc)) from exc
        self._time_anchor = (written.milliseconds, asyncio.get_running_loop().time())

    @property
    def absolute_time_ms(self) -> int | None:
        """The tag's ESL Current Absolute Time now (None until the AP wrote it)."""
        if self._time_anchor is None:
            return None
        base, at = self._time_anchor
        return (base + int((asyncio.get_running_loop().time() - at) * 1000)) & 0xFFFF_FFFF

    # ------------------------------------------------------------------------------------------------------------
    # ECP

    def _on_ecp_write(self, connection: Connection, value: bytes) -> None:
        self.timeline.att_s += self.timing.att_round_trip_s
        data = bytes(value)
        if not self._ecp_subscribed(connection):
            raise att.ATT_Error(_ATT_CCCD_IMPROPERLY_CONFIGURED, message="enable ECP notifications first")
        response = self.handle_ecp(data)
        self.ecp_log.append((data, response.encode() if response is not None else None))
        if response is not None:
            self._send(self.ecp_characteristic, response.encode(), indicate=False)

    def _ecp_subscribed(self, connection: Connection) -> bool:
        cccds = self.device.gatt_server.subscribers.get(connection, {})
        return bool(cccds.get(self.ecp_characteristic.handle))

    def handle_ecp(self, data: bytes) -> Response | None:  # noqa: PLR0911 - one early answer per ECP error case
        """Execute one ECP write received over the connection; the response to notify, or None for no notification."""
        if not data:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if len(data) != tlv_length(data[0]):
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        try:
            command, _ = decode_command(data)
        except UnknownOpcodeError:
            return ErrorResponse(ErrorCode.INVALID_OPCODE)
        except ProtocolError:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if self.esl_address is None or self.state not in (TagState.CONFIGURING, TagState.UPDATING):
            return ErrorResponse(ErrorCode.INVALID_STATE)
        if command.esl_id not in (self.esl_address.esl_id, BROADCAST_ESL_ID):
            return None  # nrf-esl: wrong ESL ID is dropped without a notification
        return self.execute(command, over_pawr=False)

    def execute(self, command: Command, *, over_pawr: bool) -> Response | None:  # noqa: PLR0911 - a dispatch on the command type
        """Run one command addressed to this tag; its response, or None for commands that answer nothing."""
        self._run_due_timed_commands()
        match command:
            case Ping():
                return self._basic_state()
            case Unassociate():
                if command.esl_id == BROADCAST_ESL_ID and not over_pawr:
                    return ErrorResponse(ErrorCode.RETRY)
                self._forget_configuration()
                if self._connection is not None:
                    self.state = TagState.CONFIGURING
                else:
                    self._schedule_advertising_update()
                return self._basic_state()
            case ServiceReset():
                self.service_needed = False
                return self._basic_state()
            case FactoryReset():
                if self.state is TagState.SYNCHRONIZED or command.esl_id == BROADCAST_ESL_ID:
                    return ErrorResponse(ErrorCode.INVALID_STATE)
                self._forget_configuration()
                for image in self.images:
                    image.data.clear()
                    image.verified = False
                if self._connection is not None:
                    self.state = TagState.CONFIGURING
                return None
            case UpdateComplete():
                if self.state not in (TagState.CONFIGURING, TagState.UPDATING) or not self.configured:
                    return ErrorResponse(ErrorCode.INVALID_STATE)
                self.update_complete = True
                return None
            case ReadSensorData():
                if command.sensor_index != 0:
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                return SensorValue(0, struct.pack("<H", self.battery_mv))
            case RefreshDisplay():
                if command.display_index != 0:
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                if self.epaper.shown_index is None:
                    return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
                return self._show(self.epaper.shown_index)
            case DisplayImage():
                return self._display(command.display_index, command.image_index)
            case DisplayTimedImage():
                return self._display_timed(command)
            case LedControl():
                if command.led_index >= len(self.leds):
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                self.leds[command.led_index].command = command
                return LedState(command.led_index)
            case LedTimedControl():
                if command.led_index >= len(self.leds):
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                if command.abs_time == 0:
                    self.pending_timed_led = None
                    return LedState(command.led_index)
                error = self._check_future_time(command.abs_time)
                if error is not None:
                    return error
                self.pending_timed_led = command
                return LedState(command.led_index)
            case VendorCommand():
                return ErrorResponse(ErrorCode.INVALID_OPCODE)
        return ErrorResponse(ErrorCode.INVALID_OPCODE)

    def _basic_state(self) -> BasicState:
        flags = BasicStateFlags(0)
        if self.service_needed or self.battery_mv <= self.profile.low_battery_mv:
            flags |= BasicStateFlags.SERVICE_NEEDED
        if self.state is TagState.SYNCHRONIZED:
            flags |= BasicStateFlags.SYNCHRONIZED
        if any(led.active for led in self.leds):
            flags |= BasicStateFlags.ACTIVE_LED
        if self.pending_timed_led is not None:
            flags |= BasicStateFlags.PENDING_LED_UPDATE
        if self.pending_timed_image is not None:
            flags |= BasicStateFlags.PENDING_DISPLAY_UPDATE
        return BasicState(flags)

    def _display(self, display_index: int, image_index: int) -> Response:
        if display_index != 0:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if image_index >= len(self.images):
            return ErrorResponse(ErrorCode.INVALID_IMAGE_INDEX)
        if not self.images[image_index].complete:
            return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
        return self._show(image_index)

    def _show(self, image_index: int) -> DisplayState:
        image = self.images[image_index].image()
        assert image is not None  # callers check ``complete`` first
        self.epaper.show(image_index, image)
        self.timeline.refresh_s += self.timing.epaper_refresh_s
        return DisplayState(0, image_index)

    def _check_future_time(self, absolute_time: int) -> ErrorResponse | None:
        now = self.absolute_time_ms
        if now is None or not 0 < (absolute_time - now) & 0xFFFF_FFFF <= 4_147_200_000:
            return ErrorResponse(ErrorCode.IMPLAUSIBLE_ABSOLUTE_TIME)
        return None

    def _display_timed(self, command: DisplayTimedImage) -> Response:
        if command.abs_time == 0:
            self.pending_timed_image = None
            return DisplayState(command.display_index, command.image_index)
        if command.display_index != 0:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if command.image_index >= len(self.images):
            return ErrorResponse(ErrorCode.INVALID_IMAGE_INDEX)
        if not self.images[command.image_index].complete:
            return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
        error = self._check_future_time(command.abs_time)
        if error is not None:
            return error
        self.pending_timed_image = command
        return DisplayState(command.display_index, command.image_index)

    def _run_due_timed_commands(self) -> None:
        """Timed commands run lazily: whenever the tag handles something, due ones execute first."""
        now = self.absolute_time_ms
        if now is None:
            return
        timed_image = self.pending_timed_image
        if timed_image is not None and (now - timed_image.abs_time) & 0xFFFF_FFFF < 0x8000_0000:
            self.pending_timed_image = None
            if self.images[timed_image.image_index].complete:
                self._show(timed_image.image_index)
        timed_led = self.pending_timed_led
        if timed_led is not None and (now - timed_led.abs_time) & 0xFFFF_FFFF < 0x8000_0000:
            self.pending_timed_led = None
            self.leds[timed_led.led_index].command = timed_led

    # ------------------------------------------------------------------------------------------------------------
    # OTS: OLCP, OACP and the object channel

    def _on_olcp_write(self, connection: Connection, value: bytes) -> None:
        self.timeline.att_s += self.timing.att_round_trip_s
        data = bytes(value)
        if not data:
            raise att.ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH, message="empty OLCP write")
        opcode = data[0]
        result = OlcpResult.SUCCESS
        if opcode == OlcpOpcode.GO_TO:
            if len(data) != 7:
                result = OlcpResult.INVALID_PARAMETER
            else:
                object_id = int.from_bytes(data[1:7], "little")
                index = object_id - IMAGE_OBJECT_ID_BASE
                if 0 <= index < len(self.images):
                    self._selected = self.images[index]
                else:
                    result = OlcpResult.OBJECT_ID_NOT_FOUND
        elif opcode == OlcpOpcode.FIRST:
            self._selected = self.images[0]
        elif opcode == OlcpOpcode.LAST:
            self._selected = self.images[-1]
        else:
            result = OlcpResult.OPCODE_NOT_SUPPORTED
        self._send(self.olcp_characteristic, bytes((OlcpOpcode.RESPONSE, opcode, result)), indicate=True)

    def _on_oacp_write(self, connection: Connection, value: bytes) -> None:
        self.timeline.att_s += self.timing.att_round_trip_s
        data = bytes(value)
        if not data:
            raise att.ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH, message="empty OACP write")
        opcode = data[0]
        result, parameters = self._oacp(opcode, data[1:])
        self._send(self.oacp_characteristic, bytes((OacpOpcode.RESPONSE, opcode, result)) + parameters, indicate=True)

    def _oacp(self, opcode: int, body: bytes) -> tuple[OacpResult, bytes]:  # noqa: PLR0911 - one result per OACP check
        image = self._selected
        if opcode == OacpOpcode.ABORT:
            self._pending_write = None
            return OacpResult.SUCCESS, b""
        if opcode not in (OacpOpcode.WRITE, OacpOpcode.READ, OacpOpcode.CALCULATE_CHECKSUM):
            return OacpResult.OPCODE_NOT_SUPPORTED, b""
        if image is None:
            return OacpResult.INVALID_OBJECT, b""
        if opcode == OacpOpcode.CALCULATE_CHECKSUM:
            if len(body) != 8:
                return OacpResult.INVALID_PARAMETER, b""
            offset, length = struct.unpack("<II", body)
            if offset + length > len(image.data) or self._pending_write is not None:
                return OacpResult.INVALID_PARAMETER, b""
            crc = zlib.crc32(bytes(image.data[offset : offset + length]))
            if offset == 0 and length == len(image.data):
                image.verified = True  # a checksum over the whole object (raw or compressed, see ImageObject.image)
            return OacpResult.SUCCESS, struct.pack("<I", crc)
        if self._channel is None:
            return OacpResult.CHANNEL_UNAVAILABLE, b""
        if opcode == OacpOpcode.READ:
            if len(body) != 8:
                return OacpResult.INVALID_PARAMETER, b""
            offset, length = struct.unpack("<II", body)
            if offset + length > len(image.data):
                return OacpResult.INVALID_PARAMETER, b""
            chunk = bytes(image.data[offset : offset + length])
            self.radio.spawn(self._send_object_data(self._channel, chunk), name=f"esl-tag-{self.address}-oacp-read")
            return OacpResult.SUCCESS, b""
        # WRITE: offset u32, length u32, mode u8
        if len(body) != 9:
            return OacpResult.INVALID_PARAMETER, b""
        offset, length, mode = struct.unpack("<IIB", body)
        if self._pending_write is not None:
            return OacpResult.OBJECT_LOCKED, b""
        if offset > len(image.data) or offset + length > image.allocated_size or length == 0:
            return OacpResult.INVALID_PARAMETER, b""
        truncate = bool(mode & _WRITE_MODE_TRUNCATE)
        if truncate:
            del image.data[offset:]
        image.verified = False
        cut_after: int | None = None
        self.object_writes += 1
        if length > 1 and self._rng.random() < self.faults.disconnect_mid_transfer:
            cut_after = self._rng.randrange(1, length)
        self._pending_write = _PendingWrite(image, offset, length, truncate, cut_after=cut_after)
        return OacpResult.SUCCESS, b""

    async def _send_object_data(self, channel: l2cap.LeCreditBasedChannel, data: bytes) -> None:
        channel.write(data)
        await channel.drain()
        self.timeline.transfer_s += self.timing.transfer_s(len(data))

    def _on_l2cap_channel(self, channel: l2cap.LeCreditBasedChannel) -> None:
        if channel.connection is not self._connection:
            return
        self._channel = channel
        channel.sink = self._on_object_data

        def on_close() -> None:
            if self._channel is channel:
                self._channel = None
                self._pending_write = None
            # bumble 0.0.236 forgets to release a closed server-side LE CoC from its per-connection table (its
            # on_channel_closed only looks at the classic table, which LE channels also sit in), so the AP's next
            # channel on the same link, reusing the freed CID, is refused "source CID already allocated". A real
            # stack releases it; do that here.
            le_channels = self.device.l2cap_channel_manager.le_coc_channels.get(channel.connection.handle)
            if le_channels is not None and le_channels.get(channel.destination_cid) is channel:
                del le_channels[channel.destination_cid]

        channel.on(channel.EVENT_CLOSE, on_close)

    def _on_object_data(self, sdu: bytes) -> None:
        pending = self._pending_write
        if pending is None:
            _log.warning("tag %s: %d object bytes with no OACP Write pending, dropped", self.address, len(sdu))
            return
        data = bytes(sdu[: pending.length - pending.received])
        if pending.cut_after is not None and pending.received + len(data) >= pending.cut_after:
            data = data[: pending.cut_after - pending.received]
            self._accept(pending, data)
            self._pending_write = None
            connection = self._connection
            if connection is not None and not self.radio.closed:
                self.faults_injected += 1
                _log.info("tag %s: fault injected, dropping the link after %d bytes", self.address, pending.received)
                self.radio.spawn(self._drop_link(connection), name=f"esl-tag-{self.address}-fault-disconnect")
            return
        self._accept(pending, data)
        if pending.received == pending.length:
            self._pending_write = None

    async def _drop_link(self, connection: Connection) -> None:
        try:
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            # The AP hung up first: the link is down either way, which is all the fault asks for.
            _log.debug("tag %s: fault disconnect found the link already gone: %r", self.address, exc)

    def _accept(self, pending: _PendingWrite, data: bytes) -> None:
        start = pending.offset + pending.received
        image = pending.image
        image.data[start : start + len(data)] = data
        pending.received += len(data)
        self.timeline.object_bytes_received += len(data)
        self.timeline.transfer_s += self.timing.transfer_s(len(data))

    # ------------------------------------------------------------------------------------------------------------
    # PAwR: the radio hands this tag (a sync listener) the subevents sim.ble.pawr.PawrTrain sends

    def on_sync_packet(self, group_id: int, data: bytes) -> tuple[int, bytes] | None:
        """Handle one subevent's data: decrypt, execute its TLVs, build this tag's slot answer.

        Returns ``(response slot, EAD response)``, or None when the tag does not follow the train (not
        synchronized, out of range), the subevent is another group's, the packet does not decrypt under its AP Sync
        Key (not for this AP, or corrupted: dropped, as nrf-esl does), or nothing addressed it with a unicast TLV
        that produced a response.
        """
        if self.faults.out_of_range or self.state is not TagState.SYNCHRONIZED:
            return None
        address, sync_key, response_key = self.esl_address, self.sync_key, self.response_key
        if address is None or sync_key is None or response_key is None or address.group_id != group_id:
            return None
        try:
            packet = SyncPacket.decode(data, sync_key)
        except ProtocolError:
            return None
        if packet.group_id != group_id:
            return None
        responses: list[Response] = []
        slot: int | None = None
        for index, command in enumerate(packet.commands):
            if command.esl_id == BROADCAST_ESL_ID:
                self.execute(command, over_pawr=True)
                continue
            if command.esl_id != address.esl_id:
                continue
            slot = index
            response = self.execute(command, over_pawr=True)
            if response is not None:
                responses.append(response)
        if slot is None or not responses:
            return None
        return slot, encode_slot_response(responses, response_key, self.ead_randomizer())

    def ead_randomizer(self) -> bytes:
        """A fresh 5-byte EAD randomizer for a response."""
        return self._rng.randbytes(5)

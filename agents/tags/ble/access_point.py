"""The Bluetooth ESL access point: onboard tags, upload images over OTS and drive them with ECP, over bleak.

Role: everything the gateway does to a Bluetooth SIG Electronic Shelf Label over a *connection* (the PAwR broadcast
path is separate). It follows the AP side of the Bluetooth SIG ESL Profile 1.0: scan for unassociated tags
advertising the ESL Service (0x1857), connect, bond, discover ESL/OTS/DIS, read the information characteristics,
configure (ESL Address, AP Sync Key Material, Response Key Material, Current Absolute Time), upload images as
OTS objects and send ECP commands whose responses come back as notifications.

Why it looks like this:

- **bleak's public API only** (``BleakScanner``, ``BleakClient``); the backend *class* is a constructor argument
  (``client_backend``/``scanner_backend``, ``None`` = bleak's platform default, BlueZ on Linux). The CI backend
  (``sim.ble``, bumble) is therefore a config value; this module imports neither bumble nor ``sim``.
- OTS object data needs an L2CAP CoC, which bleak lacks: :mod:`agents.tags.ble.objects` supplies it, chosen by name.
- One connection = one :class:`TagSession`: characteristics resolved once, and at most one outstanding request per
  control point (ECP, OACP, OLCP), so a notification is matched to *the* pending request by its kind (Display
  State answers Display Image of the same display, and so on); a stale or unsolicited notification is logged and
  dropped, a malformed one fails the pending request with :class:`MalformedResponseError`. A disconnection fails
  every pending request with :class:`ConnectionLostError` at once instead of letting it time out.
- Image upload resumes: before writing, the AP selects the object (OLCP Go To ``0x100 + index``), reads its current
  size and, if the tag holds a prefix, checks it with OACP Calculate Checksum (CRC-32) and writes only the rest;
  a mismatching prefix means start again from offset 0 (truncating). After the write the AP waits for the object to
  reach its full size and verifies the whole CRC-32; one mismatch restarts the upload once on the same connection,
  a second is a :class:`TransferError`.
- Every operation runs in :meth:`EslAccessPoint.run`: it connects (with a timeout), runs the operation and
  disconnects; connection-family errors and timeouts (:data:`~agents.tags.ble.errors.RETRYABLE`) are retried on a
  fresh connection after a jittered, capped back-off (:class:`~agents.core.backoff.Backoff`), so a drop mid-image
  resumes where the tag stopped. Tag answers (ECP/OTS errors) are not retried.
- Per-tag state the AP must remember (BLE address and type, ESL address, response key, what the tag can do) is an
  :class:`EslTagRecord` the caller persists; the AP keeps no files.

Every public coroutine raises :class:`~agents.tags.ble.errors.BleTransportError` subclasses only (plus
``ValueError`` for caller mistakes and ``CancelledError``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16

from agents.core.backoff import Backoff
from agents.tags.ble.errors import (
    RETRYABLE,
    BleTagError,
    ConnectionFailedError,
    ConnectionLostError,
    ConnectTimeoutError,
    EcpError,
    GattError,
    IncompatibleTagError,
    MalformedResponseError,
    OtsError,
    ResponseTimeoutError,
    TagNotFoundError,
    TransferError,
)
from agents.tags.ble.objects import (
    OTS_L2CAP_PSM,
    AddressType,
    ObjectChannel,
    ObjectChannelError,
    ObjectChannelFactory,
    object_channel_factory,
)
from protocols.errors import ProtocolError
from protocols.esl import (
    ESL_SERVICE_UUID,
    BasicState,
    Command,
    CurrentAbsoluteTime,
    DisplayImage,
    DisplayInfo,
    DisplayInformation,
    DisplayState,
    DisplayTimedImage,
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
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorInfo,
    SensorInformation,
    SensorValue,
    ServiceReset,
    Unassociate,
    UpdateComplete,
    VendorCommand,
    VendorResponse,
    decode_response,
)
from protocols.ots import (
    OTS_SERVICE_UUID,
    OacpResponse,
    ObjectSize,
    OlcpOpcode,
    OlcpResponse,
    OtsCharacteristic,
    OtsFeature,
    encode_calculate_checksum,
    encode_go_to,
    encode_write,
    image_object_id,
)

__all__ = [
    "DIS_PNP_ID_UUID",
    "DIS_SERVICE_UUID",
    "AccessPointSettings",
    "DiscoveredTag",
    "EslAccessPoint",
    "EslTagRecord",
    "TagInformation",
    "TagSession",
    "UploadResult",
]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

DIS_SERVICE_UUID = 0x180A
DIS_PNP_ID_UUID = 0x2A50
_NO_RESPONSE_COMMANDS = (UpdateComplete, FactoryReset)
_ATT_SECURITY_ERRORS = frozenset({0x05, 0x0F})
"""ATT Insufficient Authentication and Insufficient Encryption: the link needs (re-)encryption."""


def _uuid(value: int) -> str:
    return normalize_uuid_16(value)


# --------------------------------------------------------------------------------------------------------------------
# Settings and records


@dataclass(frozen=True)
class AccessPointSettings:
    """Named tunables (seconds unless the name says otherwise). Defaults suit a real adapter; tests shrink them."""

    scan_s: float = 5.0
    """How long :meth:`EslAccessPoint.scan` listens."""
    connect_s: float = 10.0
    """Connect + service discovery (+ pairing) deadline per attempt."""
    response_s: float = 5.0
    """Deadline for one GATT read/write and for the notification answering an ECP/OACP/OLCP request."""
    transfer_s: float = 60.0
    """Deadline for sending one object's data over the object channel and the tag reaching its full size."""
    settle_s: float = 0.5
    """After a complete write, how long a mismatching checksum is re-checked before it counts (data in flight)."""
    poll_s: float = 0.02
    """Object Size polling interval while waiting for the tag to take in an object."""
    no_response_grace_s: float = 0.05
    """How long to listen for an Error after a command that has no success response (Update Complete)."""
    attempts: int = 4
    """Connections tried per operation (1 = no retry)."""
    backoff_min_s: float = 0.1
    backoff_max_s: float = 5.0
    pair: bool = True
    """Pair (bond) on the first connection, where the backend supports it."""
    update_complete: bool = True
    """Send ECP Update Complete before disconnecting from a configured tag (ends the Updating state)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        for name in ("scan_s", "connect_s", "response_s", "transfer_s", "poll_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class DiscoveredTag:
    """An unassociated ESL seen advertising the ESL Service."""

    ble_address: str
    name: str | None
    rssi: int | None
    address_type: AddressType
    device: BLEDevice = field(repr=False, compare=False)


@dataclass(frozen=True)
class TagInformation:
    """What a tag says about itself (configuration step 3)."""

    displays: tuple[DisplayInfo, ...]
    max_image_index: int
    sensors: tuple[SensorInfo, ...]
    leds: tuple[LedInfo, ...]
    pnp_id: bytes | None
    ots_feature: OtsFeature | None


@dataclass
class EslTagRecord:
    """Everything the AP must remember about one onboarded tag. The caller persists it (:meth:`to_dict`)."""

    ble_address: str
    esl_address: EslAddress
    response_key: KeyMaterial = field(repr=False)
    address_type: AddressType = "public"
    bonded: bool = False
    displays: tuple[DisplayInfo, ...] = ()
    max_image_index: int = 0
    sensors: tuple[SensorInfo, ...] = ()
    leds: tuple[LedInfo, ...] = ()
    pnp_id: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (characteristic values as hex, as the tag sent them)."""
        return {
            "ble_address": self.ble_address,
            "address_type": self.address_type,
            "esl_address": self.esl_address.to_int(),
            "response_key": self.response_key.encode().hex(),
            "bonded": self.bonded,
            "displays": DisplayInformation(self.displays).encode().hex() if self.displays else "",
            "max_image_index": self.max_image_index,
            "sensors": SensorInformation(self.sensors).encode().hex() if self.sensors else "",
            "leds": LedInformation(self.leds).encode().hex() if self.leds else "",
            "pnp_id": self.pnp_id.hex() if self.pnp_id is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EslTagRecord:
        """Inverse of :meth:`to_dict`; ``ValueError`` on a damaged record."""
        try:
            address_type = data.get("address_type", "public")
            if address_type not in ("public", "random"):
                raise ValueError(f"address type {address_type!r}")
            displays = bytes.fromhex(data.get("displays", ""))
            sensors = bytes.fromhex(data.get("sensors", ""))
            leds = bytes.fromhex(data.get("leds", ""))
            pnp_id = data.get("pnp_id")
            return cls(
                ble_address=str(data["ble_address"]),
                esl_address=EslAddress.from_int(int(data["esl_address"])),
                response_key=KeyMaterial.decode(bytes.fromhex(data["response_key"])),
                address_type=address_type,
                bonded=bool(data.get("bonded", False)),
                displays=DisplayInformation.decode(displays).displays if displays else (),
                max_image_index=int(data.get("max_image_index", 0)),
                sensors=SensorInformation.decode(sensors).sensors if sensors else (),
                leds=LedInformation.decode(leds).leds if leds else (),
                pnp_id=bytes.fromhex(pnp_id) if pnp_id is not None else None,
            )
        except (KeyError, TypeError, ProtocolError) as exc:
            raise ValueError(f"damaged ESL tag record: {exc!r}") from exc


@dataclass(frozen=True)
class UploadResult:
    """The outcome of one image upload."""

    image_index: int
    size: int
    crc32: int
    bytes_sent: int
    """Object bytes sent over the object channel (all connections; a resume sends only the missing part)."""
    resumed_from: int | None
    """Offset the last successful write started at when the tag already held a verified prefix."""
    connections: int
    """Connections it took (1 when nothing broke)."""


# --------------------------------------------------------------------------------------------------------------------
# ECP response matching


def _answers(command: Command, response: Response) -> bool:
    """True when ``response`` is the kind of answer ``command`` expects (Error answers anything)."""
    match command, response:
        case _, ErrorResponse() | VendorResponse():
            return isinstance(response, ErrorResponse) or isinstance(command, VendorCommand)
        case Ping() | ServiceReset() | Unassociate(), BasicState():
            return True
        case ReadSensorData(), SensorValue():
            return response.sensor_index == command.sensor_index
        case RefreshDisplay() | DisplayImage() | DisplayTimedImage(), DisplayState():
            return response.display_index == command.display_index
        case LedControl() | LedTimedControl(), LedState():
            return response.led_index == command.led_index
    return False


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:02x}"


@dataclass
class _Waiter:
    """The one outstanding request on a control point and the future its answer resolves."""

    accepts: Callable[[bytes], bool]
    future: asyncio.Future[bytes]


# --------------------------------------------------------------------------------------------------------------------
# One connection


class TagSession:
    """One live connection to one tag (see the module docstring). Built by :meth:`EslAccessPoint.connect`."""

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
        self.client = client
        self.ble_address = ble_address
        self.address_type: AddressType = address_type
        self.settings = settings
        self._channel_factory = channel_factory
        self._count_bytes = count_bytes
        self._lost = False
        self._waiters: dict[str, _Waiter] = {}
        self._locks = {name: asyncio.Lock() for name in ("ecp", "oacp", "olcp")}
        self._characteristics: dict[tuple[int, int], BleakGATTCharacteristic] = {}
        self._ots_feature: OtsFeature | None = None
        self._ots_ready = False
        self._ecp_ready = False
        self._security_raised = False
        self.object_bytes = 0
        """Object bytes handed to the object channel on this connection (a write that breaks counts in full)."""

    # -- connection state ---------------------------------------------------------------------------------------------

    def on_disconnected(self) -> None:
        """bleak's disconnected callback: fail every pending request now."""
        self._lost = True
        for name, waiter in list(self._waiters.items()):
            if not waiter.future.done():
                waiter.future.set_exception(ConnectionLostError(self.ble_address, f"link dropped awaiting {name}"))

    @property
    def lost(self) -> bool:
        return self._lost

    def _error(self, what: str, exc: BaseException) -> BleTagError:
        """Map a bleak/OS error raised by ``what`` to the typed error family."""
        if isinstance(exc, BleTagError):
            return exc
        if isinstance(exc, BleakGATTProtocolError):
            code = int(exc.args[0]) if exc.args and isinstance(exc.args[0], int) else None
            label = f"ATT error 0x{code:02x}" if code is not None else "ATT error"
            return GattError(self.ble_address, f"{what}: {label} ({exc})", code)
        if self._lost or not self.client.is_connected:
            return ConnectionLostError(self.ble_address, f"{what}: link dropped ({exc})")
        if isinstance(exc, TimeoutError):
            return ResponseTimeoutError(self.ble_address, f"{what}: no answer within {self.settings.response_s} s")
        if isinstance(exc, ObjectChannelError):
            return ConnectionLostError(self.ble_address, f"{what}: object channel failed ({exc})")
        return GattError(self.ble_address, f"{what}: {exc}")

    async def _gatt(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """One GATT operation under the response deadline, errors mapped.

        An ATT Insufficient Authentication/Encryption answer is met the way BlueZ meets it: raise the link's
        security (``pair()``, which encrypts with the stored bond) once per connection, then try again. Backends
        that encrypt by themselves never get here.
        """
        for attempt in (1, 2):
            if self._lost:
                raise ConnectionLostError(self.ble_address, f"{what}: not connected")
            try:
                async with asyncio.timeout(self.settings.response_s):
                    return await operation()
            except (BleakError, OSError, EOFError) as exc:  # TimeoutError is an OSError
                error = self._error(what, exc)
                if attempt == 1 and isinstance(error, GattError) and error.att_code in _ATT_SECURITY_ERRORS:
                    await self._raise_security(what, error)
                    continue
                raise error from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _raise_security(self, what: str, error: GattError) -> None:
        if self._security_raised:
            raise error
        self._security_raised = True
        _LOG.info("tag %s: %s needs an encrypted link; pairing", self.ble_address, what)
        try:
            async with asyncio.timeout(self.settings.connect_s):
                await self.client.pair()
        except NotImplementedError:
            raise error from None
        except (BleakError, OSError, EOFError) as exc:
            raise self._error("pairing", exc) from exc

    # -- characteristics ----------------------------------------------------------------------------------------------

    def characteristic(self, service: int, uuid: int, *, required: bool = True) -> BleakGATTCharacteristic | None:
        key = (service, uuid)
        if key in self._characteristics:
            return self._characteristics[key]
        found = self.client.services.get_service(_uuid(service))
        characteristic = found.get_characteristic(_uuid(uuid)) if found is not None else None
        if characteristic is None:
            if required:
                where = f"service 0x{service:04x}" if found is not None else f"no service 0x{service:04x}"
                raise IncompatibleTagError(self.ble_address, f"characteristic 0x{uuid:04x} missing ({where})")
            return None
        self._characteristics[key] = characteristic
        return characteristic

    def _required(self, service: int, uuid: int) -> BleakGATTCharacteristic:
        characteristic = self.characteristic(service, uuid)
        assert characteristic is not None
        return characteristic

    def has_service(self, service: int) -> bool:
        return self.client.services.get_service(_uuid(service)) is not None

    async def read(self, service: int, uuid: int) -> bytes:
        characteristic = self._required(service, uuid)
        return bytes(await self._gatt(f"read 0x{uuid:04x}", lambda: self.client.read_gatt_char(characteristic)))

    async def write(self, service: int, uuid: int, data: bytes, *, response: bool = True) -> None:
        characteristic = self._required(service, uuid)
        await self._gatt(
            f"write 0x{uuid:04x}", lambda: self.client.write_gatt_char(characteristic, data, response=response)
        )
        self._count_bytes(len(data))

    # -- control points -----------------------------------------------------------------------------------------------

    def _on_notification(self, point: str, data: bytearray) -> None:
        waiter = self._waiters.get(point)
        value = bytes(data)
        if waiter is None or waiter.future.done():
            _LOG.debug("tag %s: unsolicited %s notification %s dropped", self.ble_address, point, value.hex())
            return
        try:
            accepted = waiter.accepts(value)
        except ProtocolError as exc:
            waiter.future.set_exception(
                MalformedResponseError(self.ble_address, f"malformed {point} notification {value.hex()}: {exc}")
            )
            return
        if accepted:
            waiter.future.set_result(value)
        else:
            _LOG.debug("tag %s: stale %s notification %s dropped", self.ble_address, point, value.hex())

    def _drop_waiter(self, point: str) -> None:
        waiter = self._waiters.pop(point)
        if not waiter.future.done():
            waiter.future.cancel()
        elif not waiter.future.cancelled():
            waiter.future.exception()  # mark retrieved: a failure already raised another way is not "unhandled"

    async def _subscribe(self, point: str, service: int, uuid: int) -> None:
        characteristic = self._required(service, uuid)

        def deliver(_: BleakGATTCharacteristic, data: bytearray) -> None:
            self._on_notification(point, data)

        await self._gatt(f"subscribe {point}", lambda: self.client.start_notify(characteristic, deliver))

    async def _request(
        self, point: str, service: int, uuid: int, data: bytes, accepts: Callable[[bytes], bool], *, what: str
    ) -> bytes:
        """Write ``data`` to a control point and return the notification/indication that ``accepts`` matches."""
        async with self._locks[point]:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._waiters[point] = _Waiter(accepts, future)
            try:
                await self.write(service, uuid, data)
                try:
                    async with asyncio.timeout(self.settings.response_s):
                        return await future
                except TimeoutError as exc:
                    raise ResponseTimeoutError(
                        self.ble_address, f"{what}: no {point} response within {self.settings.response_s} s"
                    ) from exc
            finally:
                self._drop_waiter(point)

    async def start_ecp(self) -> None:
        if not self._ecp_ready:
            await self._subscribe("ecp", ESL_SERVICE_UUID, EslCharacteristic.ESL_CONTROL_POINT)
            self._ecp_ready = True

    async def ecp(self, command: Command) -> Response:
        """Send one ECP command and return its response; an Error response raises :class:`EcpError`."""
        if isinstance(command, _NO_RESPONSE_COMMANDS):
            raise ValueError(f"{type(command).__name__} has no response: use ecp_without_response")
        await self.start_ecp()

        def accepts(value: bytes) -> bool:
            response, _rest = decode_response(value)
            return _answers(command, response)

        what = type(command).__name__
        value = await self._request(
            "ecp", ESL_SERVICE_UUID, EslCharacteristic.ESL_CONTROL_POINT, command.encode(), accepts, what=what
        )
        response = self._decode_ecp(value, what)
        if isinstance(response, ErrorResponse):
            raise EcpError(self.ble_address, f"{what} refused: {_error_name(response.code)}", response.code)
        return response

    def _decode_ecp(self, value: bytes, what: str) -> Response:
        try:
            response, _rest = decode_response(value)
        except ProtocolError as exc:  # pragma: no cover - accepts() decoded the same bytes
            raise MalformedResponseError(self.ble_address, f"{what}: {exc}") from exc
        return response

    async def ecp_without_response(self, command: Command) -> None:
        """Send a command that has no success response (Update Complete, Factory Reset); an Error still raises."""
        await self.start_ecp()
        what = type(command).__name__
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        async with self._locks["ecp"]:
            self._waiters["ecp"] = _Waiter(lambda value: isinstance(decode_response(value)[0], ErrorResponse), future)
            try:
                await self.write(ESL_SERVICE_UUID, EslCharacteristic.ESL_CONTROL_POINT, command.encode())
                try:
                    async with asyncio.timeout(self.settings.no_response_grace_s):
                        value = await future
                except TimeoutError:
                    return  # silence is success for these commands
            finally:
                self._drop_waiter("ecp")
        response = self._decode_ecp(value, what)
        assert isinstance(response, ErrorResponse)
        raise EcpError(self.ble_address, f"{what} refused: {_error_name(response.code)}", response.code)

    # -- information and configuration ---------------------------------------------------------------------------------

    async def read_information(self) -> TagInformation:
        """Read Display, Image, Sensor and LED Information, the DIS PnP ID and the OTS Feature (config step 3)."""
        displays = DisplayInformation.decode(
            await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_DISPLAY_INFORMATION)
        ).displays
        max_index = 0
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_IMAGE_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_IMAGE_INFORMATION)
            max_index = self._decode("image information", ImageInformation.decode, raw).max_image_index
        sensors: tuple[SensorInfo, ...] = ()
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_SENSOR_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_SENSOR_INFORMATION)
            sensors = self._decode("sensor information", SensorInformation.decode, raw).sensors
        leds: tuple[LedInfo, ...] = ()
        if self.characteristic(ESL_SERVICE_UUID, EslCharacteristic.ESL_LED_INFORMATION, required=False):
            raw = await self.read(ESL_SERVICE_UUID, EslCharacteristic.ESL_LED_INFORMATION)
            leds = self._decode("LED information", LedInformation.decode, raw).leds
        pnp_id = None
        if self.characteristic(DIS_SERVICE_UUID, DIS_PNP_ID_UUID, required=False):
            pnp_id = await self.read(DIS_SERVICE_UUID, DIS_PNP_ID_UUID)
        feature = await self.ots_feature() if self.has_service(OTS_SERVICE_UUID) else None
        return TagInformation(displays, max_index, sensors, leds, pnp_id, feature)

    def _decode(self, what: str, decoder: Callable[[bytes], _T], raw: bytes) -> _T:
        try:
            return decoder(raw)
        except ProtocolError as exc:
            raise MalformedResponseError(self.ble_address, f"{what} {raw.hex()}: {exc}") from exc

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

    # -- OTS ----------------------------------------------------------------------------------------------------------

    async def ots_feature(self) -> OtsFeature:
        if self._ots_feature is None:
            raw = await self.read(OTS_SERVICE_UUID, OtsCharacteristic.OTS_FEATURE)
            self._ots_feature = self._decode("OTS feature", OtsFeature.decode, raw)
        return self._ots_feature

    async def _start_ots(self) -> OtsFeature:
        if not self.has_service(OTS_SERVICE_UUID):
            raise IncompatibleTagError(self.ble_address, "no Object Transfer Service: cannot take images")
        feature = await self.ots_feature()
        if not feature.can_write_images:
            raise IncompatibleTagError(self.ble_address, f"OTS lacks OACP Write + Truncate (0x{feature.oacp:08x})")
        if not self._ots_ready:
            await self._subscribe("oacp", OTS_SERVICE_UUID, OtsCharacteristic.OACP)
            await self._subscribe("olcp", OTS_SERVICE_UUID, OtsCharacteristic.OLCP)
            self._ots_ready = True
        return feature

    async def _oacp(self, request: bytes, what: str) -> OacpResponse:
        opcode = request[0]

        def accepts(value: bytes) -> bool:
            return OacpResponse.decode(value).request_opcode == opcode

        raw = await self._request("oacp", OTS_SERVICE_UUID, OtsCharacteristic.OACP, request, accepts, what=what)
        response = OacpResponse.decode(raw)
        if not response.ok:
            raise OtsError(self.ble_address, f"{what}: OACP {response.result_name}", opcode, response.result)
        return response

    async def select_object(self, object_id: int) -> None:
        """OLCP Go To ``object_id``."""

        def accepts(value: bytes) -> bool:
            return OlcpResponse.decode(value).request_opcode == OlcpOpcode.GO_TO

        what = f"Go To object 0x{object_id:x}"
        raw = await self._request(
            "olcp", OTS_SERVICE_UUID, OtsCharacteristic.OLCP, encode_go_to(object_id), accepts, what=what
        )
        response = OlcpResponse.decode(raw)
        if not response.ok:
            raise OtsError(self.ble_address, f"{what}: OLCP {response.result_name}", OlcpOpcode.GO_TO, response.result)

    async def object_size(self) -> ObjectSize:
        raw = await self.read(OTS_SERVICE_UUID, OtsCharacteristic.OBJECT_SIZE)
        return self._decode("object size", ObjectSize.decode, raw)

    async def checksum(self, offset: int, length: int) -> int:
        """OACP Calculate Checksum: the tag's CRC-32 of ``length`` bytes of the current object from ``offset``."""
        response = await self._oacp(encode_calculate_checksum(offset, length), f"checksum of {length} bytes")
        try:
            return response.checksum
        except ProtocolError as exc:
            raise MalformedResponseError(self.ble_address, f"checksum response: {exc}") from exc

    async def upload(self, image_index: int, data: bytes) -> tuple[int, int | None]:
        """Upload ``data`` as image ``image_index`` on this connection, resuming a verified prefix.

        Returns ``(bytes_sent, resumed_from)``. A whole-object checksum mismatch restarts once from offset 0.
        """
        if not data:
            raise ValueError("an image needs at least one byte")
        feature = await self._start_ots()
        await self.select_object(image_object_id(image_index))
        offset = await self._verified_prefix(data, feature) if feature.can_checksum else 0
        resumed_from = offset or None
        sent = 0
        for attempt in (1, 2):
            if offset < len(data):
                sent += await self._write_object(data, offset)
            if not feature.can_checksum:
                await self._await_size(len(data))
                return sent, resumed_from
            if await self._verified(data):
                return sent, resumed_from
            if attempt == 2:
                raise TransferError(self.ble_address, f"image {image_index}: checksum mismatch after a full rewrite")
            _LOG.info("tag %s: image %d checksum mismatch, rewriting from 0", self.ble_address, image_index)
            offset, resumed_from = 0, None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _verified_prefix(self, data: bytes, feature: OtsFeature) -> int:
        """How many leading bytes of ``data`` the tag already holds, checksum-verified (0 if none or unsure)."""
        size = await self.object_size()
        if not 0 < size.current <= len(data):
            return 0
        if await self.checksum(0, size.current) == zlib.crc32(data[: size.current]):
            if size.current < len(data):
                _LOG.info("tag %s: resuming image at byte %d of %d", self.ble_address, size.current, len(data))
            return size.current
        return 0

    async def _write_object(self, data: bytes, offset: int) -> int:
        channel: ObjectChannel = self._channel_factory(psm=OTS_L2CAP_PSM, address_type=self.address_type)
        remaining = data[offset:]
        try:
            try:
                async with asyncio.timeout(self.settings.connect_s):
                    await channel.open(self.client)
            except (ObjectChannelError, TimeoutError) as exc:
                raise self._error("object channel open", exc) from exc
            await self._oacp(encode_write(offset, len(remaining), truncate=True), f"write at {offset}")
            self.object_bytes += len(remaining)
            self._count_bytes(len(remaining))
            try:
                async with asyncio.timeout(self.settings.transfer_s):
                    await channel.write(remaining)
            except (ObjectChannelError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError) and not self._lost:
                    raise ResponseTimeoutError(
                        self.ble_address, f"object data not taken within {self.settings.transfer_s} s"
                    ) from exc
                raise self._error("object data", exc) from exc
            return len(remaining)
        finally:
            await channel.close()

    async def _await_size(self, size: int) -> None:
        """Wait until the tag's object holds ``size`` bytes (data may still be in flight after the write)."""
        try:
            async with asyncio.timeout(self.settings.transfer_s):
                # polling is the only way: the size lives on the tag and OTS sends no event for it
                while (await self.object_size()).current < size:  # noqa: ASYNC110
                    await asyncio.sleep(self.settings.poll_s)
        except TimeoutError as exc:
            raise ResponseTimeoutError(self.ble_address, f"object never reached {size} bytes") from exc

    async def _verified(self, data: bytes) -> bool:
        """Whole-object CRC-32 check, re-tried for ``settle_s`` while the data may still be arriving."""
        await self._await_size(len(data))
        expected = zlib.crc32(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.settle_s
        while True:
            if await self.checksum(0, len(data)) == expected:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self.settings.poll_s)


# --------------------------------------------------------------------------------------------------------------------
# The access point


def _address_type_of(device: BLEDevice) -> AddressType:
    """LE address type from the backend's details where it says (BlueZ: ``props["AddressType"]``), else public."""
    details = device.details
    if isinstance(details, Mapping):
        props = details.get("props")
        if isinstance(props, Mapping) and props.get("AddressType") == "random":
            return "random"
    return "public"


class EslAccessPoint:
    """The ESL access point over bleak (see the module docstring).

    Keyword arguments:

    - ``ap_sync_key``: the AP Sync Key Material written to every tag (one per PAwR train; the caller persists it).
    - ``client_backend`` / ``scanner_backend``: bleak backend classes, ``None`` for bleak's default (BlueZ).
    - ``object_channel``: a registered name (``"linux"``; the simulator registers ``"sim"``), ``"module:Class"`` or
      a factory (see :mod:`.objects`).
    - ``settings``: :class:`AccessPointSettings`.
    - ``client_kwargs``: extra keywords for ``BleakClient`` (for example ``bluez={...}``).
    - ``rng``: randomness for back-off jitter (response keys always come from ``os.urandom``).
    - ``clock_ms``: the AP's absolute time in milliseconds (default: since this object was made).
    """

    def __init__(
        self,
        *,
        ap_sync_key: KeyMaterial,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        object_channel: str | ObjectChannelFactory = "linux",
        settings: AccessPointSettings | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.ap_sync_key = ap_sync_key
        self.client_backend = client_backend
        self.scanner_backend = scanner_backend
        self.channel_factory = (
            object_channel_factory(object_channel) if isinstance(object_channel, str) else object_channel
        )
        self.settings = settings or AccessPointSettings()
        self._client_kwargs = dict(client_kwargs or {})
        self._rng = rng or random.Random()
        started = time.monotonic()
        self._clock_ms = clock_ms or (lambda: int((time.monotonic() - started) * 1000))
        self.bytes_written = 0
        """GATT value bytes written plus object bytes sent, over all tags."""
        self.connections = 0

    def _count_bytes(self, count: int) -> None:
        self.bytes_written += count

    # -- discovery ----------------------------------------------------------------------------------------------------

    async def scan(self, *, timeout_s: float | None = None) -> list[DiscoveredTag]:
        """Listen for tags advertising the ESL Service (unassociated tags do) and return them by address."""
        timeout = self.settings.scan_s if timeout_s is None else timeout_s
        found: dict[str, tuple[BLEDevice, AdvertisementData]] = {}
        esl_uuid = _uuid(ESL_SERVICE_UUID)

        def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
            if esl_uuid in advertisement.service_uuids:
                found[device.address.upper()] = (device, advertisement)

        try:
            async with BleakScanner(seen, service_uuids=[esl_uuid], backend=self.scanner_backend):
                await asyncio.sleep(timeout)
        except (BleakError, OSError) as exc:
            raise ConnectionFailedError("adapter", f"scan failed: {exc}") from exc
        return [
            DiscoveredTag(address, adv.local_name or device.name, adv.rssi, _address_type_of(device), device)
            for address, (device, adv) in sorted(found.items())
        ]

    # -- connections --------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def connect(
        self, target: DiscoveredTag | EslTagRecord | str, *, pair: bool | None = None
    ) -> AsyncIterator[TagSession]:
        """One connection (no retry): connect within ``connect_s``, pair if asked, yield the session, disconnect."""
        device_or_address: BLEDevice | str
        address_type: AddressType
        if isinstance(target, DiscoveredTag):
            address, address_type, device_or_address = target.ble_address, target.address_type, target.device
        elif isinstance(target, EslTagRecord):
            address, address_type, device_or_address = target.ble_address, target.address_type, target.ble_address
        else:
            address, address_type, device_or_address = target, "public", target
        if pair is None:
            pair = self.settings.pair and not (isinstance(target, EslTagRecord) and target.bonded)
        session: TagSession | None = None

        def disconnected(_: BleakClient) -> None:
            if session is not None:
                session.on_disconnected()

        client = BleakClient(
            device_or_address,
            disconnected_callback=disconnected,
            timeout=self.settings.connect_s,
            backend=self.client_backend,
            **self._client_kwargs,
        )
        session = TagSession(
            client,
            ble_address=address,
            address_type=address_type,
            settings=self.settings,
            channel_factory=self.channel_factory,
            count_bytes=self._count_bytes,
        )
        self.connections += 1
        try:
            # the backend enforces connect_s on the connection itself (and cleans up after it); this outer deadline
            # is the safety net that also bounds pairing
            async with asyncio.timeout(self.settings.connect_s * 2):
                await client.connect()
                if pair:
                    await self._pair(client, address)
        except TimeoutError as exc:
            await self._disconnect(client, address)
            raise ConnectTimeoutError(address, f"connect took over {self.settings.connect_s * 2} s") from exc
        except BleakDeviceNotFoundError as exc:
            await self._disconnect(client, address)
            raise TagNotFoundError(address, f"not found ({exc})") from exc
        except (BleakError, OSError, EOFError) as exc:
            await self._disconnect(client, address)
            raise ConnectionFailedError(address, f"connect failed: {exc}") from exc
        try:
            yield session
        finally:
            await self._disconnect(client, address)

    async def _pair(self, client: BleakClient, address: str) -> None:
        try:
            await client.pair()
        except NotImplementedError:
            _LOG.info("tag %s: backend %s cannot pair; continuing unbonded", address, client.backend_id)

    async def _disconnect(self, client: BleakClient, address: str) -> None:
        """Disconnect; a failure here is logged, not raised: the operation's own outcome is what counts."""
        try:
            async with asyncio.timeout(self.settings.response_s):
                await client.disconnect()
        except (BleakError, OSError, EOFError) as exc:  # includes TimeoutError
            _LOG.warning("tag %s: disconnect failed: %r", address, exc)

    async def run(
        self,
        target: DiscoveredTag | EslTagRecord | str,
        operation: Callable[[TagSession], Awaitable[_T]],
        *,
        what: str,
        attempts: int | None = None,
    ) -> _T:
        """Run ``operation`` on a fresh connection, retrying :data:`RETRYABLE` failures with jittered back-off."""
        tries = attempts or self.settings.attempts
        backoff = Backoff(self.settings.backoff_min_s, self.settings.backoff_max_s, rng=self._rng)
        for attempt in range(1, tries + 1):
            try:
                async with self.connect(target) as session:
                    result = await operation(session)
                    if isinstance(target, EslTagRecord) and not target.bonded and self.settings.pair:
                        target.bonded = True
                    return result
            except RETRYABLE as exc:
                if attempt == tries:
                    raise
                delay = backoff.next_delay()
                _LOG.info("%s: attempt %d/%d failed (%s); retrying in %.2f s", what, attempt, tries, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- onboarding ---------------------------------------------------------------------------------------------------

    async def onboard(
        self,
        tag: DiscoveredTag | str,
        esl_address: EslAddress | Callable[[TagInformation], EslAddress],
        *,
        images: Sequence[bytes] = (),
        display_image: int | None = 0,
        response_key: KeyMaterial | None = None,
    ) -> EslTagRecord:
        """Configure an unassociated tag: bond, read its information, write address, keys and time, upload
        ``images`` (index = position), show ``display_image`` (None: leave the screen) and send Update Complete.

        Returns the record to persist; retried as a whole on connection failures (every step is idempotent).
        """
        if isinstance(esl_address, EslAddress) and esl_address.is_broadcast:
            raise ValueError("a tag cannot be given the broadcast ESL ID")
        key = response_key or KeyMaterial(os.urandom(16), os.urandom(8))
        ble_address = tag.ble_address if isinstance(tag, DiscoveredTag) else tag
        address_type: AddressType = tag.address_type if isinstance(tag, DiscoveredTag) else "public"

        chosen: list[EslAddress] = []

        async def configure(session: TagSession) -> EslTagRecord:
            info = await session.read_information()
            if images and len(images) > info.max_image_index + 1:
                raise ValueError(f"tag {ble_address} holds {info.max_image_index + 1} images, got {len(images)}")
            if isinstance(esl_address, EslAddress):
                address = esl_address
            else:
                # the caller picks the address from what the tag is (its panel), once per onboarding
                if not chosen:
                    chosen.append(esl_address(info))
                address = chosen[0]
            await session.configure(
                address, ap_sync_key=self.ap_sync_key, response_key=key, absolute_time_ms=self._clock_ms()
            )
            for index, image in enumerate(images):
                await session.upload(index, image)
            if images and display_image is not None:
                await session.ecp(DisplayImage(address.esl_id, 0, display_image))
            await session.ecp_without_response(UpdateComplete(address.esl_id))
            return EslTagRecord(
                ble_address=ble_address,
                esl_address=address,
                response_key=key,
                address_type=address_type,
                bonded=self.settings.pair,
                displays=info.displays,
                max_image_index=info.max_image_index,
                sensors=info.sensors,
                leds=info.leds,
                pnp_id=info.pnp_id,
            )

        target = esl_address if isinstance(esl_address, EslAddress) else "a declared address"
        return await self.run(tag, configure, what=f"onboard {ble_address} as {target}")

    async def onboard_all(
        self, assignments: Iterable[tuple[DiscoveredTag | str, EslAddress]], *, concurrency: int = 4
    ) -> dict[EslAddress, EslTagRecord | BleTagError]:
        """Onboard several tags, ``concurrency`` at a time; per tag the record or the error that stopped it."""
        limit = asyncio.Semaphore(concurrency)
        outcome: dict[EslAddress, EslTagRecord | BleTagError] = {}

        async def one(tag: DiscoveredTag | str, esl_address: EslAddress) -> None:
            async with limit:
                try:
                    outcome[esl_address] = await self.onboard(tag, esl_address)
                except BleTagError as exc:
                    _LOG.warning("onboarding %s failed: %s", esl_address, exc)
                    outcome[esl_address] = exc

        async with asyncio.TaskGroup() as group:
            for tag, esl_address in assignments:
                group.create_task(one(tag, esl_address), name=f"esl-onboard-{esl_address}")
        return outcome

    # -- operations on configured tags ------------------------------------------------------------------------------

    async def _finish(self, session: TagSession, record: EslTagRecord) -> None:
        if self.settings.update_complete and not session.lost:
            await session.ecp_without_response(UpdateComplete(record.esl_address.esl_id))

    async def upload_image(
        self, record: EslTagRecord, image_index: int, data: bytes, *, display: bool = False
    ) -> tuple[UploadResult, DisplayState | None]:
        """Upload ``data`` as image ``image_index`` (resuming across dropped connections), optionally show it."""
        if not 0 <= image_index <= record.max_image_index:
            raise ValueError(f"tag {record.ble_address} has image slots 0..{record.max_image_index}")
        sent = 0
        connections = 0
        resumed: int | None = None

        async def upload(session: TagSession) -> DisplayState | None:
            nonlocal sent, connections, resumed
            connections += 1
            try:
                _sent_now, resumed = await session.upload(image_index, data)
            finally:
                sent += session.object_bytes
            state = None
            if display:
                response = await session.ecp(DisplayImage(record.esl_address.esl_id, 0, image_index))
                assert isinstance(response, DisplayState)
                state = response
            await self._finish(session, record)
            return state

        state = await self.run(record, upload, what=f"image {image_index} to {record.esl_address}")
        return UploadResult(image_index, len(data), zlib.crc32(data), sent, resumed, connections), state

    async def command(self, record: EslTagRecord, command: Command) -> Response:
        """Send one ECP command on its own connection and return the response (Error -> :class:`EcpError`)."""

        async def send(session: TagSession) -> Response:
            response = await session.ecp(command)
            await self._finish(session, record)
            return response

        return await self.run(record, send, what=f"{type(command).__name__} to {record.esl_address}")

    async def read_information(self, record: EslTagRecord) -> EslTagRecord:
        """Re-read a tag's information characteristics into a copy of ``record``."""
        info = await self.run(record, TagSession.read_information, what=f"information of {record.esl_address}")
        return replace(
            record,
            displays=info.displays,
            max_image_index=info.max_image_index,
            sensors=info.sensors,
            leds=info.leds,
            pnp_id=info.pnp_id,
        )

"""One live GATT connection to a tag, with every bleak or OS failure mapped onto the typed error tree.

The layer under the ESL control point (:mod:`agents.tags.ble.control_point`) and the object transfer
(:mod:`agents.tags.ble.object_transfer`); :class:`~agents.tags.ble.session.TagSession` builds on it. A
:class:`GattLink` holds what one connection needs:

- **Characteristics resolved once** per connection; a missing one is an :class:`IncompatibleTagError`.
- **GATT reads and writes under the response deadline**, errors mapped (:meth:`GattLink.error`): an ATT error
  response is a :class:`GattError` with its code, a dropped link a :class:`ConnectionLostError`, silence a
  :class:`ResponseTimeoutError`. An ATT Insufficient Authentication/Encryption answer is met the way BlueZ meets it:
  raise the link's security (``pair()``, which encrypts with the stored bond) once per connection, then try again.
- **Control-point requests** (ECP, OACP, OLCP): at most one outstanding request per control point, so a
  notification is matched to *the* pending request by its kind (the caller's ``accepts``); a stale or unsolicited
  notification is logged and dropped, a malformed one fails the pending request with
  :class:`MalformedResponseError`. A disconnection fails every pending request with :class:`ConnectionLostError` at
  once instead of letting it time out.

Every byte written is counted through ``count_bytes`` (the access point's ``bytes_written``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_16

from agents.tags.ble.errors import (
    BleTagError,
    ConnectionLostError,
    GattError,
    IncompatibleTagError,
    MalformedResponseError,
    ResponseTimeoutError,
)
from agents.tags.ble.objects import AddressType, ObjectChannelError
from agents.tags.ble.records import AccessPointSettings
from protocols.errors import ProtocolError

__all__ = ["GattLink"]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

_ATT_SECURITY_ERRORS = frozenset({0x05, 0x0F})
"""ATT Insufficient Authentication and Insufficient Encryption: the link needs (re-)encryption."""


@dataclass
class _Waiter:
    """The one outstanding request on a control point and the future its answer resolves."""

    accepts: Callable[[bytes], bool]
    future: asyncio.Future[bytes]


class GattLink:
    """One connected ``client`` to the tag at ``ble_address`` (see the module docstring)."""

    def __init__(
        self,
        client: BleakClient,
        *,
        ble_address: str,
        address_type: AddressType,
        settings: AccessPointSettings,
        count_bytes: Callable[[int], None],
    ) -> None:
        self.client = client
        self.ble_address = ble_address
        self.address_type: AddressType = address_type
        self.settings = settings
        self._count_bytes = count_bytes
        self._lost = False
        self._waiters: dict[str, _Waiter] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._subscribed: set[str] = set()
        self._characteristics: dict[tuple[int, int], BleakGATTCharacteristic] = {}
        self._security_raised = False

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

    def count_bytes(self, count: int) -> None:
        """Count ``count`` bytes sent to the tag (GATT values here, object data by the object transfer)."""
        self._count_bytes(count)

    def error(self, what: str, exc: BaseException) -> BleTagError:
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

    def decode(self, what: str, decoder: Callable[[bytes], _T], raw: bytes) -> _T:
        """``decoder(raw)``; a value that does not decode is a :class:`MalformedResponseError`."""
        try:
            return decoder(raw)
        except ProtocolError as exc:
            raise MalformedResponseError(self.ble_address, f"{what} {raw.hex()}: {exc}") from exc

    async def _gatt(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """One GATT operation under the response deadline, errors mapped, security raised once when asked."""
        for attempt in (1, 2):
            if self._lost:
                raise ConnectionLostError(self.ble_address, f"{what}: not connected")
            try:
                async with asyncio.timeout(self.settings.response_s):
                    return await operation()
            except (BleakError, OSError, EOFError) as exc:  # TimeoutError is an OSError
                error = self.error(what, exc)
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
            raise self.error("pairing", exc) from exc

    # -- characteristics ----------------------------------------------------------------------------------------------

    def characteristic(self, service: int, uuid: int, *, required: bool = True) -> BleakGATTCharacteristic | None:
        key = (service, uuid)
        if key in self._characteristics:
            return self._characteristics[key]
        found = self.client.services.get_service(normalize_uuid_16(service))
        characteristic = found.get_characteristic(normalize_uuid_16(uuid)) if found is not None else None
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
        return self.client.services.get_service(normalize_uuid_16(service)) is not None

    async def read(self, service: int, uuid: int) -> bytes:
        characteristic = self._required(service, uuid)
        return bytes(await self._gatt(f"read 0x{uuid:04x}", lambda: self.client.read_gatt_char(characteristic)))

    async def write(self, service: int, uuid: int, data: bytes, *, response: bool = True) -> None:
        characteristic = self._required(service, uuid)
        await self._gatt(
            f"write 0x{uuid:04x}", lambda: self.client.write_gatt_char(characteristic, data, response=response)
        )
        self.count_bytes(len(data))

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

    async def subscribe(self, point: str, service: int, uuid: int) -> None:
        """Enable notifications/indications of control point ``point`` (once per connection)."""
        if point in self._subscribed:
            return
        characteristic = self._required(service, uuid)

        def deliver(_: BleakGATTCharacteristic, data: bytearray) -> None:
            self._on_notification(point, data)

        await self._gatt(f"subscribe {point}", lambda: self.client.start_notify(characteristic, deliver))
        self._subscribed.add(point)

    async def request(
        self, point: str, service: int, uuid: int, data: bytes, accepts: Callable[[bytes], bool], *, what: str
    ) -> bytes:
        """Write ``data`` to a control point and return the notification/indication that ``accepts`` matches."""
        answer = await self.request_or_silence(point, service, uuid, data, accepts, wait_s=self.settings.response_s)
        if answer is None:
            raise ResponseTimeoutError(
                self.ble_address, f"{what}: no {point} response within {self.settings.response_s} s"
            )
        return answer

    async def request_or_silence(
        self, point: str, service: int, uuid: int, data: bytes, accepts: Callable[[bytes], bool], *, wait_s: float
    ) -> bytes | None:
        """Like :meth:`request`, for a request where silence for ``wait_s`` is an answer too (None)."""
        async with self._locks[point]:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._waiters[point] = _Waiter(accepts, future)
            try:
                await self.write(service, uuid, data)
                try:
                    async with asyncio.timeout(wait_s):
                        return await future
                except TimeoutError:
                    return None
            finally:
                self._drop_waiter(point)

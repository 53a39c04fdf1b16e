"""BleTagTransport: Bluetooth ESL tags behind the same async interface as the serial tag transport.

Why: the tag service (:mod:`agents.tags.service`) schedules label updates per bus and calls ``send_image``,
``display_image``, ``send_command``, ``close`` and reads ``bytes_written``; it should not care whether a bus is a
serial line or a Bluetooth access point. This class maps that interface onto :class:`EslAccessPoint`:

- ESL address -> BLE device through the onboarding records (:class:`EslTagRecord`, persisted by the caller); an
  address without a record raises :class:`UnknownTagError`.
- ``send_image`` uploads the planes (zlib-compressed with a 4 KB window when that is smaller, unless
  ``compress=False``; the tag inflates them) as OTS object ``0x100 + image_index`` (resuming after dropped
  connections) and, with ``display=True``, sends Display Image on the same connection; ``display=False`` stages
  the image and pings the tag, as the serial transport does, so the result always carries a response.
- Concurrency: at most ``max_concurrent`` tags are connected at once (a BLE controller holds a handful of links);
  operations on one tag are serialised.
- Every failure is a :class:`BleTransportError` (the service catches it beside ``SerialTransportError``); a tag's
  considered "no" (ECP Error, e.g. Image Not Available for a lost staged image) is an :class:`EcpError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from agents.tags.ble.access_point import EslAccessPoint
from agents.tags.ble.errors import BleTransportError, EcpError, UnknownTagError
from agents.tags.ble.records import EslTagRecord, UploadResult
from agents.tags.encoding import compress_framebuffer
from protocols.esl import (
    Command,
    DisplayImage,
    DisplayState,
    EslAddress,
    FactoryReset,
    Ping,
    Response,
    UpdateComplete,
)

__all__ = ["BleImageResult", "BleTagTransport"]


@dataclass(frozen=True)
class BleImageResult:
    """What ``send_image`` did; field names shared with the serial ``ImageResult`` where they mean the same."""

    address: EslAddress
    image_hash: bytes
    """First 8 bytes of SHA-256 of the planes (the serial transport's image identity)."""
    bytes_sent: int
    """Object bytes sent over the air (a resumed transfer counts only what was re-sent)."""
    crc32: int
    resumed_from: int | None
    connections: int
    response: Response


class BleTagTransport:
    """Async client for the tags one :class:`EslAccessPoint` serves (see the module docstring)."""

    def __init__(
        self,
        access_point: EslAccessPoint,
        records: Iterable[EslTagRecord] = (),
        *,
        max_concurrent: int = 4,
        compress: bool = True,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.access_point = access_point
        self._records: dict[EslAddress, EslTagRecord] = {}
        for record in records:
            self.add_record(record)
        self._limit = asyncio.Semaphore(max_concurrent)
        self._tag_locks: dict[EslAddress, asyncio.Lock] = {}
        self._closed = False
        self.compress = compress
        self.image_bytes_sent = 0

    @property
    def bytes_written(self) -> int:
        """GATT value bytes written plus object bytes sent by the access point (all tags)."""
        return self.access_point.bytes_written

    def add_record(self, record: EslTagRecord) -> None:
        """Map ``record.esl_address`` to its BLE device (after onboarding, or loaded from the store)."""
        self._records[record.esl_address] = record

    def has_record(self, address: EslAddress) -> bool:
        return address in self._records

    def records(self) -> list[EslTagRecord]:
        return list(self._records.values())

    def record(self, address: EslAddress) -> EslTagRecord:
        try:
            return self._records[address]
        except KeyError:
            raise UnknownTagError(f"no BLE onboarding record for ESL address {address}") from None

    def _lock_for(self, address: EslAddress) -> asyncio.Lock:
        lock = self._tag_locks.get(address)
        if lock is None:
            lock = self._tag_locks[address] = asyncio.Lock()
        return lock

    def _check_open(self) -> None:
        if self._closed:
            raise BleTransportError("BLE transport is closed")

    async def send_command(self, address: EslAddress, command: Command) -> Response:
        """Send one ECP command and return the tag's response; an Error response raises :class:`EcpError`."""
        if isinstance(command, UpdateComplete | FactoryReset):
            raise ValueError(f"{type(command).__name__} has no response; the access point sends it itself")
        self._check_open()
        record = self.record(address)
        async with self._limit, self._lock_for(address):
            return await self.access_point.command(record, command)

    async def send_image(
        self, address: EslAddress, planes: bytes, *, image_index: int = 0, display: bool = True
    ) -> BleImageResult:
        """Upload ``planes`` into image slot ``image_index``, then Display Image (or, staged, a Ping)."""
        self._check_open()
        record = self.record(address)
        payload = planes
        if self.compress:
            compressed = compress_framebuffer(planes)
            if len(compressed) < len(planes):
                payload = compressed  # the tag inflates it (agents.tags.encoding.inflate_framebuffer)
        async with self._limit, self._lock_for(address):
            upload, state = await self.access_point.upload_image(record, image_index, payload, display=display)
            response: Response
            if state is not None:
                response = state
            else:
                response = await self.access_point.command(record, Ping(address.esl_id))
        self.image_bytes_sent += upload.bytes_sent
        return self._result(address, planes, upload, response)

    @staticmethod
    def _result(address: EslAddress, planes: bytes, upload: UploadResult, response: Response) -> BleImageResult:
        return BleImageResult(
            address=address,
            image_hash=hashlib.sha256(planes).digest()[:8],
            bytes_sent=upload.bytes_sent,
            crc32=upload.crc32,
            resumed_from=upload.resumed_from,
            connections=upload.connections,
            response=response,
        )

    async def display_image(self, address: EslAddress, image_index: int) -> DisplayState:
        """Show an image already stored in slot ``image_index``; :class:`EcpError` when the tag refuses."""
        response = await self.send_command(address, DisplayImage(address.esl_id, 0, image_index))
        if not isinstance(response, DisplayState):
            raise EcpError(self.record(address).ble_address, f"Display Image answered {response}", 0x01)
        return response

    async def close(self) -> None:
        """Refuse new work. Each operation holds its own connection and closes it, so nothing else is open."""
        self._closed = True

    async def __aenter__(self) -> BleTagTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""Object Transfer (OTS 1.0) from the access point's side: upload an image into a tag's object, resuming.

An image slot *n* is OTS object 0x100 + n. Its bytes travel over the object channel
(:mod:`agents.tags.ble.objects`, an L2CAP CoC) after an OACP Write announced them; selecting the object (OLCP Go To),
its size and checksums are GATT (:class:`~agents.tags.ble.link.GattLink`). Uploads resume: before writing, the AP
selects the object, reads its current size and, if the tag holds a prefix, checks it with OACP Calculate Checksum
(CRC-32) and writes only the rest; a mismatching prefix means start again from offset 0 (truncating). After the
write the AP waits for the object to reach its full size and verifies the whole CRC-32; one mismatch restarts the
upload once on the same connection, a second is a :class:`~agents.tags.ble.errors.TransferError`. A broken object
channel counts as a dropped connection, so the access point's retry resumes on a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

from agents.tags.ble.errors import (
    IncompatibleTagError,
    MalformedResponseError,
    OtsError,
    ResponseTimeoutError,
    TransferError,
)
from agents.tags.ble.link import GattLink
from agents.tags.ble.objects import OTS_L2CAP_PSM, ObjectChannel, ObjectChannelError, ObjectChannelFactory
from protocols.errors import ProtocolError
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

__all__ = ["ObjectTransfer"]

_LOG = logging.getLogger(__name__)


class ObjectTransfer:
    """The OTS client of one connection (``link``); object channels come from ``channel_factory``, one per write."""

    def __init__(self, link: GattLink, channel_factory: ObjectChannelFactory) -> None:
        self._link = link
        self._channel_factory = channel_factory
        self._feature: OtsFeature | None = None
        self.object_bytes = 0
        """Object bytes handed to the object channel on this connection (a write that breaks counts in full)."""

    async def feature(self) -> OtsFeature:
        """The tag's OTS Feature (read once per connection)."""
        if self._feature is None:
            raw = await self._link.read(OTS_SERVICE_UUID, OtsCharacteristic.OTS_FEATURE)
            self._feature = self._link.decode("OTS feature", OtsFeature.decode, raw)
        return self._feature

    async def _start(self) -> OtsFeature:
        if not self._link.has_service(OTS_SERVICE_UUID):
            raise IncompatibleTagError(self._link.ble_address, "no Object Transfer Service: cannot take images")
        feature = await self.feature()
        if not feature.can_write_images:
            raise IncompatibleTagError(
                self._link.ble_address, f"OTS lacks OACP Write + Truncate (0x{feature.oacp:08x})"
            )
        await self._link.subscribe("oacp", OTS_SERVICE_UUID, OtsCharacteristic.OACP)
        await self._link.subscribe("olcp", OTS_SERVICE_UUID, OtsCharacteristic.OLCP)
        return feature

    async def _oacp(self, request: bytes, what: str) -> OacpResponse:
        opcode = request[0]

        def accepts(value: bytes) -> bool:
            return OacpResponse.decode(value).request_opcode == opcode

        raw = await self._link.request("oacp", OTS_SERVICE_UUID, OtsCharacteristic.OACP, request, accepts, what=what)
        response = OacpResponse.decode(raw)
        if not response.ok:
            raise OtsError(self._link.ble_address, f"{what}: OACP {response.result_name}", opcode, response.result)
        return response

    async def select_object(self, object_id: int) -> None:
        """OLCP Go To ``object_id``."""

        def accepts(value: bytes) -> bool:
            return OlcpResponse.decode(value).request_opcode == OlcpOpcode.GO_TO

        what = f"Go To object 0x{object_id:x}"
        raw = await self._link.request(
            "olcp", OTS_SERVICE_UUID, OtsCharacteristic.OLCP, encode_go_to(object_id), accepts, what=what
        )
        response = OlcpResponse.decode(raw)
        if not response.ok:
            raise OtsError(
                self._link.ble_address, f"{what}: OLCP {response.result_name}", OlcpOpcode.GO_TO, response.result
            )

    async def object_size(self) -> ObjectSize:
        raw = await self._link.read(OTS_SERVICE_UUID, OtsCharacteristic.OBJECT_SIZE)
        return self._link.decode("object size", ObjectSize.decode, raw)

    async def checksum(self, offset: int, length: int) -> int:
        """OACP Calculate Checksum: the tag's CRC-32 of ``length`` bytes of the current object from ``offset``."""
        response = await self._oacp(encode_calculate_checksum(offset, length), f"checksum of {length} bytes")
        try:
            return response.checksum
        except ProtocolError as exc:
            raise MalformedResponseError(self._link.ble_address, f"checksum response: {exc}") from exc

    async def upload(self, image_index: int, data: bytes) -> tuple[int, int | None]:
        """Upload ``data`` as image ``image_index`` on this connection, resuming a verified prefix.

        Returns ``(bytes_sent, resumed_from)``. A whole-object checksum mismatch restarts once from offset 0.
        """
        if not data:
            raise ValueError("an image needs at least one byte")
        feature = await self._start()
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
                raise TransferError(
                    self._link.ble_address, f"image {image_index}: checksum mismatch after a full rewrite"
                )
            _LOG.info("tag %s: image %d checksum mismatch, rewriting from 0", self._link.ble_address, image_index)
            offset, resumed_from = 0, None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _verified_prefix(self, data: bytes, feature: OtsFeature) -> int:
        """How many leading bytes of ``data`` the tag already holds, checksum-verified (0 if none or unsure)."""
        size = await self.object_size()
        if not 0 < size.current <= len(data):
            return 0
        if await self.checksum(0, size.current) == zlib.crc32(data[: size.current]):
            if size.current < len(data):
                _LOG.info("tag %s: resuming image at byte %d of %d", self._link.ble_address, size.current, len(data))
            return size.current
        return 0

    async def _write_object(self, data: bytes, offset: int) -> int:
        channel: ObjectChannel = self._channel_factory(psm=OTS_L2CAP_PSM, address_type=self._link.address_type)
        remaining = data[offset:]
        try:
            try:
                async with asyncio.timeout(self._link.settings.connect_s):
                    await channel.open(self._link.client)
            except (ObjectChannelError, TimeoutError) as exc:
                raise self._link.error("object channel open", exc) from exc
            await self._oacp(encode_write(offset, len(remaining), truncate=True), f"write at {offset}")
            self.object_bytes += len(remaining)
            self._link.count_bytes(len(remaining))
            try:
                async with asyncio.timeout(self._link.settings.transfer_s):
                    await channel.write(remaining)
            except (ObjectChannelError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError) and not self._link.lost:
                    raise ResponseTimeoutError(
                        self._link.ble_address, f"object data not taken within {self._link.settings.transfer_s} s"
                    ) from exc
                raise self._link.error("object data", exc) from exc
            return len(remaining)
        finally:
            await channel.close()

    async def _await_size(self, size: int) -> None:
        """Wait until the tag's object holds ``size`` bytes (data may still be in flight after the write)."""
        try:
            async with asyncio.timeout(self._link.settings.transfer_s):
                # polling is the only way: the size lives on the tag and OTS sends no event for it
                while (await self.object_size()).current < size:  # noqa: ASYNC110
                    await asyncio.sleep(self._link.settings.poll_s)
        except TimeoutError as exc:
            raise ResponseTimeoutError(self._link.ble_address, f"object never reached {size} bytes") from exc

    async def _verified(self, data: bytes) -> bool:
        """Whole-object CRC-32 check, re-tried for ``settle_s`` while the data may still be arriving."""
        await self._await_size(len(data))
        expected = zlib.crc32(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._link.settings.settle_s
        while True:
            if await self.checksum(0, len(data)) == expected:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self._link.settings.poll_s)

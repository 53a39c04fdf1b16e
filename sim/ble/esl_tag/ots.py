"""The emulated tag's Object Transfer Service (OTS 1.0): image slots as objects, their bytes over an L2CAP CoC.

The AP selects an object with OLCP (First, Last, Go To; image index *n* is object ID 0x100 + n), reads its Name,
Type, Size, ID and Properties, and starts transfers with OACP (Write with truncate and patch, Read, Calculate
Checksum CRC-32, Abort); both control points answer by indication. The object contents themselves travel over an LE
credit-based channel on PSM 0x0025 (:data:`OBJECT_PSM`) on the same link. A Write announces ``offset`` and
``length``; the bytes that then arrive on the channel fill the object, and a checksum over the whole object marks it
verified (what the e-paper requires before it shows an image, see :class:`~sim.ble.esl_tag.model.ImageObject`).

Fault injection lives here because it happens to object data: when the tag's dice say so
(:meth:`OtsHost.cut_point`), the tag keeps only part of a write and drops the link, as a tag walking out of range
mid-image would.

:class:`ObjectTransferServer` is one component of the tag; what it needs from the tag is :class:`OtsHost`.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bumble import att, core, gatt, hci, l2cap
from bumble.core import UUID
from bumble.device import Connection, Device

from protocols.ots import (
    IMAGE_OBJECT_ID_BASE,
    OTS_SERVICE_UUID,
    OacpOpcode,
    OacpResult,
    OlcpOpcode,
    OlcpResult,
    OtsCharacteristic,
)
from sim.ble.esl_tag.attributes import (
    ATT_INVALID_ATTRIBUTE_LENGTH,
    ATT_OTS_OBJECT_NOT_SELECTED,
    CharacteristicFactory,
)
from sim.ble.esl_tag.model import ImageObject
from sim.ble.esl_tag.timing import TagTimeline, TimingModel
from sim.ble.radio import VirtualRadio

__all__ = ["L2CAP_MTU", "OBJECT_PSM", "ObjectTransferServer", "OtsHost"]

_log = logging.getLogger(__name__)

OBJECT_PSM = 0x0025
"""L2CAP PSM of the OTS object channel (OTS 1.0)."""
L2CAP_MTU = 512
OBJECT_TYPE_UNSPECIFIED = 0x2ACA

# OTS Feature bits (OACP features u32, OLCP features u32).
_OACP_FEATURES = (
    (1 << 2) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9)
)  # checksum read write trunc patch abort
_OLCP_FEATURES = 1 << 0  # Go To
# Object Properties bits: read, write, truncate, patch.
_OBJECT_PROPERTIES = (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6)
_WRITE_MODE_TRUNCATE = 0x02


class OtsHost(Protocol):
    """What the object server needs from the tag it serves (:class:`sim.ble.esl_tag.tag.EmulatedEslTag`)."""

    radio: VirtualRadio
    device: Device
    address: str
    timing: TimingModel
    timeline: TagTimeline
    images: list[ImageObject]

    @property
    def connection(self) -> Connection | None:
        """The AP's current connection, if any."""
        ...

    def count_att_request(self) -> None:
        """Add one ATT request's round trip to the modelled time."""
        ...

    def cut_point(self, length: int) -> int | None:
        """Where fault injection cuts an object write of ``length`` bytes (None: it arrives whole)."""
        ...

    def send(self, characteristic: gatt.Characteristic[bytes], value: bytes, *, indicate: bool) -> None:
        """Queue a notification or indication to the connected AP."""
        ...


@dataclass
class _PendingWrite:
    image: ImageObject
    offset: int
    length: int
    truncate: bool
    received: int = 0
    cut_after: int | None = None


class ObjectTransferServer:
    """The OTS GATT service (:attr:`service`) and the object channel's server side for one tag.

    Call :meth:`reset` when the link goes down: the selection, the channel and a pending write go with it.
    """

    def __init__(self, host: OtsHost, characteristics: CharacteristicFactory) -> None:
        self._host = host
        self.selected: ImageObject | None = None
        self._pending_write: _PendingWrite | None = None
        self._channel: l2cap.LeCreditBasedChannel | None = None
        self.object_writes = 0
        """OACP Writes accepted (each is one object transfer on one connection)."""
        self.faults_injected = 0
        """Object writes cut off by ``TagFaults.disconnect_mid_transfer``."""
        props = gatt.Characteristic.Properties
        self.oacp_characteristic = characteristics.writable(
            OtsCharacteristic.OACP, self._on_oacp_write, props.WRITE | props.INDICATE
        )
        self.olcp_characteristic = characteristics.writable(
            OtsCharacteristic.OLCP, self._on_olcp_write, props.WRITE | props.INDICATE
        )
        static, readable = characteristics.static, characteristics.readable
        self.service = gatt.Service(
            UUID.from_16_bits(OTS_SERVICE_UUID),
            [
                static(OtsCharacteristic.OTS_FEATURE, struct.pack("<II", _OACP_FEATURES, _OLCP_FEATURES)),
                readable(OtsCharacteristic.OBJECT_NAME, self._of_selected(lambda image: image.name.encode())),
                readable(
                    OtsCharacteristic.OBJECT_TYPE,
                    self._of_selected(lambda _: struct.pack("<H", OBJECT_TYPE_UNSPECIFIED)),
                ),
                readable(
                    OtsCharacteristic.OBJECT_SIZE,
                    self._of_selected(lambda image: struct.pack("<II", len(image.data), image.allocated_size)),
                ),
                readable(
                    OtsCharacteristic.OBJECT_ID, self._of_selected(lambda image: image.object_id.to_bytes(6, "little"))
                ),
                readable(
                    OtsCharacteristic.OBJECT_PROPERTIES,
                    self._of_selected(lambda _: struct.pack("<I", _OBJECT_PROPERTIES)),
                ),
                self.oacp_characteristic,
                self.olcp_characteristic,
            ],
        )
        host.device.create_l2cap_server(
            spec=l2cap.LeCreditBasedChannelSpec(psm=OBJECT_PSM, mtu=L2CAP_MTU), handler=self._on_l2cap_channel
        )

    def reset(self) -> None:
        """The link went down: forget the channel, a pending write and the selected object."""
        self._channel = None
        self._pending_write = None
        self.selected = None

    def _of_selected(self, encode: Callable[[ImageObject], bytes]) -> Callable[[Connection], bytes]:
        """A read of a property of the selected object (ATT error 0x81 before OLCP selected one)."""

        def read(_connection: Connection) -> bytes:
            if self.selected is None:
                raise att.ATT_Error(ATT_OTS_OBJECT_NOT_SELECTED, message="no object selected (OLCP Go To first)")
            self._host.count_att_request()
            return bytes(encode(self.selected))

        return read

    # -- control points -----------------------------------------------------------------------------------------

    def _request(self, point: str, value: bytes) -> bytes:
        """A control-point write: one ATT request of modelled time; an empty one is refused at the ATT level."""
        self._host.count_att_request()
        data = bytes(value)
        if not data:
            raise att.ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH, message=f"empty {point} write")
        return data

    def _on_olcp_write(self, connection: Connection, value: bytes) -> None:
        data = self._request("OLCP", value)
        opcode = data[0]
        images = self._host.images
        result = OlcpResult.SUCCESS
        if opcode == OlcpOpcode.GO_TO:
            if len(data) != 7:
                result = OlcpResult.INVALID_PARAMETER
            else:
                object_id = int.from_bytes(data[1:7], "little")
                index = object_id - IMAGE_OBJECT_ID_BASE
                if 0 <= index < len(images):
                    self.selected = images[index]
                else:
                    result = OlcpResult.OBJECT_ID_NOT_FOUND
        elif opcode == OlcpOpcode.FIRST:
            self.selected = images[0]
        elif opcode == OlcpOpcode.LAST:
            self.selected = images[-1]
        else:
            result = OlcpResult.OPCODE_NOT_SUPPORTED
        self._host.send(self.olcp_characteristic, bytes((OlcpOpcode.RESPONSE, opcode, result)), indicate=True)

    def _on_oacp_write(self, connection: Connection, value: bytes) -> None:
        data = self._request("OACP", value)
        opcode = data[0]
        result, parameters = self._oacp(opcode, data[1:])
        self._host.send(
            self.oacp_characteristic, bytes((OacpOpcode.RESPONSE, opcode, result)) + parameters, indicate=True
        )

    def _oacp(self, opcode: int, body: bytes) -> tuple[OacpResult, bytes]:  # noqa: PLR0911 - one result per OACP check
        image = self.selected
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
            self._host.radio.spawn(
                self._send_object_data(self._channel, chunk), name=f"esl-tag-{self._host.address}-oacp-read"
            )
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
        self.object_writes += 1
        cut_after = self._host.cut_point(length)
        self._pending_write = _PendingWrite(image, offset, length, truncate, cut_after=cut_after)
        return OacpResult.SUCCESS, b""

    # -- the object channel -------------------------------------------------------------------------------------

    async def _send_object_data(self, channel: l2cap.LeCreditBasedChannel, data: bytes) -> None:
        channel.write(data)
        await channel.drain()
        self._host.timeline.transfer_s += self._host.timing.transfer_s(len(data))

    def _on_l2cap_channel(self, channel: l2cap.LeCreditBasedChannel) -> None:
        if channel.connection is not self._host.connection:
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
            le_channels = self._host.device.l2cap_channel_manager.le_coc_channels.get(channel.connection.handle)
            if le_channels is not None and le_channels.get(channel.destination_cid) is channel:
                del le_channels[channel.destination_cid]

        channel.on(channel.EVENT_CLOSE, on_close)

    def _on_object_data(self, sdu: bytes) -> None:
        pending = self._pending_write
        host = self._host
        if pending is None:
            _log.warning("tag %s: %d object bytes with no OACP Write pending, dropped", host.address, len(sdu))
            return
        data = bytes(sdu[: pending.length - pending.received])
        if pending.cut_after is not None and pending.received + len(data) >= pending.cut_after:
            data = data[: pending.cut_after - pending.received]
            self._accept(pending, data)
            self._pending_write = None
            connection = host.connection
            if connection is not None and not host.radio.closed:
                self.faults_injected += 1
                _log.info("tag %s: fault injected, dropping the link after %d bytes", host.address, pending.received)
                host.radio.spawn(self._drop_link(connection), name=f"esl-tag-{host.address}-fault-disconnect")
            return
        self._accept(pending, data)
        if pending.received == pending.length:
            self._pending_write = None

    async def _drop_link(self, connection: Connection) -> None:
        try:
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            # The AP hung up first: the link is down either way, which is all the fault asks for.
            _log.debug("tag %s: fault disconnect found the link already gone: %r", self._host.address, exc)

    def _accept(self, pending: _PendingWrite, data: bytes) -> None:
        start = pending.offset + pending.received
        image = pending.image
        image.data[start : start + len(data)] = data
        pending.received += len(data)
        timeline = self._host.timeline
        timeline.object_bytes_received += len(data)
        timeline.transfer_s += self._host.timing.transfer_s(len(data))

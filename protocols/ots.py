"""Object Transfer Service control-point bytes for ESL images: OLCP Go To, OACP Write and Calculate Checksum.

Sans-IO, like :mod:`protocols.esl`: bytes in, typed values out, no connection and no clock, so every layout is
checked by unit tests against the OTS 1.0 layouts in the table below. Both ends use it: the access point
(:mod:`agents.tags.ble`) writes the requests, the emulated tags (:mod:`sim.ble.esl_tag`) answer them.

========================  ======  =======================================================================
Item                      UUID    Bytes (little-endian)
========================  ======  =======================================================================
OTS Feature               0x2ABD  OACP features u32, OLCP features u32
Object Size               0x2AC0  current size u32, allocated size u32
Object ID                 0x2AC3  u48
OACP                      0x2AC5  request ``opcode params``; indication ``60 request_opcode result [params]``
OLCP                      0x2AC6  request ``opcode params``; indication ``70 request_opcode result``
========================  ======  =======================================================================

- OACP Write: ``06 offset(u32) length(u32) mode(u8)``, mode bit 1 = truncate.
- OACP Calculate Checksum: ``03 offset(u32) length(u32)``; the response carries the CRC-32 (IEEE, as
  :func:`zlib.crc32`) as a u32 after the result code.
- OLCP Go To: ``05 object_id(u48)``.
- ESL image *n* is OTS object ``0x100 + n``.

Decoding raises :class:`~protocols.errors.ProtocolError` and nothing else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from protocols.errors import ProtocolError

__all__ = [
    "IMAGE_OBJECT_ID_BASE",
    "OACP_FEATURE_CHECKSUM",
    "OACP_FEATURE_TRUNCATE",
    "OACP_FEATURE_WRITE",
    "OTS_SERVICE_UUID",
    "WRITE_MODE_TRUNCATE",
    "OacpOpcode",
    "OacpResponse",
    "OacpResult",
    "ObjectSize",
    "OlcpOpcode",
    "OlcpResponse",
    "OlcpResult",
    "OtsCharacteristic",
    "OtsFeature",
    "encode_calculate_checksum",
    "encode_go_to",
    "encode_write",
    "image_object_id",
]

OTS_SERVICE_UUID = 0x1825
IMAGE_OBJECT_ID_BASE = 0x100
MAX_OBJECT_ID = (1 << 48) - 1
WRITE_MODE_TRUNCATE = 0x02
OACP_FEATURE_CHECKSUM = 1 << 2
OACP_FEATURE_WRITE = 1 << 5
OACP_FEATURE_TRUNCATE = 1 << 7
_U32 = 0xFFFF_FFFF


class OtsCharacteristic(enum.IntEnum):
    """The OTS characteristics the access point uses (OTS 1.0)."""

    OTS_FEATURE = 0x2ABD
    OBJECT_NAME = 0x2ABE
    OBJECT_TYPE = 0x2ABF
    OBJECT_SIZE = 0x2AC0
    OBJECT_ID = 0x2AC3
    OBJECT_PROPERTIES = 0x2AC4
    OACP = 0x2AC5
    OLCP = 0x2AC6


class OacpOpcode(enum.IntEnum):
    CREATE = 0x01
    DELETE = 0x02
    CALCULATE_CHECKSUM = 0x03
    EXECUTE = 0x04
    READ = 0x05
    WRITE = 0x06
    ABORT = 0x07
    RESPONSE = 0x60


class OacpResult(enum.IntEnum):
    SUCCESS = 0x01
    OPCODE_NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    INSUFFICIENT_RESOURCES = 0x04
    INVALID_OBJECT = 0x05
    CHANNEL_UNAVAILABLE = 0x06
    UNSUPPORTED_TYPE = 0x07
    PROCEDURE_NOT_PERMITTED = 0x08
    OBJECT_LOCKED = 0x09
    OPERATION_FAILED = 0x0A


class OlcpOpcode(enum.IntEnum):
    FIRST = 0x01
    LAST = 0x02
    PREVIOUS = 0x03
    NEXT = 0x04
    GO_TO = 0x05
    ORDER = 0x06
    REQUEST_NUMBER_OF_OBJECTS = 0x07
    CLEAR_MARKING = 0x08
    RESPONSE = 0x70


class OlcpResult(enum.IntEnum):
    SUCCESS = 0x01
    OPCODE_NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    OPERATION_FAILED = 0x04
    OUT_OF_BOUNDS = 0x05
    TOO_MANY_OBJECTS = 0x06
    NO_OBJECT = 0x07
    OBJECT_ID_NOT_FOUND = 0x08


def _result_name(kind: type[enum.IntEnum], code: int) -> str:
    try:
        return kind(code).name
    except ValueError:
        return f"0x{code:02x}"


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value <= _U32:
        raise ValueError(f"{name} {value} is outside u32")


def image_object_id(image_index: int) -> int:
    """The OTS object ID that holds ESL image ``image_index`` (``0x100 + n``)."""
    if not 0 <= image_index <= 0xFF:
        raise ValueError(f"image index {image_index} is outside 0..255")
    return IMAGE_OBJECT_ID_BASE + image_index


def encode_go_to(object_id: int) -> bytes:
    """OLCP Go To: select object ``object_id`` as the current object."""
    if not 0 <= object_id <= MAX_OBJECT_ID:
        raise ValueError(f"object id {object_id:#x} is outside u48")
    return bytes((OlcpOpcode.GO_TO,)) + object_id.to_bytes(6, "little")


def encode_write(offset: int, length: int, *, truncate: bool) -> bytes:
    """OACP Write: the next ``length`` bytes on the object channel go to ``offset`` of the current object."""
    _check_u32("offset", offset)
    _check_u32("length", length)
    return struct.pack("<BIIB", OacpOpcode.WRITE, offset, length, WRITE_MODE_TRUNCATE if truncate else 0)


def encode_calculate_checksum(offset: int, length: int) -> bytes:
    """OACP Calculate Checksum over ``length`` bytes from ``offset`` of the current object."""
    _check_u32("offset", offset)
    _check_u32("length", length)
    return struct.pack("<BII", OacpOpcode.CALCULATE_CHECKSUM, offset, length)


@dataclass(frozen=True)
class OacpResponse:
    """An OACP indication: which request it answers, the result code, and any parameters after it."""

    request_opcode: int
    result: int
    parameters: bytes = b""

    @property
    def ok(self) -> bool:
        return self.result == OacpResult.SUCCESS

    @property
    def result_name(self) -> str:
        return _result_name(OacpResult, self.result)

    @property
    def checksum(self) -> int:
        """The CRC-32 of a Calculate Checksum response."""
        if len(self.parameters) != 4:
            raise ProtocolError(f"checksum response carries {len(self.parameters)} parameter bytes, not 4")
        return int.from_bytes(self.parameters, "little")

    def encode(self) -> bytes:
        return bytes((OacpOpcode.RESPONSE, self.request_opcode, self.result)) + self.parameters

    @classmethod
    def decode(cls, data: bytes) -> OacpResponse:
        value = bytes(data)
        if len(value) < 3 or value[0] != OacpOpcode.RESPONSE:
            raise ProtocolError(f"not an OACP response: {value.hex()}")
        return cls(value[1], value[2], value[3:])


@dataclass(frozen=True)
class OlcpResponse:
    """An OLCP indication: ``70 request_opcode result`` (Request Number Of Objects adds a u32, kept raw)."""

    request_opcode: int
    result: int
    parameters: bytes = b""

    @property
    def ok(self) -> bool:
        return self.result == OlcpResult.SUCCESS

    @property
    def result_name(self) -> str:
        return _result_name(OlcpResult, self.result)

    def encode(self) -> bytes:
        return bytes((OlcpOpcode.RESPONSE, self.request_opcode, self.result)) + self.parameters

    @classmethod
    def decode(cls, data: bytes) -> OlcpResponse:
        value = bytes(data)
        if len(value) < 3 or value[0] != OlcpOpcode.RESPONSE:
            raise ProtocolError(f"not an OLCP response: {value.hex()}")
        return cls(value[1], value[2], value[3:])


@dataclass(frozen=True)
class ObjectSize:
    """Object Size: ``current`` bytes of contents, ``allocated`` bytes of room."""

    current: int
    allocated: int

    def encode(self) -> bytes:
        return struct.pack("<II", self.current, self.allocated)

    @classmethod
    def decode(cls, data: bytes) -> ObjectSize:
        value = bytes(data)
        if len(value) != 8:
            raise ProtocolError(f"object size must be 8 bytes, got {len(value)}")
        current, allocated = struct.unpack("<II", value)
        return cls(current, allocated)


@dataclass(frozen=True)
class OtsFeature:
    """OTS Feature: OACP and OLCP feature bit fields."""

    oacp: int
    olcp: int

    @property
    def can_write_images(self) -> bool:
        """OACP Write and Truncation, what an ESL AP requires (SiLabs mask ``0b10100000``)."""
        required = OACP_FEATURE_WRITE | OACP_FEATURE_TRUNCATE
        return self.oacp & required == required

    @property
    def can_checksum(self) -> bool:
        return bool(self.oacp & OACP_FEATURE_CHECKSUM)

    def encode(self) -> bytes:
        return struct.pack("<II", self.oacp, self.olcp)

    @classmethod
    def decode(cls, data: bytes) -> OtsFeature:
        value = bytes(data)
        if len(value) != 8:
            raise ProtocolError(f"OTS feature must be 8 bytes, got {len(value)}")
        oacp, olcp = struct.unpack("<II", value)
        return cls(oacp, olcp)

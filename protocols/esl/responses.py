"""ESL Control Point (ECP) responses, the tag's side of the ECP: each a frozen dataclass with ``encode()``.

Source: the Bluetooth SIG ESL Service 1.0 (ECP responses, Basic State flags, error codes). A response is a TLV
(:mod:`protocols.esl.tlv`) without an ESL ID: the link it arrives on (a response slot, a serial frame) says which
tag sent it::

    response:  opcode | parameters ...                 multi-byte fields little-endian

Sensor Value and vendor-specific responses carry their data length in the opcode's length nibble. Codes and flags
the enums do not name (vendor error codes, RFU Basic State bits) survive a round trip as plain ints.
:func:`decode_response` returns ``(response, rest)``; :func:`decode_responses` decodes a buffer of them. Decoding
never raises anything but :class:`~protocols.errors.ProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar

from protocols.esl.fields import U8, U16, check_bytes, check_range
from protocols.esl.tlv import UnknownOpcodeError, take_tlv

__all__ = [
    "MAX_SENSOR_DATA",
    "BasicState",
    "BasicStateFlags",
    "DisplayState",
    "ErrorCode",
    "ErrorResponse",
    "LedState",
    "Response",
    "SensorValue",
    "VendorResponse",
    "decode_response",
    "decode_responses",
]

MAX_SENSOR_DATA = 15
"""Most data bytes a Sensor Value response carries (its length nibble counts them)."""


class ErrorCode(enum.IntEnum):
    """Error response codes. 0xF0..0xFF are vendor-specific and decode as plain ints."""

    RFU = 0x00
    UNSPECIFIED_ERROR = 0x01
    INVALID_OPCODE = 0x02
    INVALID_STATE = 0x03
    INVALID_IMAGE_INDEX = 0x04
    IMAGE_NOT_AVAILABLE = 0x05
    INVALID_PARAMETERS = 0x06
    CAPACITY_LIMIT = 0x07
    INSUFFICIENT_BATTERY = 0x08
    INSUFFICIENT_RESOURCES = 0x09
    RETRY = 0x0A
    QUEUE_FULL = 0x0B
    IMPLAUSIBLE_ABSOLUTE_TIME = 0x0C


class BasicStateFlags(enum.IntFlag):
    """Basic State response flags, a u16. Bits 5..15 are RFU and survive a round trip."""

    SERVICE_NEEDED = 1 << 0
    SYNCHRONIZED = 1 << 1
    ACTIVE_LED = 1 << 2
    PENDING_LED_UPDATE = 1 << 3
    PENDING_DISPLAY_UPDATE = 1 << 4


@dataclass(frozen=True)
class ErrorResponse:
    """Error, ``00 error_code``. ``code`` is an :class:`ErrorCode` where known, else the raw byte."""

    code: int
    OPCODE: ClassVar[int] = 0x00

    def __post_init__(self) -> None:
        check_range("error code", self.code, 0, U8)

    @property
    def error(self) -> ErrorCode | None:
        """The :class:`ErrorCode`, or None for a vendor-specific (0xF0..0xFF) or reserved code."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.code))


@dataclass(frozen=True)
class LedState:
    """LED State, ``01 led_idx``."""

    led_index: int
    OPCODE: ClassVar[int] = 0x01

    def __post_init__(self) -> None:
        check_range("LED index", self.led_index, 0, U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.led_index))


@dataclass(frozen=True)
class BasicState:
    """Basic State, ``10 flags_lo flags_hi`` (u16 LE)."""

    flags: BasicStateFlags
    OPCODE: ClassVar[int] = 0x10

    def __post_init__(self) -> None:
        check_range("basic state flags", int(self.flags), 0, U16)

    def encode(self) -> bytes:
        return struct.pack("<BH", self.OPCODE, int(self.flags))


@dataclass(frozen=True)
class DisplayState:
    """Display State, ``11 display_idx image_idx``."""

    display_index: int
    image_index: int
    OPCODE: ClassVar[int] = 0x11

    def __post_init__(self) -> None:
        check_range("display index", self.display_index, 0, U8)
        check_range("image index", self.image_index, 0, U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.display_index, self.image_index))


@dataclass(frozen=True)
class SensorValue:
    """Sensor Value: opcode ``len(data) << 4 | 0x0E``, ``sensor_idx``, ``data`` (0..15 bytes)."""

    sensor_index: int
    data: bytes

    def __post_init__(self) -> None:
        check_range("sensor index", self.sensor_index, 0, U8)
        check_bytes("sensor data", self.data, 0, MAX_SENSOR_DATA)

    @property
    def opcode(self) -> int:
        return (len(self.data) << 4) | 0x0E

    def encode(self) -> bytes:
        return bytes((self.opcode, self.sensor_index)) + self.data


@dataclass(frozen=True)
class VendorResponse:
    """Vendor-specific response: opcode ``(len(data) - 1) << 4 | 0x0F``, then 1..16 data bytes.

    By the TLV rule a response of opcode ``0x?F`` is ``(opcode >> 4) + 2`` bytes long, so it carries
    ``(opcode >> 4) + 1`` bytes after the opcode.
    """

    data: bytes

    def __post_init__(self) -> None:
        check_bytes("vendor response data", self.data, 1, 16)

    @property
    def opcode(self) -> int:
        return ((len(self.data) - 1) << 4) | 0x0F

    def encode(self) -> bytes:
        return bytes((self.opcode,)) + self.data


Response = ErrorResponse | LedState | BasicState | DisplayState | SensorValue | VendorResponse


def decode_response(data: bytes) -> tuple[Response, bytes]:
    """Decode one ECP response TLV from the front of ``data``; return it and the remaining bytes.

    Raises :class:`UnknownOpcodeError` for an unknown opcode, :class:`ProtocolError` for truncated input.
    """
    opcode, tlv, rest = take_tlv(bytes(data), "response")
    response: Response
    if opcode == ErrorResponse.OPCODE:
        code = tlv[1]
        response = ErrorResponse(ErrorCode(code) if code in ErrorCode._value2member_map_ else code)
    elif opcode == LedState.OPCODE:
        response = LedState(tlv[1])
    elif opcode == BasicState.OPCODE:
        (flags,) = struct.unpack_from("<H", tlv, 1)
        response = BasicState(BasicStateFlags(flags))
    elif opcode == DisplayState.OPCODE:
        response = DisplayState(tlv[1], tlv[2])
    elif opcode & 0x0F == 0x0E:
        response = SensorValue(tlv[1], tlv[2:])
    elif opcode & 0x0F == 0x0F:
        response = VendorResponse(tlv[1:])
    else:
        raise UnknownOpcodeError(opcode, "response")
    return response, rest


def decode_responses(data: bytes) -> list[Response]:
    """Decode a buffer of concatenated response TLVs."""
    responses: list[Response] = []
    rest = bytes(data)
    while rest:
        response, rest = decode_response(rest)
        responses.append(response)
    return responses

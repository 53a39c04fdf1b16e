"""Bluetooth ESL addresses and ESL Control Point (ECP) command and response TLVs, as bytes.

Sources: the Bluetooth SIG ESL Service 1.0 (addressing, ECP command TLVs, responses, Basic State flags, error
codes), as Nordic's nrf-esl and the SiLabs ESL access point implement it.
This module is a self-contained, sans-IO codec: the serial link
(:mod:`protocols.esl.serial`) carries these TLVs today and the BLE transport will carry the same bytes later.

ESL address, a uint16 sent little-endian::

    bit 15      bits 14..8        bits 7..0
    +-----+------------------+------------------+
    | RFU | Group ID 0..127  | ESL ID 0..254    |   ESL ID 0xFF = broadcast within the group
    +-----+------------------+------------------+

TLV, commands and responses alike::

    byte 0: opcode = length nibble (bits 7..4) | tag nibble (bits 3..0)
    total TLV length = (opcode >> 4) + 2 bytes, opcode byte included; commands are at most 17 bytes

    command:   opcode | ESL ID | parameters ...        (every command's byte 1 is the ESL ID)
    response:  opcode | parameters ...

The length nibble is what lets a receiver skip a TLV it does not understand, so decoding always checks that the
opcode's length nibble matches the layout of the command it names and reports unknown opcodes with their length
(:class:`UnknownOpcodeError`). Multi-byte fields are little-endian.

Every command and response is a frozen dataclass with ``encode() -> bytes``; :func:`decode_command` and
:func:`decode_response` return ``(tlv, rest)`` so a buffer of concatenated TLVs (as in a PAwR sync packet) decodes by
calling them in a loop, or with :func:`decode_commands` / :func:`decode_responses`. Decoding never raises anything
but :class:`~protocols.errors.ProtocolError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from protocols.errors import ProtocolError

__all__ = [
    "BROADCAST_ESL_ID",
    "MAX_COMMAND_LEN",
    "MAX_GROUP_ID",
    "BasicState",
    "BasicStateFlags",
    "Command",
    "DisplayImage",
    "DisplayState",
    "DisplayTimedImage",
    "ErrorCode",
    "ErrorResponse",
    "EslAddress",
    "FactoryReset",
    "LedControl",
    "LedState",
    "LedTimedControl",
    "Ping",
    "ReadSensorData",
    "RefreshDisplay",
    "Response",
    "SensorValue",
    "ServiceReset",
    "Unassociate",
    "UnknownOpcodeError",
    "UpdateComplete",
    "VendorCommand",
    "VendorResponse",
    "decode_command",
    "decode_commands",
    "decode_response",
    "decode_responses",
    "tlv_length",
]

BROADCAST_ESL_ID = 0xFF
"""ESL ID 0xFF addresses every tag of a group."""
MAX_GROUP_ID = 127
MAX_COMMAND_LEN = 17
"""Longest ECP command TLV (nrf-esl ``ESL_ECP_COMMAND_MAX_LEN``)."""
MAX_SENSOR_DATA = 15
MAX_ABS_TIME_AHEAD_MS = 4_147_200_000
"""Timed commands may be at most 48 days ahead of the tag's absolute time."""

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF
_PATTERN_MAX = (1 << 40) - 1
_RFU_BIT = 0x8000


def tlv_length(opcode: int) -> int:
    """Total length of a TLV, opcode included, from its opcode's length nibble: ``(opcode >> 4) + 2``."""
    return ((opcode & 0xF0) >> 4) + 2


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_bytes(name: str, value: bytes, low: int, high: int) -> None:
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise ProtocolError(f"{name} must be {low}..{high} bytes, got {value!r}")


# --------------------------------------------------------------------------------------------------------------------
# Addressing


@dataclass(frozen=True)
class EslAddress:
    """An ESL address: group (0..127, the PAwR subevent) and ESL ID (0..254; 0xFF = broadcast)."""

    group_id: int
    esl_id: int

    SIZE: ClassVar[int] = 2

    def __post_init__(self) -> None:
        _check_range("group id", self.group_id, 0, MAX_GROUP_ID)
        _check_range("ESL id", self.esl_id, 0, _U8)

    @property
    def is_broadcast(self) -> bool:
        return self.esl_id == BROADCAST_ESL_ID

    def to_int(self) -> int:
        """The uint16 value: ``group_id << 8 | esl_id`` (bit 15 RFU, always 0)."""
        return (self.group_id << 8) | self.esl_id

    @classmethod
    def from_int(cls, value: int) -> EslAddress:
        _check_range("ESL address", value, 0, _U16)
        if value & _RFU_BIT:
            raise ProtocolError(f"ESL address 0x{value:04x} has the RFU bit 15 set")
        return cls(group_id=(value >> 8) & 0x7F, esl_id=value & 0xFF)

    def encode(self) -> bytes:
        """Two bytes, little-endian: ESL ID first, then group ID."""
        return struct.pack("<H", self.to_int())

    @classmethod
    def decode(cls, data: bytes) -> tuple[EslAddress, bytes]:
        if len(data) < cls.SIZE:
            raise ProtocolError(f"ESL address needs 2 bytes, got {len(data)}")
        (value,) = struct.unpack_from("<H", data)
        return cls.from_int(value), bytes(data[cls.SIZE :])

    def __str__(self) -> str:
        return f"{self.group_id}/{'*' if self.is_broadcast else self.esl_id}"


# --------------------------------------------------------------------------------------------------------------------
# Error codes and Basic State flags


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


# --------------------------------------------------------------------------------------------------------------------
# Commands


class UnknownOpcodeError(ProtocolError):
    """The opcode is not a known command or response. ``length`` (from the length nibble) lets a caller skip it.

    A tag answers an unknown command with Error Invalid Opcode (``00 02``).
    """

    def __init__(self, opcode: int, kind: str) -> None:
        self.opcode = opcode
        self.length = tlv_length(opcode)
        super().__init__(f"unknown {kind} opcode 0x{opcode:02x} (TLV length {self.length})")


@dataclass(frozen=True)
class _SimpleCommand:
    """A two-byte command: ``opcode esl_id``."""

    esl_id: int
    OPCODE: ClassVar[int] = -1

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id))


@dataclass(frozen=True)
class Ping(_SimpleCommand):
    """Ping, ``00 id``. Expected response: Basic State."""

    OPCODE: ClassVar[int] = 0x00


@dataclass(frozen=True)
class Unassociate(_SimpleCommand):
    """Unassociate from AP, ``01 id``. Expected response: Basic State or Error."""

    OPCODE: ClassVar[int] = 0x01


@dataclass(frozen=True)
class ServiceReset(_SimpleCommand):
    """Service Reset, ``02 id``: clears Service Needed. Expected response: Basic State."""

    OPCODE: ClassVar[int] = 0x02


@dataclass(frozen=True)
class FactoryReset(_SimpleCommand):
    """Factory Reset, ``03 id``. No response; Error Invalid State if synchronized."""

    OPCODE: ClassVar[int] = 0x03


@dataclass(frozen=True)
class UpdateComplete(_SimpleCommand):
    """Update Complete, ``04 id``. No response, or Error."""

    OPCODE: ClassVar[int] = 0x04


@dataclass(frozen=True)
class ReadSensorData:
    """Read Sensor Data, ``10 id sensor_idx``. Expected response: Sensor Value or Error."""

    esl_id: int
    sensor_index: int
    OPCODE: ClassVar[int] = 0x10

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)
        _check_range("sensor index", self.sensor_index, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id, self.sensor_index))


@dataclass(frozen=True)
class RefreshDisplay:
    """Refresh Display, ``11 id display_idx``. Expected response: Display State or Error."""

    esl_id: int
    display_index: int
    OPCODE: ClassVar[int] = 0x11

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)
        _check_range("display index", self.display_index, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id, self.display_index))


@dataclass(frozen=True)
class DisplayImage:
    """Display Image, ``20 id display_idx image_idx``. Expected response: Display State or Error."""

    esl_id: int
    display_index: int
    image_index: int
    OPCODE: ClassVar[int] = 0x20

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)
        _check_range("display index", self.display_index, 0, _U8)
        _check_range("image index", self.image_index, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id, self.display_index, self.image_index))


@dataclass(frozen=True)
class DisplayTimedImage:
    """Display Timed Image, ``60 id display_idx image_idx abs_time(u32 LE)``.

    ``abs_time`` (ms) is compared with the tag's ESL Current Absolute Time; 0 deletes the queued timed image.
    """

    esl_id: int
    display_index: int
    image_index: int
    abs_time: int
    OPCODE: ClassVar[int] = 0x60

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)
        _check_range("display index", self.display_index, 0, _U8)
        _check_range("image index", self.image_index, 0, _U8)
        _check_range("abs_time", self.abs_time, 0, _U32)

    def encode(self) -> bytes:
        return struct.pack("<BBBBI", self.OPCODE, self.esl_id, self.display_index, self.image_index, self.abs_time)


def _pack_color(red: int, green: int, blue: int, brightness: int) -> int:
    # ESL Service LED Control: color_brightness = (brightness&3)<<6 | (blue&3)<<4 | (green&3)<<2 | (red&3)
    return (brightness << 6) | (blue << 4) | (green << 2) | red


def _led_fields(
    led_index: int,
    red: int,
    green: int,
    blue: int,
    brightness: int,
    pattern: int,
    off_period: int,
    on_period: int,
    repeat_type: int,
    repeats_duration: int,
) -> bytes:
    """The 11 LED Control parameter bytes after ``opcode id``."""
    return (
        bytes((led_index, _pack_color(red, green, blue, brightness)))
        + pattern.to_bytes(5, "little")
        + struct.pack("<BBH", off_period, on_period, (repeats_duration << 1) | repeat_type)
    )


def _check_led(
    esl_id: int,
    led_index: int,
    red: int,
    green: int,
    blue: int,
    brightness: int,
    pattern: int,
    off_period: int,
    on_period: int,
    repeat_type: int,
    repeats_duration: int,
) -> None:
    _check_range("ESL id", esl_id, 0, _U8)
    _check_range("LED index", led_index, 0, _U8)
    for name, value in (("red", red), ("green", green), ("blue", blue), ("brightness", brightness)):
        _check_range(name, value, 0, 3)
    _check_range("pattern", pattern, 0, _PATTERN_MAX)
    _check_range("off_period", off_period, 0, _U8)
    _check_range("on_period", on_period, 0, _U8)
    _check_range("repeat_type", repeat_type, 0, 1)
    _check_range("repeats_duration", repeats_duration, 0, 0x7FFF)


def _unpack_led(body: bytes) -> tuple[int, int, int, int, int, int, int, int, int, int]:
    """Inverse of :func:`_led_fields` for ``body`` = the 11 parameter bytes."""
    led_index, color = body[0], body[1]
    pattern = int.from_bytes(body[2:7], "little")
    off_period, on_period, repeat = struct.unpack_from("<BBH", body, 7)
    return (
        led_index,
        color & 3,
        (color >> 2) & 3,
        (color >> 4) & 3,
        (color >> 6) & 3,
        pattern,
        off_period,
        on_period,
        repeat & 1,
        repeat >> 1,
    )


@dataclass(frozen=True)
class LedControl:
    """LED Control: ``B0 id led_idx color_brightness pattern[5] off_period on_period repeat(u16)``, 13 bytes.

    - ``red``/``green``/``blue``/``brightness``: 2 bits each, packed as ``brightness<<6 | blue<<4 | green<<2 | red``.
    - ``pattern``: 40-bit flashing pattern, sent as 5 bytes LE and played bit by bit.
    - ``off_period``/``on_period``: uint8 in 2 ms units.
    - ``repeat`` u16 = ``repeats_duration << 1 | repeat_type``; type 0 = count, 1 = seconds; duration 0 with type 0
      means LED off, with type 1 LED on continuously.
    """

    esl_id: int
    led_index: int
    red: int
    green: int
    blue: int
    brightness: int
    pattern: int
    off_period: int
    on_period: int
    repeat_type: int
    repeats_duration: int
    OPCODE: ClassVar[int] = 0xB0

    def __post_init__(self) -> None:
        _check_led(
            self.esl_id,
            self.led_index,
            self.red,
            self.green,
            self.blue,
            self.brightness,
            self.pattern,
            self.off_period,
            self.on_period,
            self.repeat_type,
            self.repeats_duration,
        )

    @property
    def color_brightness(self) -> int:
        return _pack_color(self.red, self.green, self.blue, self.brightness)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id)) + _led_fields(
            self.led_index,
            self.red,
            self.green,
            self.blue,
            self.brightness,
            self.pattern,
            self.off_period,
            self.on_period,
            self.repeat_type,
            self.repeats_duration,
        )


@dataclass(frozen=True)
class LedTimedControl:
    """Timed LED Control: the :class:`LedControl` fields followed by ``abs_time(u32 LE)``; opcode F0, 17 bytes."""

    esl_id: int
    led_index: int
    red: int
    green: int
    blue: int
    brightness: int
    pattern: int
    off_period: int
    on_period: int
    repeat_type: int
    repeats_duration: int
    abs_time: int
    OPCODE: ClassVar[int] = 0xF0

    def __post_init__(self) -> None:
        _check_led(
            self.esl_id,
            self.led_index,
            self.red,
            self.green,
            self.blue,
            self.brightness,
            self.pattern,
            self.off_period,
            self.on_period,
            self.repeat_type,
            self.repeats_duration,
        )
        _check_range("abs_time", self.abs_time, 0, _U32)

    @property
    def color_brightness(self) -> int:
        return _pack_color(self.red, self.green, self.blue, self.brightness)

    def encode(self) -> bytes:
        fields = _led_fields(
            self.led_index,
            self.red,
            self.green,
            self.blue,
            self.brightness,
            self.pattern,
            self.off_period,
            self.on_period,
            self.repeat_type,
            self.repeats_duration,
        )
        return bytes((self.OPCODE, self.esl_id)) + fields + struct.pack("<I", self.abs_time)


@dataclass(frozen=True)
class VendorCommand:
    """Vendor-specific command: opcode ``len(data) << 4 | 0x0F``, then ESL ID, then 0..15 data bytes."""

    esl_id: int
    data: bytes = field(default=b"")

    def __post_init__(self) -> None:
        _check_range("ESL id", self.esl_id, 0, _U8)
        _check_bytes("vendor command data", self.data, 0, 15)

    @property
    def opcode(self) -> int:
        return (len(self.data) << 4) | 0x0F

    def encode(self) -> bytes:
        return bytes((self.opcode, self.esl_id)) + self.data


Command = (
    Ping
    | Unassociate
    | ServiceReset
    | FactoryReset
    | UpdateComplete
    | ReadSensorData
    | RefreshDisplay
    | DisplayImage
    | DisplayTimedImage
    | LedControl
    | LedTimedControl
    | VendorCommand
)

_SIMPLE: dict[int, type[Ping | Unassociate | ServiceReset | FactoryReset | UpdateComplete]] = {
    cls.OPCODE: cls for cls in (Ping, Unassociate, ServiceReset, FactoryReset, UpdateComplete)
}


def _take(data: bytes, kind: str) -> tuple[int, bytes, bytes]:
    """Split ``data`` into (opcode, whole TLV, rest) using the length nibble; ProtocolError if truncated."""
    if not data:
        raise ProtocolError(f"empty {kind}: no opcode byte")
    opcode = data[0]
    length = tlv_length(opcode)
    if len(data) < length:
        raise ProtocolError(f"{kind} opcode 0x{opcode:02x} needs {length} bytes, got {len(data)}")
    return opcode, bytes(data[:length]), bytes(data[length:])


def decode_command(data: bytes) -> tuple[Command, bytes]:
    """Decode one ECP command TLV from the front of ``data``; return it and the remaining bytes.

    Raises :class:`UnknownOpcodeError` for an opcode that names no command (its ``length`` says how much to skip)
    and :class:`ProtocolError` for truncated input. Because every known opcode fixes its own length nibble, a
    length that does not match the command's layout shows up as an unknown opcode (the tag
    answers such commands with an error). A tag handling a single ECP write should also check
    ``len(write) == tlv_length(write[0])`` and answer Error Invalid Parameter(s) (0x06) otherwise, as Nordic's does;
    here the extra bytes come back as ``rest``.
    """
    opcode, tlv, rest = _take(bytes(data), "command")
    esl_id = tlv[1]
    command: Command
    if opcode in _SIMPLE:
        command = _SIMPLE[opcode](esl_id)
    elif opcode == ReadSensorData.OPCODE:
        command = ReadSensorData(esl_id, tlv[2])
    elif opcode == RefreshDisplay.OPCODE:
        command = RefreshDisplay(esl_id, tlv[2])
    elif opcode == DisplayImage.OPCODE:
        command = DisplayImage(esl_id, tlv[2], tlv[3])
    elif opcode == DisplayTimedImage.OPCODE:
        (abs_time,) = struct.unpack_from("<I", tlv, 4)
        command = DisplayTimedImage(esl_id, tlv[2], tlv[3], abs_time)
    elif opcode == LedControl.OPCODE:
        command = LedControl(esl_id, *_unpack_led(tlv[2:13]))
    elif opcode == LedTimedControl.OPCODE:
        (abs_time,) = struct.unpack_from("<I", tlv, 13)
        command = LedTimedControl(esl_id, *_unpack_led(tlv[2:13]), abs_time)
    elif opcode & 0x0F == 0x0F:
        command = VendorCommand(esl_id, tlv[2:])
    else:
        raise UnknownOpcodeError(opcode, "command")
    return command, rest


def decode_commands(data: bytes) -> list[Command]:
    """Decode a buffer of concatenated command TLVs (for example the payload of a PAwR sync packet)."""
    commands: list[Command] = []
    rest = bytes(data)
    while rest:
        command, rest = decode_command(rest)
        commands.append(command)
    return commands


# --------------------------------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class ErrorResponse:
    """Error, ``00 error_code``. ``code`` is an :class:`ErrorCode` where known, else the raw byte."""

    code: int
    OPCODE: ClassVar[int] = 0x00

    def __post_init__(self) -> None:
        _check_range("error code", self.code, 0, _U8)

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
        _check_range("LED index", self.led_index, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.led_index))


@dataclass(frozen=True)
class BasicState:
    """Basic State, ``10 flags_lo flags_hi`` (u16 LE)."""

    flags: BasicStateFlags
    OPCODE: ClassVar[int] = 0x10

    def __post_init__(self) -> None:
        _check_range("basic state flags", int(self.flags), 0, _U16)

    def encode(self) -> bytes:
        return struct.pack("<BH", self.OPCODE, int(self.flags))


@dataclass(frozen=True)
class DisplayState:
    """Display State, ``11 display_idx image_idx``."""

    display_index: int
    image_index: int
    OPCODE: ClassVar[int] = 0x11

    def __post_init__(self) -> None:
        _check_range("display index", self.display_index, 0, _U8)
        _check_range("image index", self.image_index, 0, _U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.display_index, self.image_index))


@dataclass(frozen=True)
class SensorValue:
    """Sensor Value: opcode ``len(data) << 4 | 0x0E``, ``sensor_idx``, ``data`` (0..15 bytes)."""

    sensor_index: int
    data: bytes

    def __post_init__(self) -> None:
        _check_range("sensor index", self.sensor_index, 0, _U8)
        _check_bytes("sensor data", self.data, 0, MAX_SENSOR_DATA)

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
        _check_bytes("vendor response data", self.data, 1, 16)

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
    opcode, tlv, rest = _take(bytes(data), "response")
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

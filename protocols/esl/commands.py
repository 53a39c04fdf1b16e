"""ESL Control Point (ECP) commands, the gateway's side of the ECP: each a frozen dataclass with ``encode()``.

Source: the Bluetooth SIG ESL Service 1.0 (ECP command TLVs), as Nordic's nrf-esl and the SiLabs ESL access point
implement it. A command is a TLV (:mod:`protocols.esl.tlv`) whose byte 1 is the ESL ID it addresses::

    command:   opcode | ESL ID | parameters ...        at most 17 bytes; multi-byte fields little-endian

:func:`decode_command` returns ``(command, rest)`` so a buffer of concatenated TLVs (as in a PAwR sync packet)
decodes by calling it in a loop, or with :func:`decode_commands`. The serial link (:mod:`protocols.esl.serial`)
and the BLE air (:mod:`protocols.esl.sync`) carry the same bytes. Decoding never raises anything but
:class:`~protocols.errors.ProtocolError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from protocols.esl.fields import U8, U32, check_bytes, check_range
from protocols.esl.tlv import UnknownOpcodeError, take_tlv

__all__ = [
    "MAX_ABS_TIME_AHEAD_MS",
    "MAX_COMMAND_LEN",
    "Command",
    "DisplayImage",
    "DisplayTimedImage",
    "FactoryReset",
    "LedControl",
    "LedTimedControl",
    "Ping",
    "ReadSensorData",
    "RefreshDisplay",
    "ServiceReset",
    "Unassociate",
    "UpdateComplete",
    "VendorCommand",
    "decode_command",
    "decode_commands",
]

MAX_COMMAND_LEN = 17
"""Longest ECP command TLV (nrf-esl ``ESL_ECP_COMMAND_MAX_LEN``)."""
MAX_ABS_TIME_AHEAD_MS = 4_147_200_000
"""Timed commands may be at most 48 days ahead of the tag's absolute time."""

_PATTERN_MAX = (1 << 40) - 1


@dataclass(frozen=True)
class _SimpleCommand:
    """A two-byte command: ``opcode esl_id``."""

    esl_id: int
    OPCODE: ClassVar[int] = -1

    def __post_init__(self) -> None:
        check_range("ESL id", self.esl_id, 0, U8)

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
        check_range("ESL id", self.esl_id, 0, U8)
        check_range("sensor index", self.sensor_index, 0, U8)

    def encode(self) -> bytes:
        return bytes((self.OPCODE, self.esl_id, self.sensor_index))


@dataclass(frozen=True)
class RefreshDisplay:
    """Refresh Display, ``11 id display_idx``. Expected response: Display State or Error."""

    esl_id: int
    display_index: int
    OPCODE: ClassVar[int] = 0x11

    def __post_init__(self) -> None:
        check_range("ESL id", self.esl_id, 0, U8)
        check_range("display index", self.display_index, 0, U8)

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
        check_range("ESL id", self.esl_id, 0, U8)
        check_range("display index", self.display_index, 0, U8)
        check_range("image index", self.image_index, 0, U8)

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
        check_range("ESL id", self.esl_id, 0, U8)
        check_range("display index", self.display_index, 0, U8)
        check_range("image index", self.image_index, 0, U8)
        check_range("abs_time", self.abs_time, 0, U32)

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
    check_range("ESL id", esl_id, 0, U8)
    check_range("LED index", led_index, 0, U8)
    for name, value in (("red", red), ("green", green), ("blue", blue), ("brightness", brightness)):
        check_range(name, value, 0, 3)
    check_range("pattern", pattern, 0, _PATTERN_MAX)
    check_range("off_period", off_period, 0, U8)
    check_range("on_period", on_period, 0, U8)
    check_range("repeat_type", repeat_type, 0, 1)
    check_range("repeats_duration", repeats_duration, 0, 0x7FFF)


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
        check_range("abs_time", self.abs_time, 0, U32)

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
        check_range("ESL id", self.esl_id, 0, U8)
        check_bytes("vendor command data", self.data, 0, 15)

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


def decode_command(data: bytes) -> tuple[Command, bytes]:
    """Decode one ECP command TLV from the front of ``data``; return it and the remaining bytes.

    Raises :class:`UnknownOpcodeError` for an opcode that names no command (its ``length`` says how much to skip)
    and :class:`ProtocolError` for truncated input. Because every known opcode fixes its own length nibble, a
    length that does not match the command's layout shows up as an unknown opcode (the tag
    answers such commands with an error). A tag handling a single ECP write should also check
    ``len(write) == tlv_length(write[0])`` and answer Error Invalid Parameter(s) (0x06) otherwise, as Nordic's does;
    here the extra bytes come back as ``rest``.
    """
    opcode, tlv, rest = take_tlv(bytes(data), "command")
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

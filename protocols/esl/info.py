"""ESL Service characteristic values: what a tag tells the access point about itself, and what the AP writes to it.

Sources: the Bluetooth SIG ESL Service 1.0 (UUIDs, value formats, ESL address) and ESL Profile 1.0 (the
configuration sequence that reads and writes them), as nrf-esl and the SiLabs ESL access point implement them.
All multi-byte fields are little-endian.

Read by the AP while configuring a tag (step 3 of the configuration sequence), each a frozen dataclass here:

=====================  ======  ==================================================================================
Characteristic         UUID    Value
=====================  ======  ==================================================================================
Display Information    0x2BFA  per display: width u16, height u16, display type u8 (5 bytes each)
Image Information      0x2BFB  Max_Image_Index u8 (the tag stores images 0..max)
Sensor Information     0x2BFC  per sensor: size u8; size 0: Mesh Device Property ID u16;
                               size 1: company ID u16 + sensor code u16
LED Information        0x2BFD  per LED: bits 6-7 type (0 sRGB, 1 monochrome), bits 0-5 colour gamut
                               (2 bits each: red 0-1, green 2-3, blue 4-5, as in LED Control's colour byte)
=====================  ======  ==================================================================================

Written by the AP (steps 4-7 of the configuration sequence):

=============================  ======  ===========================================================================
ESL Address                    0x2BF6  u16, :class:`~protocols.esl.address.EslAddress` (reused, not redefined)
AP Sync Key Material           0x2BF7  24 bytes, :class:`~protocols.esl.ead.KeyMaterial`
ESL Response Key Material      0x2BF8  24 bytes, :class:`~protocols.esl.ead.KeyMaterial`
ESL Current Absolute Time      0x2BF9  u32 milliseconds, :class:`CurrentAbsoluteTime`
=============================  ======  ===========================================================================

Every value type has ``encode() -> bytes`` and a classmethod ``decode(data) -> value`` that takes the *whole*
characteristic value (a GATT read returns exactly one value, so trailing bytes are an error, not a "rest").
:func:`decode_characteristic` dispatches on the UUID. Decoding raises nothing but
:class:`~protocols.errors.ProtocolError`.

Choices the implementations leave open:

- Array characteristics (display, sensor, LED) must hold at least one entry: a tag exposes them only when it has
  such hardware, so an empty value is malformed. They also hold at most 256 entries, because ECP commands address
  displays, sensors and LEDs by a one-byte index, and fit an ATT value (512 bytes).
- Display types, LED types and the LED gamut keep unknown (reserved) values as plain ints instead of rejecting them,
  the same way :class:`~protocols.esl.responses.ErrorResponse` keeps vendor error codes: a newer tag stays usable.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from protocols.errors import ProtocolError
from protocols.esl.address import EslAddress
from protocols.esl.ead import KeyMaterial
from protocols.esl.fields import U8, U16, U32, check_range

__all__ = [
    "ESL_SERVICE_UUID",
    "MAX_ATT_VALUE",
    "MAX_INFO_ENTRIES",
    "CharacteristicValue",
    "CurrentAbsoluteTime",
    "DisplayInfo",
    "DisplayInformation",
    "DisplayType",
    "EslCharacteristic",
    "ImageInformation",
    "LedInfo",
    "LedInformation",
    "LedType",
    "MeshSensor",
    "SensorInfo",
    "SensorInformation",
    "VendorSensor",
    "decode_characteristic",
    "decode_esl_address",
]

ESL_SERVICE_UUID = 0x1857
MAX_ATT_VALUE = 512
"""Longest attribute value ATT allows; bounds every array characteristic."""
MAX_INFO_ENTRIES = 256
"""Displays, sensors and LEDs are addressed by a one-byte index, so a tag has at most 256 of each."""


class EslCharacteristic(enum.IntEnum):
    """UUID16 of each characteristic of the ESL Service."""

    ESL_ADDRESS = 0x2BF6
    AP_SYNC_KEY_MATERIAL = 0x2BF7
    ESL_RESPONSE_KEY_MATERIAL = 0x2BF8
    ESL_CURRENT_ABSOLUTE_TIME = 0x2BF9
    ESL_DISPLAY_INFORMATION = 0x2BFA
    ESL_IMAGE_INFORMATION = 0x2BFB
    ESL_SENSOR_INFORMATION = 0x2BFC
    ESL_LED_INFORMATION = 0x2BFD
    ESL_CONTROL_POINT = 0x2BFE


class DisplayType(enum.IntEnum):
    """Display type assigned numbers. Other values decode as plain ints."""

    BLACK_WHITE = 0x01
    GRAY_3 = 0x02
    GRAY_4 = 0x03
    GRAY_8 = 0x04
    GRAY_16 = 0x05
    RED_BLACK_WHITE = 0x06
    YELLOW_BLACK_WHITE = 0x07
    RED_YELLOW_BLACK_WHITE = 0x08
    COLOR_7 = 0x09
    COLOR_16 = 0x0A
    FULL_RGB = 0x0B


class LedType(enum.IntEnum):
    """LED type, bits 6-7 of an LED Information entry. Types 2 and 3 decode as plain ints."""

    SRGB = 0
    MONOCHROME = 1


def _known(enum_type: type[enum.IntEnum], value: int) -> int:
    """The enum member for ``value`` where there is one, else ``value`` itself."""
    return enum_type(value) if value in enum_type._value2member_map_ else value


def _check_entries(name: str, entries: tuple[object, ...], encoded_size: int) -> None:
    if not isinstance(entries, tuple):
        raise ProtocolError(f"{name} must be a tuple, got {type(entries).__name__}")
    if not 1 <= len(entries) <= MAX_INFO_ENTRIES:
        raise ProtocolError(f"{name} must list 1..{MAX_INFO_ENTRIES} entries, got {len(entries)}")
    if encoded_size > MAX_ATT_VALUE:
        raise ProtocolError(f"{name} takes {encoded_size} bytes, more than an ATT value ({MAX_ATT_VALUE})")


def _check_value_size(name: str, data: bytes) -> bytes:
    value = bytes(data)
    if not 1 <= len(value) <= MAX_ATT_VALUE:
        raise ProtocolError(f"{name} value must be 1..{MAX_ATT_VALUE} bytes, got {len(value)}")
    return value


# --------------------------------------------------------------------------------------------------------------------
# Display Information (0x2BFA)


@dataclass(frozen=True)
class DisplayInfo:
    """One display: size in pixels and :class:`DisplayType` (a plain int when reserved)."""

    width: int
    height: int
    display_type: int

    SIZE: ClassVar[int] = 5

    def __post_init__(self) -> None:
        check_range("display width", self.width, 0, U16)
        check_range("display height", self.height, 0, U16)
        check_range("display type", self.display_type, 0, U8)

    def encode(self) -> bytes:
        return struct.pack("<HHB", self.width, self.height, self.display_type)


@dataclass(frozen=True)
class DisplayInformation:
    """ESL Display Information: the tag's displays, in display-index order (index = position)."""

    displays: tuple[DisplayInfo, ...]

    def __post_init__(self) -> None:
        _check_entries("display information", self.displays, DisplayInfo.SIZE * len(self.displays))

    def encode(self) -> bytes:
        return b"".join(display.encode() for display in self.displays)

    @classmethod
    def decode(cls, data: bytes) -> DisplayInformation:
        value = _check_value_size("display information", data)
        if len(value) % DisplayInfo.SIZE:
            raise ProtocolError(f"display information is {len(value)} bytes, not a multiple of {DisplayInfo.SIZE}")
        displays = []
        for offset in range(0, len(value), DisplayInfo.SIZE):
            width, height, display_type = struct.unpack_from("<HHB", value, offset)
            displays.append(DisplayInfo(width, height, _known(DisplayType, display_type)))
        return cls(tuple(displays))


# --------------------------------------------------------------------------------------------------------------------
# Image Information (0x2BFB)


@dataclass(frozen=True)
class ImageInformation:
    """ESL Image Information: ``Max_Image_Index`` u8; the tag holds images ``0..max_image_index``."""

    max_image_index: int

    def __post_init__(self) -> None:
        check_range("max image index", self.max_image_index, 0, U8)

    @property
    def image_count(self) -> int:
        return self.max_image_index + 1

    def encode(self) -> bytes:
        return bytes((self.max_image_index,))

    @classmethod
    def decode(cls, data: bytes) -> ImageInformation:
        value = bytes(data)
        if len(value) != 1:
            raise ProtocolError(f"image information must be 1 byte, got {len(value)}")
        return cls(value[0])


# --------------------------------------------------------------------------------------------------------------------
# Sensor Information (0x2BFC)


@dataclass(frozen=True)
class MeshSensor:
    """A sensor named by a Mesh Device Property ID (size byte 0, then the u16 ID)."""

    property_id: int

    SIZE_FIELD: ClassVar[int] = 0
    SIZE: ClassVar[int] = 3

    def __post_init__(self) -> None:
        check_range("mesh device property id", self.property_id, 0, U16)

    def encode(self) -> bytes:
        return struct.pack("<BH", self.SIZE_FIELD, self.property_id)


@dataclass(frozen=True)
class VendorSensor:
    """A vendor-specific sensor (size byte 1, then company ID u16 and sensor code u16)."""

    company_id: int
    sensor_code: int

    SIZE_FIELD: ClassVar[int] = 1
    SIZE: ClassVar[int] = 5

    def __post_init__(self) -> None:
        check_range("company id", self.company_id, 0, U16)
        check_range("sensor code", self.sensor_code, 0, U16)

    def encode(self) -> bytes:
        return struct.pack("<BHH", self.SIZE_FIELD, self.company_id, self.sensor_code)


SensorInfo = MeshSensor | VendorSensor


@dataclass(frozen=True)
class SensorInformation:
    """ESL Sensor Information: the tag's sensors, in sensor-index order (the index Read Sensor Data uses)."""

    sensors: tuple[SensorInfo, ...]

    def __post_init__(self) -> None:
        _check_entries("sensor information", self.sensors, sum(sensor.SIZE for sensor in self.sensors))

    def encode(self) -> bytes:
        return b"".join(sensor.encode() for sensor in self.sensors)

    @classmethod
    def decode(cls, data: bytes) -> SensorInformation:
        value = _check_value_size("sensor information", data)
        sensors: list[SensorInfo] = []
        offset = 0
        while offset < len(value):
            size_field = value[offset]
            if size_field == MeshSensor.SIZE_FIELD:
                entry_size = MeshSensor.SIZE
            elif size_field == VendorSensor.SIZE_FIELD:
                entry_size = VendorSensor.SIZE
            else:
                raise ProtocolError(f"sensor {len(sensors)} has size field {size_field}; only 0 and 1 are defined")
            if offset + entry_size > len(value):
                raise ProtocolError(f"sensor {len(sensors)} needs {entry_size} bytes, {len(value) - offset} remain")
            if size_field == MeshSensor.SIZE_FIELD:
                (property_id,) = struct.unpack_from("<H", value, offset + 1)
                sensors.append(MeshSensor(property_id))
            else:
                company_id, sensor_code = struct.unpack_from("<HH", value, offset + 1)
                sensors.append(VendorSensor(company_id, sensor_code))
            offset += entry_size
        return cls(tuple(sensors))


# --------------------------------------------------------------------------------------------------------------------
# LED Information (0x2BFD)


@dataclass(frozen=True)
class LedInfo:
    """One LED: :class:`LedType` and the colour gamut, 2 bits per primary (0..3 each)."""

    led_type: int
    red: int
    green: int
    blue: int

    def __post_init__(self) -> None:
        check_range("LED type", self.led_type, 0, 3)
        for name, level in (("red", self.red), ("green", self.green), ("blue", self.blue)):
            check_range(f"LED gamut {name}", level, 0, 3)

    def encode(self) -> bytes:
        return bytes(((self.led_type << 6) | (self.blue << 4) | (self.green << 2) | self.red,))

    @classmethod
    def from_byte(cls, value: int) -> LedInfo:
        return cls(_known(LedType, value >> 6), value & 3, (value >> 2) & 3, (value >> 4) & 3)


@dataclass(frozen=True)
class LedInformation:
    """ESL LED Information: the tag's LEDs, in LED-index order, one byte each."""

    leds: tuple[LedInfo, ...]

    def __post_init__(self) -> None:
        _check_entries("LED information", self.leds, len(self.leds))

    def encode(self) -> bytes:
        return b"".join(led.encode() for led in self.leds)

    @classmethod
    def decode(cls, data: bytes) -> LedInformation:
        value = _check_value_size("LED information", data)
        return cls(tuple(LedInfo.from_byte(byte) for byte in value))


# --------------------------------------------------------------------------------------------------------------------
# Values the AP writes: ESL Address (0x2BF6), Key Material (0x2BF7/0x2BF8, see ead.py), Current Absolute Time (0x2BF9)


def decode_esl_address(data: bytes) -> EslAddress:
    """Decode an ESL Address characteristic value: exactly 2 bytes, u16 LE, RFU bit 15 clear.

    Encoding is :meth:`EslAddress.encode`.
    """
    value = bytes(data)
    if len(value) != EslAddress.SIZE:
        raise ProtocolError(f"ESL address value must be {EslAddress.SIZE} bytes, got {len(value)}")
    address, _ = EslAddress.decode(value)
    return address


@dataclass(frozen=True)
class CurrentAbsoluteTime:
    """ESL Current Absolute Time: u32 milliseconds, the clock timed commands are measured against."""

    milliseconds: int

    SIZE: ClassVar[int] = 4

    def __post_init__(self) -> None:
        check_range("absolute time", self.milliseconds, 0, U32)

    def encode(self) -> bytes:
        return struct.pack("<I", self.milliseconds)

    @classmethod
    def decode(cls, data: bytes) -> CurrentAbsoluteTime:
        value = bytes(data)
        if len(value) != cls.SIZE:
            raise ProtocolError(f"absolute time value must be {cls.SIZE} bytes, got {len(value)}")
        (milliseconds,) = struct.unpack("<I", value)
        return cls(milliseconds)


CharacteristicValue = (
    EslAddress
    | KeyMaterial
    | CurrentAbsoluteTime
    | DisplayInformation
    | ImageInformation
    | SensorInformation
    | LedInformation
)


def decode_characteristic(uuid: int, data: bytes) -> CharacteristicValue:
    """Decode the value of ESL Service characteristic ``uuid`` (an :class:`EslCharacteristic`).

    The Control Point is not a stored value (it carries ECP TLVs: use :func:`protocols.esl.commands.decode_command`), so
    it, like any UUID outside the service, raises :class:`ProtocolError`.
    """
    decoder = _VALUE_DECODERS.get(uuid)
    if decoder is None:
        raise ProtocolError(f"0x{uuid:04x} is not a stored-value characteristic of the ESL Service")
    return decoder(data)


_VALUE_DECODERS: dict[int, Callable[[bytes], CharacteristicValue]] = {
    EslCharacteristic.ESL_ADDRESS: decode_esl_address,
    EslCharacteristic.AP_SYNC_KEY_MATERIAL: KeyMaterial.decode,
    EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL: KeyMaterial.decode,
    EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME: CurrentAbsoluteTime.decode,
    EslCharacteristic.ESL_DISPLAY_INFORMATION: DisplayInformation.decode,
    EslCharacteristic.ESL_IMAGE_INFORMATION: ImageInformation.decode,
    EslCharacteristic.ESL_SENSOR_INFORMATION: SensorInformation.decode,
    EslCharacteristic.ESL_LED_INFORMATION: LedInformation.decode,
}

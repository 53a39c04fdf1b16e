"""Bluetooth LE beacon advertisements, sans-IO: iBeacon and Eddystone-UID, the two formats staff badges use.

Why here: the gateway's badge scanner (``agents/footfall/staff``) gets advertisements from bleak as the
manufacturer-specific data and service data of each report; the emulated badges of the simulator
(``sim/ble/badges.py``) must put the same bytes on the air. Both use this module, so the bytes are written
once, from the published formats, and tested with vectors.

iBeacon (Apple, "Proximity Beacon Specification" R1): manufacturer-specific data (AD type 0xFF) with company
identifier 0x004C (Apple, little-endian on the air) and a 23-byte payload::

    02 15 | proximity UUID (16, big-endian) | major (2, BE) | minor (2, BE) | measured power (1, signed dBm at 1 m)
    type  length = 21

Eddystone-UID (Google, github.com/google/eddystone, ``eddystone-uid``): service data (AD type 0x16) for the
16-bit service UUID 0xFEAA, frame type 0x00::

    00 | ranging data (1, signed dBm at 0 m) | namespace (10) | instance (6) | RFU (2, 0x00)

The RFU bytes are optional on receive (many beacons send 18 bytes) and always sent. Other Eddystone frames
(URL 0x10, TLM 0x20, EID 0x30) and other Apple payloads (AirDrop, Find My ...) are not beacons of interest:
their parsers return ``None``. A payload that claims to be one of ours and is not well formed raises
:class:`~protocols.errors.ProtocolError`; for any input bytes nothing else escapes.

Also here: :func:`parse_ad_structures` (the length-type-value list of a raw advertising PDU, Core Vol 3 Part C
section 11) and :func:`beacon_in_advertising` / :func:`beacon_from_fields` to find a beacon in either a raw PDU or
the already-split fields bleak reports (``AdvertisementData.manufacturer_data`` / ``service_data``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from protocols.errors import ProtocolError

__all__ = [
    "AD_TYPE_FLAGS",
    "AD_TYPE_MANUFACTURER_DATA",
    "AD_TYPE_SERVICE_DATA_16",
    "AD_TYPE_SERVICE_UUIDS_16",
    "APPLE_COMPANY_ID",
    "EDDYSTONE_SERVICE_UUID",
    "EDDYSTONE_SERVICE_UUID_STR",
    "Beacon",
    "EddystoneUid",
    "IBeacon",
    "beacon_from_fields",
    "beacon_in_advertising",
    "parse_ad_structures",
    "parse_eddystone",
    "parse_ibeacon",
]

AD_TYPE_FLAGS = 0x01
AD_TYPE_SERVICE_UUIDS_16 = 0x03  # Complete List of 16-bit Service Class UUIDs
AD_TYPE_SERVICE_DATA_16 = 0x16  # Service Data - 16-bit UUID
AD_TYPE_MANUFACTURER_DATA = 0xFF

APPLE_COMPANY_ID = 0x004C
IBEACON_TYPE = 0x02
IBEACON_LENGTH = 0x15  # the 21 bytes after type and length: UUID, major, minor, measured power

EDDYSTONE_SERVICE_UUID = 0xFEAA
EDDYSTONE_SERVICE_UUID_STR = "0000feaa-0000-1000-8000-00805f9b34fb"
"""The Eddystone UUID as bleak keys ``AdvertisementData.service_data`` (the 128-bit Bluetooth base form)."""
EDDYSTONE_UID_FRAME = 0x00
_EDDYSTONE_UID_LEN = 18  # frame type, ranging data, namespace, instance
_EDDYSTONE_RFU = b"\x00\x00"

_FLAGS_LE_GENERAL_NO_BREDR = 0x06  # LE General Discoverable, BR/EDR not supported


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_bytes(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ProtocolError(f"{name} must be {size} bytes, got {value!r}")


def _signed(byte: int) -> int:
    return byte - 0x100 if byte >= 0x80 else byte


def _ad_structure(ad_type: int, value: bytes) -> bytes:
    return bytes((len(value) + 1, ad_type)) + value


@dataclass(frozen=True, slots=True)
class IBeacon:
    """An iBeacon advertisement: proximity UUID, major, minor and the measured power (dBm at 1 m)."""

    uuid: uuid.UUID
    major: int
    minor: int
    measured_power: int

    def __post_init__(self) -> None:
        if not isinstance(self.uuid, uuid.UUID):
            raise ProtocolError(f"iBeacon uuid must be a uuid.UUID, got {self.uuid!r}")
        _check_int("iBeacon major", self.major, 0, 0xFFFF)
        _check_int("iBeacon minor", self.minor, 0, 0xFFFF)
        _check_int("iBeacon measured power", self.measured_power, -128, 127)

    def manufacturer_payload(self) -> bytes:
        """The 23 bytes after the company identifier (what bleak reports under ``manufacturer_data[0x004C]``)."""
        return (
            bytes((IBEACON_TYPE, IBEACON_LENGTH))
            + self.uuid.bytes
            + self.major.to_bytes(2, "big")
            + self.minor.to_bytes(2, "big")
            + (self.measured_power & 0xFF).to_bytes(1, "big")
        )

    def advertising_data(self) -> bytes:
        """A complete advertising PDU payload: flags, then the manufacturer-specific data (30 bytes)."""
        return _ad_structure(AD_TYPE_FLAGS, bytes((_FLAGS_LE_GENERAL_NO_BREDR,))) + _ad_structure(
            AD_TYPE_MANUFACTURER_DATA, APPLE_COMPANY_ID.to_bytes(2, "little") + self.manufacturer_payload()
        )


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    """An Eddystone-UID frame: the calibrated Tx power at 0 m (dBm), a 10-byte namespace, a 6-byte instance."""

    tx_power: int
    namespace: bytes
    instance: bytes

    def __post_init__(self) -> None:
        _check_int("Eddystone tx power", self.tx_power, -128, 127)
        _check_bytes("Eddystone namespace", self.namespace, 10)
        _check_bytes("Eddystone instance", self.instance, 6)

    def service_payload(self) -> bytes:
        """The 20-byte frame after the service UUID (what bleak reports under ``service_data[<0xFEAA>]``)."""
        return bytes((EDDYSTONE_UID_FRAME, self.tx_power & 0xFF)) + self.namespace + self.instance + _EDDYSTONE_RFU

    def advertising_data(self) -> bytes:
        """A complete advertising PDU payload: flags, the 0xFEAA service UUID list, the service data (31 bytes)."""
        uuid_le = EDDYSTONE_SERVICE_UUID.to_bytes(2, "little")
        return (
            _ad_structure(AD_TYPE_FLAGS, bytes((_FLAGS_LE_GENERAL_NO_BREDR,)))
            + _ad_structure(AD_TYPE_SERVICE_UUIDS_16, uuid_le)
            + _ad_structure(AD_TYPE_SERVICE_DATA_16, uuid_le + self.service_payload())
        )


Beacon = IBeacon | EddystoneUid


def parse_ibeacon(payload: bytes) -> IBeacon | None:
    """Apple manufacturer data (after the company id) -> :class:`IBeacon`; ``None`` for other Apple payloads.

    Raises :class:`ProtocolError` for an iBeacon (type 0x02) whose length byte or size is wrong.
    """
    data = bytes(payload)
    if not data or data[0] != IBEACON_TYPE:
        return None
    if len(data) < 2 or data[1] != IBEACON_LENGTH:
        raise ProtocolError(f"iBeacon length byte must be 0x15, got {data[1:2].hex() or 'nothing'}")
    if len(data) != 2 + IBEACON_LENGTH:
        raise ProtocolError(f"iBeacon payload must be {2 + IBEACON_LENGTH} bytes, got {len(data)}")
    return IBeacon(
        uuid=uuid.UUID(bytes=data[2:18]),
        major=int.from_bytes(data[18:20], "big"),
        minor=int.from_bytes(data[20:22], "big"),
        measured_power=_signed(data[22]),
    )


def parse_eddystone(payload: bytes) -> EddystoneUid | None:
    """Eddystone service data (after the 0xFEAA UUID) -> :class:`EddystoneUid`; ``None`` for URL, TLM, EID frames.

    Raises :class:`ProtocolError` for an empty frame or a UID frame that is not 18 or 20 bytes.
    """
    data = bytes(payload)
    if not data:
        raise ProtocolError("Eddystone service data is empty (no frame type)")
    if data[0] != EDDYSTONE_UID_FRAME:
        return None
    if len(data) not in (_EDDYSTONE_UID_LEN, _EDDYSTONE_UID_LEN + len(_EDDYSTONE_RFU)):
        raise ProtocolError(f"Eddystone-UID frame must be 18 or 20 bytes, got {len(data)}")
    return EddystoneUid(tx_power=_signed(data[1]), namespace=data[2:12], instance=data[12:18])


def parse_ad_structures(data: bytes) -> list[tuple[int, bytes]]:
    """Split an advertising PDU payload into ``(AD type, value)`` pairs (Core Vol 3 Part C 11).

    A zero length byte ends the significant part (the rest is padding). A structure running past the end raises
    :class:`ProtocolError`.
    """
    data = bytes(data)
    structures: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        length = data[offset]
        if length == 0:
            break
        end = offset + 1 + length
        if end > len(data):
            raise ProtocolError(f"AD structure at offset {offset} needs {length} bytes, {len(data) - offset - 1} left")
        structures.append((data[offset + 1], data[offset + 2 : end]))
        offset = end
    return structures


def beacon_from_fields(manufacturer_data: Mapping[int, bytes], service_data: Mapping[str, bytes]) -> Beacon | None:
    """The beacon in an advertisement already split into fields, keyed as bleak keys them (company id; 128-bit
    lower-case service UUID string). iBeacon is tried first; ``None`` when neither format is present."""
    apple = manufacturer_data.get(APPLE_COMPANY_ID)
    if apple is not None:
        found = parse_ibeacon(apple)
        if found is not None:
            return found
    eddystone = service_data.get(EDDYSTONE_SERVICE_UUID_STR)
    if eddystone is not None:
        return parse_eddystone(eddystone)
    return None


def beacon_in_advertising(data: bytes) -> Beacon | None:
    """The beacon in a raw advertising PDU payload (or scan response), or ``None``."""
    manufacturer: dict[int, bytes] = {}
    services: dict[str, bytes] = {}
    for ad_type, value in parse_ad_structures(data):
        if ad_type == AD_TYPE_MANUFACTURER_DATA:
            if len(value) < 2:
                raise ProtocolError(f"manufacturer data needs a 2-byte company id, got {len(value)} bytes")
            manufacturer.setdefault(int.from_bytes(value[:2], "little"), value[2:])
        elif ad_type == AD_TYPE_SERVICE_DATA_16:
            if len(value) < 2:
                raise ProtocolError(f"service data needs a 2-byte UUID, got {len(value)} bytes")
            if int.from_bytes(value[:2], "little") == EDDYSTONE_SERVICE_UUID:
                services.setdefault(EDDYSTONE_SERVICE_UUID_STR, value[2:])
    return beacon_from_fields(manufacturer, services)

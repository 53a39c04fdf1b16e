"""The beacon codec (:mod:`protocols.beacons`): byte-exact vectors from the published formats, round trips, and
fuzzing in which only ``ProtocolError`` (or a ``None`` "not this kind of beacon") may come out.

Vectors are written by hand from Apple's Proximity Beacon Specification (iBeacon: company 0x004C, type 0x02,
length 0x15, UUID, major, minor, measured power) and Google's Eddystone-UID specification (service 0xFEAA,
frame 0x00, ranging data, 10-byte namespace, 6-byte instance, 2 RFU bytes); the UUID is Apple's AirLocate sample
UUID and the namespace and instance are the examples of the Eddystone documentation.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.beacons import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID_STR,
    EddystoneUid,
    IBeacon,
    beacon_from_fields,
    beacon_in_advertising,
    parse_ad_structures,
    parse_eddystone,
    parse_ibeacon,
)
from protocols.errors import ProtocolError

AIRLOCATE = uuid.UUID("E2C56DB5-DFFB-48D2-B060-D0F5A71096E0")

IBEACON = IBeacon(uuid=AIRLOCATE, major=1, minor=2, measured_power=-59)
IBEACON_PAYLOAD = bytes.fromhex("0215 E2C56DB5DFFB48D2B060D0F5A71096E0 0001 0002 C5")
IBEACON_AD = bytes.fromhex("020106 1AFF4C00") + IBEACON_PAYLOAD

EDDYSTONE = EddystoneUid(
    tx_power=-21, namespace=bytes.fromhex("EDD1EBEAC04E5DEFA017"), instance=bytes.fromhex("0BDB87539B67")
)
EDDYSTONE_PAYLOAD = bytes.fromhex("00 EB EDD1EBEAC04E5DEFA017 0BDB87539B67 0000")
EDDYSTONE_AD = bytes.fromhex("020106 0303AAFE 1716AAFE") + EDDYSTONE_PAYLOAD


# -- vectors ---------------------------------------------------------------------------------------------------------


def test_ibeacon_vector_encodes_byte_for_byte() -> None:
    assert IBEACON.manufacturer_payload() == IBEACON_PAYLOAD
    assert IBEACON.advertising_data() == IBEACON_AD
    assert len(IBEACON_AD) == 30


def test_ibeacon_vector_decodes() -> None:
    assert parse_ibeacon(IBEACON_PAYLOAD) == IBEACON
    assert beacon_in_advertising(IBEACON_AD) == IBEACON
    assert beacon_from_fields({APPLE_COMPANY_ID: IBEACON_PAYLOAD}, {}) == IBEACON


def test_ibeacon_extremes() -> None:
    top = IBeacon(uuid=uuid.UUID(int=(1 << 128) - 1), major=0xFFFF, minor=0, measured_power=127)
    assert top.manufacturer_payload() == bytes.fromhex("0215" + "FF" * 16 + "FFFF 0000 7F")
    low = IBeacon(uuid=uuid.UUID(int=0), major=0, minor=0xFFFF, measured_power=-128)
    assert low.manufacturer_payload()[-5:] == bytes.fromhex("0000 FFFF 80")
    assert parse_ibeacon(low.manufacturer_payload()) == low


def test_eddystone_vector_encodes_byte_for_byte() -> None:
    assert EDDYSTONE.service_payload() == EDDYSTONE_PAYLOAD
    assert EDDYSTONE.advertising_data() == EDDYSTONE_AD
    assert len(EDDYSTONE_AD) == 31  # exactly the legacy advertising maximum


def test_eddystone_vector_decodes_with_and_without_rfu() -> None:
    assert parse_eddystone(EDDYSTONE_PAYLOAD) == EDDYSTONE
    assert parse_eddystone(EDDYSTONE_PAYLOAD[:18]) == EDDYSTONE  # many beacons leave the RFU bytes out
    assert beacon_in_advertising(EDDYSTONE_AD) == EDDYSTONE
    assert beacon_from_fields({}, {EDDYSTONE_SERVICE_UUID_STR: EDDYSTONE_PAYLOAD}) == EDDYSTONE


# -- not ours: None ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes.fromhex("1005031C1A2B3C"),  # Apple "nearby info", not a beacon
        bytes.fromhex("12199A"),  # Apple Find My
    ],
)
def test_other_apple_payloads_are_not_ibeacons(payload: bytes) -> None:
    assert parse_ibeacon(payload) is None


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("10EB0367676C2E636F"),  # Eddystone-URL "https://goo.gl..."
        bytes.fromhex("20 00 0BB8 1000 00000001 00000002"),  # Eddystone-TLM
        bytes.fromhex("30EB") + bytes(8),  # Eddystone-EID
    ],
)
def test_other_eddystone_frames_are_not_uid(payload: bytes) -> None:
    assert parse_eddystone(payload) is None


def test_advertisement_without_beacon() -> None:
    esl_tag = bytes.fromhex("020106 03035718 0409455344")  # flags, ESL service UUID, name "ESL"
    assert beacon_in_advertising(esl_tag) is None
    assert beacon_from_fields({0x0059: b"\x01\x02"}, {"0000180f-0000-1000-8000-00805f9b34fb": b"\x64"}) is None


def test_ad_structures_stop_at_zero_length_padding() -> None:
    assert parse_ad_structures(IBEACON_AD + bytes(1)) == parse_ad_structures(IBEACON_AD)
    assert parse_ad_structures(bytes.fromhex("020106 00 FFFF")) == [(0x01, b"\x06")]
    assert parse_ad_structures(b"") == []


# -- malformed: ProtocolError ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("02"),  # type only
        bytes.fromhex("0214") + IBEACON_PAYLOAD[2:],  # wrong length byte
        IBEACON_PAYLOAD[:-1],  # one byte short
        IBEACON_PAYLOAD + b"\x00",  # one byte long
    ],
)
def test_malformed_ibeacon(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_ibeacon(payload)


@pytest.mark.parametrize("payload", [b"", EDDYSTONE_PAYLOAD[:17], EDDYSTONE_PAYLOAD[:19], EDDYSTONE_PAYLOAD + b"\x00"])
def test_malformed_eddystone(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_eddystone(payload)


@pytest.mark.parametrize(
    "data",
    [
        IBEACON_AD[:-1],  # the manufacturer data runs past the end
        bytes.fromhex("02FF4C"),  # manufacturer data with a one-byte company id
        bytes.fromhex("0216AA"),  # service data with a one-byte UUID
    ],
)
def test_malformed_advertising(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        beacon_in_advertising(data)


@pytest.mark.parametrize(
    "build",
    [
        lambda: IBeacon(uuid=AIRLOCATE, major=0x10000, minor=0, measured_power=0),
        lambda: IBeacon(uuid=AIRLOCATE, major=0, minor=-1, measured_power=0),
        lambda: IBeacon(uuid=AIRLOCATE, major=0, minor=0, measured_power=128),
        lambda: IBeacon(uuid=AIRLOCATE, major=True, minor=0, measured_power=0),
        lambda: IBeacon(uuid=str(AIRLOCATE), major=0, minor=0, measured_power=0),  # type: ignore[arg-type]
        lambda: EddystoneUid(tx_power=0, namespace=bytes(9), instance=bytes(6)),
        lambda: EddystoneUid(tx_power=0, namespace=bytes(10), instance=bytes(7)),
        lambda: EddystoneUid(tx_power=-129, namespace=bytes(10), instance=bytes(6)),
    ],
)
def test_constructors_check_their_fields(build: object) -> None:
    with pytest.raises(ProtocolError):
        build()  # type: ignore[operator]


# -- round trips and fuzz ----------------------------------------------------------------------------------------------

ibeacons = st.builds(
    IBeacon,
    uuid=st.uuids(),
    major=st.integers(0, 0xFFFF),
    minor=st.integers(0, 0xFFFF),
    measured_power=st.integers(-128, 127),
)
eddystones = st.builds(
    EddystoneUid,
    tx_power=st.integers(-128, 127),
    namespace=st.binary(min_size=10, max_size=10),
    instance=st.binary(min_size=6, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(ibeacons)
def test_ibeacon_round_trip(beacon: IBeacon) -> None:
    assert parse_ibeacon(beacon.manufacturer_payload()) == beacon
    assert beacon_in_advertising(beacon.advertising_data()) == beacon


@settings(max_examples=300, deadline=None)
@given(eddystones)
def test_eddystone_round_trip(beacon: EddystoneUid) -> None:
    assert parse_eddystone(beacon.service_payload()) == beacon
    assert beacon_in_advertising(beacon.advertising_data()) == beacon


def _decodes_or_protocol_error(parse: object, data: bytes) -> object:
    try:
        return parse(data)  # type: ignore[operator]
    except ProtocolError:
        return None


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    for parse in (parse_ibeacon, parse_eddystone, parse_ad_structures, beacon_in_advertising):
        _decodes_or_protocol_error(parse, data)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=30), st.binary(max_size=30))
def test_fuzz_framed_payloads(ibeacon_body: bytes, eddystone_body: bytes) -> None:
    """Random contents behind the right type bytes, so the deeper checks are reached; whatever decodes must
    re-encode to a payload that decodes to the same beacon."""
    for payload in (b"\x02\x15" + ibeacon_body, b"\x02" + ibeacon_body):
        found = _decodes_or_protocol_error(parse_ibeacon, payload)
        if isinstance(found, IBeacon):
            assert found.manufacturer_payload() == payload
    for payload in (b"\x00" + eddystone_body, eddystone_body):
        eddystone = _decodes_or_protocol_error(parse_eddystone, payload)
        if isinstance(eddystone, EddystoneUid):
            assert parse_eddystone(eddystone.service_payload()) == eddystone


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0x01, 0x03, 0x09, 0x16, 0xFF]), st.binary(max_size=26)), max_size=4),
    st.booleans(),
)
def test_fuzz_ad_structure_lists(structures: list[tuple[int, bytes]], with_beacon: bool) -> None:
    """Well-formed AD structure lists with random values (some of them behind Apple's id or the Eddystone UUID)."""
    prefixes = {0xFF: b"\x4c\x00" if with_beacon else b"\x59\x00", 0x16: b"\xaa\xfe"}
    values = [(ad_type, prefixes.get(ad_type, b"") + value) for ad_type, value in structures]
    data = b"".join(bytes((len(value) + 1, ad_type)) + value for ad_type, value in values)
    assert parse_ad_structures(data) == values  # a well-formed list always splits
    _decodes_or_protocol_error(beacon_in_advertising, data)

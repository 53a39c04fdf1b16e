"""ESL characteristic values and PAwR sync packets / response slots: byte-exact vectors, limits, round trips.

Vectors: a sync packet (plaintext and EAD, computed with the Core Specification Supplement's EAD sample key, IV and
randomizer), and values built by hand from the ESL Service 1.0 layouts (display, image, sensor, LED information,
address, absolute time). The response-slot EAD vector is computed with the same key and
randomizer (not from a spec table) and pins the response framing.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.esl import (
    MAX_ESL_PAYLOAD,
    BasicState,
    BasicStateFlags,
    Command,
    CurrentAbsoluteTime,
    DisplayImage,
    DisplayInfo,
    DisplayInformation,
    DisplayState,
    DisplayType,
    EadError,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    EslCharacteristic,
    ImageInformation,
    KeyMaterial,
    LedControl,
    LedInfo,
    LedInformation,
    LedState,
    LedType,
    MeshSensor,
    PayloadTooLargeError,
    Ping,
    RefreshDisplay,
    Response,
    SensorInformation,
    SensorValue,
    SlotOutcome,
    SyncPacket,
    UnknownOpcodeError,
    UpdateComplete,
    VendorResponse,
    VendorSensor,
    build_sync_packets,
    decode_characteristic,
    decode_esl_address,
    decode_slot_response,
    encode_response_payload,
    encode_slot_response,
    parse_response_slots,
)
from tests.test_esl_fuzz import commands, key_materials, responses

SYNC_KEY = KeyMaterial(bytes.fromhex("57A9DA12D12E6E131E20612AD10A6A19"), bytes.fromhex("9E7A00EFB17AE746"))
RANDOMIZER = bytes.fromhex("18E157CADE")


def _led(esl_id: int) -> LedControl:
    return LedControl(esl_id, 0, 3, 0, 0, 3, 0xFF, 10, 10, 0, 3)


# --------------------------------------------------------------------------------------------------------------------
# Characteristic values (ESL Service 1.0)

CHARACTERISTIC_VECTORS = [
    (EslCharacteristic.ESL_ADDRESS, EslAddress(3, 7), "07 03"),
    (EslCharacteristic.ESL_ADDRESS, EslAddress(127, 0xFF), "ff 7f"),
    (
        EslCharacteristic.AP_SYNC_KEY_MATERIAL,
        SYNC_KEY,
        "57A9DA12D12E6E131E20612AD10A6A19 9E7A00EFB17AE746",
    ),
    (EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, CurrentAbsoluteTime(0x12345678), "78 56 34 12"),
    (EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, CurrentAbsoluteTime(0), "00 00 00 00"),  # SiLabs test time
    (
        EslCharacteristic.ESL_DISPLAY_INFORMATION,
        DisplayInformation((DisplayInfo(296, 128, DisplayType.RED_BLACK_WHITE),)),
        "28 01 80 00 06",
    ),
    (
        EslCharacteristic.ESL_DISPLAY_INFORMATION,
        DisplayInformation((DisplayInfo(200, 200, DisplayType.BLACK_WHITE), DisplayInfo(800, 480, 0x42))),
        "c8 00 c8 00 01 20 03 e0 01 42",
    ),
    (EslCharacteristic.ESL_IMAGE_INFORMATION, ImageInformation(3), "03"),
    (
        EslCharacteristic.ESL_SENSOR_INFORMATION,
        SensorInformation((MeshSensor(0x004D), VendorSensor(0x0059, 0x0102))),
        "00 4d 00 01 59 00 02 01",
    ),
    (
        EslCharacteristic.ESL_LED_INFORMATION,
        LedInformation((LedInfo(LedType.SRGB, 3, 3, 3), LedInfo(LedType.MONOCHROME, 0, 3, 0), LedInfo(2, 1, 2, 3))),
        "3f 4c b9",
    ),
]


@pytest.mark.parametrize(("uuid", "value", "hex_bytes"), CHARACTERISTIC_VECTORS)
def test_characteristic_vectors(uuid: EslCharacteristic, value: object, hex_bytes: str) -> None:
    wire = bytes.fromhex(hex_bytes)
    assert hasattr(value, "encode")
    assert value.encode() == wire
    decoded = decode_characteristic(uuid, wire)
    assert decoded == value
    assert type(decoded) is type(value)


def test_known_enum_values_decode_to_members() -> None:
    info = DisplayInformation.decode(bytes.fromhex("28 01 80 00 06 28 01 80 00 42"))
    assert info.displays[0].display_type is DisplayType.RED_BLACK_WHITE
    assert info.displays[1].display_type == 0x42
    assert not isinstance(info.displays[1].display_type, DisplayType)
    leds = LedInformation.decode(bytes.fromhex("3f 4c"))
    assert [led.led_type for led in leds.leds] == [LedType.SRGB, LedType.MONOCHROME]
    assert ImageInformation(3).image_count == 4


@pytest.mark.parametrize(
    ("uuid", "hex_bytes"),
    [
        (EslCharacteristic.ESL_ADDRESS, "07"),
        (EslCharacteristic.ESL_ADDRESS, "07 03 00"),
        (EslCharacteristic.ESL_ADDRESS, "07 83"),  # RFU bit 15
        (EslCharacteristic.AP_SYNC_KEY_MATERIAL, "00" * 23),
        (EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL, "00" * 25),
        (EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, "00 00 00"),
        (EslCharacteristic.ESL_DISPLAY_INFORMATION, ""),
        (EslCharacteristic.ESL_DISPLAY_INFORMATION, "28 01 80 00"),
        (EslCharacteristic.ESL_DISPLAY_INFORMATION, "28 01 80 00 06 28"),
        (EslCharacteristic.ESL_DISPLAY_INFORMATION, "28 01 80 00 06" * 103),  # > 512 bytes
        (EslCharacteristic.ESL_IMAGE_INFORMATION, ""),
        (EslCharacteristic.ESL_IMAGE_INFORMATION, "03 00"),
        (EslCharacteristic.ESL_SENSOR_INFORMATION, ""),
        (EslCharacteristic.ESL_SENSOR_INFORMATION, "02 4d 00"),  # size field 2 is undefined
        (EslCharacteristic.ESL_SENSOR_INFORMATION, "00 4d"),
        (EslCharacteristic.ESL_SENSOR_INFORMATION, "00 4d 00 01 59 00 02"),
        (EslCharacteristic.ESL_LED_INFORMATION, ""),
        (EslCharacteristic.ESL_LED_INFORMATION, "3f" * 257),
        (EslCharacteristic.ESL_CONTROL_POINT, "00 07"),  # not a stored value
        (0x2A00, "00"),
    ],
)
def test_malformed_characteristic_values(uuid: int, hex_bytes: str) -> None:
    with pytest.raises(ProtocolError):
        decode_characteristic(uuid, bytes.fromhex(hex_bytes))


def test_decode_esl_address_needs_exactly_two_bytes() -> None:
    assert decode_esl_address(b"\x07\x03") == EslAddress(3, 7)
    with pytest.raises(ProtocolError):
        decode_esl_address(b"\x07\x03\x00")


@pytest.mark.parametrize(
    "build",
    [
        lambda: DisplayInformation(()),
        lambda: DisplayInfo(1 << 16, 1, 1),
        lambda: DisplayInfo(1, 1, 256),
        lambda: ImageInformation(256),
        lambda: SensorInformation(()),
        lambda: MeshSensor(-1),
        lambda: VendorSensor(0, 1 << 16),
        lambda: LedInformation(()),
        lambda: LedInformation((LedInfo(0, 0, 0, 0),) * 257),
        lambda: LedInfo(4, 0, 0, 0),
        lambda: LedInfo(0, 0, 4, 0),
        lambda: CurrentAbsoluteTime(1 << 32),
        lambda: KeyMaterial(bytes(15), bytes(8)),
        lambda: KeyMaterial(bytes(16), bytes(9)),
    ],
)
def test_invalid_values_rejected(build: object) -> None:
    assert callable(build)
    with pytest.raises(ProtocolError):
        build()


_u16 = st.integers(0, 0xFFFF)
_display_information = st.builds(
    DisplayInformation,
    st.lists(st.builds(DisplayInfo, _u16, _u16, st.integers(0, 255)), min_size=1, max_size=102).map(tuple),
)
_sensor_information = st.builds(
    SensorInformation,
    st.lists(st.one_of(st.builds(MeshSensor, _u16), st.builds(VendorSensor, _u16, _u16)), min_size=1, max_size=102).map(
        tuple
    ),
)
_level = st.integers(0, 3)
_led_information = st.builds(
    LedInformation, st.lists(st.builds(LedInfo, _level, _level, _level, _level), min_size=1, max_size=256).map(tuple)
)
_characteristic_values = st.one_of(
    st.tuples(st.just(EslCharacteristic.ESL_DISPLAY_INFORMATION), _display_information),
    st.tuples(st.just(EslCharacteristic.ESL_SENSOR_INFORMATION), _sensor_information),
    st.tuples(st.just(EslCharacteristic.ESL_LED_INFORMATION), _led_information),
    st.tuples(st.just(EslCharacteristic.ESL_IMAGE_INFORMATION), st.builds(ImageInformation, st.integers(0, 255))),
    st.tuples(
        st.just(EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME), st.builds(CurrentAbsoluteTime, st.integers(0, 2**32 - 1))
    ),
    st.tuples(st.just(EslCharacteristic.ESL_ADDRESS), st.builds(EslAddress, st.integers(0, 127), st.integers(0, 255))),
    st.tuples(st.just(EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL), key_materials),
)


@settings(max_examples=400, deadline=None)
@given(_characteristic_values)
def test_characteristic_round_trip(uuid_and_value: tuple[EslCharacteristic, object]) -> None:
    uuid, value = uuid_and_value
    assert hasattr(value, "encode")
    wire = value.encode()
    assert len(wire) <= 512
    assert decode_characteristic(uuid, wire) == value


# --------------------------------------------------------------------------------------------------------------------
# Sync packets (ESL Profile 1.0 PAwR; vector computed with the EAD sample key)

SYNC_PACKET = SyncPacket(3, (Ping(7), DisplayImage(8, 0, 1)))
SYNC_PLAINTEXT_AD = "08 34 03 00 07 20 08 00 01"
SYNC_EAD = "133118E157CADE73D98CC7B403BB08648FB5ED77"


def test_sync_packet_vector() -> None:
    assert SYNC_PACKET.payload() == bytes.fromhex("03 00 07 20 08 00 01")
    assert SYNC_PACKET.encode_ad() == bytes.fromhex(SYNC_PLAINTEXT_AD)
    assert SYNC_PACKET.encode() == bytes.fromhex(SYNC_PLAINTEXT_AD)
    assert SYNC_PACKET.encode(SYNC_KEY, RANDOMIZER) == bytes.fromhex(SYNC_EAD)
    assert SyncPacket.decode(bytes.fromhex(SYNC_EAD), SYNC_KEY) == SYNC_PACKET
    assert SyncPacket.decode(bytes.fromhex(SYNC_PLAINTEXT_AD)) == SYNC_PACKET


def test_sync_packet_key_and_randomizer_go_together() -> None:
    with pytest.raises(ProtocolError, match="randomizer"):
        SYNC_PACKET.encode(SYNC_KEY)
    with pytest.raises(ProtocolError, match="without a key"):
        SYNC_PACKET.encode(randomizer=RANDOMIZER)


@pytest.mark.parametrize(
    ("hex_bytes", "error"),
    [
        ("", ProtocolError),
        ("01 34", ProtocolError),
        ("08 34 03 00 07 20 08 00", ProtocolError),  # length byte says 8, 7 follow
        ("08 16 03 00 07 20 08 00 01", ProtocolError),  # AD type 0x16 (service data), not ESL
        ("07 34 03 00 07 20 08 00", ProtocolError),  # Display Image cut short
        ("07 34 03 30 07 00 00 00", UnknownOpcodeError),
        ("05 34 83 00 07 00", ProtocolError),  # group 0x83 has the RFU bit set
        ("32 34 03" + " 00 07" * 24, PayloadTooLargeError),  # 49-byte payload
    ],
)
def test_malformed_sync_packets(hex_bytes: str, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        SyncPacket.decode(bytes.fromhex(hex_bytes))


def test_encrypted_sync_packet_under_the_wrong_key() -> None:
    with pytest.raises(EadError):
        SyncPacket.decode(bytes.fromhex(SYNC_EAD), KeyMaterial(bytes(16), SYNC_KEY.iv))
    with pytest.raises(EadError):  # a plaintext packet is not an EAD structure
        SyncPacket.decode(bytes.fromhex(SYNC_PLAINTEXT_AD), SYNC_KEY)


def test_48_byte_payload_limit() -> None:
    # group byte + 23 Pings = 47 bytes; + one 1-byte-longer TLV makes 48 (fits), any more does not.
    fits = SyncPacket(5, (*(Ping(i) for i in range(22)), RefreshDisplay(22, 0)))
    assert len(fits.payload()) == 1 + 22 * 2 + 3 == MAX_ESL_PAYLOAD
    assert SyncPacket.decode(fits.encode(SYNC_KEY, RANDOMIZER), SYNC_KEY) == fits
    with pytest.raises(PayloadTooLargeError, match="49-byte"):
        SyncPacket(5, (*(Ping(i) for i in range(22)), DisplayImage(22, 0, 0)))
    with pytest.raises(PayloadTooLargeError):
        SyncPacket(5, tuple(_led(i) for i in range(4)))  # 1 + 4 * 13 = 53
    assert len(SyncPacket(5, tuple(_led(i) for i in range(3))).payload()) == 40


def test_build_splits_at_48_bytes_in_order() -> None:
    commands = [_led(i) for i in range(10)]
    packets = build_sync_packets(9, commands)
    assert [len(packet.commands) for packet in packets] == [3, 3, 3, 1]
    assert [command for packet in packets for command in packet.commands] == commands
    assert all(packet.group_id == 9 for packet in packets)
    assert build_sync_packets(9, []) == []


def test_build_respects_max_commands() -> None:
    packets = build_sync_packets(1, [Ping(i) for i in range(12)], max_commands=5)
    assert [len(packet.commands) for packet in packets] == [5, 5, 2]
    with pytest.raises(ProtocolError):
        build_sync_packets(1, [Ping(1)], max_commands=0)


def test_invalid_sync_packets_rejected() -> None:
    with pytest.raises(ProtocolError):
        SyncPacket(128, ())
    with pytest.raises(ProtocolError):
        SyncPacket(1, [Ping(1)])  # type: ignore[arg-type]


def test_response_slots_follow_the_last_unicast_tlv() -> None:
    packet = SyncPacket(
        2, (Ping(7), Ping(0xFF), DisplayImage(8, 0, 1), RefreshDisplay(7, 0), UpdateComplete(0xFF), Ping(9))
    )
    assert packet.response_slots() == {2: EslAddress(2, 8), 3: EslAddress(2, 7), 5: EslAddress(2, 9)}
    assert SyncPacket(2, (Ping(0xFF),)).response_slots() == {}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 127), st.lists(commands, max_size=40), key_materials, st.binary(min_size=5, max_size=5))
def test_build_and_round_trip(group_id: int, command_list: list[Command], key: KeyMaterial, randomizer: bytes) -> None:
    packets = build_sync_packets(group_id, command_list)
    assert [command for packet in packets for command in packet.commands] == command_list
    for index, packet in enumerate(packets):
        assert len(packet.payload()) <= MAX_ESL_PAYLOAD
        if index + 1 < len(packets):  # greedy: the next packet's first command did not fit here
            assert len(packet.payload()) + len(packets[index + 1].commands[0].encode()) > MAX_ESL_PAYLOAD
        assert SyncPacket.decode(packet.encode(key, randomizer), key) == packet
        assert SyncPacket.decode(packet.encode()) == packet


# --------------------------------------------------------------------------------------------------------------------
# Response slots

RESPONSE_KEY = KeyMaterial(bytes(range(16)), bytes(range(16, 24)))
SYNCHRONIZED = BasicState(BasicStateFlags.SYNCHRONIZED)


def test_slot_response_vector() -> None:
    answer: list[Response] = [SYNCHRONIZED, DisplayState(0, 1)]
    assert encode_slot_response(answer) == bytes.fromhex("07 34 10 02 00 11 00 01")
    sealed = bytes.fromhex("123118E157CADE7CD99FC5B332B3093008A864")
    assert encode_slot_response(answer, SYNC_KEY, RANDOMIZER) == sealed
    assert decode_slot_response(sealed, SYNC_KEY) == tuple(answer)


def test_response_payload_capacity_limit() -> None:
    big = SensorValue(0, bytes(15))  # 17 bytes
    capacity = ErrorResponse(ErrorCode.CAPACITY_LIMIT).encode()
    assert encode_response_payload([big, big, big]) == big.encode() * 2 + capacity
    # 17 + 17 + 13 = 47 bytes: a 2-byte TLV more would not fit, nor would 00 07, so the 13-byte one goes too.
    medium = SensorValue(1, bytes(11))
    assert encode_response_payload([big, big, medium, LedState(0)]) == big.encode() * 2 + capacity
    exactly = [LedState(i) for i in range(24)]  # 48 bytes fit
    assert encode_response_payload(exactly) == b"".join(r.encode() for r in exactly)
    assert encode_response_payload([*exactly, LedState(24)])[-2:] == capacity
    with pytest.raises(ProtocolError):
        encode_response_payload([])


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "02 34 10",  # no TLV fits in one byte
        "04 34 10 02",  # length byte lies
        "04 35 10 02 00",  # not the ESL AD type
        "04 34 20 02 00",  # unknown response opcode
        "05 34 10 02 00 11",  # truncated Display State
        "02 34",
    ],
)
def test_malformed_slot_responses(hex_bytes: str) -> None:
    with pytest.raises(ProtocolError):
        decode_slot_response(bytes.fromhex(hex_bytes))


def test_parse_response_slots_reports_every_tag() -> None:
    packet = SyncPacket(4, (Ping(7), Ping(0xFF), DisplayImage(8, 0, 1), RefreshDisplay(7, 0), Ping(9), Ping(10)))
    keys = {
        EslAddress(4, 7): RESPONSE_KEY,
        EslAddress(4, 8): SYNC_KEY,
        EslAddress(4, 9): RESPONSE_KEY,
    }
    received = {
        3: encode_slot_response([SYNCHRONIZED, DisplayState(0, 0)], RESPONSE_KEY, RANDOMIZER),  # ESL 7
        2: encode_slot_response([DisplayState(0, 1)], RESPONSE_KEY, RANDOMIZER),  # ESL 8, under 7's key
        # slot 4 (ESL 9) missing
        5: encode_slot_response([SYNCHRONIZED], RESPONSE_KEY, RANDOMIZER),  # ESL 10: no key known
        1: b"\x00\x01\x02",  # the broadcast TLV gives no slot
    }
    results = parse_response_slots(packet, received, keys)
    assert [(r.slot, r.address, r.outcome) for r in results] == [
        (2, EslAddress(4, 8), SlotOutcome.MALFORMED),
        (3, EslAddress(4, 7), SlotOutcome.ANSWERED),
        (4, EslAddress(4, 9), SlotOutcome.MISSING),
        (5, EslAddress(4, 10), SlotOutcome.MALFORMED),
        (1, None, SlotOutcome.UNEXPECTED),
    ]
    assert results[1].responses == (SYNCHRONIZED, DisplayState(0, 0))
    assert isinstance(results[0].error, EadError)
    assert results[3].error is not None
    assert "no response key" in str(results[3].error)
    assert results[2].responses == ()
    assert results[2].error is None


def test_parse_plaintext_response_slots() -> None:
    packet = SyncPacket(0, (Ping(1),))
    results = parse_response_slots(packet, {0: encode_slot_response([VendorResponse(b"\x01")])}, None)
    assert results[0].outcome is SlotOutcome.ANSWERED
    assert results[0].responses == (VendorResponse(b"\x01"),)


@settings(max_examples=200, deadline=None)
@given(st.lists(responses, min_size=1, max_size=30), key_materials, st.binary(min_size=5, max_size=5))
def test_slot_response_round_trip(answer: list[Response], key: KeyMaterial, randomizer: bytes) -> None:
    payload = encode_response_payload(answer)
    assert 2 <= len(payload) <= MAX_ESL_PAYLOAD
    decoded = decode_slot_response(encode_slot_response(answer, key, randomizer), key)
    kept = len(decoded)
    if sum(len(response.encode()) for response in answer) <= MAX_ESL_PAYLOAD:
        assert list(decoded) == answer
    else:
        assert decoded[-1] == ErrorResponse(ErrorCode.CAPACITY_LIMIT)
        assert list(decoded[:-1]) == answer[: kept - 1]

"""ESL ECP codec: byte-exact vectors from the ESL Service 1.0 layouts, round trips, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.esl import (
    BasicState,
    BasicStateFlags,
    Command,
    DisplayImage,
    DisplayState,
    DisplayTimedImage,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    FactoryReset,
    LedControl,
    LedState,
    LedTimedControl,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorValue,
    ServiceReset,
    Unassociate,
    UnknownOpcodeError,
    UpdateComplete,
    VendorCommand,
    VendorResponse,
    decode_command,
    decode_commands,
    decode_response,
    decode_responses,
    tlv_length,
)

# The SiLabs default LED example: gamut 7f, pattern 76 ef 96 08 91, periods 07 06, repeats 14 00.
_SILABS_LED = LedControl(
    esl_id=7,
    led_index=0,
    red=3,
    green=3,
    blue=3,
    brightness=1,
    pattern=0x910896EF76,
    off_period=7,
    on_period=6,
    repeat_type=0,
    repeats_duration=10,
)

COMMAND_VECTORS: list[tuple[Command, str]] = [
    (Ping(7), "00 07"),
    (Unassociate(7), "01 07"),
    (ServiceReset(7), "02 07"),
    (FactoryReset(0x21), "03 21"),
    (UpdateComplete(0xFE), "04 fe"),
    (ReadSensorData(7, 2), "10 07 02"),
    (RefreshDisplay(7, 0), "11 07 00"),
    (DisplayImage(7, 0, 1), "20 07 00 01"),
    (DisplayTimedImage(7, 0, 1, 0x12345678), "60 07 00 01 78 56 34 12"),
    (DisplayTimedImage(7, 0, 1, 0), "60 07 00 01 00 00 00 00"),  # abs_time 0 deletes the queued image
    (_SILABS_LED, "b0 07 00 7f 76 ef 96 08 91 07 06 14 00"),
    (
        LedTimedControl(
            esl_id=9,
            led_index=1,
            red=1,
            green=2,
            blue=3,
            brightness=0,
            pattern=0xFF00FF00FF,
            off_period=0x10,
            on_period=0x20,
            repeat_type=1,
            repeats_duration=0x7FFF,
            abs_time=4_147_200_000,
        ),
        "f0 09 01 39 ff 00 ff 00 ff 10 20 ff ff 00 40 31 f7",
    ),
    (VendorCommand(7, b"\xaa"), "1f 07 aa"),  # SiLabs example opcode 0x1F
    (VendorCommand(7), "0f 07"),
    (VendorCommand(0xFF, bytes(range(15))), "ff ff 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e"),
]

RESPONSE_VECTORS: list[tuple[Response, str]] = [
    (BasicState(BasicStateFlags.SYNCHRONIZED), "10 02 00"),
    (DisplayState(0, 1), "11 00 01"),
    (ErrorResponse(ErrorCode.INVALID_OPCODE), "00 02"),
    (ErrorResponse(ErrorCode.IMPLAUSIBLE_ABSOLUTE_TIME), "00 0c"),
    (ErrorResponse(0xF3), "00 f3"),  # vendor-specific code
    (SensorValue(3, b"\xd0\xd1"), "2e 03 d0 d1"),  # 2 data bytes -> 2E
    (SensorValue(0, b""), "0e 00"),
    (LedState(2), "01 02"),
    (
        BasicState(
            BasicStateFlags.SERVICE_NEEDED | BasicStateFlags.ACTIVE_LED | BasicStateFlags.PENDING_DISPLAY_UPDATE
        ),
        "10 15 00",
    ),
    (BasicState(BasicStateFlags(0x8001)), "10 01 80"),  # RFU bits are kept
    (VendorResponse(b"\x01\x02"), "1f 01 02"),
    (VendorResponse(b"\x01"), "0f 01"),
]


@pytest.mark.parametrize(("command", "hex_bytes"), COMMAND_VECTORS)
def test_command_vectors(command: Command, hex_bytes: str) -> None:
    wire = bytes.fromhex(hex_bytes)
    assert command.encode() == wire
    assert len(wire) == tlv_length(wire[0]) <= 17
    assert decode_command(wire + b"\x99") == (command, b"\x99")


@pytest.mark.parametrize(("response", "hex_bytes"), RESPONSE_VECTORS)
def test_response_vectors(response: Response, hex_bytes: str) -> None:
    wire = bytes.fromhex(hex_bytes)
    assert response.encode() == wire
    assert len(wire) == tlv_length(wire[0])
    assert decode_response(wire) == (response, b"")


def test_led_fields() -> None:
    assert _SILABS_LED.color_brightness == 0x7F
    decoded, _ = decode_command(bytes.fromhex("b0 07 00 7f 76 ef 96 08 91 07 06 15 00"))
    assert isinstance(decoded, LedControl)
    assert (decoded.repeat_type, decoded.repeats_duration) == (1, 10)


def test_error_code_decodes_to_enum() -> None:
    response, _ = decode_response(b"\x00\x0a")
    assert isinstance(response, ErrorResponse)
    assert response.code is ErrorCode.RETRY
    assert response.error is ErrorCode.RETRY
    assert ErrorResponse(0xF0).error is None


def test_basic_state_flags() -> None:
    response, _ = decode_response(bytes.fromhex("10 02 00"))
    assert isinstance(response, BasicState)
    assert BasicStateFlags.SYNCHRONIZED in response.flags
    assert BasicStateFlags.SERVICE_NEEDED not in response.flags


def test_concatenated_tlvs() -> None:
    # The sync packet vector of test_esl_info_sync.py carries Ping (ESL 7) + Display Image (ESL 8, display 0, image 1).
    assert decode_commands(bytes.fromhex("00 07 20 08 00 01")) == [Ping(7), DisplayImage(8, 0, 1)]
    assert decode_responses(bytes.fromhex("10 02 00 11 00 01")) == [
        BasicState(BasicStateFlags.SYNCHRONIZED),
        DisplayState(0, 1),
    ]


def test_unknown_opcode_reports_length() -> None:
    with pytest.raises(UnknownOpcodeError) as info:
        decode_command(bytes.fromhex("30 07 00 00 00"))
    assert info.value.opcode == 0x30
    assert info.value.length == 5
    # A known tag nibble with a wrong length nibble is not that command.
    with pytest.raises(UnknownOpcodeError):
        decode_command(bytes.fromhex("21 07 00 01"))
    with pytest.raises(UnknownOpcodeError):
        decode_response(bytes.fromhex("20 00 01 02"))


@pytest.mark.parametrize("hex_bytes", ["", "00", "20 07 00", "b0 07 00 7f", "2e 03 d0"])
def test_truncated(hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    with pytest.raises(ProtocolError):
        decode_command(data)
    if len(data) != 2:
        with pytest.raises(ProtocolError):
            decode_response(data)


def test_address() -> None:
    address = EslAddress(group_id=3, esl_id=7)
    assert address.encode() == bytes.fromhex("07 03")
    assert address.to_int() == 0x0307
    assert EslAddress.decode(bytes.fromhex("07 03 ff")) == (address, b"\xff")
    broadcast = EslAddress(127, 0xFF)
    assert broadcast.is_broadcast
    assert broadcast.encode() == bytes.fromhex("ff 7f")
    assert str(broadcast) == "127/*"
    with pytest.raises(ProtocolError, match="RFU"):
        EslAddress.decode(bytes.fromhex("07 83"))
    with pytest.raises(ProtocolError):
        EslAddress.decode(b"\x07")
    with pytest.raises(ProtocolError):
        EslAddress(128, 0)
    with pytest.raises(ProtocolError):
        EslAddress(0, 256)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Ping(256),
        lambda: Ping(-1),
        lambda: DisplayTimedImage(1, 0, 0, 1 << 32),
        lambda: VendorCommand(1, bytes(16)),
        lambda: SensorValue(0, bytes(16)),
        lambda: VendorResponse(b""),
        lambda: ErrorResponse(256),
        lambda: LedControl(1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0),
        lambda: LedControl(1, 0, 0, 0, 0, 0, 1 << 40, 0, 0, 0, 0),
        lambda: LedControl(1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0),
        lambda: LedControl(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x8000),
    ],
)
def test_invalid_fields_rejected(build: object) -> None:
    assert callable(build)
    with pytest.raises(ProtocolError):
        build()


_u8 = st.integers(0, 255)
_led_args = (
    _u8,
    _u8,
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, (1 << 40) - 1),
    _u8,
    _u8,
    st.integers(0, 1),
    st.integers(0, 0x7FFF),
)
_commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(Ping, _u8),
    st.builds(Unassociate, _u8),
    st.builds(ServiceReset, _u8),
    st.builds(FactoryReset, _u8),
    st.builds(UpdateComplete, _u8),
    st.builds(ReadSensorData, _u8, _u8),
    st.builds(RefreshDisplay, _u8, _u8),
    st.builds(DisplayImage, _u8, _u8, _u8),
    st.builds(DisplayTimedImage, _u8, _u8, _u8, st.integers(0, 2**32 - 1)),
    st.builds(LedControl, *_led_args),
    st.builds(LedTimedControl, *_led_args, st.integers(0, 2**32 - 1)),
    st.builds(VendorCommand, _u8, st.binary(max_size=15)),
)
_responses: st.SearchStrategy[Response] = st.one_of(
    st.builds(ErrorResponse, _u8),
    st.builds(LedState, _u8),
    st.builds(BasicState, st.integers(0, 0xFFFF).map(BasicStateFlags)),
    st.builds(DisplayState, _u8, _u8),
    st.builds(SensorValue, _u8, st.binary(max_size=15)),
    st.builds(VendorResponse, st.binary(min_size=1, max_size=16)),
)


@given(st.lists(_commands, max_size=5))
def test_command_round_trip(commands: list[Command]) -> None:
    wire = b"".join(command.encode() for command in commands)
    assert all(len(command.encode()) <= 17 for command in commands)
    assert decode_commands(wire) == commands


@given(st.lists(_responses, max_size=5))
def test_response_round_trip(responses: list[Response]) -> None:
    wire = b"".join(response.encode() for response in responses)
    assert decode_responses(wire) == responses


@settings(max_examples=2000)
@given(st.binary(max_size=40))
def test_decoding_arbitrary_bytes_raises_only_protocol_error(data: bytes) -> None:
    for decode in (decode_command, decode_response):
        try:
            tlv, rest = decode(data)
        except ProtocolError:
            continue
        # Anything that decodes re-encodes to exactly the bytes it consumed.
        assert tlv.encode() + rest == data


@given(st.integers(0, 0xFFFF))
def test_address_int_round_trip(value: int) -> None:
    try:
        address = EslAddress.from_int(value)
    except ProtocolError:
        assert value & 0x8000
        return
    assert address.to_int() == value
    assert EslAddress.decode(address.encode()) == (address, b"")

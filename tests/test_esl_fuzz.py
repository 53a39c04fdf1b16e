"""Fuzzing every ESL decoder: for any bytes, a decoder returns a value or raises ProtocolError, nothing else.

Covers the Bluetooth side of :mod:`protocols.esl`: the ECP commands, responses and addresses, EAD, characteristic
values, sync packets, response slots. Random bytes alone rarely get past a length byte or an AES-CCM MIC, so the
deeper layers are also fed well-framed or validly encrypted containers around random contents. Where something
decodes, it must also re-encode to the bytes it came from. Every ECP command and response type also gets its own
encode -> decode round trip.

Issue 5 asks for at least 10,000 fuzz cases in CI: the ``max_examples`` below add up to 10,650, plus 1,080 round
trips, and the file runs in well under 30 s on two cores. The strategies at the top are shared with
``tests/test_esl_info_sync.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.esl import (
    EAD_AD_TYPE,
    ESL_AD_TYPE,
    BasicState,
    BasicStateFlags,
    Command,
    CurrentAbsoluteTime,
    DisplayImage,
    DisplayInformation,
    DisplayState,
    DisplayTimedImage,
    ErrorResponse,
    EslAddress,
    EslCharacteristic,
    FactoryReset,
    ImageInformation,
    KeyMaterial,
    LedControl,
    LedInformation,
    LedState,
    LedTimedControl,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorInformation,
    SensorValue,
    ServiceReset,
    SyncPacket,
    Unassociate,
    UpdateComplete,
    VendorCommand,
    VendorResponse,
    decode_characteristic,
    decode_command,
    decode_commands,
    decode_esl_address,
    decode_response,
    decode_responses,
    decode_slot_response,
    ead_decrypt,
    ead_encrypt,
    parse_response_slots,
)

# --------------------------------------------------------------------------------------------------------------------
# Strategies (also used by test_esl_info_sync.py)

_u8 = st.integers(0, 0xFF)
_u32 = st.integers(0, 0xFFFF_FFFF)
_level = st.integers(0, 3)
_led_fields = (
    _u8,  # esl_id
    _u8,  # led_index
    _level,  # red
    _level,  # green
    _level,  # blue
    _level,  # brightness
    st.integers(0, (1 << 40) - 1),  # pattern
    _u8,  # off_period
    _u8,  # on_period
    st.integers(0, 1),  # repeat_type
    st.integers(0, 0x7FFF),  # repeats_duration
)

COMMAND_STRATEGIES: dict[type, st.SearchStrategy[Command]] = {
    Ping: st.builds(Ping, _u8),
    Unassociate: st.builds(Unassociate, _u8),
    ServiceReset: st.builds(ServiceReset, _u8),
    FactoryReset: st.builds(FactoryReset, _u8),
    UpdateComplete: st.builds(UpdateComplete, _u8),
    ReadSensorData: st.builds(ReadSensorData, _u8, _u8),
    RefreshDisplay: st.builds(RefreshDisplay, _u8, _u8),
    DisplayImage: st.builds(DisplayImage, _u8, _u8, _u8),
    DisplayTimedImage: st.builds(DisplayTimedImage, _u8, _u8, _u8, _u32),
    LedControl: st.builds(LedControl, *_led_fields),
    LedTimedControl: st.builds(LedTimedControl, *_led_fields, _u32),
    VendorCommand: st.builds(VendorCommand, _u8, st.binary(max_size=15)),
}
RESPONSE_STRATEGIES: dict[type, st.SearchStrategy[Response]] = {
    ErrorResponse: st.builds(ErrorResponse, _u8),
    LedState: st.builds(LedState, _u8),
    BasicState: st.builds(BasicState, st.integers(0, 0xFFFF).map(BasicStateFlags)),
    DisplayState: st.builds(DisplayState, _u8, _u8),
    SensorValue: st.builds(SensorValue, _u8, st.binary(max_size=15)),
    VendorResponse: st.builds(VendorResponse, st.binary(min_size=1, max_size=16)),
}
commands: st.SearchStrategy[Command] = st.one_of(*COMMAND_STRATEGIES.values())
responses: st.SearchStrategy[Response] = st.one_of(*RESPONSE_STRATEGIES.values())
key_materials: st.SearchStrategy[KeyMaterial] = st.builds(
    KeyMaterial, st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8)
)
_randomizers = st.binary(min_size=5, max_size=5)

_In = TypeVar("_In")
_Out = TypeVar("_Out")

FUZZ_KEY = KeyMaterial(bytes.fromhex("57A9DA12D12E6E131E20612AD10A6A19"), bytes.fromhex("9E7A00EFB17AE746"))


def _decode_or_none(decode: Callable[[_In], _Out], data: _In) -> _Out | None:
    """``decode(data)``, None on ProtocolError; any other exception propagates and fails the test."""
    try:
        return decode(data)
    except ProtocolError:
        return None


# --------------------------------------------------------------------------------------------------------------------
# Round trips: every ECP command and response type


def test_strategies_cover_every_tlv_type() -> None:
    assert set(COMMAND_STRATEGIES) == set(get_args(Command))
    assert set(RESPONSE_STRATEGIES) == set(get_args(Response))


@pytest.mark.parametrize("command_type", list(COMMAND_STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_command_round_trips(command_type: type, data: st.DataObject) -> None:
    command = data.draw(COMMAND_STRATEGIES[command_type])
    wire = command.encode()
    assert len(wire) <= 17
    assert decode_command(wire) == (command, b"")
    assert type(decode_command(wire)[0]) is command_type


@pytest.mark.parametrize("response_type", list(RESPONSE_STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_response_round_trips(response_type: type, data: st.DataObject) -> None:
    response = data.draw(RESPONSE_STRATEGIES[response_type])
    wire = response.encode()
    assert decode_response(wire) == (response, b"")
    assert type(decode_response(wire)[0]) is response_type


# --------------------------------------------------------------------------------------------------------------------
# ECP TLVs and addresses


@settings(max_examples=2500, deadline=None)
@given(st.binary(max_size=60))
def test_fuzz_ecp_decoders(data: bytes) -> None:
    for decode_one in (decode_command, decode_response):
        result = _decode_or_none(decode_one, data)
        if result is not None:
            tlv, rest = result
            assert tlv.encode() + rest == data
    decoded_commands = _decode_or_none(decode_commands, data)
    if decoded_commands is not None:
        assert b"".join(command.encode() for command in decoded_commands) == data
    decoded_responses = _decode_or_none(decode_responses, data)
    if decoded_responses is not None:
        assert b"".join(response.encode() for response in decoded_responses) == data


@settings(max_examples=500, deadline=None)
@given(st.lists(commands, min_size=1, max_size=3), st.data())
def test_fuzz_ecp_mutated_valid_commands(command_list: list[Command], data: st.DataObject) -> None:
    wire = bytearray(b"".join(command.encode() for command in command_list))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        wire[data.draw(st.integers(0, len(wire) - 1), label="index")] = data.draw(_u8, label="byte")
    cut = data.draw(st.integers(0, len(wire)), label="cut")
    for decode_all in (decode_commands, decode_responses):
        _decode_or_none(decode_all, bytes(wire[:cut]))


@settings(max_examples=500, deadline=None)
@given(st.integers(-(1 << 20), 1 << 20), st.binary(max_size=4))
def test_fuzz_esl_address(value: int, data: bytes) -> None:
    address = _decode_or_none(EslAddress.from_int, value)
    if address is not None:
        assert address.to_int() == value
    decoded = _decode_or_none(EslAddress.decode, data)
    if decoded is not None:
        assert decoded[0].encode() + decoded[1] == data
    single = _decode_or_none(decode_esl_address, data)
    if single is not None:
        assert single.encode() == data


# --------------------------------------------------------------------------------------------------------------------
# EAD


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=16), st.binary(max_size=8), st.binary(max_size=80), st.booleans())
def test_fuzz_ead_decrypt(key: bytes, iv: bytes, data: bytes, frame_it: bool) -> None:
    if frame_it and len(data) >= 2:
        data = bytes((len(data) - 1, EAD_AD_TYPE)) + data[2:]  # right length and type: the MIC must catch it
    _decode_or_none(lambda ead: ead_decrypt(key, iv, ead), data)
    _decode_or_none(FUZZ_KEY.decrypt, data)
    _decode_or_none(KeyMaterial.decode, data)


# --------------------------------------------------------------------------------------------------------------------
# Characteristic values (protocols.esl.info)

# Near the 512-byte ATT limit; drawn from a seeded RNG because hypothesis builds long binaries slowly.
_large_values = st.builds(lambda size, seed: random.Random(seed).randbytes(size), st.integers(500, 520), st.integers())

_INFO_DECODERS: list[Callable[[bytes], object]] = [
    DisplayInformation.decode,
    ImageInformation.decode,
    SensorInformation.decode,
    LedInformation.decode,
    CurrentAbsoluteTime.decode,
    KeyMaterial.decode,
    decode_esl_address,
]


_uuids = st.one_of(st.sampled_from(list(EslCharacteristic)), st.integers(0, 0xFFFF))


def _check_characteristic_decoders(uuid: int, data: bytes) -> None:
    value = _decode_or_none(lambda value: decode_characteristic(uuid, value), data)
    if value is not None:
        assert value.encode() == data
    for decode in _INFO_DECODERS:
        decoded = _decode_or_none(decode, data)
        if decoded is not None:
            assert hasattr(decoded, "encode")
            assert decoded.encode() == data


@settings(max_examples=2000, deadline=None)
@given(_uuids, st.binary(max_size=40))
def test_fuzz_characteristic_values(uuid: int, data: bytes) -> None:
    _check_characteristic_decoders(uuid, data)


@settings(max_examples=150, deadline=None)
@given(_uuids, _large_values)
def test_fuzz_large_characteristic_values(uuid: int, data: bytes) -> None:
    _check_characteristic_decoders(uuid, data)


# --------------------------------------------------------------------------------------------------------------------
# Sync packets and response slots (protocols.esl.sync)


def _esl_ad(payload: bytes) -> bytes:
    return bytes(((len(payload) + 1) & 0xFF, ESL_AD_TYPE)) + payload


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=60), st.booleans())
def test_fuzz_plaintext_sync_and_response(data: bytes, frame_it: bool) -> None:
    ad = _esl_ad(data) if frame_it else data
    packet = _decode_or_none(SyncPacket.decode, ad)
    if packet is not None:
        assert packet.encode() == ad
    answer = _decode_or_none(decode_slot_response, ad)
    if answer is not None:
        assert b"".join(response.encode() for response in answer) == ad[2:]
    _decode_or_none(lambda value: SyncPacket.decode(value, FUZZ_KEY), ad)
    _decode_or_none(lambda value: decode_slot_response(value, FUZZ_KEY), ad)


@settings(max_examples=1500, deadline=None)
@given(st.binary(min_size=1, max_size=60), st.booleans(), _randomizers)
def test_fuzz_encrypted_sync_and_response(data: bytes, frame_it: bool, randomizer: bytes) -> None:
    # Validly encrypted, so the fuzzed plaintext reaches the ESL framing and TLV decoders behind the MIC.
    sealed = ead_encrypt(FUZZ_KEY.session_key, FUZZ_KEY.iv, randomizer, _esl_ad(data) if frame_it else data)
    packet = _decode_or_none(lambda value: SyncPacket.decode(value, FUZZ_KEY), sealed)
    if packet is not None:
        assert packet.encode(FUZZ_KEY, randomizer) == sealed
    _decode_or_none(lambda value: decode_slot_response(value, FUZZ_KEY), sealed)


_cheap_commands = st.one_of(
    st.builds(Ping, st.sampled_from([1, 2, 3, 0xFF])),
    st.builds(DisplayImage, st.sampled_from([1, 2, 3, 0xFF]), _u8, _u8),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_cheap_commands, max_size=5),
    st.dictionaries(st.integers(-1, 6), st.binary(max_size=30), max_size=4),
    st.booleans(),
)
def test_fuzz_parse_response_slots_never_raises(
    command_list: list[Command], received: dict[int, bytes], with_keys: bool
) -> None:
    packet = SyncPacket(1, tuple(command_list))
    keys = {address: FUZZ_KEY for address in packet.response_slots().values()} if with_keys else None
    results = parse_response_slots(packet, received, keys)
    assert len(results) == len(set(packet.response_slots()) | set(received))

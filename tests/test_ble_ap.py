"""Bluetooth ESL access point: codecs and plumbing without a radio, then the real AP against emulated tags.

The emulated tags (``sim.ble``) are bumble GATT servers on an in-process virtual radio, reached through bleak's
public API with the bumble backend classes passed as ``backend=``: the same AP code that runs over BlueZ on a
gateway. The Linux object channel cannot run here (no Bluetooth in CI), so only its sockaddr building is tested.
"""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest

from agents.tags.ble.access_point import EslAccessPoint
from agents.tags.ble.control_point import answers
from agents.tags.ble.errors import (
    RETRYABLE,
    BleTransportError,
    ConnectTimeoutError,
    EcpError,
    MalformedResponseError,
    ResponseTimeoutError,
    TagNotFoundError,
    UnknownTagError,
)
from agents.tags.ble.objects import (
    AF_BLUETOOTH,
    BDADDR_LE_PUBLIC,
    BDADDR_LE_RANDOM,
    LinuxL2capObjectChannel,
    ObjectChannel,
    ObjectChannelError,
    object_channel_factory,
    register_object_channel,
    registered_object_channels,
    sockaddr_l2,
)
from agents.tags.ble.records import AccessPointSettings, EslTagRecord
from agents.tags.ble.transport import BleTagTransport
from protocols.errors import ProtocolError
from protocols.esl import (
    BasicState,
    BasicStateFlags,
    DisplayImage,
    DisplayInfo,
    DisplayState,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    KeyMaterial,
    LedControl,
    LedState,
    Ping,
    ReadSensorData,
    SensorValue,
)
from protocols.ots import (
    OacpResponse,
    ObjectSize,
    OlcpResponse,
    OtsFeature,
    encode_calculate_checksum,
    encode_go_to,
    encode_write,
    image_object_id,
)
from sim.ble import (
    BumbleBleakClient,
    BumbleBleakScanner,
    BumbleObjectChannel,
    EmulatedEslTag,
    TagState,
    VirtualRadio,
    framebuffer_size,
    use_radio,
)

# --------------------------------------------------------------------------------------------------------------------
# Without a radio


def test_sockaddr_l2_layout() -> None:
    packed = sockaddr_l2("C0:11:22:33:44:55", psm=0x25, address_type="random")
    assert packed == struct.pack("<HH", AF_BLUETOOTH, 0x25) + bytes.fromhex("554433221 1c0".replace(" ", "")) + bytes(
        (0, 0, BDADDR_LE_RANDOM, 0)
    )
    assert len(packed) == 14
    local, remote = LinuxL2capObjectChannel(address_type="public").connect_arguments("AA:BB:CC:DD:EE:FF")
    assert local[2:8] == bytes(6) and local[12] == BDADDR_LE_PUBLIC
    assert remote[2:4] == b"\x25\x00" and remote[4:10] == bytes.fromhex("ffeeddccbbaa") and remote[12] == 1
    with pytest.raises(ValueError, match="Bluetooth device address"):
        sockaddr_l2("AA:BB:CC:DD:EE", psm=1)
    with pytest.raises(ValueError, match="out of range"):
        sockaddr_l2("AA:BB:CC:DD:EE:FF", psm=0x10000)


async def test_linux_channel_refuses_io_before_open() -> None:
    channel = LinuxL2capObjectChannel()
    assert isinstance(channel, ObjectChannel)
    with pytest.raises(ObjectChannelError):
        await channel.write(b"x")
    await channel.close()  # idempotent, also when never opened


def test_object_channel_factory_by_name() -> None:
    assert object_channel_factory("linux") is LinuxL2capObjectChannel
    with pytest.raises(ValueError, match="use one of"):
        object_channel_factory("bogus")
    with pytest.raises(ValueError, match="cannot import"):
        object_channel_factory("no_such_module_here:Channel")
    with pytest.raises(ValueError, match="has no"):
        object_channel_factory("agents.tags.ble.objects:Nope")


def test_object_channels_are_registered_by_name() -> None:
    """'linux' is built in; the simulator registers 'sim' where it defines the channel (imported above)."""
    assert registered_object_channels() == ["linux", "sim"]
    assert object_channel_factory("sim") is BumbleObjectChannel
    register_object_channel("sim", BumbleObjectChannel)  # the same registration again is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_object_channel("sim", LinuxL2capObjectChannel)
    with pytest.raises(ValueError, match="plain word"):
        register_object_channel("my:channel", LinuxL2capObjectChannel)
    with pytest.raises(ValueError, match=r"unknown object channel 'bogus': .*\('linux', 'sim'\)"):
        object_channel_factory("bogus")


def test_ots_request_bytes() -> None:
    assert encode_go_to(image_object_id(1)) == bytes.fromhex("05 0101 0000 0000".replace(" ", ""))
    assert encode_write(0x10, 0x2000, truncate=True) == bytes.fromhex("06 10000000 00200000 02".replace(" ", ""))
    assert encode_write(0, 1, truncate=False)[-1] == 0
    assert encode_calculate_checksum(0, 9472) == bytes.fromhex("03 00000000 00250000".replace(" ", ""))
    response = OacpResponse.decode(bytes.fromhex("600301") + struct.pack("<I", 0xDEADBEEF))
    assert response.ok and response.checksum == 0xDEADBEEF
    assert OacpResponse.decode(response.encode()) == response
    assert OlcpResponse.decode(bytes.fromhex("700508")).result_name == "OBJECT_ID_NOT_FOUND"
    assert ObjectSize.decode(ObjectSize(5, 9).encode()) == ObjectSize(5, 9)
    assert OtsFeature(0b1010_0100, 0).can_write_images and OtsFeature(0b1010_0100, 0).can_checksum
    assert not OtsFeature(0b0010_0000, 0).can_write_images
    for bad in (b"", b"\x60\x03", b"\x70\x05\x01"[:2], b"\x61\x03\x01"):
        with pytest.raises(ProtocolError):
            OacpResponse.decode(bad)
    with pytest.raises(ProtocolError):
        OacpResponse(3, 1, b"\x01").checksum  # noqa: B018
    with pytest.raises(ValueError):
        image_object_id(256)


def test_response_matching() -> None:
    assert answers(Ping(3), BasicState(BasicStateFlags(0)))
    assert answers(Ping(3), ErrorResponse(ErrorCode.RETRY))
    assert not answers(Ping(3), DisplayState(0, 0))
    assert answers(DisplayImage(3, 0, 1), DisplayState(0, 0))
    assert not answers(DisplayImage(3, 1, 1), DisplayState(0, 1))
    assert answers(ReadSensorData(3, 0), SensorValue(0, b"\x01\x02"))
    assert not answers(ReadSensorData(3, 1), SensorValue(0, b""))
    assert not answers(_led(3, led=1), LedState(0))


def test_record_round_trip() -> None:
    record = EslTagRecord(
        ble_address="D0:00:00:00:00:01",
        esl_address=EslAddress(2, 7),
        response_key=KeyMaterial(bytes(range(16)), bytes(range(8))),
        address_type="random",
        bonded=True,
        displays=(DisplayInfo(296, 128, 6),),
        max_image_index=1,
        pnp_id=b"\x01\x02",
    )
    assert EslTagRecord.from_dict(record.to_dict()) == record
    with pytest.raises(ValueError, match="damaged"):
        EslTagRecord.from_dict({"ble_address": "x"})


def test_ap_modules_import_neither_bumble_nor_sim() -> None:
    """Backend independence by construction: the AP is importable and usable without the simulator stack."""
    code = (
        "import sys, agents.tags.ble.access_point, agents.tags.ble.transport, agents.tags.ble.objects\n"
        "import agents.tags.ble.bus\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bumble', 'sim'))\n"
        "assert not bad, bad\n"
        "assert agents.tags.ble.objects.registered_object_channels() == ['linux']\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _led(esl_id: int, *, led: int = 0) -> LedControl:
    return LedControl(
        esl_id,
        led,
        red=3,
        green=0,
        blue=0,
        brightness=3,
        pattern=0xFF,
        off_period=10,
        on_period=10,
        repeat_type=0,
        repeats_duration=3,
    )


# --------------------------------------------------------------------------------------------------------------------
# Against emulated tags on the bumble virtual radio

FAST = AccessPointSettings(
    scan_s=0.3,
    connect_s=2.0,
    response_s=1.0,
    transfer_s=5.0,
    settle_s=0.1,
    poll_s=0.005,
    no_response_grace_s=0.02,
    attempts=3,
    backoff_min_s=0.01,
    backoff_max_s=0.05,
)


@dataclass
class Rig:
    radio: VirtualRadio
    ap: EslAccessPoint
    tags: list[EmulatedEslTag]


def _image(tag: EmulatedEslTag, seed: int) -> bytes:
    size = framebuffer_size(tag.profile.panel)
    return random.Random(seed).randbytes(size)


@asynccontextmanager
async def _rig(count: int, settings: AccessPointSettings = FAST) -> AsyncIterator[Rig]:
    radio = VirtualRadio()
    try:
        with use_radio(radio):
            tags = [await EmulatedEslTag.create(radio) for _ in range(count)]
            ap = EslAccessPoint(
                ap_sync_key=KeyMaterial(bytes(16), bytes(8)),
                client_backend=BumbleBleakClient,
                scanner_backend=BumbleBleakScanner,
                object_channel="sim",
                settings=settings,
                rng=random.Random(1),
            )
            yield Rig(radio, ap, tags)
    finally:
        await radio.close()


@pytest.fixture
async def rig3() -> AsyncIterator[Rig]:
    async with _rig(3) as rig:
        yield rig


@pytest.fixture
async def onboarded(rig3: Rig) -> tuple[Rig, BleTagTransport]:
    found = await rig3.ap.scan()
    assert sorted(t.ble_address for t in found) == sorted(tag.address for tag in rig3.tags)
    outcome = await rig3.ap.onboard_all([(tag, EslAddress(1, n)) for n, tag in enumerate(found)], concurrency=3)
    records = [r for r in outcome.values() if isinstance(r, EslTagRecord)]
    assert len(records) == 3, outcome
    return rig3, BleTagTransport(rig3.ap, records, max_concurrent=2)


def _tag_for(rig: Rig, record: EslTagRecord) -> EmulatedEslTag:
    return next(t for t in rig.tags if t.address == record.ble_address)


async def test_onboarding_configures_every_tag(onboarded: tuple[Rig, BleTagTransport]) -> None:
    rig, transport = onboarded
    for address in (EslAddress(1, n) for n in range(3)):
        record = transport.record(address)
        tag = _tag_for(rig, record)
        assert tag.esl_address == address
        assert tag.sync_key == rig.ap.ap_sync_key
        assert tag.response_key == record.response_key
        assert tag.state is TagState.SYNCHRONIZED
        assert record.displays and record.displays[0].width == tag.profile.panel.width
        assert record.bonded and record.pnp_id == tag.profile.pnp_id
    assert await rig.ap.scan() == []  # associated tags stop advertising the ESL Service


async def test_image_upload_and_display_verified_on_tag(onboarded: tuple[Rig, BleTagTransport]) -> None:
    rig, transport = onboarded
    results = {}
    for n in range(3):
        address = EslAddress(1, n)
        image = _image(_tag_for(rig, transport.record(address)), seed=n)
        results[address] = (image, await transport.send_image(address, image))
    for address, (image, result) in results.items():
        tag = _tag_for(rig, transport.record(address))
        assert tag.epaper.shown_sha256 == hashlib.sha256(image).hexdigest()
        assert result.response == DisplayState(0, 0)
        assert result.bytes_sent == len(image) and result.crc32 == zlib.crc32(image)
        assert tag.state is TagState.SYNCHRONIZED
    assert transport.bytes_written >= 3 * len(image)

    # staged image, then shown later from its slot; the same image again is not re-sent
    address = EslAddress(1, 0)
    staged = _image(_tag_for(rig, transport.record(address)), seed=99)
    result = await transport.send_image(address, staged, image_index=1, display=False)
    assert isinstance(result.response, BasicState)
    assert await transport.display_image(address, 1) == DisplayState(0, 1)
    tag = _tag_for(rig, transport.record(address))
    assert tag.epaper.shown_sha256 == hashlib.sha256(staged).hexdigest()
    again = await transport.send_image(address, staged, image_index=1)
    assert again.bytes_sent == 0 and again.resumed_from == len(staged)


async def test_led_ping_battery_and_error_responses(onboarded: tuple[Rig, BleTagTransport]) -> None:
    rig, transport = onboarded
    address = EslAddress(1, 2)
    tag = _tag_for(rig, transport.record(address))
    assert isinstance(await transport.send_command(address, Ping(2)), BasicState)
    assert await transport.send_command(address, _led(2)) == LedState(0)
    assert tag.leds[0].active
    battery = await transport.send_command(address, ReadSensorData(2, 0))
    assert isinstance(battery, SensorValue)
    assert int.from_bytes(battery.data, "little") == tag.battery_mv

    with pytest.raises(EcpError) as refused:
        await transport.display_image(address, 1)  # nothing uploaded to slot 1
    assert refused.value.error is ErrorCode.IMAGE_NOT_AVAILABLE
    assert refused.value.ble_address == tag.address and "IMAGE_NOT_AVAILABLE" in refused.value.reason
    with pytest.raises(EcpError) as bad_led:
        await transport.send_command(address, _led(2, led=5))
    assert bad_led.value.error is ErrorCode.INVALID_PARAMETERS
    with pytest.raises(UnknownTagError):
        await transport.send_command(EslAddress(9, 9), Ping(9))
    with pytest.raises(ValueError, match="image slots"):
        await transport.send_image(address, b"x", image_index=7)


class _Garbage:
    def encode(self) -> bytes:
        return b"\x2e\x00"  # a Sensor Value that claims 2 data bytes and carries none


async def test_malformed_and_missing_responses_are_typed(
    onboarded: tuple[Rig, BleTagTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, transport = onboarded
    address = EslAddress(1, 1)
    tag = _tag_for(rig, transport.record(address))
    monkeypatch.setattr(tag, "execute", lambda command, over_pawr: _Garbage())
    with pytest.raises(MalformedResponseError, match="malformed ecp notification 2e00"):
        await transport.send_command(address, Ping(1))
    before = rig.ap.connections
    monkeypatch.setattr(tag, "execute", lambda command, over_pawr: None)
    rig.ap.settings = replace(FAST, response_s=0.2, attempts=2)
    with pytest.raises(ResponseTimeoutError) as silent:
        await transport.send_command(address, Ping(1))
    assert isinstance(silent.value, TimeoutError) and isinstance(silent.value, BleTransportError)
    assert rig.ap.connections == before + 2  # a silent tag is retried on a fresh connection, then reported
    monkeypatch.undo()
    assert isinstance(await transport.send_command(address, Ping(1)), BasicState)  # the AP carried on


class _CutFirstWrite(random.Random):
    """Stands in for the tag's fault dice: the first OACP Write is cut half way, later ones are not."""

    def __init__(self) -> None:
        super().__init__(7)
        self.cuts = 0

    def random(self) -> float:
        self.cuts += 1
        return 0.0 if self.cuts == 1 else 0.999

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        assert stop is not None
        return (start + stop) // 2


async def test_resume_after_disconnect_mid_transfer(onboarded: tuple[Rig, BleTagTransport]) -> None:
    rig, transport = onboarded
    address = EslAddress(1, 0)
    tag = _tag_for(rig, transport.record(address))
    tag.faults.disconnect_mid_transfer = 0.5
    tag._rng = _CutFirstWrite()
    image = _image(tag, seed=5)
    result = await transport.send_image(address, image)
    assert result.connections == 2
    assert result.resumed_from is not None and 0 < result.resumed_from < len(image)
    assert result.bytes_sent < 2 * len(image)
    assert tag.epaper.shown_sha256 == hashlib.sha256(image).hexdigest()


async def test_tag_out_of_range_is_not_found() -> None:
    settings = AccessPointSettings(scan_s=0.2, connect_s=0.3, response_s=0.5, attempts=1)
    async with _rig(1, settings) as rig:
        [found] = await rig.ap.scan()
        record = await rig.ap.onboard(found, EslAddress(0, 1))
        await rig.tags[0].set_out_of_range(True)
        with pytest.raises((TagNotFoundError, ConnectTimeoutError)) as missing:
            await BleTagTransport(rig.ap, [record]).send_command(EslAddress(0, 1), Ping(1))
        assert isinstance(missing.value, RETRYABLE)
        assert missing.value.ble_address == record.ble_address


async def test_encrypted_tag_pairs_then_reencrypts_on_later_connections() -> None:
    async with _rig(0) as rig:
        tag = await EmulatedEslTag.create(rig.radio, require_encryption=True)
        [found] = await rig.ap.scan()
        record = await rig.ap.onboard(found, EslAddress(0, 3), images=[_image(tag, seed=3)])
        assert record.bonded and tag.esl_address == EslAddress(0, 3)
        assert tag.epaper.shown_sha256 == hashlib.sha256(_image(tag, seed=3)).hexdigest()
        # bonded: no pairing on connect; the tag's Insufficient Encryption answer makes the AP encrypt, as BlueZ does
        assert isinstance(await BleTagTransport(rig.ap, [record]).send_command(EslAddress(0, 3), Ping(3)), BasicState)

"""The BLE simulator: bleak over the bumble backend against emulated ESL tags, end to end.

These tests play the access point with bleak's public API only (``BleakScanner`` / ``BleakClient`` with
``backend=``) plus the simulated object channel, as the real AP does, and check the tag side: state machine, ECP
answers, the e-paper's image hash, faults, the PAwR path and a small fleet.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError

from agents.tags.ble.objects import ObjectChannelError
from agents.tags.encoding import encode_framebuffer
from agents.tags.panels import ColourMode, Panel
from protocols.esl import (
    BasicState,
    BasicStateFlags,
    CurrentAbsoluteTime,
    DisplayImage,
    DisplayInformation,
    DisplayState,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    EslCharacteristic,
    ImageInformation,
    KeyMaterial,
    LedControl,
    LedState,
    Ping,
    ReadSensorData,
    Response,
    SensorValue,
    SlotOutcome,
    SyncPacket,
    Unassociate,
    UpdateComplete,
    decode_response,
    parse_response_slots,
)
from sim.ble import (
    BumbleBleakClient,
    BumbleBleakScanner,
    BumbleObjectChannel,
    EmulatedEslTag,
    OacpOpcode,
    OacpResult,
    OlcpOpcode,
    OtsCharacteristic,
    PawrTrain,
    TagFaults,
    TagProfile,
    TagState,
    TimingModel,
    VirtualRadio,
    framebuffer_size,
    use_radio,
)

ESL_UUID = "00001857-0000-1000-8000-00805f9b34fb"
PANEL = Panel(152, 152, ColourMode.BWR)
SYNC_KEY = KeyMaterial(bytes(range(16)), bytes(range(100, 108)))


def uuid16(value: int) -> str:
    return f"0000{value:04x}-0000-1000-8000-00805f9b34fb"


def response_key_for(esl_id: int) -> KeyMaterial:
    return KeyMaterial(bytes([esl_id]) * 16, bytes([0xA0 + esl_id % 16]) * 8)


def price_image(seed: int) -> bytes:
    """A framebuffer for PANEL: planes with a seed-dependent pattern, in the serial tags' row-padded layout."""
    plane_bytes = PANEL.plane_bytes
    planes = [bytes((seed * 31 + i * (p + 1)) & 0xFF for i in range(plane_bytes)) for p in range(PANEL.planes)]
    return encode_framebuffer(PANEL, planes)


@pytest.fixture
async def radio() -> AsyncIterator[VirtualRadio]:
    async with VirtualRadio() as virtual_radio:
        with use_radio(virtual_radio):
            yield virtual_radio


@dataclass
class Ap:
    """A minimal access point written against bleak's public API (the real one lives in agents/tags/ble)."""

    client: BleakClient
    ecp_answers: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    oacp_answers: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    olcp_answers: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    async def subscribe(self) -> None:
        def queue_into(queue: asyncio.Queue[bytes]) -> object:
            def on_value(_char: BleakGATTCharacteristic, data: bytearray) -> None:
                queue.put_nowait(bytes(data))

            return on_value

        await self.client.start_notify(uuid16(EslCharacteristic.ESL_CONTROL_POINT), queue_into(self.ecp_answers))  # type: ignore[arg-type]
        await self.client.start_notify(uuid16(OtsCharacteristic.OACP), queue_into(self.oacp_answers))  # type: ignore[arg-type]
        await self.client.start_notify(uuid16(OtsCharacteristic.OLCP), queue_into(self.olcp_answers))  # type: ignore[arg-type]

    async def write(self, uuid: int, data: bytes) -> None:
        await self.client.write_gatt_char(uuid16(uuid), data, response=True)

    async def read(self, uuid: int) -> bytes:
        return bytes(await self.client.read_gatt_char(uuid16(uuid)))

    async def ecp_command(self, data: bytes) -> Response:
        await self.write(EslCharacteristic.ESL_CONTROL_POINT, data)
        response, _ = decode_response(await asyncio.wait_for(self.ecp_answers.get(), 5))
        return response

    async def configure(self, address: EslAddress) -> None:
        await self.write(EslCharacteristic.ESL_ADDRESS, address.encode())
        await self.write(EslCharacteristic.AP_SYNC_KEY_MATERIAL, SYNC_KEY.encode())
        await self.write(EslCharacteristic.ESL_RESPONSE_KEY_MATERIAL, response_key_for(address.esl_id).encode())
        await self.write(EslCharacteristic.ESL_CURRENT_ABSOLUTE_TIME, CurrentAbsoluteTime(1_000).encode())

    async def oacp(self, request: bytes) -> bytes:
        await self.write(OtsCharacteristic.OACP, request)
        return await asyncio.wait_for(self.oacp_answers.get(), 5)

    async def upload(self, image_index: int, image: bytes, *, offset: int = 0) -> int:
        """Select the object, write it from ``offset`` over the object channel, return the CRC the tag computed."""
        await self.write(
            OtsCharacteristic.OLCP, bytes((OlcpOpcode.GO_TO,)) + (0x100 + image_index).to_bytes(6, "little")
        )
        assert await asyncio.wait_for(self.olcp_answers.get(), 5) == bytes((0x70, OlcpOpcode.GO_TO, 0x01))
        channel = BumbleObjectChannel(psm=0x25, address_type="random")
        await channel.open(self.client)
        try:
            mode = 0x02 if offset == 0 else 0x00
            request = struct.pack("<BIIB", OacpOpcode.WRITE, offset, len(image) - offset, mode)
            assert await self.oacp(request) == bytes((0x60, OacpOpcode.WRITE, OacpResult.SUCCESS))
            await channel.write(image[offset:])
        finally:
            await channel.close()
        answer = await self.oacp(struct.pack("<BII", OacpOpcode.CALCULATE_CHECKSUM, 0, len(image)))
        assert answer[:3] == bytes((0x60, OacpOpcode.CALCULATE_CHECKSUM, OacpResult.SUCCESS))
        (crc,) = struct.unpack("<I", answer[3:])
        return int(crc)


async def discover_tags(count: int, within_s: float = 5.0) -> list[str]:
    found: dict[str, None] = {}
    done = asyncio.Event()

    def on_advert(device: object, adv: object) -> None:
        found[device.address] = None  # type: ignore[attr-defined]
        if len(found) >= count:
            done.set()

    async with BleakScanner(on_advert, service_uuids=[ESL_UUID], backend=BumbleBleakScanner):
        await asyncio.wait_for(done.wait(), within_s)
    return list(found)


def state_of(tag: EmulatedEslTag) -> TagState:
    """The tag's state, read through a call so mypy does not carry narrowing across awaits."""
    return tag.state


async def new_tag(radio: VirtualRadio, **kwargs: object) -> EmulatedEslTag:
    return await EmulatedEslTag.create(radio, profile=TagProfile(panel=PANEL), **kwargs)  # type: ignore[arg-type]


async def test_onboarding_image_and_update_complete(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    device = await BleakScanner.find_device_by_filter(
        lambda _d, adv: ESL_UUID in adv.service_uuids, timeout=5, backend=BumbleBleakScanner
    )
    assert device is not None and device.address == tag.address

    async with BleakClient(device, backend=BumbleBleakClient, pair=True) as client:
        assert client.mtu_size == 247
        assert state_of(tag) is TagState.CONFIGURING
        assert tag.device.connections and next(iter(tag.device.connections.values())).is_encrypted
        ap = Ap(client)
        await ap.subscribe()
        displays = DisplayInformation.decode(await ap.read(EslCharacteristic.ESL_DISPLAY_INFORMATION))
        assert (displays.displays[0].width, displays.displays[0].height) == (152, 152)
        assert ImageInformation.decode(await ap.read(EslCharacteristic.ESL_IMAGE_INFORMATION)).max_image_index == 1
        assert len(await ap.read(0x2A50)) == 7  # DIS PnP ID

        address = EslAddress(group_id=2, esl_id=7)
        await ap.configure(address)
        image = price_image(1)
        assert len(image) == framebuffer_size(PANEL)
        assert await ap.upload(0, image) == zlib.crc32(image)

        assert await ap.ecp_command(Ping(7).encode()) == BasicState(BasicStateFlags(0))
        assert await ap.ecp_command(DisplayImage(7, 0, 0).encode()) == DisplayState(0, 0)
        assert await ap.ecp_command(ReadSensorData(7, 0).encode()) == SensorValue(0, struct.pack("<H", 3000))
        led = LedControl(7, 0, 3, 0, 0, 3, 0x55, 10, 10, 0, 5)
        assert await ap.ecp_command(led.encode()) == LedState(0)
        await ap.write(EslCharacteristic.ESL_CONTROL_POINT, UpdateComplete(7).encode())

    await asyncio.sleep(0.05)
    assert state_of(tag) is TagState.SYNCHRONIZED
    assert tag.epaper.shown_sha256 == hashlib.sha256(image).hexdigest()
    assert tag.epaper.history == [hashlib.sha256(image).hexdigest()]
    assert tag.leds[0].active
    assert tag.timeline.object_bytes_received == len(image)
    assert tag.timeline.refresh_s == pytest.approx(2.0)
    assert tag.timeline.total_s > tag.timeline.transfer_s > 0


async def test_error_responses_follow_the_state_machine(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.subscribe()
        # No address yet: every command is refused with Invalid State.
        assert await ap.ecp_command(Ping(1).encode()) == ErrorResponse(ErrorCode.INVALID_STATE)
        await ap.write(EslCharacteristic.ESL_ADDRESS, EslAddress(0, 1).encode())
        # Update Complete before keys and time: Invalid State.
        assert await ap.ecp_command(UpdateComplete(1).encode()) == ErrorResponse(ErrorCode.INVALID_STATE)
        await ap.configure(EslAddress(0, 1))
        assert await ap.ecp_command(DisplayImage(1, 0, 1).encode()) == ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
        assert await ap.ecp_command(DisplayImage(1, 0, 9).encode()) == ErrorResponse(ErrorCode.INVALID_IMAGE_INDEX)
        assert await ap.ecp_command(DisplayImage(1, 3, 0).encode()) == ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        assert await ap.ecp_command(ReadSensorData(1, 4).encode()) == ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        assert await ap.ecp_command(b"\x05\x01") == ErrorResponse(ErrorCode.INVALID_OPCODE)
        assert await ap.ecp_command(b"\x00\x01\x00") == ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        # A command for another ESL ID is dropped without a notification.
        await ap.write(EslCharacteristic.ESL_CONTROL_POINT, Ping(2).encode())
        await asyncio.sleep(0.02)
        assert ap.ecp_answers.empty()
        # A malformed characteristic value is an ATT error, not a hang.
        with pytest.raises(BleakGATTProtocolError) as caught:
            await ap.write(EslCharacteristic.AP_SYNC_KEY_MATERIAL, b"\x01\x02")
        assert caught.value.code == 0x0D
        # A partial upload is not shown.
        await ap.write(OtsCharacteristic.OLCP, bytes((OlcpOpcode.GO_TO,)) + (0x101).to_bytes(6, "little"))
        await ap.olcp_answers.get()
        channel = BumbleObjectChannel(psm=0x25, address_type="random")
        await channel.open(client)
        await ap.oacp(struct.pack("<BIIB", OacpOpcode.WRITE, 0, framebuffer_size(PANEL), 0x02))
        await channel.write(price_image(2)[:100])
        await channel.close()
        assert await ap.ecp_command(DisplayImage(1, 0, 1).encode()) == ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
    await asyncio.sleep(0.05)
    # Configured but no Update Complete: unsynchronized, and nothing was shown.
    assert state_of(tag) is TagState.UNSYNCHRONIZED
    assert tag.epaper.history == []


async def test_disconnect_mid_transfer_then_resume(radio: VirtualRadio) -> None:
    tag = await new_tag(radio, faults=TagFaults(disconnect_mid_transfer=1.0, seed=3))
    image = price_image(5)
    disconnected = asyncio.Event()
    async with BleakClient(tag.address, lambda _c: disconnected.set(), backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.subscribe()
        await ap.configure(EslAddress(1, 3))
        with pytest.raises((ObjectChannelError, BleakError)):
            await ap.upload(0, image)
        await asyncio.wait_for(disconnected.wait(), 5)
        assert not client.is_connected
    held = len(tag.images[0].data)
    assert 0 < held < len(image)
    assert state_of(tag) is TagState.UNSYNCHRONIZED

    tag.faults.disconnect_mid_transfer = 0.0
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        assert state_of(tag) is TagState.UPDATING
        ap = Ap(client)
        await ap.subscribe()
        await ap.write(OtsCharacteristic.OLCP, bytes((OlcpOpcode.GO_TO,)) + (0x100).to_bytes(6, "little"))
        await ap.olcp_answers.get()
        current, allocated = struct.unpack("<II", await ap.read(OtsCharacteristic.OBJECT_SIZE))
        assert (current, allocated) == (held, len(image))
        assert await ap.upload(0, image, offset=current) == zlib.crc32(image)
        assert await ap.ecp_command(DisplayImage(3, 0, 0).encode()) == DisplayState(0, 0)
        await ap.write(EslCharacteristic.ESL_CONTROL_POINT, UpdateComplete(3).encode())
    await asyncio.sleep(0.05)
    assert state_of(tag) is TagState.SYNCHRONIZED
    assert tag.epaper.history == [hashlib.sha256(image).hexdigest()]


async def test_out_of_range_tag_is_not_found(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    await tag.set_out_of_range(True)
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient(tag.address, timeout=0.3, backend=BumbleBleakClient).connect()
    await tag.set_out_of_range(False)
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        assert client.is_connected


async def onboard(tag: EmulatedEslTag, address: EslAddress, image: bytes | None = None) -> None:
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.subscribe()
        await ap.configure(address)
        if image is not None:
            await ap.upload(0, image)
            assert await ap.ecp_command(DisplayImage(address.esl_id, 0, 0).encode()) == DisplayState(0, 0)
        await ap.write(EslCharacteristic.ESL_CONTROL_POINT, UpdateComplete(address.esl_id).encode())


async def test_pawr_sync_packet_and_response_slots(radio: VirtualRadio) -> None:
    tags = [await new_tag(radio) for _ in range(3)]
    addresses = [EslAddress(4, 10), EslAddress(4, 11), EslAddress(5, 10)]
    for tag, address in zip(tags, addresses, strict=True):
        await onboard(tag, address, price_image(address.esl_id) if address.esl_id == 10 else None)
    await asyncio.sleep(0.05)
    assert all(tag.state is TagState.SYNCHRONIZED for tag in tags)

    train = PawrTrain(radio)
    packet = SyncPacket(4, (Ping(10), DisplayImage(11, 0, 0), Ping(11), Ping(12)))
    result = await train.send(packet, SYNC_KEY, bytes(5))
    keys = {address: response_key_for(address.esl_id) for address in addresses}
    slots = parse_response_slots(packet, result.responses, keys)
    by_esl = {slot.address.esl_id: slot for slot in slots if slot.address is not None}
    synced = BasicState(BasicStateFlags.SYNCHRONIZED)
    assert by_esl[10].outcome is SlotOutcome.ANSWERED and by_esl[10].responses == (synced,)
    assert by_esl[11].outcome is SlotOutcome.ANSWERED
    assert by_esl[11].responses == (ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE), synced)
    assert by_esl[12].outcome is SlotOutcome.MISSING
    # A packet under another key is dropped by every tag.
    assert (await train.send(packet, KeyMaterial(bytes(16), bytes(8)), bytes(5))).responses == {}
    group5 = SyncPacket(5, (DisplayImage(10, 0, 0),))
    [slot] = parse_response_slots(group5, (await train.send(group5, SYNC_KEY, b"\x01" * 5)).responses, keys)
    assert slot.responses == (DisplayState(0, 0),)
    # Shown at onboarding, then again by the group-5 packet; the group-4 Display Image for ESL 10 never reached it.
    assert tags[2].epaper.history == [hashlib.sha256(price_image(10)).hexdigest()] * 2


async def test_twenty_tags_on_one_radio(radio: VirtualRadio) -> None:
    started = time.monotonic()
    tags = [await new_tag(radio, advertising_interval_ms=50.0) for _ in range(20)]
    found = await discover_tags(20)
    assert set(found) == {tag.address for tag in tags}
    by_address = {tag.address: tag for tag in tags}

    async def onboard_one(index: int, address: str) -> None:
        await onboard(by_address[address], EslAddress(index // 10, index % 10), price_image(index))

    await asyncio.gather(*(onboard_one(i, address) for i, address in enumerate(found)))
    await asyncio.sleep(0.05)
    for index, address in enumerate(found):
        tag = by_address[address]
        assert state_of(tag) is TagState.SYNCHRONIZED
        assert tag.epaper.shown_sha256 == hashlib.sha256(price_image(index)).hexdigest()
    assert time.monotonic() - started < 20


async def test_advertisement_data_and_scanner_filter(radio: VirtualRadio) -> None:
    tag = await EmulatedEslTag.create(radio, profile=TagProfile(panel=PANEL, manufacturer_data=b"\xe5\x02\x01\x02\x03"))
    associated = await new_tag(radio)
    await onboard(associated, EslAddress(0, 1))
    seen: dict[str, AdvertisementData] = {}
    async with BleakScanner(service_uuids=[ESL_UUID], backend=BumbleBleakScanner) as scanner:
        async for device, adv in scanner.advertisement_data():
            seen[device.address] = adv
            if tag.address in seen:
                break
    adv = seen[tag.address]
    assert adv.service_uuids == [ESL_UUID]
    assert adv.manufacturer_data == {0x02E5: b"\x01\x02\x03"}
    assert adv.local_name == "ESL"
    # An associated tag no longer advertises the ESL UUID, so the filter hides it; without a filter it shows up.
    assert associated.address not in seen
    everything = await BleakScanner.discover(timeout=0.3, return_adv=True, backend=BumbleBleakScanner)
    assert associated.address in everything


async def test_encrypted_characteristics_need_pairing(radio: VirtualRadio) -> None:
    tag = await new_tag(radio, require_encryption=True)
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.read_gatt_char(uuid16(EslCharacteristic.ESL_DISPLAY_INFORMATION))
        assert caught.value.code == 0x0F  # Insufficient Encryption
        await client.pair()
        assert len(await client.read_gatt_char(uuid16(EslCharacteristic.ESL_DISPLAY_INFORMATION))) == 5


async def test_ecp_write_without_response_and_notifications_required(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.write(EslCharacteristic.ESL_ADDRESS, EslAddress(0, 4).encode())
        # ECP before enabling notifications: the tag refuses with CCCD Improperly Configured.
        with pytest.raises(BleakGATTProtocolError) as caught:
            await ap.write(EslCharacteristic.ESL_CONTROL_POINT, Ping(4).encode())
        assert caught.value.code == 0xFD
        await ap.subscribe()
        await client.write_gatt_char(uuid16(EslCharacteristic.ESL_CONTROL_POINT), Ping(4).encode(), response=False)
        response, _ = decode_response(await asyncio.wait_for(ap.ecp_answers.get(), 5))
        assert response == BasicState(BasicStateFlags(0))
        await client.stop_notify(uuid16(EslCharacteristic.ESL_CONTROL_POINT))


async def test_unassociate_over_pawr_makes_the_tag_discoverable_again(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    await onboard(tag, EslAddress(6, 1))
    await asyncio.sleep(0.05)
    assert state_of(tag) is TagState.SYNCHRONIZED
    packet = SyncPacket(6, (Unassociate(1),))
    [slot] = parse_response_slots(
        packet,
        (await PawrTrain(radio).send(packet, SYNC_KEY, bytes(5))).responses,
        {EslAddress(6, 1): response_key_for(1)},
    )
    assert slot.outcome is SlotOutcome.ANSWERED
    assert state_of(tag) is TagState.UNASSOCIATED and tag.esl_address is None
    assert await discover_tags(1) == [tag.address]


async def test_realtime_factor_delays_answers(radio: VirtualRadio) -> None:
    tag = await new_tag(radio, timing=TimingModel(epaper_refresh_s=2.0, realtime_factor=0.05))
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.subscribe()
        await ap.configure(EslAddress(0, 2))
        await ap.upload(1, price_image(3))
        started = time.monotonic()
        assert await ap.ecp_command(DisplayImage(2, 0, 1).encode()) == DisplayState(0, 1)
        assert time.monotonic() - started >= 0.1  # 2 s refresh x 0.05


async def test_object_read_back_and_checksum_of_a_range(radio: VirtualRadio) -> None:
    tag = await new_tag(radio)
    image = price_image(8)
    async with BleakClient(tag.address, backend=BumbleBleakClient) as client:
        ap = Ap(client)
        await ap.subscribe()
        await ap.configure(EslAddress(0, 5))
        await ap.upload(0, image)
        assert await ap.read(OtsCharacteristic.OBJECT_NAME) == b"esl_image_00"
        assert int.from_bytes(await ap.read(OtsCharacteristic.OBJECT_ID), "little") == 0x100
        channel = BumbleObjectChannel(psm=0x25, address_type="random")
        await channel.open(client)
        try:
            assert await ap.oacp(struct.pack("<BII", OacpOpcode.READ, 100, 600)) == bytes((0x60, 0x05, 0x01))
            assert await asyncio.wait_for(channel.read(600), 5) == image[100:700]
        finally:
            await channel.close()
        answer = await ap.oacp(struct.pack("<BII", OacpOpcode.CALCULATE_CHECKSUM, 10, 20))
        assert answer == bytes((0x60, 0x03, 0x01)) + struct.pack("<I", zlib.crc32(image[10:30]))
        # Past the end of the object: Invalid Parameter; no channel open: Channel Unavailable.
        answer = await ap.oacp(struct.pack("<BII", OacpOpcode.CALCULATE_CHECKSUM, 0, len(image) + 1))
        assert answer == bytes((0x60, 0x03, OacpResult.INVALID_PARAMETER))
        answer = await ap.oacp(struct.pack("<BIIB", OacpOpcode.WRITE, 0, 10, 0x02))
        assert answer == bytes((0x60, 0x06, OacpResult.CHANNEL_UNAVAILABLE))

"""Serial tags end to end: the gateway transport (pyserial) against simulated firmware tags behind a pty.

Both ends are the real code: :class:`SerialTagTransport` on the codecs in ``protocols/``, and the MicroPython tag
firmware (``firmware/esltag``) running on CPython in :class:`SimulatedSerialBus`. Images are small (152x152 BW,
2,888 bytes) so the fault-injection runs stay fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from pathlib import Path

import pytest

from agents.tags.serial_transport import SerialTagTransport, TagUnreachableError
from protocols.esl import BasicState, EslAddress, Ping
from sim.serial_tags import FaultConfig, SimulatedSerialBus

PLANE = 19 * 152  # 152x152 BW: 2,888 bytes


def _image(seed: int) -> bytes:
    return random.Random(seed).randbytes(PLANE)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _addresses(count: int, group: int = 1) -> list[EslAddress]:
    return [EslAddress(group, index + 1) for index in range(count)]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_ping_over_pty() -> None:
    address = EslAddress(0, 7)
    with SimulatedSerialBus([address]) as bus:
        transport = SerialTagTransport(bus.port)
        try:
            response = await transport.send_command(address, Ping(address.esl_id))
        finally:
            await transport.close()
    assert isinstance(response, BasicState)


async def test_image_to_ten_tags(tmp_path: Path) -> None:
    addresses = _addresses(10)
    images = {address: _image(index) for index, address in enumerate(addresses)}
    with SimulatedSerialBus(addresses) as bus:
        transport = SerialTagTransport(bus.port, block_size=512, max_concurrent=10)
        try:
            results = await asyncio.gather(*(transport.send_image(a, images[a]) for a in addresses))
        finally:
            await transport.close()
        for address in addresses:
            assert bus.tag(address).content_hash == _sha(images[address])
            assert bus.tag(address).planes == images[address]
        bus.tag(addresses[0]).save_png(tmp_path / "tag.png")
    assert (tmp_path / "tag.png").read_bytes().startswith(b"\x89PNG")
    assert sum(result.bytes_sent for result in results) == 10 * PLANE


async def test_faults_still_complete() -> None:
    addresses = _addresses(10)
    images = {address: _image(100 + index) for index, address in enumerate(addresses)}
    # 5% of frames carry a corrupted byte, 2% of frames are lost, in both directions
    faults = FaultConfig(corrupt_frame=0.05, drop_frame=0.02, seed=4)
    with SimulatedSerialBus(addresses, faults=faults) as bus:
        transport = SerialTagTransport(bus.port, block_size=512, max_concurrent=10)
        try:
            await asyncio.gather(*(transport.send_image(a, images[a]) for a in addresses))
        finally:
            await transport.close()
        for address in addresses:
            assert bus.tag(address).content_hash == _sha(images[address])
            assert set(bus.tag(address).display.history) <= {_sha(images[address])}
        assert bus.frames_dropped > 0


async def test_per_byte_corruption() -> None:
    # independent per-byte corruption hits long frames hardest (0.3% of bytes spoils ~40% of 160-byte frames);
    # short link time-outs keep the retransmissions fast on a pty
    addresses = _addresses(3)
    images = {address: _image(200 + index) for index, address in enumerate(addresses)}
    faults = FaultConfig(corrupt_byte=0.003, drop_frame=0.02, seed=9)
    with SimulatedSerialBus(addresses, faults=faults) as bus:
        transport = SerialTagTransport(
            bus.port,
            block_size=128,
            max_concurrent=3,
            max_tries=12,
            request_attempts=20,
            ack_timeout=0.02,
            max_timeout=0.1,
            reply_timeout=0.1,
        )
        try:
            await asyncio.gather(*(transport.send_image(a, images[a]) for a in addresses))
        finally:
            await transport.close()
        for address in addresses:
            assert bus.tag(address).content_hash == _sha(images[address])
            assert set(bus.tag(address).display.history) <= {_sha(images[address])}
        assert bus.bytes_corrupted > 0


async def test_hundred_tags_on_four_buses_under_faults() -> None:
    """Acceptance 2 in miniature time: 100 tags, 4 buses, 5% corrupted frames and 2% lost frames."""
    buses = [
        SimulatedSerialBus(_addresses(25, group=g), faults=FaultConfig(corrupt_frame=0.05, drop_frame=0.02, seed=g))
        for g in range(4)
    ]
    transports: list[SerialTagTransport] = []
    try:
        for bus in buses:
            bus.start()
            transports.append(SerialTagTransport(bus.port, block_size=1000, max_concurrent=25))
        jobs = [
            transport.send_image(address, _image(bus_index * 100 + address.esl_id))
            for bus_index, (bus, transport) in enumerate(zip(buses, transports, strict=True))
            for address in bus.tags
        ]
        results = await asyncio.gather(*jobs)
    finally:
        for transport in transports:
            await transport.close()
        for bus in buses:
            bus.stop()
    assert len(results) == 100
    for bus_index, bus in enumerate(buses):
        for address, tag in bus.tags.items():
            intended = _sha(_image(bus_index * 100 + address.esl_id))
            assert tag.content_hash == intended
            assert set(tag.display.history) == {intended}


async def test_reset_mid_transfer_resumes_without_partial_image() -> None:
    address = EslAddress(2, 3)
    old, new = _image(1), _image(2)
    with SimulatedSerialBus([address]) as bus:
        transport = SerialTagTransport(bus.port, block_size=256)
        try:
            await transport.send_image(address, old)
            bus.schedule_reset(address, after_blocks=6)
            result = await transport.send_image(address, new)
        finally:
            await transport.close()
        tag = bus.tag(address)
        assert tag.resets == 1
        assert tag.content_hash == _sha(new)
        assert tag.display.history == [_sha(old), _sha(new)]
    assert result.blocks_sent > len(range(0, PLANE, 256))  # blocks lost in the reset were sent again


async def test_unknown_tag_times_out_while_others_proceed() -> None:
    addresses = _addresses(3)
    ghost = EslAddress(1, 99)
    with SimulatedSerialBus(addresses) as bus:
        transport = SerialTagTransport(bus.port, block_size=512)
        try:
            start = time.monotonic()
            results = await asyncio.gather(
                transport.send_command(ghost, Ping(ghost.esl_id)),
                *(transport.send_image(a, _image(a.esl_id)) for a in addresses),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - start
        finally:
            await transport.close()
        assert isinstance(results[0], TagUnreachableError)
        assert "no acknowledgement" in str(results[0])
        for address, result in zip(addresses, results[1:], strict=True):
            assert not isinstance(result, BaseException), result
            assert bus.tag(address).content_hash == _sha(_image(address.esl_id))
    assert elapsed < 10


async def test_no_leaked_fds() -> None:
    before = _open_fds()
    address = EslAddress(0, 1)
    for _ in range(3):
        with SimulatedSerialBus([address]) as bus:
            transport = SerialTagTransport(bus.port)
            try:
                await transport.send_command(address, Ping(1))
            finally:
                await transport.close()
    assert _open_fds() == before


@pytest.mark.parametrize("count", [1])
async def test_close_is_idempotent(count: int) -> None:
    with SimulatedSerialBus(_addresses(count)) as bus:
        transport = SerialTagTransport(bus.port)
        await transport.close()
        await transport.close()

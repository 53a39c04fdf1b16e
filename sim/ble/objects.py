"""The simulated OTS object channel: a real L2CAP LE credit-based channel over the bumble virtual radio.

Why: ESL images travel as OTS object contents over an L2CAP CoC on PSM 0x0025, which bleak does not offer
(bleak speaks GATT only); the access point hides it behind
:class:`agents.tags.ble.objects.ObjectChannel`, with a Linux socket implementation for gateways and this one for CI.
It opens the channel on the adapter's existing connection to the tag the bleak client is connected to, so data and
GATT share one link as they do on air: when the tag drops the link mid-transfer, the channel breaks too.

Importing this module registers the channel as ``"sim"`` (:func:`agents.tags.ble.objects.register_object_channel`),
so a bus config or an access point can say ``object_channel: sim``; :mod:`sim.ble` imports it, so every simulator
path that builds a Bluetooth bus (the tag fleet, ``bench tags-ble``, the tests) has it registered.

Contract (from :mod:`agents.tags.ble.objects`): keyword-only construction with ``psm`` and ``address_type`` (ignored
here), single use (``open`` once, then ``write``/``read``, then ``close``), ``close`` idempotent, every failure an
:class:`~agents.tags.ble.objects.ObjectChannelError` chained from the bumble error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bumble import core, hci, l2cap

from agents.tags.ble.objects import OTS_L2CAP_PSM, AddressType, ObjectChannelError, register_object_channel
from sim.ble.radio import VirtualRadio, current_radio

if TYPE_CHECKING:
    from bleak import BleakClient

__all__ = ["BumbleObjectChannel"]

DEFAULT_SDU_MTU = 512


class BumbleObjectChannel:
    """An :class:`~agents.tags.ble.objects.ObjectChannel` over :mod:`sim.ble.radio` (``radio=`` or the current one)."""

    def __init__(
        self,
        *,
        psm: int = OTS_L2CAP_PSM,
        address_type: AddressType = "public",
        radio: VirtualRadio | None = None,
        mtu: int = DEFAULT_SDU_MTU,
    ) -> None:
        self.psm = psm
        self.address_type = address_type
        self._radio = radio
        self._mtu = mtu
        self._channel: l2cap.LeCreditBasedChannel | None = None
        self._received = bytearray()
        self._data_arrived = asyncio.Event()
        self._closed = asyncio.Event()
        self._opened = False
        self.bytes_written = 0

    async def open(self, client: BleakClient) -> None:
        if self._opened:
            raise ObjectChannelError("an object channel is single-use: open a new one")
        self._opened = True
        radio = self._radio or current_radio()
        connection = radio.adapter_connection(client.address)
        if connection is None:
            raise ObjectChannelError(f"no connection to {client.address} on the virtual radio")
        try:
            channel = await connection.create_l2cap_channel(
                spec=l2cap.LeCreditBasedChannelSpec(psm=self.psm, mtu=self._mtu)
            )
        except (core.BaseBumbleError, hci.HCI_Error, l2cap.L2capError) as exc:
            raise ObjectChannelError(f"L2CAP CoC to {client.address} PSM 0x{self.psm:04x} failed: {exc}") from exc
        channel.sink = self._on_data
        channel.on(channel.EVENT_CLOSE, self._on_close)
        self._channel = channel

    def _on_data(self, sdu: bytes) -> None:
        self._received += sdu
        self._data_arrived.set()

    def _on_close(self) -> None:
        self._closed.set()
        self._data_arrived.set()

    def _require_channel(self) -> l2cap.LeCreditBasedChannel:
        if self._channel is None or self._closed.is_set():
            raise ObjectChannelError("object channel is not open (link lost?)")
        return self._channel

    async def write(self, data: bytes) -> None:
        channel = self._require_channel()
        try:
            for start in range(0, len(data), self._mtu):
                chunk = bytes(data[start : start + self._mtu])
                if channel.state != channel.State.CONNECTED:
                    raise ObjectChannelError(f"object channel closed after {self.bytes_written} bytes")
                channel.write(chunk)
                await self._drain(channel)
                self.bytes_written += len(chunk)
        except (core.BaseBumbleError, hci.HCI_Error, l2cap.L2capError) as exc:
            raise ObjectChannelError(f"object channel write failed: {exc}") from exc

    async def _drain(self, channel: l2cap.LeCreditBasedChannel) -> None:
        """Wait for the channel to take the queued SDUs, or fail when it closes first (bumble's drain would hang)."""
        drained = asyncio.ensure_future(channel.drain())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({drained, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (drained, closed):
                waiter.cancel()
            await asyncio.gather(drained, closed, return_exceptions=True)
        if not drained.cancelled() and drained.done() and drained.exception() is None and not self._closed.is_set():
            return
        raise ObjectChannelError(f"object channel closed after {self.bytes_written} bytes")

    async def read(self, size: int) -> bytes:
        while len(self._received) < size:
            self._require_channel()
            self._data_arrived.clear()
            await self._data_arrived.wait()
        data = bytes(self._received[:size])
        del self._received[:size]
        return data

    async def close(self) -> None:
        channel = self._channel
        self._channel = None
        if channel is None or self._closed.is_set():
            return
        try:
            await channel.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error, l2cap.L2capError) as exc:
            raise ObjectChannelError(f"closing the object channel failed: {exc}") from exc


register_object_channel("sim", BumbleObjectChannel)

"""An in-process BLE radio: bumble software controllers on one shared link, for CI without Bluetooth hardware.

Why: the ESL access point must run unchanged on a real adapter (bleak over BlueZ) and in CI. bumble ships a complete
host stack and a software link-layer controller; putting one controller per virtual device on one
:class:`bumble.link.LocalLink` gives a radio on which advertising, connections, GATT, SMP pairing and L2CAP
credit-based channels behave like the real thing, in milliseconds (checked with bumble 0.0.236).

What this module adds on top of bumble:

- :class:`VirtualRadio` owns the link and every device on it, so one ``await radio.close()`` tears everything down
  (connections, advertising timers, background tasks): the test suite fails on leaked tasks.
- The *adapter*: one central bumble device that plays the access point's Bluetooth controller. All
  :class:`~sim.ble.bleak_backend.BumbleBleakClient` and scanner instances on a radio share it, as bleak clients on
  one BlueZ adapter do; connection attempts are serialized on it (a controller has one pending LE connection at a
  time, in bumble as in silicon).
- A registry (:func:`use_radio`, :func:`current_radio`) so bleak's ``backend=`` classes, which bleak constructs
  itself, can find the radio without extra arguments.
- :class:`_FilteredLink`: bumble's link copies every advertising PDU to every controller; with hundreds of
  advertising tags that is quadratic work for nothing, so advertising reports go only to controllers that scan or
  have a connection pending (the only ones bumble's controller would act on).

RSSI is bumble's fixed -50 dBm unless :meth:`VirtualRadio.set_rssi` sets one per advertiser (emulated badges walk
in and out of range with it). Not modelled: RF range, collisions, channel maps, connection intervals (the link
delivers on the next loop turn); PAwR (bumble has none: see :mod:`sim.ble.pawr`). Simulated time lives in the
tags' timing model instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

__all__ = ["RadioClosedError", "SyncListener", "VirtualRadio", "current_radio", "use_radio"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

ADAPTER_ADDRESS = "C0:00:00:00:00:01"
"""Address of the access point's adapter (a random static address: top two bits set)."""


class SyncListener(Protocol):
    """Something that receives PAwR subevent data (see :mod:`sim.ble.pawr`)."""

    def on_sync_packet(self, group_id: int, data: bytes) -> tuple[int, bytes] | None:
        """Handle subevent ``group_id``'s data; return ``(response slot, response data)`` to answer."""


class RadioClosedError(RuntimeError):
    """The radio was closed, or no radio is registered for the bleak backend to use."""


def _listens(controller: Controller) -> bool:
    """Would bumble's controller do anything with an advertising report? Only when scanning, connecting or syncing."""
    return bool(
        controller.le_scan_enable
        or controller.pending_le_connection is not None
        or controller.pending_periodic_advertising_syncs
        or controller.established_periodic_advertising_syncs
    )


class _FilteredLink(LocalLink):
    """A LocalLink that hands advertising PDUs only to controllers that would act on them (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.observers: set[Controller] = set()
        """Controllers that may scan, connect or sync (the adapter); tags only advertise and are not in here."""
        self.rssi_dbm: dict[str, int] = {}
        """RSSI the observers measure per advertiser address (see :meth:`VirtualRadio.set_rssi`)."""
        self._by_address: dict[str, Controller] = {}

    def find_le_controller(self, address: hci.Address) -> Controller | None:
        """bumble scans every controller and connection per ACL packet (quadratic in a 1,000-tag store); look the
        address up in a cache instead, checked against the controller's current addresses, and fall back to the
        full scan on a miss."""
        key = str(address)
        cached = self._by_address.get(key)
        if (
            cached is not None
            and cached in self.controllers
            and address in (cached.public_address, cached.random_address)
        ):
            return cached
        found: Controller | None = super().find_le_controller(address)
        if found is not None:
            self._by_address[key] = found
        return found

    def send_advertising_pdu(self, sender_controller: Controller, packet: ll.AdvertisingPdu) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(packet, ll.AdvInd | ll.AdvExtInd):
            receivers = [c for c in self.observers if c is not sender_controller and _listens(c)]
        else:
            receivers = [c for c in self.controllers if c is not sender_controller]
        for controller in receivers:
            loop.call_soon(controller.on_ll_advertising_pdu, packet)


_ReportT = TypeVar(
    "_ReportT", hci.HCI_LE_Advertising_Report_Event.Report, hci.HCI_LE_Extended_Advertising_Report_Event.Report
)


def _with_rssi(report: _ReportT, rssi_dbm: dict[str, int]) -> _ReportT:
    """``report`` with the RSSI set for its advertiser, if one is."""
    return dataclasses.replace(report, rssi=rssi_dbm.get(str(report.address).split("/")[0], report.rssi))


class _RadioController(Controller):
    """bumble's controller, completing a cancelled LE connection attempt as the spec requires.

    bumble 0.0.236 acknowledges LE Create Connection Cancel but never reports the aborted attempt, so a connect to
    an absent (out of range) peer hangs after its timeout. Core Vol 4 Part E 7.8.13: after a successful cancel the
    controller sends LE Connection Complete with status Unknown Connection Identifier; that is what this adds.

    Also, a connection request makes an advertising target send its next advertising PDU at once instead of after
    its interval: a real initiator catches the next advert within milliseconds on one of three channels, and this
    keeps connects fast while tags advertise at a realistic, cheap-to-simulate interval.
    """

    LE_DATA_LENGTH = 251
    """ACL payload per LE packet: the Data Length Extension maximum every current BLE chip negotiates (bumble's
    default of 27 makes the host fragment object data ninefold, which costs simulation time and nothing else)."""

    def __init__(self, name: str, *, link: LocalLink, public_address: str) -> None:
        super().__init__(name, link=link, public_address=public_address)
        self.le_acl_data_packet_length = self.LE_DATA_LENGTH

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        """bumble reports every advertisement at -50 dBm: apply the link's per-advertiser RSSI where one is set."""
        rssi = self.link.rssi_dbm if isinstance(self.link, _FilteredLink) else None
        if rssi:
            # New events: bumble serialises an event once, when it is built.
            if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
                packet = hci.HCI_LE_Advertising_Report_Event([_with_rssi(r, rssi) for r in packet.reports])
            elif isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
                packet = hci.HCI_LE_Extended_Advertising_Report_Event([_with_rssi(r, rssi) for r in packet.reports])
        super().send_hci_packet(packet)

    def on_hci_le_create_connection_command(self, command: hci.HCI_LE_Create_Connection_Command) -> None:
        super().on_hci_le_create_connection_command(command)
        self._nudge_target()

    def on_hci_le_extended_create_connection_command(
        self, command: hci.HCI_LE_Extended_Create_Connection_Command
    ) -> None:
        super().on_hci_le_extended_create_connection_command(command)
        self._nudge_target()

    def _nudge_target(self) -> None:
        pending = self.pending_le_connection
        if pending is None or self.link is None:
            return
        target = self.link.find_le_controller(pending.peer_address)
        if target is None or target is self:
            return
        loop = asyncio.get_running_loop()
        if target.le_legacy_advertiser.enabled:
            loop.call_soon(target.le_legacy_advertiser.send_advertising_data)
        for advertising_set in target.advertising_sets.values():
            if advertising_set.enabled:
                loop.call_soon(advertising_set.send_extended_advertising_data)

    def on_hci_le_create_connection_cancel_command(
        self, command: hci.HCI_LE_Create_Connection_Cancel_Command
    ) -> hci.HCI_StatusReturnParameters:
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        event = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0,
            role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address,
            connection_interval=0,
            peripheral_latency=0,
            supervision_timeout=0,
            central_clock_accuracy=0,
        )
        asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class VirtualRadio:
    """One virtual BLE radio: a bumble link, the AP's adapter device and any number of peripheral devices.

    Use as ``async with VirtualRadio() as radio:``; construct it inside a running event loop (bumble's host pipes
    bind to the running loop). :meth:`spawn` runs background work that :meth:`close` cancels and awaits.
    """

    def __init__(self, *, adapter_address: str = ADAPTER_ADDRESS) -> None:
        self.link = _FilteredLink()
        self._devices: dict[str, Device] = {}
        self._controllers: dict[int, Controller] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._addresses = (f"D0:00:00:00:{n >> 8:02X}:{n & 0xFF:02X}" for n in itertools.count(1))
        self._adapter_address = adapter_address
        self._adapter: Device | None = None
        self._adapter_lock = asyncio.Lock()
        self.connect_lock = asyncio.Lock()
        """Held while the adapter has an LE connection pending (one at a time per controller)."""
        self._scan_users = 0
        self._sync_listeners: list[SyncListener] = []
        self._closed = False

    async def __aenter__(self) -> VirtualRadio:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def allocate_address(self) -> str:
        """A fresh random static address for a new peripheral."""
        while True:
            address = next(self._addresses)
            if address not in self._devices:
                return address

    async def add_device(self, address: str | None = None, *, name: str = "bumble", observer: bool = True) -> Device:
        """Create a device (controller + host) on the link, power it on and return it.

        ``observer=False`` is for devices that never scan, initiate connections or sync to periodic advertising
        (emulated tags): advertising reports then skip them, which keeps hundreds of tags cheap to simulate.
        """
        self._check_open()
        address = (address or self.allocate_address()).upper()
        if address in self._devices:
            raise ValueError(f"address {address} is already on the radio")
        controller = _RadioController(name, link=self.link, public_address=address)
        device = Device(name=name, address=hci.Address(address), host=Host(controller, AsyncPipeSink(controller)))
        self._devices[address] = device
        self._controllers[id(device)] = controller
        if observer:
            self.link.observers.add(controller)
        await device.power_on()
        return device

    async def remove_device(self, device: Device) -> None:
        """Disconnect and stop ``device``, then take its controller off the link."""
        controller = self._controllers.pop(id(device), None)
        await _shut_down_device(device, controller)
        for address, known in list(self._devices.items()):
            if known is device:
                del self._devices[address]
        if controller is not None and controller in self.link.controllers:
            self.link.remove_controller(controller)
            self.link.observers.discard(controller)

    def set_rssi(self, address: str, dbm: int | None) -> None:
        """The RSSI at which the adapter hears ``address`` from now on (``None``: bumble's fixed -50 dBm).

        The radio has no distances; this is how an emulated device walks towards or away from the gateway (the
        staff badges of :mod:`sim.ble.badges`).
        """
        if dbm is None:
            self.link.rssi_dbm.pop(address.upper(), None)
        else:
            self.link.rssi_dbm[address.upper()] = dbm

    def device(self, address: str) -> Device:
        """The device with ``address`` (KeyError if none)."""
        return self._devices[address.upper()]

    async def adapter(self) -> Device:
        """The access point's central device, created on first use."""
        self._check_open()
        async with self._adapter_lock:
            if self._adapter is None:
                self._adapter = await self.add_device(self._adapter_address, name="ap-adapter")
                _unique_signalling_identifiers(self._adapter)
            return self._adapter

    def adapter_connection(self, peer_address: str) -> Connection | None:
        """The adapter's live connection to ``peer_address``, if any (used by the object channel)."""
        if self._adapter is None:
            return None
        for connection in self._adapter.connections.values():
            if str(connection.peer_address).split("/")[0] == peer_address.upper():
                return connection
        return None

    async def acquire_scanning(self) -> Device:
        """Start the adapter scanning (reference counted across scanners)."""
        adapter = await self.adapter()
        self._scan_users += 1
        if self._scan_users == 1:
            await adapter.start_scanning(filter_duplicates=False)
        return adapter

    async def release_scanning(self) -> None:
        if self._scan_users == 0:
            return
        self._scan_users -= 1
        if self._scan_users == 0 and self._adapter is not None and not self._closed:
            await self._adapter.stop_scanning()

    def register_sync_listener(self, listener: SyncListener) -> None:
        """Add a receiver of PAwR subevents (an emulated tag); :mod:`sim.ble.pawr` delivers to them."""
        self._sync_listeners.append(listener)

    def unregister_sync_listener(self, listener: SyncListener) -> None:
        if listener in self._sync_listeners:
            self._sync_listeners.remove(listener)

    @property
    def sync_listeners(self) -> tuple[SyncListener, ...]:
        return tuple(self._sync_listeners)

    def spawn(self, coro: Coroutine[Any, Any, _T], *, name: str) -> asyncio.Task[_T]:
        """Run ``coro`` in the background; the radio keeps the reference, logs its failure and cancels it on close."""
        if self._closed:
            coro.close()
            raise RadioClosedError("radio is closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("radio task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until the background tasks spawned so far have finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Disconnect everything, stop advertising and scanning, cancel and await background tasks."""
        if self._closed:
            return
        self._closed = True
        for device in list(self._devices.values()):
            await _shut_down_device(device, self._controllers.get(id(device)))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # bumble delivers link traffic with call_soon; let in-flight callbacks run before the loop may close.
        for _ in range(3):
            await asyncio.sleep(0)
        self._devices.clear()
        self._controllers.clear()
        self.link.controllers.clear()
        self.link.observers.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise RadioClosedError("radio is closed")


async def _shut_down_device(device: Device, controller: Controller | None) -> None:
    """Stop advertising and scanning and drop the device's connections; bumble has no single 'close'."""
    if device.is_advertising:
        await device.stop_advertising()
    if device.is_scanning:
        await device.stop_scanning()
    for connection in list(device.connections.values()):
        try:
            await asyncio.wait_for(connection.disconnect(), 1.0)
        except (hci.HCI_Error, TimeoutError) as exc:
            # The peer went away first (or its controller was removed): nothing is left to release.
            _log.debug("closing %s: disconnect of %s ended with %r", device.name, connection.peer_address, exc)
    if controller is not None:
        controller.le_legacy_advertiser.stop()


_radios: list[VirtualRadio] = []


def _unique_signalling_identifiers(device: Device) -> None:
    """Work around bumble 0.0.236 keying pending LE CoC connection requests by signalling identifier alone.

    Identifiers are counted per connection (each starts at 1), but the pending-request table is shared by all
    connections, so two links opening an object channel at the same time collide ("too many concurrent
    connection requests"), and a request whose link dropped before the answer blocks that identifier for good.
    A central with many links (the AP) then fails at random. Here identifiers come from one counter for all
    links, which keeps them unique among pending requests; an entry still pending when its identifier comes round
    again (255 requests later) belongs to a link that is long gone and is dropped.
    """
    manager = device.l2cap_channel_manager
    counter = itertools.cycle(range(1, 256))

    def next_identifier(connection: Connection) -> int:
        identifier = next(counter)
        manager.le_coc_requests.pop(identifier, None)
        manager.identifiers[connection.handle] = identifier
        return identifier

    manager.next_identifier = next_identifier  # type: ignore[method-assign]


@contextlib.contextmanager
def use_radio(radio: VirtualRadio) -> Iterator[VirtualRadio]:
    """Make ``radio`` the one :func:`current_radio` returns inside the ``with`` block (they nest)."""
    _radios.append(radio)
    try:
        yield radio
    finally:
        _radios.remove(radio)


def current_radio() -> VirtualRadio:
    """The radio registered by the innermost :func:`use_radio`; :class:`RadioClosedError` if none."""
    if not _radios:
        raise RadioClosedError("no VirtualRadio registered: wrap the code in `with use_radio(radio):`")
    radio = _radios[-1]
    if radio.closed:
        raise RadioClosedError("the registered VirtualRadio is closed")
    return radio

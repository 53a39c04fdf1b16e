"""The OTS object channel: how image bytes reach a Bluetooth ESL tag, behind one small interface.

An ESL tag stores images as Object Transfer Service (OTS 1.0) objects. The
access point *selects* an object and *starts* a write over GATT (OLCP, OACP), but the object contents themselves
travel over an **LE L2CAP credit-based channel (CoC) on PSM 0x0025**, not over GATT. bleak, the BLE library the
access point is built on, offers GATT only. So the one thing the AP needs beyond bleak sits behind
:class:`ObjectChannel`, with one implementation per platform:

- :class:`LinuxL2capObjectChannel`: a kernel ``AF_BLUETOOTH``/``BTPROTO_L2CAP`` ``SOCK_SEQPACKET`` socket in LE CoC
  mode, non-blocking and driven by the event loop (``loop.sock_sendall`` / ``loop.sock_recv``). BlueZ already holds
  the LE link that bleak opened; the kernel multiplexes the new channel over that same ACL connection, as long as
  the socket names the peer with its LE address type. CPython's ``(bdaddr, psm)`` tuple form cannot carry the LE
  address type (nor can it name ``AF_BLUETOOTH`` where CPython was built without it, as in our CI image), so the
  ``struct sockaddr_l2`` is packed here by :func:`sockaddr_l2` and passed to libc ``bind``/``connect`` directly.
- The simulated channel, ``sim.ble.objects.BumbleObjectChannel``, opens a real L2CAP CoC over the bumble virtual radio.
  The simulator **registers** it under the name ``"sim"`` (:func:`register_object_channel`) when its module is
  imported, so nothing in ``agents/`` imports ``sim/`` or bumble; a bus config picks a channel by registered
  name (:func:`object_channel_factory`), or names a plug-in class as ``"module:Class"``.

Contract every implementation keeps (the access point relies on it):

- A channel object is single-use: ``open(client)`` once, after the client is connected, then ``write``/``read``,
  then ``close()``. ``close()`` is idempotent and safe after a failed ``open``.
- The class is constructed with keyword arguments only: ``psm`` and ``address_type`` (``"public"`` or ``"random"``,
  the tag's LE address type, which bleak does not expose publicly). A simulated channel may ignore
  ``address_type``. Any other knob has a default.
- ``write(data)`` returns when every byte has been handed to the link (segmenting into SDUs of the channel's MTU is
  the implementation's job); ``read(size)`` returns exactly ``size`` bytes.
- Failures raise :class:`ObjectChannelError` (a :class:`ConnectionError`), chained from the platform error. The AP
  treats it like a dropped connection: re-connect and resume from the offset the tag holds.

Nothing here imports ``bleak`` at runtime: the client is only passed through, so this module stays importable (and
its sockaddr building testable) on a machine with no Bluetooth stack at all.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import errno
import importlib
import logging
import socket
import struct
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bleak import BleakClient

__all__ = [
    "OTS_L2CAP_PSM",
    "AddressType",
    "LinuxL2capObjectChannel",
    "ObjectChannel",
    "ObjectChannelError",
    "ObjectChannelFactory",
    "make_object_channel",
    "object_channel_factory",
    "register_object_channel",
    "registered_object_channels",
    "sockaddr_l2",
]

_LOG = logging.getLogger(__name__)

OTS_L2CAP_PSM = 0x0025
"""The fixed PSM of the OTS object channel (Zephyr ``BT_GATT_OTS_L2CAP_PSM``)."""

AddressType = Literal["public", "random"]
"""LE address type of the tag; Linux needs it to route an LE CoC over the existing LE link."""


class ObjectChannelError(ConnectionError):
    """The object channel could not be opened, or broke while moving data.

    Example scenarios: the tag went out of range mid-image; the kernel has no Bluetooth support; the tag refused
    the PSM. The access point re-connects and resumes the transfer from the offset the tag holds.
    """


@runtime_checkable
class ObjectChannel(Protocol):
    """One L2CAP CoC to the tag's OTS, for the length of one connection (see the module docstring's contract)."""

    async def open(self, client: BleakClient) -> None:
        """Open the channel to the tag ``client`` is connected to."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` (the slice of object contents announced by the preceding OACP Write)."""
        ...

    async def read(self, size: int) -> bytes:
        """Receive exactly ``size`` bytes (the contents announced by a preceding OACP Read)."""
        ...

    async def close(self) -> None:
        """Close the channel; idempotent."""
        ...


class ObjectChannelFactory(Protocol):
    """Builds a fresh channel per connection; what :func:`object_channel_factory` returns."""

    def __call__(self, *, psm: int, address_type: AddressType) -> ObjectChannel: ...


# --- Linux kernel L2CAP ------------------------------------------------------------------------------------------

AF_BLUETOOTH = 31
"""``AF_BLUETOOTH`` on Linux; spelled out because CPython may be built without ``socket.AF_BLUETOOTH``."""
BTPROTO_L2CAP = 0
SOL_BLUETOOTH = 274
BT_SECURITY = 4
BT_SECURITY_MEDIUM = 2
"""Encrypted link (the tag is bonded, so the LTK encrypts without user interaction)."""
BT_RCVMTU = 13
BDADDR_BREDR = 0x00
BDADDR_LE_PUBLIC = 0x01
BDADDR_LE_RANDOM = 0x02
_LE_ADDRESS_TYPES: dict[str, int] = {"public": BDADDR_LE_PUBLIC, "random": BDADDR_LE_RANDOM}
_SOCKADDR_L2 = struct.Struct("<HH6sHBx")
"""``struct sockaddr_l2``: family u16, psm le16, bdaddr (6 bytes, reversed), cid le16, bdaddr_type u8, padding."""
BDADDR_ANY = "00:00:00:00:00:00"


def _bdaddr_bytes(address: str) -> bytes:
    """``"AA:BB:CC:DD:EE:FF"`` -> the kernel's ``bdaddr_t`` (least significant byte first)."""
    parts = address.split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"not a Bluetooth device address: {address!r}")
    try:
        return bytes(int(part, 16) for part in reversed(parts))
    except ValueError as exc:
        raise ValueError(f"not a Bluetooth device address: {address!r}") from exc


def sockaddr_l2(address: str, *, psm: int = 0, cid: int = 0, address_type: AddressType | None = None) -> bytes:
    """Pack a Linux ``struct sockaddr_l2`` for ``bind``/``connect`` of an LE L2CAP socket.

    ``address_type`` ``None`` means BR/EDR; an LE CoC needs ``"public"`` or ``"random"`` on *both* ends: the kernel
    refuses (``EINVAL``) an LE destination from a socket bound as BR/EDR.
    """
    if not 0 <= psm <= 0xFFFF or not 0 <= cid <= 0xFFFF:
        raise ValueError(f"psm {psm:#x} / cid {cid:#x} out of range")
    if address_type is not None and address_type not in _LE_ADDRESS_TYPES:
        raise ValueError(f"unknown LE address type {address_type!r}")
    kind = BDADDR_BREDR if address_type is None else _LE_ADDRESS_TYPES[address_type]
    return _SOCKADDR_L2.pack(AF_BLUETOOTH, psm, _bdaddr_bytes(address), cid, kind)


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    return ctypes.CDLL(name, use_errno=True)


def _sys_call(function_name: str, fd: int, sockaddr: bytes) -> int:
    """Call libc ``bind``/``connect`` with a raw sockaddr; returns 0 or the errno."""
    buffer = ctypes.create_string_buffer(sockaddr, len(sockaddr))
    function = getattr(_libc(), function_name)
    result = function(fd, buffer, len(sockaddr))
    return 0 if result == 0 else ctypes.get_errno()


class LinuxL2capObjectChannel:
    """OTS object channel over a kernel LE CoC socket (BlueZ hosts; not exercisable in CI, see the module docstring).

    ``adapter_address`` is the local adapter to bind (default: any); ``mtu`` the receive MTU announced to the tag.
    """

    def __init__(
        self,
        *,
        psm: int = OTS_L2CAP_PSM,
        address_type: AddressType = "public",
        adapter_address: str = BDADDR_ANY,
        mtu: int = 512,
    ) -> None:
        self.psm = psm
        self.address_type: AddressType = address_type
        self.adapter_address = adapter_address
        self.mtu = mtu
        self._socket: socket.socket | None = None

    def connect_arguments(self, peer_address: str) -> tuple[bytes, bytes]:
        """The ``(bind, connect)`` sockaddrs for ``peer_address``; split out so it is testable without a kernel."""
        local = sockaddr_l2(self.adapter_address, address_type="public")
        remote = sockaddr_l2(peer_address, psm=self.psm, address_type=self.address_type)
        return local, remote

    async def open(self, client: BleakClient) -> None:
        if self._socket is not None:
            raise ObjectChannelError("object channel already open")
        local, remote = self.connect_arguments(client.address)
        try:
            sock = socket.socket(AF_BLUETOOTH, socket.SOCK_SEQPACKET, BTPROTO_L2CAP)
        except OSError as exc:
            raise ObjectChannelError(f"no kernel Bluetooth L2CAP sockets here: {exc}") from exc
        self._socket = sock
        try:
            sock.setsockopt(SOL_BLUETOOTH, BT_SECURITY, struct.pack("<BB", BT_SECURITY_MEDIUM, 0))
            sock.setsockopt(SOL_BLUETOOTH, BT_RCVMTU, struct.pack("<H", self.mtu))
            sock.setblocking(False)
            failure = _sys_call("bind", sock.fileno(), local)
            if failure:
                raise OSError(failure, f"bind to {self.adapter_address}: {errno.errorcode.get(failure, failure)}")
            await self._connect(sock, remote, client.address)
        except OSError as exc:
            await self.close()
            raise ObjectChannelError(f"L2CAP PSM {self.psm:#06x} to {client.address}: {exc}") from exc
        _LOG.debug("object channel open to %s psm %#06x", client.address, self.psm)

    async def _connect(self, sock: socket.socket, remote: bytes, peer: str) -> None:
        failure = _sys_call("connect", sock.fileno(), remote)
        if failure == 0:
            return
        if failure not in (errno.EINPROGRESS, errno.EAGAIN):
            raise OSError(failure, f"connect: {errno.errorcode.get(failure, failure)}")
        loop = asyncio.get_running_loop()
        writable: asyncio.Future[None] = loop.create_future()

        def on_writable() -> None:
            if not writable.done():
                writable.set_result(None)

        loop.add_writer(sock.fileno(), on_writable)
        try:
            await writable
        finally:
            loop.remove_writer(sock.fileno())
        failure = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if failure:
            raise OSError(failure, f"connect to {peer}: {errno.errorcode.get(failure, failure)}")

    async def write(self, data: bytes) -> None:
        sock = self._require_open()
        loop = asyncio.get_running_loop()
        try:
            # SEQPACKET keeps SDU boundaries: one send per SDU of at most the channel MTU.
            for start in range(0, len(data), self.mtu):
                await loop.sock_sendall(sock, data[start : start + self.mtu])
        except OSError as exc:
            raise ObjectChannelError(f"object channel write failed: {exc}") from exc

    async def read(self, size: int) -> bytes:
        sock = self._require_open()
        loop = asyncio.get_running_loop()
        received = bytearray()
        try:
            while len(received) < size:
                chunk = await loop.sock_recv(sock, max(self.mtu, size - len(received)))
                if not chunk:
                    raise ObjectChannelError(f"object channel closed after {len(received)} of {size} bytes")
                received += chunk
        except OSError as exc:
            raise ObjectChannelError(f"object channel read failed: {exc}") from exc
        return bytes(received[:size])

    async def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _require_open(self) -> socket.socket:
        if self._socket is None:
            raise ObjectChannelError("object channel is not open")
        return self._socket


# --- selection by name -------------------------------------------------------------------------------------------

_OBJECT_CHANNELS: dict[str, ObjectChannelFactory] = {"linux": LinuxL2capObjectChannel}
"""Config names -> channel classes; the simulator adds ``"sim"`` (see :func:`register_object_channel`)."""


def register_object_channel(name: str, factory: ObjectChannelFactory) -> None:
    """Make ``name`` usable as a bus's ``object_channel``; a second registration of the same name must agree.

    The gateway registers ``"linux"`` itself. Others register theirs where they define them, the way a third-party
    backend plugs in: the simulator's :mod:`sim.ble.objects` registers ``"sim"`` when it is imported, so nothing here
    names the simulator.
    """
    if not name.isidentifier():
        raise ValueError(f"object channel name {name!r} must be a plain word (letters, digits, underscore)")
    known = _OBJECT_CHANNELS.get(name)
    if known is not None and known is not factory:
        raise ValueError(f"object channel {name!r} is already registered as {known!r}")
    _OBJECT_CHANNELS[name] = factory


def registered_object_channels() -> list[str]:
    """The names a bus's ``object_channel`` may use now, sorted."""
    return sorted(_OBJECT_CHANNELS)


def object_channel_factory(kind: str) -> ObjectChannelFactory:
    """Resolve a config value (a registered name or a ``"module:Class"`` plug-in) to a channel class.

    A plug-in's module is imported here, when the bus is built; an unknown name is a :class:`ValueError` that lists
    the registered names.
    """
    registered = _OBJECT_CHANNELS.get(kind)
    if registered is not None:
        return registered
    module_name, _, class_name = kind.partition(":")
    if not module_name or not class_name:
        names = ", ".join(repr(name) for name in registered_object_channels())
        raise ValueError(
            f"unknown object channel {kind!r}: use one of the registered channels ({names}) or 'module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"object channel {kind!r}: cannot import {module_name}: {exc}") from exc
    try:
        factory: ObjectChannelFactory = getattr(module, class_name)
    except AttributeError as exc:
        raise ValueError(f"object channel {kind!r}: {module_name} has no {class_name}") from exc
    return factory


def make_object_channel(kind: str, *, psm: int = OTS_L2CAP_PSM, address_type: AddressType = "public") -> ObjectChannel:
    """One fresh channel of the configured kind (convenience over :func:`object_channel_factory`)."""
    return object_channel_factory(kind)(psm=psm, address_type=address_type)

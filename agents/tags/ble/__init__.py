"""Bluetooth ESL access point: e-ink price tags over BLE (ESL Service 0x1857, images over OTS).

The second tag link beside :mod:`agents.tags.serial_transport`. It speaks the Bluetooth SIG Electronic Shelf Label
profile through bleak's public API only (``BleakScanner``, ``BleakClient``), with the bleak backend class taken from
config, so the same code drives a real adapter (BlueZ, bleak's default on Linux) and the in-process bumble radio
of ``sim.ble`` in CI. Byte layouts come from the sans-IO codecs in :mod:`protocols.esl`.

Modules, bottom-up (each imports only modules above it in this list):

- :mod:`agents.tags.ble.errors`: the error tree; :class:`BleTransportError` is what the tag service catches.
- :mod:`agents.tags.ble.objects`: the OTS object channel (L2CAP CoC, which bleak lacks) behind a small interface,
  a Linux kernel-socket implementation, and a registry of channels by config name (the simulator registers its
  own, so nothing here imports it).
- :mod:`agents.tags.ble.records`: settings, discovered tags, tag information, the per-tag :class:`EslTagRecord`
  the caller persists, upload results.
- :mod:`agents.tags.ble.link`: one GATT connection: deadlines, typed errors, control-point response matching.
- :mod:`agents.tags.ble.control_point`: ECP commands and response matching.
- :mod:`agents.tags.ble.object_transfer`: resumable image uploads over OTS (control-point bytes from
  :mod:`protocols.ots`, sans-IO).
- :mod:`agents.tags.ble.session`: :class:`~agents.tags.ble.session.TagSession`, one connection with ECP, OTS and
  the information and configuration characteristics.
- :mod:`agents.tags.ble.access_point`: :class:`EslAccessPoint`: scan, connect with retries, onboard, upload, ECP.
- :mod:`agents.tags.ble.transport`: :class:`BleTagTransport`, the serial transport's interface over the AP.
- :mod:`agents.tags.ble.bus`: :class:`~agents.tags.ble.bus.BleBus`, a bus of the tag service (onboarding onto
  declared addresses).
"""

from agents.tags.ble.access_point import EslAccessPoint
from agents.tags.ble.errors import BleTagError, BleTransportError
from agents.tags.ble.records import AccessPointSettings, DiscoveredTag, EslTagRecord
from agents.tags.ble.transport import BleImageResult, BleTagTransport

__all__ = [
    "AccessPointSettings",
    "BleImageResult",
    "BleTagError",
    "BleTagTransport",
    "BleTransportError",
    "DiscoveredTag",
    "EslAccessPoint",
    "EslTagRecord",
]

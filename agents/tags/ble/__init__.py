"""Bluetooth ESL access point: e-ink price tags over BLE (ESL Service 0x1857, images over OTS).

The second tag link beside :mod:`agents.tags.serial_transport`. It speaks the Bluetooth SIG Electronic Shelf Label
profile through bleak's public API only (``BleakScanner``, ``BleakClient``), with the bleak backend class taken from
config, so the same code drives a real adapter (BlueZ, bleak's default on Linux) and the in-process bumble radio
of ``sim.ble`` in CI. Byte layouts come from the sans-IO codecs in :mod:`protocols.esl`.

- :mod:`agents.tags.ble.objects`: the OTS object channel (L2CAP CoC, which bleak lacks) behind a small interface.
"""

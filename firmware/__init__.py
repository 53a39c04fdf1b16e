"""Packaging shim, CPython only: makes ``firmware`` an importable package so ``esltag/`` ships inside the wheel.

Nothing here runs on a microcontroller and nothing imports this module's contents: the gateway and the simulator
find the firmware files with :func:`agents.firmware_files.esltag_dir`. The MicroPython code is ``esltag/``, which
imports itself as the top-level package ``esltag``, as it does on a board.
"""

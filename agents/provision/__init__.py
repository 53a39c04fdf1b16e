"""Installer tools: gateway provisioning and tag-board flashing (``tools/flash.py``, ``storeedge flash``).

Library first, command line second: :mod:`.gateway` plans and writes a gateway's
files into a target tree (keys and certificates from :mod:`.identity`), :mod:`.batch` reads a CSV of gateways,
:mod:`.device` deploys firmware over a :class:`.raw_repl.RawRepl`, :mod:`.esp32` builds esptool's arguments, and
:mod:`.cli` is the thin shell over them. Errors and their exit codes are in :mod:`.errors`.
"""

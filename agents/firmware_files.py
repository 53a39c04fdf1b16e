"""Where the MicroPython tag firmware (``esltag``) is on this machine, in a checkout and in an installed wheel.

Why one function: the installer (``flash.py device`` copies the files to a board) and the simulator (serial tags
run the firmware on CPython) both need the firmware's source folder. In a checkout it is ``firmware/esltag`` at the
repository top level; in a wheel it is package data of the top-level package ``firmware``, next to ``agents`` in
``site-packages``. Both are found the same way, through ``importlib.resources``, so no caller computes paths
relative to its own file (which only ever worked from a checkout).

The folder must be a real directory (files are globbed, read and put on ``sys.path``), so a zipped install is
refused with :class:`FirmwareNotFoundError` instead of failing later.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from agents.core.errors import StoreedgeError

__all__ = ["FIRMWARE_PACKAGE", "FirmwareNotFoundError", "esltag_dir"]

FIRMWARE_PACKAGE = "firmware"
"""The CPython packaging shim that carries ``esltag/`` as data (``firmware/__init__.py``)."""


class FirmwareNotFoundError(StoreedgeError, FileNotFoundError):
    """The firmware files are not installed as a folder; ``str(err)`` says what was looked for and how to fix it."""


def esltag_dir() -> Path:
    """The ``esltag`` firmware package folder (holding ``__init__.py``, ``tag.py``, ...)."""
    try:
        root = resources.files(FIRMWARE_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FirmwareNotFoundError(
            f"the firmware package {FIRMWARE_PACKAGE!r} is not installed: reinstall storeedge (pip install .)"
        ) from exc
    folder = root / "esltag"
    if not isinstance(folder, Path) or not (folder / "__init__.py").is_file():
        raise FirmwareNotFoundError(
            f"the esltag firmware is not a folder on disk ({folder}): install storeedge unzipped"
        )
    return folder

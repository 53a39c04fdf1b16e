"""Write the MicroPython base image to an ESP32-family board with esptool (``flash.py esp32-base``).

A thin wrapper on purpose: esptool already knows every chip, reset sequence and flash mode; what the installer needs
from us is the right argument list (chip, port, baud, the image's offset for that chip) and an error that says what
to do when a board does not enter its bootloader. The arguments follow esptool 5's CLI (dashed subcommands such as
``write-flash``), which ``esptool.main(argv)`` accepts as a library call, so nothing is spawned and no PATH
lookup is involved.

esptool is imported only when writing (``importlib``), so the rest of the installer tool works without it. The
write itself needs a real board: it is not exercised by the tests, which check the argument building.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from agents.provision.errors import EsptoolError, ProvisionInputError
from agents.provision.raw_repl import check_port_exists

__all__ = ["DEFAULT_BAUD", "IMAGE_OFFSETS", "esptool_arguments", "write_base_image"]

IMAGE_OFFSETS = {
    # Where MicroPython's combined firmware .bin starts: after the ROM's 4 KiB on the original ESP32 and the S2,
    # at 0 on the newer chips (MicroPython's download page gives the same offsets).
    "esp32": 0x1000,
    "esp32s2": 0x1000,
    "esp32s3": 0x0,
    "esp32c3": 0x0,
    "esp32c6": 0x0,
}
DEFAULT_BAUD = 460800


def esptool_arguments(
    *, port: str, image: Path, chip: str = "esp32", baud: int = DEFAULT_BAUD, erase_all: bool = False
) -> list[str]:
    """esptool's argv for writing ``image`` at the chip's MicroPython offset, e.g.
    ``--chip esp32 --port P --baud 460800 write-flash 0x1000 fw.bin``."""
    if chip not in IMAGE_OFFSETS:
        raise ProvisionInputError(f"--chip: unknown chip {chip!r}; known: {', '.join(IMAGE_OFFSETS)}")
    if baud <= 0:
        raise ProvisionInputError(f"--baud: must be positive, got {baud}")
    arguments = ["--chip", chip, "--port", port, "--baud", str(baud), "write-flash"]
    if erase_all:
        arguments.append("--erase-all")
    arguments += [f"0x{IMAGE_OFFSETS[chip]:x}", str(image)]
    return arguments


def write_base_image(arguments: list[str], *, port: str, image: Path) -> None:
    """Run esptool with ``arguments`` (from :func:`esptool_arguments`); needs a board in its serial bootloader."""
    check_port_exists(port)
    if not image.is_file():
        raise ProvisionInputError(f"--image: no such file {image}")
    try:
        esptool = importlib.import_module("esptool")
    except ImportError as exc:
        raise EsptoolError("esptool is not installed: pip install esptool") from exc
    try:
        esptool.main(arguments)
    except esptool.FatalError as exc:
        raise EsptoolError(
            f"esptool failed: {exc} (hold BOOT while pressing RESET to enter the bootloader, or try --baud 115200)"
        ) from exc
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise EsptoolError(f"esptool exited with status {exc.code}") from exc

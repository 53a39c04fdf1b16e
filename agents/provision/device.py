"""Deploy the esltag MicroPython firmware and a per-device config file to a board through its raw REPL.

What ``flash.py device`` does, in order, and why:

1. Collect the firmware's ``esltag/*.py`` (found by :func:`agents.firmware_files.esltag_dir`, in a checkout or an
   installed wheel; without ``manifest.py``, a build-time file for freezing the package into a
   firmware image; it calls ``metadata()``, which does not exist at run time) and render ``/esltag_device.json``
   (ESL address, bus, the firmware version and digest it was deployed with).
2. Enter the raw REPL and define a few helpers on the board (mkdir -p, sha256 of a file, free bytes).
3. Ask the board for each target file's sha256: files already identical are not written again (re-running over a
   board that is up to date only verifies it). Check the free space against the bytes still to write.
4. Write each file in chunks carried as base64 text (any byte survives the REPL that way), into ``/lib/esltag``.
   An ``ENOSPC`` from the board becomes :class:`FilesystemFullError` naming free and needed bytes.
5. Verify: sizes always; with ``verify=True`` the sha256 of every file, computed on the board with ``hashlib``,
   against the host's. A difference is :class:`HashMismatchError`.
6. Soft-reset and import the deployed package in the fresh interpreter: ``esltag.__version__`` read back from the
   board is the firmware version reported (it proves the files are importable, not only present), and is compared
   with the host copy's version.
7. Leave the raw REPL, so the board is back in its friendly REPL for a terminal or mpremote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.firmware_files import FirmwareNotFoundError, esltag_dir
from agents.provision.errors import (
    FilesystemFullError,
    HashMismatchError,
    ProvisionError,
    ProvisionInputError,
    RemoteExecError,
)
from agents.provision.raw_repl import RawRepl
from agents.tags.config import parse_address

__all__ = [
    "DEVICE_CONFIG_PATH",
    "DeployReport",
    "DeviceFile",
    "collect_firmware",
    "default_firmware_dir",
    "deploy",
    "device_config",
    "firmware_version",
]

PACKAGE_DIR_ON_BOARD = "/lib/esltag"
DEVICE_CONFIG_PATH = "/esltag_device.json"
CHUNK_BYTES = 512
"""Raw bytes per write snippet (684 characters of base64): small enough for a board's compile heap."""
ENOSPC = 28
BUILD_ONLY_FILES = frozenset({"manifest.py"})
_BUS_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")  # the bus name rule of agents.tags.config
_VERSION = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)

# Defined once per session on the board; names start with _se_ to stay clear of user globals.
_BOARD_HELPERS = """
import os, binascii, hashlib
def _se_mkdirs(path):
    cur = ''
    for part in path.strip('/').split('/'):
        cur += '/' + part
        try:
            os.mkdir(cur)
        except OSError as e:
            if e.args[0] != 17:
                raise
def _se_sha(path):
    h = hashlib.sha256()
    try:
        f = open(path, 'rb')
    except OSError:
        return '-'
    while True:
        b = f.read(512)
        if not b:
            break
        h.update(b)
    f.close()
    return binascii.hexlify(h.digest()).decode()
def _se_size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1
def _se_free():
    try:
        s = os.statvfs('/')
        return s[0] * s[4]
    except (AttributeError, OSError):
        return -1
"""


@dataclass(frozen=True)
class DeviceFile:
    """One file to put on the board: absolute board path and content."""

    board_path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class DeployReport:
    port: str
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    verified_sha256: bool = False
    firmware_version: str = ""
    firmware_digest: str = ""
    raw_paste: bool = False
    device_config: str = ""  # what the board's device config file holds after deploying (or "" when none)


ProgressCallback = Callable[[str, int], None]
"""Called with (board path, bytes just written) as the deployment advances."""


def firmware_version(firmware_dir: Path) -> str:
    """``__version__`` of the firmware package, read from its ``__init__.py`` text (not imported on the host)."""
    init = firmware_dir / "__init__.py"
    try:
        match = _VERSION.search(init.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionInputError(f"cannot read the firmware version from {init}: {exc.strerror}") from exc
    if match is None:
        raise ProvisionInputError(f"{init} defines no __version__ = '...'")
    return match.group(1)


def default_firmware_dir() -> Path:
    """The installed esltag firmware folder; :class:`ProvisionInputError` when this installation lacks it."""
    try:
        return esltag_dir()
    except FirmwareNotFoundError as exc:
        raise ProvisionInputError(f"{exc}; or give --firmware-dir") from exc


def collect_firmware(firmware_dir: Path | None = None, board_dir: str = PACKAGE_DIR_ON_BOARD) -> list[DeviceFile]:
    """The package's run-time ``.py`` files as :class:`DeviceFile` under ``board_dir``, sorted by name.

    ``firmware_dir`` defaults to the installed firmware (:func:`default_firmware_dir`).
    """
    if firmware_dir is None:
        firmware_dir = default_firmware_dir()
    sources = sorted(p for p in firmware_dir.glob("*.py") if p.name not in BUILD_ONLY_FILES)
    if not sources:
        raise ProvisionInputError(f"no firmware .py files in {firmware_dir}")
    return [DeviceFile(f"{board_dir.rstrip('/')}/{source.name}", source.read_bytes()) for source in sources]


def firmware_digest(files: list[DeviceFile]) -> str:
    """One sha256 over the firmware's paths and file hashes: identifies exactly what was deployed."""
    lines = "".join(f"{f.board_path}\0{f.sha256}\n" for f in sorted(files, key=lambda f: f.board_path))
    return hashlib.sha256(lines.encode()).hexdigest()


def device_config(settings: dict[str, Any], *, version: str, digest: str, path: str = DEVICE_CONFIG_PATH) -> DeviceFile:
    """The per-device JSON file. ``settings`` must hold ``esl_address`` ("group/id") and ``bus`` (a bus name)."""
    missing = [key for key in ("esl_address", "bus") if key not in settings]
    if missing:
        raise ProvisionInputError(f"device config lacks {', '.join(missing)} (give --esl-address and --bus)")
    try:
        address = parse_address(str(settings["esl_address"]))
    except ValueError as exc:
        raise ProvisionInputError(f"esl_address: {exc}") from exc
    bus = settings["bus"]
    if not isinstance(bus, str) or not _BUS_NAME.match(bus):
        raise ProvisionInputError(f"bus: must be a bus name like 'bus-a' (lower case, digits, _ . -), got {bus!r}")
    document = {
        **settings,
        "esl_address": f"{address.group_id}/{address.esl_id}",
        "group_id": address.group_id,
        "esl_id": address.esl_id,
        "bus": bus,
        "firmware": {"version": version, "digest": digest},
    }
    return DeviceFile(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII paths is a valid MicroPython string literal


def deploy(
    repl: RawRepl,
    firmware: list[DeviceFile],
    config_file: DeviceFile | None,
    *,
    verify: bool,
    expected_version: str,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> DeployReport:
    """Put ``firmware`` and ``config_file`` on the board behind ``repl`` (steps in the module docstring).

    Without ``config_file`` the board's device config is left as it is (re-flashing firmware keeps the address).
    """
    files = [*firmware] if config_file is None else [*firmware, config_file]
    report = DeployReport(port=repl.name, firmware_digest=firmware_digest(firmware))
    repl.enter()
    repl.exec(_BOARD_HELPERS)
    report.raw_paste = bool(repl.raw_paste)

    to_write: list[DeviceFile] = []
    replaced_bytes = 0
    for device_file in files:
        if not force and repl.eval_text(f"print(_se_sha({_quoted(device_file.board_path)}))") == device_file.sha256:
            report.unchanged.append(device_file.board_path)
            if progress is not None:
                progress(device_file.board_path, len(device_file.data))
            continue
        to_write.append(device_file)
        replaced_bytes += max(0, int(repl.eval_text(f"print(_se_size({_quoted(device_file.board_path)}))")))
    needed = sum(len(f.data) for f in to_write)
    free = int(repl.eval_text("print(_se_free())"))
    if to_write and 0 <= free < needed - replaced_bytes:
        raise FilesystemFullError(
            f"filesystem full on {repl.name}: {free} bytes free, need {needed - replaced_bytes} "
            "(remove old files, e.g. mpremote rm -r :lib/old, or erase the filesystem)"
        )

    for directory in sorted({f.board_path.rsplit("/", 1)[0] for f in to_write} - {""}):
        repl.exec(f"_se_mkdirs({_quoted(directory)})")
    for device_file in to_write:
        _write_file(repl, device_file, needed=needed, progress=progress)
        report.written.append(device_file.board_path)

    _verify(repl, files, sha256=verify)
    report.verified_sha256 = verify

    repl.soft_reset()
    try:
        report.firmware_version = repl.eval_text("import esltag\nprint(esltag.__version__)")
    except RemoteExecError as exc:
        raise ProvisionError(
            f"the firmware was written and verified, but 'import esltag' fails on the board after a soft reset: "
            f"{exc.traceback.splitlines()[-1] if exc.traceback else exc}. Is {PACKAGE_DIR_ON_BOARD.rsplit('/', 1)[0]} "
            "on the board's sys.path?"
        ) from exc
    if report.firmware_version != expected_version:
        raise ProvisionError(
            f"the board reports firmware {report.firmware_version!r} after the reset, expected {expected_version!r}"
            " (a frozen esltag in the firmware image shadows the deployed files?)"
        )
    report.device_config = repl.eval_text(
        f"try:\n print(open({_quoted(DEVICE_CONFIG_PATH)}).read().replace(chr(10), ' '))\nexcept OSError:\n print('')"
    )
    repl.leave()
    return report


def _write_file(repl: RawRepl, device_file: DeviceFile, *, needed: int, progress: ProgressCallback | None) -> None:
    path = _quoted(device_file.board_path)
    try:
        repl.exec(f"_se_f = open({path}, 'wb')")
        for offset in range(0, len(device_file.data), CHUNK_BYTES):
            chunk = device_file.data[offset : offset + CHUNK_BYTES]
            encoded = base64.b64encode(chunk).decode("ascii")
            repl.exec(f"_se_f.write(binascii.a2b_base64(b'{encoded}'))")
            if progress is not None:
                progress(device_file.board_path, len(chunk))
        repl.exec("_se_f.close()")
    except RemoteExecError as exc:
        if exc.errno != ENOSPC:
            raise
        # Close what can be closed and free the partial file; report the space as the board sees it.
        repl.exec(f"try:\n _se_f.close()\nexcept OSError:\n pass\ntry:\n os.remove({path})\nexcept OSError:\n pass")
        free = int(repl.eval_text("print(_se_free())"))
        free_text = f"{free} bytes free" if free >= 0 else "free space unknown"
        raise FilesystemFullError(
            f"filesystem full on {repl.name} while writing {device_file.board_path}: {free_text}, need {needed} "
            "(remove old files, e.g. mpremote rm -r :lib/old, or erase the filesystem)"
        ) from exc


def _verify(repl: RawRepl, files: list[DeviceFile], *, sha256: bool) -> None:
    mismatches = []
    for device_file in files:
        path = _quoted(device_file.board_path)
        if sha256:
            on_board = repl.eval_text(f"print(_se_sha({path}))")
            if on_board != device_file.sha256:
                mismatches.append(f"{device_file.board_path}: board sha256 {on_board}, host {device_file.sha256}")
        else:
            size = int(repl.eval_text(f"print(_se_size({path}))"))
            if size != len(device_file.data):
                mismatches.append(f"{device_file.board_path}: board size {size}, host {len(device_file.data)}")
    if mismatches:
        raise HashMismatchError(
            f"{len(mismatches)} file(s) differ on {repl.name} after writing: " + "; ".join(mismatches)
        )

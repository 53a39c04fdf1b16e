"""The MicroPython interpreter the virtual board and the firmware tests run on, installed on first use.

What: the official MicroPython webassembly port (npm ``@micropython/micropython-webassembly-pyscript``, pinned
below; the only pin of it in the project) running on Node.js. :func:`ensure_micropython_runtime` returns its
``micropython.mjs``, installing it first when this machine has none.

Why a user cache and not the package: the port is an npm package, not a Python one, so a wheel cannot depend on
it; installing it once per user and version (``$XDG_CACHE_HOME/storeedge/micropython-<version>``, else
``~/.cache/...``) makes ``storeedge sim board`` work after a plain ``pip install`` and lets the board, the tests
and ``scripts/firmware-test`` share one copy. ``$STOREEDGE_MICROPYTHON_MJS`` points at a copy installed elsewhere
(an offline machine) and turns the installer off.

How it installs, and why:

* ``npm install --ignore-scripts``: nothing from the registry runs at install time (the port needs no build step).
* Into a temporary folder next to the target, renamed into place only once ``micropython.mjs`` is there, so an
  interrupted or failed install never leaves a half-filled cache that later runs would take for a good one.
* One line before (what and where) and one after (done, how long), because it downloads for several seconds and
  a silent first run looks hung. Errors say what to install (``apt-get install -y nodejs npm``) or what failed.

``python3 -m sim.micropython_runtime`` installs if needed and prints the path of ``micropython.mjs`` (this is how
``scripts/firmware-test`` finds it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "MICROPYTHON_NPM_PACKAGE",
    "MICROPYTHON_VERSION",
    "MODULE_ENV",
    "BoardRuntimeError",
    "ensure_micropython_runtime",
    "micropython_module_path",
    "runtime_dir",
]

MICROPYTHON_VERSION = "1.27.0"
MICROPYTHON_NPM_PACKAGE = f"@micropython/micropython-webassembly-pyscript@{MICROPYTHON_VERSION}"
"""The interpreter: the official MicroPython webassembly port, at the one version the project is tested with."""
MODULE_ENV = "STOREEDGE_MICROPYTHON_MJS"
"""Environment variable naming an installed ``micropython.mjs``; when set, nothing is installed."""
_MODULE_IN_PREFIX = Path("node_modules", "@micropython", "micropython-webassembly-pyscript", "micropython.mjs")
_APT_HINT = "apt-get install -y nodejs npm"

ProgressCallback = Callable[[str], None]
"""Receives one human-readable line per install step."""


class BoardRuntimeError(RuntimeError):
    """The MicroPython runtime cannot start: Node or the webassembly package is missing, or it failed to boot."""


def _print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def runtime_dir() -> Path:
    """The per-user install folder of the pinned port: ``$XDG_CACHE_HOME/storeedge/micropython-<version>``."""
    cache_home = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative value; so does this.
    base = Path(cache_home) if os.path.isabs(cache_home) else Path.home() / ".cache"
    return base / "storeedge" / f"micropython-{MICROPYTHON_VERSION}"


def micropython_module_path() -> Path:
    """``micropython.mjs`` of the port: ``$STOREEDGE_MICROPYTHON_MJS``, else the one in :func:`runtime_dir`."""
    override = os.environ.get(MODULE_ENV)
    return Path(override) if override else runtime_dir() / _MODULE_IN_PREFIX


def ensure_micropython_runtime(*, timeout: float = 240.0, progress: ProgressCallback = _print_to_stderr) -> Path:
    """Return ``micropython.mjs``, installing the pinned port with npm into :func:`runtime_dir` if it is missing.

    This is the only step that needs the network (the npm registry, once per user and version); the board itself
    runs offline. Raises :class:`BoardRuntimeError` when npm is missing, the install fails or the override in
    ``$STOREEDGE_MICROPYTHON_MJS`` names no file.
    """
    module = micropython_module_path()
    if module.is_file():
        return module
    if os.environ.get(MODULE_ENV):
        raise BoardRuntimeError(f"{MODULE_ENV}={module} does not exist: unset it to install the runtime there")
    target = runtime_dir()
    npm = shutil.which("npm")
    if npm is None:
        raise BoardRuntimeError(
            f"npm is needed once to install the MicroPython runtime ({MICROPYTHON_NPM_PACKAGE}) into {target}: "
            f"{_APT_HINT}"
        )
    progress(f"installing the MicroPython runtime (npm {MICROPYTHON_NPM_PACKAGE}) into {target} ...")
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _npm_install(npm, staging, timeout)
        if target.exists() and not module.is_file():
            shutil.rmtree(target)  # left over from an install made some other way; replaced as a whole
        try:
            staging.rename(target)
        except OSError:
            if not module.is_file():  # not a concurrent install that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"MicroPython runtime installed in {time.monotonic() - started:.0f} s")
    return module


def _npm_install(npm: str, prefix: Path, timeout: float) -> None:
    command = [npm, "install", "--ignore-scripts", "--no-save", "--no-package-lock", "--no-audit", "--no-fund"]
    command += ["--loglevel=error", "--prefix", str(prefix), MICROPYTHON_NPM_PACKAGE]
    try:
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BoardRuntimeError(
            f"npm install {MICROPYTHON_NPM_PACKAGE} did not finish within {timeout:.0f} s: is the npm registry "
            "reachable?"
        ) from exc
    if result.returncode != 0 or not (prefix / _MODULE_IN_PREFIX).is_file():
        detail = " ".join(result.stderr.strip().splitlines()[-3:]) or "no output"
        raise BoardRuntimeError(
            f"npm install {MICROPYTHON_NPM_PACKAGE} failed (exit {result.returncode}; it needs the npm registry "
            f"once): {detail}"
        )


if __name__ == "__main__":
    try:
        print(ensure_micropython_runtime())
    except BoardRuntimeError as error:
        print(f"storeedge: {error}", file=sys.stderr)
        sys.exit(1)

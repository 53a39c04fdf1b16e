"""The bridge to real MicroPython: one Node process running the official webassembly port, framed over a pipe.

The interpreter is the official MicroPython webassembly port (npm ``@micropython/micropython-webassembly-pyscript``,
installed on first use into a user cache by :mod:`sim.micropython_runtime`, the same copy ``scripts/firmware-test``
uses) in one long-lived Node process per board (``sim/board_runtime.mjs``). What the wasm port lacks for mpremote is
shimmed by that script in MicroPython code injected at every start: OSError numbers mapped from Emscripten's to the
Linux values real ports print (``[Errno 2] ENOENT``, which mpremote maps back to host errors), ``os.ilistdir``
entries with sizes, and a small ``machine`` module (``soft_reset``/``reset`` raise SystemExit, which soft-resets the
board as on real ports). The interpreter's filesystem is mirrored into the board's state folder after every snippet.

Frames, both ways: one ASCII kind byte, a big-endian u32 length, the payload; the kinds are listed at the top of
``sim/board_runtime.mjs``. The interpreter runs synchronously and cannot be interrupted: the board interrupts
running code by killing the process and starting a fresh one on the mirrored filesystem.
"""

from __future__ import annotations

import json
import logging
import os
import select
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sim.micropython_runtime import BoardRuntimeError

__all__ = ["RUNTIME_SCRIPT", "Frame", "NodeRuntime"]

logger = logging.getLogger(__name__)

RUNTIME_SCRIPT = Path(__file__).resolve().parents[1] / "board_runtime.mjs"


@dataclass
class Frame:
    kind: str
    payload: bytes


class NodeRuntime:
    """One Node process running MicroPython (``board_runtime.mjs``): frames in on stdin, frames out on stdout."""

    def __init__(self, node: str, module: Path, state_dir: Path, *, run_boot: bool, timeout: float) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            [node, str(RUNTIME_SCRIPT), str(module), str(state_dir), "boot" if run_boot else "noboot"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdin is not None and self.process.stdout is not None and self.process.stderr is not None
        self.stdin = self.process.stdin
        self.stdout_fd = self.process.stdout.fileno()
        self.stderr_fd = self.process.stderr.fileno()
        os.set_blocking(self.stdout_fd, False)
        os.set_blocking(self.stderr_fd, False)
        self._inbound = bytearray()
        self.eof = False
        self.boot_output = bytearray()
        self.version = ""
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BoardRuntimeError(f"MicroPython runtime did not start within {timeout} s")
                select.select([self.stdout_fd, self.stderr_fd], [], [], remaining)
                self.drain_stderr()
                frames = self.read_frames()
                for frame in frames:
                    if frame.kind == "O":
                        self.boot_output += frame.payload
                    elif frame.kind == "R":
                        self.version = str(json.loads(frame.payload)["version"])
                if self.version:
                    return
                if self.eof:
                    raise BoardRuntimeError(f"MicroPython runtime exited at start (exit {self.process.wait(5)})")
        except BaseException:
            self.close()
            raise

    def send(self, kind: str, payload: bytes) -> None:
        self.stdin.write(kind.encode("ascii") + struct.pack(">I", len(payload)) + payload)
        self.stdin.flush()

    def read_frames(self) -> list[Frame]:
        """Frames complete so far (non-blocking); sets ``eof`` when the process closed its stdout."""
        while True:
            try:
                chunk = os.read(self.stdout_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self.eof = True
                break
            self._inbound += chunk
        frames = []
        while len(self._inbound) >= 5:
            (length,) = struct.unpack_from(">I", self._inbound, 1)
            if len(self._inbound) < 5 + length:
                break
            frames.append(Frame(chr(self._inbound[0]), bytes(self._inbound[5 : 5 + length])))
            del self._inbound[: 5 + length]
        return frames

    def drain_stderr(self) -> None:
        """Log what Node wrote to stderr (its own warnings and errors; the interpreter's stderr comes as output)."""
        while True:
            try:
                chunk = os.read(self.stderr_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            logger.warning("MicroPython runtime: %s", chunk.decode("utf-8", "replace").rstrip())

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def close(self) -> None:
        """End the process: EOF on its stdin lets it finish; kill it if it does not within a few seconds."""
        if not self.stdin.closed:
            try:
                self.stdin.close()
            except BrokenPipeError:
                logger.debug("MicroPython runtime had already exited when its stdin was closed")
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.warning("MicroPython runtime did not exit on EOF; killing it")
            self.kill()
        assert self.process.stdout is not None and self.process.stderr is not None
        self.process.stdout.close()
        self.process.stderr.close()

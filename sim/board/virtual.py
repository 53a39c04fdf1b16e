"""A virtual MicroPython board on a pty, running a real MicroPython interpreter, for tools that expect a board.

Why: ``tools/flash.py device`` and the third-party ``mpremote`` talk to MicroPython boards over a serial port
through the raw REPL. Testing them needs a board; this module is one with
no hardware. It opens a pty (``os.openpty``), serves the master side, and the tool opens the slave path (or the
``link`` symlink to it) like any serial port.

Design, and why each part is where it is:

* The **REPL protocol** is implemented here, in Python, byte for byte as MicroPython's ``shared/runtime/pyexec.c``
  behaves (and as mpremote's ``transport_serial.py`` expects):
  the friendly REPL (banner, ``>>> ``, line editing, paste mode), Ctrl-C, Ctrl-D
  soft reset (``MPY: soft reboot``), the raw REPL (Ctrl-A; ``OK`` + stdout + ``\\x04`` + traceback + ``\\x04`` +
  ``>``; Ctrl-B back) and raw-paste mode (``\\x05A\\x01``, ``R\\x01`` + u16 window + ``\\x01``, one ``\\x01`` per
  window consumed, ``\\x04`` echoed at the end). The webassembly port's own event-driven REPL hangs on raw-paste,
  which is why the protocol is not delegated to it.
* The **code runs on real MicroPython**: the official webassembly port (npm
  ``@micropython/micropython-webassembly-pyscript``, installed on first use into a user cache by
  :mod:`sim.micropython_runtime`, the same copy ``scripts/firmware-test`` uses) in one
  long-lived Node process per board (``sim/board_runtime.mjs``), fed over a length-prefixed frame protocol on its
  stdin/stdout. What the wasm port lacks for mpremote is shimmed in MicroPython code injected at every start:
  OSError numbers mapped from Emscripten's to the Linux values real ports print (``[Errno 2] ENOENT``, which
  mpremote maps back to host errors), ``os.ilistdir`` entries with sizes, and a small ``machine`` module
  (``soft_reset``/``reset`` raise SystemExit, which soft-resets the board as on real ports).
* The **filesystem** lives in the interpreter's in-memory FS and is mirrored into ``state_dir`` (a host directory;
  a temporary one when not given) after every executed snippet. A soft reset loads a fresh interpreter from the
  mirror (state gone, files kept; ``boot.py`` runs, and ``main.py`` when in the friendly REPL, as on a board), and
  ``files()`` reads the mirror, so tests can inspect and pre-seed the board with plain pathlib.
* **Ctrl-C while code runs**: the wasm interpreter runs synchronously and cannot be interrupted, so the board kills
  the Node process, reports ``KeyboardInterrupt`` and starts a fresh interpreter on the mirrored filesystem. What
  the interrupted snippet changed in files since it started is lost, and so are its globals; on a real board they
  would survive. Everything typed while code runs is buffered (type-ahead), as a UART buffers it.

What it does not model: baud rate and line errors, DTR/RTS resets, a hard reset (``machine.reset()`` behaves as
``soft_reset``), stdin reads from the running program (``sys.stdin`` is at EOF; ``input()`` waits until Ctrl-C),
mpremote ``mount`` (needs stdin), ``main.py`` at power-on (only ``boot.py`` runs when the board starts; both run on
a soft reset in the friendly REPL), and output line endings in the raw REPL (stdout is passed through as the wasm
port writes it, ``42\\n``; tracebacks and REPL text use ``\\r\\n`` as on boards; the friendly REPL converts
``\\n`` to ``\\r\\n`` for terminals).

One worker thread does all pty and runtime I/O with ``select`` (no blocking call can stall it, and none runs on an
event loop); ``stop()`` wakes it through a pipe, joins it, ends the Node process and closes every fd.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import tty
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import FrameType, TracebackType

from sim.micropython_runtime import (
    MICROPYTHON_NPM_PACKAGE,
    BoardRuntimeError,
    ensure_micropython_runtime,
    micropython_module_path,
)

__all__ = [
    "MICROPYTHON_NPM_PACKAGE",
    "BoardRuntimeError",
    "VirtualBoard",
    "ensure_micropython_runtime",
    "main_board",
    "micropython_module_path",
]

logger = logging.getLogger(__name__)

_RUNTIME_SCRIPT = Path(__file__).resolve().parents[1] / "board_runtime.mjs"

BANNER_MACHINE = "storeedge virtual board with webassembly"
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
KEYBOARD_INTERRUPT = b"KeyboardInterrupt: \r\n"
_PASTE_MODE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
_OUTPUT_QUEUE_LIMIT = 1 << 20
"""Bytes of pty output kept while nobody reads the port; older output is dropped (a UART would lose it too)."""

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 0x01, 0x02, 0x03, 0x04, 0x05


class _Mode(Enum):
    FRIENDLY = "friendly"
    FRIENDLY_PASTE = "friendly paste mode"
    RAW = "raw"
    RAW_PASTE = "raw-paste"


class _Job(Enum):
    """What the runtime is busy with; decides how its completion is framed on the pty."""

    RAW_EXEC = "raw exec"
    FRIENDLY_EXEC = "friendly exec"
    SOFT_RESET = "soft reset"


@dataclass
class _Frame:
    kind: str
    payload: bytes


class _Runtime:
    """One Node process running MicroPython (``board_runtime.mjs``): frames in on stdin, frames out on stdout."""

    def __init__(self, node: str, module: Path, state_dir: Path, *, run_boot: bool, timeout: float) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            [node, str(_RUNTIME_SCRIPT), str(module), str(state_dir), "boot" if run_boot else "noboot"],
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

    def read_frames(self) -> list[_Frame]:
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
            frames.append(_Frame(chr(self._inbound[0]), bytes(self._inbound[5 : 5 + length])))
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


class VirtualBoard:
    """A MicroPython board behind a pty. ``port`` is the slave device path; ``link`` (optional) a symlink to it.

    Use as a context manager or call :meth:`start` / :meth:`stop`. The board starts in the friendly REPL, idle,
    as a board that booted before anyone opened its port. ``files()`` and ``state_dir`` show the board's
    filesystem (consistent whenever no code is running).

    Arguments (keyword-only after ``link``):
        link: where to create a symlink to the pty slave (removed on stop); must not exist yet.
        state_dir: host directory mirroring the board's filesystem; created if missing, kept on stop. A temporary
            directory (deleted on stop) when None. Files already there are on the board at start.
        paste_window: raw-paste flow-control window in bytes (MicroPython's default stdin buffer 256 / 2).
        start_timeout: seconds allowed for the interpreter to start.
    """

    def __init__(
        self,
        link: Path | None = None,
        *,
        state_dir: Path | None = None,
        paste_window: int = 128,
        start_timeout: float = 30.0,
    ) -> None:
        if not 1 <= paste_window <= 0xFFFF:
            raise ValueError(f"paste_window must be 1..65535, got {paste_window}")
        self.link = link
        self.paste_window = paste_window
        self.start_timeout = start_timeout
        self._own_state_dir = state_dir is None
        self.state_dir = Path(tempfile.mkdtemp(prefix="storeedge-board-")) if state_dir is None else state_dir
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r: int | None = None
        self._wake_w: int | None = None
        self.port = ""
        self._runtime: _Runtime | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self.version = ""
        # REPL state, touched only by the worker thread once started.
        self._mode = _Mode.FRIENDLY
        self._line = bytearray()
        self._continuation = False
        self._escape = 0
        self._last_was_cr = False
        self._paste_remain = 0
        self._job: _Job | None = None
        self._job_exit = False
        self._job_traceback = b""
        self._input = bytearray()
        self._output = bytearray()
        self.soft_resets = 0
        self.interrupts = 0

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the interpreter (installed on first use, see ``ensure_micropython_runtime``), open the pty, create
        the link and the worker thread."""
        if self._thread is not None:
            raise RuntimeError("board already started")
        node = shutil.which("node")
        if node is None:
            raise BoardRuntimeError("Node.js (>= 18) runs the MicroPython webassembly port: apt-get install -y nodejs")
        module = ensure_micropython_runtime()
        self._node, self._module = node, module
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._runtime = _Runtime(node, module, self.state_dir, run_boot=True, timeout=self.start_timeout)
            # sys.version is '3.4.0; MicroPython v1.27.0 on 2025-12-10'; the banner shows the part after.
            self.version = self._runtime.version.split("MicroPython ", 1)[-1]
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            tty.setraw(self._master)
            os.set_blocking(self._master, False)
            self.port = os.ttyname(self._slave)
            self._wake_r, self._wake_w = os.pipe()
            if self.link is not None:
                self.link.symlink_to(self.port)
            self._thread = threading.Thread(target=self._run, name=f"sim-board {self.port}", daemon=True)
            self._thread.start()
        except BaseException:
            self._release()
            raise

    def stop(self) -> None:
        """Stop the worker thread, end the interpreter, close the pty, remove the link (and a temporary state)."""
        self._stopping.set()
        if self._thread is not None:
            assert self._wake_w is not None
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                raise RuntimeError("virtual board worker thread did not stop")
            self._thread = None
        self._release()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise RuntimeError("virtual board worker failed") from failure

    def _release(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        for name in ("_master", "_slave", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        if self._own_state_dir and self.state_dir.exists():
            shutil.rmtree(self.state_dir)

    # ---- inspection -----------------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Every file on the board, by absolute board path (``/main.py``), from the host mirror."""
        result: dict[str, bytes] = {}
        for path in sorted(self.state_dir.rglob("*")):
            if path.is_file():
                result["/" + path.relative_to(self.state_dir).as_posix()] = path.read_bytes()
        return result

    # ---- worker ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as error:  # reported by stop(); the thread must not die silently
            logger.exception("virtual board on %s failed", self.port)
            self._failure = error

    def _serve(self) -> None:
        assert self._master is not None and self._wake_r is not None
        while not self._stopping.is_set():
            runtime = self._runtime
            assert runtime is not None
            readable = [self._master, self._wake_r, runtime.stdout_fd, runtime.stderr_fd]
            writable = [self._master] if self._output else []
            ready_read, ready_write, _ = select.select(readable, writable, [], 1.0)
            if self._wake_r in ready_read:
                return
            if runtime.stderr_fd in ready_read:
                runtime.drain_stderr()
            if runtime.stdout_fd in ready_read:
                self._on_runtime_frames(runtime.read_frames())
                if runtime.eof and self._runtime is runtime:
                    self._on_runtime_lost(runtime)
            if self._master in ready_read:
                self._on_pty_input(self._read_master())
            if self._master in ready_write or self._output:
                self._flush_output()

    def _read_master(self) -> bytes:
        assert self._master is not None
        try:
            return os.read(self._master, 4096)
        except BlockingIOError:
            return b""

    def _write(self, data: bytes) -> None:
        self._output += data
        if len(self._output) > _OUTPUT_QUEUE_LIMIT:
            dropped = len(self._output) - _OUTPUT_QUEUE_LIMIT
            del self._output[:dropped]
            logger.warning("nobody reads %s: dropped %d bytes of board output", self.port, dropped)
        self._flush_output()

    def _flush_output(self) -> None:
        assert self._master is not None
        while self._output:
            try:
                written = os.write(self._master, self._output)
            except BlockingIOError:
                return
            del self._output[:written]

    # ---- pty input: the REPL state machine ------------------------------------------------------------------
    def _on_pty_input(self, data: bytes) -> None:
        if self._job is not None and self._job is not _Job.SOFT_RESET and CTRL_C in data:
            # Ctrl-C interrupts the running code; it is consumed, the bytes around it stay buffered.
            index = data.index(CTRL_C)
            self._input += data[:index] + data[index + 1 :]
            self._interrupt()
        else:
            self._input += data
        self._process_input()

    def _process_input(self) -> None:
        while self._input and self._job is None:
            byte = self._input.pop(0)
            if self._mode is _Mode.RAW:
                self._raw_byte(byte)
            elif self._mode is _Mode.RAW_PASTE:
                self._raw_paste_byte(byte)
            elif self._mode is _Mode.FRIENDLY_PASTE:
                self._friendly_paste_byte(byte)
            else:
                self._friendly_byte(byte)
        if self._job not in (None, _Job.SOFT_RESET) and CTRL_C in self._input:
            # Ctrl-C that arrived in the same read as the code it interrupts.
            self._input.remove(CTRL_C)
            self._interrupt()
            self._process_input()

    def _raw_byte(self, byte: int) -> None:
        if byte == CTRL_A:
            if len(self._line) == 2 and self._line[0] == CTRL_E:
                if self._line[1] == ord("A"):
                    self._start_raw_paste()
                    return
                self._write(b"R\x00")  # raw-paste command understood, this sub-command unsupported
            else:
                self._write(RAW_REPL_BANNER)
            self._line.clear()
            self._write(b">")
        elif byte == CTRL_B:
            self._mode = _Mode.FRIENDLY
            self._line.clear()
            self._write(b"\r\n" + self._banner())
            self._prompt()
        elif byte == CTRL_C:
            self._line.clear()
        elif byte == CTRL_D:
            self._write(b"OK")
            if not self._line:
                self._write(b"\r\n")
                self._soft_reset()
            else:
                code = bytes(self._line)
                self._line.clear()
                self._start_job(_Job.RAW_EXEC, "X", code)
        else:
            self._line.append(byte)

    def _start_raw_paste(self) -> None:
        self._mode = _Mode.RAW_PASTE
        self._line.clear()
        self._paste_remain = self.paste_window
        # Window size, then 0x01: the host may send two windows before the first acknowledgement.
        self._write(b"R\x01" + struct.pack("<H", self.paste_window) + b"\x01")

    def _raw_paste_byte(self, byte: int) -> None:
        if byte == CTRL_D:
            self._write(b"\x04")  # acknowledge end of data
            self._mode = _Mode.RAW
            code = bytes(self._line)
            self._line.clear()
            self._start_job(_Job.RAW_EXEC, "X", code)
        elif byte == CTRL_C:
            self._write(b"\x04\x04" + KEYBOARD_INTERRUPT + b"\x04>")
            self._mode = _Mode.RAW
            self._line.clear()
        else:
            self._line.append(byte)
            self._paste_remain -= 1
            if self._paste_remain == 0:
                self._write(b"\x01")
                self._paste_remain = self.paste_window

    def _friendly_paste_byte(self, byte: int) -> None:
        if byte == CTRL_C:
            self._write(b"\r\n")
            self._restart_friendly_input()
        elif byte == CTRL_D:
            self._write(b"\r\n")
            code = bytes(self._line)
            self._mode = _Mode.FRIENDLY
            self._line.clear()
            self._start_job(_Job.FRIENDLY_EXEC, "X", code)
        else:
            self._line.append(byte)
            self._write(b"\r\n=== " if byte == ord("\r") else bytes([byte]))

    def _friendly_byte(self, byte: int) -> None:
        if self._escape:
            # Swallow VT100 cursor keys (ESC [ ... final byte): no history or cursor movement here.
            self._escape = 0 if (self._escape == 2 and 0x40 <= byte <= 0x7E) else 2
            return
        was_cr, self._last_was_cr = self._last_was_cr, byte == ord("\r")
        if byte == 0x1B:
            self._escape = 1
        elif byte in (ord("\r"), ord("\n")):
            if byte == ord("\n") and was_cr:
                return
            self._write(b"\r\n")
            self._friendly_enter()
        elif byte in (0x08, 0x7F):
            if self._line and (not self._continuation or self._line[-1:] != b"\n"):
                self._line.pop()
                self._write(b"\x08 \x08")
        elif byte == CTRL_C:
            self._write(b"\r\n")
            self._restart_friendly_input()
        elif byte == CTRL_D and (self._continuation and not self._current_line()):
            self._friendly_execute()
        elif byte == CTRL_D and not self._line:
            self._write(b"\r\n")
            self._soft_reset()
        elif self._continuation:
            if byte >= 0x20 or byte == ord("\t"):
                self._line.append(byte)
                self._write(bytes([byte]))
        elif byte == CTRL_A:
            self._mode = _Mode.RAW
            self._line.clear()
            self._write(b"\r\n" + RAW_REPL_BANNER + b">")
        elif byte == CTRL_B:
            self._write(b"\r\n" + self._banner())
            self._restart_friendly_input()
        elif byte == CTRL_E:
            self._mode = _Mode.FRIENDLY_PASTE
            self._line.clear()
            self._write(_PASTE_MODE_BANNER)
        elif byte >= 0x20 or byte == ord("\t"):
            self._line.append(byte)
            self._write(bytes([byte]))

    def _current_line(self) -> bytes:
        return bytes(self._line).rsplit(b"\n", 1)[-1]

    def _friendly_enter(self) -> None:
        current = self._current_line()
        if not self._continuation:
            if not current.strip():
                self._restart_friendly_input()
                return
            if _needs_continuation(current):
                self._line += b"\n"
                self._continuation = True
                self._write(b"... ")
                return
            self._friendly_execute()
            return
        if current.strip():
            self._line += b"\n"
            self._write(b"... ")
            return
        self._friendly_execute()

    def _friendly_execute(self) -> None:
        code = bytes(self._line) + b"\n"
        self._line.clear()
        self._continuation = False
        self._start_job(_Job.FRIENDLY_EXEC, "S", code)

    def _restart_friendly_input(self) -> None:
        self._mode = _Mode.FRIENDLY
        self._line.clear()
        self._continuation = False
        self._prompt()

    def _prompt(self) -> None:
        self._write(b">>> ")

    def _banner(self) -> bytes:
        return (f'MicroPython {self.version}; {BANNER_MACHINE}\r\nType "help()" for more information.\r\n').encode()

    # ---- jobs on the runtime --------------------------------------------------------------------------------
    def _start_job(self, job: _Job, kind: str, payload: bytes) -> None:
        assert self._runtime is not None
        self._job, self._job_exit, self._job_traceback = job, False, b""
        try:
            self._runtime.send(kind, payload)
        except BrokenPipeError:
            self._on_runtime_lost(self._runtime)

    def _soft_reset(self) -> None:
        self.soft_resets += 1
        self._write(SOFT_REBOOT)
        self._line.clear()
        self._continuation = False
        self._start_job(_Job.SOFT_RESET, "Z", b"main" if self._mode is _Mode.FRIENDLY else b"")

    def _on_runtime_frames(self, frames: list[_Frame]) -> None:
        for frame in frames:
            if frame.kind == "O":
                cooked = self._job is not _Job.RAW_EXEC
                self._write(_cook(frame.payload) if cooked else frame.payload)
            elif frame.kind == "E":
                self._job_traceback += frame.payload
            elif frame.kind == "D":
                self._job_exit = bool(json.loads(frame.payload)["exit"])
                self._finish_job()
            else:
                raise BoardRuntimeError(f"unexpected frame {frame.kind!r} from the MicroPython runtime")

    def _finish_job(self) -> None:
        job, self._job = self._job, None
        if job is _Job.RAW_EXEC:
            self._write(b"\x04" + self._job_traceback + b"\x04")
            if self._job_exit:
                self._soft_reset()
                return
            self._write(b">")
        elif job is _Job.FRIENDLY_EXEC:
            self._write(self._job_traceback)
            if self._job_exit:
                self._soft_reset()
                return
            self._restart_friendly_input()
        elif job is _Job.SOFT_RESET:
            if self._mode is _Mode.RAW:
                self._write(RAW_REPL_BANNER + b">")
            else:
                self._write(self._banner())
                self._restart_friendly_input()
        self._process_input()

    def _interrupt(self) -> None:
        """Ctrl-C while code runs: end the interpreter process and report KeyboardInterrupt on a fresh one."""
        runtime = self._runtime
        assert runtime is not None
        self.interrupts += 1
        runtime.kill()
        frames = runtime.read_frames()  # output (or the completion) that was already on its way
        self._replace_runtime(runtime)
        self._on_runtime_frames(frames)
        if self._job is not None:
            self._job_traceback = KEYBOARD_INTERRUPT
            self._finish_job()

    def _on_runtime_lost(self, runtime: _Runtime) -> None:
        code = runtime.process.wait(timeout=10)
        logger.error("MicroPython runtime for %s exited unexpectedly (exit %s); restarting it", self.port, code)
        self._replace_runtime(runtime)
        if self._job is not None:
            self._job_traceback = f"RuntimeError: virtual board interpreter exited ({code})\r\n".encode()
            self._finish_job()

    def _replace_runtime(self, runtime: _Runtime) -> None:
        runtime.close()
        self._runtime = _Runtime(self._node, self._module, self.state_dir, run_boot=False, timeout=self.start_timeout)


def _needs_continuation(line: bytes) -> bool:
    """The friendly REPL's rule for a ``... `` prompt (simplified): a compound statement header or an open bracket."""
    text = line.rstrip()
    opened = sum(text.count(c) for c in b"([{") - sum(text.count(c) for c in b")]}")
    return text.endswith(b":") or text.endswith(b"\\") or opened > 0


def _cook(data: bytes) -> bytes:
    """Terminal line endings, as a board's stdout writes them: ``\\n`` becomes ``\\r\\n``."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def main_board(link: str, state_dir: str | None) -> int:
    """``storeedge sim board --link PATH``: serve a virtual board until SIGTERM or SIGINT; return 0."""
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in handlers:
        signal.signal(signum, request_stop)
    try:
        with VirtualBoard(Path(link), state_dir=Path(state_dir) if state_dir else None) as board:
            print(f"virtual MicroPython board on {board.port} (link {link}); MicroPython {board.version}", flush=True)
            while not stop_requested.wait(0.5):
                pass
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return 0

"""The virtual board: a pty served by one worker thread, the REPL on it, and a MicroPython interpreter behind.

It opens a pty (``os.openpty``), serves the master side, and a tool opens the slave path (or the ``link``
symlink to it) like any serial port. Bytes typed on the port go to the REPL state machine (:mod:`sim.board.repl`),
code it runs goes to the interpreter (:mod:`sim.board.runtime`), and their answers go back on the port.

* The **filesystem** lives in the interpreter's in-memory FS and is mirrored into ``state_dir`` (a host directory;
  a temporary one when not given) after every executed snippet. A soft reset loads a fresh interpreter from the
  mirror (state gone, files kept; ``boot.py`` runs, and ``main.py`` when in the friendly REPL, as on a board), and
  ``files()`` reads the mirror, so tests can inspect and pre-seed the board with plain pathlib.
* **Ctrl-C while code runs**: the wasm interpreter runs synchronously and cannot be interrupted, so the board kills
  the Node process, reports ``KeyboardInterrupt`` and starts a fresh interpreter on the mirrored filesystem. What
  the interrupted snippet changed in files since it started is lost, and so are its globals; on a real board they
  would survive.
* One **worker thread** does all pty and runtime I/O with ``select`` (no blocking call can stall it, and none runs
  on an event loop); ``stop()`` wakes it through a pipe, joins it, ends the Node process and closes every fd.
  Output nobody reads is kept up to a limit, then the oldest is dropped, as a UART would lose it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import tempfile
import threading
import tty
from pathlib import Path
from types import TracebackType

from sim.board.repl import KEYBOARD_INTERRUPT, Repl
from sim.board.runtime import Frame, NodeRuntime
from sim.micropython_runtime import BoardRuntimeError, ensure_micropython_runtime

__all__ = ["VirtualBoard"]

logger = logging.getLogger(__name__)

_OUTPUT_QUEUE_LIMIT = 1 << 20
"""Bytes of pty output kept while nobody reads the port; older output is dropped (a UART would lose it too)."""


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
        self._runtime: NodeRuntime | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self.version = ""
        self._output = bytearray()
        self.interrupts = 0
        # The REPL, touched only by the worker thread once started.
        self._repl = Repl(paste_window=paste_window, write=self._write, run=self._send_job, interrupt=self._interrupt)

    @property
    def soft_resets(self) -> int:
        """Soft resets so far (Ctrl-D, ``machine.soft_reset()``, SystemExit)."""
        return self._repl.soft_resets

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
            self._runtime = NodeRuntime(node, module, self.state_dir, run_boot=True, timeout=self.start_timeout)
            # sys.version is '3.4.0; MicroPython v1.27.0 on 2025-12-10'; the banner shows the part after.
            self.version = self._runtime.version.split("MicroPython ", 1)[-1]
            self._repl.version = self.version
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
                self._repl.feed(self._read_master())
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

    # ---- jobs on the runtime --------------------------------------------------------------------------------
    def _send_job(self, kind: str, payload: bytes) -> None:
        assert self._runtime is not None
        try:
            self._runtime.send(kind, payload)
        except BrokenPipeError:
            self._on_runtime_lost(self._runtime)

    def _on_runtime_frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            if frame.kind == "O":
                self._repl.job_output(frame.payload)
            elif frame.kind == "E":
                self._repl.job_error(frame.payload)
            elif frame.kind == "D":
                self._repl.job_done(bool(json.loads(frame.payload)["exit"]))
            else:
                raise BoardRuntimeError(f"unexpected frame {frame.kind!r} from the MicroPython runtime")

    def _interrupt(self) -> None:
        """Ctrl-C while code runs: end the interpreter process and report KeyboardInterrupt on a fresh one."""
        runtime = self._runtime
        assert runtime is not None
        self.interrupts += 1
        runtime.kill()
        frames = runtime.read_frames()  # output (or the completion) that was already on its way
        self._replace_runtime(runtime)
        self._on_runtime_frames(frames)
        if self._repl.job is not None:
            self._repl.abort_job(KEYBOARD_INTERRUPT)

    def _on_runtime_lost(self, runtime: NodeRuntime) -> None:
        code = runtime.process.wait(timeout=10)
        logger.error("MicroPython runtime for %s exited unexpectedly (exit %s); restarting it", self.port, code)
        self._replace_runtime(runtime)
        if self._repl.job is not None:
            self._repl.abort_job(f"RuntimeError: virtual board interpreter exited ({code})\r\n".encode())

    def _replace_runtime(self, runtime: NodeRuntime) -> None:
        runtime.close()
        self._runtime = NodeRuntime(
            self._node, self._module, self.state_dir, run_boot=False, timeout=self.start_timeout
        )

"""MicroPython's REPL as a byte-level state machine: what a board answers to the bytes typed on its port.

Implemented byte for byte as MicroPython's ``shared/runtime/pyexec.c`` behaves (and as mpremote's
``transport_serial.py`` expects): the friendly REPL (banner, ``>>> ``, line editing, paste mode), Ctrl-C, Ctrl-D
soft reset (``MPY: soft reboot``), the raw REPL (Ctrl-A; ``OK`` + stdout + ``\\x04`` + traceback + ``\\x04`` +
``>``; Ctrl-B back) and raw-paste mode (``\\x05A\\x01``, ``R\\x01`` + u16 window + ``\\x01``, one ``\\x01`` per
window consumed, ``\\x04`` echoed at the end). The webassembly port's own event-driven REPL hangs on raw-paste,
which is why the protocol is not delegated to it.

No I/O here: :meth:`Repl.feed` takes the bytes typed on the port, the REPL's answers go to ``write``, code to run
goes to ``run`` as a job, and the board reports the job's output and end back (:meth:`Repl.job_output`,
:meth:`Repl.job_done`, :meth:`Repl.abort_job`). Everything typed while a job runs is buffered (type-ahead), as a
UART buffers it; Ctrl-C asks the board to ``interrupt`` the job.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import Enum

__all__ = [
    "BANNER_MACHINE",
    "KEYBOARD_INTERRUPT",
    "RAW_REPL_BANNER",
    "SOFT_REBOOT",
    "Job",
    "Mode",
    "Repl",
]

BANNER_MACHINE = "storeedge virtual board with webassembly"
RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
KEYBOARD_INTERRUPT = b"KeyboardInterrupt: \r\n"
_PASTE_MODE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 0x01, 0x02, 0x03, 0x04, 0x05


class Mode(Enum):
    FRIENDLY = "friendly"
    FRIENDLY_PASTE = "friendly paste mode"
    RAW = "raw"
    RAW_PASTE = "raw-paste"


class Job(Enum):
    """What the runtime is busy with; decides how its completion is framed on the pty."""

    RAW_EXEC = "raw exec"
    FRIENDLY_EXEC = "friendly exec"
    SOFT_RESET = "soft reset"


RunJob = Callable[[str, bytes], None]
"""Sends a job to the interpreter: frame kind (``X`` execute, ``S`` single REPL input, ``Z`` soft reset), payload."""


class Repl:
    """The REPL state of one board. ``version`` is shown in the banner; ``soft_resets`` counts the soft resets.

    Arguments (keyword-only):
        paste_window: raw-paste flow-control window in bytes.
        write: receives every byte the board prints on its port.
        run: starts a job on the interpreter (see :data:`RunJob`); the board answers with :meth:`job_done`.
        interrupt: called on Ctrl-C while a job runs; the board ends the job (:meth:`abort_job`).
    """

    def __init__(
        self, *, paste_window: int, write: Callable[[bytes], None], run: RunJob, interrupt: Callable[[], None]
    ) -> None:
        self.paste_window = paste_window
        self.version = ""
        self.soft_resets = 0
        self.mode = Mode.FRIENDLY
        self.job: Job | None = None
        self._write = write
        self._run = run
        self._interrupt = interrupt
        self._line = bytearray()
        self._continuation = False
        self._escape = 0
        self._last_was_cr = False
        self._paste_remain = 0
        self._job_exit = False
        self._job_traceback = b""
        self._input = bytearray()

    # ---- pty input ------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes typed on the port."""
        if self.job is not None and self.job is not Job.SOFT_RESET and CTRL_C in data:
            # Ctrl-C interrupts the running code; it is consumed, the bytes around it stay buffered.
            index = data.index(CTRL_C)
            self._input += data[:index] + data[index + 1 :]
            self._interrupt()
        else:
            self._input += data
        self._process_input()

    def _process_input(self) -> None:
        while self._input and self.job is None:
            byte = self._input.pop(0)
            if self.mode is Mode.RAW:
                self._raw_byte(byte)
            elif self.mode is Mode.RAW_PASTE:
                self._raw_paste_byte(byte)
            elif self.mode is Mode.FRIENDLY_PASTE:
                self._friendly_paste_byte(byte)
            else:
                self._friendly_byte(byte)
        if self.job not in (None, Job.SOFT_RESET) and CTRL_C in self._input:
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
            self.mode = Mode.FRIENDLY
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
                self._start_job(Job.RAW_EXEC, "X", code)
        else:
            self._line.append(byte)

    def _start_raw_paste(self) -> None:
        self.mode = Mode.RAW_PASTE
        self._line.clear()
        self._paste_remain = self.paste_window
        # Window size, then 0x01: the host may send two windows before the first acknowledgement.
        self._write(b"R\x01" + struct.pack("<H", self.paste_window) + b"\x01")

    def _raw_paste_byte(self, byte: int) -> None:
        if byte == CTRL_D:
            self._write(b"\x04")  # acknowledge end of data
            self.mode = Mode.RAW
            code = bytes(self._line)
            self._line.clear()
            self._start_job(Job.RAW_EXEC, "X", code)
        elif byte == CTRL_C:
            self._write(b"\x04\x04" + KEYBOARD_INTERRUPT + b"\x04>")
            self.mode = Mode.RAW
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
            self.mode = Mode.FRIENDLY
            self._line.clear()
            self._start_job(Job.FRIENDLY_EXEC, "X", code)
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
            self.mode = Mode.RAW
            self._line.clear()
            self._write(b"\r\n" + RAW_REPL_BANNER + b">")
        elif byte == CTRL_B:
            self._write(b"\r\n" + self._banner())
            self._restart_friendly_input()
        elif byte == CTRL_E:
            self.mode = Mode.FRIENDLY_PASTE
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
        self._start_job(Job.FRIENDLY_EXEC, "S", code)

    def _restart_friendly_input(self) -> None:
        self.mode = Mode.FRIENDLY
        self._line.clear()
        self._continuation = False
        self._prompt()

    def _prompt(self) -> None:
        self._write(b">>> ")

    def _banner(self) -> bytes:
        return (f'MicroPython {self.version}; {BANNER_MACHINE}\r\nType "help()" for more information.\r\n').encode()

    # ---- jobs -----------------------------------------------------------------------------------------------
    def _start_job(self, job: Job, kind: str, payload: bytes) -> None:
        self.job, self._job_exit, self._job_traceback = job, False, b""
        self._run(kind, payload)

    def _soft_reset(self) -> None:
        self.soft_resets += 1
        self._write(SOFT_REBOOT)
        self._line.clear()
        self._continuation = False
        self._start_job(Job.SOFT_RESET, "Z", b"main" if self.mode is Mode.FRIENDLY else b"")

    def job_output(self, data: bytes) -> None:
        """What the running code printed: passed through in the raw REPL, with terminal line endings elsewhere."""
        self._write(data if self.job is Job.RAW_EXEC else _cook(data))

    def job_error(self, data: bytes) -> None:
        """Part of the running code's traceback, shown when the job ends."""
        self._job_traceback += data

    def job_done(self, exited: bool) -> None:
        """The job ended; ``exited`` when the code raised SystemExit (which soft-resets the board)."""
        self._job_exit = exited
        self._finish_job()

    def abort_job(self, traceback: bytes) -> None:
        """End the job with ``traceback`` in place of its own (interrupted, or the interpreter died)."""
        self._job_traceback = traceback
        self._finish_job()

    def _finish_job(self) -> None:
        job, self.job = self.job, None
        if job is Job.RAW_EXEC:
            self._write(b"\x04" + self._job_traceback + b"\x04")
            if self._job_exit:
                self._soft_reset()
                return
            self._write(b">")
        elif job is Job.FRIENDLY_EXEC:
            self._write(self._job_traceback)
            if self._job_exit:
                self._soft_reset()
                return
            self._restart_friendly_input()
        elif job is Job.SOFT_RESET:
            if self.mode is Mode.RAW:
                self._write(RAW_REPL_BANNER + b">")
            else:
                self._write(self._banner())
                self._restart_friendly_input()
        self._process_input()


def _needs_continuation(line: bytes) -> bool:
    """The friendly REPL's rule for a ``... `` prompt (simplified): a compound statement header or an open bracket."""
    text = line.rstrip()
    opened = sum(text.count(c) for c in b"([{") - sum(text.count(c) for c in b")]}")
    return text.endswith(b":") or text.endswith(b"\\") or opened > 0


def _cook(data: bytes) -> bytes:
    """Terminal line endings, as a board's stdout writes them: ``\\n`` becomes ``\\r\\n``."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

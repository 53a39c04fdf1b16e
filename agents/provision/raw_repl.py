"""A small client for MicroPython's raw REPL over a serial port (raw and raw-paste modes, as mpremote's
``transport_serial.py`` speaks them).

Why our own client rather than mpremote's library: the installer tool needs typed errors that say what was tried
(``NoReplError`` names the bytes sent and what came back), a bounded probe for raw-paste (some ports hang on it:
the webassembly port does), and deadlines on every read; mpremote's transport raises one generic exception and is not a
stable library API. The protocol is small enough to own:

* enter: ``\\r\\x03`` (interrupt a running program), drain, ``\\r\\x01``; the board answers
  ``raw REPL; CTRL-B to exit\\r\\n>``. Retried a few times, because a board that was printing may swallow one.
* execute: with raw-paste when the board grants it (``\\x05A\\x01`` -> ``R\\x01`` + u16 window + ``\\x01``; the host
  sends at most one window ahead of the board's ``\\x01`` credits, then ``\\x04``), otherwise plain raw (code, then
  ``\\x04``, board says ``OK``). Either way the board then prints stdout, ``\\x04``, the traceback, ``\\x04``, ``>``.
* soft reset: ``\\x04`` on an empty raw line; the board reboots and prints the raw banner again.
* leave: ``\\r\\x02`` returns to the friendly REPL, so the next tool (mpremote, a terminal) finds the board as usual.

Stdout line endings are passed through as the board sends them (real ports send ``\\r\\n``, the virtual board
``\\n``); callers strip.
"""

from __future__ import annotations

import os
import re
import struct
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import serial
import serial.tools.list_ports

from agents.provision.errors import (
    NoReplError,
    PortNotFoundError,
    RemoteExecError,
    ReplProtocolError,
    ReplTimeoutError,
)

__all__ = ["RAW_REPL_BANNER", "RawRepl", "ReplTunables", "check_port_exists", "list_serial_ports"]

RAW_REPL_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
_OLD_DEVICE_BANNER_TAIL = b"w REPL; CTRL-B to exit\r\n>"  # what follows "ra" when a board ignores raw-paste
_SOFT_REBOOT = b"soft reboot\r\n"
_OSERROR = re.compile(rb"OSError: (?:\[Errno )?(\d+)")


@dataclass(frozen=True)
class ReplTunables:
    """Named timing knobs (as esptool names its tunables), so field problems can be tuned, not patched.

    enter_timeout_s: wait for the raw banner after each Ctrl-A.
    enter_attempts: Ctrl-C/Ctrl-A rounds before giving up with :class:`NoReplError`.
    exec_timeout_s: wait for one snippet's output to finish.
    paste_probe_timeout_s: wait for the answer to the raw-paste request (a port that hangs on it is treated as
        not supporting it; the board is interrupted and the raw REPL entered again).
    plain_chunk_bytes / plain_chunk_delay_s: pacing of plain raw-REPL writes for boards with small UART buffers.
    """

    enter_timeout_s: float = 2.0
    enter_attempts: int = 3
    exec_timeout_s: float = 10.0
    paste_probe_timeout_s: float = 1.0
    plain_chunk_bytes: int = 256
    plain_chunk_delay_s: float = 0.01


class SerialLike(Protocol):
    """What the client needs from a port: pyserial's ``Serial`` and test doubles both fit."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


def list_serial_ports() -> list[str]:
    """Device paths of the serial ports the OS reports (USB adapters, on-board UARTs)."""
    return sorted(port.device for port in serial.tools.list_ports.comports())


def check_port_exists(port: str) -> None:
    """Raise :class:`PortNotFoundError` listing the present ports when ``port`` is a path that does not exist.

    URLs (``socket://``, ``rfc2217://``) are left to pyserial.
    """
    if "://" in port or os.path.exists(port):
        return
    present = list_serial_ports()
    listing = ", ".join(present) if present else "none found"
    raise PortNotFoundError(
        f"no such port {port}; ports present: {listing} "
        "(check the cable, and that the USB serial driver is loaded: dmesg | tail)"
    )


class RawRepl:
    """One raw-REPL session with a board. Use as a context manager, or call :meth:`close`.

    ``RawRepl.open(port)`` opens the serial port; the constructor takes an already open port (tests, sockets).
    """

    def __init__(self, port: SerialLike, *, name: str, tunables: ReplTunables | None = None) -> None:
        self._port = port
        self.name = name
        self.tunables = tunables or ReplTunables()
        self.raw_paste: bool | None = None  # unknown until the first exec asks
        self.in_raw_repl = False
        self._buffer = bytearray()  # received bytes not consumed yet

    @classmethod
    def open(cls, port: str, *, baudrate: int = 115200, tunables: ReplTunables | None = None) -> RawRepl:
        check_port_exists(port)
        try:
            connection = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, write_timeout=5)
        except serial.SerialException as exc:
            raise NoReplError(
                f"cannot open {port}: {exc} (is another program such as screen, minicom or mpremote using it?)"
            ) from exc
        return cls(connection, name=port, tunables=tunables)

    def __enter__(self) -> RawRepl:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._port.close()

    # ---- low-level I/O --------------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        self._port.write(data)
        self._port.flush()

    def _fill(self) -> None:
        """Move what the port has (at least one byte, or nothing after the port's read timeout) into the buffer."""
        self._buffer += self._port.read(max(1, min(self._port.in_waiting, 4096)))

    def _read_until(self, ending: bytes, timeout: float, what: str) -> bytes:
        """Bytes up to and including ``ending``; :class:`ReplTimeoutError` naming ``what`` after ``timeout``.

        Reads may bring more than asked for; the rest stays in the buffer for the next read.
        """
        deadline = time.monotonic() + timeout
        while (index := self._buffer.find(ending)) < 0:
            if time.monotonic() > deadline:
                raise ReplTimeoutError(
                    f"{self.name}: no {what} within {timeout:g} s; received {_preview(bytes(self._buffer))}"
                )
            self._fill()
        end = index + len(ending)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def _read_exactly(self, count: int, timeout: float, what: str) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self._buffer) < count:
            if time.monotonic() > deadline:
                raise ReplTimeoutError(
                    f"{self.name}: no {what} within {timeout:g} s; received {_preview(bytes(self._buffer))}"
                )
            self._fill()
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _has_input(self) -> bool:
        return bool(self._buffer) or self._port.in_waiting > 0

    def _drain(self, quiet_s: float = 0.05, limit_s: float = 1.0) -> bytes:
        """Read what the board is still printing, until it is quiet for ``quiet_s`` (at most ``limit_s``)."""
        drained = bytearray(self._buffer)
        self._buffer.clear()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            chunk = self._port.read(4096)
            if not chunk:
                time.sleep(quiet_s)
                if not self._port.in_waiting:
                    break
            drained += chunk
        return bytes(drained)

    # ---- protocol -------------------------------------------------------------------------------------------
    def enter(self) -> None:
        """Interrupt whatever runs and enter the raw REPL; :class:`NoReplError` if no board answers."""
        tunables = self.tunables
        received = bytearray()
        for _attempt in range(tunables.enter_attempts):
            self._write(b"\r\x03")
            time.sleep(0.05)
            received += self._drain()
            self._port.reset_input_buffer()
            self._buffer.clear()
            self._write(b"\r\x01")
            try:
                self._read_until(RAW_REPL_BANNER, tunables.enter_timeout_s, "raw REPL banner")
            except ReplTimeoutError:
                received += self._drain()
                continue
            self.in_raw_repl = True
            return
        raise NoReplError(
            f"no MicroPython REPL on {self.name}: sent Ctrl-C (interrupt) then Ctrl-A (raw REPL) "
            f"{tunables.enter_attempts} times and waited {tunables.enter_timeout_s:g} s each for "
            f"'raw REPL; CTRL-B to exit'; received {_preview(bytes(received))}. Check that MicroPython is flashed "
            "(flash.py esp32-base), the port is the board's, no other program holds it, and the baud rate"
        )

    def exec(self, code: str, *, timeout: float | None = None) -> bytes:
        """Run ``code`` on the board; return its stdout. Raise :class:`RemoteExecError` if it raised there."""
        if not self.in_raw_repl:
            self.enter()
        source = code.encode("utf-8")
        if self.raw_paste is not False and self._send_raw_paste(source):
            pass
        else:
            self._send_plain(source)
        return self._read_result(timeout if timeout is not None else self.tunables.exec_timeout_s)

    def eval_text(self, code: str, *, timeout: float | None = None) -> str:
        """Run ``code`` (which prints one line) and return that line, stripped."""
        return self.exec(code, timeout=timeout).decode("utf-8", "replace").strip()

    def _send_raw_paste(self, source: bytes) -> bool:
        """Send ``source`` in raw-paste mode; False (nothing sent) when the board does not support it."""
        self._write(b"\x05A\x01")
        try:
            reply = self._read_exactly(2, self.tunables.paste_probe_timeout_s, "raw-paste answer")
        except ReplTimeoutError:
            # Some ports (the webassembly one) hang on the request: interrupt, re-enter, use plain raw mode.
            self.raw_paste = False
            self.in_raw_repl = False
            self.enter()
            return False
        if reply == b"R\x00":
            self.raw_paste = False
            return False
        if reply != b"R\x01":
            # An old firmware echoes the raw banner instead: read its rest and fall back.
            self._read_until(_OLD_DEVICE_BANNER_TAIL, self.tunables.enter_timeout_s, "raw REPL prompt")
            self.raw_paste = False
            return False
        self.raw_paste = True
        (window,) = struct.unpack("<H", self._read_exactly(2, self.tunables.exec_timeout_s, "raw-paste window"))
        credit = window
        sent = 0
        timeout = self.tunables.exec_timeout_s
        while sent < len(source):
            while credit == 0 or self._has_input():
                flow = self._read_exactly(1, timeout, "raw-paste flow control")
                if flow == b"\x01":
                    credit += window
                elif flow == b"\x04":
                    self._write(b"\x04")
                    raise ReplProtocolError(f"{self.name}: the board aborted the raw-paste transfer")
                else:
                    raise ReplProtocolError(f"{self.name}: unexpected {flow!r} during raw-paste flow control")
            chunk = source[sent : sent + credit]
            self._write(chunk)
            sent += len(chunk)
            credit -= len(chunk)
        self._write(b"\x04")
        ack = self._read_until(b"\x04", timeout, "end-of-data acknowledgement")
        if ack.replace(b"\x01", b"") != b"\x04":
            raise ReplProtocolError(f"{self.name}: unexpected {_preview(ack)} after raw-paste data")
        return True

    def _send_plain(self, source: bytes) -> None:
        step = self.tunables.plain_chunk_bytes
        for offset in range(0, len(source), step):
            self._write(source[offset : offset + step])
            time.sleep(self.tunables.plain_chunk_delay_s)
        self._write(b"\x04")
        ok = self._read_exactly(2, self.tunables.exec_timeout_s, "'OK' after the code")
        if ok != b"OK":
            raise ReplProtocolError(f"{self.name}: expected 'OK' after the code, received {_preview(ok)}")

    def _read_result(self, timeout: float) -> bytes:
        stdout = self._read_until(b"\x04", timeout, "end of the code's output")[:-1]
        traceback = self._read_until(b"\x04", timeout, "end of the code's error output")[:-1]
        self._read_until(b">", timeout, "raw REPL prompt")
        if traceback:
            text = traceback.decode("utf-8", "replace").strip()
            match = _OSERROR.search(traceback)
            errno = int(match.group(1)) if match else None
            last_line = text.splitlines()[-1] if text else text
            raise RemoteExecError(f"{self.name}: the board raised {last_line}", text, errno)
        return stdout

    def soft_reset(self) -> bytes:
        """Soft-reset the board from the raw REPL (files kept, interpreter fresh); return what boot printed."""
        if not self.in_raw_repl:
            self.enter()
        self._write(b"\x04")
        timeout = self.tunables.exec_timeout_s
        self._read_until(_SOFT_REBOOT, timeout, "'soft reboot' after Ctrl-D")
        return self._read_until(RAW_REPL_BANNER, timeout, "raw REPL banner after the soft reset")[
            : -len(RAW_REPL_BANNER)
        ]

    def leave(self) -> None:
        """Return to the friendly REPL (as a board is left for a terminal or mpremote)."""
        self._write(b"\r\x02")
        self.in_raw_repl = False
        self._drain()


def _preview(data: bytes, limit: int = 80) -> str:
    if not data:
        return "nothing"
    shown = data[-limit:]
    prefix = "..." if len(data) > limit else ""
    return f"{len(data)} bytes: {prefix}{shown!r}"

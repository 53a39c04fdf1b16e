"""Errors of the installer tools, one class per decision the installer makes, each with its own exit code.

    ProvisionError                  base; exit 1
     ├── ProvisionInputError        bad options, CSV, template or CA files: fix the input (exit 2)
     ├── PortNotFoundError          the serial port does not exist: plug in / pick another port (exit 3)
     ├── ReplError                  talking to the board failed
     │    ├── NoReplError           no MicroPython raw REPL answered: wrong port, busy port, no firmware (exit 4)
     │    ├── ReplTimeoutError      the board stopped answering mid-operation (exit 4)
     │    ├── ReplProtocolError     unexpected bytes where the protocol expects others (exit 4)
     │    └── RemoteExecError       code raised on the board; carries the traceback and the OSError errno
     ├── FilesystemFullError        the board's filesystem has no room (exit 5)
     ├── HashMismatchError          a file on the board differs from the host copy after writing (exit 6)
     └── EsptoolError               esptool is missing or failed (exit 7)

The exit codes let a script driving many boards sort failures without parsing messages.
"""

from __future__ import annotations

from agents.core.errors import StoreedgeError


class ProvisionError(StoreedgeError):
    """Base of every installer-tool error. ``exit_code`` is what ``tools/flash.py`` exits with."""

    exit_code = 1


class ProvisionInputError(ProvisionError, ValueError):
    """Options or input files are invalid; the message names the option, file, row or column."""

    exit_code = 2


class PortNotFoundError(ProvisionError, FileNotFoundError):
    """The serial port path does not exist; the message lists the ports that do."""

    exit_code = 3


class ReplError(ProvisionError):
    """The conversation with the board's REPL failed."""

    exit_code = 4


class NoReplError(ReplError, TimeoutError):
    """Nothing answered the raw-REPL handshake in time; the message says what was sent and what came back."""


class ReplTimeoutError(ReplError, TimeoutError):
    """The board stopped answering during an operation (after the handshake had worked)."""


class ReplProtocolError(ReplError):
    """The board sent bytes the raw-REPL protocol does not allow at that point."""


class RemoteExecError(ReplError):
    """Code run on the board raised. ``errno`` is set for ``OSError: [Errno N] ...`` tracebacks."""

    def __init__(self, message: str, traceback: str, errno: int | None) -> None:
        super().__init__(message)
        self.traceback = traceback
        self.errno = errno


class FilesystemFullError(ProvisionError, OSError):
    """The board's filesystem is full (``ENOSPC``), or too small for the files before writing starts."""

    exit_code = 5


class HashMismatchError(ProvisionError):
    """A deployed file's sha256 (computed on the board) differs from the host's."""

    exit_code = 6


class EsptoolError(ProvisionError):
    """esptool is not installed, or it reported a failure."""

    exit_code = 7

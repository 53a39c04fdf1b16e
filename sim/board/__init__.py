"""A virtual MicroPython board on a pty, running a real MicroPython interpreter, for tools that expect a board.

Why: ``tools/flash.py device`` and the third-party ``mpremote`` talk to MicroPython boards over a serial port
through the raw REPL. Testing them needs a board; this package is one with no hardware. A tool opens the board's
pty (or the ``link`` symlink to it) like any serial port.

Modules:

* :mod:`sim.board.repl`: the REPL protocol, byte for byte as MicroPython's ``pyexec.c`` behaves and mpremote
  expects (friendly REPL, paste mode, raw REPL, raw-paste), as a state machine without I/O;
* :mod:`sim.board.runtime`: the code runs on real MicroPython, the official webassembly port in a Node process
  (installed on first use by :mod:`sim.micropython_runtime`), fed over a framed pipe;
* :mod:`sim.board.virtual`: :class:`VirtualBoard`, the pty, the worker thread and the filesystem mirror that tie
  them together;
* :mod:`sim.board.cli`: ``storeedge sim board --link PATH`` (:func:`main_board`).

What it does not model: baud rate and line errors, DTR/RTS resets, a hard reset (``machine.reset()`` behaves as
``soft_reset``), stdin reads from the running program (``sys.stdin`` is at EOF; ``input()`` waits until Ctrl-C),
mpremote ``mount`` (needs stdin), ``main.py`` at power-on (only ``boot.py`` runs when the board starts; both run on
a soft reset in the friendly REPL), and output line endings in the raw REPL (stdout is passed through as the wasm
port writes it, ``42\\n``; tracebacks and REPL text use ``\\r\\n`` as on boards; the friendly REPL converts
``\\n`` to ``\\r\\n`` for terminals).
"""

from sim.board.cli import main_board
from sim.board.repl import RAW_REPL_BANNER
from sim.board.virtual import VirtualBoard
from sim.micropython_runtime import (
    MICROPYTHON_NPM_PACKAGE,
    BoardRuntimeError,
    ensure_micropython_runtime,
    micropython_module_path,
)

__all__ = [
    "MICROPYTHON_NPM_PACKAGE",
    "RAW_REPL_BANNER",
    "BoardRuntimeError",
    "VirtualBoard",
    "ensure_micropython_runtime",
    "main_board",
    "micropython_module_path",
]

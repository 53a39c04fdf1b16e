"""A virtual MicroPython board on a pty, running a real MicroPython interpreter (see :mod:`sim.board.virtual`)."""

from sim.board.virtual import (
    MICROPYTHON_NPM_PACKAGE,
    RAW_REPL_BANNER,
    BoardRuntimeError,
    VirtualBoard,
    ensure_micropython_runtime,
    main_board,
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

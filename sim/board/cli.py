"""``storeedge sim board --link PATH``: serve a virtual board from the command line until stopped."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from sim.board.virtual import VirtualBoard

__all__ = ["main_board"]


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

#!/usr/bin/env python3
"""storeedge installer tool: provision gateways, flash tag boards (``python tools/flash.py --help``).

A thin entry script so that installers can run it from a checkout without installing the package: it puts the
repository root on ``sys.path`` and calls :func:`agents.provision.cli.main`, which ``storeedge flash`` calls too.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from agents.provision.cli import main  # noqa: E402 - needs the repository root on sys.path first

if __name__ == "__main__":
    sys.exit(main())

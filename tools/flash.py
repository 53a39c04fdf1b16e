#!/usr/bin/env python3
"""storeedge installer tool (``tools/flash.py``): provision gateways and flash tag firmware.

The device and gateway provisioning commands arrive with the installer-tools issue. Until then this
tool says so plainly instead of pretending to work.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print(
        "tools/flash.py: no commands are available yet (device flashing and gateway provisioning "
        "are still to be built)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())

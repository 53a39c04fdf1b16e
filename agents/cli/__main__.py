"""``python -m agents.cli``: the same as the ``storeedge`` command."""

import sys

from agents.cli import main

sys.exit(main())

"""The store day's clock: where "now" comes from for the day boundary and the per-hour figures.

Production uses :class:`SystemClock` (the gateway's UNIX time, kept right by NTP). The simulator plugs an
offset or accelerated clock in from above (``sim/``), so a run can start an hour before the boundary and
cross it in seconds; nothing in the gateway names it. The camera pipelines keep their own time base (the
frame's time): the clock only decides which store day, and which local hour of it, a count belongs to.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``time() -> float``: UNIX seconds, as :func:`time.time`."""

    def time(self) -> float: ...


class SystemClock:
    """The gateway's wall clock."""

    def time(self) -> float:
        return time.time()

"""The store day: daily unique visitors across the store's cameras, staff, and the ``counts/daily`` record.

* :mod:`.clock`: where "now" comes from (the system clock; the simulator's from above);
* :mod:`.hooks`: :class:`CameraObserver` (called by each camera's frame loop) and :class:`StaffPolicy`.
"""

from agents.footfall.day.clock import Clock, SystemClock
from agents.footfall.day.hooks import CameraObserver, StaffPolicy

__all__ = ["CameraObserver", "Clock", "StaffPolicy", "SystemClock"]

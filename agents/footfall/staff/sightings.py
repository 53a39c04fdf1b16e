"""Recent staff badge sightings near the door, and the rule that one sighting excuses one crossing.

A badge advertises several times a second, so a *sighting* here is not one advertisement but one **presence**:
a run of advertisements heard at or above the RSSI threshold with no gap longer than the window. A staff
member walking through the door makes one presence; it excuses one crossing, the first that falls within
``window_s`` of it. A second crossing in the same presence (a customer walking in beside them, or the same
badge idling by the door while customers come in) is not excused: a badge must leave and come back
(a gap of more than ``window_s``) before it excuses again. Errors therefore fall on the side of counting a
visitor, never of hiding one.

The scanner writes from the event loop, the cameras ask from their worker threads: every method takes the
lock. Only configured badges are ever added (the scanner drops every other beacon), and at most
``max_badges`` presences are kept, so memory is bounded by the staff's badges, not by the phones in the store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["BadgeSightings"]


@dataclass(slots=True)
class _Presence:
    first_t: float
    last_t: float
    rssi: int  # the strongest advertisement of the presence
    used: bool = False


class BadgeSightings:
    """Thread-safe presences of staff badges (module docstring). Times are seconds on one clock chosen by the
    caller (the staff policy's: monotonic)."""

    def __init__(self, *, window_s: float, max_badges: int = 1024) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.max_badges = max_badges
        self._lock = threading.Lock()
        self._presences: dict[str, _Presence] = {}
        self._sightings = 0
        self._excused = 0

    def add(self, badge: str, rssi: int, t: float) -> None:
        """An advertisement of ``badge`` heard at ``rssi`` dBm (already at or above the threshold) at ``t``."""
        with self._lock:
            self._sightings += 1
            presence = self._presences.get(badge)
            if presence is None or t - presence.last_t > self.window_s:
                self._presences[badge] = _Presence(t, t, rssi)
                if len(self._presences) > self.max_badges:
                    oldest = min(self._presences, key=lambda key: self._presences[key].last_t)
                    del self._presences[oldest]
                return
            presence.first_t = min(presence.first_t, t)
            presence.last_t = max(presence.last_t, t)
            presence.rssi = max(presence.rssi, rssi)

    def badge_near(self, t: float, window_s: float | None = None) -> str | None:
        """The badge whose unused presence lies within ``window_s`` (default: the configured window) of ``t``,
        the strongest if several; it is used up by this call. ``None`` if no badge was near."""
        window = self.window_s if window_s is None else window_s
        with self._lock:
            near = [
                (presence.rssi, presence.last_t, badge)
                for badge, presence in self._presences.items()
                if not presence.used and presence.first_t - window <= t <= presence.last_t + window
            ]
            if not near:
                return None
            _, _, badge = max(near)
            self._presences[badge].used = True
            self._excused += 1
            return badge

    def clear(self) -> None:
        """Forget every presence (the store day's boundary)."""
        with self._lock:
            self._presences.clear()

    def stats(self) -> dict[str, int]:
        """Counts only: advertisements recorded, presences held, crossings excused."""
        with self._lock:
            return {
                "badge_sightings": self._sightings,
                "badge_presences": len(self._presences),
                "badge_excused": self._excused,
            }

"""What counting reports: line crossings, zone entries and exits, one frame's update, and line totals.

Plain frozen dataclasses with slots, so an event can be kept, compared and published as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["a_to_b", "b_to_a"]


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    """One counted crossing of a line. ``new_visit`` is set when it also counts as a visit."""

    line: str
    direction: Direction
    track_id: int
    visitor_id: int
    t: float
    frame: int
    new_visit: bool


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """A track entering or leaving a zone.

    ``t``/``frame`` are when the counter decided (after debouncing or track expiry); ``entered_t`` and
    ``left_t`` are back-dated to when it happened. ``occupancy`` is the zone's count after this event.
    """

    zone: str
    kind: Literal["enter", "exit"]
    track_id: int
    visitor_id: int
    t: float
    frame: int
    occupancy: int
    entered_t: float
    left_t: float | None = None
    dwell_s: float | None = None


@dataclass(frozen=True, slots=True)
class CounterUpdate:
    """What one :meth:`~agents.footfall.counting.counter.FootfallCounter.update` call produced."""

    t: float
    frame: int
    crossings: list[CrossingEvent]
    zone_events: list[ZoneEvent]


@dataclass(frozen=True, slots=True)
class LineTotals:
    """Events and visits of one line per direction since its counter was created."""

    events_a_to_b: int
    events_b_to_a: int
    visits_a_to_b: int
    visits_b_to_a: int

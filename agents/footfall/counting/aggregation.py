"""Per-interval aggregates: counter events folded into closed, per-interval records with stable ids.

What the footfall agent uplinks: one :class:`LineInterval` per line and one :class:`ZoneInterval` per zone for every
interval in which anything was observed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agents.footfall.counting.counter import CounterConfig
from agents.footfall.counting.events import CounterUpdate, CrossingEvent, ZoneEvent


def _ms(t: float) -> int:
    return round(t * 1000)


@dataclass(frozen=True, slots=True)
class LineInterval:
    """Crossings of one line in ``[interval_start, interval_end)``; ``frames`` = frames observed in it."""

    line: str
    interval_start: float
    interval_end: float
    events_a_to_b: int
    events_b_to_a: int
    visits_a_to_b: int
    visits_b_to_a: int
    frames: int
    complete: bool

    @property
    def record_id(self) -> str:
        """Stable id: the same line and interval always give the same id (idempotent upload)."""
        return f"line/{self.line}/{_ms(self.interval_start)}"

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, **asdict(self)}


@dataclass(frozen=True, slots=True)
class ZoneInterval:
    """Zone activity in ``[interval_start, interval_end)``; dwell covers exits within the interval."""

    zone: str
    interval_start: float
    interval_end: float
    entries: int
    exits: int
    occupancy_start: int
    occupancy_max: int
    occupancy_end: int
    dwell_count: int
    dwell_total_s: float
    dwell_max_s: float
    frames: int
    complete: bool

    @property
    def record_id(self) -> str:
        return f"zone/{self.zone}/{_ms(self.interval_start)}"

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, **asdict(self)}


IntervalRecord = LineInterval | ZoneInterval


class IntervalAggregator:
    """Folds counter events into fixed intervals aligned to ``origin + k * interval_s``.

    Alignment to the epoch (not to the first event) makes record ids stable across restarts. An interval
    is reported once time has moved past its end (``complete=True``), or by :meth:`flush` (``complete``
    is then False: the stream stopped inside it). Intervals in which nothing at all was fed (no frame, no
    event, no :meth:`advance`) are skipped rather than reported as zeros: "not observed" is not "nobody
    came". A timestamp earlier than the open interval (a clock stepped back) is counted in the open
    interval, so nothing is ever lost or reopened.
    """

    def __init__(
        self, lines: Sequence[str], zones: Sequence[str] = (), *, interval_s: float = 60.0, origin: float = 0.0
    ) -> None:
        if not interval_s > 0 or not math.isfinite(interval_s):
            raise ValueError(f"interval_s must be a positive number, got {interval_s}")
        self.lines = list(lines)
        self.zones = list(zones)
        self.interval_s = float(interval_s)
        self.origin = float(origin)
        self._index: int | None = None
        self._frames = 0
        self._line_counts = {name: [0, 0, 0, 0] for name in self.lines}
        self._occupancy = dict.fromkeys(self.zones, 0)
        self._zone_counts: dict[str, list[float]] = {}
        self._reset_zones()

    @classmethod
    def for_config(cls, config: CounterConfig, *, interval_s: float = 60.0, origin: float = 0.0) -> IntervalAggregator:
        return cls(
            [line.name for line in config.lines],
            [zone.name for zone in config.zones],
            interval_s=interval_s,
            origin=origin,
        )

    def _reset_zones(self) -> None:
        # entries, exits, occupancy_start, occupancy_max, dwell_count, dwell_total_s, dwell_max_s
        self._zone_counts = {
            name: [0, 0, self._occupancy[name], self._occupancy[name], 0, 0.0, 0.0] for name in self.zones
        }

    def advance(self, t: float) -> list[IntervalRecord]:
        """Move time to ``t``: close and return every interval that ended at or before ``t``."""
        index = math.floor((t - self.origin) / self.interval_s)
        if self._index is None:
            self._index = index
            return []
        if index <= self._index:
            return []
        records = self._close(complete=True)
        self._index = index
        return records

    def feed(self, events: Iterable[CrossingEvent | ZoneEvent]) -> list[IntervalRecord]:
        """Add events (each bucketed by its own ``t``); returns intervals closed on the way."""
        records: list[IntervalRecord] = []
        for event in events:
            records += self.advance(event.t)
            if isinstance(event, CrossingEvent):
                counts = self._line_counts.get(event.line)
                if counts is None:
                    raise ValueError(f"unknown line {event.line!r}")
                k = 0 if event.direction == "a_to_b" else 1
                counts[k] += 1
                if event.new_visit:
                    counts[2 + k] += 1
            else:
                zone = self._zone_counts.get(event.zone)
                if zone is None:
                    raise ValueError(f"unknown zone {event.zone!r}")
                self._occupancy[event.zone] = event.occupancy
                zone[3] = max(zone[3], event.occupancy)
                if event.kind == "enter":
                    zone[0] += 1
                else:
                    zone[1] += 1
                    dwell = event.dwell_s or 0.0
                    zone[4] += 1
                    zone[5] += dwell
                    zone[6] = max(zone[6], dwell)
        return records

    def add(self, update: CounterUpdate) -> list[IntervalRecord]:
        """One counter frame: advance to its time, count the frame, add its events."""
        records = self.advance(update.t)
        self._frames += 1
        records += self.feed(update.crossings)
        records += self.feed(update.zone_events)
        return records

    def flush(self) -> list[IntervalRecord]:
        """Close the open interval now (end of stream); its records have ``complete=False``."""
        if self._index is None:
            return []
        records = self._close(complete=False)
        self._index = None
        return records

    def _close(self, *, complete: bool) -> list[IntervalRecord]:
        assert self._index is not None
        start = self.origin + self._index * self.interval_s
        end = start + self.interval_s
        records: list[IntervalRecord] = []
        for name, c in self._line_counts.items():
            records.append(LineInterval(name, start, end, c[0], c[1], c[2], c[3], self._frames, complete))
        for name, z in self._zone_counts.items():
            records.append(
                ZoneInterval(
                    name,
                    start,
                    end,
                    int(z[0]),
                    int(z[1]),
                    int(z[2]),
                    int(z[3]),
                    self._occupancy[name],
                    int(z[4]),
                    float(z[5]),
                    float(z[6]),
                    self._frames,
                    complete,
                )
            )
        self._frames = 0
        self._line_counts = {name: [0, 0, 0, 0] for name in self.lines}
        self._reset_zones()
        return records

"""``footfall.day``: when the store's day ends, in which time zone, and what makes a visitor.

The store day runs from one boundary to the next, in the store's local time: with the default ``04:00`` in
``Europe/Berlin``, the day ``2026-03-14`` is 2026-03-14 04:00 to 2026-03-15 04:00 Berlin time, whatever the
gateway's own time zone. Daylight saving is handled by the zone database: the day the clocks go forward is
23 hours long, the day they go back 25. A boundary inside the hour that does not exist on the spring day
(02:30 in Berlin) falls at 03:30 that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from agents.core.config import StrictModel

__all__ = ["StoreDayConfig"]


class StoreDayConfig(StrictModel):
    """The store day (module docstring) and what counts as a unique visitor."""

    boundary: dt.time = Field(
        dt.time(4, 0), description="Local time the store day ends and the next begins (HH:MM); the store is closed."
    )
    timezone: str = Field("Europe/Berlin", description="The store's IANA time zone, e.g. Europe/Berlin.")
    unique_from: Literal["entries", "sightings"] = Field(
        "entries",
        description=(
            "entries: a unique visitor is a person who crossed a line inwards (a_to_b) today (door cameras);"
            " sightings: every person seen by a camera today (cameras watching the floor, footage benchmarks)."
        ),
    )
    persist_interval_s: float = Field(
        5.0, gt=0, le=300, description="How often the day's counters are written to the state directory."
    )

    @field_validator("boundary", mode="before")
    @classmethod
    def _hh_mm(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 04:00 as the sexagesimal integer 240 (minutes): take it as such.
            if not 0 <= value < 24 * 60:
                raise ValueError(f"boundary must be a time of day HH:MM, got {value}")
            return dt.time(value // 60, value % 60)
        return value

    @field_validator("boundary")
    @classmethod
    def _whole_minutes(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("boundary is a local time of the store: give the zone in timezone, not here")
        return value.replace(second=0, microsecond=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or UTC") from exc
        return value

    # -------------------------------------------------------------------------------------- the calendar

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def day_start(self, day: dt.date) -> float:
        """The instant store day ``day`` begins (UNIX seconds)."""
        return dt.datetime.combine(day, self.boundary, tzinfo=self.zone).timestamp()

    def day_of(self, t: float) -> dt.date:
        """The store day that instant ``t`` belongs to."""
        day = dt.datetime.fromtimestamp(t, self.zone).date()
        if t < self.day_start(day):
            day -= dt.timedelta(days=1)
        elif t >= self.day_start(day + dt.timedelta(days=1)):
            day += dt.timedelta(days=1)
        return day

    def bounds(self, day: dt.date) -> tuple[float, float]:
        """``[start, end)`` of store day ``day``, UNIX seconds."""
        return self.day_start(day), self.day_start(day + dt.timedelta(days=1))

    def local_hour(self, t: float) -> int:
        """The hour of the local clock (0-23) at ``t``."""
        return dt.datetime.fromtimestamp(t, self.zone).hour

"""The simulator's store-day clock: shifted and accelerated, so a run crosses a day boundary in seconds.

A scenario's ``clock:`` section plugs a :class:`SimClock` into the gateway (``Gateway(clock=...)``), from
above: production code only knows the :class:`~agents.footfall.day.clock.Clock` protocol and uses the system
clock. Only the store day reads this clock (which day a count belongs to, its local hour, the boundary); the
cameras keep their frame times and the outbox its wall-clock timestamps.

``before_boundary_s: 30, rate: 10`` starts the store's clock 30 simulated seconds before the next boundary
(of the gateway's ``footfall.day``) and runs it ten times faster than real time: the day ends 3 s into the
run. ``start`` sets the simulated start instead (ISO 8601 with a zone).
"""

from __future__ import annotations

import datetime as dt
import time

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.footfall.day.config import StoreDayConfig


class SimClockConfig(BaseModel):
    """A scenario's ``clock:`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    before_boundary_s: float | None = Field(
        None, ge=0, description="Start this many simulated seconds before the next store-day boundary."
    )
    start: dt.datetime | None = Field(None, description="Or: the simulated start, ISO 8601 with a time zone.")
    rate: float = Field(1.0, gt=0, le=100_000, description="Simulated seconds per real second.")

    @model_validator(mode="after")
    def _one_start(self) -> SimClockConfig:
        if (self.before_boundary_s is None) == (self.start is None):
            raise ValueError("give exactly one of before_boundary_s and start")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start needs a time zone (e.g. 2026-03-14T03:59:30+01:00)")
        return self


class SimClock:
    """``time()`` = the simulated start + (real seconds since construction) x ``rate``."""

    def __init__(self, start: float, rate: float = 1.0) -> None:
        self.start = start
        self.rate = rate
        self._t0 = time.monotonic()

    @classmethod
    def from_config(cls, config: SimClockConfig, day: StoreDayConfig, now: float | None = None) -> SimClock:
        now = time.time() if now is None else now
        if config.start is not None:
            return cls(config.start.timestamp(), config.rate)
        assert config.before_boundary_s is not None
        boundary = day.bounds(day.day_of(now))[1]
        return cls(boundary - config.before_boundary_s, config.rate)

    def time(self) -> float:
        return self.start + (time.monotonic() - self._t0) * self.rate

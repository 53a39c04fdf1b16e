"""The counter: one frame of confirmed tracks in, the line crossings and zone events of that frame out.

:class:`FootfallCounter` gives every new track id an identity (or links it to a recently lost one,
:mod:`.identities`), keeps a track that is no longer reported for ``track_ttl_s``, and steps each identity's box over
the lines (:mod:`.lines`) and the zones (:mod:`.zones`). The rules are in those modules' docstrings; the
configuration of all of them is :class:`CounterConfig`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from agents.footfall.counting.events import CounterUpdate, CrossingEvent, LineTotals, ZoneEvent
from agents.footfall.counting.geometry import StrictModel
from agents.footfall.counting.identities import Trail, link_successors
from agents.footfall.counting.lines import LineConfig, LineCounter
from agents.footfall.counting.zones import ZoneConfig, ZoneCounter
from agents.footfall.types import Tracks


class CounterConfig(StrictModel):
    """Lines, zones and the track-memory rules shared by all of them."""

    lines: list[LineConfig] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    track_ttl_s: float = Field(
        5.0, ge=0, allow_inf_nan=False, description="How long a track that is no longer reported is remembered."
    )
    reassociate: bool = Field(True, description="Let a new track id inherit a recently lost track's state.")
    reassociate_max_gap_s: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="Longest gap between a lost track and its successor."
    )
    reassociate_max_distance: float = Field(
        0.75,
        gt=0,
        allow_inf_nan=False,
        description="Largest distance of the successor from the predicted position, in lost-box heights.",
    )

    @field_validator("lines", "zones")
    @classmethod
    def _unique_names(cls, value: list[Any]) -> list[Any]:
        names = [item.name for item in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate names: {', '.join(duplicates)}")
        return value

    @field_validator("reassociate_max_gap_s")
    @classmethod
    def _gap_within_ttl(cls, value: float, info: ValidationInfo) -> float:
        ttl = info.data.get("track_ttl_s")
        if ttl is not None and value > ttl:
            raise ValueError(f"must not exceed track_ttl_s ({ttl}): lost tracks are forgotten after that")
        return value


class FootfallCounter:
    """Counts line crossings, visits and zone presence from per-frame tracks (rules: :mod:`.lines`,
    :mod:`.identities`, :mod:`.zones`).

    ``frame_size=(width, height)`` is required when any line or zone uses normalised coordinates.
    Call :meth:`update` once per frame, with non-decreasing timestamps in seconds (any epoch), and
    :meth:`close` at the end of a stream to let everyone still inside a zone leave.
    """

    def __init__(self, config: CounterConfig, *, frame_size: tuple[int, int] | None = None) -> None:
        self.config = config
        self._lines = LineCounter(config.lines, frame_size)
        self._zones = ZoneCounter(config.zones, frame_size)
        self.line_names = self._lines.names
        self.zone_names = self._zones.names
        self._active: dict[int, Trail] = {}
        self._lost: dict[int, Trail] = {}
        self._frame = 0
        self._visitors = 0
        self._links = 0

    # ------------------------------------------------------------------------------------------ queries

    @property
    def frames(self) -> int:
        """Number of :meth:`update` calls so far (the next frame index)."""
        return self._frame

    def totals(self) -> dict[str, LineTotals]:
        """Cumulative events and visits per line since the counter was created."""
        return self._lines.totals()

    def occupancy(self) -> dict[str, int]:
        """Identities currently inside each zone (including briefly lost ones, see :mod:`.zones`)."""
        return self._zones.occupancy()

    def diagnostics(self) -> dict[str, Any]:
        """A plain dict for the field CLI and health reports."""
        return {
            "frames": self._frame,
            "active_tracks": len(self._active),
            "lost_tracks": len(self._lost),
            "visitors": self._visitors,
            "reassociations": self._links,
            "occupancy": self.occupancy(),
        }

    def identities(self) -> dict[int, int]:
        """Track id -> visitor id, for every track still remembered (seen, or lost less than the TTL ago)."""
        return {tid: trail.visitor_id for tid, trail in (*self._active.items(), *self._lost.items())}

    def inside(self, zone: str) -> dict[int, float]:
        """Track id -> time it entered, for the identities currently inside ``zone``."""
        zi = self.zone_names.index(zone)
        return {
            trail.track_id: trail.zones[zi][3]
            for trail in (*self._active.values(), *self._lost.values())
            if trail.zones[zi][0]
        }

    # ----------------------------------------------------------------------------------------- updating

    def update(self, tracks: Tracks, t: float) -> CounterUpdate:
        """Feed one frame's confirmed tracks taken at time ``t`` (seconds); return its events."""
        frame = self._frame
        self._frame += 1
        crossings: list[CrossingEvent] = []
        zone_events: list[ZoneEvent] = []
        active, lost = self._active, self._lost
        fresh: list[tuple[int, list[float]]] = []
        seen = 0
        for tid, box in zip(tracks.ids.tolist(), tracks.xyxy.tolist(), strict=True):
            if tid < 0:
                continue  # unconfirmed: never merged into one pseudo-track (supervision #2578)
            if not (box[2] >= box[0] and box[3] >= box[1]):
                continue  # NaN or inverted box: as if not reported this frame
            trail = active.get(tid)
            if trail is None:
                trail = lost.pop(tid, None)
                if trail is None:
                    fresh.append((tid, box))
                    continue
                active[tid] = trail
            elif trail.frame == frame:
                continue  # the same id twice in one frame: keep the first box
            seen += 1
            self._step(trail, box, t, frame, crossings, zone_events)
        if len(active) != seen:
            for tid in [tid for tid, trail in active.items() if trail.frame != frame]:
                lost[tid] = active.pop(tid)
        if fresh:
            self._start(fresh, t, frame, crossings, zone_events)
        if lost:
            ttl = self.config.track_ttl_s
            hold = self._zones.min_hold
            expired = []
            for tid, trail in lost.items():
                age = t - trail.last_t
                if age > ttl:
                    expired.append(tid)
                elif age > hold:
                    self._zones.forget(trail, t, frame, zone_events, age)
            for tid in expired:
                self._zones.forget(lost.pop(tid), t, frame, zone_events)
        return CounterUpdate(t, frame, crossings, zone_events)

    def close(self, t: float) -> list[ZoneEvent]:
        """End of stream: forget every track now; anyone inside a zone leaves at their last sighting.

        Returns the exits (feed them to :meth:`IntervalAggregator.feed`); the counter can go on afterwards.
        """
        zone_events: list[ZoneEvent] = []
        frame = self._frame - 1
        for trail in (*self._active.values(), *self._lost.values()):
            self._zones.forget(trail, t, frame, zone_events)
        self._active.clear()
        self._lost.clear()
        return zone_events

    def _start(
        self,
        fresh: list[tuple[int, list[float]]],
        t: float,
        frame: int,
        crossings: list[CrossingEvent],
        zone_events: list[ZoneEvent],
    ) -> None:
        """New track ids: inherit a lost track's state when one fits (:mod:`.identities`), else start afresh."""
        cfg = self.config
        if len(fresh) > 1:
            fresh = list({tid: (tid, box) for tid, box in reversed(fresh)}.values())[::-1]  # first box per id
        links: dict[int, Trail] = {}
        if cfg.reassociate and self._lost:
            links = link_successors(
                fresh,
                self._lost,
                t,
                max_gap_s=cfg.reassociate_max_gap_s,
                max_distance=cfg.reassociate_max_distance,
            )
            self._links += len(links)
        n_lines, n_zones = len(self.line_names), len(self.zone_names)
        for i, (tid, box) in enumerate(fresh):
            trail = links.get(i)
            if trail is None:
                self._visitors += 1
                trail = Trail(tid, self._visitors, n_lines, n_zones)
            else:
                trail.track_id = tid
            self._active[tid] = trail
            self._step(trail, box, t, frame, crossings, zone_events)

    def _step(
        self,
        trail: Trail,
        box: list[float],
        t: float,
        frame: int,
        crossings: list[CrossingEvent],
        zone_events: list[ZoneEvent],
    ) -> None:
        """One sighting of ``trail``: its motion, then its anchor on every line and in every zone."""
        x1, y1, x2, y2 = box
        w = x2 - x1
        h = y2 - y1
        trail.move(x1 + 0.5 * w, y1 + 0.5 * h, h, t, frame)
        self._lines.step(trail, x1, y1, w, h, t, frame, crossings)
        self._zones.step(trail, x1, y1, w, h, t, frame, zone_events)

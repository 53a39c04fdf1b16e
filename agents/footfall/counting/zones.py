"""Zones: polygons whose occupancy, entries, exits and dwell are counted from the anchors inside them.

**Zones** are polygons tested against the anchor. A track enters (or leaves) when its anchor has been
inside (or outside) for ``min_frames`` consecutive frames, and, with ``hysteresis_px > 0``, at least that
far from the boundary; times are back-dated to the first frame of that run. Occupancy is the number of
identities inside. A track that disappears stays inside for the zone's ``lost_hold_s`` (so a short
occlusion neither drops nor double-counts a shopper; a successor id inherits the membership and the
entry time), then leaves at its last sighting: no ghost occupants (supervision #1855). If the same id
comes back later it enters again. Each exit carries ``entered_t``, ``left_t`` and ``dwell_s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field, ValidationInfo, field_validator

from agents.footfall.counting.events import ZoneEvent
from agents.footfall.counting.geometry import (
    ANCHORS,
    NAME_PATTERN,
    AnchorName,
    Coordinates,
    Point,
    StrictModel,
    check_normalized,
    distance_to_edges,
    inside_polygon,
    polygon_area,
    scale_point,
)
from agents.footfall.counting.identities import Trail


class ZoneConfig(StrictModel):
    """A polygonal zone: occupancy and dwell of anchors inside it."""

    name: str = Field(pattern=NAME_PATTERN, description="Zone name, used in events and interval record ids.")
    coordinates: Coordinates = Field("pixels", description="Units of the polygon: frame pixels or 0..1.")
    polygon: list[Point] = Field(min_length=3, description="Vertices in order (either winding).")
    anchor: AnchorName = Field("bottom_center", description="Point of the box tested against the polygon.")
    hysteresis_px: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Distance from the boundary needed to change state, pixels."
    )
    min_frames: int = Field(3, ge=1, description="Consecutive frames inside (outside) needed to enter (leave).")
    lost_hold_s: float = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="A track no longer reported stays inside this long (at most track_ttl_s), then leaves.",
    )

    @field_validator("polygon")
    @classmethod
    def _valid_polygon(cls, value: list[tuple[float, float]], info: ValidationInfo) -> list[tuple[float, float]]:
        check_normalized(value, info)
        if polygon_area(value) == 0.0:
            raise ValueError("polygon has zero area")
        return value


_ZoneGeo = tuple[float, float, list[tuple[float, float, float, float]], float, float, float, float, float, int]


class ZoneCounter:
    """The zones of one counter: their geometry in pixels, the debounced enter and leave rule, the occupancy."""

    def __init__(self, zones: Sequence[ZoneConfig], frame_size: tuple[int, int] | None) -> None:
        self.names = [zone.name for zone in zones]
        self._geo: list[_ZoneGeo] = []
        for zone in zones:
            pts = [scale_point(p, zone.coordinates, frame_size) for p in zone.polygon]
            edges = [(*pts[i], *pts[(i + 1) % len(pts)]) for i in range(len(pts))]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            fx, fy = ANCHORS[zone.anchor]
            self._geo.append((fx, fy, edges, min(xs), min(ys), max(xs), max(ys), zone.hysteresis_px, zone.min_frames))
        self._holds = [zone.lost_hold_s for zone in zones]
        # The shortest lost_hold_s: a lost track younger than this is still inside every zone.
        self.min_hold = min(self._holds, default=math.inf)
        self._occupancy = [0 for _ in zones]

    def occupancy(self) -> dict[str, int]:
        """Identities currently inside each zone."""
        return dict(zip(self.names, self._occupancy, strict=True))

    def step(
        self, trail: Trail, x1: float, y1: float, w: float, h: float, t: float, frame: int, zone_events: list[ZoneEvent]
    ) -> None:
        """Test ``trail``'s anchor of the box ``(x1, y1, w, h)`` seen at ``t`` against every zone; add the events."""
        for zi, (fx, fy, edges, bx0, by0, bx1, by1, hysteresis, min_frames) in enumerate(self._geo):
            qx = x1 + fx * w
            qy = y1 + fy * h
            zs = trail.zones[zi]
            was_inside = zs[0] > 0.0
            now_inside = bx0 <= qx <= bx1 and by0 <= qy <= by1 and inside_polygon(qx, qy, edges)
            if now_inside != was_inside and hysteresis > 0.0 and distance_to_edges(qx, qy, edges) < hysteresis:
                now_inside = was_inside
            if now_inside == was_inside:
                zs[1] = 0.0
                continue
            if zs[1] == 0.0:
                zs[2] = t
            zs[1] += 1.0
            if zs[1] < min_frames:
                continue
            zs[1] = 0.0
            if now_inside:
                zs[0] = 1.0
                zs[3] = zs[2]
                self._occupancy[zi] += 1
                zone_events.append(
                    ZoneEvent(
                        self.names[zi],
                        "enter",
                        trail.track_id,
                        trail.visitor_id,
                        t,
                        frame,
                        self._occupancy[zi],
                        zs[3],
                    )
                )
            else:
                self.leave(trail, zi, zs[2], t, frame, zone_events)

    def leave(self, trail: Trail, zi: int, left_t: float, t: float, frame: int, zone_events: list[ZoneEvent]) -> None:
        """``trail`` leaves zone ``zi``: it left at ``left_t``, decided at ``t`` in ``frame``."""
        zs = trail.zones[zi]
        zs[0] = 0.0
        zs[1] = 0.0
        self._occupancy[zi] -= 1
        zone_events.append(
            ZoneEvent(
                self.names[zi],
                "exit",
                trail.track_id,
                trail.visitor_id,
                t,
                frame,
                self._occupancy[zi],
                zs[3],
                left_t,
                left_t - zs[3],
            )
        )

    def forget(self, trail: Trail, t: float, frame: int, zone_events: list[ZoneEvent], age: float = math.inf) -> None:
        """Take a track out of the zones it is in (only those whose ``lost_hold_s`` is below ``age``)."""
        for zi, zs in enumerate(trail.zones):
            if zs[0] and age > self._holds[zi]:
                # Seen outside for a run too short to leave? It left when that run began.
                self.leave(trail, zi, zs[2] if zs[1] else trail.last_t, t, frame, zone_events)

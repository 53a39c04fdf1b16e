"""Directional counting lines: when a track's anchor has crossed a line, and in which direction.

**Events** are physical crossings. One event is counted when the track's *anchor point* (one point of the
box, default bottom-centre: the feet, which move on the floor plane the line is drawn on) goes from being
*clearly* on one side of the line to being *clearly* on the other, and passed through the *segment* P1-P2
on the way:

* Direction: ``a_to_b`` is a move from the side where ``cross(P2 - P1, Q - P1) < 0`` to the side where it
  is ``> 0``, with image coordinates (y down). For P1=(0, 0), P2=(10, 0) side B is *below* the line; for
  P1=(384, 0), P2=(384, 576) side B is to the *left*. Swap P1 and P2 to swap the directions.
* Hysteresis: the signed distance ``d`` of the anchor from the (infinite) line is measured in pixels. A
  track's *committed side* only changes when ``|d| > hysteresis_px``; samples inside the band keep the
  previous side. Jitter inside the band and walking along the line therefore count nothing, and a real
  crossing is counted once, on the first frame the anchor is clearly across (at the cost of that small delay).
  With ``hysteresis_px = 0`` the rule is exact: the anchor must change sign strictly (landing exactly on the
  line is not a change), which is the rule of the PETS09 ``line_counts.json`` ground truth. A distance band
  rather than supervision's N-frame confirmation: at the 2-5 fps an edge sampler runs, a walker is across
  the line in one or two frames, so confirmation frames cost real crossings, while a band costs nothing
  but a few pixels of delay.
* Segment: between two consecutive committed samples of opposite sides the anchor path (straight between
  consecutive frames) crosses the infinite line one or more times; the event counts only if at least one of
  those crossing points lies on the segment P1-P2. Walking round the end of a short line changes the
  committed side silently. The rule is symmetric in time, so a reversed trajectory gives the same events
  with the directions swapped.
* A track whose first clear sample is already on one side has no crossing to count: tracks are not counted
  for being born, not even when born inside the band and then leaving it (an id switch near the line
  must not count; the price is that someone first detected within ``hysteresis_px`` of the line is not
  counted: in the PETS09 ground truth, id 15 starts 7.7 px below y=300, so with 8 px that line reports 19
  instead of 20 b_to_a events). Tracks with a negative id (unconfirmed) are ignored.

Each counted crossing also asks the identity whether it is a new visit (:mod:`.identities`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field, ValidationInfo, field_validator

from agents.footfall.counting.events import CrossingEvent, LineTotals
from agents.footfall.counting.geometry import (
    ANCHORS,
    NAME_PATTERN,
    AnchorName,
    Coordinates,
    Point,
    StrictModel,
    check_normalized,
    scale_point,
)
from agents.footfall.counting.identities import Trail


class LineConfig(StrictModel):
    """A directional counting line from ``p1`` to ``p2`` (see the module docstring for the direction rule)."""

    name: str = Field(pattern=NAME_PATTERN, description="Line name, used in events and interval record ids.")
    coordinates: Coordinates = Field("pixels", description="Units of p1/p2: frame pixels or 0..1 of the frame.")
    p1: Point = Field(description="Start of the segment (x, y), y down.")
    p2: Point = Field(description="End of the segment; a_to_b moves from cross(p2-p1, q-p1) < 0 to > 0.")
    anchor: AnchorName = Field("bottom_center", description="Point of the box that must cross the line.")
    hysteresis_px: float = Field(
        8.0, ge=0, allow_inf_nan=False, description="Half-width of the dead band around the line, pixels."
    )
    visit_window_s: float = Field(
        60.0, gt=0, description="Repeated crossings of one identity in one direction within this time are one visit."
    )

    @field_validator("p1", "p2")
    @classmethod
    def _in_range(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        check_normalized([value], info)
        if info.field_name == "p2" and info.data.get("p1") == value:
            raise ValueError("p2 must differ from p1 (a line needs a length and a direction)")
        return value


_LineGeo = tuple[float, float, float, float, float, float, float, float]


class LineCounter:
    """The lines of one counter: their geometry in pixels, the crossing rule, and the totals since the start."""

    def __init__(self, lines: Sequence[LineConfig], frame_size: tuple[int, int] | None) -> None:
        self.names = [line.name for line in lines]
        self._geo: list[_LineGeo] = []
        self._windows = [line.visit_window_s for line in lines]
        for line in lines:
            p1x, p1y = scale_point(line.p1, line.coordinates, frame_size)
            p2x, p2y = scale_point(line.p2, line.coordinates, frame_size)
            length = math.hypot(p2x - p1x, p2y - p1y)
            fx, fy = ANCHORS[line.anchor]
            ux, uy = (p2x - p1x) / length, (p2y - p1y) / length
            self._geo.append((fx, fy, p1x, p1y, ux, uy, length, line.hysteresis_px))
        self._totals = [[0, 0, 0, 0] for _ in lines]

    def totals(self) -> dict[str, LineTotals]:
        """Cumulative events and visits per line."""
        return {name: LineTotals(*counts) for name, counts in zip(self.names, self._totals, strict=True)}

    def step(
        self,
        trail: Trail,
        x1: float,
        y1: float,
        w: float,
        h: float,
        t: float,
        frame: int,
        crossings: list[CrossingEvent],
    ) -> None:
        """Move ``trail``'s anchor on every line to the box ``(x1, y1, w, h)`` seen at ``t``; add the crossings."""
        for li, (fx, fy, p1x, p1y, ux, uy, length, hysteresis) in enumerate(self._geo):
            qx = x1 + fx * w
            qy = y1 + fy * h
            d = ux * (qy - p1y) - uy * (qx - p1x)  # cross(P2 - P1, Q - P1) / |P2 - P1|: signed pixels
            if d == 0.0:
                continue  # exactly on the line: not a side (and not a sample to cross from)
            st = trail.lines[li]
            pd = st[3]
            if (pd < 0.0 < d) or (d < 0.0 < pd):
                # The straight step from the previous sample crosses the infinite line; is that point on the
                # segment? Computed from the negative-side end, so a reversed trajectory gives the same bits.
                if pd < 0.0:
                    ax, ay, ad, bx, by, bd = st[1], st[2], pd, qx, qy, d
                else:
                    ax, ay, ad, bx, by, bd = qx, qy, d, st[1], st[2], pd
                r = ad / (ad - bd)
                s = (ax + r * (bx - ax) - p1x) * ux + (ay + r * (by - ay) - p1y) * uy
                if 0.0 <= s <= length:
                    st[4] = 1.0
            st[1] = qx
            st[2] = qy
            st[3] = d
            if d > hysteresis:
                side = 1.0
            elif d < -hysteresis:
                side = -1.0
            else:
                continue  # inside the dead band: keep the committed side
            previous = st[0]
            if side != previous:
                st[0] = side
                if previous != 0.0 and st[4]:
                    k = 0 if side > 0.0 else 1
                    totals = self._totals[li]
                    totals[k] += 1
                    new_visit = trail.new_visit(li, k, t, self._windows[li])
                    if new_visit:
                        totals[2 + k] += 1
                    crossings.append(
                        CrossingEvent(
                            self.names[li],
                            "a_to_b" if k == 0 else "b_to_a",
                            trail.track_id,
                            trail.visitor_id,
                            t,
                            frame,
                            new_visit,
                        )
                    )
            st[4] = 0.0

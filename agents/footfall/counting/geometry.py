"""What lines, zones and identities share: anchors, point units, the config vocabulary, and plane geometry.

A track is placed by its *anchor*, one point of its box (:data:`ANCHORS`; default bottom-centre: the feet, which
move on the floor plane the lines and zones are drawn on). Coordinates are pixels of the frame the tracker saw,
or normalised to 0..1 (then the counter needs the frame size). Thresholds (hysteresis) are always pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo

AnchorName = Literal[
    "bottom_center",
    "center",
    "top_center",
    "bottom_left",
    "bottom_right",
    "top_left",
    "top_right",
    "center_left",
    "center_right",
]
#: Anchor name -> (fraction of the box width from x1, fraction of the box height from y1).
ANCHORS: dict[str, tuple[float, float]] = {
    "bottom_center": (0.5, 1.0),
    "center": (0.5, 0.5),
    "top_center": (0.5, 0.0),
    "bottom_left": (0.0, 1.0),
    "bottom_right": (1.0, 1.0),
    "top_left": (0.0, 0.0),
    "top_right": (1.0, 0.0),
    "center_left": (0.0, 0.5),
    "center_right": (1.0, 0.5),
}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Names of lines and zones: they appear in events and in interval record ids."""
_Coord = Annotated[float, Field(allow_inf_nan=False)]
Point = tuple[_Coord, _Coord]
Coordinates = Literal["pixels", "normalized"]


class StrictModel(BaseModel):
    """Base of the counting configs: unknown keys are errors, and a config never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_normalized(points: Iterable[tuple[float, float]], info: ValidationInfo) -> None:
    """For validators: with ``coordinates: normalized`` (validated before) every point must lie in 0..1."""
    if info.data.get("coordinates") == "normalized":
        for x, y in points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"normalized coordinates must lie in 0..1, got ({x}, {y})")


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    """Signed (shoelace) area of a polygon: the sign follows the winding, 0 means no area."""
    area = 0.0
    n = len(points)
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        area += x1 * y2 - x2 * y1
    return area / 2.0


def scale_point(
    point: tuple[float, float], coordinates: str, frame_size: tuple[int, int] | None
) -> tuple[float, float]:
    """A config point in frame pixels: as given, or times ``frame_size=(width, height)`` when ``normalized``."""
    if coordinates == "pixels":
        return float(point[0]), float(point[1])
    if frame_size is None or not (frame_size[0] > 0 and frame_size[1] > 0):
        raise ValueError(f"normalized coordinates need frame_size=(width, height) in pixels, got {frame_size}")
    return point[0] * frame_size[0], point[1] * frame_size[1]


def inside_polygon(x: float, y: float, edges: list[tuple[float, float, float, float]]) -> bool:
    """Even-odd ray casting (points exactly on an edge may land either way; hysteresis handles that)."""
    inside = False
    for ax, ay, bx, by in edges:
        if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
            inside = not inside
    return inside


def distance_to_edges(x: float, y: float, edges: list[tuple[float, float, float, float]]) -> float:
    """Distance in pixels from ``(x, y)`` to the nearest of ``edges`` (segments ``(ax, ay, bx, by)``)."""
    best = math.inf
    for ax, ay, bx, by in edges:
        ex, ey = bx - ax, by - ay
        r = ((x - ax) * ex + (y - ay) * ey) / (ex * ex + ey * ey) if (ex or ey) else 0.0
        r = 0.0 if r < 0.0 else min(r, 1.0)
        best = min(best, math.hypot(x - ax - r * ex, y - ay - r * ey))
    return best

"""Identities: which track ids are one person across track breaks, and the visits each person has made.

**Visits** are de-duplicated events. Each event carries ``new_visit``; visits per direction are the events
with ``new_visit`` set. Within one *identity* (a chain of track ids the counter believes is one person),
a direction counts a new visit only if the identity has no visit in that direction yet, or its last visit in
that direction began at least ``visit_window_s`` ago. So in-out-in within the window is 2 ``a_to_b`` events
and 1 ``b_to_a`` event, but 1 visit each way; someone bouncing on a doormat for ten minutes with a 60 s
window makes at most ten visits each way, never hundreds. The window is anchored at the counted visit (not
sliding), which keeps the count bounded and easy to explain.

**Identities survive track breaks.** A tracker that loses a person (occlusion, a missed detection) and
re-finds them under a new id must not make a new visitor. The counter keeps a track's state for
``track_ttl_s`` after it was last seen (default 5 s: set it at least as long as the tracker keeps lost
tracks, e.g. ByteTrack's 30 frames at 7 fps = 4.3 s, so that a re-found id is never a stranger):

* if the *same* id comes back within that time it simply continues (a crossing made while it was missing
  is still counted: the path is taken as straight between the last and the next sample);
* if a *new* id appears within ``reassociate_max_gap_s`` of a lost track's last sighting, near where that
  track was heading, the new id takes over the lost track's whole state: the committed side of every
  line, the visits already counted, zone membership and the time it entered. "Near where it was heading"
  (the issue's "moving consistently"): the new box centre lies within ``reassociate_max_distance``
  lost-box heights of the path from the lost track's last centre to where its velocity would have taken
  it during the gap (a segment, not a point: people slow down or stop while occluded; and a new id
  appearing *behind* a walking person is somebody else). A crossing started by id 1 and finished by id 2
  is one event and one visit; a person re-found after having crossed is not counted again. When several
  new ids compete for several lost tracks, the closest pairs (in box heights) are linked first; each lost
  track is taken at most once.
* if the old id reappears after its state was taken over, it starts as a new identity.

Visitor ids are the counter's own sequence (1, 2, ...), in order of first appearance: tracker ids can be
reused (after a tracker restart, or the case above), visitor ids never are.

Dedup memory is deliberately short (seconds): re-recognising a person who *left the scene* would need
appearance features, which this privacy-first pipeline does not keep. A false link mostly merges two
people (one visit lost, none added); it can add a crossing only when the successor appears across the line
from the lost track, which is exactly the true mid-crossing break it exists for. On PETS09 with the
project's tracker and public detections (8 px band), linking turns 53 visitors into 39 and, with an
unlimited window, the visits of both lines land within one of the ground truth's unique ids per direction.
"""

from __future__ import annotations

import math

from agents.footfall.counting.geometry import distance_to_edges


class Trail:
    """Everything the counter knows about one identity (a chain of track ids).

    Its motion (last box centre and height, smoothed velocity) predicts where it went when it is lost; ``lines``,
    ``visits`` and ``zones`` hold the state the lines and the zones keep per identity (layouts below), which a
    successor id inherits whole.
    """

    __slots__ = ("cx", "cy", "frame", "h", "last_t", "lines", "track_id", "visitor_id", "visits", "vx", "vy", "zones")

    def __init__(self, track_id: int, visitor_id: int, n_lines: int, n_zones: int) -> None:
        self.track_id = track_id
        self.visitor_id = visitor_id
        self.frame = -1
        self.last_t = -math.inf
        self.cx = self.cy = self.vx = self.vy = 0.0
        self.h = 1.0
        # per line: [committed side (-1, 0 unknown, +1), prev x, prev y, prev signed distance, through segment]
        self.lines = [[0.0, 0.0, 0.0, 0.0, 0.0] for _ in range(n_lines)]
        # per line: [start of last a_to_b visit, start of last b_to_a visit]
        self.visits = [[-math.inf, -math.inf] for _ in range(n_lines)]
        # per zone: [inside (0/1), length of the opposite-state run, start of that run, entered_t]
        self.zones = [[0.0, 0.0, 0.0, 0.0] for _ in range(n_zones)]

    def move(self, cx: float, cy: float, h: float, t: float, frame: int) -> None:
        """A sighting at ``t``: box centre and height; the velocity is smoothed over the steps between sightings."""
        if self.frame >= 0:
            dt = t - self.last_t
            if dt > 0.0:
                self.vx = 0.5 * self.vx + 0.5 * (cx - self.cx) / dt
                self.vy = 0.5 * self.vy + 0.5 * (cy - self.cy) / dt
        self.cx, self.cy = cx, cy
        if h > 0.0:
            self.h = h
        self.last_t = t
        self.frame = frame

    def new_visit(self, line: int, k: int, t: float, window_s: float) -> bool:
        """Whether a crossing of line ``line`` in direction ``k`` (0 ``a_to_b``, 1 ``b_to_a``) at ``t`` is a new visit.

        It is when this identity has no visit in that direction yet, or its last one began ``window_s`` or more
        ago; the visit is then remembered (the window is anchored at the counted visit, not sliding).
        """
        visits = self.visits[line]
        if t - visits[k] >= window_s:
            visits[k] = t
            return True
        return False


def link_successors(
    fresh: list[tuple[int, list[float]]],
    lost: dict[int, Trail],
    t: float,
    *,
    max_gap_s: float,
    max_distance: float,
) -> dict[int, Trail]:
    """Which new track ids take over a lost identity (module docstring): index in ``fresh`` -> the lost trail.

    ``fresh`` holds the new ids of a frame with their ``xyxy`` boxes; the linked trails are taken out of ``lost``.
    The closest pairs (in lost-box heights) are linked first, and each lost trail is taken at most once.
    """
    pairs: list[tuple[float, int, int]] = []
    for i, (_, (x1, y1, x2, y2)) in enumerate(fresh):
        cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
        for lid, old in lost.items():
            gap = t - old.last_t
            if gap > max_gap_s:
                continue
            edge = [(old.cx, old.cy, old.cx + old.vx * gap, old.cy + old.vy * gap)]
            dist = distance_to_edges(cx, cy, edge) / old.h
            if dist <= max_distance:
                pairs.append((dist, i, lid))
    pairs.sort()
    links: dict[int, Trail] = {}
    for _, i, lid in pairs:
        if i not in links and lid in lost:
            links[i] = lost.pop(lid)
    return links

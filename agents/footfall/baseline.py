"""The peer baseline for ``storeedge bench footfall``: Roboflow's ``trackers`` ByteTrackTracker feeding
supervision's ``LineZone`` triggered by the bottom-centre anchor, exactly as their users wire it up
(supervision itself no longer ships a tracker).

It consumes the very same :class:`Detections` as our pipeline, so the comparison isolates tracking and
counting. Direction mapping: for a ``LineZone(start=P1, end=P2)``, supervision's ``out`` is our
``a_to_b`` (anchor moves from cross(P2-P1, Q-P1) < 0 to > 0) and ``in`` is ``b_to_a``; the tests pin
this down. Baseline "visits" are what a supervision user can report: distinct tracker ids that crossed
in each direction.

Only the benchmark imports this module; supervision and trackers are in the ``bench`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.footfall.types import Detections, Tracks


class SupervisionBaseline:
    """ByteTrackTracker + LineZone(BOTTOM_CENTER) over our detections."""

    def __init__(
        self,
        p1: tuple[float, float],
        p2: tuple[float, float],
        *,
        frame_rate: float,
        tracker_kwargs: dict[str, Any] | None = None,
    ) -> None:
        import supervision as sv
        from trackers import ByteTrackTracker

        self._sv = sv
        self.tracker = ByteTrackTracker(frame_rate=frame_rate, **(tracker_kwargs or {}))
        self.line = sv.LineZone(start=sv.Point(*p1), end=sv.Point(*p2), triggering_anchors=[sv.Position.BOTTOM_CENTER])
        self.events = {"a_to_b": 0, "b_to_a": 0}
        self._ids: dict[str, set[int]] = {"a_to_b": set(), "b_to_a": set()}

    @property
    def visits(self) -> dict[str, int]:
        return {direction: len(ids) for direction, ids in self._ids.items()}

    def update(self, detections: Detections) -> Tracks:
        """Track and count one frame; returns the confirmed tracks (for MOT scoring)."""
        sv = self._sv
        tracked = self.tracker.update(
            sv.Detections(xyxy=detections.xyxy.astype(np.float64), confidence=detections.scores.astype(np.float64))
        )
        ids = tracked.tracker_id if tracked.tracker_id is not None else np.zeros((0,), np.int64)
        confirmed = ids >= 0
        crossed_in, crossed_out = self.line.trigger(tracked)
        for direction, mask in (("a_to_b", crossed_out), ("b_to_a", crossed_in)):
            hits = ids[mask]
            self.events[direction] += int(hits.size)
            self._ids[direction].update(int(i) for i in hits)
        return Tracks(
            ids=ids[confirmed].astype(np.int64),
            xyxy=tracked.xyxy[confirmed].astype(np.float32),
            scores=(
                tracked.confidence[confirmed].astype(np.float32)
                if tracked.confidence is not None
                else np.ones(int(confirmed.sum()), np.float32)
            ),
        )

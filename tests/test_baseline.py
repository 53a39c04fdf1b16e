"""The peer baseline (agents/footfall/baseline.py): its direction mapping matches ours."""

from __future__ import annotations

import pytest

from agents.footfall.baseline import SupervisionBaseline
from agents.footfall.types import Detections


def walk(baseline: SupervisionBaseline, feet: list[tuple[float, float]]) -> None:
    for x, y in feet:
        baseline.update(Detections.from_lists([(x - 15, y - 80, x + 15, y)], [0.9]))


@pytest.mark.parametrize(
    ("p1", "p2", "a_to_b_path"),
    [
        # Vertical line from top to bottom: a_to_b is right -> left (see line_counts.json).
        ((384, 0), (384, 576), [(480 - 20 * i, 300) for i in range(12)]),
        # Horizontal line from left to right: a_to_b is top -> bottom (cross < 0 above, > 0 below).
        ((0, 300), (768, 300), [(400, 200 + 20 * i) for i in range(12)]),
    ],
)
def test_baseline_direction_matches_our_convention(
    p1: tuple[float, float], p2: tuple[float, float], a_to_b_path: list[tuple[float, float]]
) -> None:
    forward = SupervisionBaseline(p1, p2, frame_rate=10)
    walk(forward, a_to_b_path)
    assert forward.events == {"a_to_b": 1, "b_to_a": 0}
    assert forward.visits == {"a_to_b": 1, "b_to_a": 0}
    backward = SupervisionBaseline(p1, p2, frame_rate=10)
    walk(backward, list(reversed(a_to_b_path)))
    assert backward.events == {"a_to_b": 0, "b_to_a": 1}

"""Line and zone counting (agents/footfall/counting/), tested with trajectory tables.

Each table lists the anchor point (default: box bottom-centre) of every track id per frame; frames are
0.125 s apart. Covered: clean crossings both ways and the exact cross-product direction rule; jitter inside
the hysteresis band and walking along the line (PETS09's y=300 path, where peers over-count); in-out-in
(events count every crossing, visits one per direction per window); track breaks handed over to a new id;
crossings beyond the segment's ends; anchors; normalised coordinates; unconfirmed ids; zone occupancy,
dwell, debouncing and ghost removal; interval aggregation at the boundaries; config errors naming the
field; hypothesis properties (visits <= events, time reversal swaps directions); and a replay of the
PETS09 ground truth reproducing ``line_counts.json`` exactly.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.footfall.counting import (
    ANCHORS,
    CounterConfig,
    CounterUpdate,
    CrossingEvent,
    FootfallCounter,
    IntervalAggregator,
    LineConfig,
    LineInterval,
    ZoneConfig,
    ZoneEvent,
    ZoneInterval,
)
from agents.footfall.types import Tracks

DT = 0.125  # exact in binary: times and gaps in these tables compare exactly
BOX_W, BOX_H = 20.0, 40.0
Table = Sequence[dict[int, tuple[float, float]]]
Frames = list[dict[int, tuple[float, float]]]

# The doorway line of most tables: y = 100 from x = 0 to x = 200. cross(P2 - P1, Q - P1) = 200 * (qy - 100),
# so side A is above (y < 100) and side B below: a_to_b = walking down the image.
DOOR = {"name": "door", "p1": (0, 100), "p2": (200, 100)}


def box(x: float, y: float, anchor: str = "bottom_center") -> tuple[float, float, float, float]:
    """A BOX_W x BOX_H box whose ``anchor`` point is at (x, y)."""
    fx, fy = ANCHORS[anchor]
    x1, y1 = x - fx * BOX_W, y - fy * BOX_H
    return (x1, y1, x1 + BOX_W, y1 + BOX_H)


def tracks(frame: dict[int, tuple[float, float]], anchor: str = "bottom_center") -> Tracks:
    if not frame:
        return Tracks.empty()
    ids = np.array(list(frame), np.int64)
    xyxy = np.array([box(x, y, anchor) for x, y in frame.values()], np.float32)
    return Tracks(ids, xyxy, np.ones(len(ids), np.float32))


def line(**overrides: Any) -> LineConfig:
    return LineConfig.model_validate({**DOOR, **overrides})


def run(
    config: CounterConfig, table: Table, *, frame_size: tuple[int, int] | None = None, t0: float = 0.0
) -> tuple[FootfallCounter, list[CounterUpdate]]:
    counter = FootfallCounter(config, frame_size=frame_size)
    updates = [counter.update(tracks(frame), t0 + i * DT) for i, frame in enumerate(table)]
    return counter, updates


def crossings(updates: Sequence[CounterUpdate], name: str = "door") -> list[CrossingEvent]:
    return [event for update in updates for event in update.crossings if event.line == name]


def counts(updates: Sequence[CounterUpdate], name: str = "door") -> tuple[int, int, int, int]:
    """(events a_to_b, events b_to_a, visits a_to_b, visits b_to_a)."""
    events = crossings(updates, name)
    return (
        sum(e.direction == "a_to_b" for e in events),
        sum(e.direction == "b_to_a" for e in events),
        sum(e.direction == "a_to_b" and e.new_visit for e in events),
        sum(e.direction == "b_to_a" and e.new_visit for e in events),
    )


def path(track_id: int, points: Sequence[tuple[float, float]]) -> list[dict[int, tuple[float, float]]]:
    return [{track_id: p} for p in points]


def ys(x: float, *values: float) -> list[tuple[float, float]]:
    return [(x, y) for y in values]


# ------------------------------------------------------------------------------------------ trajectory tables

DOWN = ys(100, 60, 70, 80, 90, 96, 104, 110, 120, 130)  # through the segment, top to bottom

LINE_CASES: list[tuple[str, list[dict[int, tuple[float, float]]], tuple[int, int, int, int]]] = [
    ("clean a_to_b", path(1, DOWN), (1, 0, 1, 0)),
    ("clean b_to_a", path(1, DOWN[::-1]), (0, 1, 0, 1)),
    ("jitter inside the band", path(1, ys(100, 80, 95, 104, 93, 106, 97, 103, 92, 107, 94)), (0, 0, 0, 0)),
    ("into the band and back", path(1, ys(100, 60, 80, 95, 99, 101, 107, 99, 90, 70)), (0, 0, 0, 0)),
    ("stops on the line, then goes on", path(1, ys(100, 80, 90, 99, 100, 101, 99, 101, 100, 115)), (1, 0, 1, 0)),
    ("beyond the segment's end", path(1, ys(250, 60, 80, 95, 105, 120, 140)), (0, 0, 0, 0)),
    ("beyond the start (negative x)", path(1, ys(-5, 60, 80, 95, 105, 120, 140)), (0, 0, 0, 0)),
    (
        "round the end, back through the segment",
        path(1, [(250, 60), (250, 140), (150, 140), (150, 120), (150, 80), (150, 60)]),
        (0, 1, 0, 1),
    ),
    (
        "in-out-in within the window: every crossing is an event, one visit per direction",
        path(1, ys(100, 60, 80, 120, 140, 120, 80, 60, 80, 120, 140)),
        (2, 1, 1, 1),
    ),
    ("two people, one each way", [{1: (50, 60 + 10 * i), 2: (150, 140 - 10 * i)} for i in range(9)], (1, 1, 1, 1)),
    ("unconfirmed ids (-1) are ignored", path(-1, DOWN), (0, 0, 0, 0)),
    (
        "one missing frame mid-crossing still counts",
        [*path(1, ys(100, 60, 80, 90)), {}, *path(1, ys(100, 120, 130))],
        (1, 0, 1, 0),
    ),
]


@pytest.mark.parametrize(("table", "expected"), [c[1:] for c in LINE_CASES], ids=[c[0] for c in LINE_CASES])
def test_line_trajectory_table(table: Table, expected: tuple[int, int, int, int]) -> None:
    counter, updates = run(CounterConfig(lines=[line(hysteresis_px=8)]), table)
    assert counts(updates) == expected
    totals = counter.totals()["door"]
    assert (totals.events_a_to_b, totals.events_b_to_a, totals.visits_a_to_b, totals.visits_b_to_a) == expected


def test_clean_crossing_event_fields() -> None:
    _, updates = run(CounterConfig(lines=[line(hysteresis_px=8)]), path(7, DOWN))
    [event] = crossings(updates)
    # frame 5 (y=104) is inside the 8 px band; frame 6 (y=110) is the first clearly past the line.
    assert event == CrossingEvent("door", "a_to_b", 7, 1, 0.75, 6, True)


@pytest.mark.parametrize(
    ("p1", "p2"),
    [
        ((0, 100), (200, 100)),
        ((200, 100), (0, 100)),
        ((100, 0), (100, 200)),
        ((100, 200), (100, 0)),
        ((0, 0), (200, 200)),
        ((200, 20), (10, 180)),
    ],
)
def test_direction_follows_the_cross_product_rule(p1: tuple[int, int], p2: tuple[int, int]) -> None:
    """a_to_b moves the anchor from cross(P2 - P1, Q - P1) < 0 to > 0, in image coordinates (y down)."""

    def cross(q: tuple[float, float]) -> float:
        return (p2[0] - p1[0]) * (q[1] - p1[1]) - (p2[1] - p1[1]) * (q[0] - p1[0])

    mid = ((p1[0] + p2[0]) / 2, (p1[1] + p2[1]) / 2)
    normal = (-(p2[1] - p1[1]), p2[0] - p1[0])  # a perpendicular; which side it points to is not assumed
    scale = 40 / float(np.hypot(*normal))
    q_plus = (mid[0] + normal[0] * scale, mid[1] + normal[1] * scale)
    q_minus = (mid[0] - normal[0] * scale, mid[1] - normal[1] * scale)
    if cross(q_plus) < 0:
        q_plus, q_minus = q_minus, q_plus
    assert cross(q_minus) < 0 < cross(q_plus)
    steps = [
        (q_minus[0] + (q_plus[0] - q_minus[0]) * i / 8, q_minus[1] + (q_plus[1] - q_minus[1]) * i / 8) for i in range(9)
    ]
    config = CounterConfig(lines=[line(p1=p1, p2=p2, hysteresis_px=5)])
    assert counts(run(config, path(1, steps))[1]) == (1, 0, 1, 0)
    assert counts(run(config, path(1, steps[::-1]))[1]) == (0, 1, 0, 1)


def test_pets09_direction_words() -> None:
    """line_counts.json: for x=384 (384,0)->(384,576) A->B is right to left; for y=300 it is top to bottom."""
    vertical = CounterConfig(lines=[LineConfig(name="v", p1=(384, 0), p2=(384, 576), hysteresis_px=0)])
    horizontal = CounterConfig(lines=[LineConfig(name="h", p1=(0, 300), p2=(768, 300), hysteresis_px=0)])
    assert counts(run(vertical, path(1, [(420, 300), (350, 300)]))[1], "v") == (1, 0, 1, 0)
    assert counts(run(horizontal, path(1, [(300, 280), (300, 320)]))[1], "h") == (1, 0, 1, 0)


def test_walking_along_the_line_with_jitter_does_not_inflate_events() -> None:
    """PETS09's y=300 path: feet wander a few pixels either side of the line for hundreds of frames."""
    rng = random.Random(3)
    along = [(float(x), 300 + rng.uniform(-6, 6)) for x in range(4, 764, 4)]
    table = path(1, [(0, 270), *along, (764, 340)])  # from above, along the line, and finally off, downwards
    y300 = {"name": "y300", "p1": (0, 300), "p2": (768, 300)}
    robust = CounterConfig(lines=[LineConfig(**y300, hysteresis_px=8)])
    naive = CounterConfig(lines=[LineConfig(**y300, hysteresis_px=0)])
    assert counts(run(robust, table)[1], "y300") == (1, 0, 1, 0)
    assert counts(run(robust, table[:-1])[1], "y300") == (0, 0, 0, 0)
    naive_counts = counts(run(naive, table)[1], "y300")
    assert naive_counts[0] + naive_counts[1] > 20  # what a line without a dead band reports
    # Even without hysteresis, visits stay at one per direction: the window de-duplicates the events.
    assert naive_counts[2:] == (1, 1)


def test_visit_window_expires_and_counts_again() -> None:
    there_and_back = ys(100, 60, 120, 60)
    table = path(1, [*there_and_back, *[(100, 60)] * 20, (100, 120)])  # 2nd a_to_b 2.75 s after the 1st
    short = CounterConfig(lines=[line(visit_window_s=2.0)])
    long = CounterConfig(lines=[line(visit_window_s=3.0)])
    assert counts(run(short, table)[1]) == (2, 1, 2, 1)
    assert counts(run(long, table)[1]) == (2, 1, 1, 1)


@pytest.mark.parametrize("anchor", ["bottom_center", "top_center", "center", "bottom_left"])
def test_anchor_point_is_what_crosses(anchor: str) -> None:
    """A 40 px tall box whose feet go from y=90 to y=115: only anchors near the bottom cross y=100."""
    config = CounterConfig(lines=[line(anchor=anchor, hysteresis_px=2)])
    counter = FootfallCounter(config)
    updates = [counter.update(tracks({1: (100, y)}), i * DT) for i, y in enumerate([90, 95, 105, 115])]
    expected = (1, 0, 1, 0) if anchor.startswith("bottom") else (0, 0, 0, 0)
    assert counts(updates) == expected


def test_normalized_coordinates_match_pixels() -> None:
    frame_size = (400, 200)
    pixels = CounterConfig(lines=[line(p1=(0, 100), p2=(200, 100))])
    normalized = CounterConfig(lines=[line(coordinates="normalized", p1=(0, 0.5), p2=(0.5, 0.5))])
    table = [
        *path(1, DOWN),
        *path(2, ys(250, 60, 80, 120, 140)),  # outside the normalised segment's end too (x > 0.5 * 400)
        *path(3, DOWN[::-1]),
    ]
    expected = counts(run(pixels, table)[1])
    assert expected == (1, 1, 1, 1)
    assert counts(run(normalized, table, frame_size=frame_size)[1]) == expected
    with pytest.raises(ValueError, match="frame_size"):
        FootfallCounter(normalized)


# ------------------------------------------------------------------------------------------------ track breaks


def test_track_break_mid_crossing_is_one_event_and_one_visit() -> None:
    """Id 1 disappears inside the dead band; id 2 appears where it was heading and completes the crossing."""
    table = [*path(1, ys(100, 60, 70, 80, 90, 97)), *path(2, ys(100, 103, 110, 120, 130))]
    counter, updates = run(CounterConfig(lines=[line(hysteresis_px=8)]), table)
    [event] = crossings(updates)
    assert (event.direction, event.track_id, event.visitor_id, event.new_visit) == ("a_to_b", 2, 1, True)
    assert counter.identities() == {2: 1}
    # Without re-association id 2 is born inside the band and nobody is counted; never twice either way.
    no_link = CounterConfig(lines=[line(hysteresis_px=8)], reassociate=False)
    assert counts(run(no_link, table)[1]) == (0, 0, 0, 0)


def test_track_break_after_crossing_is_not_a_second_visit() -> None:
    """Id 1 crosses and is lost behind a pillar; id 2 picks the person up, who then dithers on the mat."""
    dither = ys(100, 125, 130, 80, 75, 130, 140)
    table = [*path(1, ys(100, 60, 80, 120)), {}, {}, *path(2, dither)]
    _, updates = run(CounterConfig(lines=[line()]), table)
    assert counts(updates) == (2, 1, 1, 1)
    assert {e.visitor_id for e in crossings(updates)} == {1}
    # Control: as separate people (re-association off) id 2's first crossing is a second a_to_b visit.
    _, separate = run(CounterConfig(lines=[line()], reassociate=False), table)
    assert counts(separate) == (2, 1, 2, 1)


@pytest.mark.parametrize(
    ("gap_frames", "x2", "linked"),
    [(2, 100, True), (7, 100, True), (8, 100, False), (2, 160, False), (2, 120, True)],
    ids=["short gap", "gap of exactly 1 s", "gap too long", "too far (1.5 box heights)", "near (0.5 box heights)"],
)
def test_reassociation_gates(gap_frames: int, x2: float, linked: bool) -> None:
    table = [*path(1, ys(100, 60, 80, 120, 130)), *[{}] * gap_frames, *path(2, ys(x2, 130, 80, 60, 80, 130))]
    _, updates = run(CounterConfig(lines=[line()], track_ttl_s=2.0), table)
    visits_a_to_b = counts(updates)[2]
    assert visits_a_to_b == (1 if linked else 2)


def test_reassociation_follows_velocity_and_picks_the_closest() -> None:
    """Two people walk right; both ids break at once; the new ids are matched by predicted position."""
    walk: Frames = [{1: (20 + 10 * i, 60.0), 2: (20 + 10 * i, 140.0)} for i in range(5)]  # 80 px/s, 80 px apart
    after: Frames = [{3: (100 + 10 * i, 140.0), 4: (100 + 10 * i, 60.0)} for i in range(4)]
    counter, _ = run(CounterConfig(lines=[line()]), [*walk, {}, *after])
    assert counter.identities() == {3: 2, 4: 1}
    # A new id behind the walkers (opposite to their motion) is somebody else.
    behind: Frames = [{5: (0.0, 140.0)}]
    counter, _ = run(CounterConfig(lines=[line()]), [*walk, {}, *behind])
    assert counter.identities()[5] == 3


def test_old_id_returning_after_hand_over_is_a_new_identity() -> None:
    table: Frames = [
        *path(1, ys(100, 60, 80)),
        {2: (100, 80)},
        {2: (100, 85), 1: (30, 40)},  # id 1 is back, elsewhere, while id 2 carries its state
        {2: (100, 90), 1: (30, 60)},
        {2: (100, 120), 1: (30, 120)},
    ]
    _, updates = run(CounterConfig(lines=[line()]), table)
    assert sorted((e.track_id, e.visitor_id, e.new_visit) for e in crossings(updates)) == [(1, 2, True), (2, 1, True)]


def test_bad_boxes_and_duplicate_ids_are_harmless() -> None:
    counter = FootfallCounter(CounterConfig(lines=[line()]))
    nan = Tracks(np.array([1], np.int64), np.array([[np.nan, 0, 10, 10]], np.float32), np.ones(1, np.float32))
    events = []
    for i, y in enumerate([60, 80, 120, 130]):
        found = tracks({1: (100, y)})
        twice = Tracks(np.repeat(found.ids, 2), np.repeat(found.xyxy, 2, axis=0), np.ones(2, np.float32))
        events += counter.update(twice, i * DT).crossings
        if i == 1:
            events += counter.update(nan, (i + 0.5) * DT).crossings  # a NaN box: as if missing for a frame
    assert [(e.direction, e.track_id) for e in events] == [("a_to_b", 1)]
    assert counter.diagnostics() == {
        "frames": 5,
        "active_tracks": 1,
        "lost_tracks": 0,
        "visitors": 1,
        "reassociations": 0,
        "occupancy": {},
    }
    with pytest.raises(ValueError, match="frame_size"):
        FootfallCounter(CounterConfig(lines=[line(coordinates="normalized", p1=(0, 0), p2=(1, 1))]), frame_size=(0, 0))


# ---------------------------------------------------------------------------------------------------- zones

SQUARE = [(0, 0), (100, 0), (100, 100), (0, 100)]


def zone_events(updates: Sequence[CounterUpdate]) -> list[ZoneEvent]:
    return [event for update in updates for event in update.zone_events]


def test_zone_occupancy_and_dwell() -> None:
    config = CounterConfig(zones=[ZoneConfig(name="till", polygon=SQUARE, min_frames=3)])
    outside, inside = (150.0, 50.0), (50.0, 50.0)
    table = [
        {1: outside},
        {1: inside},  # frame 1: first inside: the entry is back-dated here
        {1: inside, 2: outside},
        {1: inside, 2: inside},  # frame 3: id 1 confirmed inside
        {1: inside, 2: inside},
        {1: outside, 2: inside},  # frame 5: id 2 confirmed; id 1 first outside
        {1: outside, 2: inside},
        {1: outside, 2: (99.0, 50.0)},  # frame 7: id 1 confirmed outside, left at frame 5
    ]
    counter, updates = run(config, table)
    assert [u.zone_events[-1].occupancy if u.zone_events else None for u in updates] == [
        None, None, None, 1, None, 2, None, 1,
    ]  # fmt: skip
    enter1, enter2, exit1 = zone_events(updates)
    assert (enter1.kind, enter1.track_id, enter1.frame, enter1.entered_t) == ("enter", 1, 3, 0.125)
    assert (enter2.kind, enter2.track_id, enter2.frame, enter2.entered_t) == ("enter", 2, 5, 0.375)
    assert (exit1.kind, exit1.track_id, exit1.frame, exit1.t) == ("exit", 1, 7, 0.875)
    assert (exit1.entered_t, exit1.left_t, exit1.dwell_s, exit1.occupancy) == (0.125, 0.625, 0.5, 1)
    assert counter.occupancy() == {"till": 1}
    assert counter.inside("till") == {2: 0.375}
    [exit2] = counter.close(10.0)
    assert (exit2.track_id, exit2.t, exit2.left_t, exit2.dwell_s, exit2.occupancy) == (2, 10.0, 0.875, 0.5, 0)
    assert counter.occupancy() == {"till": 0}


def test_zone_debounce_and_hysteresis() -> None:
    flicker = [{1: (50.0, 50.0 if i % 2 else 150.0)} for i in range(20)]
    _, updates = run(CounterConfig(zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=2)]), flicker)
    assert zone_events(updates) == []
    edge = [{1: (50.0, 130.0)}, *[{1: (50.0, 98.0 if i % 2 else 103.0)} for i in range(20)]]  # on the edge
    hysteresis = CounterConfig(zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=1, hysteresis_px=5)])
    assert zone_events(run(hysteresis, edge)[1]) == []
    no_hysteresis = CounterConfig(zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=1)])
    assert len(zone_events(run(no_hysteresis, edge)[1])) == 19


def test_lost_track_leaves_the_zone_after_the_hold_and_no_ghost_remains() -> None:
    config = CounterConfig(zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=1, lost_hold_s=1.0)])
    table = [*path(1, [(50, 50)] * 5), *[{}] * 15, *path(1, [(50, 50)] * 2)]
    counter, updates = run(config, table)
    assert [(e.kind, e.frame, e.occupancy) for e in zone_events(updates)] == [
        ("enter", 0, 1),
        ("exit", 13, 0),  # the first frame more than 1 s after the last sighting (frame 4)
        ("enter", 20, 1),  # the same id, back after the hold: a new stay
    ]
    exit_event = zone_events(updates)[1]
    assert (exit_event.left_t, exit_event.dwell_s) == (0.5, 0.5)
    assert counter.occupancy() == {"z": 1}
    # Back within the hold: one continuous stay.
    short_gap = [*path(1, [(50, 50)] * 5), *[{}] * 7, *path(1, [(50, 50)] * 2)]
    counter, updates = run(config, short_gap)
    assert [e.kind for e in zone_events(updates)] == ["enter"]
    assert counter.inside("z") == {1: 0.0}
    # A track forgotten altogether (track_ttl_s) leaves every zone whatever the hold.
    forgetful = CounterConfig(
        zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=1, lost_hold_s=9.0)], track_ttl_s=1.0
    )
    assert [e.frame for e in zone_events(run(forgetful, table[:20])[1])] == [0, 13]


def test_zone_membership_survives_a_track_break() -> None:
    config = CounterConfig(zones=[ZoneConfig(name="z", polygon=SQUARE, min_frames=1)])
    table = [*path(1, [(50, 50), (52, 50)]), {}, *path(2, [(55, 50), (57, 50), (150, 50)])]
    _, updates = run(config, table)
    enter, leave = zone_events(updates)
    assert (enter.kind, enter.track_id, leave.kind, leave.track_id, leave.visitor_id) == ("enter", 1, "exit", 2, 1)
    assert leave.dwell_s == 0.625


# ----------------------------------------------------------------------------------------------- aggregation


def crossing(t: float, direction: str = "a_to_b", new_visit: bool = True, name: str = "door") -> CrossingEvent:
    return CrossingEvent(name, direction, 1, 1, t, 0, new_visit)  # type: ignore[arg-type]


def test_interval_aggregation_boundaries() -> None:
    agg = IntervalAggregator(["door"], interval_s=60.0)
    assert agg.add(CounterUpdate(10.0, 0, [crossing(10.0)], [])) == []
    assert agg.add(CounterUpdate(59.999, 1, [crossing(59.999, "b_to_a"), crossing(59.999, new_visit=False)], [])) == []
    [first] = agg.add(CounterUpdate(60.0, 2, [crossing(60.0)], []))  # 60.0 opens [60, 120) and closes [0, 60)
    assert first == LineInterval("door", 0.0, 60.0, 2, 1, 1, 1, frames=2, complete=True)
    assert first.record_id == "line/door/0"
    assert first.as_dict() == {
        "record_id": "line/door/0",
        "line": "door",
        "interval_start": 0.0,
        "interval_end": 60.0,
        "events_a_to_b": 2,
        "events_b_to_a": 1,
        "visits_a_to_b": 1,
        "visits_b_to_a": 1,
        "frames": 2,
        "complete": True,
    }
    # Nothing observed in [120, 180): no record for it (not a zero).
    [second] = agg.add(CounterUpdate(185.0, 3, [], []))
    assert isinstance(second, LineInterval)
    assert (second.interval_start, second.events_a_to_b, second.frames) == (60.0, 1, 1)
    # A clock stepping back is counted in the open interval, not lost.
    assert agg.add(CounterUpdate(170.0, 4, [crossing(170.0, "b_to_a")], [])) == []
    [partial] = agg.flush()
    assert partial == LineInterval("door", 180.0, 240.0, 0, 1, 0, 1, frames=2, complete=False)
    assert partial.record_id == "line/door/180000"
    assert agg.flush() == []


def test_interval_aggregation_origin_and_zone_records() -> None:
    agg = IntervalAggregator([], ["z"], interval_s=10.0, origin=5.0)
    enter = ZoneEvent("z", "enter", 1, 1, 6.0, 0, 1, 5.5)
    enter2 = ZoneEvent("z", "enter", 2, 2, 7.0, 1, 2, 7.0)
    leave = ZoneEvent("z", "exit", 1, 1, 14.0, 2, 1, 5.5, 13.5, 8.0)
    leave2 = ZoneEvent("z", "exit", 2, 2, 16.0, 3, 0, 7.0, 15.0, 8.0)
    records = [*agg.feed([enter, enter2, leave]), *agg.feed([leave2]), *agg.advance(25.0)]
    assert records == [
        ZoneInterval("z", 5.0, 15.0, 2, 1, 0, 2, 1, 1, 8.0, 8.0, 0, True),
        ZoneInterval("z", 15.0, 25.0, 0, 1, 1, 1, 0, 1, 8.0, 8.0, 0, True),
    ]
    assert records[0].record_id == "zone/z/5000"
    with pytest.raises(ValueError, match="interval_s"):
        IntervalAggregator(["door"], interval_s=0)


def test_counter_to_aggregator_end_to_end() -> None:
    above_the_door = [(0, 0), (200, 0), (200, 99), (0, 99)]
    config = CounterConfig(lines=[line()], zones=[ZoneConfig(name="z", polygon=above_the_door, min_frames=1)])
    counter = FootfallCounter(config)
    agg = IntervalAggregator.for_config(config, interval_s=1.0)
    records = []
    table = [*path(1, ys(100, 60, 80, 120, 130, 80, 60)), *[{}] * 15]
    for i, frame in enumerate(table):
        records += agg.add(counter.update(tracks(frame), i * DT))
    records += agg.feed(counter.close(len(table) * DT))
    records += agg.flush()
    lines = [r for r in records if isinstance(r, LineInterval)]
    zones = [r for r in records if isinstance(r, ZoneInterval)]
    assert sum(r.events_a_to_b for r in lines) == 1 and sum(r.events_b_to_a for r in lines) == 1
    assert sum(r.frames for r in lines) == len(table)
    assert [r.interval_start for r in lines] == [0.0, 1.0, 2.0]
    assert sum(r.entries for r in zones) == 2 and sum(r.exits for r in zones) == 2
    assert zones[-1].occupancy_end == 0


# ------------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**DOOR, "p2": (0, 100)}, "p2"),
        ({**DOOR, "coordinates": "normalized", "p1": (0, 0.5), "p2": (1.2, 0.5)}, "p2"),
        ({**DOOR, "coordinates": "normalized", "p1": (-0.1, 0.5), "p2": (1, 0.5)}, "p1"),
        ({**DOOR, "hysteresis_px": -1}, "hysteresis_px"),
        ({**DOOR, "visit_window_s": 0}, "visit_window_s"),
        ({**DOOR, "anchor": "feet"}, "anchor"),
        ({**DOOR, "name": "bad name"}, "name"),
        ({**DOOR, "p1": (float("nan"), 0)}, "p1"),
        ({**DOOR, "hysterisis_px": 3}, "hysterisis_px"),
    ],
)
def test_invalid_line_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        LineConfig.model_validate(data)
    assert field in {str(part) for error in info.value.errors() for part in error["loc"]}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "z", "polygon": [(0, 0), (1, 1)]}, "polygon"),
        ({"name": "z", "polygon": [(0, 0), (1, 1), (2, 2)]}, "polygon"),  # zero area
        ({"name": "z", "coordinates": "normalized", "polygon": [(0, 0), (1, 0), (1, 2)]}, "polygon"),
        ({"name": "z", "polygon": SQUARE, "min_frames": 0}, "min_frames"),
        ({"name": "z", "polygon": SQUARE, "colour": "red"}, "colour"),
    ],
)
def test_invalid_zone_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ZoneConfig.model_validate(data)
    assert field in {str(part) for error in info.value.errors() for part in error["loc"]}


def test_invalid_counter_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match="lines"):
        CounterConfig.model_validate({"lines": [DOOR, DOOR]})
    with pytest.raises(ValidationError, match="reassociate_max_gap_s"):
        CounterConfig(track_ttl_s=0.5, reassociate_max_gap_s=1.0)
    assert LineConfig.model_validate({**DOOR, "coordinates": "normalized", "p1": (0, 1), "p2": (1, 0)}).p2 == (1, 0)


# ------------------------------------------------------------------------------------------------- properties

points = st.tuples(st.integers(0, 100), st.integers(0, 100))


@settings(max_examples=300, deadline=None)
@given(
    trajectory=st.lists(points, min_size=1, max_size=40),
    p1=points,
    p2=points,
    hysteresis=st.sampled_from([0.0, 3.0, 10.0]),
    window=st.sampled_from([0.3, 1.0, 100.0]),
)
def test_properties_visits_bounded_and_reversal_swaps_directions(
    trajectory: list[tuple[int, int]], p1: tuple[int, int], p2: tuple[int, int], hysteresis: float, window: float
) -> None:
    if p1 == p2:
        p2 = (p1[0] + 1, p1[1])
    config = CounterConfig(lines=[LineConfig(name="l", p1=p1, p2=p2, hysteresis_px=hysteresis, visit_window_s=window)])
    forward = counts(run(config, path(1, trajectory))[1], "l")
    backward = counts(run(config, path(1, trajectory[::-1]))[1], "l")
    assert forward[2] <= forward[0] and forward[3] <= forward[1]
    assert (backward[0], backward[1]) == (forward[1], forward[0])


# ------------------------------------------------------------------------------------------- PETS09 replay


def test_pets09_ground_truth_reproduces_line_counts(shared_data: Path) -> None:
    """Replays every GT row (flag 0 included, as line_counts.json did) with hysteresis 0."""
    root = shared_data / "footage" / "pets09_s2l1"
    expected = json.loads((root / "line_counts.json").read_text())["lines"]
    gt = np.loadtxt(root / "gt" / "gt.txt", delimiter=",", ndmin=2)
    config = CounterConfig(
        lines=[
            LineConfig(name="vertical_x384", p1=(384, 0), p2=(384, 576), hysteresis_px=0, visit_window_s=1e9),
            LineConfig(name="horizontal_y300", p1=(0, 300), p2=(768, 300), hysteresis_px=0, visit_window_s=1e9),
        ],
        reassociate=False,  # GT ids never break; the visits are then exactly the unique ids
    )
    counter = FootfallCounter(config)
    events: list[CrossingEvent] = []
    first, last = int(gt[:, 0].min()), int(gt[:, 0].max())
    for frame in range(first, last + 1):
        rows = gt[gt[:, 0] == frame]
        xyxy = np.stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1)
        found = Tracks(rows[:, 1].astype(np.int64), xyxy.astype(np.float32), rows[:, 6].astype(np.float32))
        events += counter.update(found, frame / 7.0).crossings
    totals = counter.totals()
    for name, truth in expected.items():
        mine = [e for e in events if e.line == name]
        assert [(e.track_id, e.frame + first, "A->B" if e.direction == "a_to_b" else "B->A") for e in mine] == [
            (e["id"], e["frame"], e["dir"]) for e in truth["events"]
        ]
        assert (totals[name].events_a_to_b, totals[name].events_b_to_a) == (
            truth["events_A_to_B"],
            truth["events_B_to_A"],
        )
        unique = Counter((e.track_id, e.direction) for e in mine)
        assert sum(d == "a_to_b" for _, d in unique) == truth["unique_ids_A_to_B"]
        assert sum(d == "b_to_a" for _, d in unique) == truth["unique_ids_B_to_A"]
        assert (totals[name].visits_a_to_b, totals[name].visits_b_to_a) == (
            truth["unique_ids_A_to_B"],
            truth["unique_ids_B_to_A"],
        )

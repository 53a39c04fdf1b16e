"""Acceptance 4 of issue 12: badge-carrying staff walk through the door in a simulator scenario.

``sim/scenarios/staff-door.yaml`` runs the whole store: the Intel one-by-one clip as the door camera (six people
cross x=576, one at a time, replayed 4x), the real gateway (detector, tracker, counter, the store day, the staff
policy and its bleak badge scanner with the simulator's bumble backend), emulated badges advertising on the
bumble radio on the footage's clock, the embedded broker and the cloud sink. Badges are near the door at the
second and fifth crossings; a weak badge (below the RSSI threshold) at the fourth, a badge heard only long before
the first, and a stranger's beacon at the sixth must exclude nobody.

What the cloud received is checked two ways: the store day's ``counts/daily`` record (entries 4, unique
visitors 4, staff crossings 2), and the door camera's interval records, where each crossing falls in its own
10-second interval and carries ``unique`` 1 when it was a visitor's entry: exactly the second and fifth are not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from agents.cloud.sink import SinkStore
from sim.harness import load_scenario, run_scenario


@pytest.mark.slow
async def test_staff_crossings_at_the_door_are_counted_apart(shared_data: Path, tmp_path: Path) -> None:
    scenario = load_scenario("staff-door")
    with (tmp_path / "log.txt").open("w") as log:
        report = await run_scenario(scenario, console=Console(file=log), workdir=tmp_path)
    assert report["failures"] == []

    (day,) = report["store_day"]["daily"]["days"]
    assert (day["entries"], day["unique_visitors"], day["staff_crossings"]) == (4, 4, 2)
    line = report["footfall"]["door"]["lines"]["door"]
    assert line["measured"]["visits_a_to_b"] == 6  # the camera's own counts still see every crossing

    store = SinkStore(tmp_path / "cloud.sqlite3")
    try:
        records = store.stream_data("sim-gw-staff", "counts/door")
    finally:
        store.close()
    crossings = sorted(
        (r["interval_start"], int(r["unique"])) for r in records if r["line"] == "door" and r["visits_a_to_b"]
    )
    assert [unique for _, unique in crossings] == [1, 0, 1, 1, 0, 1], crossings

    scanner = report["agents"]["staff-badges"]
    assert scanner["restarts"] == 0
    assert scanner["counters"]["sightings"] > 0  # the staff badges near the door
    assert scanner["counters"]["weak_sightings"] > 0  # the badge across the shop was heard, and not taken as near
    assert report["agents"]["store-day"]["staff"]["badge_crossings"] == 2

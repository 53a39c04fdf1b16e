"""``storeedge bench tags-ble``: the fleet-time model and a small real run (the benchmark's correctness, not its
figures; issue 5 acceptance 3 is the 1,000-tag run of the CLI)."""

from __future__ import annotations

import pytest

from agents.bench.tags_ble import TagCost, fleet_seconds, run_tags_ble_bench


def test_fleet_seconds_schedules_tags_on_free_connections() -> None:
    costs = [TagCost(busy_s=1.0, refresh_s=2.0, object_bytes=1000) for _ in range(4)]
    assert fleet_seconds(costs, 1, air_capacity=1e9) == pytest.approx(6.0)  # 4 busy seconds, then the last refresh
    assert fleet_seconds(costs, 2, air_capacity=1e9) == pytest.approx(4.0)
    assert fleet_seconds(costs, 4, air_capacity=1e9) == pytest.approx(3.0)
    assert fleet_seconds(costs, 4, air_capacity=400) == pytest.approx(10.0)  # the shared air is the bound


async def test_small_run_beats_the_naive_baseline() -> None:
    result = await run_tags_ble_bench(tags=8, parallel=(1, 4))
    assert result["tags_showing_the_new_label"] == 8
    baseline, ours = result["baseline"], result["ours"]
    assert ours["bytes_on_air_per_tag"] < 0.25 * baseline["bytes_on_air_per_tag"]
    by_parallelism = {entry["parallel_connections"]: entry["modelled_s"] for entry in ours["by_parallelism"]}
    assert by_parallelism[4] < by_parallelism[1] < baseline["modelled_s"]

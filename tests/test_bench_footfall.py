"""`storeedge bench footfall`: the JSON interface, the doorway count on real footage with the real
detector, and clear errors for bad input. (Accuracy and speed figures are the benchmark's job.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = ("counts", "visits", "mota", "idf1", "id_switches", "fps")


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "bench", "footfall", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_mot_detections_with_ground_truth(shared_data: Path) -> None:
    pets = shared_data / "footage" / "pets09_s2l1"
    done = bench(
        "--dets",
        str(pets / "det/det.txt"),
        "--gt",
        str(pets / "gt/gt.txt"),
        "--fps",
        "7",
        "--line",
        "384,0,384,576",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for side in (result, result["baseline"]):
        for key in KEYS:
            assert key in side
        assert set(side["counts"]) == set(side["visits"]) == {"a_to_b", "b_to_a"}
        assert isinstance(side["id_switches"], int)
        assert 0 < side["mota"] <= 100 and 0 < side["idf1"] <= 100
        assert side["fps"]["tracker"] > 0
        assert side["fps"]["end_to_end"] is None  # no detector ran
        # Visits never exceed events.
        assert all(side["visits"][d] <= side["counts"][d] for d in ("a_to_b", "b_to_a"))
    assert result["frames"] == 795


@pytest.mark.slow
def test_doorway_clip_counts_six_visitors(shared_data: Path) -> None:
    clip = shared_data / "footage" / "intel_one_by_one" / "one-by-one-person-detection.mp4"
    model = shared_data / "models" / "yolox_nano" / "yolox_nano.onnx"
    done = bench("--video", str(clip), "--model", str(model), "--line", "576,432,576,0", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["visits"] == {"a_to_b": 6, "b_to_a": 0}
    assert result["counts"] == {"a_to_b": 6, "b_to_a": 0}
    assert result["id_switches"] is None
    assert result["fps"]["end_to_end"] > 0 and result["fps"]["detector_only"] > 0


def test_missing_video_is_a_clear_error(tmp_path: Path, shared_data: Path) -> None:
    model = shared_data / "models" / "yolox_nano" / "yolox_nano.onnx"
    done = bench("--video", str(tmp_path / "none.mp4"), "--model", str(model), "--line", "1,2,3,4")
    assert done.returncode == 2
    assert "video file not found" in done.stderr


def test_wrong_model_names_expected_and_found_shapes(shared_data: Path) -> None:
    clip = shared_data / "footage" / "pets09_s2l1" / "vtest.avi"
    ssd = shared_data / "models" / "ssdlite_person" / "ssdlite_person.onnx"
    done = bench("--video", str(clip), "--model", str(ssd), "--detector", "yolox", "--line", "1,2,3,4")
    assert done.returncode == 2
    assert "expected" in done.stderr and "found" in done.stderr


def test_degenerate_line_is_refused() -> None:
    done = bench("--dets", "x.txt", "--line", "5,5,5,5")
    assert done.returncode == 2
    assert "two points must differ" in done.stderr


def walker_detections(path: Path) -> Path:
    """MOT detections of one person walking left to right across x=300 (no footage needed)."""
    rows = [f"{frame},-1,{100 + 10 * frame},200,40,100,0.9,-1,-1,-1" for frame in range(1, 41)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_without_the_bench_extra_the_baseline_is_skipped_and_ours_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.bench.footfall import FootfallBenchOptions, run_footfall_bench

    monkeypatch.setitem(sys.modules, "supervision", None)  # as on a plain `pip install storeedge`
    lines: list[str] = []
    result = run_footfall_bench(
        FootfallBenchOptions(line=(300, 0, 300, 600), dets=walker_detections(tmp_path / "det.txt"), fps=10),
        progress=lines.append,
    )
    assert result["visits"] == {"a_to_b": 1, "b_to_a": 0} or result["visits"] == {"a_to_b": 0, "b_to_a": 1}
    assert "supervision is not installed" in result["baseline"]["skipped"]
    assert "storeedge[bench]" in result["baseline"]["skipped"]
    assert lines, "progress lines for a long run"


def test_with_the_bench_extra_the_baseline_runs_on_the_same_detections(tmp_path: Path) -> None:
    from agents.bench.footfall import FootfallBenchOptions, run_footfall_bench

    result = run_footfall_bench(
        FootfallBenchOptions(line=(300, 0, 300, 600), dets=walker_detections(tmp_path / "det.txt"), fps=10)
    )
    assert "skipped" not in result["baseline"]
    assert sum(result["baseline"]["visits"].values()) == sum(result["visits"].values()) == 1

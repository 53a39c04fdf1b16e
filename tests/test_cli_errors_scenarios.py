"""``storeedge sim run`` fails early, in one message, with a non-zero exit (issue 10, acceptance 2).

Footage scenarios without their footage and model stop before anything starts and name the missing paths
and ``STOREEDGE_SHARED_DATA``; an unreachable ``--broker`` is named with the reason within seconds; and a run
whose camera agent crashed fails, with the crash in the report and the summary. Each test runs the real
command in a subprocess, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim.broker import free_port


def storeedge(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> tuple[int, str, float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return run.returncode, run.stdout + run.stderr, time.monotonic() - started


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output and "ExceptionGroup" not in output, output


@pytest.mark.parametrize(
    ("scenario", "footage"),
    [
        ("pets09", "footage/pets09_s2l1/vtest.avi"),
        ("intel-door", "footage/intel_one_by_one/one-by-one-person-detection.mp4"),
    ],
)
def test_footage_scenario_without_shared_data_fails_before_it_starts(
    tmp_path: Path, scenario: str, footage: str
) -> None:
    empty = tmp_path / "shared-data"
    empty.mkdir()
    code, out, seconds = storeedge("sim", "run", "--scenario", scenario, env={"STOREEDGE_SHARED_DATA": str(empty)})
    assert code == 2, out
    assert_no_traceback(out)
    assert out.startswith("storeedge sim run: "), out
    assert f"gateway.cameras.0.source.url: file not found: {empty / footage}" in out
    assert "STOREEDGE_SHARED_DATA" in out and "models/ and footage/" in out
    assert "sim summary" not in out, "nothing may start without the files"
    assert seconds < 30, f"took {seconds:.1f}s: the check comes before the broker and gateway start"


def test_unreachable_broker_is_named_with_the_reason(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    code, out, seconds = storeedge("sim", "run", "--duration", "5", "--broker", url)
    assert code == 1, out
    assert_no_traceback(out)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert url in lines[0] and "connection refused" in lines[0], out
    assert seconds < 15, f"took {seconds:.1f}s: a refused connection must fail at once"


def test_a_run_whose_camera_agent_crashed_fails(tmp_path: Path) -> None:
    # Both files exist (so the up-front check passes) but neither is what it claims: the camera agent crashes.
    video, model = tmp_path / "door.mp4", tmp_path / "model.onnx"
    video.write_text("not a video\n", encoding="utf-8")
    model.write_text("not an ONNX model\n", encoding="utf-8")
    scenario = {
        "name": "broken-camera",
        "duration_s": 60,
        "gateway": {
            "heartbeat": {"interval_s": 1, "health_interval_s": 5},
            "runtime": {"restart_min_delay_s": 0.2, "restart_max_delay_s": 1, "shutdown_grace_s": 2},
            "cameras": [
                {
                    "name": "door",
                    "source": {"url": str(video)},
                    "detector": {"type": "yolox", "model": str(model)},
                    "counting": {"lines": [{"name": "door", "p1": [10, 0], "p2": [10, 100]}]},
                }
            ],
        },
    }
    scenario_path = tmp_path / "broken-camera.yaml"
    scenario_path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    report_path = tmp_path / "report.json"

    code, out, seconds = storeedge("sim", "run", "--scenario", str(scenario_path), "--report", str(report_path))
    assert code == 1, out
    assert seconds < 45, f"took {seconds:.1f}s: the run should stop at the first crash, not play on"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    camera = report["agents"]["footfall-door"]
    assert camera["restarts"] > 0 and camera["last_error"], camera
    assert any(failure.startswith("agent footfall-door crashed") for failure in report["failures"]), report["failures"]
    assert "FAILED" in out and "footfall-door crashed" in out, out

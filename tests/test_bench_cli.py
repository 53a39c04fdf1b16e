"""The ``storeedge`` command line, run as real subprocesses: --version, bench uplink, sim list/run, cloud.

Benchmarks are not tests: ``bench uplink`` is only checked for the shape of its JSON output (one object,
positive numbers), never for a throughput ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from agents.cloud.sink import SinkStore
from protocols.mqtt_v1 import GatewayTopics, encode_envelope
from tests.brokers import Mosquitto

CONSOLE_SCRIPT = Path(sys.executable).with_name("storeedge")
BUILTIN_SCENARIOS = ("default", "uplink-soak")


def cli_env() -> dict[str, str]:
    """A wide, colourless terminal so rich output is plain and never truncated."""
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def run_cli(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m agents.cli ARGS`` with the interpreter running the tests."""
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"


def is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


# -- --version -------------------------------------------------------------------------------------


def test_version_from_console_script(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"console script not installed next to {sys.executable}"
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "--version"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, describe(result)
    assert result.stdout == f"storeedge {version('storeedge')}\n"


def test_version_from_python_module(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path, timeout=30)
    assert result.returncode == 0, describe(result)
    assert result.stdout.strip() == f"storeedge {version('storeedge')}"


# -- bench uplink ----------------------------------------------------------------------------------


def test_bench_uplink_json_prints_one_object_with_positive_metrics(tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = run_cli(
        "bench",
        "uplink",
        "--broker",
        f"mqtt://127.0.0.1:{mosquitto.port}",
        "--messages",
        "500",
        "--json",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, describe(result)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line:\n{result.stdout}"
    report = json.loads(lines[0])
    assert isinstance(report, dict)
    for key in ("throughput_msgs_per_s", "baseline_throughput_msgs_per_s", "p99_latency_ms"):
        assert is_positive_number(report.get(key)), f"{key} = {report.get(key)!r}"
    assert report["benchmark"] == "uplink"
    assert report["messages"] == 500
    assert report["broker"] == f"mqtt://127.0.0.1:{mosquitto.port}"


# -- sim -------------------------------------------------------------------------------------------


def test_sim_list_names_builtin_scenarios(tmp_path: Path) -> None:
    result = run_cli("sim", "list", cwd=tmp_path, timeout=30)
    assert result.returncode == 0, describe(result)
    names = {line.split(":", 1)[0] for line in result.stdout.splitlines() if line.strip()}
    assert set(BUILTIN_SCENARIOS) <= names, result.stdout


@pytest.mark.parametrize("scenario", [None, "uplink-soak"], ids=["default", "uplink-soak"])
def test_sim_run_writes_a_lossless_duplicate_free_report(tmp_path: Path, scenario: str | None) -> None:
    report_path = tmp_path / "out" / "report.json"
    args = ["sim", "run", "--duration", "3", "--report", str(report_path)]
    if scenario is not None:
        args += ["--scenario", scenario]
    started = time.monotonic()
    result = run_cli(*args, cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, describe(result)
    assert elapsed >= 3.0, "the simulator must run for --duration seconds"

    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["scenario"] == (scenario or "default")
    uplink = report["uplink"]
    for key in ("published", "received", "lost", "duplicates"):
        assert type(uplink[key]) is int, f"uplink.{key} = {uplink[key]!r}"
    assert uplink["published"] > 0
    assert uplink["received"] == uplink["published"]
    assert uplink["lost"] == 0
    assert uplink["duplicates"] == 0, "no fault in these scenarios: nothing reconnects, so nothing is redelivered"

    assert "sim summary" in result.stdout, describe(result)
    assert "published" in result.stdout and "lost" in result.stdout
    assert f"report written to {report_path}" in result.stdout


def test_sim_run_unknown_scenario_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("sim", "run", "--scenario", "does-not-exist", "--duration", "1", cwd=tmp_path, timeout=30)
    assert result.returncode == 2, describe(result)
    assert "does-not-exist" in result.stderr
    for name in BUILTIN_SCENARIOS:
        assert name in result.stderr, f"the error should name the known scenarios:\n{result.stderr}"
    assert "Traceback" not in result.stderr


# -- cloud -----------------------------------------------------------------------------------------


def test_cloud_report_only_on_empty_db(tmp_path: Path) -> None:
    db = tmp_path / "cloud.sqlite3"
    SinkStore(db).close()  # a sink that ran and stored nothing (a missing file is an error: test_cli_errors)
    result = run_cli("cloud", "--db", str(db), "--report-only", cwd=tmp_path, timeout=30)
    assert result.returncode == 0, describe(result)
    report = json.loads(result.stdout)
    assert report["received_unique"] == 0
    assert report["duplicates"] == 0
    assert report["missing"] == 0
    assert report["streams"] == {} and report["status"] == {}


def test_cloud_report_only_reports_stored_messages(tmp_path: Path) -> None:
    db = tmp_path / "cloud.sqlite3"
    topics = GatewayTopics("store-1", "gw-1")
    store = SinkStore(db)
    try:
        for seq in (1, 3, 3):  # seq 2 never arrived; seq 3 arrived twice
            payload = encode_envelope(
                gateway_id="gw-1", stream="heartbeat", seq=seq, stream_seq=seq, ts=1_700_000_000.0 + seq, data={}
            )
            store.store(topics.stream("heartbeat"), payload)
        store.store(topics.status, b'{"online": true}')
    finally:
        store.close()
    result = run_cli("cloud", "--db", str(db), "--report-only", cwd=tmp_path, timeout=30)
    assert result.returncode == 0, describe(result)
    report = json.loads(result.stdout)
    assert report["received_unique"] == 2
    assert report["duplicates"] == 1
    assert report["missing"] == 1
    assert report["streams"]["gw-1/heartbeat"] == {
        "received": 2,
        "max_stream_seq": 3,
        "missing": 1,
        "missing_ranges": [[2, 2]],
    }
    assert report["status"] == {"gw-1": {"online": True}}


def test_cloud_without_broker_or_report_only_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("cloud", "--db", str(tmp_path / "cloud.sqlite3"), cwd=tmp_path, timeout=30)
    assert result.returncode == 2, describe(result)
    assert "--broker" in result.stderr

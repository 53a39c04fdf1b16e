"""Footage tests on a plain clone (issue 10): left out with one line when the shared data is absent.

Each check runs pytest in a subprocess on a tiny test file, with this suite's ``conftest`` as a plugin and
its ``pyproject.toml`` settings (``--strict-markers``, so the ``footage`` marker must be registered). The
file has a plain test and three footage tests: one using ``shared_data``, one using a fixture that uses
it, and one marked by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_SUITE = """
import pytest


@pytest.fixture
def model_dir(shared_data):
    return shared_data / "models"


def test_plain():
    pass


def test_uses_shared_data(shared_data):
    assert (shared_data / "footage").is_dir()


def test_uses_a_fixture_that_uses_shared_data(model_dir):
    assert model_dir.is_dir()


@pytest.mark.footage
def test_marked_by_hand():
    pass
"""


def run_tiny_suite(tmp_path: Path, shared_data: Path, *, require: bool = False) -> subprocess.CompletedProcess[str]:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_tiny.py").write_text(TINY_SUITE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("STOREEDGE_REQUIRE_FOOTAGE", "PYTEST_ADDOPTS")}
    env["STOREEDGE_SHARED_DATA"] = str(shared_data)
    if require:
        env["STOREEDGE_REQUIRE_FOOTAGE"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(suite),
        "-p",
        "tests.conftest",
        "-p",
        "no:cacheprovider",
        "--strict-markers",
        "-q",
        str(suite / "test_tiny.py"),
    ]
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def test_absent_footage_is_one_line_and_the_run_passes(tmp_path: Path) -> None:
    absent = tmp_path / "no-shared-data"
    result = run_tiny_suite(tmp_path, absent)
    assert result.returncode == 0, describe(result)
    mentions = [line for line in result.stdout.splitlines() if "footage" in line]
    assert mentions == [
        "3 footage tests not run: set STOREEDGE_SHARED_DATA to the shared data folder "
        f"(models/ and footage/; not found at {absent})"
    ], describe(result)
    assert "1 passed, 3 deselected" in result.stdout, describe(result)
    assert "Traceback" not in result.stdout + result.stderr


def test_required_footage_that_is_absent_is_a_usage_error(tmp_path: Path) -> None:
    absent = tmp_path / "no-shared-data"
    result = run_tiny_suite(tmp_path, absent, require=True)
    assert result.returncode == 4, describe(result)  # pytest's USAGE_ERROR
    assert f"3 footage tests need the shared data (models/ and footage/), not found at {absent}" in result.stderr
    assert "passed" not in result.stdout, describe(result)


def test_present_footage_runs_every_test(tmp_path: Path) -> None:
    shared = tmp_path / "shared-data"
    (shared / "models").mkdir(parents=True)
    (shared / "footage").mkdir()
    result = run_tiny_suite(tmp_path, shared, require=True)
    assert result.returncode == 0, describe(result)
    assert "4 passed" in result.stdout and "deselected" not in result.stdout, describe(result)
    assert "not run" not in result.stdout, describe(result)

"""A plain (non-editable) install works without the checkout (issue 10, "works from a wheel" and "a model out of
the box").

The wheel is built once per module from a copy of the checkout's files (tracked and untracked, not ignored: what a
clone holds), without build isolation so no network is needed, and installed into a fresh venv. The venv sees the
system site-packages for the dependencies, and this project is installed there too (editable, pointing at this
checkout), so every check first proves that the venv's own copy is the one imported: the commands run from a
temporary directory (no checkout on ``sys.path``) and report the files they loaded.

The runtime installer of the virtual board is tested offline with a stand-in ``npm``; the real download is
exercised by ``tests/test_sim_board.py`` and ``scripts/firmware-test``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.bench.footfall import FootfallBenchOptions, bench_model
from agents.firmware_files import esltag_dir
from agents.footfall.detectors import SHIPPED_YOLOX_MODEL, YoloxConfig, parse_detector_config
from sim import micropython_runtime
from sim.micropython_runtime import (
    MICROPYTHON_NPM_PACKAGE,
    BoardRuntimeError,
    ensure_micropython_runtime,
    runtime_dir,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL_SHA256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
FIRMWARE_FILES = sorted(p.name for p in (ROOT / "firmware" / "esltag").glob("*.py"))
FOOTAGE_SUFFIXES = (".avi", ".mp4", ".mpg", ".mkv", ".jpg", ".png")
WHEEL_SIZE_LIMIT = 8 << 20
"""The wheel is code, firmware and one 3.7 MB model; anything much larger means data got in."""
INTEL_CLIP = Path("footage", "intel_one_by_one", "one-by-one-person-detection.mp4")


def _clean_env() -> dict[str, str]:
    """The environment for commands in the venv: nothing that would point Python back at the checkout."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``storeedge-*.whl`` built from a copy of the checkout's files (as a clone has them)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("building the wheel from a clone's files needs git and a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():  # listed but deleted in the working tree: not in a clone either
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = dist.glob("storeedge-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (system site-packages visible, for the dependencies) with the wheel installed in it."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder)], check=True)
    # The system's pip, run by the venv's interpreter, installs into the venv. --ignore-installed: the system has
    # storeedge installed (editable) and pip would otherwise call the requirement satisfied.
    subprocess.run(
        [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed"]
        + ["--no-build-isolation", str(wheel)],
        check=True,
        timeout=300,
        env=_clean_env(),
    )
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory with no checkout in it or above it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _in_venv(path: str, venv: Path) -> bool:
    return Path(path).resolve().is_relative_to(venv.resolve())


# ---- the wheel's contents --------------------------------------------------------------------------------------


def test_wheel_ships_firmware_runtime_script_and_model_and_no_footage(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        model = archive.read("agents/footfall/models/yolox_nano.onnx")
        licence = archive.read("agents/footfall/models/LICENSE").decode()
    assert sorted(n.removeprefix("firmware/esltag/") for n in names if n.startswith("firmware/esltag/")) == (
        FIRMWARE_FILES
    )
    assert "firmware/__init__.py" in names
    assert "sim/board_runtime.mjs" in names
    assert "sim/micropython_runtime.py" in names
    assert hashlib.sha256(model).hexdigest() == MODEL_SHA256
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "agents/footfall/models/README.md" in names
    assert not [n for n in names if n.startswith(("firmware/tests/", "firmware/typecheck_canary/", "tests/"))]
    assert not [n for n in names if n.lower().endswith(FOOTAGE_SUFFIXES) or "shared/" in n]
    assert wheel.stat().st_size < WHEEL_SIZE_LIMIT


# ---- the installed wheel, away from the checkout ---------------------------------------------------------------

_PROBE = """
import json
import agents, firmware, sim
from agents.firmware_files import esltag_dir
from agents.footfall.detectors import SHIPPED_YOLOX_MODEL, parse_detector_config
from agents.provision.device import collect_firmware
import sim.board.runtime
import sim.serial_tags
import esltag.tag

print(json.dumps({
    "agents": agents.__file__,
    "firmware": firmware.__file__,
    "esltag_dir": str(esltag_dir()),
    "esltag_dir_is_dir": esltag_dir().is_dir(),
    "esltag_imported": esltag.tag.__file__,
    "deployed": [f.board_path for f in collect_firmware()],
    "model": str(parse_detector_config({"type": "yolox"}).model),
    "model_is_file": SHIPPED_YOLOX_MODEL.is_file(),
    "board_runtime": str(sim.board.runtime.RUNTIME_SCRIPT),
    "board_runtime_is_file": sim.board.runtime.RUNTIME_SCRIPT.is_file(),
}))
"""


def test_installed_wheel_finds_firmware_model_and_board_runtime_inside_the_venv(venv: Path, outside: Path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _PROBE],
        cwd=outside,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for key in ("agents", "firmware", "esltag_dir", "esltag_imported", "model", "board_runtime"):
        assert _in_venv(found[key], venv), f"{key} comes from {found[key]}, not from the venv {venv}"
    assert found["esltag_dir_is_dir"] and found["model_is_file"] and found["board_runtime_is_file"]
    assert sorted(found["deployed"]) == [f"/lib/esltag/{n}" for n in FIRMWARE_FILES if n != "manifest.py"]


def test_installed_console_script_runs_from_the_venv(venv: Path, outside: Path) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "storeedge"), "--version"],
        cwd=outside,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "0.1.0" in result.stdout


def test_installed_wheel_counts_the_intel_clip_with_the_shipped_model(
    venv: Path, outside: Path, shared_data: Path
) -> None:
    # No --model: the detector is the YOLOX-Nano inside the venv (the probe above shows where it is loaded from).
    result = subprocess.run(
        [str(venv / "bin" / "storeedge"), "bench", "footfall", "--video", str(shared_data / INTEL_CLIP)]
        + ["--line", "576,432,576,0", "--json"],
        cwd=outside,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["detector"] == "yolox:yolox_nano.onnx"
    assert report["visits"] == {"a_to_b": 6, "b_to_a": 0}


# ---- the shipped model as the default ----------------------------------------------------------------------------


def test_yolox_detector_without_model_uses_the_shipped_file() -> None:
    config = parse_detector_config({"type": "yolox"})
    assert isinstance(config, YoloxConfig)
    assert config.model == SHIPPED_YOLOX_MODEL
    assert hashlib.sha256(SHIPPED_YOLOX_MODEL.read_bytes()).hexdigest() == MODEL_SHA256
    assert (SHIPPED_YOLOX_MODEL.parent / "LICENSE").is_file()


@pytest.mark.parametrize("detector_type", ["ssd", "yolov8"])
def test_other_detector_types_still_require_a_model(detector_type: str) -> None:
    with pytest.raises(ValueError, match=rf"{detector_type}\.model\s+Field required"):
        parse_detector_config({"type": detector_type})


def test_bench_uses_the_shipped_model_unless_told_otherwise(tmp_path: Path) -> None:
    line = (576.0, 432.0, 576.0, 0.0)
    assert bench_model(FootfallBenchOptions(line=line)) == (SHIPPED_YOLOX_MODEL, "yolox")
    own = tmp_path / "ssdlite_person.onnx"
    assert bench_model(FootfallBenchOptions(line=line, model=own)) == (own, "ssd")
    with pytest.raises(ValueError, match="--detector yolov8 needs --model"):
        bench_model(FootfallBenchOptions(line=line, detector_type="yolov8"))


def test_firmware_folder_in_the_checkout() -> None:
    assert esltag_dir() == ROOT / "firmware" / "esltag"


# ---- the MicroPython runtime installer ---------------------------------------------------------------------------

_FAKE_NPM = """#!/bin/sh
# Stand-in for npm: records its arguments and "installs" micropython.mjs under --prefix.
echo "$@" > "$NPM_ARGS_FILE"
while [ $# -gt 0 ]; do
  if [ "$1" = "--prefix" ]; then prefix="$2"; fi
  shift
done
package="$prefix/node_modules/@micropython/micropython-webassembly-pyscript"
mkdir -p "$package"
echo "export const loadMicroPython = null;" > "$package/micropython.mjs"
"""


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache with no runtime in it, and no override pointing elsewhere."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv(micropython_runtime.MODULE_ENV, raising=False)
    yield cache


def test_runtime_install_without_npm_names_the_package_to_install(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BoardRuntimeError) as error:
        ensure_micropython_runtime(progress=lambda line: None)
    message = str(error.value)
    assert "npm is needed" in message and "apt-get install -y nodejs npm" in message
    assert str(empty_cache / "storeedge" / "micropython-1.27.0") in message
    assert not (empty_cache / "storeedge").exists()


def test_runtime_installs_once_into_the_user_cache_with_progress(
    empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(_FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    args_file = tmp_path / "npm-args"
    monkeypatch.setenv("NPM_ARGS_FILE", str(args_file))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    lines: list[str] = []

    module = ensure_micropython_runtime(progress=lines.append)

    target = empty_cache / "storeedge" / "micropython-1.27.0"
    assert runtime_dir() == target and module.is_file() and module.is_relative_to(target)
    args = args_file.read_text().split()
    assert args[0] == "install" and "--ignore-scripts" in args and MICROPYTHON_NPM_PACKAGE in args
    assert len(lines) == 2 and "installing" in lines[0] and str(target) in lines[0] and "installed" in lines[1]
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no staging folder left behind
    args_file.unlink()
    assert ensure_micropython_runtime(progress=lines.append) == module
    assert not args_file.exists() and len(lines) == 2  # present: npm not run again, nothing printed


def test_runtime_install_failure_leaves_no_half_install(
    empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text("#!/bin/sh\necho 'npm error code E404' >&2\nexit 1\n")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(BoardRuntimeError, match=r"failed \(exit 1; it needs the npm registry once\): npm error"):
        ensure_micropython_runtime(progress=lambda line: None)
    assert list((empty_cache / "storeedge").iterdir()) == []


def test_runtime_override_that_does_not_exist_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "micropython.mjs"
    monkeypatch.setenv(micropython_runtime.MODULE_ENV, str(missing))
    with pytest.raises(BoardRuntimeError, match=f"STOREEDGE_MICROPYTHON_MJS={missing} does not exist"):
        ensure_micropython_runtime(progress=lambda line: None)


def test_firmware_test_script_uses_the_one_runtime_pin() -> None:
    script = (ROOT / "scripts" / "firmware-test").read_text()
    assert "python3 -m sim.micropython_runtime" in script
    assert "micropython-webassembly-pyscript@" not in script

"""The machine: clock synchronisation, memory, CPU temperature and throttling, disk space and speed.

Each reads what Linux offers (``/proc/meminfo``, ``/sys/class/thermal``, the Raspberry Pi firmware's throttle
flags, systemd's time-sync marker or ``timedatectl``); where a figure is not readable on this machine, the check
passes with a note instead of warning forever.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from agents.doctor.results import CheckResult, fail, ok, warn

__all__ = ["check_clock", "check_cpu", "check_disk", "check_memory"]


def check_clock(timeout_s: float) -> CheckResult:
    """Whether the clock is synchronised (systemd-timesyncd, else ``timedatectl``)."""
    marker = Path("/run/systemd/timesync/synchronized")
    timedatectl = shutil.which("timedatectl")
    if marker.exists():
        return ok("clock", "clock synchronised (systemd-timesyncd)")
    if timedatectl:
        import subprocess

        try:
            out = subprocess.run(  # noqa: S603 - fixed command
                [timedatectl, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out == "yes":
            return ok("clock", "clock synchronised (NTP)")
        if out == "no":
            return fail(
                "clock",
                "clock is not synchronised",
                "enable NTP: `timedatectl set-ntp true`; check that UDP 123 reaches a time server",
            )
    return ok("clock", "NTP status not readable on this machine (skipped)", now=datetime.now(UTC).isoformat())


def check_memory() -> CheckResult:
    """Memory available, from ``/proc/meminfo``."""
    info = _meminfo()
    if not info:
        return ok("memory", "memory figures not readable on this machine (skipped)")
    total, available = info.get("MemTotal", 0), info.get("MemAvailable", 0)
    share = available / total if total else 1.0
    detail = {"total_mib": total // 1024, "available_mib": available // 1024}
    if share < 0.05:
        return fail(
            "memory",
            f"only {available // 1024} MiB available",
            "stop other services or reduce cameras/detector threads; check for a leak in `storeedge doctor --bundle`",
            **detail,
        )
    if share < 0.15:
        return warn(
            "memory",
            f"{available // 1024} MiB available ({share:.0%})",
            "memory is tight; watch it or reduce detector threads",
            **detail,
        )
    return ok("memory", f"{available // 1024} MiB of {total // 1024} MiB available", **detail)


def check_cpu() -> CheckResult:
    """The hottest thermal zone, and the Raspberry Pi's throttle flags."""
    temps = []
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            temps.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    throttled = _throttled()
    if not temps and throttled is None:
        return ok("cpu_temperature", "CPU temperature not readable on this machine (skipped)")
    hottest = max(temps) if temps else None
    detail = {"celsius": hottest, "throttled": throttled}
    if (hottest is not None and hottest >= 80) or throttled:
        return fail(
            "cpu_temperature",
            f"CPU at {hottest} °C, throttled={throttled}",
            "improve cooling or ventilation; check the power supply (under-voltage also throttles)",
            **detail,
        )
    if hottest is not None and hottest >= 70:
        return warn(
            "cpu_temperature", f"CPU at {hottest} °C", "the gateway runs hot; add a heatsink or airflow", **detail
        )
    return ok("cpu_temperature", f"CPU at {hottest} °C", **detail)


def check_disk(state_dir: Path) -> CheckResult:
    """Free space where the gateway keeps its state, and how long a 64 KiB write+fsync takes there."""
    probe_dir = state_dir if state_dir.is_dir() else next((p for p in state_dir.parents if p.is_dir()), Path("/"))
    usage = shutil.disk_usage(probe_dir)
    free_mib = usage.free // (1024 * 1024)
    latency_ms = None
    try:
        path = probe_dir / f".storeedge-doctor-{os.getpid()}"
        started = time.perf_counter()
        with open(path, "wb") as handle:
            handle.write(os.urandom(64 * 1024))
            handle.flush()
            os.fsync(handle.fileno())
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        path.unlink()
    except OSError as exc:
        return fail(
            "disk",
            f"cannot write to {probe_dir}: {exc.strerror}",
            f"check that {probe_dir} is mounted read-write and owned by the storeedge user",
            free_mib=free_mib,
        )
    detail = {"path": str(probe_dir), "free_mib": free_mib, "write_fsync_ms": latency_ms}
    if free_mib < 100:
        return fail(
            "disk",
            f"only {free_mib} MiB free on {probe_dir}",
            "free space: old logs (`journalctl --vacuum-size=100M`), or a larger SD card",
            **detail,
        )
    if latency_ms is not None and latency_ms > 500:
        return warn(
            "disk",
            f"slow storage: 64 KiB write+fsync took {latency_ms} ms",
            "the SD card may be worn out or a slow class; replace it (A1/A2 class)",
            **detail,
        )
    if free_mib < 1024:
        return warn("disk", f"{free_mib} MiB free", "disk is getting full; clean up logs", **detail)
    return ok("disk", f"{free_mib} MiB free, 64 KiB write+fsync {latency_ms} ms", **detail)


def _meminfo() -> dict[str, int]:
    info: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return info


def _throttled() -> bool | None:
    """Raspberry Pi firmware's throttle flags (None where not a Pi)."""
    path = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
    try:
        return int(path.read_text().strip(), 16) != 0
    except (OSError, ValueError):
        return None

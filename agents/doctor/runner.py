"""``storeedge doctor``: one command that tells a field technician what is wrong with a gateway and how to fix it.

Every check returns ``pass``, ``warn`` or ``fail`` with a one-line summary and, unless it passed, a one-line
``hint`` that says what to do. The checks read what the running gateway leaves behind (``health.json``, the
outbox and tag-store SQLite files, opened read-only) and probe the outside world the way the gateway would
(broker TCP and TLS, cameras, the detector model, serial ports, the Bluetooth adapter). A check that cannot
tell on this machine (no thermal sensor, no NTP status) passes with a note instead of warning forever.

Nothing here changes the gateway's state. Serial buses are only opened when no gateway is running (a fresh
``health.json`` means the gateway owns the port: the doctor then reports the bus state the gateway sees, so
it never talks over a live RS-485 bus). ``--bundle`` writes a support archive: the check results, versions,
the configuration and the health snapshot, with every secret redacted (:func:`redact_text`).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import ssl
import sys
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from agents.core.errors import ConfigError
from agents.core.urls import redact_url
from agents.gateway.config import GatewayConfig, load_config

__all__ = ["CheckResult", "Doctor", "exit_code", "redact_text", "write_bundle"]

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
CERT_WARN_DAYS = 30
LOW_BATTERY_MV = 2400
TAG_NOT_SEEN_HOURS = 24.0
OUTBOX_WARN_MESSAGES = 10_000
OUTBOX_WARN_AGE_S = 3600.0


@dataclass
class CheckResult:
    name: str
    status: Status
    summary: str
    hint: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def ok(name: str, summary: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "pass", summary, "", detail)


def warn(name: str, summary: str, hint: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "warn", summary, hint, detail)


def fail(name: str, summary: str, hint: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "fail", summary, hint, detail)


def worst(results: list[CheckResult]) -> Status:
    rank = max((_RANK[r.status] for r in results), default=0)
    return "fail" if rank == 2 else "warn" if rank == 1 else "pass"


def exit_code(results: list[CheckResult]) -> int:
    """0 all pass, 1 warnings, 2 failures."""
    return _RANK[worst(results)]


class Doctor:
    """Runs every check for the gateway configured in ``config_path``."""

    def __init__(self, config_path: Path, *, timeout_s: float = 5.0) -> None:
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.config: GatewayConfig | None = None
        self.health: dict[str, Any] | None = None

    async def run(self) -> list[CheckResult]:
        results = [self._check_config()]
        results += [self._check_clock(), self._check_memory(), self._check_cpu()]
        config = self.config
        state_dir = config.state_dir if config else Path("/var/lib/storeedge")
        results.append(await asyncio.to_thread(self._check_disk, state_dir))
        if config is None:
            return results
        self.health = _read_json(config.health_path)
        checks: list[Callable[[], Awaitable[list[CheckResult]]]] = [
            self._check_bluetooth,
            self._check_agents,
            self._check_broker,
            self._check_outbox,
            self._check_cameras,
            self._check_tag_buses,
            self._check_tag_fleet,
        ]
        for check in checks:
            try:
                results += await check()
            except Exception as exc:  # noqa: BLE001 - reported as the check's result, with its type and message
                results.append(
                    fail(
                        check.__name__.removeprefix("_check_"),
                        f"check crashed: {type(exc).__name__}: {exc}",
                        "report this as a bug with the support bundle (storeedge doctor --bundle FILE)",
                    )
                )
        return results

    # ------------------------------------------------------------------------------------------------------------
    # Machine

    def _check_config(self) -> CheckResult:
        try:
            self.config = load_config(self.config_path)
        except ConfigError as exc:
            first = str(exc).splitlines()[-1].strip()
            return fail(
                "config",
                f"configuration invalid: {first}",
                f"fix {self.config_path}, then run `storeedge config check {self.config_path}`",
            )
        return ok("config", f"{self.config_path} is valid", path=str(self.config_path))

    def _check_clock(self) -> CheckResult:
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
                    timeout=self.timeout_s,
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

    def _check_memory(self) -> CheckResult:
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
                "stop other services or reduce "
                "cameras/detector threads; check for a leak in `storeedge doctor --bundle`",
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

    def _check_cpu(self) -> CheckResult:
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

    def _check_disk(self, state_dir: Path) -> CheckResult:
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

    # ------------------------------------------------------------------------------------------------------------
    # Gateway

    def _gateway_running(self) -> bool:
        health = self.health
        if not health or not isinstance(health.get("ts"), int | float):
            return False
        assert self.config is not None
        return time.time() - float(health["ts"]) < 3 * self.config.runtime.health_file_interval_s + 10

    async def _check_agents(self) -> list[CheckResult]:
        assert self.config is not None
        health = self.health
        if health is None:
            return [
                warn(
                    "agents",
                    f"no health file at {self.config.health_path}: the gateway is not running",
                    "start it: `systemctl start storeedge` (or `storeedge run --config FILE`)",
                )
            ]
        age = time.time() - float(health.get("ts", 0))
        if not self._gateway_running():
            return [
                fail(
                    "agents",
                    f"health file is {age:.0f} s old: the gateway stopped or hangs",
                    "check `systemctl status storeedge` and `journalctl -u storeedge -n 100`",
                )
            ]
        results = []
        for name, agent in sorted(health.get("agents", {}).items()):
            state = agent.get("state")
            if state == "backoff":
                results.append(
                    fail(
                        f"agent:{name}",
                        f"agent {name} keeps crashing ({agent.get('restarts')} restarts): {agent.get('last_error')}",
                        "see the error above; `journalctl -u storeedge` has the traceback",
                    )
                )
            elif state in ("running", "finished", "new"):
                results.append(ok(f"agent:{name}", f"agent {name} {state}", restarts=agent.get("restarts")))
            else:
                results.append(
                    warn(f"agent:{name}", f"agent {name} is {state}", "restart the gateway if it does not recover")
                )
        return results

    async def _check_broker(self) -> list[CheckResult]:
        assert self.config is not None
        url = self.config.broker.parsed_url
        where = f"{url.host}:{url.port}"
        results = []
        try:
            async with asyncio.timeout(self.timeout_s):
                _reader, writer = await asyncio.open_connection(url.host, url.port)
            writer.close()
            await writer.wait_closed()
            results.append(ok("broker", f"broker {where} reachable"))
            if url.tls:
                results.append(await asyncio.to_thread(self._check_tls, url.host, url.port))
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            results.append(
                fail(
                    "broker",
                    f"broker {where} unreachable: {reason}",
                    "check that the broker runs and that this store's network and firewall allow "
                    f"TCP {url.port}; broker.url in the config",
                )
            )
        # certificates expire whether or not the broker is up: always look at them
        return results + self._check_certificates()

    def _check_tls(self, host: str, port: int) -> CheckResult:
        assert self.config is not None
        tls = self.config.broker.tls
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
        if tls and tls.insecure_skip_verify:
            context.check_hostname = False
        if tls and tls.cert_file and tls.key_file:
            try:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            except (OSError, ssl.SSLError) as exc:
                return fail(
                    "broker_tls",
                    f"cannot load the client certificate: {exc}",
                    "check broker.tls.cert_file and key_file (paths, permissions, matching key)",
                )
        try:
            with (
                socket.create_connection((host, port), timeout=self.timeout_s) as raw,
                context.wrap_socket(raw, server_hostname=host) as wrapped,
            ):
                version = wrapped.version()
        except ssl.SSLCertVerificationError as exc:
            return fail(
                "broker_tls",
                f"broker certificate not trusted: {exc.verify_message}",
                "broker.tls.ca_file must hold the CA that signed the broker's certificate",
            )
        except (OSError, ssl.SSLError) as exc:
            return fail(
                "broker_tls",
                f"TLS handshake with {host}:{port} failed: {exc}",
                "check the broker's TLS listener and this gateway's certificate (is it signed by the broker's CA?)",
            )
        return ok("broker_tls", f"TLS handshake ok ({version})")

    def _check_certificates(self) -> list[CheckResult]:
        assert self.config is not None
        tls = self.config.broker.tls
        results = []
        for label, path in (
            ("client certificate", tls.cert_file if tls else None),
            ("CA certificate", tls.ca_file if tls else None),
        ):
            if path is None:
                continue
            name = "certificate" if label == "client certificate" else "ca_certificate"
            try:
                from cryptography import x509

                cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
            except (OSError, ValueError) as exc:
                results.append(
                    fail(
                        name,
                        f"cannot read the {label} {path}: {exc}",
                        "re-provision the gateway's TLS files with `tools/flash.py gateway`",
                    )
                )
                continue
            expires = cert.not_valid_after_utc
            days = (expires - datetime.now(UTC)).total_seconds() / 86400
            detail = {"path": str(path), "expires": expires.isoformat(), "days_left": round(days, 1)}
            if days < 0:
                results.append(
                    fail(
                        name,
                        f"{label} expired on {expires:%Y-%m-%d}",
                        "issue a new certificate: `tools/flash.py gateway --ca-cert CA --ca-key KEY ...`, then restart",
                        **detail,
                    )
                )
            elif days < CERT_WARN_DAYS:
                results.append(
                    warn(
                        name,
                        f"{label} expires in {days:.0f} days ({expires:%Y-%m-%d})",
                        "renew it before it expires: `tools/flash.py gateway ...`",
                        **detail,
                    )
                )
            else:
                results.append(ok(name, f"{label} valid until {expires:%Y-%m-%d}", **detail))
        return results

    async def _check_outbox(self) -> list[CheckResult]:
        assert self.config is not None
        path = self.config.outbox_path
        if not path.exists():
            return [ok("outbox", "no outbox yet (the gateway has not run here)")]
        row = await asyncio.to_thread(_query_one, path, "SELECT COUNT(*), MIN(ts) FROM outbox")
        count, oldest = row or (0, None)
        age = time.time() - oldest if oldest else 0.0
        detail = {"backlog_messages": count, "oldest_age_s": round(age, 1)}
        if count >= OUTBOX_WARN_MESSAGES or age >= OUTBOX_WARN_AGE_S:
            return [
                warn(
                    "outbox",
                    f"{count} messages waiting, oldest {age / 60:.0f} min",
                    "the cloud link is down or slow: see the broker checks; data is kept up to outbox.max_age",
                    **detail,
                )
            ]
        return [ok("outbox", f"{count} messages waiting", **detail)]

    async def _check_cameras(self) -> list[CheckResult]:
        assert self.config is not None
        results = []
        for index, camera in enumerate(self.config.cameras):
            results.append(await asyncio.to_thread(self._probe_camera, index, camera))
            results.append(await asyncio.to_thread(self._probe_detector, camera))
        return results

    def _probe_camera(self, index: int, camera: Any) -> CheckResult:
        from agents.footfall.sources import FrameSource, SourceError

        name = f"camera:{camera.name}"
        try:
            probe = FrameSource(camera.source).probe()
        except (SourceError, OSError) as exc:
            return fail(
                name,
                f"camera {camera.name}: {exc}",
                f"check cameras[{index}].source.url "
                f"({redact_url(camera.source.url)}): cable, power, address, credentials, or the file path",
            )
        summary = f"{probe['width']}x{probe['height']}, native {probe['native_fps']} fps, read {probe['read_fps']} fps"
        return ok(name, summary, **probe)

    def _probe_detector(self, camera: Any) -> CheckResult:
        import numpy as np

        from agents.footfall.detectors import build_detector

        name = f"detector:{camera.name}"
        try:
            detector = build_detector(camera.detector)
            frame = np.zeros((480, 640, 3), dtype=np.uint8)
            detector.detect(frame)
            started = time.perf_counter()
            detector.detect(frame)
            latency = (time.perf_counter() - started) * 1000
        except Exception as exc:  # noqa: BLE001 - any load/run failure is this check's result
            return fail(
                name,
                f"detector does not load: {type(exc).__name__}: {exc}",
                "check the model path and type in cameras[].detector; the file must be the ONNX model for that type",
            )
        if latency > 1000:
            return warn(name, f"detector latency {latency:.0f} ms", "lower the input size or sample_fps", ms=latency)
        return ok(name, f"detector loads, {latency:.0f} ms per frame", ms=round(latency, 1))

    async def _check_bluetooth(self) -> list[CheckResult]:
        adapters = await asyncio.to_thread(lambda: sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*")))
        # a bus on a custom bleak backend (the simulator's bumble radio, a proxy) needs no adapter of its own
        ble_buses = [
            bus
            for bus in (self.config.tags.buses if self.config and self.config.tags else [])
            if getattr(bus, "type", "serial") == "ble" and getattr(bus, "client_backend", None) is None
        ]
        if not ble_buses:
            summary = f"adapters: {', '.join(adapters) or 'none'}; no Bluetooth bus needs a local adapter"
            return [ok("bluetooth", summary, adapters=adapters)]
        if not adapters:
            return [
                fail(
                    "bluetooth",
                    "no Bluetooth adapter found (/sys/class/bluetooth is empty)",
                    "plug in or enable the adapter (`rfkill unblock bluetooth`, `systemctl start bluetooth`)",
                )
            ]
        return [ok("bluetooth", f"Bluetooth adapters: {', '.join(adapters)}", adapters=adapters)]

    async def _check_tag_buses(self) -> list[CheckResult]:
        assert self.config is not None
        tags = self.config.tags
        if tags is None:
            return []
        running = self._gateway_running()
        buses_health = (self.health or {}).get("agents", {}).get("tags", {}).get("buses", {}) if running else {}
        results = []
        from agents.tags.config import SerialBusConfig

        for bus in tags.buses:
            if not isinstance(bus, SerialBusConfig):
                continue  # Bluetooth buses: see the bluetooth check
            name = f"serial:{bus.name}"
            if "://" not in bus.port and not os.path.exists(bus.port):  # noqa: ASYNC240 - a stat of a device node
                results.append(
                    fail(
                        name,
                        f"serial port {bus.port} is missing",
                        "check the USB/RS-485 adapter "
                        f"cable and power; `ls /dev/serial/by-id/`; tags.buses[{bus.name}].port",
                    )
                )
                continue
            if running:
                state = buses_health.get(bus.name, {})
                if not state.get("open"):
                    results.append(
                        fail(
                            name,
                            f"the gateway cannot open {bus.port}",
                            "check permissions (dialout group) and that no other program holds the port",
                        )
                    )
                else:
                    results.append(ok(name, f"{bus.port} open in the gateway; tags {state.get('states', {})}"))
                continue
            results.append(await self._ping_bus(bus))
        return results

    async def _ping_bus(self, bus: Any) -> CheckResult:
        from agents.tags.serial_transport import SerialTagTransport
        from agents.tags.transport import TagTransportError
        from protocols.esl import Ping

        name = f"serial:{bus.name}"
        addresses = [address for tag_range in bus.tags for address in tag_range.expand()]
        try:
            transport = SerialTagTransport(bus.port, baudrate=bus.baudrate, max_tries=3, request_attempts=2)
        except OSError as exc:
            return fail(name, f"cannot open {bus.port}: {exc}", "check permissions (dialout group) and the port")
        answered = 0
        try:
            for address in addresses[:3]:
                try:
                    await transport.send_command(address, Ping(address.esl_id))
                    answered += 1
                except TagTransportError:
                    continue
        finally:
            await transport.close()
        if addresses and answered == 0:
            return fail(
                name,
                f"no tag answers on {bus.port} (tried {min(3, len(addresses))})",
                "check the bus wiring, termination and baud rate, and that the tags are powered",
            )
        return ok(name, f"{bus.port}: {answered} of {min(3, len(addresses))} tags answered a ping")

    async def _check_tag_fleet(self) -> list[CheckResult]:
        assert self.config is not None
        tags = self.config.tags
        if tags is None:
            return []
        path = tags.store_path or self.config.state_dir / "tags.sqlite3"
        if not path.exists():
            return [ok("tag_fleet", "no tag store yet (no update has run)")]
        rows = await asyncio.to_thread(
            _query_all, path, "SELECT address, state, battery_mv, last_seen, last_error FROM tags"
        )
        now = time.time()
        failed = [r[0] for r in rows if r[1] == "failed"]
        low = [r[0] for r in rows if r[2] is not None and r[2] < LOW_BATTERY_MV]
        unseen = [r[0] for r in rows if r[3] is not None and now - r[3] > TAG_NOT_SEEN_HOURS * 3600]
        detail = {"tags": len(rows), "failed": failed[:50], "low_battery": low[:50], "not_seen": unseen[:50]}
        problems = []
        if failed:
            problems.append(f"{len(failed)} failed updates")
        if low:
            problems.append(f"{len(low)} low batteries")
        if unseen:
            problems.append(f"{len(unseen)} not seen for {TAG_NOT_SEEN_HOURS:.0f} h")
        if problems:
            return [
                warn(
                    "tag_fleet",
                    ", ".join(problems) + f" (of {len(rows)} tags)",
                    "`storeedge tags list shows which; replace batteries, check tags out of reach of their bus",
                    **detail,
                )
            ]
        return [ok("tag_fleet", f"{len(rows)} tags, no failed updates, batteries ok", **detail)]


# ----------------------------------------------------------------------------------------------------------------
# Helpers


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _connect_ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)


def _query_one(path: Path, sql: str) -> tuple[Any, ...] | None:
    db = _connect_ro(path)
    try:
        row: tuple[Any, ...] | None = db.execute(sql).fetchone()
        return row
    finally:
        db.close()


def _query_all(path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = _connect_ro(path)
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


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


# ----------------------------------------------------------------------------------------------------------------
# Output and the support bundle


def report(results: list[CheckResult]) -> dict[str, Any]:
    return {"checks": [asdict(result) for result in results], "worst": worst(results)}


_SECRET_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), "[REDACTED KEY]"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|api_key|apikey|key_material|sync_key|psk)\w*\s*[:=]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s,}]+)"
        ),
        r"\1[REDACTED]",
    ),
    (
        re.compile(
            r"(?i)(\"(?:password|passwd|secret|token|api_key|apikey|key_material|sync_key|psk)\w*\"\s*:\s*)"
            r"\"[^\"]*\""
        ),
        r'\1"[REDACTED]"',
    ),
    (re.compile(r"(\w+://[^:/\s@]+:)[^@\s/]+@"), r"\1[REDACTED]@"),
]


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Remove private keys, password-like values, URL passwords and the given literal ``secrets``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in secrets or []:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text


def _known_secrets(config: GatewayConfig | None) -> list[str]:
    """Secret values the configuration points at (password file contents, URL passwords)."""
    if config is None:
        return []
    secrets = []
    broker = config.broker
    if broker.password_file is not None:
        try:
            secrets.append(broker.password_file.read_text(encoding="utf-8").strip())
        except OSError:
            pass  # an unreadable password file is reported by no check: nothing to redact then
    password = broker.parsed_url.password
    if password:
        secrets.append(password)
    return [s for s in secrets if len(s) >= 4]


def write_bundle(path: Path, doctor: Doctor, results: list[CheckResult]) -> list[str]:
    """Write a ``.tar.gz`` support bundle; returns the member names."""
    config = doctor.config
    secrets = _known_secrets(config)
    members: dict[str, str] = {
        "checks.json": json.dumps(report(results), indent=2, default=str),
        "versions.json": json.dumps(_versions(), indent=2),
    }
    try:
        members["config.yaml"] = doctor.config_path.read_text(encoding="utf-8")
    except OSError as exc:
        members["config.yaml"] = f"# could not read {doctor.config_path}: {exc.strerror}\n"
    if config is not None:
        for name, source in (("health.json", config.health_path),):
            try:
                members[name] = source.read_text(encoding="utf-8")
            except OSError:
                continue
        for log in sorted(config.state_dir.glob("*.log"))[-5:]:
            try:
                members[f"logs/{log.name}"] = log.read_text(encoding="utf-8", errors="replace")[-1_000_000:]
            except OSError:
                continue
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, text in members.items():
            data = redact_text(text, secrets).encode("utf-8")
            info = tarfile.TarInfo(f"storeedge-support/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(data))
    return list(members)


def _versions() -> dict[str, Any]:
    packages: dict[str, str | None] = {}
    for name in ("storeedge", "paho-mqtt", "pydantic", "onnxruntime", "opencv-python", "pyserial", "bleak", "bumble"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages}

"""The support bundle: check results, versions, configuration, health and logs, with every secret redacted.

``storeedge doctor --bundle FILE`` writes it for whoever supports the store. Private keys, password-like values,
URL passwords and the secrets the configuration points at (the broker's password file) are replaced before
anything is written (:func:`redact_text`).
"""

from __future__ import annotations

import io
import json
import platform
import re
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from agents.doctor.results import CheckResult, report
from agents.doctor.runner import Doctor
from agents.gateway.config import GatewayConfig

__all__ = ["redact_text", "write_bundle"]


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

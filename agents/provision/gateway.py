"""Provision gateways into a target tree: identity, validated config, TLS files, systemd unit, printable label.

``flash.py gateway`` writes into ``--target DIR``: a mounted root partition of the gateway's SD card, or a staging
folder copied there later. Paths inside the target are the gateway's own paths:

    etc/storeedge/                       0755
    etc/storeedge/gateway.yaml           0644  validated with agents.core.config (what `storeedge config check` runs)
    etc/storeedge/tls/                   0700
    etc/storeedge/tls/gateway.key        0600  EC P-256, made here, never printed, never replaced without --force
    etc/storeedge/tls/gateway.csr        0644  for a CA the installer does not hold
    etc/storeedge/tls/gateway.pem        0644  only with --ca-cert/--ca-key: the client certificate
    etc/storeedge/tls/ca.pem             0644  only with --broker-ca: the CA that verifies the broker
    etc/systemd/system/storeedge.service 0644  `storeedge run --config /etc/storeedge/gateway.yaml`, Restart=always
    etc/systemd/system/multi-user.target.wants/storeedge.service -> the unit (as `systemctl enable` makes it)
    var/lib/storeedge/                   0700  state directory (outbox, health)

Everything is computed first (a plan), then compared with what the target holds: identical files are left alone,
so re-running changes nothing and says so; ``dry_run`` reports the plan and writes nothing. Files are written
atomically (temporary file, fsync, rename) with their final mode set before the rename, so a key is never readable
by others, not even for a moment.

The service runs as root, hardened by systemd (read-only system, private /tmp, no new privileges, kernel tunables
protected) rather than as a dedicated user, because the target tree may belong to an image whose user ids the
installer's machine does not know; the key stays root-only (0600).
"""

from __future__ import annotations

import io
import os
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import segno
import yaml
from cryptography.hazmat.primitives import serialization
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from agents.core.config import deep_merge
from agents.core.errors import ConfigError
from agents.gateway.config import GatewayConfig, parse_config
from agents.provision import identity
from agents.provision.errors import ProvisionError, ProvisionInputError

__all__ = [
    "CONFIG_PATH",
    "FileAction",
    "GatewayPlan",
    "GatewaySpec",
    "PlannedFile",
    "apply_plan",
    "plan_gateway",
    "render_config",
]

CONFIG_PATH = Path("/etc/storeedge/gateway.yaml")
TLS_DIR = Path("/etc/storeedge/tls")
STATE_DIR = Path("/var/lib/storeedge")
UNIT_PATH = Path("/etc/systemd/system/storeedge.service")
UNIT_WANTS_LINK = Path("/etc/systemd/system/multi-user.target.wants/storeedge.service")
DEFAULT_STOREEDGE_BIN = "/usr/local/bin/storeedge"
DEFAULT_CERT_DAYS = 730

KEY_MODE, PUBLIC_MODE, PRIVATE_DIR_MODE, PUBLIC_DIR_MODE = 0o600, 0o644, 0o700, 0o755


class FileAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CHMOD = "chmod"  # content identical, mode wrong
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class GatewaySpec:
    """What one gateway is provisioned from (a command line, or one CSV row)."""

    store_id: str
    gateway_id: str
    broker_url: str | None = None
    store_name: str = ""
    template: Path | None = None
    broker_ca: Path | None = None
    cert_days: int = DEFAULT_CERT_DAYS
    storeedge_bin: str = DEFAULT_STOREEDGE_BIN


@dataclass(frozen=True)
class PlannedFile:
    """One path in the target: content (None for a directory), mode, or a symlink target."""

    path: Path  # absolute path inside the target
    mode: int
    content: bytes | None = None
    symlink_to: str | None = None
    secret: bool = False
    action: FileAction = FileAction.UNCHANGED


@dataclass
class GatewayPlan:
    spec: GatewaySpec
    target: Path
    files: list[PlannedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_fingerprint: str = ""

    @property
    def changes(self) -> list[PlannedFile]:
        return [f for f in self.files if f.action is not FileAction.UNCHANGED]


def _inside(target: Path, path: Path) -> Path:
    return target / path.relative_to("/")


# ---- config -------------------------------------------------------------------------------------------------


def _template_data(spec: GatewaySpec) -> dict[str, Any]:
    """The template's mapping with ``$store_id``, ``$gateway_id`` and ``$store_name`` substituted."""
    if spec.template is None:
        return {}
    try:
        text = spec.template.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvisionInputError(f"--template: cannot read {spec.template}: {exc.strerror}") from exc
    filled = string.Template(text).safe_substitute(
        store_id=spec.store_id, gateway_id=spec.gateway_id, store_name=spec.store_name
    )
    try:
        data = yaml.safe_load(filled)
    except yaml.YAMLError as exc:
        raise ProvisionInputError(f"--template: {spec.template} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProvisionInputError(f"--template: {spec.template} must be a mapping of config keys")
    return data


class ConfigFieldError(ProvisionInputError):
    """The rendered config is invalid; ``fields`` lists (dotted field path, message) pairs."""

    def __init__(self, message: str, fields: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.fields = fields


def render_config(spec: GatewaySpec) -> str:
    """The gateway's YAML config: template, then identity, broker URL and TLS paths; validated before returning."""
    tls: dict[str, Any] = {"cert_file": str(TLS_DIR / "gateway.pem"), "key_file": str(TLS_DIR / "gateway.key")}
    if spec.broker_ca is not None:
        tls["ca_file"] = str(TLS_DIR / "ca.pem")
    generated: dict[str, Any] = {
        "store_id": spec.store_id,
        "gateway_id": spec.gateway_id,
        "state_dir": str(STATE_DIR),
        "broker": {"tls": tls},
    }
    if spec.broker_url is not None:
        generated["broker"]["url"] = spec.broker_url
    data = deep_merge(_template_data(spec), generated)
    if not isinstance(data["broker"].get("url"), str):
        raise ConfigFieldError(
            "broker.url: no broker URL (give --broker-url, a broker_url column or a template)",
            [("broker.url", "no broker URL given")],
        )
    try:
        GatewayConfig.model_validate(data)
    except ValidationError as exc:
        fields = [(".".join(str(p) for p in err["loc"]) or "(top level)", str(err["msg"])) for err in exc.errors()]
        raise ConfigFieldError(
            "invalid gateway config: " + "; ".join(f"{path}: {message}" for path, message in fields), fields
        ) from exc
    header = (
        f"# storeedge gateway {spec.gateway_id} of store {spec.store_id}, written by tools/flash.py gateway.\n"
        "# Check after editing: storeedge config check /etc/storeedge/gateway.yaml\n"
    )
    text = header + str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    try:
        parse_config(text, source=f"{spec.gateway_id}/gateway.yaml")  # the exact check `storeedge config check` runs
    except ConfigError as exc:
        raise ProvisionInputError(str(exc)) from exc
    return text


def render_unit(spec: GatewaySpec) -> str:
    return f"""# storeedge gateway agents, written by tools/flash.py gateway for {spec.store_id}/{spec.gateway_id}.
[Unit]
Description=storeedge gateway agents
Documentation=file:{CONFIG_PATH}
Wants=network-online.target
After=network-online.target time-sync.target

[Service]
Type=simple
ExecStart={spec.storeedge_bin} run --config {CONFIG_PATH}
Restart=always
RestartSec=5
TimeoutStopSec=30
KillSignal=SIGTERM
StateDirectory=storeedge
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
ReadWritePaths={STATE_DIR}
UMask=0077

[Install]
WantedBy=multi-user.target
"""


# ---- label --------------------------------------------------------------------------------------------------


def render_label(spec: GatewaySpec, key_fingerprint: str, broker: str) -> bytes:
    """A printable PNG: QR code of the gateway id on the left, store, gateway, broker and key fingerprint beside."""
    qr_png = io.BytesIO()
    segno.make_qr(spec.gateway_id, error="m").save(qr_png, kind="png", scale=8, border=4)
    qr_png.seek(0)
    with Image.open(qr_png) as opened:
        qr = opened.convert("L")
    lines = [
        (spec.gateway_id, 44),
        (f"store {spec.store_id}" + (f" ({spec.store_name})" if spec.store_name else ""), 26),
        (f"broker {broker}", 20),
        (f"key {key_fingerprint}", 20),
    ]
    width = qr.width + 20 + 760
    label = Image.new("L", (width, max(qr.height, 240)), 255)
    label.paste(qr, (0, (label.height - qr.height) // 2))
    draw = ImageDraw.Draw(label)
    y = 30
    for text, size in lines:
        font = ImageFont.load_default(size=size)
        draw.text((qr.width + 20, y), text, fill=0, font=font)
        y += size + 18
    out = io.BytesIO()
    label.save(out, format="PNG", optimize=False)
    return out.getvalue()


# ---- plan and apply -----------------------------------------------------------------------------------------


def _existing(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _decide(path: Path, content: bytes | None, mode: int, symlink_to: str | None = None) -> FileAction:
    if symlink_to is not None:
        if not path.is_symlink():
            return FileAction.CREATE
        return FileAction.UNCHANGED if os.readlink(path) == symlink_to else FileAction.UPDATE
    if not path.exists():
        return FileAction.CREATE
    if content is None:
        if not path.is_dir():
            raise ProvisionInputError(f"{path} exists and is not a directory")
    elif path.read_bytes() != content:
        return FileAction.UPDATE
    return FileAction.UNCHANGED if (path.stat().st_mode & 0o777) == mode else FileAction.CHMOD


def plan_gateway(
    spec: GatewaySpec,
    target: Path,
    *,
    ca: identity.CertificateAuthority | None = None,
    force: bool = False,
    label_path: Path | None = None,
) -> GatewayPlan:
    """Everything the gateway needs, compared with the target; nothing is written here."""
    plan = GatewayPlan(spec, target)
    config_text = render_config(spec)
    config = parse_config(config_text)
    entries: list[tuple[Path, int, bytes | None, str | None, bool]] = []

    key_path = _inside(target, TLS_DIR / "gateway.key")
    existing_key = _existing(key_path)
    if existing_key is not None and not force:
        key = identity.load_private_key(existing_key, key_path)
        key_pem = existing_key
    else:
        if existing_key is not None:
            plan.notes.append(f"--force: replacing the existing key {key_path}")
        key = identity.new_private_key()
        key_pem = identity.private_key_pem(key)
    plan.key_fingerprint = identity.key_fingerprint(key)
    subject = identity.gateway_subject(spec.store_id, spec.gateway_id)

    csr_path = _inside(target, TLS_DIR / "gateway.csr")
    existing_csr = _existing(csr_path)
    if existing_csr is not None and identity.reusable_csr(existing_csr, key, subject):
        csr_pem = existing_csr
    else:
        csr_pem = identity.make_csr(key, subject).public_bytes(serialization.Encoding.PEM)

    cert_path = _inside(target, TLS_DIR / "gateway.pem")
    cert_pem: bytes | None = None
    existing_cert = _existing(cert_path)
    if ca is not None:
        if existing_cert is not None and identity.reusable_certificate(existing_cert, key, subject, ca):
            cert_pem = existing_cert
        else:
            cert = identity.issue_certificate(ca, key, subject, spec.cert_days)
            cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    elif existing_cert is not None and not identity.reusable_certificate(existing_cert, key, subject, None):
        plan.notes.append(
            f"{cert_path.relative_to(target)} does not match the key (or expires within 30 days): have "
            f"{csr_path.relative_to(target)} signed again, or pass --ca-cert/--ca-key"
        )
    elif existing_cert is None:
        plan.notes.append(
            f"no --ca-cert/--ca-key: have {csr_path.relative_to(target)} signed by your CA and put the certificate "
            f"at {cert_path.relative_to(target)} before the gateway starts"
        )

    broker_ca_pem: bytes | None = None
    if spec.broker_ca is not None:
        try:
            broker_ca_pem = spec.broker_ca.read_bytes()
        except OSError as exc:
            raise ProvisionInputError(f"--broker-ca: cannot read {spec.broker_ca}: {exc.strerror}") from exc
        if b"-----BEGIN CERTIFICATE-----" not in broker_ca_pem:
            raise ProvisionInputError(f"--broker-ca: {spec.broker_ca} holds no PEM certificate")

    for directory in (
        Path("/etc"),
        Path("/etc/systemd"),
        UNIT_PATH.parent,
        UNIT_WANTS_LINK.parent,
        Path("/var"),
        Path("/var/lib"),
    ):
        path = _inside(target, directory)
        if not path.exists():
            entries.append((path, PUBLIC_DIR_MODE, None, None, False))
    entries += [
        (_inside(target, CONFIG_PATH.parent), PUBLIC_DIR_MODE, None, None, False),
        (_inside(target, TLS_DIR), PRIVATE_DIR_MODE, None, None, False),
        (_inside(target, STATE_DIR), PRIVATE_DIR_MODE, None, None, False),
        (key_path, KEY_MODE, key_pem, None, True),
        (csr_path, PUBLIC_MODE, csr_pem, None, False),
    ]
    if cert_pem is not None:
        entries.append((cert_path, PUBLIC_MODE, cert_pem, None, False))
    if broker_ca_pem is not None:
        entries.append((_inside(target, TLS_DIR / "ca.pem"), PUBLIC_MODE, broker_ca_pem, None, False))
    entries += [
        (_inside(target, CONFIG_PATH), PUBLIC_MODE, config_text.encode(), None, False),
        (_inside(target, UNIT_PATH), PUBLIC_MODE, render_unit(spec).encode(), None, False),
        (_inside(target, UNIT_WANTS_LINK), PUBLIC_MODE, None, str(UNIT_PATH), False),
    ]
    label = render_label(spec, plan.key_fingerprint, str(config.broker.parsed_url))
    entries.append((label_path or _inside(target, STATE_DIR / "label.png"), PUBLIC_MODE, label, None, False))
    for path, mode, content, symlink_to, secret in entries:
        action = _decide(path, content, mode, symlink_to)
        plan.files.append(PlannedFile(path, mode, content, symlink_to, secret, action))
    return plan


def _write_atomic(path: Path, content: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.flash-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed the mode given to open()
        with os.fdopen(fd, "wb", closefd=False) as stream:
            stream.write(content)
            stream.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink()
        raise
    os.close(fd)
    os.replace(temporary, path)


def apply_plan(plan: GatewayPlan, report: Callable[[PlannedFile], None] | None = None) -> None:
    """Carry out the plan's changes, in order (directories before their files); the target is created if missing."""
    for planned in plan.files:
        if planned.action is FileAction.UNCHANGED:
            continue
        try:
            _apply_one(planned)
        except OSError as exc:
            raise ProvisionError(f"cannot write {planned.path}: {exc.strerror or exc}") from exc
        if report is not None:
            report(planned)


def _apply_one(planned: PlannedFile) -> None:
    path = planned.path
    if planned.symlink_to is not None:
        if path.is_symlink():
            path.unlink()
        path.symlink_to(planned.symlink_to)
    elif planned.content is None:
        path.mkdir(mode=planned.mode, parents=True, exist_ok=True)
        os.chmod(path, planned.mode)
    elif planned.action is FileAction.CHMOD:
        os.chmod(path, planned.mode)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, planned.content, planned.mode)

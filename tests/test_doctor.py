"""``storeedge doctor`` against a simulated store: every check reported; injected faults (broker down, a
serial bus gone, a camera file missing, an expired certificate) each fail with the right hint and the exit
code reflects the worst result; the support bundle holds none of the known secrets (issue 6, acceptance 3-4).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from protocols.esl import EslAddress
from sim.serial_tags import SimulatedSerialBus
from tests.brokers import Mosquitto

SECRETS = ["hunter2-password-file", "urlpass-7f3a", "s3cret-log-token"]


def certificate(path: Path, *, days_from_now: int) -> None:
    """A self-signed client certificate that expires ``days_from_now`` days from now (negative: expired)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gw-1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days_from_now))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def store_config(tmp_path: Path, broker_port: int, serial_port: str, clip: Path, shared_data: Path) -> Path:
    (tmp_path / "password").write_text(SECRETS[0])
    data: dict[str, Any] = {
        "store_id": "store-1",
        "gateway_id": "gw-1",
        "state_dir": str(tmp_path / "state"),
        "broker": {
            "url": f"mqtt://gw:{SECRETS[1]}@127.0.0.1:{broker_port}",
            "password_file": str(tmp_path / "password"),
            "tls": {"cert_file": str(tmp_path / "client.pem"), "key_file": str(tmp_path / "client.key")},
        },
        "cameras": [
            {
                "name": "door",
                "source": {"url": str(clip)},
                "detector": {"type": "yolox", "model": str(shared_data / "models/yolox_nano/yolox_nano.onnx")},
                "counting": {"lines": [{"name": "x", "p1": [384, 0], "p2": [384, 576]}]},
            }
        ],
        "tags": {
            "buses": [{"name": "aisle-1", "port": serial_port, "tags": [{"addresses": "1/1-2", "panel": "152x152-bw"}]}]
        },
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def doctor(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", "doctor", "--config", str(config), "--json", "--timeout", "2", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return run.returncode, json.loads(run.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_reports_every_check_then_each_injected_fault(
    tmp_path: Path, mosquitto: Mosquitto, shared_data: Path
) -> None:
    clip = shared_data / "footage/pets09_s2l1/vtest.avi"
    certificate(tmp_path / "client.pem", days_from_now=200)
    with SimulatedSerialBus([EslAddress(1, 1), EslAddress(1, 2)]) as bus:
        config = store_config(tmp_path, mosquitto.port, bus.port, clip, shared_data)
        code, report = doctor(config)
    checks = by_name(report)
    expected = {
        "config", "clock", "memory", "cpu_temperature", "disk", "agents", "broker", "certificate",
        "outbox", "camera:door", "detector:door", "serial:aisle-1", "bluetooth",
    }  # fmt: skip
    assert expected <= set(checks), sorted(checks)
    assert all(
        set(c) >= {"name", "status", "hint"} and c["status"] in ("pass", "warn", "fail") for c in report["checks"]
    )
    failing = {name: c for name, c in checks.items() if c["status"] == "fail"}
    assert not failing, failing
    assert (
        checks["serial:aisle-1"]["status"] == "pass" and "2 of 2 tags answered" in checks["serial:aisle-1"]["summary"]
    )
    assert checks["camera:door"]["detail"]["width"] == 768
    assert checks["agents"]["status"] == "warn"  # no gateway running: the worst is a warning
    assert report["worst"] == "warn" and code == 1

    # Faults: broker down, the serial bus gone (its pty closed), the camera file missing, an expired certificate.
    certificate(tmp_path / "client.pem", days_from_now=-3)
    broken = store_config(tmp_path, free_port(), "/dev/ttyUSB-gone", tmp_path / "missing.avi", shared_data)
    code, report = doctor(broken)
    checks = by_name(report)
    assert report["worst"] == "fail" and code == 2
    hints = {
        "broker": ("unreachable", "broker runs"),
        "serial:aisle-1": ("missing", "adapter"),
        "camera:door": ("video file not found", "cameras[0].source.url"),
        "certificate": ("expired", "new certificate"),
    }
    for name, (summary, hint) in hints.items():
        assert checks[name]["status"] == "fail", checks[name]
        assert summary in checks[name]["summary"], checks[name]
        assert hint in checks[name]["hint"], checks[name]


def test_support_bundle_contains_no_secrets(tmp_path: Path, shared_data: Path) -> None:
    certificate(tmp_path / "client.pem", days_from_now=200)
    config = store_config(tmp_path, free_port(), "/dev/ttyUSB-none", tmp_path / "none.avi", shared_data)
    state = tmp_path / "state"
    state.mkdir()
    key_pem = (tmp_path / "client.key").read_text()
    (state / "gateway.log").write_text(
        f"connecting with password={SECRETS[0]}\napi_token: {SECRETS[2]}\n{key_pem}\nurl mqtt://gw:{SECRETS[1]}@x\n"
    )
    (state / "health.json").write_text(json.dumps({"ts": 0, "agents": {}, "note": f"token={SECRETS[2]}"}))
    bundle = tmp_path / "support.tar.gz"
    code, report = doctor(config, "--bundle", str(bundle))
    assert code == 2 and report["worst"] == "fail"
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
        texts = {name: archive.extractfile(name).read().decode() for name in names}  # type: ignore[union-attr]
    assert {"storeedge-support/checks.json", "storeedge-support/config.yaml", "storeedge-support/versions.json",
            "storeedge-support/health.json", "storeedge-support/logs/gateway.log"} <= set(names)  # fmt: skip
    everything = "\n".join(texts.values())
    for secret in [*SECRETS, key_pem.splitlines()[1]]:
        assert secret not in everything, secret
    assert "[REDACTED" in texts["storeedge-support/logs/gateway.log"]
    assert "gw-1" in texts["storeedge-support/config.yaml"]  # redaction keeps what is not secret

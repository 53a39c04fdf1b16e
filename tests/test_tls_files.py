"""A missing or broken TLS file is named, with its setting: ``broker.tls.ca_file: /etc/x/ca.pem: No such file``.

The ssl module's own errors (``FileNotFoundError: [Errno 2] No such file or directory``, ``[SSL] PEM lib``)
name neither the file nor the setting. :func:`build_tls_context` checks each file first; a gateway with a
missing CA file keeps running, and its uplink's restarts say which file to fix, in the health file and in
one log line each.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import trustme

from agents.core.config import TlsConfig
from agents.gateway.runtime import Gateway
from agents.uplink.mqtt_session import MqttSession, SessionOptions, TlsFileError, build_tls_context
from sim.broker import free_port
from tests.conftest import gateway_config, wait_for


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    """A valid CA, client certificate and key, plus a file that is not PEM at all."""
    ca = trustme.CA()
    leaf = ca.issue_cert("gateway-1")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "gateway.pem",
        "key": tmp_path / "gateway.key",
        "garbage": tmp_path / "garbage.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["cert"].write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    files["garbage"].write_text("not a certificate\n", encoding="utf-8")
    return files


def test_valid_files_build_a_context(pem_files: dict[str, Path]) -> None:
    tls = TlsConfig(ca_file=pem_files["ca"], cert_file=pem_files["cert"], key_file=pem_files["key"])
    assert build_tls_context(tls).verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize("setting", ["ca_file", "cert_file", "key_file"])
def test_a_missing_file_names_the_setting_and_the_path(
    pem_files: dict[str, Path], tmp_path: Path, setting: str
) -> None:
    files = {"ca_file": pem_files["ca"], "cert_file": pem_files["cert"], "key_file": pem_files["key"]}
    missing = tmp_path / "nowhere" / f"{setting}.pem"
    tls = TlsConfig.model_validate({**files, setting: missing})
    with pytest.raises(TlsFileError) as caught:
        build_tls_context(tls)
    assert str(caught.value) == f"broker.tls.{setting}: {missing}: No such file or directory"
    assert isinstance(caught.value, OSError)  # callers that handle file errors keep working
    assert (caught.value.setting, caught.value.path) == (f"broker.tls.{setting}", missing)


def test_a_directory_is_not_a_tls_file(tmp_path: Path) -> None:
    with pytest.raises(TlsFileError, match=rf"^broker\.tls\.ca_file: {tmp_path}: Is a directory$"):
        build_tls_context(TlsConfig(ca_file=tmp_path))


def test_a_file_that_is_not_pem_is_named(pem_files: dict[str, Path]) -> None:
    garbage = pem_files["garbage"]
    with pytest.raises(TlsFileError, match=rf"^broker\.tls\.ca_file: {garbage}: not a PEM CA certificate"):
        build_tls_context(TlsConfig(ca_file=garbage))
    with pytest.raises(TlsFileError, match=rf"^broker\.tls\.cert_file: {garbage}: not a PEM certificate matching"):
        build_tls_context(TlsConfig(cert_file=garbage, key_file=pem_files["key"]))


def test_the_session_names_the_setting_it_was_given(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    options = SessionOptions(
        url=gateway_config(tmp_path, "mqtts://127.0.0.1:8883").broker.parsed_url,
        client_id="test",
        tls=TlsConfig(ca_file=missing),
        tls_setting="cloud.tls",
    )
    with pytest.raises(TlsFileError, match=rf"^cloud\.tls\.ca_file: {missing}: No such file or directory$"):
        MqttSession(options)


async def test_a_gateway_with_a_missing_ca_file_names_it_in_health_and_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    missing = tmp_path / "pki" / "ca.pem"
    config = gateway_config(tmp_path, f"mqtts://127.0.0.1:{free_port()}", broker={"tls": {"ca_file": str(missing)}})
    expected = f"TlsFileError: broker.tls.ca_file: {missing}: No such file or directory"
    gateway = Gateway(config)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="test:gateway")
    try:
        await wait_for(
            lambda: gateway.uplink is not None and gateway.uplink.health.restarts >= 2,
            what="the uplink to be restarted twice",
        )
        assert gateway.uplink is not None and gateway.uplink.health.last_error == expected
        await wait_for(config.health_path.exists, what="a health file")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    health = json.loads(config.health_path.read_text(encoding="utf-8"))
    assert health["agents"]["uplink"]["last_error"] == expected
    crash_lines = [r.getMessage() for r in caplog.records if "agent uplink crashed" in r.getMessage()]
    assert len(crash_lines) >= 2
    assert all(line.startswith(f"agent uplink crashed ({expected}); restart ") for line in crash_lines)
    assert "Traceback" not in caplog.text

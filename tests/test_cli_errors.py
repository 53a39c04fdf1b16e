"""Failures a technician meets with the field CLI end in one line that names what to fix, a non-zero exit and no
traceback (issue 10, acceptance 2): gateway down, broker unreachable, missing CA file, mistyped sink database,
and an unexpected error (which only ``--debug`` turns into a traceback).

Each test runs the real ``storeedge`` command in a subprocess, as a technician would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from sim.broker import free_port
from tests.brokers import Mosquitto


def storeedge(*args: str, timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return run.returncode, run.stdout + run.stderr, time.monotonic() - started


def assert_one_clear_line(output: str, *must_name: str) -> None:
    assert "Traceback" not in output and "ExceptionGroup" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for text in must_name:
        assert text in lines[0], output


def write_config(tmp_path: Path, broker_url: str, **extra: Any) -> Path:
    data: dict[str, Any] = {
        "store_id": "store-1",
        "gateway_id": "gw-1",
        "state_dir": str(tmp_path / "state"),
        "broker": {"url": broker_url},
        **extra,
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def retain(broker: Mosquitto, topic: str, payload: dict[str, Any]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-retain")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_tags_ping_with_the_gateway_down_says_so_at_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # What a gateway leaves behind when it stops: its retained status says offline.
    retain(mosquitto, "storeedge/v1/store-1/gw-1/status", {"online": False, "reason": "shutdown", "since": time.time()})
    config = write_config(tmp_path, str(mosquitto.url))
    code, out, seconds = storeedge("tags", "ping", "1/5", "--config", str(config))
    assert code == 1
    assert_one_clear_line(out, "gateway store-1/gw-1 is offline", "shutdown", "storeedge doctor")
    assert seconds < 15, f"took {seconds:.1f}s: should not wait for the answer timeout"


def test_tags_led_with_a_gateway_that_never_connected_times_out_with_a_reason(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = write_config(tmp_path, str(mosquitto.url))
    code, out, _ = storeedge("tags", "led", "1/5", "--timeout", "1", "--config", str(config))
    assert code == 1
    assert_one_clear_line(out, "no answer from gateway store-1/gw-1 within 1s", "never announced itself")


def test_unreachable_broker_names_the_broker(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, url)
    for command in (("tags", "ping", "1/5"), ("counts",)):
        code, out, seconds = storeedge(*command, "--config", str(config))
        assert code == 1, command
        assert_one_clear_line(out, "cannot reach the broker", url)
        assert seconds < 15


def test_missing_ca_file_is_named_with_its_setting(tmp_path: Path) -> None:
    ca = tmp_path / "tls" / "ca.pem"
    url = f"mqtts://127.0.0.1:{free_port()}"
    path = write_config(tmp_path, url)
    data = yaml.safe_load(path.read_text())
    data["broker"]["tls"] = {"ca_file": str(ca)}
    path.write_text(yaml.safe_dump(data))
    for command in (("tags", "ping", "1/5"), ("tags", "led", "1/5"), ("counts",)):
        code, out, _ = storeedge(*command, "--config", str(path))
        assert code == 1, command
        assert_one_clear_line(out, "broker.tls.ca_file", str(ca), "No such file")


def test_report_only_of_a_mistyped_database_does_not_create_it(tmp_path: Path) -> None:
    typo = tmp_path / "clod.sqlite3"
    code, out, _ = storeedge("cloud", "--db", str(typo), "--report-only")
    assert code == 2
    assert_one_clear_line(out, "no sink database at", str(typo))
    assert not typo.exists()


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    # A tag store that is not a database: the field command reports it; --debug adds the traceback.
    store = tmp_path / "state" / "tags.sqlite3"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    config = write_config(
        tmp_path,
        "mqtt://127.0.0.1:1883",
        tags={
            "buses": [
                {"name": "aisle-1", "port": "/dev/ttyUSB-none", "tags": [{"addresses": "1/1", "panel": "152x152-bw"}]}
            ]
        },
    )
    code, out, _ = storeedge("tags", "list", "--config", str(config))
    assert code == 1
    assert_one_clear_line(out, "cannot read the tag store", str(store))
    code, out, _ = storeedge("--debug", "tags", "list", "--config", str(config))
    assert code == 1 and "Traceback" in out

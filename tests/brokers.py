"""Real MQTT brokers for tests: a mosquitto process (Debian package) on a free loopback port.

mosquitto runs with ``persistence true`` so that it keeps sessions and queued QoS 1 messages across its
own restarts, as a production broker for storeedge must (see ``protocols/mqtt_v1.md``).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agents.core.config import BrokerUrl
from sim.broker import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@dataclass
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = True


class Mosquitto:
    """A mosquitto broker process that tests can stop, start and restart on the same port."""

    def __init__(self, workdir: Path, *, tls: TlsFiles | None = None, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            # Started as root, mosquitto drops to user "mosquitto", which cannot write the test's
            # persistence directory; stay as whoever runs the tests.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {workdir / 'data'}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if tls is not None:
            lines += [
                f"cafile {tls.ca_file}",
                f"certfile {tls.cert_file}",
                f"keyfile {tls.key_file}",
                f"require_certificate {'true' if tls.require_certificate else 'false'}",
            ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> BrokerUrl:
        return BrokerUrl(scheme="mqtts" if self.tls else "mqtt", host="127.0.0.1", port=self.port)

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None, "already running"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): mosquitto saves its persistence file on the way out."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

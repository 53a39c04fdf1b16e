"""The installer tool ``tools/flash.py`` (issue 6): gateway provisioning, device flashing, the esptool wrapper.

Acceptance 1: ``python tools/flash.py device --port <pty> --verify`` deploys the firmware to the virtual MicroPython
board (:class:`sim.board.VirtualBoard`, real MicroPython behind a real raw REPL) and verifies the hashes on the
board; then the third-party ``mpremote connect <pty> ls`` lists the deployed files.

Acceptance 2: a gateway provisioned by ``flash.py gateway`` passes ``storeedge config check`` and its runtime
connects with the freshly issued client certificate to mosquitto with ``require_certificate true``.

Gateway tests call :func:`agents.provision.cli.main` in-process (fast); the device acceptance runs the script as a
subprocess, as an installer would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
import yaml
import zxingcpp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from agents.cli import main as storeedge_main
from agents.gateway.config import load_config
from agents.gateway.runtime import Gateway
from agents.provision.cli import main as flash_main
from agents.provision.errors import ProvisionInputError, RemoteExecError
from agents.provision.esp32 import esptool_arguments
from agents.provision.raw_repl import RawRepl
from sim.board import VirtualBoard, ensure_micropython_runtime
from tests.brokers import Mosquitto, TlsFiles
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
FLASH = ROOT / "tools" / "flash.py"
FIRMWARE = ROOT / "firmware" / "esltag"
RUNTIME_FILES = sorted(p.name for p in FIRMWARE.glob("*.py") if p.name != "manifest.py")


# ---- helpers ------------------------------------------------------------------------------------------------


class Ca:
    """A test CA (trustme) with its certificate and key as PEM files, as an installer would bring them."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.authority = trustme.CA()
        self.cert_path = folder / "ca.pem"
        self.key_path = folder / "ca.key"
        self.authority.cert_pem.write_to_path(str(self.cert_path))
        self.authority.private_key_pem.write_to_path(str(self.key_path))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path / "pki")


def provision(target: Path, *extra: str, gateway_id: str = "gw-1") -> list[str]:
    return [
        "gateway",
        "--target",
        str(target),
        "--store-id",
        "store-7",
        "--gateway-id",
        gateway_id,
        "--broker-url",
        "mqtts://broker.example:8883",
        *extra,
    ]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with file content (None for directories and links), for before/after checks."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(root.rglob("*"))
    }


# ---- gateway provisioning -----------------------------------------------------------------------------------


def test_gateway_files_have_strict_permissions_and_config_passes_check(
    tmp_path: Path, ca: Ca, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "root"
    args = ["--ca-cert", str(ca.cert_path), "--ca-key", str(ca.key_path), "--broker-ca", str(ca.cert_path)]
    assert flash_main(provision(target, *args)) == 0
    output = capsys.readouterr().out
    tls = target / "etc/storeedge/tls"
    assert mode(tls / "gateway.key") == 0o600
    for public in ("gateway.pem", "gateway.csr", "ca.pem"):
        assert mode(tls / public) == 0o644, public
    assert mode(tls) == 0o700
    assert mode(target / "var/lib/storeedge") == 0o700
    assert mode(target / "etc/storeedge") == 0o755
    assert mode(target / "etc/storeedge/gateway.yaml") == 0o644
    assert mode(target / "etc/systemd/system/storeedge.service") == 0o644
    key_pem = (tls / "gateway.key").read_bytes()
    assert key_pem.decode() not in output and "PRIVATE KEY" not in output, "the key must never be printed"

    config_path = target / "etc/storeedge/gateway.yaml"
    assert storeedge_main(["config", "check", str(config_path), "--root", str(target)]) == 0
    assert "OK (store store-7, gateway gw-1" in capsys.readouterr().out
    config = load_config(config_path)
    assert config.broker.tls is not None
    assert config.broker.tls.key_file == Path("/etc/storeedge/tls/gateway.key")
    assert config.broker.tls.ca_file == Path("/etc/storeedge/tls/ca.pem")
    assert config.state_dir == Path("/var/lib/storeedge")

    unit = (target / "etc/systemd/system/storeedge.service").read_text()
    assert "ExecStart=/usr/local/bin/storeedge run --config /etc/storeedge/gateway.yaml\n" in unit
    assert "Restart=always\n" in unit and "NoNewPrivileges=yes\n" in unit and "ProtectSystem=strict\n" in unit
    wants = target / "etc/systemd/system/multi-user.target.wants/storeedge.service"
    assert os.readlink(wants) == "/etc/systemd/system/storeedge.service"


def test_csr_verifies_and_ca_signed_certificate_chains_to_the_ca(tmp_path: Path, ca: Ca) -> None:
    target = tmp_path / "root"
    assert flash_main(provision(target, "--ca-cert", str(ca.cert_path), "--ca-key", str(ca.key_path))) == 0
    tls = target / "etc/storeedge/tls"
    key = serialization.load_pem_private_key((tls / "gateway.key").read_bytes(), password=None)
    csr = x509.load_pem_x509_csr((tls / "gateway.csr").read_bytes())
    assert csr.is_signature_valid
    assert csr.public_key() == key.public_key()
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-1"

    certificate = x509.load_pem_x509_certificate((tls / "gateway.pem").read_bytes())
    certificate.verify_directly_issued_by(ca.certificate)  # raises if the signature or issuer does not match
    assert certificate.public_key() == key.public_key()
    assert certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=700)
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    # OpenSSL agrees: the chain verifies for the TLS-client purpose.
    verified = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(ca.cert_path), str(tls / "gateway.pem")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_without_ca_only_key_and_csr_are_written_and_the_installer_is_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "root"
    assert flash_main(provision(target)) == 0
    assert "have etc/storeedge/tls/gateway.csr signed by your CA" in capsys.readouterr().out
    assert not (target / "etc/storeedge/tls/gateway.pem").exists()
    assert (target / "etc/storeedge/tls/gateway.csr").is_file()


def test_rerun_changes_nothing_and_says_so_and_key_survives_without_force(
    tmp_path: Path, ca: Ca, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "root"
    args = provision(target, "--ca-cert", str(ca.cert_path), "--ca-key", str(ca.key_path))
    assert flash_main(args) == 0
    before = tree(target)
    mtimes = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert flash_main(args) == 0
    assert "gw-1: up to date, nothing to do" in capsys.readouterr().out
    assert tree(target) == before
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()} == mtimes

    key = target / "etc/storeedge/tls/gateway.key"
    key.chmod(0o644)  # someone loosened it: the re-run tightens it without touching the content
    assert flash_main(args) == 0
    assert "fixed mode of file etc/storeedge/tls/gateway.key (0600)" in capsys.readouterr().out
    assert mode(key) == 0o600 and tree(target) == before

    assert flash_main([*args, "--force"]) == 0
    assert "--force: replacing the existing key" in capsys.readouterr().out
    after = tree(target)
    assert after["etc/storeedge/tls/gateway.key"] != before["etc/storeedge/tls/gateway.key"]
    assert after["etc/storeedge/tls/gateway.pem"] != before["etc/storeedge/tls/gateway.pem"]


def test_dry_run_lists_the_files_and_writes_nothing(tmp_path: Path, ca: Ca, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "root"
    args = provision(target, "--ca-cert", str(ca.cert_path), "--ca-key", str(ca.key_path), "--dry-run")
    assert flash_main(args) == 0
    output = capsys.readouterr().out
    assert not target.exists()
    for path in ("etc/storeedge/tls/gateway.key (0600)", "etc/storeedge/gateway.yaml (0644)", "storeedge.service"):
        assert f"would create file {path}" in output or path in output, path
    assert "would change" in output


def test_label_png_carries_a_qr_code_of_the_gateway_id(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    assert flash_main(provision(tmp_path / "root", "--labels", str(labels), gateway_id="gw-0042-a")) == 0
    with Image.open(labels / "store-7_gw-0042-a.png") as label:
        decoded = zxingcpp.read_barcodes(label)
    assert [barcode.text for barcode in decoded] == ["gw-0042-a"]


def test_invalid_options_name_the_field(tmp_path: Path, ca: Ca, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "root"
    assert flash_main(provision(target, "--ca-cert", str(ca.cert_path))) == 2
    assert "--ca-cert and --ca-key must be given together" in capsys.readouterr().err
    bad_url = ["gateway", "--target", str(target), "--store-id", "s", "--gateway-id", "g", "--broker-url", "http://x"]
    assert flash_main(bad_url) == 2
    assert "broker.url" in capsys.readouterr().err
    assert not target.exists()


def test_template_values_are_kept_and_identity_fields_win(tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        "store_id: overridden\nheartbeat:\n  interval_s: 15\noutbox:\n  max_bytes: 32MB\n"
        "broker:\n  url: mqtts://template.example:8883\n  client_id: edge-$store_id-$gateway_id\n"
    )
    target = tmp_path / "root"
    args = ["gateway", "--target", str(target), "--store-id", "s-9", "--gateway-id", "g-9", "--template", str(template)]
    assert flash_main(args) == 0
    config = load_config(target / "etc/storeedge/gateway.yaml")
    assert (config.store_id, config.gateway_id) == ("s-9", "g-9")
    assert config.heartbeat.interval_s == 15 and config.outbox.max_bytes == 32_000_000
    assert config.broker.url == "mqtts://template.example:8883" and config.broker.client_id == "edge-s-9-g-9"


def test_batch_with_one_bad_row_provisions_the_others_and_reports_row_and_column(
    tmp_path: Path, ca: Ca, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = tmp_path / "stores.csv"
    stores.write_text(
        "store_id,gateway_id,broker_url,store_name\n"
        "store-1,gw-1a,,High Street\n"
        "store-2,gw-2a,ftp://nope,\n"
        "store-3,gw-3a,mqtts://other.example:8883,\n"
    )
    target = tmp_path / "staging"
    base = ["gateway", "--batch", str(stores), "--target", str(target), "--broker-url", "mqtts://default.example:8883"]
    args = [*base, "--ca-cert", str(ca.cert_path), "--ca-key", str(ca.key_path)]
    assert flash_main(args) == 1
    captured = capsys.readouterr()
    assert f"{stores}: row 3, column broker_url:" in captured.err
    assert (
        "batch" in captured.out and "2 gateway(s) provisioned (0 already up to date), 1 row(s) failed" in captured.out
    )
    assert not (target / "store-2").exists()
    assert load_config(target / "store-1/gw-1a/etc/storeedge/gateway.yaml").broker.url.endswith("default.example:8883")
    assert load_config(target / "store-3/gw-3a/etc/storeedge/gateway.yaml").broker.url.endswith("other.example:8883")
    assert sorted(p.name for p in (target / "labels").iterdir()) == ["store-1_gw-1a.png", "store-3_gw-3a.png"]

    assert flash_main(args) == 1  # the bad row still fails; the good ones are already up to date
    assert "2 gateway(s) provisioned (2 already up to date), 1 row(s) failed" in capsys.readouterr().out

    stores.write_text("store_id,gateway,extra\nstore-1,gw\n")
    assert flash_main(args) == 2
    assert "missing column(s) gateway_id; unknown column(s) gateway, extra" in capsys.readouterr().err


# ---- acceptance 2: the provisioned gateway connects over mutual TLS -------------------------------------------


async def test_provisioned_gateway_connects_to_mosquitto_with_its_new_certificate(tmp_path: Path, ca: Ca) -> None:
    server_cert, server_key = tmp_path / "pki/server.pem", tmp_path / "pki/server.key"
    issued = ca.authority.issue_cert("127.0.0.1", "localhost")
    server_cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(server_key))
    broker = Mosquitto(tmp_path / "mosquitto", tls=TlsFiles(ca.cert_path, server_cert, server_key))
    broker.start()
    try:
        target = tmp_path / "root"
        args = [
            "gateway",
            "--target",
            str(target),
            "--store-id",
            "store-7",
            "--gateway-id",
            "gw-tls",
            "--broker-url",
            str(broker.url),
            "--broker-ca",
            str(ca.cert_path),
            "--ca-cert",
            str(ca.cert_path),
            "--ca-key",
            str(ca.key_path),
        ]
        assert flash_main(args) == 0
        config_path = target / "etc/storeedge/gateway.yaml"
        assert storeedge_main(["config", "check", str(config_path), "--root", str(target)]) == 0
        # The config names the gateway's own paths (/etc/storeedge/tls/...): read them from the target tree, and
        # keep state in the test's folder; everything else is the provisioned config as written.
        tls = yaml.safe_load(config_path.read_text())["broker"]["tls"]
        rebased = {name: str(target / Path(path).relative_to("/")) for name, path in tls.items()}
        config = load_config(
            config_path,
            overrides={
                "state_dir": str(tmp_path / "state"),
                "broker": {"tls": rebased, "reconnect": {"min_delay_s": 0.1, "max_delay_s": 0.5}},
                "runtime": {"shutdown_grace_s": 2},
            },
        )
        gateway = Gateway(config)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test:provisioned-gateway")
        try:
            await wait_for(
                lambda: (
                    gateway.snapshot().get("agents", {}).get("uplink", {}).get("mqtt", {}).get("state") == "connected"
                ),
                timeout=15,
                what="the provisioned gateway's TLS connection",
            )
            assert gateway.uplink is not None and gateway.uplink.session is not None
            assert gateway.uplink.session.health.connects == 1
            assert gateway.uplink.session.health.failed_attempts == 0
        finally:
            stop.set()
            await task
    finally:
        broker.stop()


# ---- device flashing (virtual MicroPython board) ------------------------------------------------------------


@pytest.fixture(scope="module")
def micropython_runtime() -> None:
    ensure_micropython_runtime()  # the webassembly port, installed like scripts/firmware-test does


@pytest.fixture
def board(tmp_path: Path, micropython_runtime: None) -> Iterator[VirtualBoard]:
    with VirtualBoard(tmp_path / "board", state_dir=tmp_path / "state") as virtual_board:
        yield virtual_board


def run_flash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FLASH), *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def mpremote(link: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", str(link), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_acceptance_flash_device_verify_then_mpremote_lists_the_files(tmp_path: Path, board: VirtualBoard) -> None:
    link = tmp_path / "board"
    flashed = run_flash("device", "--port", str(link), "--verify", "--esl-address", "1/5", "--bus", "bus-a")
    assert flashed.returncode == 0, flashed.stdout + flashed.stderr
    assert "esltag 0.1.0 deployed (8 written, 0 unchanged; sha256 verified on the board)" in flashed.stdout
    files = board.files()
    for name in RUNTIME_FILES:
        assert files[f"/lib/esltag/{name}"] == (FIRMWARE / name).read_bytes(), name
    device_config = yaml.safe_load(files["/esltag_device.json"])  # JSON is YAML
    assert (device_config["esl_address"], device_config["group_id"], device_config["esl_id"]) == ("1/5", 1, 5)
    assert device_config["bus"] == "bus-a" and device_config["firmware"]["version"] == "0.1.0"
    assert board.soft_resets == 1

    root_listing = mpremote(link, "ls")
    assert root_listing.returncode == 0, root_listing.stderr
    assert {line.split()[-1] for line in root_listing.stdout.splitlines()[1:]} == {"lib/", "esltag_device.json"}
    package_listing = mpremote(link, "ls", ":lib/esltag")
    assert package_listing.returncode == 0, package_listing.stderr
    assert sorted(line.split()[-1] for line in package_listing.stdout.splitlines()[1:]) == RUNTIME_FILES


def test_reflashing_an_up_to_date_board_writes_nothing_and_keeps_its_config(
    tmp_path: Path, board: VirtualBoard, capsys: pytest.CaptureFixture[str]
) -> None:
    port = str(tmp_path / "board")
    assert flash_main(["device", "--port", port, "--esl-address", "2/9", "--bus", "bus-b"]) == 0
    assert "8 written, 0 unchanged; sizes verified" in capsys.readouterr().out
    before = board.files()
    assert flash_main(["device", "--port", port, "--verify"]) == 0  # no device settings: firmware only
    output = capsys.readouterr().out
    assert "0 written, 7 unchanged; sha256 verified on the board" in output
    assert "device config /esltag_device.json kept as it was" in output
    assert board.files() == before


def test_missing_port_names_the_ports_present(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "ttyUSB9")
    assert flash_main(["device", "--port", missing, "--esl-address", "1/1", "--bus", "bus-a"]) == 3
    assert f"no such port {missing}; ports present: " in capsys.readouterr().err


def test_a_port_nobody_answers_gives_a_no_repl_error(capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()
    try:
        code = flash_main(
            ["device", "--port", os.ttyname(slave), "--timeout", "0.2", "--esl-address", "1/1", "--bus", "b"]
        )
    finally:
        os.close(master)
        os.close(slave)
    assert code == 4
    message = capsys.readouterr().err
    assert "no MicroPython REPL on /dev/pts/" in message
    assert "sent Ctrl-C (interrupt) then Ctrl-A (raw REPL) 3 times" in message and "received nothing" in message


# boot.py run by the board at start: OSError 28 once N more bytes are written, and a statvfs giving FREE bytes.
_FULL_BOARD_BOOT = """
import builtins, os
_open = builtins.open
_room = [{room}]
class _Limited:
    def __init__(self, f):
        self._f = f
    def write(self, data):
        if len(data) > _room[0]:
            raise OSError(28)
        _room[0] -= len(data)
        return self._f.write(data)
    def read(self, *args):
        return self._f.read(*args)
    def close(self):
        self._f.close()
def _limited_open(path, mode='r', *args):
    f = _open(path, mode, *args)
    return _Limited(f) if 'w' in mode else f
builtins.open = _limited_open
os.statvfs = lambda path: (4096, 4096, 64, {free_blocks}, {free_blocks}, 0, 0, 0, 0, 255)
"""


@pytest.mark.parametrize(
    ("room", "free_blocks", "expected"),
    [
        (10**6, 2, "filesystem full on {port}: 8192 bytes free, need "),
        (3000, 64, "filesystem full on {port} while writing /lib/esltag/commands.py: 262144 bytes free, need "),
    ],
    ids=["too-small-before-writing", "enospc-while-writing"],
)
def test_full_filesystem_is_reported_with_free_and_needed_bytes(
    tmp_path: Path,
    micropython_runtime: None,
    capsys: pytest.CaptureFixture[str],
    room: int,
    free_blocks: int,
    expected: str,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "boot.py").write_text(_FULL_BOARD_BOOT.format(room=room, free_blocks=free_blocks))
    link = tmp_path / "board"
    with VirtualBoard(link, state_dir=state):
        code = flash_main(["device", "--port", str(link), "--esl-address", "1/1", "--bus", "bus-a"])
    assert code == 5
    assert expected.format(port=link) in capsys.readouterr().err


def test_corrupted_write_is_a_hash_mismatch(
    tmp_path: Path, micropython_runtime: None, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # A board whose storage flips one byte value on write: sizes match, only the sha256 check can tell.
    (state / "boot.py").write_text(
        "import builtins\n_open = builtins.open\n"
        "class _Flip:\n def __init__(self, f):\n  self._f = f\n"
        " def write(self, data):\n  return self._f.write(bytes(data).replace(b'=', b'-'))\n"
        " def read(self, *a):\n  return self._f.read(*a)\n def close(self):\n  self._f.close()\n"
        "def _flip_open(path, mode='r', *a):\n f = _open(path, mode, *a)\n return _Flip(f) if 'w' in mode else f\n"
        "builtins.open = _flip_open\n"
    )
    link = tmp_path / "board"
    with VirtualBoard(link, state_dir=state):
        code = flash_main(["device", "--port", str(link), "--verify", "--esl-address", "1/1", "--bus", "bus-a"])
    assert code == 6
    message = capsys.readouterr().err
    assert "differ on" in message and "/lib/esltag/link.py: board sha256 " in message


# ---- esptool wrapper (argument building only: the write needs a board in its bootloader) ---------------------


def test_esptool_arguments_use_the_chip_offset_and_esptool5_spelling() -> None:
    assert esptool_arguments(port="/dev/ttyUSB0", image=Path("fw.bin")) == [
        "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800", "write-flash", "0x1000", "fw.bin",
    ]  # fmt: skip
    assert esptool_arguments(port="P", image=Path("s3.bin"), chip="esp32s3", baud=115200, erase_all=True) == [
        "--chip", "esp32s3", "--port", "P", "--baud", "115200", "write-flash", "--erase-all", "0x0", "s3.bin",
    ]  # fmt: skip
    with pytest.raises(ProvisionInputError, match="unknown chip 'esp8266'"):
        esptool_arguments(port="P", image=Path("x.bin"), chip="esp8266")


def test_esp32_base_prints_arguments_and_checks_the_port_before_esptool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "micropython.bin"
    image.write_bytes(b"\xe9" + bytes(15))
    assert flash_main(["esp32-base", "--port", "/dev/ttyUSB0", "--image", str(image), "--print-args"]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 write-flash 0x1000 {image}"
    )
    assert flash_main(["esp32-base", "--port", str(tmp_path / "ttyUSB7"), "--image", str(image)]) == 3
    assert "no such port" in capsys.readouterr().err


def test_raw_repl_client_runs_code_in_plain_and_paste_modes_and_types_board_errors(board: VirtualBoard) -> None:
    with RawRepl.open(board.port) as repl:
        assert repl.exec("print(6 * 7)") == b"42\n"
        assert repl.raw_paste is True  # the virtual board grants raw-paste, as MicroPython >= 1.14 does
        repl.raw_paste = False  # force the plain raw-REPL path (boards without raw-paste)
        assert repl.eval_text("print('x' * 600)") == "x" * 600
        with pytest.raises(RemoteExecError) as raised:
            repl.exec("import os\nos.stat('/nope')")
        assert raised.value.errno == 2 and "ENOENT" in raised.value.traceback
        assert repl.exec("print('still usable')") == b"still usable\n"
        repl.leave()

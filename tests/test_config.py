"""Tests for the gateway configuration (``agents/core/config.py``, ``agents/gateway/config.py``) and
``storeedge config check``.

Covers: a minimal valid config and its defaults; unknown keys (top level and nested), wrong types,
missing fields and cross-field rules, each reported as a :class:`ConfigError` naming the dotted field and
the 1-based YAML line; byte sizes and durations; invalid YAML, a non-mapping top level and unreadable
files; ``BrokerUrl.parse`` (default ports, ``tcp://``/``ssl://`` aliases, credentials); ``redact_url``;
and the CLI exit codes and messages of ``storeedge config check FILE``.
"""

from __future__ import annotations

import re
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agents.cli import main
from agents.core.config import (
    BrokerUrl,
    DropPolicy,
    MqttProtocol,
    OutboxSync,
)
from agents.core.errors import ConfigError
from agents.core.urls import redact_url
from agents.gateway.config import GatewayConfig, load_config, parse_config
from agents.preflight import check_paths

MINIMAL = """\
store_id: store-1
gateway_id: gw-1
broker:
  url: mqtt://broker.local
"""


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text(text))
    return info.value


def assert_reports(err: ConfigError, field: str, line: int | None = None) -> None:
    """``err`` names ``field`` (as a whole dotted path) and, if given, the 1-based ``line``."""
    message = str(err)
    pattern = rf"(?<![\w.]){re.escape(field)} \(line (\d+)\)"
    match = re.search(pattern, message)
    assert match is not None, f"{field!r} not reported in {message!r}"
    if line is not None:
        assert int(match.group(1)) == line, f"{field!r}: expected line {line} in {message!r}"


# -- valid configs -----------------------------------------------------------------------------------


def test_minimal_config_is_valid() -> None:
    config = parse_config(MINIMAL)
    assert isinstance(config, GatewayConfig)
    assert config.store_id == "store-1"
    assert config.gateway_id == "gw-1"
    assert config.broker.url == "mqtt://broker.local"


def test_minimal_config_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.state_dir == Path("/var/lib/storeedge")
    assert config.outbox_path == Path("/var/lib/storeedge/outbox.sqlite3")
    assert config.health_path == Path("/var/lib/storeedge/health.json")
    assert config.client_id == "storeedge-store-1-gw-1"
    broker = config.broker
    assert broker.protocol is MqttProtocol.V311
    assert broker.keepalive_s == 30
    assert broker.inflight == 100
    assert broker.tls is None
    assert broker.reconnect.min_delay_s == 0.5
    assert broker.reconnect.max_delay_s == 60.0
    assert broker.parsed_url == BrokerUrl(scheme="mqtt", host="broker.local", port=1883)
    outbox = config.outbox
    assert outbox.path is None
    assert int(outbox.max_bytes) == 64 * 1024 * 1024
    assert int(outbox.max_message_bytes) == 256 * 1024
    assert outbox.max_age == timedelta(days=7)
    assert outbox.drop_policy is DropPolicy.DROP_OLDEST
    assert outbox.sync is OutboxSync.NORMAL
    assert config.heartbeat.interval_s == 30.0
    assert config.heartbeat.health_interval_s == 60.0
    assert int(config.commands.max_bytes) == 64 * 1024
    assert "loadgen" not in GatewayConfig.model_fields  # the simulator's setting (sim.loadgen), not a gateway's


def test_the_simulators_load_is_not_a_gateway_setting() -> None:
    err = config_error(MINIMAL + "loadgen: {streams: 1}\n")
    assert "loadgen (line 5): unknown key" in str(err)


def test_empty_document_reports_missing_required_fields() -> None:
    err = config_error("# nothing configured yet\n")
    for field in ("store_id", "gateway_id", "broker"):
        assert field in str(err)
    assert "Field required" in str(err)


def test_explicit_values_override_defaults(tmp_path: Path) -> None:
    config = parse_config(
        yaml_text(
            f"""
            store_id: s1
            gateway_id: g1
            state_dir: {tmp_path}
            broker:
              url: mqtts://user:pw@broker.example:9999
              protocol: "5"
              client_id: custom
            heartbeat:
              interval_s: 2.5
            outbox:
              drop_policy: drop_newest
              sync: full
            """
        )
    )
    assert config.outbox_path == tmp_path / "outbox.sqlite3"
    assert config.client_id == "custom"
    assert config.broker.protocol is MqttProtocol.V5
    assert config.broker.parsed_url.tls
    assert config.broker.parsed_url.port == 9999
    assert config.heartbeat.interval_s == 2.5
    assert config.outbox.drop_policy is DropPolicy.DROP_NEWEST
    assert config.outbox.sync is OutboxSync.FULL


def test_parse_config_overrides_are_deep_merged() -> None:
    config = parse_config(MINIMAL, overrides={"broker": {"keepalive_s": 60}, "heartbeat": {"interval_s": 1}})
    assert config.broker.url == "mqtt://broker.local"
    assert config.broker.keepalive_s == 60
    assert config.heartbeat.interval_s == 1.0


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_config(path) == parse_config(MINIMAL)


# -- byte sizes and durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10MiB", 10 * 1024 * 1024), ("10MB", 10_000_000), ("512KiB", 512 * 1024), ("2000", 2000), ("1GiB", 1 << 30)],
)
def test_byte_sizes_are_parsed(text: str, expected: int) -> None:
    config = parse_config(MINIMAL + f"outbox:\n  max_bytes: {text}\n  max_message_bytes: 1KiB\n")
    assert int(config.outbox.max_bytes) == expected
    assert int(config.outbox.max_message_bytes) == 1024


def test_invalid_byte_size_is_rejected() -> None:
    err = config_error(MINIMAL + "outbox:\n  max_bytes: lots\n")
    assert_reports(err, "outbox.max_bytes", line=6)


def test_max_age_in_seconds_is_parsed() -> None:
    config = parse_config(MINIMAL + "outbox:\n  max_age: 3600\n")
    assert config.outbox.max_age == timedelta(hours=1)


@pytest.mark.parametrize("value", ["-1", "0", "-3600"])
def test_non_positive_max_age_is_rejected(value: str) -> None:
    err = config_error(MINIMAL + f"outbox:\n  max_age: {value}\n")
    assert_reports(err, "outbox.max_age", line=6)
    assert "max_age must be positive" in str(err)


# -- errors name the field and the line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        pytest.param(MINIMAL + "hearbeat: 5\n", "hearbeat", 5, id="top-level-scalar"),
        pytest.param(MINIMAL + "  inflite: 5\n", "broker.inflite", 5, id="nested-scalar"),
        pytest.param(
            "# gateway config\n\n" + MINIMAL + "  inflite: 5\nheartbeat:\n  interval_s: 1\n",
            "broker.inflite",
            7,
            id="nested-after-comments",
        ),
        pytest.param(MINIMAL + "hearbeat:\n  interval_s: 5\n", "hearbeat", 5, id="top-level-mapping-value"),
        pytest.param(MINIMAL + "  tlss:\n    ca_file: ca.pem\n", "broker.tlss", 5, id="nested-mapping-value"),
        pytest.param(MINIMAL + "outbox:\n  max_byte: 1MiB\n", "outbox.max_byte", 6, id="outbox-typo"),
    ],
)
def test_unknown_key_names_field_and_line(text: str, field: str, line: int) -> None:
    err = config_error(text)
    assert_reports(err, field, line=line)
    assert "unknown key" in str(err)
    assert len(err.problems) == 1


def test_wrong_type_flow_mapping_names_field_and_line() -> None:
    err = config_error(MINIMAL + "heartbeat: {interval_s: fast}\n")
    assert_reports(err, "heartbeat.interval_s", line=5)
    assert "valid number" in str(err)


def test_wrong_type_block_mapping_names_field_and_line() -> None:
    err = config_error(MINIMAL + "heartbeat:\n  health_interval_s: 10\n  interval_s: fast\n")
    assert_reports(err, "heartbeat.interval_s", line=7)


def test_out_of_range_value_names_field_and_line() -> None:
    err = config_error(MINIMAL + "  keepalive_s: 1\n")
    assert_reports(err, "broker.keepalive_s", line=5)
    assert "greater than or equal to 5" in str(err)


def test_several_problems_are_all_reported() -> None:
    err = config_error(MINIMAL + "  inflite: 5\nheartbeat:\n  interval_s: fast\n")
    assert_reports(err, "broker.inflite", line=5)
    assert_reports(err, "heartbeat.interval_s", line=7)
    assert len(err.problems) == 2


def test_missing_required_field() -> None:
    err = config_error("store_id: s1\ngateway_id: g1\n")
    assert_reports(err, "broker")
    assert "Field required" in str(err)


def test_missing_nested_required_field() -> None:
    err = config_error("store_id: s1\ngateway_id: g1\nbroker:\n  keepalive_s: 30\n")
    assert_reports(err, "broker.url")
    assert "Field required" in str(err)


def test_invalid_gateway_id_is_rejected() -> None:
    err = config_error("store_id: s1\ngateway_id: gw/1\nbroker:\n  url: mqtt://b\n")
    assert_reports(err, "gateway_id", line=2)


def test_cert_file_without_key_file_is_rejected() -> None:
    err = config_error(MINIMAL + "  tls:\n    ca_file: ca.pem\n    cert_file: client.pem\n")
    assert_reports(err, "broker.tls")
    assert "cert_file and key_file must be given together" in str(err)


def test_cert_file_with_key_file_is_accepted() -> None:
    config = parse_config(MINIMAL + "  tls:\n    cert_file: client.pem\n    key_file: client.key\n")
    assert config.broker.tls is not None
    assert config.broker.tls.cert_file == Path("client.pem")
    assert config.broker.tls.key_file == Path("client.key")


def test_reconnect_delays_must_be_ordered() -> None:
    err = config_error(MINIMAL + "  reconnect:\n    min_delay_s: 5\n    max_delay_s: 1\n")
    assert_reports(err, "broker.reconnect")
    assert "max_delay_s must be >= min_delay_s" in str(err)


@pytest.mark.parametrize("url", ["http://broker.local", "ws://broker.local:80", "broker.local:1883", "mqtt://"])
def test_invalid_broker_url_is_rejected(url: str) -> None:
    err = config_error(f"store_id: s1\ngateway_id: g1\nbroker:\n  url: '{url}'\n")
    assert_reports(err, "broker.url", line=4)


def test_http_scheme_message_names_allowed_schemes() -> None:
    err = config_error("store_id: s1\ngateway_id: g1\nbroker:\n  url: http://broker.local\n")
    assert "mqtt:// or mqtts://" in str(err)


def test_source_name_prefixes_each_problem(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(MINIMAL + "  inflite: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: broker.inflite (line 5): " + info.value.problems[0].split(": ", 2)[2]]


# -- not a config at all -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["store_id: [s1\n", "a: b: c\n", "key: 'unterminated\n", "---\na: 1\n---\nb: 2\n"])
def test_invalid_yaml_raises_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="gw.yaml")
    assert "gw.yaml: not valid YAML" in str(info.value)


@pytest.mark.parametrize("text", ["- store_id: s1\n- gateway_id: g1\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(text)


def test_nonexistent_file_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(missing) in str(info.value)
    assert "cannot read config file" in str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- broker URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port"),
    [
        ("mqtt://broker.local", "mqtt", "broker.local", 1883),
        ("mqtts://broker.local", "mqtts", "broker.local", 8883),
        ("tcp://broker.local", "mqtt", "broker.local", 1883),
        ("ssl://broker.local", "mqtts", "broker.local", 8883),
        ("mqtt://broker.local:11883", "mqtt", "broker.local", 11883),
        ("ssl://10.0.0.5:8884", "mqtts", "10.0.0.5", 8884),
        ("mqtt://[::1]", "mqtt", "::1", 1883),
    ],
)
def test_broker_url_parse(url: str, scheme: str, host: str, port: int) -> None:
    parsed = BrokerUrl.parse(url)
    assert (parsed.scheme, parsed.host, parsed.port) == (scheme, host, port)
    assert parsed.tls is (scheme == "mqtts")
    assert parsed.username is None and parsed.password is None


def test_broker_url_str_is_canonical_and_has_no_credentials() -> None:
    parsed = BrokerUrl.parse("ssl://alice:s3cret@broker.local")
    assert str(parsed) == "mqtts://broker.local:8883"
    assert "s3cret" not in str(parsed)


def test_broker_url_credentials_are_unquoted() -> None:
    parsed = BrokerUrl.parse("mqtt://al%40ice:p%3Ass%2Fw@broker.local:1884")
    assert parsed.username == "al@ice"
    assert parsed.password == "p:ss/w"
    assert parsed.port == 1884


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker.local", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "no host"),
        ("mqtt://broker.local:99999", "invalid port"),
        ("mqtt://broker.local:abc", "invalid port"),
    ],
)
def test_broker_url_parse_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BrokerUrl.parse(url)


# -- redaction ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://alice:s3cret@broker.local:1883", "mqtt://alice:***@broker.local:1883"),
        ("mqtts://alice:p%40ss@broker.local", "mqtts://alice:***@broker.local"),
        ("mqtt://broker.local:1883", "mqtt://broker.local:1883"),
        ("mqtt://alice@broker.local", "mqtt://alice@broker.local"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://alice:s3cret@broker.local:1883",
        "mqtts://alice:sec:ret@broker.local",
        "mqtt://alice:p@ssword@broker.local",  # raw '@' in the password: urlsplit still accepts it
        "mqtt://:tokenpassword@broker.local",  # password without a user name
    ],
)
def test_redact_url_never_reveals_the_password_the_parser_uses(url: str) -> None:
    password = BrokerUrl.parse(url).password
    assert password
    redacted = redact_url(url)
    assert password not in redacted
    # Every suffix of length >= 3 is hidden too: no partial leaks.
    assert not any(password[i:] in redacted for i in range(len(password) - 2))


# -- CLI: storeedge config check -------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_config_check_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL.replace("mqtt://broker.local", "mqtt://alice:s3cret@broker.local"))
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: OK" in out
    assert "store store-1" in out and "gateway gw-1" in out
    assert "s3cret" not in out
    assert err == ""


def test_cli_config_check_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL + "  inflite: 5\n")
    assert main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("storeedge config check: ")
    assert f"{path}: broker.inflite (line 5): unknown key" in err


def test_cli_config_check_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MINIMAL + "heartbeat: {interval_s: fast}\n")
    assert main(["config", "check", str(path)]) == 2
    _, err = capsys.readouterr()
    assert "heartbeat.interval_s (line 5)" in err


def test_cli_config_check_invalid_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "store_id: [s1\n")
    assert main(["config", "check", str(path)]) == 2
    _, err = capsys.readouterr()
    assert "not valid YAML" in err


def test_cli_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["config", "check", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot read config file" in err and str(missing) in err


# -- CLI: config check also looks for the files and devices the config names -----------------------


def camera_yaml(name: str, url: str, model: Path | str) -> str:
    return (
        f"  - name: {name}\n"
        f"    source: {{url: '{url}'}}\n"
        f"    detector: {{type: yolox, model: '{model}'}}\n"
        "    counting: {lines: [{name: door, p1: [10, 0], p2: [10, 100]}]}\n"
    )


def test_cli_config_check_names_each_missing_file_with_field_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    text = (
        "store_id: store-1\n"
        "gateway_id: gw-1\n"
        "broker:\n"
        "  url: mqtts://broker.local\n"
        "  tls:\n"
        f"    ca_file: {missing / 'ca.pem'}\n"  # line 6
        f"    cert_file: {missing / 'gw.crt'}\n"  # line 7
        f"    key_file: {missing / 'gw.key'}\n"  # line 8
        "cameras:\n" + camera_yaml("door", str(missing / "door.mp4"), missing / "yolox.onnx")  # lines 10-13
    )
    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    for field, line, name in [
        ("broker.tls.ca_file", 6, "ca.pem"),
        ("broker.tls.cert_file", 7, "gw.crt"),
        ("broker.tls.key_file", 8, "gw.key"),
        ("cameras.0.source.url", 11, "door.mp4"),
        ("cameras.0.detector.model", 12, "yolox.onnx"),
    ]:
        assert f"{path}: error: {field} (line {line}): file not found: {missing / name}" in err, err
    assert "5 missing file(s)" in err


def test_cli_config_check_a_folder_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "door.mp4"
    video.write_bytes(b"")
    path = write(tmp_path, MINIMAL + "cameras:\n" + camera_yaml("door", str(video), tmp_path))
    assert main(["config", "check", str(path)]) == 2
    _, err = capsys.readouterr()
    assert f"cameras.0.detector.model (line 8): not a file: {tmp_path}" in err


def test_cli_config_check_absent_devices_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "yolox.onnx"
    model.write_bytes(b"")
    text = (
        MINIMAL
        + "cameras:\n"
        + camera_yaml("usb", "usb:63", model)
        + camera_yaml("v4l", "/dev/video-storeedge-absent", model)
        + "tags:\n  buses:\n    - {name: aisle-1, port: /dev/ttyUSB-storeedge-absent}\n"  # bus on line 16
        + "    - {name: aisle-2, port: 'socket://10.0.0.9:4001'}\n"  # a network port: not looked for
    )
    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: OK" in out and "warning(s)" in out
    assert "cameras.1.source.url (line 11): device not present" in err and "/dev/video-storeedge-absent" in err
    assert "tags.buses.0.port (line 16): device not present" in err and "/dev/ttyUSB-storeedge-absent" in err
    if sys.platform.startswith("linux"):
        assert "cameras.0.source.url (line 7): device not present" in err and "usb:63 (/dev/video63)" in err
    assert "socket://" not in err and "error" not in err


def test_cli_config_check_files_that_exist_pass_silently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video, model, ca = tmp_path / "door.mp4", tmp_path / "yolox.onnx", tmp_path / "ca.pem"
    for file in (video, model, ca):
        file.write_bytes(b"")
    text = MINIMAL + f"  tls: {{ca_file: {ca}}}\n" + "cameras:\n" + camera_yaml("door", str(video), model)
    text += camera_yaml("street", "rtsp://10.0.0.5/stream1", model)  # network sources are doctor's job
    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"{path}: OK" in out and "warning" not in out
    assert err == ""


def test_check_paths_without_the_yaml_text_has_no_lines(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + "cameras:\n" + camera_yaml("door", str(tmp_path / "door.mp4"), tmp_path / "m.onnx"))
    problems = check_paths(config)
    assert [(p.field, p.severity, p.line) for p in problems] == [
        ("cameras.0.source.url", "error", None),
        ("cameras.0.detector.model", "error", None),
    ]
    assert str(problems[0]) == f"cameras.0.source.url: file not found: {tmp_path / 'door.mp4'}"

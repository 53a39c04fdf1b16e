"""Configuration primitives: the sections every gateway has, and YAML validation that names lines.

Files are parsed with PyYAML's node API so that every validation error can be reported with the line and
column it came from: an installer editing ``/etc/storeedge/gateway.yaml`` over SSH gets
``broker.url (line 4): ...`` instead of a traceback. Every model forbids unknown keys, so a typo such as
``hearbeat:`` fails loudly instead of silently running with defaults.

This is the ground floor: it imports nothing from the feature packages. The root model that gathers every
section (broker, outbox, cameras, tags, ...) is :class:`agents.gateway.config.GatewayConfig`, above them.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.core.errors import ConfigError

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Store and gateway ids: they become MQTT topic levels and file names, so a safe, short alphabet."""

ModelT = TypeVar("ModelT", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttProtocol(StrEnum):
    V311 = "3.1.1"
    V5 = "5"


class BrokerUrl(StrictModel):
    """A parsed ``mqtt://`` / ``mqtts://`` URL (``tcp://`` and ``ssl://`` are accepted as aliases)."""

    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        scheme = {"mqtt": "mqtt", "tcp": "mqtt", "mqtts": "mqtts", "ssl": "mqtts"}.get(parts.scheme)
        if scheme is None:
            raise ValueError(f"broker URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"broker URL has no host: {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"broker URL has an invalid port: {url!r}") from exc
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port or (8883 if scheme == "mqtts" else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


class TlsConfig(StrictModel):
    """TLS files. ``ca_file`` verifies the broker; ``cert_file``/``key_file`` are the client certificate."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = Field(False, description="Do not check the broker's hostname (lab use only).")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class ReconnectConfig(StrictModel):
    min_delay_s: float = Field(0.5, gt=0, le=60)
    max_delay_s: float = Field(60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectConfig:
        if self.max_delay_s < self.min_delay_s:
            raise ValueError("max_delay_s must be >= min_delay_s")
        return self


class BrokerConfig(StrictModel):
    url: str = Field(description="mqtt://host:port or mqtts://host:port")
    protocol: MqttProtocol = MqttProtocol.V311
    client_id: str | None = Field(None, description="Defaults to storeedge-<store_id>-<gateway_id>.")
    username: str | None = None
    password_file: Path | None = Field(None, description="File holding the password (kept out of the YAML).")
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    session_expiry_s: int = Field(
        86400, ge=0, description="MQTT 5 session expiry: how long the broker queues commands while offline."
    )
    inflight: int = Field(100, ge=1, le=65535, description="Unacknowledged QoS 1 messages allowed at once.")
    publish_ahead: int = Field(
        10000,
        ge=1,
        le=1_000_000,
        description="Messages handed to the MQTT client ahead of their PUBACK (it sends `inflight` at a time).",
    )
    tls: TlsConfig | None = None
    reconnect: ReconnectConfig = ReconnectConfig()

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        BrokerUrl.parse(value)
        return value

    @property
    def parsed_url(self) -> BrokerUrl:
        return BrokerUrl.parse(self.url)


class DropPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class OutboxSync(StrEnum):
    NORMAL = "normal"  # survives process crashes (SIGKILL); may lose the last commits on power loss
    FULL = "full"  # also survives power loss, at the cost of an fsync per commit batch


class OutboxConfig(StrictModel):
    path: Path | None = Field(None, description="SQLite file; defaults to <state_dir>/outbox.sqlite3.")
    max_bytes: ByteSize = Field(ByteSize(64 * 1024 * 1024), gt=0)
    max_age: timedelta = Field(timedelta(days=7), description="Messages older than this are dropped.")
    max_message_bytes: ByteSize = Field(ByteSize(256 * 1024), gt=0)
    drop_policy: DropPolicy = DropPolicy.DROP_OLDEST
    sync: OutboxSync = OutboxSync.NORMAL

    @field_validator("max_age")
    @classmethod
    def _positive_age(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("max_age must be positive")
        return value


class CommandsConfig(StrictModel):
    max_bytes: ByteSize = Field(ByteSize(64 * 1024), gt=0, description="Larger commands are refused.")
    timeout_s: float = Field(30.0, gt=0)
    max_concurrent: int = Field(8, ge=1, le=256)
    remember: int = Field(10000, ge=100, description="Command ids kept for idempotency.")


class HeartbeatConfig(StrictModel):
    interval_s: float = Field(30.0, gt=0)
    health_interval_s: float = Field(60.0, gt=0)


class RuntimeConfig(StrictModel):
    restart_min_delay_s: float = Field(1.0, gt=0)
    restart_max_delay_s: float = Field(60.0, gt=0)
    shutdown_grace_s: float = Field(5.0, ge=0, description="Time to flush the outbox on SIGTERM.")
    health_file_interval_s: float = Field(2.0, gt=0)


def _node_at(
    root: yaml.Node | None, loc: tuple[int | str, ...], *, at_key: bool = False
) -> tuple[yaml.Node | None, tuple[int | str, ...]]:
    """Follow a pydantic error location through the YAML node tree as far as it goes.

    Returns the node and the location without the steps that are not in the YAML: a discriminated union adds its
    tag (e.g. ``yolox``, or ``serial`` for a bus written without ``type:``) to the location. With ``at_key`` the
    last step returns the key node rather than its value (for unknown keys, whose value may start on a later line).
    """
    node = root
    shown: list[int | str] = []
    for index, key in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if pair is None:
                if not last:
                    continue  # a union tag, not a YAML key
                shown.append(key)
                return node, (*shown, *loc[index + 1 :])
            shown.append(key)
            if at_key and last:
                return pair[0], tuple(shown)
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            shown.append(key)
            node = node.value[key]
        else:
            return node, (*shown, *loc[index:])
    return node, tuple(shown)


def _describe(errors: list[Any], root: yaml.Node | None, source: str) -> list[str]:
    problems = []
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        node, shown = _node_at(root, loc, at_key=err["type"] == "extra_forbidden")
        field = ".".join(str(p) for p in (shown if root is not None else loc)) or "(top level)"
        where = f" (line {node.start_mark.line + 1})" if node is not None else ""
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are rejected)"
        problems.append(f"{source}: {field}{where}: {message}")
    return problems


def validate_yaml(
    model: type[ModelT], text: str, source: str = "<config>", overrides: dict[str, Any] | None = None
) -> ModelT:
    """Validate YAML ``text`` as ``model``; raise :class:`ConfigError` naming each bad field and its line.

    ``overrides`` are laid over the parsed mapping first (see :func:`deep_merge`).
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if root is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}", [str(exc)]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = _describe(exc.errors(), root, source)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems), problems) from exc


def read_config_text(path: str | Path) -> str:
    """The text of a configuration file, or a :class:`ConfigError` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, mappings merged key by key (neither argument is changed)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged

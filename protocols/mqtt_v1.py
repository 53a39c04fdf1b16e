"""Version 1 of the storeedge MQTT topic and payload schema (documented in ``protocols/mqtt_v1.md``).

Every topic lives under ``storeedge/v1/<store>/<gateway>/``. Uplink messages are *envelopes*: a JSON
object carrying a stable ``id`` (gateway id and a per-gateway sequence that survives restarts), the
stream name, a per-stream sequence and a timestamp, so the cloud can drop the duplicates QoS 1 allows and
detect gaps. Commands flow down on ``.../cmd`` and their results come back up on ``.../cmd/result``.

This module is pure: it builds and parses topics and payloads and validates commands; it does no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from protocols.errors import ProtocolError

SCHEMA_VERSION = 1
ROOT = f"storeedge/v{SCHEMA_VERSION}"

STATUS = "status"  # retained: birth {"online": true, ...} and Last Will {"online": false}
COMMAND = "cmd"  # downlink
COMMAND_RESULT = "cmd/result"  # uplink stream of command results
HEARTBEAT = "heartbeat"
HEALTH = "health"

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_STREAM = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*){0,3}$")


def _check_segment(kind: str, value: str) -> str:
    if not _SEGMENT.fullmatch(value):
        raise ProtocolError(f"{kind} {value!r} must match {_SEGMENT.pattern} (no '/', '+' or '#')")
    return value


def check_stream(stream: str) -> str:
    """Validate an uplink stream name such as ``heartbeat`` or ``counts/door-1``."""
    if not _STREAM.fullmatch(stream) or stream in (STATUS, COMMAND):
        raise ProtocolError(f"stream {stream!r} is not a valid uplink stream name")
    return stream


@dataclass(frozen=True)
class GatewayTopics:
    """Topic names of one gateway."""

    store_id: str
    gateway_id: str

    def __post_init__(self) -> None:
        _check_segment("store id", self.store_id)
        _check_segment("gateway id", self.gateway_id)

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.store_id}/{self.gateway_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/{STATUS}"

    @property
    def command(self) -> str:
        return f"{self.base}/{COMMAND}"

    def stream(self, stream: str) -> str:
        return f"{self.base}/{check_stream(stream)}"


@dataclass(frozen=True)
class ParsedTopic:
    store_id: str
    gateway_id: str
    suffix: str


def parse_topic(topic: str) -> ParsedTopic:
    """Split ``storeedge/v1/<store>/<gateway>/<suffix>``; raise :class:`ProtocolError` otherwise."""
    parts = topic.split("/", 4)
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise ProtocolError(f"topic {topic!r} is not under {ROOT}/<store>/<gateway>/")
    return ParsedTopic(parts[2], parts[3], parts[4])


def message_id(gateway_id: str, seq: int) -> str:
    """The stable id of uplink message ``seq`` of ``gateway_id``."""
    return f"{gateway_id}:{seq}"


def encode_data(data: Any) -> bytes:
    """Serialise an envelope's ``data`` once: compact UTF-8 JSON (orjson; see :func:`encode_envelope`).

    Raises ``TypeError`` for what JSON cannot carry (non-string keys, integers beyond 64 bits, objects).
    """
    return orjson.dumps(data)


def encode_envelope(
    *,
    gateway_id: str,
    stream: str,
    seq: int,
    stream_seq: int,
    ts: float,
    data: Any = None,
    data_json: bytes | None = None,
) -> bytes:
    """Serialise an uplink envelope (compact JSON, UTF-8, ``data`` last).

    Pass ``data_json`` (from :func:`encode_data`) instead of ``data`` to avoid serialising twice.
    """
    # Built by hand because it is on the hot path. Safe without escaping: gateway ids and stream names
    # are restricted to [A-Za-z0-9_./-] (checked by GatewayTopics and check_stream), and Python's float
    # repr is valid JSON for a finite float.
    header = (
        f'{{"v":{SCHEMA_VERSION},"id":"{gateway_id}:{seq}","gateway":"{gateway_id}","stream":"{stream}",'
        f'"seq":{seq},"stream_seq":{stream_seq},"ts":{round(ts, 3)!r},"data":'
    ).encode()
    body = encode_data(data) if data_json is None else data_json
    return header + body + b"}"


class Envelope(BaseModel):
    """A decoded uplink envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1]
    id: str
    gateway: str
    stream: str
    seq: int = Field(ge=1)
    stream_seq: int = Field(ge=1)
    ts: float
    data: Any


def decode_envelope(payload: bytes) -> Envelope:
    try:
        return Envelope.model_validate_json(payload)
    except ValidationError as exc:
        raise ProtocolError(f"not a v1 envelope: {_first_error(exc)}") from exc


class Command(BaseModel):
    """A downlink command: ``{"id": "...", "type": "ping", "args": {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    type: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")
    args: dict[str, Any] = Field(default_factory=dict)
    ts: float | None = None


class CommandResult(BaseModel):
    """What the gateway answers to a command (the ``data`` of a ``cmd/result`` envelope)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command_id: str | None
    type: str | None
    status: Literal["ok", "error"]
    reason: str | None = None
    result: Any = None
    duplicate: bool = False


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(payload)"
        parts.append(f"field '{loc}': {err['msg']}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    return "; ".join(parts)


def decode_command(payload: bytes, *, max_bytes: int) -> Command:
    """Decode and validate a command; :class:`ProtocolError` says exactly what is wrong."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"command too large: {len(payload)} bytes > limit {max_bytes}")
    try:
        raw = json.loads(payload)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over Python's digit limit.
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProtocolError("invalid command: payload must be a JSON object")
    try:
        return Command.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid command: {_first_error(exc)}") from exc


def salvage_command_id(payload: bytes) -> tuple[str | None, str | None]:
    """Best-effort id and type of a command that failed validation, so its error result can be matched."""
    try:
        raw = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(raw, dict):
        return None, None
    cid, ctype = raw.get("id"), raw.get("type")
    return (
        cid if isinstance(cid, str) and len(cid) <= 128 else None,
        ctype if isinstance(ctype, str) and len(ctype) <= 64 else None,
    )


def format_validation_error(exc: ValidationError) -> str:
    """Render pydantic errors as one line naming each field (used for command arguments)."""
    return _first_error(exc)


def encode_status(online: bool, **extra: Any) -> bytes:
    return json.dumps({"online": online, **extra}, separators=(",", ":")).encode()

"""The ``tags:`` section of the gateway configuration: tag buses, the tags on them, templates and retries.

Kept apart from the service so the core config can import it without the runtime. Tags are declared per
bus as address ranges with their panel (``{addresses: "1/1-25", panel: 296x128-bwr}``): an installer
knows which tags hang on which port and what they are, and the tag service refuses commands for any tag
not declared here ("unknown tag") instead of shouting into the bus. Every address may appear once in the
whole section; panel names are checked against the profile table at start-up.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from agents.tags.panels import Panel, UnknownPanelError, panel_by_name
from protocols.esl import MAX_GROUP_ID, EslAddress
from protocols.esl.serial import DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE

__all__ = ["BleBusConfig", "BusConfig", "RetryConfig", "SerialBusConfig", "TagRange", "TagsConfig", "parse_address"]

_ADDRESS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
_CLASS_PATTERN = r"^[\w.]+:\w+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_address(text: str) -> EslAddress:
    """``"group/id"`` (e.g. ``"1/5"``) as an :class:`EslAddress`; ValueError naming the problem otherwise."""
    match = _ADDRESS.match(text)
    if match is None or match.group(3) is not None:
        raise ValueError(f"ESL address must look like 'group/id' (e.g. '1/5'), got {text!r}")
    group, esl_id = int(match.group(1)), int(match.group(2))
    if group > MAX_GROUP_ID or esl_id > 254:
        raise ValueError(f"ESL address {text!r} out of range: group 0..{MAX_GROUP_ID}, id 0..254")
    return EslAddress(group, esl_id)


class TagRange(_Strict):
    """Tags with consecutive ESL ids in one group, all with the same panel."""

    addresses: str = Field(description="'group/id' or 'group/first-last', e.g. '1/1-25'.")
    panel: str = Field(description="Panel profile name, e.g. 296x128-bwr (optionally @90 for rotation).")

    @field_validator("addresses")
    @classmethod
    def _valid_range(cls, value: str) -> str:
        match = _ADDRESS.match(value)
        if match is None:
            raise ValueError(f"must look like 'group/id' or 'group/first-last' (e.g. '1/1-25'), got {value!r}")
        group, first = int(match.group(1)), int(match.group(2))
        last = int(match.group(3)) if match.group(3) is not None else first
        if group > MAX_GROUP_ID:
            raise ValueError(f"group {group} out of range 0..{MAX_GROUP_ID}")
        if not 0 <= first <= last <= 254:
            raise ValueError(f"ids must satisfy 0 <= first <= last <= 254, got {first}-{last}")
        return value

    @field_validator("panel")
    @classmethod
    def _known_panel(cls, value: str) -> str:
        try:
            panel_by_name(value)
        except UnknownPanelError as exc:
            raise ValueError(str(exc)) from None
        return value

    def expand(self) -> list[EslAddress]:
        match = _ADDRESS.match(self.addresses)
        assert match is not None  # checked by the validator
        group, first = int(match.group(1)), int(match.group(2))
        last = int(match.group(3)) if match.group(3) is not None else first
        return [EslAddress(group, esl_id) for esl_id in range(first, last + 1)]

    @property
    def panel_profile(self) -> Panel:
        return panel_by_name(self.panel)


class SerialBusConfig(_Strict):
    """One serial port (RS-485 style bus or radio bridge) and the tags reachable through it."""

    type: Literal["serial"] = "serial"
    name: str = Field(pattern=_NAME_PATTERN)
    port: str = Field(description="Device path (/dev/ttyUSB0) or a pyserial URL.")
    baudrate: int = Field(115200, ge=1200, le=4_000_000)
    max_concurrent: int = Field(8, ge=1, le=64, description="Tags served at the same time on this bus.")
    block_size: int = Field(DEFAULT_BLOCK_SIZE, ge=16, le=MAX_BLOCK_SIZE, description="Image block bytes.")
    max_tries: int = Field(8, ge=1, le=50, description="Sends of one frame before the tag counts as unreachable.")
    ack_timeout_s: float = Field(0.05, gt=0, le=5, description="First wait for a frame's ACK (doubles per try).")
    reply_timeout_s: float = Field(0.3, gt=0, le=30, description="Wait for a command's answer after its ACK.")
    tags: list[TagRange] = Field(default_factory=list)


class BleBusConfig(_Strict):
    """A Bluetooth ESL access point (one adapter) and the tags it serves.

    The bleak backend is a config value: ``None`` is bleak's default for the platform (BlueZ on Linux); the
    simulator passes ``sim.ble:BumbleBleakClient`` / ``sim.ble:BumbleBleakScanner`` and ``object_channel: sim``.
    Unassociated tags found by a scan are onboarded onto the declared addresses that have no tag yet, in
    address order, and remembered in the tag store.
    """

    type: Literal["ble"]
    name: str = Field(pattern=_NAME_PATTERN)
    client_backend: str | None = Field(None, description="'module:Class' of a bleak client backend; None = default.")
    scanner_backend: str | None = Field(None, description="'module:Class' of a bleak scanner backend.")
    object_channel: str = Field(
        "linux", description="A registered channel name ('linux') or 'module:Class' (OTS data over L2CAP CoC)."
    )
    max_concurrent: int = Field(4, ge=1, le=32, description="Connections open at the same time.")
    compress: bool = Field(True, description="Send images zlib-compressed (4 KB window) when that is smaller.")
    onboard: bool = Field(True, description="Onboard unassociated tags onto declared addresses without a tag.")
    scan_s: float = Field(5.0, gt=0, le=120)
    rescan_s: float = Field(60.0, gt=0, le=86400, description="Scan again this often while declared tags are missing.")
    connect_s: float = Field(10.0, gt=0, le=120)
    response_s: float = Field(5.0, gt=0, le=120)
    attempts: int = Field(4, ge=1, le=20, description="Connections tried per operation.")
    pair: bool = True
    tags: list[TagRange] = Field(default_factory=list)

    @field_validator("client_backend", "scanner_backend")
    @classmethod
    def _class_path(cls, value: str | None) -> str | None:
        if value is not None and not re.match(_CLASS_PATTERN, value):
            raise ValueError(f"must be 'module:Class', got {value!r}")
        return value

    @field_validator("object_channel")
    @classmethod
    def _channel_name(cls, value: str) -> str:
        # a name is looked up when the bus is built (the simulator registers its channel when it is imported)
        if not re.match(r"^\w+$", value) and not re.match(_CLASS_PATTERN, value):
            raise ValueError(f"must be a registered channel name or 'module:Class', got {value!r}")
        return value


def _bus_type(value: object) -> str:
    """Buses without ``type`` are serial (configs written before BLE existed stay valid)."""
    if isinstance(value, dict):
        return str(value.get("type", "serial"))
    return str(getattr(value, "type", "serial"))


BusConfig = Annotated[
    Annotated[SerialBusConfig, Tag("serial")] | Annotated[BleBusConfig, Tag("ble")],
    Discriminator(_bus_type),
]


class RetryConfig(_Strict):
    """How often a failing tag update is tried again, with jittered exponential back-off between tries."""

    max_attempts: int = Field(6, ge=1, le=100)
    min_delay_s: float = Field(1.0, gt=0, le=3600)
    max_delay_s: float = Field(300.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.max_delay_s < self.min_delay_s:
            raise ValueError("max_delay_s must be >= min_delay_s")
        return self


class TagsConfig(_Strict):
    """The tag service: buses, templates (name -> YAML file; ``default`` is built in) and retry policy."""

    buses: list[BusConfig] = Field(min_length=1)
    templates: dict[str, Path] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()
    read_battery: bool = Field(True, description="Read the battery sensor after every applied update.")
    store_path: Path | None = Field(None, description="SQLite desired-state store; default <state_dir>/tags.sqlite3.")

    @field_validator("templates")
    @classmethod
    def _template_names(cls, templates: dict[str, Path]) -> dict[str, Path]:
        from agents.tags.render import TemplateError, load_template

        for name, path in templates.items():
            if not re.match(_NAME_PATTERN, name):
                raise ValueError(f"template name {name!r} must match {_NAME_PATTERN}")
            if name == "default":
                raise ValueError("'default' is the built-in template; give yours another name")
            try:
                load_template(path)
            except TemplateError as exc:
                raise ValueError(f"template {name!r}: {exc}") from None
        return templates

    @model_validator(mode="after")
    def _unique(self) -> TagsConfig:
        names = [bus.name for bus in self.buses]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"bus names must be unique; repeated: {', '.join(repeated)}")
        seen: dict[EslAddress, str] = {}
        for bus in self.buses:
            for tag_range in bus.tags:
                for address in tag_range.expand():
                    if address in seen:
                        raise ValueError(f"tag {address} is declared twice (buses {seen[address]} and {bus.name})")
                    seen[address] = bus.name
        return self

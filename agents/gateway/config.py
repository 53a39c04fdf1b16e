"""The gateway's root configuration: one YAML file per gateway, validated once at start-up.

:class:`GatewayConfig` gathers the core sections (broker, outbox, commands, heartbeat, runtime, from
:mod:`agents.core.config`) and the feature sections (``cameras``, ``footfall``, ``tags``). Validation errors name the
field and the YAML line (:func:`agents.core.config.validate_yaml`); unknown keys are rejected.

The simulator's synthetic load is not a gateway setting: the simulator configures it itself
(:mod:`sim.loadgen`), so a production config cannot carry it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from agents.core.config import (
    ID_PATTERN,
    BrokerConfig,
    CommandsConfig,
    HeartbeatConfig,
    OutboxConfig,
    RuntimeConfig,
    StrictModel,
    read_config_text,
    validate_yaml,
)
from agents.footfall.config import CameraConfig
from agents.footfall.day.record import DAILY_STREAM
from agents.footfall.day.section import FootfallConfig
from agents.footfall.staff import check_staff_zones
from agents.tags.config import TagsConfig

__all__ = ["GatewayConfig", "load_config", "parse_config"]


class GatewayConfig(StrictModel):
    """Top-level gateway configuration."""

    store_id: Annotated[str, Field(pattern=ID_PATTERN)]
    gateway_id: Annotated[str, Field(pattern=ID_PATTERN)]
    state_dir: Path = Path("/var/lib/storeedge")
    broker: BrokerConfig
    outbox: OutboxConfig = OutboxConfig()
    commands: CommandsConfig = CommandsConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    cameras: list[CameraConfig] = Field(default_factory=list, description="Footfall cameras (one agent each).")
    footfall: FootfallConfig = Field(
        default_factory=FootfallConfig,
        description="The store day of the cameras (boundary, time zone), re-identification and staff.",
    )
    tags: TagsConfig | None = Field(None, description="E-ink tag buses and the tag service.")

    @field_validator("cameras")
    @classmethod
    def _unique_camera_names(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        names = [camera.name for camera in cameras]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(duplicates)}")
        reserved = DAILY_STREAM.removeprefix("counts/")
        if reserved in names:
            raise ValueError(f"a camera may not be called {reserved!r}: counts/{reserved} is the store's daily record")
        return cameras

    @model_validator(mode="after")
    def _staff_zones_exist(self) -> GatewayConfig:
        staff = self.footfall.staff
        if staff is not None:
            check_staff_zones(staff, {c.name: [zone.name for zone in c.counting.zones] for c in self.cameras})
        return self

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.state_dir / "outbox.sqlite3"

    @property
    def health_path(self) -> Path:
        return self.state_dir / "health.json"

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"storeedge-{self.store_id}-{self.gateway_id}"


def parse_config(text: str, source: str = "<config>", overrides: dict[str, Any] | None = None) -> GatewayConfig:
    """Validate YAML ``text``; raise :class:`~agents.core.errors.ConfigError` naming each bad field and its line."""
    return validate_yaml(GatewayConfig, text, source, overrides)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> GatewayConfig:
    """Read and validate a gateway configuration file."""
    return parse_config(read_config_text(path), source=str(path), overrides=overrides)

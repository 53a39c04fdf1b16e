"""The ``cameras:`` section of the gateway configuration (kept apart from the agent so the core config
can import it without the runtime)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agents.footfall.counting import CounterConfig
from agents.footfall.detectors import DetectorConfig
from agents.footfall.sources import SourceConfig


class CameraConfig(BaseModel):
    """One camera of the gateway: where frames come from, the detector, and what to count."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")
    source: SourceConfig
    detector: DetectorConfig
    counting: CounterConfig
    interval_s: float = Field(60.0, gt=0, le=3600, description="Length of each uplinked count interval.")
    max_lost_frames: int = Field(30, ge=1, le=1000, description="Frames a lost track is remembered.")

"""The contract every person detector keeps: the :class:`PersonDetector` interface, its errors, and the config
fields all detector types share.

:class:`PersonDetector` is a :class:`~typing.Protocol`, so tests and replay tools can pass any object with ``name``,
``input_size`` and ``detect`` (e.g. one that serves cached detections); the tracker and the counter only ever see
:class:`~agents.footfall.types.Detections` in pixels of the *original* frame.

Errors::

    StoreedgeError
     └── DetectorError
          ├── ModelNotFoundError   (also FileNotFoundError) the configured model file does not exist
          └── ModelShapeError      (also ValueError) the model's inputs/outputs are not what the type expects
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from agents.core.errors import StoreedgeError
from agents.footfall.types import Detections

ImageArray = npt.NDArray[np.uint8]
"""A frame as OpenCV delivers it: ``(H, W, 3)`` uint8, BGR."""

# --------------------------------------------------------------------------------------------- errors


class DetectorError(StoreedgeError):
    """Base of the errors raised while loading or running a person detector."""


class ModelNotFoundError(DetectorError, FileNotFoundError):
    """The configured model file does not exist; ``str(err)`` names the path."""


class ModelShapeError(DetectorError, ValueError):
    """The model's inputs or outputs do not match its configured ``type``.

    The message names the detector type, the expected and the found names/shapes/dtypes, and a hint when the
    model looks like another family (e.g. a YOLOv8 export configured as ``type: yolox``).
    """


# ------------------------------------------------------------------------------------------ interface


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that turns a BGR frame into person boxes in pixels of that frame."""

    @property
    def name(self) -> str:
        """Short description for logs and diagnostics, e.g. ``"yolox:yolox_nano.onnx"``."""
        ...

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Network input ``(height, width)``; ``None`` when the model takes frames of any size."""
        ...

    def detect(self, frame_bgr: ImageArray) -> Detections:
        """Person boxes (``xyxy`` within the frame) and scores for one ``(H, W, 3)`` uint8 BGR frame."""
        ...


# -------------------------------------------------------------------------------------------- config


class DetectorConfigBase(BaseModel):
    """The fields every ``detector:`` config has; each type adds its ``type`` and its own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="ONNX model file.")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Minimum person score kept.")
    threads: int = Field(2, ge=1, le=64, description="onnxruntime intra-op threads (inter-op is 1).")
    spin: bool = Field(
        False, description="Let idle onnxruntime threads busy-wait: off, so a shared 2-core box is not starved."
    )
    max_detections: int = Field(100, ge=1, le=10_000, description="Most boxes returned per frame.")

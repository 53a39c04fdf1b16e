"""Detector types by name: the ``detector:`` config, a union discriminated by ``type``, and :func:`build_detector`.

A new model family is one module with its detector and its config (``type: Literal[...]``), one member of
:data:`DetectorConfig` and one builder here; the tracker, the counter and the agent do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from agents.footfall.detectors.base import PersonDetector
from agents.footfall.detectors.ssd import SsdConfig, SsdDetector
from agents.footfall.detectors.yolov8 import Yolov8Config, Yolov8Detector
from agents.footfall.detectors.yolox import YoloxConfig, YoloxDetector

DetectorConfig = Annotated[YoloxConfig | SsdConfig | Yolov8Config, Field(discriminator="type")]
"""The ``detector:`` section of a camera: one of the detector configs, chosen by ``type``."""


@cache
def _config_adapter() -> TypeAdapter[YoloxConfig | SsdConfig | Yolov8Config]:
    return TypeAdapter(DetectorConfig)


def parse_detector_config(data: Mapping[str, Any]) -> YoloxConfig | SsdConfig | Yolov8Config:
    """Validate a ``detector:`` mapping; raises pydantic ``ValidationError`` whose locations name the field."""
    return _config_adapter().validate_python(dict(data))


def _build_yolox(cfg: YoloxConfig) -> PersonDetector:
    return YoloxDetector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        nms_iou=cfg.nms_iou,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        max_detections=cfg.max_detections,
    )


def _build_yolov8(cfg: Yolov8Config) -> PersonDetector:
    return Yolov8Detector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        nms_iou=cfg.nms_iou,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        max_detections=cfg.max_detections,
    )


def _build_ssd(cfg: SsdConfig) -> PersonDetector:
    return SsdDetector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        person_class=cfg.person_class,
        max_detections=cfg.max_detections,
    )


_BUILDERS: dict[str, Callable[[Any], PersonDetector]] = {
    "yolox": _build_yolox,
    "yolov8": _build_yolov8,
    "ssd": _build_ssd,
}


def build_detector(config: YoloxConfig | SsdConfig | Yolov8Config | Mapping[str, Any]) -> PersonDetector:
    """Build the detector named by ``config.type`` (a config model, or a mapping validated first).

    Raises pydantic ``ValidationError`` for a bad mapping, :class:`ModelNotFoundError` for a missing file and
    :class:`ModelShapeError` when the model does not fit the type.
    """
    cfg = config if isinstance(config, BaseModel) else parse_detector_config(config)
    return _BUILDERS[cfg.type](cfg)

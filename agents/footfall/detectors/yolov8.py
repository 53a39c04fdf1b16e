"""Ultralytics YOLOv8 / YOLO11 exports (``type: yolov8``).

Input ``[1, 3, H, W]`` float32 **RGB 0..1**, letterboxed **centred** with grey 114 (Ultralytics
``LetterBox(center=True)``), resized to ``round(w * r)``; output ``[1, 4 + nc, N]``: ``cx, cy, w, h`` in input
pixels, then class scores, no objectness; NMS here. A box counts as a person when class 0 (COCO ``person``) is its
best class, as in Ultralytics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from agents.footfall.detectors.base import DetectorConfigBase, ModelShapeError
from agents.footfall.detectors.geometry import top_candidates
from agents.footfall.detectors.session import shape_str, static_dim
from agents.footfall.detectors.yolo import YoloBase, check_yolo_size, yolo_anchor_count
from agents.footfall.types import FloatArray


class Yolov8Detector(YoloBase):
    """Ultralytics YOLOv8/YOLO11 ONNX export (``yolo export format=onnx``, ``nms=False``).

    Input ``images`` ``[1, 3, H, W]`` float32 **RGB 0..1**, letterboxed **centred** with grey 114 (Ultralytics
    ``LetterBox(auto=False, center=True)``); output ``[1, 4 + nc, N]``: ``cx, cy, w, h`` in input pixels, then
    one score per class (no objectness). Person = class 0. ``N`` is not checked against the strides, so P6
    exports (stride 64) work too; only the channels-first layout ``4 + nc < N`` is required.
    """

    kind = "yolov8"
    centre = True
    rgb = True
    pixel_scale = 1.0 / 255.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.25,
        nms_iou: float = 0.7,
        threads: int = 2,
        spin: bool = False,
        input_size: int | tuple[int, int] | None = None,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            model,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            threads=threads,
            spin=spin,
            input_size=input_size,
            max_detections=max_detections,
        )

    def _expected_output(self) -> str:
        return "[1, 4 + classes, N] (84 x N for COCO)"

    def _check_output_shape(self, shape: list[Any]) -> None:
        chans, n = static_dim(shape[1]), static_dim(shape[2])
        ok = (chans is None or chans >= 5) and (chans is None or n is None or chans < n)
        if not ok:
            hint = ""
            if chans is not None and n is not None and chans > n >= 6:
                if chans == yolo_anchor_count(self._input_hw):
                    hint = " (is this a YOLOX raw-head export? use type: yolox)"
                else:
                    hint = " (rows-first output: is this a YOLOX export, or an end-to-end export with NMS?)"
            elif n in {6, 7}:
                hint = " (looks like an end-to-end export with NMS inside; export with nms=False)"
            raise ModelShapeError(
                f"yolov8 model: expected output shape {self._expected_output()}, found {shape_str(shape)}{hint}"
            )

    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        head = out[0]  # (4 + nc, N), channels first: the person row is contiguous
        person = head[4]
        idx = top_candidates(person, self.score_threshold)
        if idx.size and head.shape[0] > 5:
            idx = idx[person[idx] >= head[4:, idx].max(axis=0)]  # person must be the best class
        if idx.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        cx, cy, w, h = head[0, idx], head[1, idx], head[2, idx] * 0.5, head[3, idx] * 0.5
        boxes = np.stack([cx - w, cy - h, cx + w, cy + h], axis=1).astype(np.float32, copy=False)
        return boxes, person[idx].astype(np.float32, copy=False)


class Yolov8Config(DetectorConfigBase):
    """``type: yolov8``: Ultralytics YOLOv8/YOLO11 export (RGB 0..1, centred letterbox); Ultralytics defaults."""

    type: Literal["yolov8"]
    score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="Minimum person score kept.")
    nms_iou: float = Field(0.7, gt=0.0, le=1.0, description="NMS IoU above which the lower box is dropped.")
    input_size: int | tuple[int, int] | None = Field(
        None, description="Input side or [height, width]; default: the model's own (fixed) input size."
    )

    _size = field_validator("input_size")(check_yolo_size)

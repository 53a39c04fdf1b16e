"""YOLOX raw-head exports (``type: yolox``) and the shipped YOLOX-Nano, the default model of that type.

Input ``[1, 3, H, W]`` float32 **BGR 0..255**, letterboxed at the **top-left** with grey 114, resized to
``int(w * r)``; output ``[1, N, 5 + nc]``, the raw head: ``N`` = cells of strides 8/16/32,
``xy = (xy + grid) * s``, ``wh = exp(wh) * s``, ``score = obj * cls``; NMS here. A box counts as a person when class 0
(COCO ``person``) is its best class, as in the YOLOX demo.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from agents.footfall.detectors.base import DetectorConfigBase, ModelShapeError
from agents.footfall.detectors.geometry import top_candidates
from agents.footfall.detectors.session import shape_str, static_dim
from agents.footfall.detectors.yolo import YOLO_STRIDES, YoloBase, check_yolo_size, yolo_anchor_count
from agents.footfall.types import FloatArray

SHIPPED_YOLOX_MODEL = Path(__file__).resolve().parents[1] / "models" / "yolox_nano.onnx"
"""YOLOX-Nano shipped as package data in ``agents/footfall/models/`` (source, licence and sha256 in its
``README.md``): the default model."""


class YoloxDetector(YoloBase):
    """YOLOX raw-head export (e.g. the shared YOLOX-Nano): BGR 0..255, top-left letterbox, ``[1, N, 5+nc]``.

    ``N`` must equal the grid cells of strides 8, 16, 32 for the input size (3549 at 416x416): the grids are
    rebuilt here, so a head with another layout cannot be decoded and is rejected at load.
    """

    kind = "yolox"
    centre = False
    rgb = False
    pixel_scale = 1.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
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
        n = yolo_anchor_count(self._input_hw)
        return f"[1, {n}, 5 + classes] (85 for COCO)"

    def _check_output_shape(self, shape: list[Any]) -> None:
        n = yolo_anchor_count(self._input_hw)
        rows, cols = static_dim(shape[1]), static_dim(shape[2])
        ok = static_dim(shape[0]) in (1, None) and rows in (n, None) and (cols is None or cols >= 6)
        if not ok:
            hint = ""
            if cols is not None and rows is not None and cols == n and rows < cols:
                hint = " (is this a YOLOv8 export? use type: yolov8)"
            elif cols is not None and rows is not None and cols > rows:
                hint = " (channels-first output: is this a YOLOv8 export? use type: yolov8)"
            raise ModelShapeError(
                f"yolox model: expected output shape {self._expected_output()} for a "
                f"{self._input_hw[1]}x{self._input_hw[0]} input, found {shape_str(shape)}{hint}"
            )

    def _check_output_values(self, out: FloatArray) -> None:
        # A raw head predicts grid offsets of a few units (|x|, |y| <= ~4 on a blank frame for YOLOX-Nano);
        # an export with decode_in_inference=True has the same shape but centres in pixels (up to the input
        # size). Decoding those again would silently produce garbage boxes, so refuse them.
        # Decoded centres of the last cells reach nearly the input size, so half of it separates the two.
        largest = float(np.abs(out[0, :, :2]).max()) if out.size else 0.0
        if largest > max(16.0, 0.5 * max(self._input_hw)):
            raise ModelShapeError(
                f"yolox model: expected a raw head (grid offsets, |cx|, |cy| of a few units), found box centres up"
                f" to {largest:.0f} on a blank frame: the model looks exported with decode_in_inference=True;"
                " re-export with it off"
            )

    def _prepare(self) -> None:
        in_h, in_w = self._input_hw
        grids, strides = [], []
        for s in YOLO_STRIDES:
            gh, gw = math.ceil(in_h / s), math.ceil(in_w / s)
            ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((gh * gw, 1), s, np.float32))
        self._grid: FloatArray = np.concatenate(grids)
        self._stride: FloatArray = np.concatenate(strides)

    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        rows = out[0]  # (N, 5 + nc)
        person = rows[:, 4] * rows[:, 5]  # objectness * P(person)
        idx = top_candidates(person, self.score_threshold)
        if idx.size and rows.shape[1] > 6:
            cand = rows[idx]
            idx = idx[cand[:, 5] >= cand[:, 5:].max(axis=1)]  # person must be the best class
        if idx.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        cand = rows[idx]
        stride = self._stride[idx]
        cxcy = (cand[:, 0:2] + self._grid[idx]) * stride
        half_wh = np.exp(cand[:, 2:4]) * stride * np.float32(0.5)
        boxes = np.concatenate([cxcy - half_wh, cxcy + half_wh], axis=1).astype(np.float32, copy=False)
        return boxes, person[idx].astype(np.float32, copy=False)


class YoloxConfig(DetectorConfigBase):
    """``type: yolox``: YOLOX raw-head export (BGR 0..255, top-left letterbox)."""

    type: Literal["yolox"]
    model: Path = Field(SHIPPED_YOLOX_MODEL, description="ONNX model file; default: the shipped YOLOX-Nano.")
    nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="NMS IoU above which the lower box is dropped.")
    input_size: int | tuple[int, int] | None = Field(
        None, description="Input side or [height, width]; default: the model's own (fixed) input size."
    )

    _size = field_validator("input_size")(check_yolo_size)

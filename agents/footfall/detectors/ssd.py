"""TF Object Detection API SSD exports (``type: ssd``), e.g. the shared SSDLite person model.

Input ``[N, H, W, 3]`` **uint8 RGB** of any size; outputs ``num_detections``, ``detection_boxes`` (normalised
``ymin, xmin, ymax, xmax``), ``detection_scores`` and ``detection_classes``, with NMS inside the graph, so only the
score and class filter and the mapping back to the frame are done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from agents.footfall.detectors.base import DetectorConfigBase, ImageArray, ModelShapeError
from agents.footfall.detectors.geometry import PAD_VALUE, clip_to_frame
from agents.footfall.detectors.session import OnnxDetector, check_frame, io_str, static_dim
from agents.footfall.types import Detections, FloatArray


class SsdDetector(OnnxDetector):
    """TF Object Detection API SSD export (e.g. the shared SSDLite person model): NMS inside the graph.

    Input ``image_tensor`` ``[N, H, W, 3]`` uint8 **RGB** of any size (the graph resizes to 300x300 itself).
    With ``input_size`` set, frames are resized to ``input_size x input_size`` here first: the graph would
    stretch them to its own square anyway, and a small uint8 tensor is cheaper to convert and resize than a
    full frame (about 1 ms per frame for 768x576 into 300x300). Boxes come back normalised, so mapping them
    to the original frame is a multiplication by its width and height either way.
    """

    kind = "ssd"
    _OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.3,
        threads: int = 2,
        spin: bool = False,
        input_size: int | None = 300,
        person_class: int = 1,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            model, threads=threads, spin=spin, score_threshold=score_threshold, max_detections=max_detections
        )
        if input_size is not None and input_size < 1:
            raise ValueError(f"input_size must be >= 1 or None, got {input_size}")
        self._side = input_size
        self.person_class = float(person_class)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        expected_in = "one uint8 input [N, H, W, 3] (image_tensor:0)"
        shape = inputs[0].shape if len(inputs) == 1 else []
        if (
            len(inputs) != 1
            or inputs[0].type != "tensor(uint8)"
            or len(shape) != 4
            or static_dim(shape[3]) not in (3, None)
        ):
            hint = ""
            if len(inputs) == 1 and inputs[0].type == "tensor(float)" and len(shape) == 4:
                hint = " (a float [1, 3, H, W] input looks like a YOLO export: use type: yolox or type: yolov8)"
            raise ModelShapeError(f"ssd model: expected {expected_in}, found {io_str(inputs)}{hint}")
        by_name = {o.name.split(":")[0]: o.name for o in outputs}
        missing = [n for n in self._OUTPUTS if n not in by_name]
        if missing:
            raise ModelShapeError(
                f"ssd model: expected outputs {', '.join(n + ':0' for n in self._OUTPUTS)}, found "
                f"{io_str(outputs)} (missing {', '.join(missing)})"
            )
        self._output_names = [by_name[n] for n in self._OUTPUTS]
        self._rgb: ImageArray = np.empty((0, 0, 3), np.uint8)
        self._resized: ImageArray = np.empty((0, 0, 3), np.uint8)
        # Warm-up run on a grey frame, which also checks the output shapes the graph really produces.
        side = self._side or 300
        _num, boxes, scores, classes = self._run(np.full((1, side, side, 3), PAD_VALUE, np.uint8))
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != boxes.shape[:2] or classes.shape != scores.shape:
            raise ModelShapeError(
                "ssd model: expected detection_boxes [1, K, 4], detection_scores [1, K], detection_classes [1, K],"
                f" found {list(boxes.shape)}, {list(scores.shape)}, {list(classes.shape)}"
            )

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None if self._side is None else (self._side, self._side)

    def _run(self, tensor: ImageArray) -> list[FloatArray]:
        outs = self._session.run(self._output_names, {self._input_name: tensor})
        return [np.asarray(o) for o in outs]

    def preprocess(self, frame_bgr: ImageArray) -> ImageArray:
        """The ``[1, H, W, 3]`` RGB uint8 tensor for ``frame_bgr`` (a view of a preallocated buffer)."""
        check_frame(frame_bgr)
        src = frame_bgr
        if self._side is not None and frame_bgr.shape[:2] != (self._side, self._side):
            if self._resized.shape[:2] != (self._side, self._side):
                self._resized = np.empty((self._side, self._side, 3), np.uint8)
            src = self._resized
            cv2.resize(frame_bgr, (self._side, self._side), dst=src, interpolation=cv2.INTER_LINEAR)
        if self._rgb.shape != src.shape:
            self._rgb = np.empty(src.shape, np.uint8)
        cv2.cvtColor(src, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return self._rgb[None]

    def postprocess(self, outs: Sequence[FloatArray], frame_hw: tuple[int, int]) -> Detections:
        num, boxes, scores, classes = outs
        n = min(int(num.reshape(-1)[0]), boxes.shape[1])
        s = scores[0, :n]
        keep = np.flatnonzero((s >= self.score_threshold) & (classes[0, :n] == self.person_class))
        if keep.size == 0:
            return Detections.empty()
        keep = keep[: self.max_detections]  # already sorted by score inside the graph
        h, w = frame_hw
        yxyx = boxes[0, keep]
        xyxy = yxyx[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
        xyxy = clip_to_frame(xyxy.astype(np.float32, copy=False), frame_hw)
        return Detections(np.ascontiguousarray(xyxy, np.float32), np.ascontiguousarray(s[keep], np.float32))

    def detect(self, frame_bgr: ImageArray) -> Detections:
        outs = self._run(self.preprocess(frame_bgr))
        return self.postprocess(outs, (int(frame_bgr.shape[0]), int(frame_bgr.shape[1])))


class SsdConfig(DetectorConfigBase):
    """``type: ssd``: TF Object Detection API SSD with in-graph NMS (uint8 RGB, any size)."""

    type: Literal["ssd"]
    input_size: int | None = Field(
        300, ge=32, le=4096, description="Resize frames to this square before the graph (null: full frame)."
    )
    person_class: int = Field(1, ge=0, description="detection_classes value that means person.")

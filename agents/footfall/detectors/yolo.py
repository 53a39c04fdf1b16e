"""What the two YOLO families share: a letterboxed ``[1, 3, H, W]`` float input, box decoding and NMS done here.

:class:`YoloBase` opens the session and checks the model at load: one float32 ``[1, 3, H, W]`` input (its size
against ``input_size``), one output of rank 3 that the family can decode, then one run on a grey frame to check the
shape it really returns. A family says how it wants its pixels (``centre``, ``rgb``, ``pixel_scale``) and how its
head decodes (``_decode``); detection is then preprocess -> ``session.run`` -> decode, NMS, map back, clip.

Per-frame overhead is kept small: the input tensor is allocated once and its padding written once per frame size;
each frame costs one ``cv2.resize`` into a preallocated buffer plus a channel split into the tensor
(:class:`_PlanarInput`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agents.footfall.detectors.base import ImageArray, ModelShapeError
from agents.footfall.detectors.geometry import PAD_VALUE, Letterbox, clip_to_frame, letterbox_params, nms
from agents.footfall.detectors.session import OnnxDetector, check_frame, io_str, static_dim
from agents.footfall.types import Detections, FloatArray

YOLO_STRIDES = (8, 16, 32)
"""Strides of the three detection heads of YOLOX and YOLOv8 (P3, P4, P5)."""


def yolo_anchor_count(input_hw: tuple[int, int], strides: Sequence[int] = YOLO_STRIDES) -> int:
    """Number of grid cells over all heads, e.g. 3549 for 416x416 and 8400 for 640x640."""
    return sum(math.ceil(input_hw[0] / s) * math.ceil(input_hw[1] / s) for s in strides)


def check_yolo_size(value: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
    """Validator of the YOLO configs' ``input_size``: every side a multiple of 32 (the largest stride)."""
    sides = () if value is None else (value,) if isinstance(value, int) else value
    for side in sides:
        if side % 32:
            raise ValueError(f"must be a multiple of 32 (the largest stride), got {side}")
    return value


class _PlanarInput:
    """A preallocated ``[1, 3, H, W]`` float32 letterbox tensor that frames are written into.

    The padding is written once per frame size; each frame costs one ``cv2.resize`` into a preallocated
    buffer, one ``cv2.split`` and three plane copies (with the 0..1 scaling fused into the copy when needed).
    """

    def __init__(self, input_hw: tuple[int, int], *, centre: bool, rgb: bool, scale: float) -> None:
        self.input_hw = input_hw
        self.centre = centre
        self.rgb = rgb
        self.scale = np.float32(scale)
        self.tensor: FloatArray = np.empty((1, 3, *input_hw), np.float32)
        self._frame_hw: tuple[int, int] | None = None
        self._lb: Letterbox | None = None
        self._resized: ImageArray = np.empty((0, 0, 3), np.uint8)
        self._planes: list[ImageArray] = []

    def write(self, frame: ImageArray) -> Letterbox:
        frame_hw = (int(frame.shape[0]), int(frame.shape[1]))
        lb = self._lb
        if lb is None or frame_hw != self._frame_hw:
            lb = self._lb = letterbox_params(frame_hw, self.input_hw, centre=self.centre)
            self._frame_hw = frame_hw
            self.tensor.fill(PAD_VALUE * self.scale)
            self._resized = np.empty((lb.resized_height, lb.resized_width, 3), np.uint8)
            self._planes = [np.empty((lb.resized_height, lb.resized_width), np.uint8) for _ in range(3)]
        resized = frame
        if frame_hw != (lb.resized_height, lb.resized_width):
            resized = self._resized
            cv2.resize(frame, (lb.resized_width, lb.resized_height), dst=resized, interpolation=cv2.INTER_LINEAR)
        cv2.split(resized, self._planes)
        rows = slice(lb.pad_top, lb.pad_top + lb.resized_height)
        cols = slice(lb.pad_left, lb.pad_left + lb.resized_width)
        for channel in range(3):
            plane = self._planes[2 - channel if self.rgb else channel]
            dst = self.tensor[0, channel, rows, cols]
            if self.scale == 1:
                dst[...] = plane
            else:
                np.multiply(plane, self.scale, out=dst)
        return lb


def _resolve_input_hw(kind: str, session: Any, configured: int | tuple[int, int] | None) -> tuple[int, int]:
    """The ``(height, width)`` of a ``[1, 3, H, W]`` float32 input, checked against the configured size."""
    inputs = session.get_inputs()
    expected = "one float32 input [1, 3, H, W]"
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
        hint = ""
        if len(inputs) == 1 and inputs[0].type == "tensor(uint8)":
            hint = " (a uint8 image input looks like a TF Object Detection API export: use type: ssd)"
        raise ModelShapeError(f"{kind} model: expected {expected}, found {io_str(inputs)}{hint}")
    shape = inputs[0].shape
    channels = static_dim(shape[1])
    if channels is not None and channels != 3:
        hint = " (channels-last input: is this an SSD/TF export? use type: ssd)" if static_dim(shape[3]) == 3 else ""
        raise ModelShapeError(f"{kind} model: expected {expected}, found {io_str(inputs)}{hint}")
    model_hw = (static_dim(shape[2]), static_dim(shape[3]))
    want: tuple[int, int] | None = None
    if configured is not None:
        want = (configured, configured) if isinstance(configured, int) else configured
    if want is None:
        if model_hw[0] is None or model_hw[1] is None:
            raise ModelShapeError(
                f"{kind} model: input {io_str(inputs)} has a dynamic size; set input_size in the config"
            )
        return (model_hw[0], model_hw[1])
    for got, wanted in zip(model_hw, want, strict=True):
        if got is not None and got != wanted:
            raise ModelShapeError(
                f"{kind} model: expected input [1, 3, {want[0]}, {want[1]}] (input_size), found {io_str(inputs)};"
                " remove input_size or export the model at that size"
            )
    return want


class YoloBase(OnnxDetector, ABC):
    """Letterboxed ``[1, 3, H, W]`` float input, box decoding and NMS done here."""

    centre = False
    rgb = False
    pixel_scale = 1.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float,
        nms_iou: float,
        threads: int,
        spin: bool,
        input_size: int | tuple[int, int] | None,
        max_detections: int,
    ) -> None:
        if not 0 < nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        super().__init__(
            model, threads=threads, spin=spin, score_threshold=score_threshold, max_detections=max_detections
        )
        self.nms_iou = float(nms_iou)
        self._input_hw = _resolve_input_hw(self.kind, self._session, input_size)
        outputs = self._session.get_outputs()
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            raise ModelShapeError(
                f"{self.kind} model: expected one output of rank 3 ({self._expected_output()}), found "
                f"{io_str(outputs)}{self._family_hint(outputs)}"
            )
        self._output_name: str = outputs[0].name
        self._check_output_shape(list(outputs[0].shape))
        self._input = _PlanarInput(self._input_hw, centre=self.centre, rgb=self.rgb, scale=self.pixel_scale)
        self._prepare()
        # One run on a grey frame: checks the shape the model really returns (dynamic dims) and pays the
        # first-run allocation cost now instead of on the first camera frame.
        self._input.tensor.fill(PAD_VALUE * self.pixel_scale)
        out = self.infer()
        self._check_output_shape(list(out.shape))
        self._check_output_values(out)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_hw

    @abstractmethod
    def _expected_output(self) -> str:
        """The expected output shape, for error messages."""

    def _family_hint(self, outputs: Sequence[Any]) -> str:
        if len(outputs) >= 3:
            return " (several outputs: is this an SSD / TF Object Detection API export? use type: ssd)"
        return ""

    @abstractmethod
    def _check_output_shape(self, shape: list[Any]) -> None:
        """Raise :class:`ModelShapeError` unless ``shape`` (static dims, or a real output's) can be decoded."""

    def _check_output_values(self, out: FloatArray) -> None:
        """Raise :class:`ModelShapeError` when the warm-up output shows the wrong encoding."""

    def _prepare(self) -> None:
        """Precompute per-model constants after the shapes are known."""

    @abstractmethod
    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Candidate boxes (xyxy, network-input pixels) and person scores above the threshold."""

    def preprocess(self, frame_bgr: ImageArray) -> Letterbox:
        """Write ``frame_bgr`` into the preallocated input tensor; exposed for timing and tests."""
        check_frame(frame_bgr)
        return self._input.write(frame_bgr)

    def infer(self) -> FloatArray:
        """Run the session on the current input tensor; returns the raw output."""
        (out,) = self._session.run([self._output_name], {self._input_name: self._input.tensor})
        return np.asarray(out, np.float32)

    def postprocess(self, out: FloatArray, lb: Letterbox, frame_hw: tuple[int, int]) -> Detections:
        """Decode, map back to the original frame, NMS, clip."""
        boxes, scores = self._decode(out)
        if scores.shape[0] == 0:
            return Detections.empty()
        keep = nms(boxes, scores, self.nms_iou, max_detections=self.max_detections)
        xyxy = clip_to_frame(lb.to_original(boxes[keep]), frame_hw)
        return Detections(np.ascontiguousarray(xyxy, np.float32), np.ascontiguousarray(scores[keep], np.float32))

    def detect(self, frame_bgr: ImageArray) -> Detections:
        lb = self.preprocess(frame_bgr)
        out = self.infer()
        return self.postprocess(out, lb, (int(frame_bgr.shape[0]), int(frame_bgr.shape[1])))

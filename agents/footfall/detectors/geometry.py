"""Box geometry shared by the detectors: a frame letterboxed onto the network input and mapped back, IoU and NMS.

Both YOLO families letterbox (scale keeping the aspect ratio, pad with grey :data:`PAD_VALUE`) but round and place
the frame differently (:func:`letterbox_params`: YOLOX at the top-left, Ultralytics centred). Decoding touches only
the rows above the score threshold (:func:`top_candidates`, at most :data:`_PRE_NMS_TOPK` of them), and :func:`nms`
is one vectorised overlap pass over those few candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agents.footfall.detectors.base import ImageArray
from agents.footfall.types import FloatArray, IntArray

PAD_VALUE = 114
"""Letterbox padding grey used by both YOLOX and Ultralytics training pipelines."""

_PRE_NMS_TOPK = 1000
"""At most this many candidates (highest scores) enter NMS, so a degenerate model cannot stall a frame."""


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed on the network input: scaled by ``scale``, pasted at ``(pad_left, pad_top)``.

    ``input = original * scale + pad``; :meth:`to_original` inverts it for boxes.
    """

    scale: float
    pad_left: int
    pad_top: int
    resized_width: int
    resized_height: int
    input_height: int
    input_width: int

    def to_original(self, xyxy: FloatArray) -> FloatArray:
        """Map ``(N, 4)`` boxes from network-input pixels back to original-frame pixels (not clipped)."""
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], np.float32)
        return ((xyxy - offset) * np.float32(1.0 / self.scale)).astype(np.float32, copy=False)

    def to_input(self, xyxy: FloatArray) -> FloatArray:
        """Map ``(N, 4)`` boxes from original-frame pixels to network-input pixels."""
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], np.float32)
        return (xyxy * np.float32(self.scale) + offset).astype(np.float32, copy=False)


def letterbox_params(frame_hw: tuple[int, int], input_hw: tuple[int, int], *, centre: bool) -> Letterbox:
    """Scale and padding that fit a ``frame_hw`` frame into ``input_hw`` keeping the aspect ratio.

    ``centre=False`` is the YOLOX reference: resized size ``int(w * r)`` (floor), pasted at the top-left.
    ``centre=True`` is Ultralytics ``LetterBox(auto=False, center=True)``: resized size ``round(w * r)``,
    padding split evenly with Ultralytics' ``round(d/2 -/+ 0.1)`` so an odd pixel goes to the bottom/right.
    Frames are scaled up as well as down (both references do).
    """
    h, w = frame_hw
    in_h, in_w = input_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {w}x{h}")
    r = min(in_h / h, in_w / w)
    if centre:
        new_w, new_h = round(w * r), round(h * r)
        pad_left, pad_top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
    else:
        new_w, new_h = int(w * r), int(h * r)
        pad_left = pad_top = 0
    new_w, new_h = max(1, min(new_w, in_w)), max(1, min(new_h, in_h))
    return Letterbox(r, pad_left, pad_top, new_w, new_h, in_h, in_w)


def letterbox(
    frame: ImageArray, input_hw: tuple[int, int], *, centre: bool, pad_value: int = PAD_VALUE
) -> tuple[ImageArray, Letterbox]:
    """A letterboxed copy of ``frame`` (``(H, W, C)`` uint8) of size ``input_hw``, and its :class:`Letterbox`.

    Convenience for tools and tests; the detectors write straight into their preallocated input tensors.
    """
    lb = letterbox_params((frame.shape[0], frame.shape[1]), input_hw, centre=centre)
    canvas = np.full((lb.input_height, lb.input_width, *frame.shape[2:]), pad_value, np.uint8)
    roi = canvas[lb.pad_top : lb.pad_top + lb.resized_height, lb.pad_left : lb.pad_left + lb.resized_width]
    resized = cv2.resize(frame, (lb.resized_width, lb.resized_height), interpolation=cv2.INTER_LINEAR)
    roi[...] = resized.reshape(roi.shape)
    return canvas, lb


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes, as an ``(N, M)`` float32 matrix."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, np.float32(1e-12)), 0).astype(np.float32)


def nms(xyxy: FloatArray, scores: FloatArray, iou_threshold: float, *, max_detections: int | None = None) -> IntArray:
    """Greedy non-maximum suppression; indices of the kept boxes, highest score first.

    A box is suppressed when its IoU with an already kept, higher-scoring box is **greater than**
    ``iou_threshold`` (torchvision's rule); ties in score keep the lower index (stable sort). The pairwise
    overlap test is one vectorised pass (``inter > t * union``, no division); the greedy walk then costs one
    small numpy step per *kept* box. For the tens of candidates a frame has this is ~3x faster than the
    classic per-step IoU loop (60 boxes: ~60 us instead of ~150 us).
    """
    n = int(scores.shape[0])
    if n == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = np.asarray(xyxy, np.float32)[order]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = iw * ih
    overlaps = inter > np.float32(iou_threshold) * (area[:, None] + area[None, :] - inter)
    limit = n if max_detections is None else max_detections
    keep: list[int] = []
    remaining = np.arange(n)
    while remaining.size and len(keep) < limit:
        i = int(remaining[0])
        keep.append(i)
        rest = remaining[1:]
        remaining = rest[~overlaps[i, rest]]
    return order[np.asarray(keep, np.int64)].astype(np.int64, copy=False)


def clip_to_frame(xyxy: FloatArray, frame_hw: tuple[int, int]) -> FloatArray:
    """Clip ``(N, 4)`` xyxy boxes to a ``frame_hw`` frame, in place; returns them."""
    h, w = frame_hw
    np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
    return xyxy


def top_candidates(scores: FloatArray, threshold: float) -> IntArray:
    """Indices of scores ``>= threshold``, at most :data:`_PRE_NMS_TOPK` of them (the highest)."""
    idx = np.flatnonzero(scores >= threshold)
    if idx.size > _PRE_NMS_TOPK:
        idx = idx[np.argpartition(-scores[idx], _PRE_NMS_TOPK)[:_PRE_NMS_TOPK]]
    return idx.astype(np.int64, copy=False)

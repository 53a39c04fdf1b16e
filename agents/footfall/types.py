"""Plain data passed between the footfall stages (detector -> tracker -> counter).

Arrays rather than per-box objects: the tracker and counter must keep up with thousands of frames per
second on cached detections, and numpy makes that cheap. Coordinates are pixels of the original frame,
``x1, y1, x2, y2``, with y pointing down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Detections:
    """Person detections of one frame: ``xyxy`` is (N, 4) float32, ``scores`` is (N,) float32."""

    xyxy: FloatArray
    scores: FloatArray

    def __post_init__(self) -> None:
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4 or self.scores.shape != (self.xyxy.shape[0],):
            raise ValueError(
                f"Detections need xyxy (N, 4) and scores (N,), got {self.xyxy.shape} and {self.scores.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def from_lists(cls, boxes: list[tuple[float, float, float, float]], scores: list[float]) -> Detections:
        if not boxes:
            return cls.empty()
        return cls(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32))

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])


@dataclass(frozen=True)
class Tracks:
    """Confirmed tracks reported for one frame: ``ids`` (M,) int64, ``xyxy`` (M, 4), ``scores`` (M,)."""

    ids: IntArray
    xyxy: FloatArray
    scores: FloatArray

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros((0,), np.int64), np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

"""Tracking scores of a tracker result against ground truth: MOTA, IDF1, ID switches (py-motmetrics).

:func:`score_tracks` follows py-motmetrics' ``compare_to_groundtruth(gt, result, "iou", distth=0.5)``: per frame,
boxes pair when their IoU is at least ``iou_threshold``; established pairs carry over; the rest are matched by
minimum total ``1 - IoU``. Every frame present in either mapping counts. On TUD-Campus the reference tracker result
gives IDF1 55.8 %, MOTA 52.6 %, 13 FP, 150 FN, 7 ID switches, the published figures.

py-motmetrics 1.4's ``distances.iou_matrix`` calls ``np.asfarray``, which NumPy 2.0 removed, so this module computes
the same distance matrix (``1 - IoU``, NaN where the pair may not match) with NumPy and feeds it to
``MOTAccumulator``; the numbers are identical. motmetrics is an optional dependency (the ``bench`` and ``test``
extras) and is imported only when scoring, so reading and writing files works without it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agents.footfall.types import FloatArray, IntArray


class IdBoxes(Protocol):
    """Anything with per-frame ``ids`` and ``xyxy``: :class:`Tracks` or :class:`GroundTruthFrame`."""

    @property
    def ids(self) -> IntArray: ...

    @property
    def xyxy(self) -> FloatArray: ...


@dataclass(frozen=True)
class MotScores:
    """CLEAR-MOT and identity scores of a tracker result against ground truth.

    Rates (``mota``, ``motp``, ``idf1``, ``idp``, ``idr``, ``precision``, ``recall``) are **percentages** (0-100, as
    MOTChallenge publishes them; MOTA can be negative), NaN when undefined (e.g. MOTA, recall and MOTP without ground
    truth). ``motp`` is the mean IoU of matched pairs (the devkit's convention; py-motmetrics reports ``1 - IoU`` as a
    fraction). Counts are over all scored frames: ``fp``/``fn`` false positives and misses, ``matches`` matched pairs,
    ``gt_boxes`` and ``predicted_boxes`` the boxes scored, ``gt_ids`` distinct ground-truth ids; ``mostly_tracked``
    (matched in >= 80 % of their frames), ``partially_tracked`` and ``mostly_lost`` (< 20 %) count ground-truth ids.
    """

    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    precision: float
    recall: float
    id_switches: int
    fragmentations: int
    fp: int
    fn: int
    matches: int
    gt_boxes: int
    predicted_boxes: int
    gt_ids: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int
    num_frames: int
    iou_threshold: float

    def as_dict(self) -> dict[str, float | int]:
        """Field name -> value, e.g. for a JSON benchmark report."""
        return asdict(self)

    def summary(self) -> str:
        """One line: ``MOTA 52.6 % IDF1 55.8 % IDsw 7 FP 13 FN 150 MT 1 ML 1 (71 frames)``."""
        return (
            f"MOTA {self.mota:.1f} % IDF1 {self.idf1:.1f} % IDsw {self.id_switches} FP {self.fp} FN {self.fn} "
            f"MT {self.mostly_tracked} ML {self.mostly_lost} ({self.num_frames} frames)"
        )


# motmetrics metric name -> (MotScores field, kind): "rate" scales a fraction to %, "motp" turns 1 - IoU into IoU %.
_METRICS: dict[str, tuple[str, str]] = {
    "mota": ("mota", "rate"),
    "motp": ("motp", "motp"),
    "idf1": ("idf1", "rate"),
    "idp": ("idp", "rate"),
    "idr": ("idr", "rate"),
    "precision": ("precision", "rate"),
    "recall": ("recall", "rate"),
    "num_switches": ("id_switches", "count"),
    "num_fragmentations": ("fragmentations", "count"),
    "num_false_positives": ("fp", "count"),
    "num_misses": ("fn", "count"),
    "num_matches": ("matches", "count"),
    "num_objects": ("gt_boxes", "count"),
    "num_predictions": ("predicted_boxes", "count"),
    "num_unique_objects": ("gt_ids", "count"),
    "mostly_tracked": ("mostly_tracked", "count"),
    "partially_tracked": ("partially_tracked", "count"),
    "mostly_lost": ("mostly_lost", "count"),
    "num_frames": ("num_frames", "count"),
}


def _import_motmetrics() -> Any:  # motmetrics has no type stubs
    try:
        with _motmetrics_warnings_silenced():
            import motmetrics
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "scoring tracks needs py-motmetrics: pip install 'storeedge[bench]' (or motmetrics>=1.4)"
        ) from exc
    return motmetrics


@contextmanager
def _motmetrics_warnings_silenced() -> Iterator[None]:
    """Ignore deprecation warnings attributed to motmetrics' own code, only while it runs.

    py-motmetrics 1.4 (2022) predates NumPy 2 and pandas 3; deprecations it triggers are not ours to fix, and the test
    suite turns warnings into errors. Warnings raised from any other module are untouched.
    """
    with warnings.catch_warnings():
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"motmetrics(\.|$)")
        yield


def _iou_distances(gt_xyxy: FloatArray, pred_xyxy: FloatArray, max_distance: float) -> npt.NDArray[np.float64]:
    """``1 - IoU`` for every (ground truth, prediction) pair, NaN where it exceeds ``max_distance`` (no match).

    The same matrix as ``motmetrics.distances.iou_matrix(objs, hyps, max_iou=max_distance)`` on ``x, y, w, h`` boxes,
    which cannot be used with NumPy 2 (it calls ``np.asfarray``). Computed in float64.
    """
    a = gt_xyxy.astype(np.float64)[:, None, :]
    b = pred_xyxy.astype(np.float64)[None, :, :]
    size = np.maximum(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0.0)
    intersection = size[..., 0] * size[..., 1]
    area_a = np.prod(np.maximum(a[..., 2:] - a[..., :2], 0.0), axis=-1)
    area_b = np.prod(np.maximum(b[..., 2:] - b[..., :2], 0.0), axis=-1)
    union = area_a + area_b - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=intersection > 0)
    distance = 1.0 - iou
    return np.where(distance > max_distance, np.nan, distance)


def _frame_ids(boxes: IdBoxes | None, what: str, frame: int) -> tuple[IntArray, FloatArray]:
    if boxes is None:
        return np.zeros((0,), np.int64), np.zeros((0, 4), np.float32)
    ids = np.asarray(boxes.ids, np.int64).reshape(-1)
    xyxy = np.asarray(boxes.xyxy, np.float32).reshape(-1, 4)
    if ids.shape[0] != xyxy.shape[0]:
        raise ValueError(f"{what} frame {frame}: {ids.shape[0]} ids for {xyxy.shape[0]} boxes")
    if np.unique(ids).shape[0] != ids.shape[0]:
        raise ValueError(f"{what} frame {frame} repeats an id: {ids.tolist()}")
    return ids, xyxy


def _score_value(value: Any, kind: str) -> float | int:
    number = float(value)
    if kind == "count":
        return round(number)
    if not math.isfinite(number):  # e.g. MOTA with no ground truth: 1 - FP / 0
        return math.nan
    return 100.0 * (1.0 - number) if kind == "motp" else 100.0 * number


def score_tracks(
    gt: Mapping[int, IdBoxes],
    predictions: Mapping[int, IdBoxes],
    *,
    iou_threshold: float = 0.5,
) -> MotScores:
    """Score ``predictions`` against ``gt`` with py-motmetrics (CLEAR-MOT and IDF1).

    Both are keyed by frame (the same numbering on both sides, normally 1-based MOT frames) and hold ``ids`` and
    ``xyxy``: :class:`GroundTruthFrame` from :func:`read_mot_ground_truth`, :class:`Tracks` from :func:`read_mot_tracks`
    or :func:`track_detections` (ground truth can be passed as predictions, too). A pair can match when its IoU is at
    least ``iou_threshold``. Every frame in either mapping is scored; frames missing from one side are empty there.
    Filter ground truth when reading it (flag-0 rows, classes); predictions are scored as given.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    mm = _import_motmetrics()
    max_distance = 1.0 - iou_threshold
    with _motmetrics_warnings_silenced():
        accumulator = mm.MOTAccumulator(auto_id=False)
        for frame in sorted(set(gt) | set(predictions)):
            gt_ids, gt_xyxy = _frame_ids(gt.get(frame), "ground-truth", frame)
            pred_ids, pred_xyxy = _frame_ids(predictions.get(frame), "prediction", frame)
            distances = _iou_distances(gt_xyxy, pred_xyxy, max_distance)
            accumulator.update(gt_ids, pred_ids, distances, frameid=int(frame))
        values = mm.metrics.create().compute(accumulator, metrics=list(_METRICS), return_dataframe=False)
    fields: dict[str, Any] = {field: _score_value(values[name], kind) for name, (field, kind) in _METRICS.items()}
    return MotScores(**fields, iou_threshold=iou_threshold)
